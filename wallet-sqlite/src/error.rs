//! Mapping SQLite errors to the library's typed errors.

use rusqlite::ErrorCode;
use wallet_core::Error;

/// Maps a rusqlite error to the public error type. Conditions a caller can act on (full disk,
/// read-only file, lock contention, corruption) get their own variants.
pub(crate) fn map_sqlite(e: rusqlite::Error) -> Error {
    match &e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            ErrorCode::DiskFull => Error::StorageFull,
            ErrorCode::ReadOnly => Error::StorageReadOnly,
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => Error::StorageBusy,
            ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => Error::StorageCorrupt {
                detail: e.to_string(),
            },
            ErrorCode::ConstraintViolation => Error::Internal {
                detail: format!("constraint violated: {e}"),
            },
            _ => Error::Storage {
                detail: e.to_string(),
            },
        },
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::InvalidColumnType(..) => Error::StorageCorrupt {
            detail: e.to_string(),
        },
        _ => Error::Storage {
            detail: e.to_string(),
        },
    }
}
