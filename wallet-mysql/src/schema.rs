//! The schema and its versioned migrations.
//!
//! Tables and columns are those of the SQLite backend, with the same names, order and meaning
//! (so one portable format serves both), in MySQL types: InnoDB, `utf8mb4`, money and
//! timestamps as `BIGINT` (minor units, microseconds since the Unix epoch), enumerations as
//! small integers.
//!
//! Collations: every column compared by a unique key holds ASCII only (the domain types
//! guarantee it). Those stored normalized (usernames, e-mail addresses, currency codes) use
//! `ascii_general_ci`; those compared exactly and case-sensitively (idempotency keys, gateway
//! references, order ids, audit targets) use `latin1_general_cs`. Free text uses
//! `utf8mb4_unicode_ci` and is never compared by the database. Binary (`_bin`) collations are
//! avoided on purpose: the driver reads their values as bytes, not text.
//!
//! MySQL commits every DDL statement on its own, so a migration cannot be one transaction.
//! Instead every statement of a migration is idempotent (`CREATE TABLE IF NOT EXISTS`, indexes
//! declared inside their table, seed rows with `INSERT IGNORE`), and the version row is bumped
//! after the last one: a migration interrupted anywhere is finished by running it again.
//! Migrations take a named server lock, so two processes never run them at once.
//!
//! The `wallet_schema` row marks the database as a wallet database: `migrate` refuses a
//! database that holds other tables but not that row.

use sqlx::{Connection, MySqlConnection};
use wallet_core::{Error, Result};

use crate::error::map_sqlx;

/// What the version row's `application` column holds.
const APPLICATION: &str = "wallet-ledger";

