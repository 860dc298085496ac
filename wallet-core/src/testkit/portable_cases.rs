//! Conformance cases of export and import (see [`crate::portable`]), run unchanged by each
//! backend through [`portable_suite!`](crate::portable_suite), plus the helpers a cross-backend
//! test needs ([`populated`], [`assert_copies_exactly`]).
//!
//! Each case takes `make`, a closure returning a future of a fresh, empty store, because a
//! case needs several stores: a source and targets.

use std::collections::BTreeSet;
use std::future::Future;
use std::io::Cursor;
use std::sync::{Arc, Mutex};

use serde_json::json;

use super::identity_cases::card;
use super::payment_cases::{details, exchange_at_0_9};
use super::{Fixture, assert_code, cases, d};
use crate::config::Config;
use crate::error::Result;
use crate::identity::KycStatus;
use crate::ledger::{DepositRequest, TransferRequest, WithdrawRequest};
use crate::payments::{HoldRequest, HoldTarget, LinkRequest, PaymentRequest, RefundRequest};
use crate::portable::{Imported, Portable, Summary, TABLES, reseal};
use crate::store::Store;
use crate::wallet::WalletKind;

const DAY_MICROS: i64 = 24 * 3600 * 1_000_000;

/// A `'static` in-memory output for exports (an export may write from another thread).
#[derive(Debug, Clone, Default)]
pub struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl SharedBuf {
    /// What was written so far.
    pub fn bytes(&self) -> Vec<u8> {
        self.0.lock().unwrap().clone()
    }
}

impl std::io::Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Exports `store` into memory.
pub async fn export_bytes<S: Portable>(store: &S) -> (Vec<u8>, Summary) {
    let out = SharedBuf::default();
    let summary = store.export(out.clone()).await.unwrap();
    (out.bytes(), summary)
}

/// Imports `bytes` into `store`.
pub async fn import_bytes<S: Portable>(store: &S, bytes: Vec<u8>) -> Result<Imported> {
    store.import(Cursor::new(bytes)).await
}

/// Asserts every table of `store` is empty (as its own export counts them).
#[track_caller]
pub fn assert_empty_summary(summary: &Summary, what: &str) {
    let full: Vec<(&str, u64)> = summary
        .counts
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(t, n)| (t.name, n))
        .collect();
    assert!(full.is_empty(), "{what}: the store holds rows: {full:?}");
}

/// Asserts every table of `store` is empty.
pub async fn assert_empty<S: Portable>(store: &S, what: &str) {
    assert_empty_summary(&export_bytes(store).await.1, what);
}

/// Exports `from`, imports the file into the empty `to`, exports `to`, and asserts both files
/// are byte for byte the same. Returns the file.
pub async fn assert_copies_exactly<A: Portable, B: Portable>(from: &A, to: &B) -> Vec<u8> {
    let (file, written) = export_bytes(from).await;
    let imported = import_bytes(to, file.clone()).await.unwrap();
    assert_eq!(imported.summary, written);
    assert!(imported.report.is_ok());
    let (again, rewritten) = export_bytes(to).await;
    assert_eq!(rewritten, written);
    if again != file {
        let first = file
            .split(|b| *b == b'\n')
            .zip(again.split(|b| *b == b'\n'))
            .position(|(a, b)| a != b);
        panic!("the copy exports differently, from line {first:?} (0-based)");
    }
    file
}

/// The configuration of [`populated`]: limits out of the way, a USD/EUR reference rate.
pub fn populated_config() -> Config {
    Config::default()
        .with_default_limits(super::unlimited())
        .unwrap()
        .with_reference_rate("USD", "EUR", d("0.9"))
        .unwrap()
}

