//! The SQLite store's own behaviour: options, files, the write-ahead log, full disks.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use std::sync::Arc;

use wallet_core::testkit::d;
use wallet_core::{
    Actor, DepositRequest, OpenWalletRequest, Role, TransferRequest, UserId, WalletKind,
};
use wallet_sqlite::{Options, SqliteStore};

fn admin() -> Actor {
    Actor::new(UserId::new(999).unwrap(), Role::Admin)
}

#[test]
fn invalid_options_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let bad = [
        Options {
            readers: 0,
            ..Options::default()
        },
        Options {
            readers: 33,
            ..Options::default()
        },
        Options {
            queue_depth: 0,
            ..Options::default()
        },
        Options {
            batch_max: 0,
            ..Options::default()
        },
        Options {
            page_size: 1000,
            ..Options::default()
        },
        Options {
            page_size: 256,
            ..Options::default()
        },
        Options {
            checkpoint_bytes: 1,
            ..Options::default()
        },
    ];
    for options in bad {
        let err = SqliteStore::open(dir.path().join("x.db"), options.clone()).unwrap_err();
        assert_eq!(err.code(), "invalid_config", "{options:?}");
        assert_eq!(
            SqliteStore::open_in_memory(options).unwrap_err().code(),
            "invalid_config"
        );
    }
}

#[test]
fn refuses_files_of_other_applications() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE invoices (id INTEGER PRIMARY KEY); INSERT INTO invoices VALUES (1);",
    )
    .unwrap();
    drop(conn);
    assert_eq!(
        SqliteStore::open(&path, Options::default())
            .unwrap_err()
            .code(),
        "storage_corrupt"
    );
    // And leaves them untouched.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM invoices", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
    let garbage = dir.path().join("garbage.db");
    std::fs::write(
        &garbage,
        b"this is not a database at all, just some bytes padding it out",
    )
    .unwrap();
    assert_eq!(
        SqliteStore::open(&garbage, Options::default())
            .unwrap_err()
            .code(),
        "storage_corrupt"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wallet.db");
    let store = SqliteStore::open(&path, Options::default()).unwrap();
    let ledger = common::ledger(store.clone()).await;
    let alice = common::user(&ledger, 1).await;
    let w = ledger
        .open_wallet(
            &alice,
            OpenWalletRequest::new(alice.user, WalletKind::Personal, "EUR"),
        )
        .await
        .unwrap();
    let receipt = ledger
        .deposit(&alice, DepositRequest::new(w.id, d("12.34"), "k"))
        .await
        .unwrap();
    store.close();
    assert_eq!(
        ledger.wallet(&alice, w.id).await.unwrap_err().code(),
        "store_closed"
    );
    assert_eq!(
        ledger
            .deposit(&alice, DepositRequest::new(w.id, d("1"), "k2"))
            .await
            .unwrap_err()
            .code(),
        "store_closed"
    );
    drop(ledger);
    let ledger = common::ledger(SqliteStore::open(&path, Options::default()).unwrap()).await;
    assert_eq!(
        ledger.wallet(&alice, w.id).await.unwrap().balance.amount(),
        d("12.34")
    );
    let again = ledger
        .transaction(&alice, receipt.transaction.reference)
        .await
        .unwrap();
    assert_eq!(again, receipt.transaction);
}