/// One idempotent step of a migration. MySQL 8 has no `ADD COLUMN IF NOT EXISTS`, so steps
/// that change a table look at `information_schema` first.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Step {
    /// A statement that is idempotent as written.
    Sql(&'static str),
    /// `ALTER TABLE table ADD COLUMN column definition`, unless the column exists.
    AddColumn(&'static str, &'static str, &'static str),
    /// `ALTER TABLE table DROP INDEX index`, if the index exists.
    DropIndex(&'static str, &'static str),
    /// `ALTER TABLE table ADD CONSTRAINT name CHECK (expression)`, unless it exists.
    AddCheck(&'static str, &'static str, &'static str),
}

/// Migrations in order; migration `i` takes the schema from version `i` to `i + 1`. Each is a
/// list of idempotent steps.
pub(crate) const MIGRATIONS: &[&[Step]] = &[V1, V2, V3];

/// Version 1: the tables of SQLite's schema 3.
const V1: &[Step] = &[
    Step::Sql(
        "CREATE TABLE IF NOT EXISTS currencies (
        code     VARCHAR(12) CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL PRIMARY KEY,
        exponent BIGINT NOT NULL CHECK (exponent BETWEEN 0 AND 18)
    ) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci",
    ),
    // Customer wallets (owner set, kind < 100) and system accounts (no owner, kind >= 100).
    // A wallet's balance is not stored here: it is the balance_after of its latest entry.
    // `(owner_id, kind, currency)` is unique for customers; MySQL lets NULL owners repeat, and
    // system accounts are only created together with their currency's row, whose primary key
    // makes a second creation fail.
    Step::Sql(
        "CREATE TABLE IF NOT EXISTS wallets (
        id         BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        owner_id   BIGINT NULL,
        kind       BIGINT NOT NULL,
        currency   VARCHAR(12) CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL,
        status     BIGINT NOT NULL,
        held       BIGINT NOT NULL DEFAULT 0 CHECK (held >= 0),
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        UNIQUE KEY wallets_by_owner (owner_id, kind, currency),
        KEY wallets_by_currency (currency),
        KEY wallets_by_status (status, id)
    ) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci",
    ),
    Step::Sql(
        "CREATE TABLE IF NOT EXISTS transactions (
        id              BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        kind            BIGINT NOT NULL,
        status          BIGINT NOT NULL,
        amount          BIGINT NOT NULL CHECK (amount > 0),
        currency        VARCHAR(12) CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL,
        description     TEXT NULL,
        metadata        TEXT NULL,
        initiated_by    BIGINT NOT NULL,
        idempotency_key VARCHAR(128) CHARACTER SET latin1 COLLATE latin1_general_cs NOT NULL,
        fingerprint     VARBINARY(16) NOT NULL,
        created_at      BIGINT NOT NULL,
        completed_at    BIGINT NULL,
        refunded        BIGINT NOT NULL DEFAULT 0 CHECK (refunded >= 0),
        original_id     BIGINT NULL,
        UNIQUE KEY transactions_by_key (initiated_by, idempotency_key),
        KEY transactions_by_time (created_at)
    ) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci",
    ),
    // Each account's entries form a chain numbered 1, 2, 3, ... (seq), clustered by
    // (wallet_id, seq): a wallet's history is one range and its latest entry one seek.
    Step::Sql(
        "CREATE TABLE IF NOT EXISTS entries (
        wallet_id     BIGINT NOT NULL,
        seq           BIGINT NOT NULL CHECK (seq > 0),
        txn_id        BIGINT NOT NULL,
        amount        BIGINT NOT NULL CHECK (amount <> 0),
        balance_after BIGINT NOT NULL,
        debits_after  BIGINT NOT NULL,
        PRIMARY KEY (wallet_id, seq),
        KEY entries_by_txn (txn_id)
    ) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci",
    ),
    // Username and e-mail are stored normalized, so a binary unique key makes them unique
    // case-insensitively. A deleted user keeps the row with personal data erased (NULL).
    Step::Sql(
        "CREATE TABLE IF NOT EXISTS users (
        id            BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        username      VARCHAR(32) CHARACTER SET ascii COLLATE ascii_general_ci NULL,
        email         VARCHAR(254) CHARACTER SET ascii COLLATE ascii_general_ci NULL,
        full_name     VARCHAR(100) NULL,
        phone         VARCHAR(32) NULL,
        national_id   VARCHAR(32) NULL,
        role          BIGINT NOT NULL,
        active        BIGINT NOT NULL,
        kyc           BIGINT NOT NULL,
        kyc_reason    VARCHAR(500) NULL,
        password      TEXT NULL,
        token_version BIGINT NOT NULL,
        created_at    BIGINT NOT NULL,
        updated_at    BIGINT NOT NULL,
        deleted_at    BIGINT NULL,
        UNIQUE KEY users_by_username (username),
        UNIQUE KEY users_by_email (email),
        KEY users_by_role (role, active)
    ) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci",
    ),
    Step::Sql(
        "CREATE TABLE IF NOT EXISTS audit_log (
        id       BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        at       BIGINT NOT NULL,
        actor_id BIGINT NULL,
        action   BIGINT NOT NULL,
        target   VARCHAR(64) CHARACTER SET latin1 COLLATE latin1_general_cs NULL,
        detail   TEXT NULL,
        outcome  VARCHAR(64) NOT NULL,
        KEY audit_by_actor (actor_id, id),
        KEY audit_by_target (target, id),
        KEY audit_by_time (at)
    ) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci",
    ),
    // At most one default per owner: `default_owner` is the owner of a default method and
    // NULL otherwise, and NULLs may repeat in a unique key.
    Step::Sql(
        "CREATE TABLE IF NOT EXISTS payment_methods (
        id            BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        owner_id      BIGINT NOT NULL,
        kind          BIGINT NOT NULL,
        provider      VARCHAR(64) NOT NULL,
        token         VARCHAR(512) NOT NULL,
        display       TEXT NOT NULL,
        nickname      VARCHAR(100) NULL,
        is_default    BIGINT NOT NULL,
        verified      BIGINT NOT NULL,
        status        BIGINT NOT NULL,
        created_at    BIGINT NOT NULL,
        updated_at    BIGINT NOT NULL,
        default_owner BIGINT AS (IF(is_default = 1, owner_id, NULL)) STORED,
        KEY payment_methods_by_owner (owner_id, id),
        UNIQUE KEY payment_methods_default (default_owner)
    ) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci",
    ),
    // Holds and pending top-ups; `open` leads the due index (no partial indexes in MySQL).
    Step::Sql(
        "CREATE TABLE IF NOT EXISTS pending (
        txn_id      BIGINT NOT NULL PRIMARY KEY,
        wallet_id   BIGINT NOT NULL,
        counter_id  BIGINT NULL,
        amount      BIGINT NOT NULL CHECK (amount > 0),
        held        BIGINT NOT NULL CHECK (held >= 0),
        gateway_ref VARCHAR(128) CHARACTER SET latin1 COLLATE latin1_general_cs NULL,
        expires_at  BIGINT NOT NULL,
        open        BIGINT NOT NULL,
        UNIQUE KEY pending_by_gateway (gateway_ref),
        KEY pending_due (open, expires_at),
        KEY pending_by_wallet (wallet_id, open, expires_at)
    ) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci",
    ),
    Step::Sql(
        "CREATE TABLE IF NOT EXISTS wallet_limits (
        wallet_id       BIGINT NOT NULL PRIMARY KEY,
        per_transaction BIGINT NOT NULL CHECK (per_transaction >= 0),
        daily           BIGINT NOT NULL,
        monthly         BIGINT NOT NULL
    ) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci",
    ),
    Step::Sql(
        "CREATE TABLE IF NOT EXISTS merchants (
        id         BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        wallet_id  BIGINT NOT NULL,
        name       VARCHAR(500) NOT NULL,
        created_at BIGINT NOT NULL,
        UNIQUE KEY merchants_by_wallet (wallet_id)
    ) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci",
    ),
    Step::Sql(
        "CREATE TABLE IF NOT EXISTS merchant_orders (
        merchant_id BIGINT NOT NULL,
        order_id    VARCHAR(128) CHARACTER SET latin1 COLLATE latin1_general_cs NOT NULL,
        txn_id      BIGINT NOT NULL,
        PRIMARY KEY (merchant_id, order_id),
        UNIQUE KEY merchant_orders_by_txn (txn_id)
    ) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci",
    ),
    Step::Sql(
        "CREATE TABLE IF NOT EXISTS payment_links (
        id              BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        code            VARBINARY(16) NOT NULL,
        wallet_id       BIGINT NOT NULL,
        amount          BIGINT NOT NULL CHECK (amount > 0),
        description     TEXT NULL,
        status          BIGINT NOT NULL,
        expires_at      BIGINT NOT NULL,
        paid_txn        BIGINT NULL,
        created_by      BIGINT NOT NULL,
        idempotency_key VARCHAR(128) CHARACTER SET latin1 COLLATE latin1_general_cs NOT NULL,
        fingerprint     VARBINARY(16) NOT NULL,
        created_at      BIGINT NOT NULL,
        UNIQUE KEY payment_links_by_code (code),
        UNIQUE KEY payment_links_by_key (created_by, idempotency_key),
        KEY payment_links_by_wallet (wallet_id, id)
    ) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci",
    ),
    Step::Sql(
        "CREATE TABLE IF NOT EXISTS notifications (
        id         BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        user_id    BIGINT NOT NULL,
        kind       BIGINT NOT NULL,
        priority   BIGINT NOT NULL,
        title      TEXT NOT NULL,
        message    TEXT NOT NULL,
        `read`     BIGINT NOT NULL,
        created_at BIGINT NOT NULL,
        KEY notifications_by_user (user_id, id),
        KEY notifications_unread (user_id, `read`, id)
    ) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci",
    ),
    // The outbox. Concurrent transactions take auto-increment ids in one order and commit in
    // another, so `id` alone would let a reader skip an event committed late. `seq` is given
    // by the sequencer (see `events.rs`) to committed events only, in the order it finds them:
    // a reader paging by `seq` misses nothing.
    Step::Sql(
        "CREATE TABLE IF NOT EXISTS events (
        id      BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        at      BIGINT NOT NULL,
        kind    VARCHAR(64) NOT NULL,
        subject VARCHAR(128) NOT NULL,
        payload TEXT NOT NULL,
        seq     BIGINT NULL,
        UNIQUE KEY events_by_seq (seq)
    ) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci",
    ),
    Step::Sql(
        "CREATE TABLE IF NOT EXISTS event_sequence (
        id       BIGINT NOT NULL PRIMARY KEY,
        last_seq BIGINT NOT NULL
    ) ENGINE = InnoDB",
    ),
    Step::Sql("INSERT IGNORE INTO event_sequence (id, last_seq) VALUES (1, 0)"),
];