/// A ledger with a row in every table: users (one deleted), payment methods, wallets in two
/// currencies, deposits with text and metadata that need escaping, transfers, an exchange,
/// holds (open, captured, voided), pending top-ups (open and completed), a partial refund, a
/// merchant paid for an order, payment links (paid and open), limits, notifications (some
/// read), events and audit records.
pub async fn populated<S: Store + Clone>(store: S) -> Fixture<S> {
    let f = Fixture::with_config(store, populated_config()).await;
    let l = &f.ledger;
    let alice = f.user().await;
    let bob = f.user().await;
    let shop = f.user().await;
    let a = f.funded(&alice, "USD", "500").await;
    let b = f.funded(&bob, "USD", "100").await;
    let eur = f.wallet(&alice, "EUR").await;
    l.deposit(
        &alice,
        DepositRequest::new(a.id, d("12.34"), f.key())
            .description("Café \"Zoë\" — tips ✓ \\ done")
            .metadata(json!({"order": "A-1", "nested": {"quote": "\"", "n": 1}})),
    )
    .await
    .unwrap();
    let rent = l
        .transfer(
            &alice,
            TransferRequest::new(a.id, b.number, d("120.50"), f.key()).description("Rent"),
        )
        .await
        .unwrap();
    l.refund(
        &bob,
        RefundRequest {
            transaction: rent.transaction.reference,
            amount: Some(d("20")),
            description: Some("Partial refund".into()),
            idempotency_key: f.key(),
        },
    )
    .await
    .unwrap();
    l.withdraw(&bob, WithdrawRequest::new(b.id, d("10"), f.key()))
        .await
        .unwrap();
    l.exchange(&alice, exchange_at_0_9(&a, &eur, "10", f.key()))
        .await
        .unwrap();
    // Holds: one open, one captured in part, one voided.
    let hold = |amount: &str, target: HoldTarget| HoldRequest {
        wallet: a.id.into(),
        target,
        details: details(amount, f.key()),
        ttl_micros: Some(DAY_MICROS),
    };
    l.hold(&alice, hold("15", HoldTarget::Outside))
        .await
        .unwrap();
    let captured = l
        .hold(&alice, hold("30", HoldTarget::Wallet(b.id.into())))
        .await
        .unwrap();
    l.capture(&bob, captured.transaction.reference, Some(d("25")))
        .await
        .unwrap();
    let voided = l
        .hold(&alice, hold("5", HoldTarget::Outside))
        .await
        .unwrap();
    l.cancel(&alice, voided.transaction.reference)
        .await
        .unwrap();
    // Pending top-ups: one confirmed by the gateway, one still open.
    l.top_up_pending(&bob, DepositRequest::new(b.id, d("40"), f.key()), "gw-1")
        .await
        .unwrap();
    l.gateway_callback(&f.admin, "gw-1", true).await.unwrap();
    l.top_up_pending(&bob, DepositRequest::new(b.id, d("7"), f.key()), "gw-2")
        .await
        .unwrap();
    // A merchant paid for an order.
    let till = f.wallet_of_kind(&shop, WalletKind::Business, "USD").await;
    let merchant = l
        .register_merchant(&shop, till.id, "Corner Shop")
        .await
        .unwrap();
    l.pay_merchant(
        &alice,
        PaymentRequest {
            from: a.id.into(),
            merchant: merchant.id,
            order: "order-1".into(),
            details: details("9.99", f.key()),
        },
    )
    .await
    .unwrap();
    // Payment links: one paid, one open.
    let link = |amount: &str| LinkRequest {
        wallet: till.id.into(),
        amount: d(amount),
        description: Some("Invoice".into()),
        ttl_micros: DAY_MICROS,
        idempotency_key: f.key(),
    };
    let paid = l.create_link(&shop, link("12.50")).await.unwrap();
    l.pay_link(&bob, b.id, &paid.code.to_string(), &f.key())
        .await
        .unwrap();
    l.create_link(&shop, link("3")).await.unwrap();
    // Limits, payment methods, notifications read, a deleted user.
    l.set_limits(&f.admin, a.id, Some((d("400"), d("800"), d("5000"))))
        .await
        .unwrap();
    l.add_payment_method(&alice, alice.user, card("4242", 12, 2030, Some("Travel")))
        .await
        .unwrap();
    l.mark_read(&alice, alice.user, None).await.unwrap();
    let carol = f.unverified_user().await;
    f.wallet(&carol, "USD").await;
    l.review_kyc(&f.admin, carol.user, KycStatus::Rejected, "blurry")
        .await
        .unwrap();
    l.delete_user(&f.root, carol.user).await.unwrap();
    f.clock.advance_micros(1_000_000);
    f.assert_verified().await;
    f
}

