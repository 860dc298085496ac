//! No secret reaches a log or a printed value: a full scenario runs with every tracing event and
//! span (TRACE, span opens and closes with their fields) captured from every thread, then the
//! capture and the `Debug` and `Display` of every value the service returned are searched for
//! each password, password hash, session token, provider token and the JWT signing key.
//!
//! One test per binary: it installs the process-wide subscriber, so the writer thread, the
//! hashing threads and the runtime's workers are all captured.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

use std::io::Write;
use std::sync::{Arc, Mutex};

use base64::Engine;
use wallet_core::admin::{Period, TransactionQuery, UserQuery, WalletQuery};
use wallet_core::audit::AuditQuery;
use wallet_core::identity::KycStatus;
use wallet_core::ids::UserId;
use wallet_core::payment_method::{
    CardBrand, CardExpiry, MethodDisplay, PaymentMethodKind, PaymentMethodStatus,
};
use wallet_core::testkit::{START, d, fast_auth, registration};
use wallet_core::{
    Actor, Config, DepositRequest, HistoryQuery, JwtSecret, Ledger, ManualClock, OpenWalletRequest,
    Password, Role, Store, Timestamp, TransferRequest, WalletKind, WithdrawRequest,
};
use wallet_sqlite::{Options, SqliteStore};

/// Everything written to the subscriber, from every thread.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// What was returned, printed both ways where both exist.
#[derive(Default)]
struct Printed(String);

impl Printed {
    fn debug<T: std::fmt::Debug>(&mut self, value: &T) {
        self.0.push_str(&format!("{value:?}\n{value:#?}\n"));
    }

    fn both<T: std::fmt::Debug + std::fmt::Display>(&mut self, value: &T) {
        self.debug(value);
        self.0.push_str(&format!("{value}\n"));
    }

    /// Prints an outcome: the value, or the error both ways.
    fn outcome<T: std::fmt::Debug>(&mut self, r: &wallet_core::Result<T>) {
        match r {
            Ok(v) => self.debug(v),
            Err(e) => self.both(e),
        }
    }
}

const ROOT_PASSWORD: &str = "first passphrase Quokka-7731";
const ALICE_PASSWORD: &str = "her passphrase Wombat-2210";
const ALICE_NEW_PASSWORD: &str = "her second Numbat-9142";
const WRONG_PASSWORD: &str = "a wrong guess Dingo-5521";
const BOB_PASSWORD: &str = "his passphrase Bilby-6683";
const PROVIDER_TOKEN: &str = "pm_live_Sensitive7f3a9c";

fn register(name: &str, password: &str) -> wallet_core::RegisterRequest {
    let mut req = registration(name);
    req.password = Password::new(password);
    req
}

#[test]
fn no_secret_in_logs_or_printed_values() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::FULL)
        .with_ansi(false)
        .with_thread_names(true)
        .with_writer(capture.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // A key with every byte distinct from the fixtures' keys, so any form of it is findable.
    let key: Vec<u8> = (0u8..64)
        .map(|i| i.wrapping_mul(53).wrapping_add(201))
        .collect();
    let (printed, mut secrets) = runtime.block_on(scenario(key.clone()));

    // Canary: the capture really sees events from other threads.
    std::thread::spawn(|| tracing::trace!(canary = "canary-4471", "from another thread"))
        .join()
        .unwrap();

    // A token's signature alone would let nobody forge, but it is the token's secret part.
    let signatures: Vec<String> = secrets
        .iter()
        .filter(|s| s.matches('.').count() == 2)
        .filter_map(|t| t.rsplit('.').next().map(str::to_owned))
        .collect();
    secrets.extend(signatures);
    secrets.push(hex(&key));
    secrets.push(base64::engine::general_purpose::STANDARD_NO_PAD.encode(&key));
    secrets.push(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&key));
    secrets.push(format!("{:?}", &key[..8]).trim_end_matches(']').to_owned());
    secrets.push(String::from_utf8_lossy(&key[..12]).into_owned());

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("canary-4471"),
        "the capture misses other threads"
    );
    // Sanity: the scenario was logged at all (spans of the login and a transfer, at least).
    assert!(
        logs.contains("login"),
        "no login span in {} bytes of logs",
        logs.len()
    );
    assert!(logs.len() > 1_000, "only {} bytes of logs", logs.len());
    for secret in &secrets {
        assert!(secret.len() >= 8, "too short to search for: {secret:?}");
        assert!(
            !logs.contains(secret.as_str()),
            "the logs hold a secret: {secret:?}"
        );
        assert!(
            !printed.0.contains(secret.as_str()),
            "a printed value holds a secret: {secret:?}"
        );
    }
    // Sanity: the printed values are the real ones (a user's name is in them).
    assert!(printed.0.contains("alice@example.com"));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs the scenario; returns what it printed and every secret it saw.