/// Version 2, as SQLite's schema 4: money movements' notifications and events stored by
/// reference (the transaction and its status at the time, rendered when read; see
/// `wallet_core::notify::TxnNote`), and one notification index (user, read state, id) instead
/// of two.
const V2: &[Step] = &[
    Step::Sql("ALTER TABLE notifications MODIFY title TEXT NULL, MODIFY message TEXT NULL"),
    Step::AddColumn("notifications", "txn_id", "BIGINT NULL"),
    Step::AddColumn("notifications", "txn_state", "BIGINT NULL"),
    Step::DropIndex("notifications", "notifications_by_user"),
    Step::Sql(
        "ALTER TABLE events MODIFY kind VARCHAR(64) NULL, MODIFY subject VARCHAR(128) NULL,
                            MODIFY payload TEXT NULL",
    ),
    Step::AddColumn("events", "txn_id", "BIGINT NULL"),
    Step::AddColumn("events", "txn_status", "BIGINT NULL"),
    // A row is text or a reference, never both or neither (as SQLite's CHECKs).
    Step::AddCheck(
        "notifications",
        "notifications_text_or_reference",
        "(title IS NULL) = (txn_id IS NOT NULL) AND (message IS NULL) = (txn_id IS NOT NULL)
         AND (txn_state IS NULL) = (txn_id IS NULL)",
    ),
    Step::AddCheck(
        "events",
        "events_text_or_reference",
        "(kind IS NULL) = (txn_id IS NOT NULL) AND (subject IS NULL) = (txn_id IS NOT NULL)
         AND (payload IS NULL) = (txn_id IS NOT NULL) AND (txn_status IS NULL) = (txn_id IS NULL)",
    ),
];

