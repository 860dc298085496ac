//! Group commit: commands queued together run as one transaction, decided in arrival order
//! against what the earlier ones of the batch did, and each caller gets the answer it would
//! have got alone.
//!
//! A batch is made on purpose with a [`Plug`]: another session locks two wallets, and one
//! transfer from each takes one of the store's two workers and waits for that lock; commands
//! sent meanwhile queue up (`MySqlStore::queued` tells when), and once the plug is pulled the
//! first free worker takes them all, in the order they were sent, as one batch. (Those tests
//! let a slow command keep its place for as long as it runs; with the default, it gives the
//! place up after 100 ms, which `a_command_stuck_on_a_lock_holds_back_only_itself` checks.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)] // tests

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use sqlx::{Connection, Executor, MySqlConnection};
use tokio::task::JoinHandle;
use wallet_core::testkit::d;
use wallet_core::testkit::storage::{funded_wallets_from as wallets, ledger};
use wallet_core::{Actor, Ledger, Receipt, TransferRequest, UserId, WalletId};
use wallet_mysql::MySqlStore;

type Answer = wallet_core::Result<Receipt>;

/// The test options, with batches and lone commands keeping their places however long they
/// run: a [`Plug`] is a command slow on purpose, and must hold the queue back for the whole
/// test (`ConnectOptions::slow_batch_after`; its default is tested on its own below).
fn plugged_options() -> wallet_mysql::ConnectOptions {
    wallet_mysql::ConnectOptions {
        slow_batch_after: Duration::from_secs(600),
        ..common::test_options()
    }
}