async fn scenario(key: Vec<u8>) -> (Printed, Vec<String>) {
    let mut p = Printed::default();
    let mut secrets: Vec<String> = [
        ROOT_PASSWORD,
        ALICE_PASSWORD,
        ALICE_NEW_PASSWORD,
        WRONG_PASSWORD,
        BOB_PASSWORD,
        PROVIDER_TOKEN,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let store = SqliteStore::open_in_memory(Options::default()).unwrap();
    let clock = ManualClock::new(START);
    let ledger = Ledger::with_clock(store.clone(), Config::default(), clock.clone())
        .await
        .unwrap()
        .with_auth(fast_auth(), Some(JwtSecret::new(key).unwrap()))
        .unwrap();
    p.debug(&ledger);

    let root = ledger
        .bootstrap(register("root", ROOT_PASSWORD))
        .await
        .unwrap();
    p.debug(&root);
    let root = Actor::new(root.id, root.role);
    let alice = ledger
        .register(register("alice", ALICE_PASSWORD))
        .await
        .unwrap();
    let bob = ledger
        .register(register("bob", BOB_PASSWORD))
        .await
        .unwrap();
    let admin = ledger
        .register(register("admin", ROOT_PASSWORD))
        .await
        .unwrap();
    p.debug(&alice);
    p.outcome(&ledger.set_role(&root, admin.id, Role::Admin).await);
    let admin = Actor::new(admin.id, Role::Admin);
    for who in [alice.id, bob.id] {
        p.outcome(
            &ledger
                .review_kyc(&admin, who, KycStatus::Verified, "documents")
                .await,
        );
    }

    // Sessions: login, a failed login, a password change, logout everywhere.
    let session = ledger
        .login("alice", Password::new(ALICE_PASSWORD))
        .await
        .unwrap();
    p.debug(&session);
    secrets.push(session.token.expose().to_owned());
    let a = ledger.authenticate(session.token.expose()).await.unwrap();
    p.debug(&a);
    p.outcome(&ledger.login("alice", Password::new(WRONG_PASSWORD)).await);
    p.outcome(&ledger.login("nobody", Password::new(WRONG_PASSWORD)).await);
    p.outcome(
        &ledger
            .change_password(
                &a,
                Password::new(WRONG_PASSWORD),
                Password::new(ALICE_NEW_PASSWORD),
            )
            .await,
    );
    p.outcome(
        &ledger
            .change_password(
                &a,
                Password::new(ALICE_PASSWORD),
                Password::new(ALICE_NEW_PASSWORD),
            )
            .await,
    );
    p.outcome(&ledger.authenticate(session.token.expose()).await);
    let session = ledger
        .login("alice@example.com", Password::new(ALICE_NEW_PASSWORD))
        .await
        .unwrap();
    secrets.push(session.token.expose().to_owned());
    p.debug(&session);
    p.outcome(&ledger.logout_everywhere(&a, a.user).await);
    p.outcome(&ledger.authenticate(session.token.expose()).await);
    let session = ledger
        .login("alice", Password::new(ALICE_NEW_PASSWORD))
        .await
        .unwrap();
    secrets.push(session.token.expose().to_owned());
    let a = ledger.authenticate(session.token.expose()).await.unwrap();
    let bob_session = ledger
        .login("bob", Password::new(BOB_PASSWORD))
        .await
        .unwrap();
    secrets.push(bob_session.token.expose().to_owned());
    let b = ledger
        .authenticate(bob_session.token.expose())
        .await
        .unwrap();
    let root_session = ledger
        .login("root", Password::new(ROOT_PASSWORD))
        .await
        .unwrap();
    secrets.push(root_session.token.expose().to_owned());
    // A tampered token is refused without echoing it.
    let mut tampered = session.token.expose().to_owned();
    tampered.push('x');
    p.outcome(&ledger.authenticate(&tampered).await);

    // A payment method, with its provider token, and a card number where it does not belong.
    let card = |nickname: &str| wallet_core::NewPaymentMethod {
        kind: PaymentMethodKind::CreditCard,
        provider: "stripe".into(),
        provider_token: PROVIDER_TOKEN.to_owned(),
        display: MethodDisplay::Card {
            brand: CardBrand::Visa,
            last4: "4242".into(),
            expiry: CardExpiry::new(12, 2031).unwrap(),
            holder: Some("Alice Liddell".into()),
        },
        nickname: Some(nickname.to_owned()),
        make_default: true,
    };
    let method = card("4111 1111 1111 1111");
    p.debug(&method);
    p.outcome(&ledger.add_payment_method(&a, a.user, method).await);
    secrets.push("4111 1111 1111 1111".to_owned());
    secrets.push("4111111111111111".to_owned());
    let added = ledger
        .add_payment_method(&a, a.user, card("travel card"))
        .await
        .unwrap();
    p.debug(&added);
    p.both(&added.token);
    p.outcome(&ledger.payment_methods(&a, a.user).await);
    p.outcome(&ledger.verify_payment_method(&admin, added.id).await);
    p.outcome(
        &ledger
            .set_payment_method_status(&a, added.id, PaymentMethodStatus::Inactive)
            .await,
    );

    // Money.
    let wa = ledger
        .open_wallet(
            &a,
            OpenWalletRequest::new(a.user, WalletKind::Personal, "USD"),
        )
        .await
        .unwrap();
    let wb = ledger
        .open_wallet(
            &b,
            OpenWalletRequest::new(b.user, WalletKind::Personal, "USD"),
        )
        .await
        .unwrap();
    p.debug(&wa);
    p.outcome(
        &ledger
            .deposit(&a, DepositRequest::new(wa.id, d("100"), "dep-1"))
            .await,
    );
    for i in 0..3 {
        p.outcome(
            &ledger
                .transfer(
                    &a,
                    TransferRequest::new(wa.id, wb.number, d("5"), format!("t-{i}"))
                        .description("rent"),
                )
                .await,
        );
    }
    p.outcome(
        &ledger
            .withdraw(&b, WithdrawRequest::new(wb.id, d("1"), "w-1"))
            .await,
    );
    p.outcome(
        &ledger
            .withdraw(&b, WithdrawRequest::new(wb.id, d("1000"), "w-2"))
            .await,
    );
    p.outcome(&ledger.history(&a, HistoryQuery::new(wa.id)).await);
    let until = Timestamp::from_micros(START.as_micros() + 1_000_000_000);
    p.outcome(
        &ledger
            .statement(&a, wa.id, START, until)
            .await
            .map(|s| s.to_csv()),
    );

    // Admin actions and views.
    p.outcome(&ledger.set_active(&admin, b.user, false).await);
    p.outcome(&ledger.set_active(&admin, b.user, true).await);
    p.outcome(&ledger.user(&admin, a.user).await);
    let users = UserQuery {
        role: None,
        kyc: None,
        active: None,
        include_deleted: true,
        before: None,
        limit: 50,
    };
    p.outcome(&ledger.list_users(&admin, users).await);
    p.outcome(
        &ledger
            .list_wallets(
                &admin,
                WalletQuery {
                    status: None,
                    kind: None,
                    currency: None,
                    before: None,
                    limit: 50,
                },
            )
            .await,
    );
    p.outcome(
        &ledger
            .list_transactions(
                &admin,
                TransactionQuery {
                    kind: None,
                    status: None,
                    currency: None,
                    since: None,
                    until: None,
                    before: None,
                    limit: 50,
                },
            )
            .await,
    );
    p.outcome(
        &ledger
            .dashboard(&admin, Period::new(START, until).unwrap())
            .await,
    );
    p.outcome(
        &ledger
            .audit_log(
                &admin,
                AuditQuery {
                    limit: 100,
                    ..AuditQuery::default()
                },
            )
            .await,
    );
    p.outcome(&ledger.events(&admin, 0, 1000).await);
    p.outcome(&ledger.notifications(&a, a.user, false, None, 50).await);
    p.outcome(&ledger.verify(&admin).await);
    p.outcome(&ledger.delete_payment_method(&root, added.id).await);
    p.outcome(&ledger.delete_user(&root, b.user).await);
    clock.advance_micros(1_000_000);

    // The stored hashes: every form of them is a secret too.
    for id in [root.user, a.user, admin.user] {
        let record = store.user(id).await.unwrap().unwrap();
        p.debug(&record);
        let phc = record.password.as_ref().unwrap().as_phc().to_owned();
        for part in phc.split('$').filter(|s| s.len() >= 16) {
            secrets.push(part.to_owned());
        }
        secrets.push(phc);
    }
    let deleted: UserId = b.user;
    p.debug(&store.user(deleted).await.unwrap());
    (p, secrets)
}
