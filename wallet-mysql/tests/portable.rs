//! The shared export/import cases on MySQL, and the round trip between backends:
//! SQLite -> MySQL -> SQLite yields the same ledger, byte for byte.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

wallet_core::portable_suite!(|| async { common::fresh_store().await });

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_to_mysql_to_sqlite_is_identical() {
    use wallet_core::testkit::portable_cases::{export_bytes, import_bytes, populated};
    let sqlite = wallet_sqlite::SqliteStore::open_in_memory(Default::default()).unwrap();
    let source = populated(sqlite).await;
    let (original, summary) = export_bytes(&source.store).await;
    assert!(summary.rows > 0);

    let mysql = common::fresh_store().await;
    import_bytes(&mysql, original.clone()).await.unwrap();
    let (from_mysql, _) = export_bytes(&mysql).await;
    assert_eq!(
        from_mysql, original,
        "MySQL holds exactly what SQLite exported"
    );

    let back = wallet_sqlite::SqliteStore::open_in_memory(Default::default()).unwrap();
    import_bytes(&back, from_mysql).await.unwrap();
    let (again, _) = export_bytes(&back).await;
    assert_eq!(again, original, "and SQLite gets it back unchanged");
}

/// The format's table list is this schema's: same tables, same columns in the same order
/// (besides the MySQL-only `events.seq`, the generated `payment_methods.default_owner`, the
/// references money movements' notifications and events are stored by, rendered in the file,
/// and the heads and limit-window anchors kept with wallets, set from the entries on import).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn format_tables_match_the_live_schema() {
    use sqlx::Connection;
    let name = common::fresh_database().await;
    let _drop = common::DropDatabase(name.clone());
    let mut c = sqlx::MySqlConnection::connect(&common::admin_db_url(&name))
        .await
        .unwrap();
    for table in &wallet_core::portable::TABLES {
        let live: Vec<String> = sqlx::query_scalar(
            "SELECT CAST(column_name AS CHAR) FROM information_schema.columns
             WHERE table_schema = DATABASE() AND table_name = ? ORDER BY ordinal_position",
        )
        .bind(table.name)
        .fetch_all(&mut c)
        .await
        .unwrap();
        let live: Vec<&str> = live
            .iter()
            .map(String::as_str)
            .filter(|c| {
                !matches!(
                    (table.name, *c),
                    ("events", "seq" | "txn_id" | "txn_status")
                        | ("notifications", "txn_id" | "txn_state")
                        | ("payment_methods", "default_owner")
                        | (
                            "wallets",
                            "head_seq"
                                | "head_balance"
                                | "head_debits"
                                | "head_at"
                                | "day_from"
                                | "day_debits"
                                | "month_from"
                                | "month_debits"
                        )
                )
            })
            .collect();
        let format: Vec<&str> = table.columns.iter().map(|c| c.name).collect();
        assert_eq!(live, format, "columns of {}", table.name);
    }
}

/// A migration interrupted anywhere is finished by running it again: every step of the last
/// migration re-run over a database that already took it (the worst case: all of them done,
/// the version bump not) changes nothing, and the ledger reads back the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_rerun_over_their_own_work() {
    use sqlx::Connection;
    use wallet_core::testkit::portable_cases::{export_bytes, populated};
    let name = common::fresh_database().await;
    let _drop = common::DropDatabase(name.clone());
    let store = wallet_mysql::MySqlStore::connect(&common::app_url(&name), common::test_options())
        .await
        .unwrap();
    let source = populated(store).await;
    let (before, _) = export_bytes(&source.store).await;
    source.store.close().await;

    let mut admin = sqlx::MySqlConnection::connect(&common::admin_db_url(&name))
        .await
        .unwrap();
    let latest: i64 = sqlx::query_scalar("SELECT version FROM wallet_schema WHERE id = 1")
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert!(latest >= 2);
    sqlx::query("UPDATE wallet_schema SET version = ? WHERE id = 1")
        .bind(latest - 1)
        .execute(&mut admin)
        .await
        .unwrap();
    let refused =
        wallet_mysql::MySqlStore::connect(&common::app_url(&name), common::test_options())
            .await
            .map(|_| ());
    assert_eq!(refused.unwrap_err().code(), "schema_version");

    wallet_mysql::migrate(&common::admin_db_url(&name), &Default::default())
        .await
        .unwrap();
    let version: i64 = sqlx::query_scalar("SELECT version FROM wallet_schema WHERE id = 1")
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(version, latest);
    let again = wallet_mysql::MySqlStore::connect(&common::app_url(&name), common::test_options())
        .await
        .unwrap();
    let (after, _) = export_bytes(&again).await;
    assert_eq!(after, before, "the ledger is unchanged");
    again.close().await;
}

/// Restoring a MySQL store from its export: a live store with transfers is exported, its
/// database is lost, and a fresh database imports the file. The restored ledger is the same
/// (byte for byte, re-exported), verifies, takes new writes, and still knows the old
/// idempotency keys, so a client retrying an old request gets its original receipt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mysql_store_restores_from_its_export() {
    use wallet_core::testkit::portable_cases::{export_bytes, import_bytes};
    use wallet_core::testkit::storage::{funded_wallets, ledger};
    use wallet_core::{Actor, Role, TransferRequest, UserId};

    let original = ledger(common::fresh_store().await).await;
    let funded = funded_wallets(&original, 5, "100.00").await;
    let mut receipts = Vec::new();
    for i in 0..20 {
        let (from, to) = (&funded[i % 5], &funded[(i + 1) % 5]);
        let req = TransferRequest::new(
            from.1,
            to.1,
            wallet_core::Decimal::new(125, 2),
            format!("t{i}"),
        );
        receipts.push((
            from.0,
            req.clone(),
            original.transfer(&from.0, req).await.unwrap(),
        ));
    }
    let (backup, summary) = export_bytes(original.store()).await;
    drop(original); // the database is dropped with its store: the ledger is gone

    let restored = ledger(common::fresh_store().await).await;
    let imported = import_bytes(restored.store(), backup.clone())
        .await
        .unwrap();
    assert_eq!(imported.summary.sha256, summary.sha256);
    assert!(imported.report.is_ok());
    let (again, _) = export_bytes(restored.store()).await;
    assert_eq!(
        again, backup,
        "the restored store holds exactly what was exported"
    );
    let admin = Actor::new(UserId::new(9_999).unwrap(), Role::Admin);
    assert!(restored.verify(&admin).await.unwrap().is_ok());
    for (who, req, first) in &receipts {
        let replay = restored.transfer(who, req.clone()).await.unwrap();
        assert!(replay.replayed, "an old key replays after the restore");
        assert_eq!(replay.transaction.reference, first.transaction.reference);
    }
    let (from, to) = (&funded[0], &funded[1]);
    let fresh = restored
        .transfer(
            &from.0,
            TransferRequest::new(from.1, to.1, wallet_core::Decimal::ONE, "after"),
        )
        .await
        .unwrap();
    assert!(!fresh.replayed);
    assert!(restored.verify(&admin).await.unwrap().is_ok());
}
