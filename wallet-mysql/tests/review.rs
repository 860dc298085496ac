//! Review findings: each test shows a concurrency or failure bug of the MySQL backend (and,
//! once fixed, guards the fix) against a real server.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use std::sync::Arc;
use std::time::Duration;

use wallet_core::store::Store;
use wallet_core::testkit::d;
use wallet_core::testkit::registration;
use wallet_core::testkit::storage::{funded_wallets, ledger};
use wallet_core::{Actor, DepositRequest, UserId};
use wallet_mysql::{ConnectOptions, MySqlStore};

/// Two stores (two processes) on one fresh database; the database goes with the first.
async fn two_stores(options: ConnectOptions) -> (MySqlStore, MySqlStore) {
    let name = common::fresh_database().await;
    let a = MySqlStore::connect(&common::app_url(&name), options.clone())
        .await
        .unwrap()
        .with_guard(common::DropDatabase(name.clone()));
    let b = MySqlStore::connect(&common::app_url(&name), options)
        .await
        .unwrap();
    (a, b)
}

/// Bootstrap creates the first SUPERUSER "only while no active SUPERUSER exists". With no
/// SUPERUSER row there is nothing for `lock_superusers` to lock (READ COMMITTED takes no gap
/// locks), so concurrent bootstraps with different usernames all saw zero and all succeeded:
/// several anonymous callers became SUPERUSER.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_bootstraps_create_one_superuser() {
    for round in 0..3 {
        let (a, b) = two_stores(common::test_options()).await;
        let ledgers = [Arc::new(ledger(a).await), Arc::new(ledger(b).await)];
        let mut handles = Vec::new();
        for i in 0..12 {
            let ledger = Arc::clone(&ledgers[i % 2]);
            handles.push(tokio::spawn(async move {
                ledger
                    .bootstrap(registration(&format!("root{round}x{i}")))
                    .await
            }));
        }
        let mut created = 0;
        for h in handles {
            match h.await.unwrap() {
                Ok(_) => created += 1,
                Err(e) => assert_eq!(e.code(), "already_bootstrapped", "{e:?}"),
            }
        }
        assert_eq!(created, 1, "round {round}: {created} bootstraps succeeded");
    }
}

/// A read that runs in a snapshot (`START TRANSACTION WITH CONSISTENT SNAPSHOT` sent as plain
/// SQL) and is cancelled half-way (a caller's timeout, an HTTP client gone) returned its
/// connection to the pool with the transaction still open: sqlx did not know about it, so it
/// queued no rollback. Every later plain read on that connection then ran inside the old
/// REPEATABLE READ snapshot (stale balances; a user's old `token_version`, so a revoked
/// session still authenticated), and every later snapshot read failed with "transaction
/// characteristics can't be changed while a transaction is in progress".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_snapshot_read_leaves_no_open_transaction() {
    // One connection in process A, so the cancelled read's connection is the next one used.
    let options = ConnectOptions {
        max_connections: 1,
        min_connections: 0,
        ..common::test_options()
    };
    let (a, b) = two_stores(options).await;
    let la = ledger(a.clone()).await;
    let lb = ledger(b.clone()).await;
    // Enough entries that verify() takes a while, so a timeout lands inside it.
    let funded = funded_wallets(&lb, 30, "10.00").await;
    let (who, wallet) = funded[0];
    for step in 0..60u64 {
        let timeout = Duration::from_micros(200 + step * 150);
        let admin = Actor::new(UserId::new(9_999).unwrap(), wallet_core::Role::Admin);
        let cut = tokio::time::timeout(timeout, la.verify(&admin))
            .await
            .is_err();
        if !cut {
            continue;
        }
        // Process B moves money; process A must see it on its next read.
        let before = b.wallet(wallet).await.unwrap().unwrap().head.balance_minor;
        lb.deposit(
            &who,
            DepositRequest::new(wallet, d("0.01"), format!("s{step}")),
        )
        .await
        .unwrap();
        let seen = a.wallet(wallet).await.unwrap().unwrap().head.balance_minor;
        assert_eq!(
            seen,
            before + 1,
            "step {step}: process A read a stale balance after a cancelled snapshot read"
        );
        // Snapshot reads on the same connection keep working.
        a.verify().await.unwrap();
    }
}