/// Version 3: each wallet row carries its head (the latest entry's sequence number, balance,
/// running debits and posting time) and the running debits before its current day and month
/// (`day_from`, `day_debits`, `month_from`, `month_debits`: the start of the window and the
/// debits before it). Every insert of entries updates them in the same transaction (see
/// `queries::push_entries`), so a command reads its accounts in full with the statement that
/// locks them, instead of seeking each account's latest entry and joining its transaction,
/// and the spend of its limit windows without reading entries. The entries stay the truth:
/// `verify` checks the heads against them. A wallet without entries has head 0; anchors are
/// trusted only when `*_from` is the window's start.
const V3: &[Step] = &[
    Step::AddColumn("wallets", "head_seq", "BIGINT NOT NULL DEFAULT 0"),
    Step::AddColumn("wallets", "head_balance", "BIGINT NOT NULL DEFAULT 0"),
    Step::AddColumn("wallets", "head_debits", "BIGINT NOT NULL DEFAULT 0"),
    Step::AddColumn("wallets", "head_at", "BIGINT NOT NULL DEFAULT 0"),
    Step::AddColumn("wallets", "day_from", "BIGINT NOT NULL DEFAULT 0"),
    Step::AddColumn("wallets", "day_debits", "BIGINT NOT NULL DEFAULT 0"),
    Step::AddColumn("wallets", "month_from", "BIGINT NOT NULL DEFAULT 0"),
    Step::AddColumn("wallets", "month_debits", "BIGINT NOT NULL DEFAULT 0"),
    Step::Sql(HEADS_FROM_ENTRIES),
];

/// Sets every wallet's head from its entries (idempotent): the migration to version 3, and
/// the end of an import.
pub(crate) const HEADS_FROM_ENTRIES: &str = "UPDATE wallets w
     JOIN entries e ON e.wallet_id = w.id
         AND e.seq = (SELECT max(s.seq) FROM entries s WHERE s.wallet_id = w.id)
     JOIN transactions t ON t.id = e.txn_id
     SET w.head_seq = e.seq, w.head_balance = e.balance_after, w.head_debits = e.debits_after,
         w.head_at = coalesce(t.completed_at, t.created_at)";

/// The schema version this code reads and writes.
pub(crate) fn latest_version() -> i64 {
    // The migration list is a short constant; its length always fits in an i64.
    i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX)
}

/// The version recorded in the database (0: none), or an error if the database is not ours.
pub(crate) async fn version(conn: &mut MySqlConnection) -> Result<i64> {
    let has_table: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables
         WHERE table_schema = DATABASE() AND table_name = 'wallet_schema'",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(map_sqlx)?;
    if has_table == 0 {
        let tables: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = DATABASE()",
        )
        .fetch_one(&mut *conn)
        .await
        .map_err(map_sqlx)?;
        return if tables == 0 { Ok(0) } else { Err(not_ours()) };
    }
    let row: Option<(String, i64)> =
        sqlx::query_as("SELECT application, version FROM wallet_schema WHERE id = 1")
            .fetch_optional(&mut *conn)
            .await
            .map_err(map_sqlx)?;
    match row {
        None => Ok(0),
        Some((app, v)) if app == APPLICATION => Ok(v),
        Some(_) => Err(not_ours()),
    }
}

