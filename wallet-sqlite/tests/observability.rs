//! Metrics and tracing of the service's operations, through a real store: the counter and the
//! latency histogram per operation and outcome, and spans that carry ids but never secrets or
//! personal data.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use std::sync::{Arc, Mutex};

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::{CompositeKey, MetricKind};
use wallet_core::observe::{OPERATION_DURATION_SECONDS, OPERATIONS_TOTAL};
use wallet_core::testkit::{PASSWORD, d, registration};
use wallet_core::{
    Actor, DepositRequest, OpenWalletRequest, Password, TransferRequest, WalletKind,
    WithdrawRequest,
};
use wallet_sqlite::{Options, SqliteStore};

fn runtime() -> tokio::runtime::Runtime {
    // One thread: the recorder and the subscriber below are installed for this thread only,
    // and every operation's future runs on it (the store's own threads record nothing).
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The value of the metric `name` of `kind` labelled with `operation` and `outcome`.
fn metric<'a>(
    rows: &'a [(CompositeKey, DebugValue)],
    kind: MetricKind,
    name: &str,
    operation: &str,
    outcome: &str,
) -> Option<&'a DebugValue> {
    rows.iter()
        .find(|(k, _)| {
            let labels: Vec<(&str, &str)> =
                k.key().labels().map(|l| (l.key(), l.value())).collect();
            k.kind() == kind
                && k.key().name() == name
                && labels.contains(&("operation", operation))
                && labels.contains(&("outcome", outcome))
        })
        .map(|(_, v)| v)
}

#[test]
fn operations_are_counted_and_timed_per_outcome() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        runtime().block_on(async {
            let store = SqliteStore::open_in_memory(Options::default()).unwrap();
            let ledger = common::ledger(store).await;
            let alice = common::user(&ledger, 1).await;
            let bob = common::user(&ledger, 2).await;
            let open = |who: &Actor| OpenWalletRequest::new(who.user, WalletKind::Personal, "USD");
            let a = ledger.open_wallet(&alice, open(&alice)).await.unwrap();
            let b = ledger.open_wallet(&bob, open(&bob)).await.unwrap();
            for i in 0..3 {
                ledger
                    .deposit(&alice, DepositRequest::new(a.id, d("10"), format!("d{i}")))
                    .await
                    .unwrap();
            }
            ledger
                .transfer(&alice, TransferRequest::new(a.id, b.id, d("5"), "t1"))
                .await
                .unwrap();
            let refused = ledger
                .withdraw(&bob, WithdrawRequest::new(b.id, d("6"), "w1"))
                .await;
            assert_eq!(refused.unwrap_err().code(), "insufficient_funds");
            let forbidden = ledger.wallet(&bob, a.id).await;
            assert_eq!(forbidden.unwrap_err().code(), "forbidden");
        });
    });
    let rows: Vec<(CompositeKey, DebugValue)> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(k, _, _, v)| (k, v))
        .collect();
    let count =
        |op: &str, outcome: &str| metric(&rows, MetricKind::Counter, OPERATIONS_TOTAL, op, outcome);
    assert_eq!(count("deposit", "ok"), Some(&DebugValue::Counter(3)));
    assert_eq!(count("transfer", "ok"), Some(&DebugValue::Counter(1)));
    assert_eq!(count("register", "ok"), Some(&DebugValue::Counter(2)));
    assert_eq!(count("open_wallet", "ok"), Some(&DebugValue::Counter(2)));
    assert_eq!(
        count("withdraw", "insufficient_funds"),
        Some(&DebugValue::Counter(1))
    );
    assert_eq!(count("withdraw", "ok"), None);
    assert_eq!(count("wallet", "forbidden"), Some(&DebugValue::Counter(1)));
    let latencies = |op: &str, outcome: &str| match metric(
        &rows,
        MetricKind::Histogram,
        OPERATION_DURATION_SECONDS,
        op,
        outcome,
    ) {
        Some(DebugValue::Histogram(samples)) => samples.iter().map(|s| s.0).collect(),
        other => panic!("no latency histogram for {op}/{outcome}: {other:?}"),
    };
    let deposits: Vec<f64> = latencies("deposit", "ok");
    assert_eq!(deposits.len(), 3);
    // A durable in-memory commit takes well over a nanosecond and well under a minute.
    assert!(
        deposits.iter().all(|&s| s > 0.0 && s < 60.0),
        "{deposits:?}"
    );
    assert_eq!(latencies("withdraw", "insufficient_funds").len(), 1);
}

/// Every span and event field recorded, as `span.field=value` lines.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<String>>>);

struct Fields<'a>(&'a str, &'a mut Vec<String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.1
            .push(format!("{}.{}={value:?}", self.0, field.name()));
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut lines = self.0.lock().unwrap();
        lines.push(format!("span {}", span.metadata().name()));
        span.record(&mut Fields(span.metadata().name(), &mut lines));
        tracing::span::Id::from_u64(u64::try_from(lines.len()).unwrap())
    }
    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        values.record(&mut Fields("record", &mut self.0.lock().unwrap()));
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        event.record(&mut Fields("event", &mut self.0.lock().unwrap()));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn spans_name_the_operation_and_never_carry_secrets_or_personal_data() {
    // Installed for the whole process: a subscriber scoped to this thread misses callsites
    // whose interest another test's thread cached first as "never". The other test's spans
    // land here too, which only makes the check below stricter.
    let capture = Capture::default();
    let lines = Arc::clone(&capture.0);
    tracing::subscriber::set_global_default(capture).unwrap();
    {
        runtime().block_on(async {
            let store = SqliteStore::open_in_memory(Options::default()).unwrap();
            let ledger = common::ledger(store)
                .await
                .with_auth(
                    wallet_core::testkit::fast_auth(),
                    Some(wallet_core::testkit::test_secret()),
                )
                .unwrap();
            let root = ledger.bootstrap(registration("rootuser")).await.unwrap();
            let session = ledger
                .login("rootuser@example.com", Password::new(PASSWORD))
                .await
                .unwrap();
            let actor = ledger.authenticate(session.token.expose()).await.unwrap();
            assert_eq!(actor.user, root.id);
            let wrong = ledger
                .login("rootuser", Password::new("not the password at all"))
                .await;
            assert_eq!(wrong.unwrap_err().code(), "invalid_credentials");
            let w = ledger
                .open_wallet(
                    &actor,
                    OpenWalletRequest::new(actor.user, WalletKind::Personal, "USD"),
                )
                .await
                .unwrap();
            ledger
                .deposit(&actor, DepositRequest::new(w.id, d("12.5"), "secret-key-1"))
                .await
                .unwrap();
        });
    }
    let lines = lines.lock().unwrap().join("\n");
    for span in [
        "span bootstrap",
        "span login",
        "span authenticate",
        "span deposit",
    ] {
        assert!(lines.contains(span), "no {span} in:\n{lines}");
    }
    assert!(lines.contains("deposit.amount=12.5"), "{lines}");
    assert!(
        lines.contains("event.outcome=\"invalid_credentials\""),
        "{lines}"
    );
    for secret in [
        PASSWORD,
        "not the password",
        "rootuser",
        "example.com",
        "+1415",
        "Test rootuser",
        "secret-key-1",
        "$argon2",
        "eyJ", // a JWT's header
    ] {
        assert!(!lines.contains(secret), "{secret:?} leaked into:\n{lines}");
    }
}