/// Waits until `store` has exactly `n` commands queued.
async fn until_queued(store: &MySqlStore, n: usize) {
    let started = Instant::now();
    while store.queued() != n {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{} commands queued, waited for {n}",
            store.queued()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Waits until a statement of the application's user on database `db` that starts with
/// `start` runs on `n` connections; returns their ids and statements. The process list is
/// live (`innodb_trx` is refreshed only when nobody read it for 100 ms, which tests polling at
/// once never allow).
async fn until_running(db: &str, start: &str, n: usize) -> Vec<(i64, String)> {
    let mut admin = common::admin().await;
    let started = Instant::now();
    loop {
        let running: Vec<(i64, String)> = sqlx::query_as(
            "SELECT CAST(id AS SIGNED), info FROM information_schema.processlist
             WHERE user = 'wallet_test_app' AND db = ? AND info LIKE concat(?, '%')",
        )
        .bind(db)
        .bind(start)
        .fetch_all(&mut admin)
        .await
        .unwrap();
        if running.len() == n {
            return running;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{} connections run `{start}…`, waited for {n}",
            running.len()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Sends a transfer from a task of its own.
fn send(ledger: &Arc<Ledger<MySqlStore>>, who: Actor, req: TransferRequest) -> JoinHandle<Answer> {
    let ledger = Arc::clone(ledger);
    tokio::spawn(async move { ledger.transfer(&who, req).await })
}

/// A session of the administrator on database `db` holding the row locks of `wallets` until
/// it rolls back.
async fn lock_wallets(db: &str, wallets: &[WalletId]) -> MySqlConnection {
    let mut blocker = MySqlConnection::connect(&common::admin_db_url(db))
        .await
        .unwrap();
    blocker.execute("BEGIN").await.unwrap();
    let sql = format!(
        "SELECT id FROM wallets WHERE id IN ({}) FOR UPDATE",
        vec!["?"; wallets.len()].join(", ")
    );
    let mut locking = sqlx::query(&sql);
    for w in wallets {
        locking = locking.bind(w.get());
    }
    locking.fetch_all(&mut blocker).await.unwrap();
    blocker
}

/// Both workers of a store held busy (see the module's notes).
struct Plug {
    blocker: MySqlConnection,
    plugs: Vec<JoinHandle<Answer>>,
}

impl Plug {
    /// Locks the wallets of `pair` from another session, and sends a transfer from each to the
    /// other, one at a time, each taken by a worker before the next is sent.
    async fn new(
        ledger: &Arc<Ledger<MySqlStore>>,
        db: &str,
        pair: [(Actor, WalletId); 2],
        tag: &str,
    ) -> Plug {
        let blocker = lock_wallets(db, &[pair[0].1, pair[1].1]).await;
        let mut plugs = Vec::new();
        for (i, (who, from)) in pair.iter().copied().enumerate() {
            let req = TransferRequest::new(from, pair[1 - i].1, d("0.01"), format!("p{tag}-{i}"));
            plugs.push(send(ledger, who, req));
            // It waits for the lock in the statement that takes it.
            until_running(db, "SELECT id, owner_id", i + 1).await;
        }
        // Both workers are taken: what is sent now waits in the queue.
        Plug { blocker, plugs }
    }

    /// Sends `requests` in this order, each queued before the next is sent.
    async fn queue(
        ledger: &Arc<Ledger<MySqlStore>>,
        requests: Vec<(Actor, TransferRequest)>,
    ) -> Vec<JoinHandle<Answer>> {
        let mut sent = Vec::new();
        for (i, (who, req)) in requests.into_iter().enumerate() {
            sent.push(send(ledger, who, req));
            until_queued(ledger.store(), i + 1).await;
        }
        sent
    }

    /// Lets the plugs through; they succeed.
    async fn pull(mut self) {
        self.blocker.execute("ROLLBACK").await.unwrap();
        for plug in self.plugs {
            plug.await.unwrap().unwrap();
        }
    }
}

/// The balances of `wallets`, in minor units.
async fn balances(ledger: &Ledger<MySqlStore>, wallets: &[(Actor, WalletId)]) -> Vec<i64> {
    let mut out = Vec::new();
    for (who, id) in wallets {
        out.push(ledger.wallet(who, *id).await.unwrap().balance.minor());
    }
    out
}

fn admin() -> Actor {
    Actor::new(UserId::new(9_999).unwrap(), wallet_core::Role::Admin)
}

/// One batch holds accepted transfers, transfers refused because of what the earlier ones of
/// the batch did, a repeat of an earlier key (a replay of its posting) and a reuse of a key
/// for another request (a conflict): each gets the answer it would have had alone, in order.
/// Would fail if commands of a batch were decided against the state before the batch, if a
/// refusal touched the others, or if keys repeated within a batch executed twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_decides_in_order_against_its_own_effects() {
    let (name, store) = common::named_store(plugged_options()).await;
    let ledger = Arc::new(ledger(store).await);
    let w = wallets(&ledger, 1, 4, "100.00").await;
    let pair = wallets(&ledger, 101, 2, "1.00").await;
    let (a, b, c, dd) = (w[0], w[1], w[2], w[3]);
    let t = |from: (Actor, WalletId), to: WalletId, amount: &str, key: &str| {
        (from.0, TransferRequest::new(from.1, to, d(amount), key))
    };
    let plug = Plug::new(&ledger, &name, [pair[0], pair[1]], "1").await;
    let before = ledger.store().group_commits();
    let sent = Plug::queue(
        &ledger,
        vec![
            t(a, b.1, "60", "k1"),
            // a has 40 left after the first.
            t(a, b.1, "60", "k2"),
            // The first again: a replay, in the same batch.
            t(a, b.1, "60", "k1"),
            // Its key for another request.
            t(a, b.1, "10", "k1"),
            // b can send what the first brought it.
            t(b, c.1, "150", "k5"),
            t(c, dd.1, "250", "k6"),
            t(dd, a.1, "0.01", "k7"),
            t(a, a.1, "1", "k8"),
        ],
    )
    .await;
    plug.pull().await;
    let mut answers = Vec::new();
    for s in sent {
        answers.push(s.await.unwrap());
    }
    let (batches, held) = ledger.store().group_commits();
    assert_eq!(
        (batches - before.0, held - before.1),
        (1, 8),
        "one batch held the eight"
    );
    let ok = |i: usize| answers[i].as_ref().unwrap();
    let code = |i: usize| answers[i].as_ref().unwrap_err().code();
    assert!(!ok(0).replayed);
    assert_eq!(code(1), "insufficient_funds");
    assert!(ok(2).replayed, "a repeat within the batch is a replay");
    assert_eq!(ok(2).transaction.reference, ok(0).transaction.reference);
    assert_eq!(ok(2).transaction, ok(0).transaction);
    assert_eq!(code(3), "idempotency_conflict");
    for i in [4, 5, 6] {
        assert!(!ok(i).replayed);
    }
    assert_eq!(code(7), "same_wallet");
    assert_eq!(
        balances(&ledger, &w).await,
        vec![4_001, 1_000, 0, 34_999],
        "a: 100 - 60 + 0.01; b: 100 + 60 - 150; c: 100 + 150 - 250; d: 100 + 250 - 0.01"
    );
    // The receipts built by the batch are the transactions as stored.
    let again = ledger
        .transfer(&a.0, TransferRequest::new(a.1, b.1, d("60"), "k1"))
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(again.transaction, ok(0).transaction);
    for i in [4, 5, 6] {
        let stored = ledger
            .transaction(&admin(), ok(i).transaction.reference)
            .await
            .unwrap();
        assert_eq!(stored.legs.len(), 2);
        assert_eq!(stored.amount, ok(i).transaction.amount);
        assert_eq!(stored.created_at, ok(i).transaction.created_at);
    }
    let report = ledger.verify(&admin()).await.unwrap();
    assert!(report.is_ok(), "{report:#?}");
    // Six fundings, two plugs, four transfers of the batch.
    assert_eq!(report.transactions, 6 + 2 + 4);
}

/// A batch whose connection is killed in the round trip that carries its COMMIT, after it has
/// written rows: each caller whose posting it carried gets the documented ambiguous error, a
/// refusal and a repeated key run again alone and get their own answers, nothing of the batch
/// is stored, and retries with the same keys execute each transfer once.
///
/// Another session at REPEATABLE READ locks the receiver's notifications (next-key locks up to
/// the gap after them), so the batch's insert of notifications waits, with its transactions,
/// entries and heads written; it is found waiting and its connection killed. Would fail if a
/// killed batch left rows behind, if a caller got no answer or a wrong one, or if a replay of a
/// posting whose fate is unknown were answered as a success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_killed_in_its_commit_round_trip_stores_nothing_partial() {
    let (name, store) = common::named_store(plugged_options()).await;
    let ledger = Arc::new(ledger(store).await);
    let w = wallets(&ledger, 1, 3, "100.00").await;
    let pair = wallets(&ledger, 101, 2, "1.00").await;
    let (a, c, bob) = (w[0], w[1], w[2]);
    let mut db = MySqlConnection::connect(&common::admin_db_url(&name))
        .await
        .unwrap();
    let tables = common::WRITTEN;
    let rows_before = common::row_counts(&mut db, &tables).await;
    let mut blocker = common::notification_blocker(&name, bob.0.user.get()).await;

    let plug = Plug::new(&ledger, &name, [pair[0], pair[1]], "2").await;
    let t = |from: (Actor, WalletId), amount: &str, key: &str| {
        (from.0, TransferRequest::new(from.1, bob.1, d(amount), key))
    };
    let requests = vec![
        t(a, "10", "x1"),
        t(c, "20", "x2"),
        // More than a has: refused.
        t(a, "500", "x3"),
        // The first again.
        t(a, "10", "x1"),
        t(c, "5", "x4"),
    ];
    let sent = Plug::queue(&ledger, requests.clone()).await;
    plug.pull().await;
    // The batch waits for the blocker's lock on its notifications, its other rows written:
    // the three postings' six notifications in one insert.
    let running = until_running(&name, "INSERT INTO notifications", 1).await;
    let (thread, query) = &running[0];
    assert!(
        query.matches("), (").count() >= 5,
        "the batch's insert of six notifications: {query}"
    );
    db.execute(format!("KILL CONNECTION {thread}").as_str())
        .await
        .unwrap();
    blocker.execute("ROLLBACK").await.unwrap();
    let mut answers = Vec::new();
    for s in sent {
        answers.push(s.await.unwrap());
    }
    for i in [0, 1, 4] {
        let e = answers[i].as_ref().unwrap_err();
        assert_eq!(e.code(), "storage_error", "posting {i}: {e:?}");
        assert_eq!(e.kind(), wallet_core::ErrorKind::Unavailable);
    }
    assert_eq!(
        answers[2].as_ref().unwrap_err().code(),
        "insufficient_funds"
    );
    // The repeat ran alone after the batch: the batch was not stored, so it executed.
    let repeat = answers[3].as_ref().unwrap();
    assert!(!repeat.replayed);
    assert_eq!(
        balances(&ledger, &[a, c, bob]).await,
        vec![9_000, 10_000, 11_000],
        "only the repeat moved money"
    );
    // Transactions, entries, notifications, events, audit records: the plugs' and the
    // repeat's only.
    let plugs_and_repeat = [2 + 1, 2 * 2 + 2, 2 * 2 + 2, 2 + 1, 0];
    let expected: Vec<i64> = rows_before
        .iter()
        .zip(plugs_and_repeat)
        .map(|(n, extra)| n + extra)
        .collect();
    assert_eq!(common::row_counts(&mut db, &tables).await, expected);
    let report = ledger.verify(&admin()).await.unwrap();
    assert!(report.is_ok(), "{report:#?}");

    // Retried with the same keys: each executes once; x1 is the repeat's transaction.
    let mut retried = Vec::new();
    for (who, req) in requests {
        retried.push(ledger.transfer(&who, req).await);
    }
    let x1 = retried[0].as_ref().unwrap();
    assert!(x1.replayed);
    assert_eq!(x1.transaction.reference, repeat.transaction.reference);
    assert!(!retried[1].as_ref().unwrap().replayed);
    assert!(!retried[4].as_ref().unwrap().replayed);
    assert_eq!(
        balances(&ledger, &[a, c, bob]).await,
        vec![9_000, 7_500, 13_500]
    );
    let report = ledger.verify(&admin()).await.unwrap();
    assert!(report.is_ok(), "{report:#?}");
    println!("KILL in a batch's COMMIT round trip: caller answers {answers:?}");
}

/// One transfer of a generated sequence: from and to (indexes of three wallets), cents, key.
type Op = (usize, usize, i64, u8);

/// What a caller saw, comparable across two sets of wallets: the error's code, or whether it
/// was a replay, the amount, and the index of the first answer naming the same transaction.
fn seen(answers: &[Answer]) -> Vec<Result<(bool, i64, usize), String>> {
    answers
        .iter()
        .map(|a| match a {
            Ok(r) => {
                let first = answers
                    .iter()
                    .position(|b| {
                        b.as_ref()
                            .is_ok_and(|b| b.transaction.reference == r.transaction.reference)
                    })
                    .unwrap_or(usize::MAX);
                Ok((r.replayed, r.transaction.amount.minor(), first))
            }
            Err(e) => Err(e.code().to_owned()),
        })
        .collect()
}

/// Property: a sequence of transfers among three wallets (repeated keys, reused keys, amounts
/// beyond what is left, a wallet to itself) run as one batch gives every caller the answer
/// the same sequence gives when each runs alone, one after the other, and leaves the same
/// balances. Would fail if a batch decided any command against other state than the one the
/// commands before it left.
#[test]
fn a_batch_answers_as_the_same_commands_alone() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (name, ledger, pair) = rt.block_on(async {
        let (name, store) = common::named_store(plugged_options()).await;
        let ledger = Arc::new(ledger(store).await);
        let pair = wallets(&ledger, 1, 2, "100.00").await;
        (name, ledger, pair)
    });
    // Few amounts and keys, so that repeats and reused keys are common.
    let amount = proptest::sample::select(vec![100i64, 700, 1_500, 2_500]);
    let ops = proptest::collection::vec((0..3usize, 0..3usize, amount, 0..3u8), 2..=12);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 24,
        ..ProptestConfig::default()
    });
    // Each case, shrinking steps included, gets wallets of its own.
    let cases = std::sync::atomic::AtomicI64::new(0);
    runner
        .run(&ops, |ops: Vec<Op>| {
            let case = cases.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            rt.block_on(async {
                let batched = wallets(&ledger, 1_000 + 10 * case, 3, "20.00").await;
                let alone = wallets(&ledger, 100_000 + 10 * case, 3, "20.00").await;
                let requests = |w: &[(Actor, WalletId)]| -> Vec<(Actor, TransferRequest)> {
                    ops.iter()
                        .map(|(from, to, cents, key)| {
                            let amount = wallet_core::Decimal::new(*cents, 2);
                            let req = TransferRequest::new(
                                w[*from].1,
                                w[*to].1,
                                amount,
                                format!("k{key}"),
                            );
                            (w[*from].0, req)
                        })
                        .collect()
                };
                let plug = Plug::new(&ledger, &name, [pair[0], pair[1]], &format!("c{case}")).await;
                let before = ledger.store().group_commits();
                let sent = Plug::queue(&ledger, requests(&batched)).await;
                plug.pull().await;
                let mut in_batch = Vec::new();
                for s in sent {
                    in_batch.push(s.await.unwrap());
                }
                let after = ledger.store().group_commits();
                prop_assert_eq!(after.0 - before.0, 1, "one batch");
                let mut one_by_one = Vec::new();
                for (who, req) in requests(&alone) {
                    one_by_one.push(ledger.transfer(&who, req).await);
                }
                prop_assert_eq!(seen(&in_batch), seen(&one_by_one));
                prop_assert_eq!(
                    balances(&ledger, &batched).await,
                    balances(&ledger, &alone).await
                );
                Ok(())
            })
        })
        .unwrap();
    rt.block_on(async {
        let report = ledger.verify(&admin()).await.unwrap();
        assert!(report.is_ok(), "{report:#?}");
    });
}