/// Under sustained writes the log is checkpointed in the background and rewound, so its file
/// stays near the configured interval instead of growing with the ledger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_ahead_log_stays_bounded_under_sustained_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wallet.db");
    let options = Options {
        checkpoint_bytes: 1 << 20,
        ..Options::default()
    };
    let store = SqliteStore::open(&path, options).unwrap();
    let ledger = Arc::new(common::ledger(store).await);
    let wallets = Arc::new(common::funded_wallets(&ledger, 50, "1000").await);
    let mut largest_wal = 0u64;
    let mut tasks = Vec::new();
    for t in 0..16usize {
        let ledger = Arc::clone(&ledger);
        let wallets = Arc::clone(&wallets);
        tasks.push(tokio::spawn(async move {
            for i in 0..2_500usize {
                let (from, to) = ((t + i) % 50, (t * 7 + i * 3 + 1) % 50);
                if from == to {
                    continue;
                }
                let req = TransferRequest::new(
                    wallets[from].1,
                    wallets[to].1,
                    d("0.01"),
                    format!("{t}-{i}"),
                );
                ledger.transfer(&wallets[from].0, req).await.unwrap();
            }
        }));
    }
    let wal = path.with_extension("db-wal");
    while tasks.iter().any(|t| !t.is_finished()) {
        largest_wal = largest_wal.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for t in tasks {
        t.await.unwrap();
    }
    let db = std::fs::metadata(&path).unwrap().len();
    // The ledger outgrew the interval many times over; the log did not follow it.
    assert!(db > 4 << 20, "database {db} bytes, log {largest_wal}");
    // Without checkpoints the log would hold every frame ever written (far more than the
    // database); the writer's hard cap is four intervals.
    assert!(
        largest_wal < 5 << 20,
        "write-ahead log reached {largest_wal} bytes"
    );
    assert!(ledger.verify(&admin()).await.unwrap().is_ok());
}