/// A command's transaction is opened and ended with plain SQL (its reads and its writes each
/// go as one multi-statement query), so sqlx does not know of it: a command cancelled half-way
/// must not return its connection to the pool inside the open transaction, holding its
/// wallets' locks. Transfers cut at every point, on a pool of one connection, are followed by
/// transfers between the same wallets (which would wait for those locks and give up with
/// `StorageBusy`) and by reads of process B's moves (which would be stale).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_command_leaves_no_open_transaction() {
    let options = ConnectOptions {
        max_connections: 1,
        min_connections: 0,
        lock_wait_timeout: Duration::from_secs(1),
        retries: 2,
        ..common::test_options()
    };
    let (a, b) = two_stores(options).await;
    let la = ledger(a.clone()).await;
    let lb = ledger(b.clone()).await;
    let funded = funded_wallets(&lb, 2, "100.00").await;
    let ((alice, from), (bob, to)) = (funded[0], funded[1]);
    let mut cuts = 0;
    for step in 0..80u64 {
        let timeout = Duration::from_micros(100 + step * 50);
        let transfer = wallet_core::TransferRequest::new(from, to, d("0.01"), format!("c{step}"));
        let cut = tokio::time::timeout(timeout, la.transfer(&alice, transfer))
            .await
            .is_err();
        if !cut {
            continue;
        }
        cuts += 1;
        // Process B first: it would wait for locks an idle connection of A still held.
        let before = b.wallet(to).await.unwrap().unwrap().head.balance_minor;
        lb.deposit(&bob, DepositRequest::new(to, d("0.01"), format!("d{step}")))
            .await
            .unwrap_or_else(|e| panic!("step {step}: deposit in process B: {e:?}"));
        let seen = a.wallet(to).await.unwrap().unwrap().head.balance_minor;
        assert!(seen > before, "step {step}: stale read after a cut command");
        let done = la
            .transfer(
                &alice,
                wallet_core::TransferRequest::new(from, to, d("0.01"), format!("n{step}")),
            )
            .await;
        assert!(
            done.is_ok(),
            "step {step}: transfer after a cut one: {done:?}"
        );
    }
    assert!(cuts > 0, "no transfer was cut: the timeouts are too long");
    let report = a.verify().await.unwrap();
    assert!(report.is_ok(), "{report:?}");
}

/// Kills every connection to database `db` (idle pooled ones included), and only those:
/// other tests run at the same time as the same user.
async fn kill_connections_to(db: &str) -> usize {
    use sqlx::Executor;
    let mut admin = common::admin().await;
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM information_schema.processlist WHERE user = 'wallet_test_app' AND db = ?",
    )
    .bind(db)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    for id in &ids {
        let _ = admin
            .execute(format!("KILL CONNECTION {id}").as_str())
            .await;
    }
    ids.len()
}

/// A pooled connection the server closed while it sat idle (a restart, a failover, an
/// operator's KILL, `wait_timeout`) is replaced: the next read and the next command succeed,
/// as lib.rs and writer.rs promise ("nothing was sent that the server acted on").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_killed_by_the_server_are_replaced() {
    let options = ConnectOptions {
        max_connections: 2,
        min_connections: 0,
        ..common::test_options()
    };
    let name = common::fresh_database().await;
    let a = MySqlStore::connect(&common::app_url(&name), options)
        .await
        .unwrap()
        .with_guard(common::DropDatabase(name.clone()));
    let l = ledger(a.clone()).await;
    let funded = funded_wallets(&l, 2, "10.00").await;
    let (who, wallet) = funded[0];
    for round in 0..3 {
        assert!(kill_connections_to(&name).await > 0);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let read = a.wallet(wallet).await;
        assert!(read.is_ok(), "round {round}: read after a kill: {read:?}");
        assert!(kill_connections_to(&name).await > 0);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let wrote = l
            .deposit(
                &who,
                DepositRequest::new(wallet, d("0.01"), format!("k{round}")),
            )
            .await;
        assert!(
            wrote.is_ok(),
            "round {round}: command after a kill: {wrote:?}"
        );
    }
}