/// Limits count the debits of the commands before in the same batch, and the heads and
/// window anchors a batch writes give the right spend to the commands after it. Would fail if
/// a batch checked each transfer against the spend before the batch, or wrote anchors that
/// forget its own debits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_count_the_debits_of_the_batch() {
    let (name, store) = common::named_store(plugged_options()).await;
    let ledger = Arc::new(ledger(store).await);
    let w = wallets(&ledger, 1, 2, "500.00").await;
    let pair = wallets(&ledger, 101, 2, "1.00").await;
    let (a, b) = (w[0], w[1]);
    ledger
        .set_limits(&a.0, a.1, Some((d("50"), d("80"), d("300"))))
        .await
        .unwrap();
    let t = |amount: &str, key: &str| (a.0, TransferRequest::new(a.1, b.1, d(amount), key));
    let plug = Plug::new(&ledger, &name, [pair[0], pair[1]], "3").await;
    let sent = Plug::queue(
        &ledger,
        vec![
            t("30", "l1"),
            t("30", "l2"),
            // 90 today: over the daily limit.
            t("30", "l3"),
            // Over the limit per transaction.
            t("60", "l4"),
            t("20", "l5"),
        ],
    )
    .await;
    plug.pull().await;
    let mut codes = Vec::new();
    for s in sent {
        codes.push(match s.await.unwrap() {
            Ok(_) => "ok".to_owned(),
            Err(e) => e.code().to_owned(),
        });
    }
    assert_eq!(
        codes,
        ["ok", "ok", "limit_exceeded", "limit_exceeded", "ok"],
        "in order, each against the debits before it"
    );
    // 80 spent today: the next cent is over the daily limit, alone too.
    let after = ledger
        .transfer(&a.0, TransferRequest::new(a.1, b.1, d("0.01"), "l6"))
        .await
        .unwrap_err();
    assert_eq!(after.code(), "limit_exceeded");
    assert_eq!(balances(&ledger, &w).await, vec![42_000, 58_000]);
    let report = ledger.verify(&admin()).await.unwrap();
    assert!(report.is_ok(), "{report:#?}");
}

