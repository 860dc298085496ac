//! The schema and its versioned migrations.
//!
//! `PRAGMA user_version` holds the schema version; `PRAGMA application_id` marks the file as a
//! wallet database so the library never migrates somebody else's file. Each migration runs in
//! its own `BEGIN IMMEDIATE` transaction together with the version bump, so an interrupted
//! upgrade leaves the database at the previous version, never in between.
//!
//! Money columns are 64-bit minor units. Enumerations are small integers (their mapping lives
//! in `wallet-core`, `to_db`/`from_db`), timestamps are microseconds since the Unix epoch.

use rusqlite::{Connection, TransactionBehavior};
use wallet_core::{Error, Result};

use crate::error::map_sqlite;

/// Marks a SQLite file as a wallet database ("WLET").
pub(crate) const APPLICATION_ID: i64 = 0x574C_4554;

/// Migrations in order; migration `i` takes the schema from version `i` to `i + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[
    // Version 1: currencies, wallets and system accounts, transactions, entries.
    r#"
    CREATE TABLE currencies (
        code     TEXT PRIMARY KEY NOT NULL,
        exponent INTEGER NOT NULL CHECK (exponent BETWEEN 0 AND 18)
    ) STRICT, WITHOUT ROWID;

    -- Customer wallets (owner set, kind < 100) and system accounts (no owner, kind >= 100).
    -- A wallet's balance is not stored here: it is the balance_after of its latest entry.
    CREATE TABLE wallets (
        id         INTEGER PRIMARY KEY,
        owner_id   INTEGER CHECK (owner_id > 0),
        kind       INTEGER NOT NULL,
        currency   TEXT NOT NULL REFERENCES currencies (code),
        status     INTEGER NOT NULL,
        held       INTEGER NOT NULL DEFAULT 0 CHECK (held >= 0),
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        CHECK ((owner_id IS NULL) = (kind >= 100))
    ) STRICT;
    CREATE UNIQUE INDEX wallets_by_owner ON wallets (owner_id, kind, currency)
        WHERE owner_id IS NOT NULL;
    CREATE UNIQUE INDEX system_accounts ON wallets (kind, currency) WHERE owner_id IS NULL;
    CREATE INDEX wallets_by_currency ON wallets (currency);

    -- The idempotency key is scoped to the user who initiated the transaction. The fingerprint
    -- identifies the request's parameters so a replay can be told from a conflict.
    CREATE TABLE transactions (
        id              INTEGER PRIMARY KEY,
        kind            INTEGER NOT NULL,
        status          INTEGER NOT NULL,
        amount          INTEGER NOT NULL CHECK (amount > 0),
        currency        TEXT NOT NULL,
        description     TEXT,
        metadata        TEXT,
        initiated_by    INTEGER NOT NULL CHECK (initiated_by > 0),
        idempotency_key TEXT NOT NULL,
        fingerprint     BLOB NOT NULL CHECK (length(fingerprint) = 16),
        created_at      INTEGER NOT NULL,
        completed_at    INTEGER
    ) STRICT;
    CREATE UNIQUE INDEX transactions_by_key ON transactions (initiated_by, idempotency_key);

    -- Each account's entries form a chain numbered 1, 2, 3, ... (seq). Clustering by
    -- (wallet_id, seq) makes a wallet's history one contiguous range and its latest entry
    -- (its balance) one seek. debits_after is the running total of debits, so credit and
    -- debit totals over any range are the difference of two rows.
    CREATE TABLE entries (
        wallet_id     INTEGER NOT NULL REFERENCES wallets (id),
        seq           INTEGER NOT NULL CHECK (seq > 0),
        txn_id        INTEGER NOT NULL REFERENCES transactions (id),
        amount        INTEGER NOT NULL CHECK (amount <> 0),
        balance_after INTEGER NOT NULL,
        debits_after  INTEGER NOT NULL,
        PRIMARY KEY (wallet_id, seq)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX entries_by_txn ON entries (txn_id);
    "#,
    // Version 2: users, the audit log, payment methods, and the indexes of the admin views.
    r#"
    -- Username and e-mail are stored normalized (lower-case), so plain UNIQUE makes them
    -- unique case-insensitively. A deleted user keeps the row (the ledger refers to it) with
    -- personal data and password erased (NULL).
    CREATE TABLE users (
        id            INTEGER PRIMARY KEY,
        username      TEXT UNIQUE,
        email         TEXT UNIQUE,
        full_name     TEXT,
        phone         TEXT,
        national_id   TEXT,
        role          INTEGER NOT NULL,
        active        INTEGER NOT NULL CHECK (active IN (0, 1)),
        kyc           INTEGER NOT NULL,
        kyc_reason    TEXT,
        password      TEXT,
        token_version INTEGER NOT NULL CHECK (token_version >= 0),
        created_at    INTEGER NOT NULL,
        updated_at    INTEGER NOT NULL,
        deleted_at    INTEGER,
        CHECK ((deleted_at IS NULL) = (username IS NOT NULL AND email IS NOT NULL))
    ) STRICT;
    CREATE INDEX users_by_role ON users (role, active);

    -- Version 1 had wallet owners but no user records. Each such owner becomes a user with
    -- their own id (so later users never inherit their wallets), a placeholder identity, no
    -- password (they cannot log in until a host gives them one) and KYC PENDING: role USER
    -- (1), active, PENDING (1).
    INSERT INTO users (id, username, email, full_name, phone, role, active, kyc,
                       token_version, created_at, updated_at)
    SELECT owner_id, 'legacy-' || owner_id, 'legacy-' || owner_id || '@legacy.invalid',
           'Owner ' || owner_id, '+10000000000', 1, 1, 1, 0, min(created_at), min(created_at)
    FROM wallets WHERE owner_id IS NOT NULL GROUP BY owner_id;

    CREATE TABLE audit_log (
        id       INTEGER PRIMARY KEY,
        at       INTEGER NOT NULL,
        actor_id INTEGER,
        action   INTEGER NOT NULL,
        target   TEXT,
        detail   TEXT,
        outcome  TEXT NOT NULL
    ) STRICT;
    CREATE INDEX audit_by_actor ON audit_log (actor_id, id);
    CREATE INDEX audit_by_target ON audit_log (target, id);
    CREATE INDEX audit_by_time ON audit_log (at);

    -- Payment methods hold only the provider's token and masked display data (JSON).
    -- At most one default per owner.
    CREATE TABLE payment_methods (
        id           INTEGER PRIMARY KEY,
        owner_id     INTEGER NOT NULL REFERENCES users (id),
        kind         INTEGER NOT NULL,
        provider     TEXT NOT NULL,
        token        TEXT NOT NULL,
        display      TEXT NOT NULL,
        nickname     TEXT,
        is_default   INTEGER NOT NULL CHECK (is_default IN (0, 1)),
        verified     INTEGER NOT NULL CHECK (verified IN (0, 1)),
        status       INTEGER NOT NULL,
        created_at   INTEGER NOT NULL,
        updated_at   INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX payment_methods_by_owner ON payment_methods (owner_id, id);
    CREATE UNIQUE INDEX payment_methods_default ON payment_methods (owner_id)
        WHERE is_default = 1;

    -- Admin lists: transactions by time, wallets by status.
    CREATE INDEX transactions_by_time ON transactions (created_at);
    CREATE INDEX wallets_by_status ON wallets (status, id);
    "#,
    // Version 3: payments and rules: refunds, holds and pending top-ups, limits, merchants,
    // payment links, notifications, the event feed, and the new system accounts.
    r#"
    ALTER TABLE transactions ADD COLUMN refunded INTEGER NOT NULL DEFAULT 0 CHECK (refunded >= 0);
    ALTER TABLE transactions ADD COLUMN original_id INTEGER REFERENCES transactions (id);

    -- Holds and pending top-ups. `held` is what the hold reserves on `wallet_id` while open
    -- (zero for top-ups and once closed). The partial indexes hold only open rows.
    CREATE TABLE pending (
        txn_id      INTEGER PRIMARY KEY REFERENCES transactions (id),
        wallet_id   INTEGER NOT NULL REFERENCES wallets (id),
        counter_id  INTEGER REFERENCES wallets (id),
        amount      INTEGER NOT NULL CHECK (amount > 0),
        held        INTEGER NOT NULL CHECK (held >= 0),
        gateway_ref TEXT UNIQUE,
        expires_at  INTEGER NOT NULL,
        open        INTEGER NOT NULL CHECK (open IN (0, 1))
    ) STRICT;
    CREATE INDEX pending_due ON pending (expires_at) WHERE open = 1;
    CREATE INDEX pending_by_wallet ON pending (wallet_id, expires_at) WHERE open = 1;

    -- Limits differing from the defaults.
    CREATE TABLE wallet_limits (
        wallet_id       INTEGER PRIMARY KEY REFERENCES wallets (id),
        per_transaction INTEGER NOT NULL CHECK (per_transaction >= 0),
        daily           INTEGER NOT NULL CHECK (daily >= per_transaction),
        monthly         INTEGER NOT NULL CHECK (monthly >= daily)
    ) STRICT;

    CREATE TABLE merchants (
        id         INTEGER PRIMARY KEY,
        wallet_id  INTEGER NOT NULL UNIQUE REFERENCES wallets (id),
        name       TEXT NOT NULL,
        created_at INTEGER NOT NULL
    ) STRICT;
    -- One payment per merchant and order; a hold that does not complete frees its order.
    CREATE TABLE merchant_orders (
        merchant_id INTEGER NOT NULL REFERENCES merchants (id),
        order_id    TEXT NOT NULL,
        txn_id      INTEGER NOT NULL UNIQUE REFERENCES transactions (id),
        PRIMARY KEY (merchant_id, order_id)
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE payment_links (
        id              INTEGER PRIMARY KEY,
        code            BLOB NOT NULL UNIQUE CHECK (length(code) = 16),
        wallet_id       INTEGER NOT NULL REFERENCES wallets (id),
        amount          INTEGER NOT NULL CHECK (amount > 0),
        description     TEXT,
        status          INTEGER NOT NULL,
        expires_at      INTEGER NOT NULL,
        paid_txn        INTEGER REFERENCES transactions (id),
        created_by      INTEGER NOT NULL,
        idempotency_key TEXT NOT NULL,
        fingerprint     BLOB NOT NULL CHECK (length(fingerprint) = 16),
        created_at      INTEGER NOT NULL
    ) STRICT;
    CREATE UNIQUE INDEX payment_links_by_key ON payment_links (created_by, idempotency_key);
    CREATE INDEX payment_links_by_wallet ON payment_links (wallet_id, id);

    CREATE TABLE notifications (
        id         INTEGER PRIMARY KEY,
        user_id    INTEGER NOT NULL,
        kind       INTEGER NOT NULL,
        priority   INTEGER NOT NULL,
        title      TEXT NOT NULL,
        message    TEXT NOT NULL,
        read       INTEGER NOT NULL CHECK (read IN (0, 1)),
        created_at INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX notifications_by_user ON notifications (user_id, id);
    CREATE INDEX notifications_unread ON notifications (user_id, id) WHERE read = 0;

    -- The outbox: ids increase in commit order (one writer; rows are never deleted by the
    -- library).
    CREATE TABLE events (
        id      INTEGER PRIMARY KEY,
        at      INTEGER NOT NULL,
        kind    TEXT NOT NULL,
        subject TEXT NOT NULL,
        payload TEXT NOT NULL
    ) STRICT;

    -- Fee revenue (102) and exchange (103) accounts for currencies recorded before them.
    INSERT INTO wallets (owner_id, kind, currency, status, held, created_at, updated_at)
    SELECT NULL, k.kind, w.currency, 1, 0, w.created_at, w.created_at
    FROM wallets w CROSS JOIN (SELECT 102 AS kind UNION ALL SELECT 103) k
    WHERE w.owner_id IS NULL AND w.kind = 101;
    "#,
    // Version 4: money movements' notifications and events stored by reference. A transfer
    // leaves two notifications and an event; as text they were most of its bytes on disk
    // (about 380 of 650). A row that refers to a transaction keeps its id and the status (and
    // direction) at the time, and is rendered when read from the transaction's kind and
    // amount, which never change. Notifications get one index (user, read state, id) instead
    // of two, which serves the unread count, the unread list and, in two ranges, the full list.
    r#"
    CREATE TABLE notifications_v4 (
        id         INTEGER PRIMARY KEY,
        user_id    INTEGER NOT NULL,
        kind       INTEGER NOT NULL,
        priority   INTEGER NOT NULL,
        title      TEXT,
        message    TEXT,
        read       INTEGER NOT NULL CHECK (read IN (0, 1)),
        created_at INTEGER NOT NULL,
        txn_id     INTEGER REFERENCES transactions (id),
        txn_state  INTEGER,
        CHECK ((title IS NULL) = (txn_id IS NOT NULL) AND (message IS NULL) = (txn_id IS NOT NULL)
               AND (txn_state IS NULL) = (txn_id IS NULL))
    ) STRICT;
    INSERT INTO notifications_v4 (id, user_id, kind, priority, title, message, read, created_at)
    SELECT id, user_id, kind, priority, title, message, read, created_at FROM notifications;
    DROP TABLE notifications;
    ALTER TABLE notifications_v4 RENAME TO notifications;
    CREATE INDEX notifications_by_user ON notifications (user_id, read, id);

    CREATE TABLE events_v4 (
        id         INTEGER PRIMARY KEY,
        at         INTEGER NOT NULL,
        kind       TEXT,
        subject    TEXT,
        payload    TEXT,
        txn_id     INTEGER REFERENCES transactions (id),
        txn_status INTEGER,
        CHECK ((kind IS NULL) = (txn_id IS NOT NULL) AND (subject IS NULL) = (txn_id IS NOT NULL)
               AND (payload IS NULL) = (txn_id IS NOT NULL)
               AND (txn_status IS NULL) = (txn_id IS NULL))
    ) STRICT;
    INSERT INTO events_v4 (id, at, kind, subject, payload)
    SELECT id, at, kind, subject, payload FROM events;
    DROP TABLE events;
    ALTER TABLE events_v4 RENAME TO events;
    "#,
    // Version 5: a money movement's notification is kept on the entry it is about. As a row
    // indexed by user, each of a transfer's two notifications cost an insert at a random place
    // in the index, one more page written at every commit (with 64 callers a third of the
    // throughput). The entry, which the movement writes anyway, now keeps the notification's
    // id and state; its user is the wallet's owner and its text is rendered from the
    // transaction. Other notifications stay rows. One sequence gives ids to both, so they
    // keep increasing in commit order. See `notes.rs`.
    r#"
    -- note_id: the notification's id (NULL: none); note: its state (TxnNote::state) times two,
    -- plus one once marked read on its own; note_delay: its time minus the transaction's
    -- completed_at (NULL: 0); note_last, on an entry of a customer wallet that carries none:
    -- the seq of the wallet's latest earlier entry that does (NULL: none).
    ALTER TABLE entries ADD COLUMN note_id INTEGER CHECK (note_id > 0);
    ALTER TABLE entries ADD COLUMN note INTEGER CHECK (note >= 0);
    ALTER TABLE entries ADD COLUMN note_delay INTEGER;
    ALTER TABLE entries ADD COLUMN note_last INTEGER CHECK (note_last > 0);
    -- Every notification an entry of the wallet at or below this seq carries is read.
    ALTER TABLE wallets ADD COLUMN notes_read_upto INTEGER NOT NULL DEFAULT 0
        CHECK (notes_read_upto >= 0);

    -- Counters the writer keeps (one row each), read once per transaction that needs them.
    CREATE TABLE sequences (
        name TEXT PRIMARY KEY NOT NULL,
        next INTEGER NOT NULL CHECK (next > 0)
    ) STRICT, WITHOUT ROWID;
    INSERT INTO sequences (name, next)
    SELECT 'notification', coalesce(max(id), 0) + 1 FROM notifications;
    "#,
];

/// The schema version this code reads and writes.
pub(crate) fn latest_version() -> i64 {
    // The migration list is a short constant; its length always fits in an i64.
    i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX)
}

fn pragma_i64(conn: &Connection, name: &str) -> Result<i64> {
    conn.pragma_query_value(None, name, |r| r.get(0))
        .map_err(map_sqlite)
}

/// Whether the file holds anything at all (a fresh file holds nothing).
fn is_empty(conn: &Connection) -> Result<bool> {
    let n: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
        .map_err(map_sqlite)?;
    Ok(n == 0)
}

/// Checks the file is ours and brings its schema to `target` (normally the latest).
///
/// Refuses a file that belongs to another application, and a schema newer than this code.
pub(crate) fn migrate_to(conn: &mut Connection, target: i64) -> Result<()> {
    let app = pragma_i64(conn, "application_id")?;
    let version = pragma_i64(conn, "user_version")?;
    if app != APPLICATION_ID && !(app == 0 && version == 0 && is_empty(conn)?) {
        return Err(Error::StorageCorrupt {
            detail: "not a wallet database".into(),
        });
    }
    if version > latest_version() || version < 0 {
        return Err(Error::SchemaVersion {
            found: version,
            supported: latest_version(),
        });
    }
    for (from, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(version).unwrap_or(0))
    {
        let from = i64::try_from(from).unwrap_or(i64::MAX);
        if from >= target {
            break;
        }
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(map_sqlite)?;
        // Re-read inside the write lock: another process may have migrated meanwhile.
        let current = pragma_i64(&tx, "user_version")?;
        if current == from {
            tx.execute_batch(sql).map_err(map_sqlite)?;
            tx.pragma_update(None, "user_version", from + 1)
                .map_err(map_sqlite)?;
            tx.pragma_update(None, "application_id", APPLICATION_ID)
                .map_err(map_sqlite)?;
            tracing::info!(from, to = from + 1, "migrated wallet schema");
        }
        tx.commit().map_err(map_sqlite)?;
    }
    Ok(())
}

/// Checks a connection sees the schema this code expects (for read-only connections).
pub(crate) fn check_version(conn: &Connection) -> Result<()> {
    let version = pragma_i64(conn, "user_version")?;
    if version != latest_version() {
        return Err(Error::SchemaVersion {
            found: version,
            supported: latest_version(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod kill;

/// The schema as SQLite reports it, normalized for comparison.
#[cfg(test)]
fn dump(conn: &Connection) -> Vec<(String, String, String)> {
    let mut stmt = conn
        .prepare(
            "SELECT type, name, sql FROM sqlite_schema WHERE sql IS NOT NULL ORDER BY type, name",
        )
        .unwrap();
    stmt.query_map([], |r| {
        let sql: String = r.get(2)?;
        Ok((
            r.get(0)?,
            r.get(1)?,
            sql.split_whitespace().collect::<Vec<_>>().join(" "),
        ))
    })
    .unwrap()
    .map(|r| r.unwrap())
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate_to(&mut conn, latest_version()).unwrap();
        conn
    }

    #[test]
    fn every_older_schema_upgrades_to_the_fresh_one() {
        let expected = dump(&fresh());
        assert!(!expected.is_empty());
        for start in 0..latest_version() {
            let mut conn = Connection::open_in_memory().unwrap();
            migrate_to(&mut conn, start).unwrap();
            assert_eq!(pragma_i64(&conn, "user_version").unwrap(), start);
            migrate_to(&mut conn, latest_version()).unwrap();
            assert_eq!(dump(&conn), expected, "upgrade from version {start}");
            assert_eq!(pragma_i64(&conn, "user_version").unwrap(), latest_version());
        }
    }

    #[test]
    fn version_1_owners_become_users_and_keep_their_ids() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate_to(&mut conn, 1).unwrap();
        conn.execute_batch(
            "INSERT INTO currencies VALUES ('USD', 2);
             INSERT INTO wallets (owner_id, kind, currency, status, created_at, updated_at)
             VALUES (7, 1, 'USD', 1, 5, 5), (7, 2, 'USD', 1, 6, 6), (3, 1, 'USD', 1, 9, 9);",
        )
        .unwrap();
        migrate_to(&mut conn, latest_version()).unwrap();
        let ids: Vec<i64> = conn
            .prepare("SELECT id FROM users ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(ids, vec![3, 7]);
        let owner = crate::users::user(&conn, wallet_core::UserId::new(7).unwrap())
            .unwrap()
            .unwrap();
        assert!(owner.password.is_none() && owner.active && !owner.is_deleted());
        assert_eq!(owner.created_at, wallet_core::Timestamp::from_micros(5));
        // The next user gets a fresh id, never an old owner's.
        conn.execute_batch(
            "INSERT INTO users (username, email, full_name, phone, role, active, kyc,
                                token_version, created_at, updated_at)
             VALUES ('new', 'new@example.com', 'New', '+14155550100', 1, 1, 1, 0, 1, 1)",
        )
        .unwrap();
        assert_eq!(conn.last_insert_rowid(), 8);
    }

    #[test]
    fn migrating_twice_changes_nothing() {
        let mut conn = fresh();
        let before = dump(&conn);
        migrate_to(&mut conn, latest_version()).unwrap();
        assert_eq!(dump(&conn), before);
    }

    #[test]
    fn refuses_newer_schema() {
        let conn = fresh();
        conn.pragma_update(None, "user_version", latest_version() + 1)
            .unwrap();
        let mut conn = conn;
        assert_eq!(
            migrate_to(&mut conn, latest_version()).unwrap_err(),
            Error::SchemaVersion {
                found: latest_version() + 1,
                supported: latest_version()
            }
        );
        assert_eq!(check_version(&conn).unwrap_err().code(), "schema_version");
    }

    #[test]
    fn refuses_foreign_databases() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE customers (id INTEGER PRIMARY KEY)")
            .unwrap();
        assert_eq!(
            migrate_to(&mut conn, latest_version()).unwrap_err().code(),
            "storage_corrupt"
        );
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "application_id", 42).unwrap();
        assert_eq!(
            migrate_to(&mut conn, latest_version()).unwrap_err().code(),
            "storage_corrupt"
        );
    }
}