/// Readers paging the event feed by position while writers in two processes commit: each
/// reader ends up with every event exactly once, in order (the sequencer of events.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn event_readers_miss_nothing_and_see_nothing_twice() {
    let (a, b) = two_stores(common::test_options()).await;
    let ledgers = [
        Arc::new(ledger(a.clone()).await),
        Arc::new(ledger(b.clone()).await),
    ];
    let funded = funded_wallets(&ledgers[0], 8, "1000.00").await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for r in 0..4 {
        let store = if r % 2 == 0 { a.clone() } else { b.clone() };
        let stop = Arc::clone(&stop);
        readers.push(tokio::spawn(async move {
            let mut seen: Vec<i64> = Vec::new();
            let mut after = 0;
            loop {
                let done = stop.load(std::sync::atomic::Ordering::Acquire);
                let page = store.events(after, 7).await.unwrap();
                for e in &page {
                    assert!(e.id > after, "reader {r}: {} after {after}", e.id);
                    after = e.id;
                    seen.push(e.id);
                }
                if done && page.is_empty() {
                    break;
                }
            }
            seen
        }));
    }
    let mut writers = Vec::new();
    for t in 0..8usize {
        let ledger = Arc::clone(&ledgers[t % 2]);
        let funded = funded.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..40usize {
                let from = (t + i) % funded.len();
                let to = (from + 1 + i % 3) % funded.len();
                let req = wallet_core::TransferRequest::new(
                    funded[from].1,
                    funded[to].1,
                    d("0.01"),
                    format!("e{t}-{i}"),
                );
                ledger.transfer(&funded[from].0, req).await.unwrap();
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Release);
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = a.events(after, 500).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.id;
        all.extend(page.iter().map(|e| e.id));
    }
    for r in readers {
        let seen = r.await.unwrap();
        assert_eq!(seen, all, "a reader's feed differs from the whole feed");
    }
}

/// The transactions in an export file and the transactions its event feed speaks of.
fn transactions_and_their_events(
    bytes: Vec<u8>,
) -> (Vec<String>, std::collections::HashSet<String>) {
    use wallet_core::portable::{Reader, Value};
    let mut txns = Vec::new();
    let mut subjects = std::collections::HashSet::new();
    Reader::new(std::io::Cursor::new(bytes))
        .unwrap()
        .for_each_row(|row| {
            match (row.table.name, row.values.first()) {
                ("transactions", Some(Value::Int(id))) => {
                    let id = wallet_core::TransactionId::new(*id).unwrap();
                    txns.push(format!(
                        "transaction:{}",
                        wallet_core::TransactionRef::of(id)
                    ));
                }
                ("events", _) => {
                    let i = row.table.columns.iter().position(|c| c.name == "subject");
                    if let Some(Value::Text(s)) = i.and_then(|i| row.values.get(i)) {
                        subjects.insert(s.clone());
                    }
                }
                _ => {}
            }
            Ok(())
        })
        .unwrap();
    (txns, subjects)
}