/// Waits up to `secs` seconds for `task`'s answer; `None` if it has none by then.
async fn within(secs: u64, task: JoinHandle<Answer>) -> Option<Answer> {
    tokio::time::timeout(Duration::from_secs(secs), task)
        .await
        .ok()
        .map(Result::unwrap)
}

/// A worker task that panics mid-batch hands the commands queued behind it to another worker:
/// they are served, not left waiting for some later command to start one.
///
/// The store's pool has one connection, so one worker's place. A command running alone holds
/// it while two commands queue; when it ends, a worker takes those two as a batch and waits,
/// in the batch's locking read, for a wallet another session holds; a third command queues
/// behind it. The batch's first command carries a fingerprint that is not its request's (the
/// test kit's `Command::with_fingerprint`), which wallet-core's debug assertion turns into a
/// panic when the batch decides it. Would fail (the third command unanswered) if a worker's place were
/// given back on a panic without a worker started for the queue.
#[cfg(debug_assertions)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_queued_behind_a_worker_that_panicked_are_served() {
    use wallet_core::command::{Command, Flow, Move, Op, Timing};
    use wallet_core::store::Store;
    use wallet_core::text::IdempotencyKey;
    use wallet_core::{Clock, SystemClock};

    let options = wallet_mysql::ConnectOptions {
        max_connections: 1,
        ..plugged_options()
    };
    let (name, store) = common::named_store(options).await;
    let ledger = Arc::new(ledger(store).await);
    let w = wallets(&ledger, 1, 8, "10.00").await;
    let mut held_for_alone = lock_wallets(&name, &[w[0].1]).await;
    let mut held_for_batch = lock_wallets(&name, &[w[4].1]).await;
    let alone = send(
        &ledger,
        w[0].0,
        TransferRequest::new(w[0].1, w[1].1, d("1"), "a"),
    );
    until_running(&name, "SELECT id, owner_id", 1).await;

    let poisoned = Command::new(
        Some(w[2].0),
        SystemClock.now(),
        Arc::new(ledger.config().clone()),
        Op::Move(Move {
            flow: Flow::Transfer {
                from: w[2].1,
                to: w[3].1,
            },
            amount: d("1"),
            description: None,
            metadata: None,
            idempotency_key: IdempotencyKey::new("poisoned").unwrap(),
            timing: Timing::Now,
        }),
    )
    .with_fingerprint(wallet_core::command::Fingerprint([0; 16]));
    let poisoned = {
        let ledger = Arc::clone(&ledger);
        tokio::spawn(async move { ledger.store().execute(poisoned).await })
    };
    until_queued(ledger.store(), 1).await;
    let batched = send(
        &ledger,
        w[4].0,
        TransferRequest::new(w[4].1, w[5].1, d("1"), "b"),
    );
    until_queued(ledger.store(), 2).await;

    held_for_alone.execute("ROLLBACK").await.unwrap();
    alone.await.unwrap().unwrap();
    // The worker has taken both, and waits for the wallet held.
    until_queued(ledger.store(), 0).await;
    until_running(&name, "SELECT id, owner_id", 1).await;
    let behind = send(
        &ledger,
        w[6].0,
        TransferRequest::new(w[6].1, w[7].1, d("1"), "c"),
    );
    until_queued(ledger.store(), 1).await;
    held_for_batch.execute("ROLLBACK").await.unwrap();

    // The batch's callers learn that its outcome is unknown (nothing of it was stored).
    let e = poisoned.await.unwrap().unwrap_err();
    assert_eq!(e.code(), "storage_error", "{e:?}");
    let e = batched.await.unwrap().unwrap_err();
    assert_eq!(e.code(), "storage_error", "{e:?}");
    let served = within(20, behind)
        .await
        .expect("the command queued behind the worker that panicked is served");
    assert!(!served.unwrap().replayed);
    assert_eq!(
        balances(&ledger, &w).await,
        vec![900, 1_100, 1_000, 1_000, 1_000, 1_000, 900, 1_100]
    );
    let report = ledger.verify(&admin()).await.unwrap();
    assert!(report.is_ok(), "{report:#?}");
}

