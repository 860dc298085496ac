//! Upgrading a database that holds a ledger: schema 3 adds each wallet's head and limit-window
//! anchors, computed from the entries by the migration. A database at version 2 with money in
//! it must come out with heads equal to its entries, the same balances, and keep working.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use sqlx::{Connection, Executor, MySqlConnection};
use wallet_core::testkit::d;
use wallet_core::testkit::storage::{funded_wallets, ledger};
use wallet_core::{Actor, Role, TransferRequest, UserId};
use wallet_mysql::MySqlStore;

fn admin_actor() -> Actor {
    Actor::new(UserId::new(999).unwrap(), Role::Admin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_2_ledger_upgrades_with_its_heads_computed_from_its_entries() {
    let name = common::fresh_database().await;
    let guard = common::DropDatabase(name.clone());
    let connect = || async {
        MySqlStore::connect(&common::app_url(&name), common::test_options())
            .await
            .unwrap()
    };
    let mut balances = Vec::new();
    {
        let ledger = ledger(connect().await).await;
        let wallets = funded_wallets(&ledger, 4, "100").await;
        for i in 0..20usize {
            let (from, from_wallet) = wallets[i % 4];
            let to = wallets[(i + 1) % 4].1;
            let amount = d(&format!("{}.{:02}", i % 3 + 1, i * 7 % 100));
            ledger
                .transfer(
                    &from,
                    TransferRequest::new(from_wallet, to, amount, format!("u{i}")),
                )
                .await
                .unwrap();
        }
        for (owner, id) in &wallets {
            balances.push((
                *owner,
                *id,
                ledger.wallet(owner, *id).await.unwrap().balance,
            ));
        }
    }
    // Back to version 2: no head columns, the version says 2.
    let mut admin = MySqlConnection::connect(&common::admin_db_url(&name))
        .await
        .unwrap();
    admin
        .execute(
            "ALTER TABLE wallets DROP COLUMN head_seq, DROP COLUMN head_balance,
                 DROP COLUMN head_debits, DROP COLUMN head_at, DROP COLUMN day_from,
                 DROP COLUMN day_debits, DROP COLUMN month_from, DROP COLUMN month_debits",
        )
        .await
        .unwrap();
    admin
        .execute("UPDATE wallet_schema SET version = 2 WHERE id = 1")
        .await
        .unwrap();
    admin.close().await.unwrap();

    wallet_mysql::migrate(&common::admin_db_url(&name), &Default::default())
        .await
        .unwrap();
    let ledger = ledger(connect().await).await;
    let report = ledger.verify(&admin_actor()).await.unwrap();
    assert!(report.is_ok(), "heads agree with the entries: {report:?}");
    for (owner, id, balance) in &balances {
        assert_eq!(&ledger.wallet(owner, *id).await.unwrap().balance, balance);
    }
    // And money moves on from the computed heads (limits included).
    let (a, a_wallet, _) = balances[0];
    let b_wallet = balances[1].1;
    ledger
        .transfer(
            &a,
            TransferRequest::new(a_wallet, b_wallet, d("1.00"), "after"),
        )
        .await
        .unwrap();
    assert!(ledger.verify(&admin_actor()).await.unwrap().is_ok());
    drop(ledger);
    drop(guard);
}