/// An export is one snapshot, and its feed holds the events of every transaction in it.
/// `export` numbered the committed events, then opened its snapshot: an event committed in
/// between was in the snapshot but had no number yet, so the file left it out while holding
/// its transaction. Imported elsewhere, that event is lost for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn export_holds_the_events_of_every_exported_transaction() {
    use wallet_core::testkit::portable_cases::export_bytes;
    let (a, b) = two_stores(common::test_options()).await;
    let ledgers = [
        Arc::new(ledger(a.clone()).await),
        Arc::new(ledger(b.clone()).await),
    ];
    let funded = funded_wallets(&ledgers[0], 8, "1000.00").await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for t in 0..8usize {
        let ledger = Arc::clone(&ledgers[t % 2]);
        let funded = funded.clone();
        let stop = Arc::clone(&stop);
        writers.push(tokio::spawn(async move {
            let mut i = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let from = (t + i) % funded.len();
                let to = (from + 1) % funded.len();
                let req = wallet_core::TransferRequest::new(
                    funded[from].1,
                    funded[to].1,
                    d("0.01"),
                    format!("x{t}-{i}"),
                );
                ledger.transfer(&funded[from].0, req).await.unwrap();
                i += 1;
            }
        }));
    }
    let mut failures = Vec::new();
    for round in 0..25 {
        let (bytes, _) = export_bytes(&a).await;
        let (txns, subjects) = transactions_and_their_events(bytes);
        let missing = txns.iter().filter(|t| !subjects.contains(*t)).count();
        if missing > 0 {
            failures.push((round, missing, txns.len()));
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    assert!(
        failures.is_empty(),
        "(round, transactions without their event, transactions): {failures:?}"
    );
}

/// A file whose rows break the schema early (two users with one username) and that has many
/// rows after them: the failed insert stops taking rows while the parser still sends them,
/// and the import answered with the parser's "internal error: the import stopped reading
/// rows" instead of `import_invalid` naming the line. The store stays empty either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_reports_the_broken_row_not_the_stopped_parser() {
    use wallet_core::portable::reseal;
    use wallet_core::testkit::portable_cases::{assert_empty, export_bytes, import_bytes};
    let source = common::fresh_store().await;
    let l = ledger(source.clone()).await;
    funded_wallets(&l, 2, "1.00").await;
    let (file, _) = export_bytes(&source).await;
    let text = String::from_utf8(file).unwrap();
    let mut lines: Vec<String> = text.lines().map(|l| format!("{l}\n")).collect();
    lines.pop(); // the trailer: resealed below
    // The second user takes the first one's username.
    let users: Vec<usize> = (0..lines.len())
        .filter(|i| lines[*i].starts_with("{\"t\":\"users\""))
        .collect();
    let mut first: serde_json::Value = serde_json::from_str(&lines[users[0]]).unwrap();
    let mut second: serde_json::Value = serde_json::from_str(&lines[users[1]]).unwrap();
    second["r"][1] = first["r"][1].take();
    lines[users[1]] = format!("{}\n", serde_json::to_string(&second).unwrap());
    // Many audit records after everything else.
    let audit: Vec<usize> = (0..lines.len())
        .filter(|i| lines[*i].starts_with("{\"t\":\"audit_log\""))
        .collect();
    let template: serde_json::Value = serde_json::from_str(&lines[*audit.last().unwrap()]).unwrap();
    let mut next = template["r"][0].as_i64().unwrap();
    let extra = 10_000;
    for _ in 0..extra {
        next += 1;
        let mut row = template.clone();
        row["r"][0] = next.into();
        lines.push(format!("{}\n", serde_json::to_string(&row).unwrap()));
    }
    let old = format!("\"audit_log\":{}}}", audit.len());
    assert!(lines[0].contains(&old), "{}", lines[0]);
    lines[0] = lines[0].replace(&old, &format!("\"audit_log\":{}}}", audit.len() + extra));
    let bad = reseal(lines.concat().as_bytes());
    let target = common::fresh_store().await;
    let e = import_bytes(&target, bad).await.unwrap_err();
    assert_eq!(e.code(), "import_invalid", "{e}");
    assert_empty(&target, "after the refused import").await;
}