/// A runtime shut down while its tasks hold both of a store's places (commands running alone)
/// with a command of another runtime queued behind them: the shutdown completes, and the
/// queued command is served on its own runtime.
///
/// Would fail (the shutdown hanging for ever) if a place's drop started a worker while holding
/// the queue's lock: a runtime shutting down drops at once what is spawned on it, and that
/// drop takes the same lock. Would fail too (the command unanswered) if the worker were
/// started only on the runtime that is shutting down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_shut_down_under_a_store_leaves_it_serving_the_others() {
    let (name, store) = common::named_store(plugged_options()).await;
    let ledger = Arc::new(ledger(store).await);
    let w = wallets(&ledger, 1, 2, "10.00").await;
    let pair = wallets(&ledger, 101, 2, "1.00").await;
    let mut blocker = lock_wallets(&name, &[pair[0].1, pair[1].1]).await;
    let other = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    for (i, (who, from)) in pair.iter().copied().enumerate() {
        let req = TransferRequest::new(from, pair[1 - i].1, d("0.01"), format!("rt-{i}"));
        let ledger = Arc::clone(&ledger);
        other.spawn(async move { ledger.transfer(&who, req).await });
        until_running(&name, "SELECT id, owner_id", i + 1).await;
    }
    let queued = send(
        &ledger,
        w[0].0,
        TransferRequest::new(w[0].1, w[1].1, d("1"), "q"),
    );
    until_queued(ledger.store(), 1).await;

    // Dropping a runtime blocks until its tasks are dropped: on a thread of its own.
    let (dropped, shut) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(other);
        let _ = dropped.send(());
    });
    let shut = tokio::task::spawn_blocking(move || shut.recv_timeout(Duration::from_secs(20)))
        .await
        .unwrap();
    assert!(shut.is_ok(), "the runtime's shutdown hung");
    blocker.execute("ROLLBACK").await.unwrap();
    let served = within(20, queued)
        .await
        .expect("the command queued on the live runtime is served");
    assert!(!served.unwrap().replayed);
    assert_eq!(balances(&ledger, &w).await, vec![900, 1_100]);
    let report = ledger.verify(&admin()).await.unwrap();
    assert!(report.is_ok(), "{report:#?}");
}

