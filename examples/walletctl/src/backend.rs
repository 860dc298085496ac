//! Stores named by URL: the one place that knows which backends this tool is built with.
//!
//! Adding a backend is three edits in this file: a [`Location`] parsed from its URL scheme, an
//! [`AnyStore`] variant opened from it, and an arm of [`with_store!`](crate::with_store). The
//! commands are generic over [`wallet_core::portable::Portable`] and need no change.

use std::path::PathBuf;

use wallet_mysql::{ConnectOptions, MySqlStore};
use wallet_sqlite::{Options, SqliteStore};

use crate::Failure;

/// Where a store lives, as a URL names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Location {
    /// `sqlite://path/to/file.db` (relative) or `sqlite:///abs/path.db`.
    Sqlite(PathBuf),
    /// `mysql://user:password@host:port/database`.
    Mysql(String),
}

impl Location {
    pub(crate) fn parse(url: &str) -> Result<Self, Failure> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(Failure::Usage(format!("{url}: the URL names no file")));
            }
            return Ok(Location::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("mysql://") {
            return Ok(Location::Mysql(url.to_owned()));
        }
        Err(Failure::Usage(format!(
            "{url}: unsupported URL (expected sqlite://path/to/file.db or mysql://…)"
        )))
    }
}

/// Whether opening may create an empty store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Open {
    /// The store must already exist (export, verify, the source of a copy).
    Existing,
    /// An empty store is created if there is none (import, migrate, the target of a copy).
    MayCreate,
}

/// An open store of any backend this tool is built with.
pub(crate) enum AnyStore {
    /// A SQLite database file.
    Sqlite(SqliteStore),
    /// A MySQL or MariaDB database.
    Mysql(MySqlStore),
}

/// Runs `$body` with `$store` bound to the concrete store inside an [`AnyStore`].
#[macro_export]
macro_rules! with_store {
    ($any:expr, $store:ident => $body:expr) => {
        match $any {
            $crate::backend::AnyStore::Sqlite($store) => $body,
            $crate::backend::AnyStore::Mysql($store) => $body,
        }
    };
}

impl AnyStore {
    /// Opens the store at `url`, migrating its schema to the latest version.
    pub(crate) async fn open(url: &str, how: Open) -> Result<Self, Failure> {
        match Location::parse(url)? {
            Location::Sqlite(path) => {
                if how == Open::Existing && !path.exists() {
                    return Err(Failure::Other(format!("{}: no such file", path.display())));
                }
                Ok(AnyStore::Sqlite(SqliteStore::open(
                    &path,
                    Options::default(),
                )?))
            }
            Location::Mysql(url) => {
                // The database itself must exist; its schema is created or brought up to date
                // when the command may create (this needs a user with DDL rights).
                let options = ConnectOptions::default();
                if how == Open::MayCreate {
                    wallet_mysql::migrate(&url, &options).await?;
                }
                Ok(AnyStore::Mysql(MySqlStore::connect(&url, options).await?))
            }
        }
    }

    /// Lets queued work finish and closes the store.
    pub(crate) async fn close(&self) {
        match self {
            AnyStore::Sqlite(store) => store.close(),
            AnyStore::Mysql(store) => store.close().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_backends() {
        assert_eq!(
            Location::parse("sqlite://data/w.db").unwrap(),
            Location::Sqlite(PathBuf::from("data/w.db"))
        );
        assert_eq!(
            Location::parse("sqlite:///tmp/w.db").unwrap(),
            Location::Sqlite(PathBuf::from("/tmp/w.db"))
        );
        assert_eq!(
            Location::parse("mysql://u@h/db").unwrap(),
            Location::Mysql("mysql://u@h/db".into())
        );
        for bad in ["sqlite://", "w.db", "postgres://h/db", ""] {
            assert!(
                matches!(Location::parse(bad), Err(Failure::Usage(_))),
                "{bad}"
            );
        }
    }
}
