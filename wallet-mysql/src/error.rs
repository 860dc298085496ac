//! Mapping MySQL errors to the library's typed errors, and telling which ones a retry fixes.

use wallet_core::Error;

/// ER_LOCK_DEADLOCK: InnoDB chose this transaction as a deadlock victim and rolled it back.
const DEADLOCK: u16 = 1213;
/// ER_LOCK_WAIT_TIMEOUT: a row lock was not granted in `innodb_lock_wait_timeout`.
const LOCK_WAIT_TIMEOUT: u16 = 1205;
/// ER_DUP_ENTRY: a unique key already holds the value (a concurrent insert won).
const DUPLICATE: u16 = 1062;
/// ER_CHECKREAD (MariaDB with snapshot isolation): the row changed since it was read.
const CHANGED_SINCE_READ: u16 = 1020;
/// TiDB: write conflict in optimistic transactions.
const TIDB_WRITE_CONFLICT: u16 = 9007;
/// ER_OPTION_PREVENTS_STATEMENT (read-only server), ER_READ_ONLY_TRANSACTION.
const READ_ONLY: [u16; 2] = [1290, 1792];
/// ER_RECORD_FILE_FULL, ER_DISK_FULL (and "out of disk space" variants).
const FULL: [u16; 3] = [1114, 1021, 3_023];

/// How an unretried lost race for a unique key starts its detail (the writer retries those).
pub(crate) const DUPLICATE_DETAIL: &str = "unique key violated";

/// How the detail of an error starts when the connection to the server broke.
pub(crate) const LOST: &str = "connection lost";

/// Whether `e` says the connection broke (the server restarted, or killed it). A read may
/// then run again on another connection; a command only if it had not started.
pub(crate) fn is_lost(e: &Error) -> bool {
    matches!(e, Error::Storage { detail } if detail.starts_with(LOST))
}

/// The server's error number, if `e` is an error the server reported.
pub(crate) fn server_code(e: &sqlx::Error) -> Option<u16> {
    match e {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
            .map(sqlx::mysql::MySqlDatabaseError::number),
        _ => None,
    }
}

/// Maps a sqlx error to the public error type.
pub(crate) fn map_sqlx(e: sqlx::Error) -> Error {
    if let Some(code) = server_code(&e) {
        return match code {
            DEADLOCK | LOCK_WAIT_TIMEOUT | CHANGED_SINCE_READ | TIDB_WRITE_CONFLICT => {
                Error::StorageBusy
            }
            c if READ_ONLY.contains(&c) => Error::StorageReadOnly,
            c if FULL.contains(&c) => Error::StorageFull,
            DUPLICATE => Error::Internal {
                detail: format!("{DUPLICATE_DETAIL}: {e}"),
            },
            _ => Error::Storage {
                detail: e.to_string(),
            },
        };
    }
    match e {
        sqlx::Error::Io(_) => Error::Storage {
            detail: format!("{LOST}: {e}"),
        },
        sqlx::Error::PoolTimedOut => Error::StorageBusy,
        sqlx::Error::PoolClosed => Error::Closed,
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::Decode(_) => Error::StorageCorrupt {
            detail: e.to_string(),
        },
        other => Error::Storage {
            detail: other.to_string(),
        },
    }
}