/// Holds placed, captured, voided, lapsing and expired, transfers and refunds, all at once
/// through two processes on four wallets: every answer is a typed business refusal or a
/// success, and the ledger verifies afterwards (balances re-added, `held` equal to the open
/// holds) with the customers' money conserved.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn holds_captures_expiry_and_refunds_race_without_breaking_the_ledger() {
    use rand::rngs::SmallRng;
    use rand::{RngExt, SeedableRng};
    use std::sync::Mutex;
    use wallet_core::payments::{HoldRequest, HoldTarget, RefundRequest};
    use wallet_core::{MoveDetails, TransactionRef, TransferRequest};

    let (a, b) = two_stores(common::test_options()).await;
    let ledgers = [Arc::new(ledger(a).await), Arc::new(ledger(b).await)];
    let root = ledgers[0].bootstrap(registration("root")).await.unwrap();
    let root = Actor::new(root.id, root.role);
    let funded = funded_wallets(&ledgers[0], 4, "100.00").await;
    // (hold, payer), (completed transfer, payee)
    let holds: Arc<Mutex<Vec<(TransactionRef, Actor)>>> = Arc::default();
    let paid: Arc<Mutex<Vec<(TransactionRef, Actor)>>> = Arc::default();
    let unexpected: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut tasks = Vec::new();
    for t in 0..8u64 {
        let ledger = Arc::clone(&ledgers[(t % 2) as usize]);
        let (funded, holds, paid, unexpected) = (
            funded.clone(),
            Arc::clone(&holds),
            Arc::clone(&paid),
            Arc::clone(&unexpected),
        );
        tasks.push(tokio::spawn(async move {
            let mut rng = SmallRng::seed_from_u64(7 + t);
            for i in 0..80 {
                let key = format!("c{t}-{i}");
                let from = rng.random_range(0..funded.len());
                let to = (from + rng.random_range(1..funded.len())) % funded.len();
                let (payer, wallet) = funded[from];
                let (payee, target) = funded[to];
                let amount = wallet_core::Decimal::new(rng.random_range(1..=3_000i64), 2);
                let pick = |v: &Arc<Mutex<Vec<(TransactionRef, Actor)>>>, rng: &mut SmallRng| {
                    let v = v.lock().unwrap();
                    (!v.is_empty()).then(|| v[rng.random_range(0..v.len())])
                };
                let result = match rng.random_range(0..6) {
                    0 => {
                        let req = HoldRequest {
                            wallet: wallet.into(),
                            target: HoldTarget::Wallet(target.into()),
                            details: MoveDetails {
                                amount,
                                description: None,
                                metadata: None,
                                idempotency_key: key,
                            },
                            ttl_micros: Some(rng.random_range(5_000..300_000)),
                        };
                        ledger.hold(&payer, req).await.map(|r| {
                            holds.lock().unwrap().push((r.transaction.reference, payer));
                        })
                    }
                    1 => match pick(&holds, &mut rng) {
                        Some((h, who)) => {
                            let part = rng.random_bool(0.5).then(|| d("0.01"));
                            ledger.capture(&who, h, part).await.map(|r| {
                                let owner = funded
                                    .iter()
                                    .find(|(_, w)| {
                                        r.transaction
                                            .legs
                                            .iter()
                                            .any(|l| l.amount.minor() > 0 && l.wallet == *w)
                                    })
                                    .map(|(a, _)| *a);
                                if let Some(owner) = owner {
                                    paid.lock().unwrap().push((r.transaction.reference, owner));
                                }
                            })
                        }
                        None => Ok(()),
                    },
                    2 => match pick(&holds, &mut rng) {
                        Some((h, who)) => ledger.cancel(&who, h).await.map(|_| ()),
                        None => Ok(()),
                    },
                    3 => ledger
                        .transfer(&payer, TransferRequest::new(wallet, target, amount, key))
                        .await
                        .map(|r| {
                            paid.lock().unwrap().push((r.transaction.reference, payee));
                        }),
                    4 => match pick(&paid, &mut rng) {
                        Some((p, who)) => {
                            let req = RefundRequest {
                                transaction: p,
                                amount: rng.random_bool(0.5).then(|| d("0.01")),
                                description: None,
                                idempotency_key: key,
                            };
                            ledger.refund(&who, req).await.map(|_| ())
                        }
                        None => Ok(()),
                    },
                    _ => ledger.expire_due(&root, 100).await.map(|_| ()),
                };
                if let Err(e) = result {
                    let fine = [
                        "insufficient_funds",
                        "not_pending",
                        "pending_expired",
                        "refund_exceeds_original",
                        "not_refundable",
                    ];
                    if !fine.contains(&e.code()) {
                        unexpected
                            .lock()
                            .unwrap()
                            .push(format!("{}: {e}", e.code()));
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let report = ledgers[1].verify(&root).await.unwrap();
    assert!(report.is_ok(), "{report:#?}");
    let usd = wallet_core::Currency::iso("USD").unwrap().code();
    assert_eq!(
        report.customer_balances[&usd],
        4 * 10_000,
        "money conserved"
    );
    let unexpected = unexpected.lock().unwrap();
    assert!(unexpected.is_empty(), "{unexpected:#?}");
}

/// Pending top-ups lapsing while the gateway's verdicts arrive twice (through both
/// processes, success and failure) and an expiry sweep runs: each top-up ends in exactly one
/// state, every verdict accepted agrees with it, and the wallet holds exactly the completed
/// ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gateway_verdicts_race_expiry_and_each_other() {
    use rand::rngs::SmallRng;
    use rand::{RngExt, SeedableRng};
    use wallet_core::testkit::{fast_auth, unlimited};
    use wallet_core::{Config, KycPolicy, Ledger, OpenWalletRequest, TransactionStatus};

    let config = Config::default()
        .with_kyc_policy(KycPolicy {
            top_up: true,
            send: true,
            withdraw: true,
        })
        .with_default_limits(unlimited())
        .unwrap()
        .with_pending_timeout(250_000)
        .unwrap();
    let (a, b) = two_stores(common::test_options()).await;
    let mut ledgers = Vec::new();
    for s in [a, b] {
        let l = Ledger::new(s, config.clone())
            .await
            .unwrap()
            .with_auth(fast_auth(), None)
            .unwrap();
        ledgers.push(Arc::new(l));
    }
    let root = ledgers[0].bootstrap(registration("root")).await.unwrap();
    let root = Actor::new(root.id, root.role);
    let who = ledgers[0].register(registration("payer")).await.unwrap();
    let who = Actor::new(who.id, who.role);
    let w = ledgers[0]
        .open_wallet(
            &who,
            OpenWalletRequest::new(who.user, wallet_core::WalletKind::Personal, "USD"),
        )
        .await
        .unwrap();
    let n = 40;
    let mut refs = Vec::new();
    for i in 0..n {
        let r = ledgers[i % 2]
            .top_up_pending(
                &who,
                DepositRequest::new(w.id, d("1.00"), format!("p{i}")),
                &format!("g{i}"),
            )
            .await
            .unwrap();
        refs.push(r.transaction.reference);
    }
    let mut tasks = Vec::new();
    for i in 0..n {
        for (v, success) in [(0, true), (1, true), (2, false)] {
            let ledger = Arc::clone(&ledgers[(i + v) % 2]);
            tasks.push(tokio::spawn(async move {
                let mut rng = SmallRng::seed_from_u64((i * 3 + v) as u64);
                tokio::time::sleep(Duration::from_micros(rng.random_range(0..300_000))).await;
                let r = ledger
                    .gateway_callback(&root, &format!("g{i}"), success)
                    .await;
                (
                    i,
                    success,
                    r.map(|r| r.transaction.status).map_err(|e| e.code()),
                )
            }));
        }
    }
    let sweeper = {
        let ledger = Arc::clone(&ledgers[1]);
        tokio::spawn(async move {
            for _ in 0..100 {
                ledger.expire_due(&root, 5).await.unwrap();
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        })
    };
    let mut verdicts = Vec::new();
    for t in tasks {
        verdicts.push(t.await.unwrap());
    }
    sweeper.await.unwrap();
    tokio::time::sleep(Duration::from_millis(260)).await;
    ledgers[0].expire_due(&root, 1000).await.unwrap();
    let mut completed = 0;
    for (i, r) in refs.iter().enumerate() {
        let t = ledgers[1].transaction(&root, *r).await.unwrap();
        assert!(
            matches!(
                t.status,
                TransactionStatus::Completed | TransactionStatus::Failed
            ),
            "top-up {i} ended {:?}",
            t.status
        );
        completed += usize::from(t.status == TransactionStatus::Completed);
        for (j, success, got) in &verdicts {
            if *j != i {
                continue;
            }
            match got {
                Ok(status) => assert_eq!(*status, t.status, "top-up {i}: verdict {success}"),
                Err(code) => assert!(
                    ["not_pending", "pending_expired"].contains(code),
                    "top-up {i}: verdict {success}: {code}"
                ),
            }
        }
    }
    let balance = ledgers[0].wallet(&root, w.id).await.unwrap().balance;
    assert_eq!(balance.minor(), i64::try_from(completed).unwrap() * 100);
    assert!(ledgers[0].verify(&root).await.unwrap().is_ok());
}

/// One merchant order and one payment link, each paid by eight payers at once through two
/// processes while the link's owner cancels it: the order is paid once, the link is paid
/// once or cancelled, and the seller holds exactly what was accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_and_links_are_paid_once_across_processes() {
    use wallet_core::payments::{LinkRequest, PaymentRequest};
    use wallet_core::{MoveDetails, OpenWalletRequest, WalletKind};

    let (a, b) = two_stores(common::test_options()).await;
    let ledgers = [Arc::new(ledger(a).await), Arc::new(ledger(b).await)];
    let funded = funded_wallets(&ledgers[0], 8, "10.00").await;
    let seller = ledgers[0].register(registration("seller")).await.unwrap();
    let seller = Actor::new(seller.id, seller.role);
    let shop = ledgers[0]
        .open_wallet(
            &seller,
            OpenWalletRequest::new(seller.user, WalletKind::Business, "USD"),
        )
        .await
        .unwrap();
    let merchant = ledgers[0]
        .register_merchant(&seller, shop.id, "Shop")
        .await
        .unwrap();
    let link = ledgers[1]
        .create_link(
            &seller,
            LinkRequest {
                wallet: shop.id.into(),
                amount: d("2.00"),
                description: None,
                ttl_micros: 3_600_000_000,
                idempotency_key: "link".into(),
            },
        )
        .await
        .unwrap();
    let code = link.code.to_string();
    let mut tasks = Vec::new();
    for (i, (who, wallet)) in funded.iter().copied().enumerate() {
        for (k, l) in ledgers.iter().enumerate() {
            let l = Arc::clone(l);
            let code = code.clone();
            tasks.push(tokio::spawn(async move {
                if (i + k) % 2 == 0 {
                    let req = PaymentRequest {
                        from: wallet.into(),
                        merchant: merchant.id,
                        order: "order-1".into(),
                        details: MoveDetails {
                            amount: d("1.00"),
                            description: None,
                            metadata: None,
                            idempotency_key: format!("o{i}-{k}"),
                        },
                    };
                    (
                        "order",
                        l.pay_merchant(&who, req)
                            .await
                            .map(|_| ())
                            .map_err(|e| e.code()),
                    )
                } else {
                    let r = l.pay_link(&who, wallet, &code, &format!("l{i}-{k}")).await;
                    ("link", r.map(|_| ()).map_err(|e| e.code()))
                }
            }));
        }
    }
    let cancel = {
        let l = Arc::clone(&ledgers[1]);
        let code = code.clone();
        tokio::spawn(async move {
            l.cancel_link(&seller, &code)
                .await
                .map(|_| ())
                .map_err(|e| e.code())
        })
    };
    let (mut orders, mut links) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            ("order", Ok(())) => orders += 1,
            ("link", Ok(())) => links += 1,
            ("order", Err(c)) => assert_eq!(c, "order_already_paid"),
            (_, Err(c)) => assert_eq!(c, "link_not_payable"),
            _ => unreachable!(),
        }
    }
    let cancelled = cancel.await.unwrap().is_ok();
    assert_eq!(orders, 1, "the order is paid once");
    assert_eq!(
        links + usize::from(cancelled),
        1,
        "the link is paid once or cancelled"
    );
    let held = ledgers[0].wallet(&seller, shop.id).await.unwrap().balance;
    assert_eq!(held.minor(), 100 + 200 * i64::try_from(links).unwrap());
}

/// The heads kept with wallet rows (schema 3) follow every posting, and `verify` reports one
/// that differs from the wallet's latest entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_heads_follow_postings_and_verify_checks_them() {
    use sqlx::{Connection, Executor};
    let name = common::fresh_database().await;
    let a = MySqlStore::connect(&common::app_url(&name), common::test_options())
        .await
        .unwrap()
        .with_guard(common::DropDatabase(name.clone()));
    let l = ledger(a.clone()).await;
    let funded = funded_wallets(&l, 2, "10.00").await;
    let ((alice, from), (_, to)) = (funded[0], funded[1]);
    for i in 0..3 {
        l.transfer(
            &alice,
            wallet_core::TransferRequest::new(from, to, d("1.25"), format!("t{i}")),
        )
        .await
        .unwrap();
    }
    let report = a.verify().await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    let w = a.wallet(from).await.unwrap().unwrap();
    assert_eq!(w.head.balance_minor, 1000 - 375);

    let mut c = sqlx::MySqlConnection::connect(&common::admin_db_url(&name))
        .await
        .unwrap();
    c.execute(
        format!(
            "UPDATE wallets SET head_balance = head_balance + 1 WHERE id = {}",
            to.get()
        )
        .as_str(),
    )
    .await
    .unwrap();
    let report = a.verify().await.unwrap();
    assert!(
        report.discrepancies.iter().any(|d| matches!(
            d,
            wallet_core::verify::Discrepancy::ChainBroken { wallet, .. } if *wallet == to
        )),
        "{report:?}"
    );
}