/// A populated ledger copies exactly, every table included, and the copy is a working ledger.
pub async fn populated_ledgers_copy_exactly<S, F, Fut>(make: F)
where
    S: Portable + Clone,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let source = populated(make().await).await;
    let alice = source.user().await;
    let w = source.funded(&alice, "USD", "10").await;
    let before_export = source
        .ledger
        .deposit(&alice, DepositRequest::new(w.id, d("5"), "before-export"))
        .await
        .unwrap();
    let target = make().await;
    let file = assert_copies_exactly(&source.store, &target).await;
    let (_, summary) = export_bytes(&target).await;
    for (table, rows) in summary.counts.iter() {
        assert!(rows > 0, "populated() leaves {} empty", table.name);
    }
    assert_eq!(summary.rows, summary.counts.total());
    assert_eq!(
        summary.rows,
        u64::try_from(file.iter().filter(|b| **b == b'\n').count() - 2).unwrap()
    );

    // The copy is a working ledger: passwords, balances, idempotency keys and ids carry over.
    let copy =
        crate::ledger::Ledger::with_clock(target.clone(), populated_config(), source.clock.clone())
            .await
            .unwrap()
            .with_auth(super::fast_auth(), Some(super::test_secret()))
            .unwrap();
    let session = copy
        .login(
            "user1@example.com",
            crate::auth::Password::new(super::PASSWORD),
        )
        .await
        .unwrap();
    let user1 = copy.authenticate(session.token.expose()).await.unwrap();
    for original in source
        .ledger
        .wallets_of(&source.admin, user1.user)
        .await
        .unwrap()
    {
        assert_eq!(copy.wallet(&user1, original.id).await.unwrap(), original);
    }
    let replay = copy
        .deposit(&alice, DepositRequest::new(w.id, d("5"), "before-export"))
        .await
        .unwrap();
    assert!(replay.replayed);
    assert_eq!(replay.transaction.id, before_export.transaction.id);
    let after = WithdrawRequest::new(w.id, d("1"), "after-import");
    let in_copy = copy.withdraw(&alice, after.clone()).await.unwrap();
    let in_source = source.ledger.withdraw(&alice, after).await.unwrap();
    assert_eq!(in_copy.transaction.id, in_source.transaction.id);
    assert!(copy.verify(&source.admin).await.unwrap().is_ok());
}

/// The stores left by conformance cases across the library's features copy exactly; between
/// them they fill every table.
pub async fn conformance_ledgers_copy_exactly<S, F, Fut>(make: F)
where
    S: Portable + Clone,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let mut filled = BTreeSet::new();
    macro_rules! copy_after {
        ($($case:ident),+ $(,)?) => {$(
            let source = make().await;
            cases::$case(source.clone()).await;
            let target = make().await;
            assert_copies_exactly(&source, &target).await;
            let (_, summary) = export_bytes(&target).await;
            filled.extend(summary.counts.iter().filter(|(_, n)| *n > 0).map(|(t, _)| t.name));
        )+};
    }
    copy_after!(
        custom_assets_have_their_own_precision,
        clock_stepping_back_keeps_entries_ordered,
        deleting_a_user_erases_them_and_keeps_the_ledger,
        payment_methods_lifecycle,
        audit_log_filters_and_paginates,
        pending_top_ups_follow_the_gateway,
        holds_reserve_then_capture_void_or_expire,
        refunds_reverse_exactly_the_original,
        fees_are_collected_in_the_same_transaction,
        merchants_are_paid_once_per_order,
        exchange_keeps_every_currency_balanced,
        batches_apply_all_or_nothing,
        limits_follow_the_local_calendar,
        payment_links_are_paid_once,
        notifications_and_events_record_every_change,
    );
    let all: BTreeSet<&str> = TABLES.iter().map(|t| t.name).collect();
    assert_eq!(filled, all);
}

/// An empty store exports a header and a trailer, and that file imports into an empty store.
pub async fn empty_stores_copy_exactly<S, F, Fut>(make: F)
where
    S: Portable,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let file = assert_copies_exactly(&make().await, &make().await).await;
    assert_eq!(file.split(|b| *b == b'\n').count(), 3);
}

/// Makes a damaged file from the lines of a good one.
type Damage = Box<dyn Fn(&[String]) -> Vec<u8>>;

/// The lines of a file, each with its newline.
fn lines(file: &[u8]) -> Vec<String> {
    String::from_utf8(file.to_vec())
        .unwrap()
        .split_inclusive('\n')
        .map(str::to_owned)
        .collect()
}

