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
    let mut cancelled_inside = 0;
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
        if seen == before {
            cancelled_inside += 1;
        }
        assert_eq!(
            seen,
            before + 1,
            "step {step}: process A read a stale balance after a cancelled snapshot read"
        );
        // Snapshot reads on the same connection keep working.
        a.verify().await.unwrap();
    }
    let _ = cancelled_inside;
}