/// When a batch cannot run, the commands it leaves to run alone run side by side, as they
/// would have without batching: none waits for the others' turns.
///
/// Pool of two connections, one second to get one. The plugs hold both while eight transfers
/// queue; two deposits (never batched) wait for the pool, get both connections when the plugs
/// end, and keep them, waiting for a wallet another session holds. The batch's worker gets no
/// connection, and its commands run alone: each waits its second for the pool and gets
/// `StorageBusy`. Would fail if they ran one after the other (the last answered after nine
/// seconds), as a batch of 64 would (over half an hour with the default 30 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_a_batch_leaves_to_run_alone_do_not_wait_for_each_other() {
    let options = wallet_mysql::ConnectOptions {
        max_connections: 2,
        acquire_timeout: Duration::from_secs(1),
        ..plugged_options()
    };
    let (name, store) = common::named_store(options).await;
    let ledger = Arc::new(ledger(store).await);
    let w = wallets(&ledger, 1, 9, "10.00").await;
    let pair = wallets(&ledger, 101, 2, "1.00").await;
    let held = wallets(&ledger, 201, 1, "1.00").await[0];
    let mut held_lock = lock_wallets(&name, &[held.1]).await;
    let plug = Plug::new(&ledger, &name, [pair[0], pair[1]], "5").await;
    let requests = (0..8)
        .map(|i| {
            let req = TransferRequest::new(w[i].1, w[i + 1].1, d("1"), format!("s{i}"));
            (w[i].0, req)
        })
        .collect();
    let sent = Plug::queue(&ledger, requests).await;
    let deposits: Vec<_> = (0..2)
        .map(|i| {
            let ledger = Arc::clone(&ledger);
            tokio::spawn(async move {
                let req = wallet_core::DepositRequest::new(held.1, d("1"), format!("dep{i}"));
                ledger.deposit(&held.0, req).await
            })
        })
        .collect();
    // The deposits wait for the pool (well within its second).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pulled = Instant::now();
    plug.pull().await;
    let mut answers = Vec::new();
    for s in sent {
        answers.push(s.await.unwrap());
    }
    let waited = pulled.elapsed();
    for a in &answers {
        assert_eq!(a.as_ref().unwrap_err().code(), "storage_busy", "{a:?}");
    }
    assert!(
        waited < Duration::from_millis(4_500),
        "the eight were answered after {waited:?}"
    );
    held_lock.execute("ROLLBACK").await.unwrap();
    for dep in deposits {
        dep.await.unwrap().unwrap();
    }
    assert_eq!(balances(&ledger, &w).await, vec![1_000; 9]);
    let report = ledger.verify(&admin()).await.unwrap();
    assert!(report.is_ok(), "{report:#?}");
}

