//! Scratch databases on the MariaDB (or MySQL) server the tests run against.
//!
//! Each store gets its own database, created and migrated by the administrative user and used
//! through a user that holds only SELECT, INSERT, UPDATE and DELETE, as an application should.
//! The database is dropped when the last clone of its store is. The server must be reachable:
//! these tests fail, never skip, when it is not (`scripts/test` starts it).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::{Connection, Executor, MySqlConnection};
use tokio::sync::OnceCell;
use wallet_mysql::{ConnectOptions, MySqlStore};

/// Server URL of a user allowed to create databases and users (no database part).
pub(crate) fn admin_url() -> String {
    std::env::var("WALLET_TEST_MYSQL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

/// The least-privilege application user the stores connect as.
const APP_USER: &str = "wallet_test_app";
const APP_PASSWORD: &str = "wallet-test-app-pw";
/// Every scratch database's name starts with this.
pub(crate) const PREFIX: &str = "wallet_t_";

static NEXT: AtomicU64 = AtomicU64::new(0);
static SETUP: OnceCell<()> = OnceCell::const_new();

/// Application URL for database `db`.
pub(crate) fn app_url(db: &str) -> String {
    let host = admin_url()
        .rsplit('@')
        .next()
        .unwrap_or("127.0.0.1:3306")
        .to_owned();
    format!("mysql://{APP_USER}:{APP_PASSWORD}@{host}/{db}")
}

/// Administrative URL for database `db`.
pub(crate) fn admin_db_url(db: &str) -> String {
    format!("{}/{db}", admin_url())
}

pub(crate) async fn admin() -> MySqlConnection {
    MySqlConnection::connect(&admin_url())
        .await
        .unwrap_or_else(|e| panic!("MariaDB/MySQL is not reachable at {}: {e}", admin_url()))
}

/// Creates the application user once per process, with DML rights on scratch databases only.
async fn setup() {
    SETUP
        .get_or_init(|| async {
            let mut c = admin().await;
            for host in ["localhost", "127.0.0.1", "%"] {
                c.execute(
                    format!(
                        "CREATE USER IF NOT EXISTS '{APP_USER}'@'{host}' IDENTIFIED BY '{APP_PASSWORD}'"
                    )
                    .as_str(),
                )
                .await
                .unwrap();
                c.execute(
                    format!(
                        "GRANT SELECT, INSERT, UPDATE, DELETE ON `wallet\\_t\\_%`.* TO '{APP_USER}'@'{host}'"
                    )
                    .as_str(),
                )
                .await
                .unwrap();
            }
        })
        .await;
}

/// Drops its database when dropped.
pub(crate) struct DropDatabase(pub(crate) String);

impl Drop for DropDatabase {
    fn drop(&mut self) {
        let name = std::mem::take(&mut self.0);
        // Drop runs inside the test's runtime: do the async work on a thread of its own.
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let mut c = admin().await;
                c.execute(format!("DROP DATABASE IF EXISTS `{name}`").as_str())
                    .await
                    .unwrap();
            });
        })
        .join();
        // A scratch database left behind is harmless (its name is unique); a failure to drop
        // it must not turn a passing test into a panic during unwinding.
        let _ = done;
    }
}

/// A fresh, migrated database; returns its name.
pub(crate) async fn fresh_database() -> String {
    setup().await;
    let name = format!(
        "{PREFIX}{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let mut c = admin().await;
    c.execute(format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4").as_str())
        .await
        .unwrap();
    wallet_mysql::migrate(&admin_db_url(&name), &ConnectOptions::default())
        .await
        .unwrap();
    name
}

/// Small pools: many stores exist at once in a test run.
pub(crate) fn test_options() -> ConnectOptions {
    ConnectOptions {
        max_connections: 16,
        min_connections: 0,
        tls: wallet_mysql::Tls::Disabled,
        ..ConnectOptions::default()
    }
}

/// A store on a fresh database, connected as the least-privilege user; the database is
/// dropped with the store.
pub(crate) async fn fresh_store() -> MySqlStore {
    let name = fresh_database().await;
    MySqlStore::connect(&app_url(&name), test_options())
        .await
        .unwrap()
        .with_guard(DropDatabase(name))
}

/// A store on a fresh database, and the database's name; the database is dropped with the
/// store.
pub(crate) async fn named_store(options: ConnectOptions) -> (String, MySqlStore) {
    let name = fresh_database().await;
    let store = MySqlStore::connect(&app_url(&name), options)
        .await
        .unwrap()
        .with_guard(DropDatabase(name.clone()));
    (name, store)
}

/// The tables a money movement writes to.
pub(crate) const WRITTEN: [&str; 5] = [
    "transactions",
    "entries",
    "notifications",
    "events",
    "audit_log",
];

/// How many rows each of `tables` holds, read as the administrator.
pub(crate) async fn row_counts(conn: &mut MySqlConnection, tables: &[&str]) -> Vec<i64> {
    let mut counts = Vec::new();
    for t in tables {
        let sql = format!("SELECT count(*) FROM {t}");
        counts.push(
            sqlx::query_scalar(&sql)
                .fetch_one(&mut *conn)
                .await
                .unwrap(),
        );
    }
    counts
}

/// A session of the administrator on database `db` that, at REPEATABLE READ, holds
/// `SELECT … FOR UPDATE` locks on the notifications of `user`: next-key locks on that user's
/// range of the index, the gap after its last row included, so that an insert of a
/// notification for that user waits (after the rest of its transaction's writes) until the
/// session rolls back.
pub(crate) async fn notification_blocker(db: &str, user: i64) -> MySqlConnection {
    let mut blocker = MySqlConnection::connect(&admin_db_url(db)).await.unwrap();
    blocker
        .execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .await
        .unwrap();
    blocker.execute("BEGIN").await.unwrap();
    let locked: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM notifications WHERE user_id = ? FOR UPDATE")
            .bind(user)
            .fetch_all(&mut blocker)
            .await
            .unwrap();
    assert!(!locked.is_empty(), "the user has notifications to lock");
    blocker
}