/// Where the first row of `table` is.
fn first_row(lines: &[String], table: &str) -> usize {
    let prefix = format!("{{\"t\":\"{table}\"");
    lines.iter().position(|l| l.starts_with(&prefix)).unwrap()
}

/// `line` with value `column` of its row replaced by `value`.
fn with_value(line: &str, column: usize, value: serde_json::Value) -> String {
    let mut row: serde_json::Value = serde_json::from_str(line).unwrap();
    row["r"][column] = value;
    format!("{row}\n")
}

/// The file with its lines edited, the trailer left as it was (the checksum catches it).
fn edited(edit: impl Fn(&mut Vec<String>) + 'static) -> Damage {
    Box::new(move |ls| {
        let mut ls = ls.to_vec();
        edit(&mut ls);
        ls.concat().into_bytes()
    })
}

/// The file's lines before the trailer, edited, with a new trailer that matches them: only the
/// checks behind the checksum (structure, schema constraints, the ledger's own verification)
/// can catch it.
fn resealed(edit: impl Fn(&mut Vec<String>) + 'static) -> Damage {
    Box::new(move |ls| {
        let mut ls = ls[..ls.len() - 1].to_vec();
        edit(&mut ls);
        reseal(ls.concat().as_bytes())
    })
}

/// Every kind of damage, with what it does.
fn damages() -> Vec<(&'static str, Damage)> {
    vec![
        (
            "a digit flipped in a row (only the checksum can tell)",
            Box::new(|ls| {
                let mut file = ls.concat().into_bytes();
                // The last digit of the first entry's running debit total, before `]}\n`.
                let at = ls[..=first_row(ls, "entries")].concat().len() - 4;
                file[at] = if file[at] == b'1' { b'2' } else { b'1' };
                file
            }),
        ),
        (
            "a line dropped",
            edited(|ls| drop(ls.remove(first_row(ls, "transactions") + 1))),
        ),
        (
            "truncated mid-file",
            Box::new(|ls| {
                let file = ls.concat().into_bytes();
                file[..file.len() / 2].to_vec()
            }),
        ),
        (
            "truncated at a line boundary",
            edited(|ls| ls.truncate(ls.len() / 2)),
        ),
        ("the trailer removed", edited(|ls| drop(ls.pop()))),
        (
            "a line after the trailer",
            edited(|ls| ls.push(ls[1].clone())),
        ),
        (
            "a header count changed",
            edited(|ls| ls[0] = ls[0].replacen("\"users\":", "\"users\":1", 1)),
        ),
        (
            "resealed: a header count changed",
            resealed(|ls| ls[0] = ls[0].replacen("\"entries\":", "\"entries\":1", 1)),
        ),
        (
            "resealed: tables reordered",
            resealed(|ls| {
                let (w, t) = (first_row(ls, "wallets"), first_row(ls, "transactions"));
                let wallets: Vec<String> = ls.drain(w..t).collect();
                let at = first_row(ls, "entries");
                ls.splice(at..at, wallets);
            }),
        ),
        (
            "resealed: a row dropped",
            resealed(|ls| drop(ls.remove(first_row(ls, "entries")))),
        ),
        (
            "resealed: a balance changed (the ledger no longer verifies)",
            resealed(|ls| {
                let i = first_row(ls, "entries");
                ls[i] = with_value(&ls[i], 4, json!(999_999_999));
            }),
        ),
        (
            "resealed: an open hold's amount changed (held no longer matches)",
            resealed(|ls| {
                let i = first_row(ls, "pending");
                ls[i] = with_value(&ls[i], 4, json!(1));
            }),
        ),
        (
            "resealed: an entry of a wallet that does not exist (foreign key)",
            resealed(|ls| {
                let i = first_row(ls, "pending") - 1;
                ls[i] = with_value(&ls[i], 0, json!(1_000_000));
            }),
        ),
        (
            "resealed: two users with one username (unique)",
            resealed(|ls| {
                let i = first_row(ls, "users");
                let name: serde_json::Value = serde_json::from_str(&ls[i]).unwrap();
                ls[i + 1] = with_value(&ls[i + 1], 1, name["r"][1].clone());
            }),
        ),
        (
            "resealed: a null where the schema forbids it",
            resealed(|ls| {
                let i = first_row(ls, "events");
                ls[i] = with_value(&ls[i], 2, serde_json::Value::Null);
            }),
        ),
        ("empty input", Box::new(|_| Vec::new())),
        ("another file", Box::new(|_| b"id,amount\n1,100\n".to_vec())),
    ]
}