/// A full batch of the largest commands (the longest description, in characters of four bytes,
/// the largest metadata, the longest key) commits as one batch: its write script, the largest a
/// batch can send, fits in the server's default `max_allowed_packet`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_batch_of_the_largest_commands_commits() {
    let (name, store) = common::named_store(plugged_options()).await;
    let ledger = Arc::new(ledger(store).await);
    let w = wallets(&ledger, 1, 2, "100.00").await;
    let pair = wallets(&ledger, 101, 2, "1.00").await;
    let description = "\u{1F600}".repeat(wallet_core::text::DESCRIPTION_CHARS_MAX);
    // `{"k":"…"}`: 8 bytes around the value.
    let metadata =
        serde_json::json!({ "k": "x".repeat(wallet_core::text::METADATA_BYTES_MAX - 8) });
    let n = wallet_mysql::BATCH_COMMANDS_MAX;
    let requests = (0..n)
        .map(|i| {
            let key = format!("{i:0>128}");
            let mut req = TransferRequest::new(w[0].1, w[1].1, d("0.01"), key);
            req.details.description = Some(description.clone());
            req.details.metadata = Some(metadata.clone());
            (w[0].0, req)
        })
        .collect();
    let plug = Plug::new(&ledger, &name, [pair[0], pair[1]], "6").await;
    let before = ledger.store().group_commits();
    let sent = Plug::queue(&ledger, requests).await;
    plug.pull().await;
    for s in sent {
        let receipt = s.await.unwrap().unwrap();
        assert!(!receipt.replayed);
        assert_eq!(
            receipt.transaction.description.as_ref().map(|d| d.as_str()),
            Some(description.as_str())
        );
    }
    let after = ledger.store().group_commits();
    assert_eq!(
        (after.0 - before.0, after.1 - before.1),
        (1, u64::try_from(n).unwrap()),
        "one batch held them all"
    );
    assert_eq!(balances(&ledger, &w).await, vec![10_000 - 64, 10_000 + 64]);
    let report = ledger.verify(&admin()).await.unwrap();
    assert!(report.is_ok(), "{report:#?}");
}

