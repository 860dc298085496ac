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
/// (besides the MySQL-only `events.seq` and the generated `payment_methods.default_owner`).
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
                    ("events", "seq") | ("payment_methods", "default_owner")
                )
            })
            .collect();
        let format: Vec<&str> = table.columns.iter().map(|c| c.name).collect();
        assert_eq!(live, format, "columns of {}", table.name);
    }
}
