//! Online backup while transfers continue: the copy opens, verifies, and holds exactly the
//! transactions up to one commit (a prefix of the source's), including every one acknowledged
//! before the backup started.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)] // tests

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::{RngExt, SeedableRng};
use wallet_core::{Actor, Role, TransactionRef, TransferRequest, UserId};
use wallet_sqlite::{Options, SqliteStore};

const WALLETS: i64 = 20;

fn admin() -> Actor {
    Actor::new(UserId::new(999).unwrap(), Role::Admin)
}

/// Transaction ids in commit order (the single writer hands them out in commit order).
fn transaction_ids(path: &Path) -> Vec<i64> {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut stmt = conn
        .prepare("SELECT id FROM transactions ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_backup_while_transfers_continue() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("wallet.db");
    let copy = dir.path().join("backup.db");
    let store = SqliteStore::open(&source, Options::default()).unwrap();
    let ledger = Arc::new(common::ledger(store.clone()).await);
    let funded = common::funded_wallets(&ledger, WALLETS, "1000").await;
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(std::sync::Mutex::new(Vec::<TransactionRef>::new()));
    let mut tasks = Vec::new();
    for t in 0..4u64 {
        let (ledger, funded, stop, acked) = (
            Arc::clone(&ledger),
            funded.clone(),
            Arc::clone(&stop),
            Arc::clone(&acked),
        );
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::SmallRng::seed_from_u64(t);
            let mut worst = Duration::ZERO;
            for i in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let from = rng.random_range(0..funded.len());
                let to = (from + rng.random_range(1..funded.len())) % funded.len();
                let amount = wallet_core::Decimal::new(rng.random_range(1..500), 2);
                let req =
                    TransferRequest::new(funded[from].1, funded[to].1, amount, format!("t{t}-{i}"));
                let started = Instant::now();
                let r = ledger.transfer(&funded[from].0, req).await.unwrap();
                worst = worst.max(started.elapsed());
                acked.lock().unwrap().push(r.transaction.reference);
            }
            worst
        }));
    }
    // Let the load build up a ledger worth copying.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before: Vec<TransactionRef> = acked.lock().unwrap().clone();
    let report = store.backup_to(&copy).await.unwrap();
    let during = acked.lock().unwrap().len() - before.len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut worst = Duration::ZERO;
    for t in tasks {
        worst = worst.max(t.await.unwrap());
    }
    let all: Vec<TransactionRef> = acked.lock().unwrap().clone();
    assert!(!dir.path().join("backup.db.partial").exists());
    assert_eq!(report.path, copy);
    assert!(report.pages > 0);
    assert_eq!(report.bytes, std::fs::metadata(&copy).unwrap().len());
    // A second backup never overwrites the first.
    assert_eq!(
        store.backup_to(&copy).await.unwrap_err().code(),
        "invalid_config"
    );

    // The copy is a prefix of the source's transactions, in commit order.
    store.close();
    drop(ledger);
    let source_ids = transaction_ids(&source);
    let copy_ids = transaction_ids(&copy);
    assert!(copy_ids.len() <= source_ids.len());
    assert_eq!(
        copy_ids[..],
        source_ids[..copy_ids.len()],
        "a prefix of the source"
    );

    // It opens as a store of its own and verifies; money is conserved.
    let restored = common::ledger(SqliteStore::open(&copy, Options::default()).unwrap()).await;
    let verified = restored.verify(&admin()).await.unwrap();
    assert!(verified.is_ok(), "{verified:#?}");
    let usd = wallet_core::Currency::iso("USD").unwrap().code();
    assert_eq!(
        verified.customer_balances[&usd],
        1000 * 100 * i128::from(WALLETS)
    );
    // Every transfer acknowledged before the backup began is in it.
    for reference in &before {
        restored.transaction(&admin(), *reference).await.unwrap();
    }
    assert!(copy_ids.len() >= before.len() + usize::try_from(WALLETS).unwrap());
    // The copy takes writes.
    let (who, id) = funded[0];
    let (_, other) = funded[1];
    restored
        .transfer(
            &who,
            TransferRequest::new(id, other, wallet_core::Decimal::ONE, "after-restore"),
        )
        .await
        .unwrap();
    println!(
        "backup: {} pages, {} bytes in {} ms; {} transfers acknowledged before, {} during, {} in all; \
         copy holds {} of the source's {} transactions; slowest transfer {} ms",
        report.pages,
        report.bytes,
        report.elapsed_ms,
        before.len(),
        during,
        all.len(),
        copy_ids.len(),
        source_ids.len(),
        worst.as_millis()
    );
}