/// A database at its size limit answers `storage_full`, stores nothing of the failed batch,
/// keeps everything acknowledged before, and works again once there is room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_database_fails_cleanly_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wallet.db");
    let limited = Options {
        max_bytes: Some(512 << 10),
        ..Options::default()
    };
    let ledger = common::ledger(SqliteStore::open(&path, limited.clone()).unwrap()).await;
    let alice = common::user(&ledger, 1).await;
    let w = ledger
        .open_wallet(
            &alice,
            OpenWalletRequest::new(alice.user, WalletKind::Personal, "USD"),
        )
        .await
        .unwrap();
    let mut acked = Vec::new();
    let mut full = None;
    for i in 0..100_000 {
        // Long descriptions fill the file quickly.
        let req = DepositRequest::new(w.id, d("1"), format!("k{i}")).description("x".repeat(400));
        match ledger.deposit(&alice, req).await {
            Ok(r) => acked.push(r.transaction.reference),
            Err(e) => {
                full = Some(e);
                break;
            }
        }
    }
    let full = full.expect("the limit was reached");
    assert_eq!(full.code(), "storage_full", "{full:?}");
    let report = ledger.verify(&admin()).await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    let balance = ledger.wallet(&alice, w.id).await.unwrap().balance.amount();
    assert_eq!(
        balance,
        wallet_core::Decimal::from(acked.len()),
        "exactly the acknowledged deposits"
    );
    drop(ledger);
    // With room again, everything acknowledged is there and writing resumes.
    let ledger = common::ledger(SqliteStore::open(&path, Options::default()).unwrap()).await;
    for r in &acked {
        ledger.transaction(&alice, *r).await.unwrap();
    }
    ledger
        .deposit(&alice, DepositRequest::new(w.id, d("1"), "after"))
        .await
        .unwrap();
    assert!(ledger.verify(&admin()).await.unwrap().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_stats_count_group_commits() {
    let store = SqliteStore::open_in_memory(Options::default()).unwrap();
    let ledger = common::ledger(store.clone()).await;
    let before = store.writer_stats();
    assert_eq!((before.commits, before.commands), (0, 0));
    assert!(before.last_commit.is_none());
    // Registering is one command, opening a wallet another.
    let alice = common::user(&ledger, 1).await;
    ledger
        .open_wallet(
            &alice,
            OpenWalletRequest::new(alice.user, WalletKind::Personal, "USD"),
        )
        .await
        .unwrap();
    let after = store.writer_stats();
    assert_eq!((after.commits, after.commands, after.queued), (2, 2, 0));
    assert!(after.last_commit.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_store_reports_itself_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let file = SqliteStore::open(dir.path().join("w.db"), Options::default()).unwrap();
    let memory = SqliteStore::open_in_memory(Options::default()).unwrap();
    for store in [file, memory] {
        let open = wallet_core::Store::health(&store).await;
        assert!(open.is_healthy(), "{open:?}");
        store.close();
        let closed = wallet_core::Store::health(&store).await;
        assert!(!closed.reachable, "{closed:?}");
        assert!(!closed.is_healthy());
        assert_eq!(closed.problem, Some("store_closed"));
        assert_eq!(closed.schema_version, None);
        assert_eq!(closed.schema_supported, open.schema_supported);
    }
}

/// Commands run without a savepoint of their own; one that fails after it has written (here a
/// trigger, added behind the library's back, refuses the entries of one user's wallet, which
/// are written after the transaction's row) makes the
/// writer roll its batch back and apply it again with savepoints. The failing transfers leave
/// nothing behind, every other transfer of the same batches commits, and money is conserved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_fails_after_writing_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wallet.db");
    let store = SqliteStore::open(&path, Options::default()).unwrap();
    let ledger = Arc::new(common::ledger(store.clone()).await);
    let wallets = common::funded_wallets(&ledger, 8, "1000").await;
    let victim = wallets[0].1;
    {
        let other = rusqlite::Connection::open(&path).unwrap();
        other
            .execute_batch(&format!(
                "CREATE TRIGGER boom BEFORE INSERT ON entries WHEN NEW.wallet_id = {}
                 BEGIN SELECT RAISE(ABORT, 'refused by a test trigger'); END",
                victim.get()
            ))
            .unwrap();
    }
    let mut tasks = Vec::new();
    for i in 0..256usize {
        let ledger = Arc::clone(&ledger);
        let (from, from_wallet) = wallets[i % 8];
        let to_wallet = wallets[(i + 1) % 8].1;
        tasks.push(tokio::spawn(async move {
            let req = TransferRequest::new(from_wallet, to_wallet, d("1"), format!("t{i}"));
            (i, ledger.transfer(&from, req).await)
        }));
    }
    let mut failed = Vec::new();
    for t in tasks {
        let (i, result) = t.await.unwrap();
        // Wallet 0 sends when i % 8 == 0 and receives when i % 8 == 7.
        let touches_victim = i % 8 == 0 || i % 8 == 7;
        match result {
            Ok(_) => assert!(!touches_victim, "transfer {i} should have failed"),
            Err(e) => {
                assert!(touches_victim, "transfer {i} failed: {e:?}");
                failed.push(i);
            }
        }
    }
    assert_eq!(failed.len(), 64);
    let report = ledger.verify(&admin()).await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    // Each wallet sent and received 32 transfers of 1, except across the victim's failures:
    // wallet 0 moved nothing, wallet 1 lost the 32 it would have received from 0, wallet 7 kept
    // the 32 it would have sent to 0.
    for (n, (owner, id)) in wallets.iter().enumerate() {
        let balance = ledger.wallet(owner, *id).await.unwrap().balance.amount();
        let expected = match n {
            1 => d("968"),
            7 => d("1032"),
            _ => d("1000"),
        };
        assert_eq!(balance, expected, "wallet {n}");
    }
    // Nothing of a failed transfer was stored: once the trigger is gone, the same key runs it
    // for the first time rather than replaying anything.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("DROP TRIGGER boom")
        .unwrap();
    let i = failed[0];
    let (from, from_wallet) = wallets[i % 8];
    let req = TransferRequest::new(from_wallet, wallets[(i + 1) % 8].1, d("1"), format!("t{i}"));
    let receipt = ledger.transfer(&from, req).await.unwrap();
    assert!(!receipt.replayed);
    let stats = store.writer_stats();
    assert!(
        stats.commands > stats.commits,
        "transfers shared group commits: {stats:?}"
    );
}
