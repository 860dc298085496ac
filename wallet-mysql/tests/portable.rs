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