fn not_ours() -> Error {
    Error::StorageCorrupt {
        detail: "not a wallet database (other tables and no wallet_schema row)".into(),
    }
}

/// Checks the database holds exactly the schema this code uses.
pub(crate) async fn check(conn: &mut MySqlConnection) -> Result<()> {
    let found = version(conn).await?;
    if found != latest_version() {
        return Err(Error::SchemaVersion {
            found,
            supported: latest_version(),
        });
    }
    Ok(())
}

/// Brings the schema to the latest version (needs DDL rights). Safe to run again, and from
/// several processes at once.
pub(crate) async fn migrate(conn: &mut MySqlConnection) -> Result<()> {
    let locked: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK('wallet_ledger_migrate', 60)")
        .fetch_one(&mut *conn)
        .await
        .map_err(map_sqlx)?;
    if locked != Some(1) {
        return Err(Error::StorageBusy);
    }
    let result = migrate_locked(conn).await;
    let _ = sqlx::query("DO RELEASE_LOCK('wallet_ledger_migrate')")
        .execute(&mut *conn)
        .await;
    result
}

/// How many rows of `information_schema.{view}` name `table` (and `name`) in this database.
async fn catalog_count(
    conn: &mut MySqlConnection,
    view: &str,
    column: &str,
    table: &str,
    name: &str,
) -> Result<i64> {
    sqlx::query_scalar(&format!(
        "SELECT count(*) FROM information_schema.{view}
         WHERE table_schema = DATABASE() AND table_name = ? AND {column} = ?"
    ))
    .bind(table)
    .bind(name)
    .fetch_one(conn)
    .await
    .map_err(map_sqlx)
}

/// Runs one migration step (each is idempotent).
async fn run(conn: &mut MySqlConnection, step: Step) -> Result<()> {
    let sql = match step {
        Step::Sql(sql) => sql.to_owned(),
        Step::AddColumn(table, column, definition) => {
            if catalog_count(conn, "columns", "column_name", table, column).await? > 0 {
                return Ok(());
            }
            format!("ALTER TABLE `{table}` ADD COLUMN `{column}` {definition}")
        }
        Step::AddCheck(table, name, expression) => {
            if catalog_count(conn, "table_constraints", "constraint_name", table, name).await? > 0 {
                return Ok(());
            }
            format!("ALTER TABLE `{table}` ADD CONSTRAINT `{name}` CHECK ({expression})")
        }
        Step::DropIndex(table, index) => {
            if catalog_count(conn, "statistics", "index_name", table, index).await? == 0 {
                return Ok(());
            }
            format!("ALTER TABLE `{table}` DROP INDEX `{index}`")
        }
    };
    sqlx::raw_sql(&sql).execute(conn).await.map_err(map_sqlx)?;
    Ok(())
}

async fn migrate_locked(conn: &mut MySqlConnection) -> Result<()> {
    let version = version(conn).await?;
    if !(0..=latest_version()).contains(&version) {
        return Err(Error::SchemaVersion {
            found: version,
            supported: latest_version(),
        });
    }
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS wallet_schema (
            id          BIGINT NOT NULL PRIMARY KEY,
            application VARCHAR(32) NOT NULL,
            version     BIGINT NOT NULL
        ) ENGINE = InnoDB",
    )
    .execute(&mut *conn)
    .await
    .map_err(map_sqlx)?;
    sqlx::query("INSERT IGNORE INTO wallet_schema (id, application, version) VALUES (1, ?, 0)")
        .bind(APPLICATION)
        .execute(&mut *conn)
        .await
        .map_err(map_sqlx)?;
    for (from, steps) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(version).unwrap_or(0))
    {
        let from = i64::try_from(from).unwrap_or(i64::MAX);
        for step in *steps {
            run(conn, *step).await?;
        }
        let mut tx = conn.begin().await.map_err(map_sqlx)?;
        sqlx::query("UPDATE wallet_schema SET version = ? WHERE id = 1 AND version = ?")
            .bind(from + 1)
            .bind(from)
            .execute(&mut *tx)
            .await
            .map_err(map_sqlx)?;
        tx.commit().await.map_err(map_sqlx)?;
        tracing::info!(from, to = from + 1, "migrated wallet schema");
    }
    Ok(())
}