/// Two transfers wait on rows another session keeps locked, taking both of the store's places;
/// transfers among other wallets, sent meanwhile, are not held back by them: once the stuck
/// ones have run for `slow_batch_after` (default 100 ms) they give their places up, and the
/// others are served while the stuck ones still wait. Would fail if a command kept its place
/// for as long as it ran (the others would wait for the lock, five seconds an attempt).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_stuck_on_a_lock_holds_back_only_itself() {
    let (name, store) = common::named_store(common::test_options()).await;
    let ledger = Arc::new(ledger(store).await);
    let w = wallets(&ledger, 1, 8, "10.00").await;
    let pair = wallets(&ledger, 101, 2, "1.00").await;
    let plug = Plug::new(&ledger, &name, [pair[0], pair[1]], "stuck").await;
    let started = Instant::now();
    let others: Vec<_> = (0..16)
        .map(|i| {
            let (from, to) = (w[i % 8], w[(i + 1) % 8]);
            send(
                &ledger,
                from.0,
                TransferRequest::new(from.1, to.1, d("0.10"), format!("free-{i}")),
            )
        })
        .collect();
    for t in others {
        let served = tokio::time::timeout(Duration::from_secs(4), t).await;
        served
            .expect("a transfer among free wallets waited for the stuck ones")
            .unwrap()
            .unwrap();
    }
    let took = started.elapsed();
    assert!(
        plug.plugs.iter().all(|p| !p.is_finished()),
        "the stuck transfers were not stuck"
    );
    plug.pull().await;
    assert_eq!(
        balances(&ledger, &w).await,
        vec![1_000; 8],
        "each wallet sent and received two transfers of 0.10"
    );
    let report = ledger.verify(&admin()).await.unwrap();
    assert!(report.is_ok(), "{report:#?}");
    println!("sixteen transfers served in {took:?} beside two stuck on a lock");
}