/// Every kind of damaged file is refused with `import_invalid`, and the target stays empty
/// (and usable: the good file imports into it afterwards).
pub async fn damaged_files_are_refused_and_store_nothing<S, F, Fut>(make: F)
where
    S: Portable + Clone,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let source = populated(make().await).await;
    let (file, _) = export_bytes(&source.store).await;
    let good = lines(&file);
    let target = make().await;
    for (what, damage) in damages() {
        let bad = damage(&good);
        assert_ne!(bad, file, "{what}: the damage changed nothing");
        match import_bytes(&target, bad).await {
            Err(e) => assert_eq!(e.code(), "import_invalid", "{what}: {e}"),
            Ok(_) => panic!("{what}: the damaged file was imported"),
        }
        assert_empty(&target, what).await;
    }
    let imported = import_bytes(&target, file.clone()).await.unwrap();
    assert!(imported.report.is_ok());
    assert_eq!(export_bytes(&target).await.0, file);
}

/// A store holding anything refuses an import, and keeps what it holds.
pub async fn non_empty_stores_are_refused<S, F, Fut>(make: F)
where
    S: Portable + Clone,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let source = populated(make().await).await;
    let (file, _) = export_bytes(&source.store).await;
    // A store with a single user (the bootstrapped one).
    let target = Fixture::new(make().await).await;
    let (before, _) = export_bytes(&target.store).await;
    assert_code(
        import_bytes(&target.store, file.clone()).await,
        "store_not_empty",
    );
    assert_eq!(export_bytes(&target.store).await.0, before);
    // A store holding an imported ledger.
    assert_code(
        import_bytes(&source.store, file.clone()).await,
        "store_not_empty",
    );
    let copy = make().await;
    import_bytes(&copy, file.clone()).await.unwrap();
    assert_code(import_bytes(&copy, file.clone()).await, "store_not_empty");
    assert_eq!(export_bytes(&copy).await.0, file);
}

/// An export reads one snapshot: writes that run meanwhile all succeed, and the file, taken
/// in the middle of them, imports and verifies.
pub async fn exports_are_snapshots_while_writes_continue<S, F, Fut>(make: F)
where
    S: Portable + Clone,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let f = populated(make().await).await;
    let alice = f.user().await;
    let bob = f.user().await;
    let a = f.funded(&alice, "USD", "1000").await;
    let b = f.wallet(&bob, "USD").await;
    for _ in 0..200 {
        f.ledger
            .transfer(&alice, TransferRequest::new(a.id, b.id, d("0.01"), f.key()))
            .await
            .unwrap();
    }
    let ledger = f.ledger.clone();
    let keys: Vec<String> = (0..300).map(|_| f.key()).collect();
    let writes = tokio::spawn(async move {
        for key in keys {
            ledger
                .transfer(&alice, TransferRequest::new(a.id, b.id, d("0.01"), key))
                .await
                .unwrap();
        }
    });
    let mut files = Vec::new();
    for _ in 0..5 {
        files.push(export_bytes(&f.store).await.0);
        tokio::task::yield_now().await;
    }
    writes.await.unwrap();
    files.push(export_bytes(&f.store).await.0);
    for file in files {
        let target = make().await;
        let imported = import_bytes(&target, file).await.unwrap();
        assert!(imported.report.is_ok());
    }
}

/// Expands to one test per portable-format case. `$make` is a closure returning a future of a
/// fresh, empty store: `|| async { … }`. The store type must implement
/// [`Portable`](crate::portable::Portable).
#[macro_export]
macro_rules! portable_suite {
    ($make:expr) => {
        $crate::portable_suite!(@cases $make;
            populated_ledgers_copy_exactly,
            conformance_ledgers_copy_exactly,
            empty_stores_copy_exactly,
            damaged_files_are_refused_and_store_nothing,
            non_empty_stores_are_refused,
            exports_are_snapshots_while_writes_continue,
        );
    };
    (@cases $make:expr; $($case:ident),+ $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::testkit::portable_cases::$case($make).await;
            }
        )+
    };
}
