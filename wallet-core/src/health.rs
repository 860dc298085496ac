//! What a store says about itself to a host's health endpoint.
//!
//! [`Store::health`](crate::store::Store::health) answers without scanning a table: one tiny
//! query proves the database answers and reads its schema version; the rest comes from memory
//! (the writer's queue, the connection pool, the time of the last commit this process made).
//! An unreachable or closed store is an answer ([`Health::reachable`] `false`), not an error,
//! so a health endpoint never has to handle one.

use serde::Serialize;

use crate::error::Error;
use crate::time::Timestamp;

/// A store's state, cheap to take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    /// The database answered a query just now.
    pub reachable: bool,
    /// The schema version the database records (`None` when it could not be read).
    pub schema_version: Option<i64>,
    /// The schema version this code reads and writes; a store serves only when both agree.
    pub schema_supported: i64,
    /// Backend-specific state.
    pub backend: BackendHealth,
    /// When this process last committed through this store (`None`: not yet), by the wall
    /// clock. SQLite: the writer's last group commit (one may hold only refused commands).
    /// MySQL: the last command that succeeded; other processes sharing the database are not
    /// seen.
    pub last_commit: Option<Timestamp>,
    /// Why the store is not healthy: the stable [`Error::code`] of the failed check (`store_closed`,
    /// `storage_unavailable`, `schema_version`, ...); `None` when healthy.
    pub problem: Option<&'static str>,
}

impl Health {
    /// A store that answered, with its schema version read.
    pub fn answered(schema_version: i64, schema_supported: i64, backend: BackendHealth) -> Self {
        let problem = (schema_version != schema_supported).then(|| {
            Error::SchemaVersion {
                found: schema_version,
                supported: schema_supported,
            }
            .code()
        });
        Health {
            reachable: true,
            schema_version: Some(schema_version),
            schema_supported,
            backend,
            last_commit: None,
            problem,
        }
    }

    /// A store whose check failed with `error`.
    pub fn unreachable(error: &Error, schema_supported: i64, backend: BackendHealth) -> Self {
        Health {
            reachable: false,
            schema_version: None,
            schema_supported,
            backend,
            last_commit: None,
            problem: Some(error.code()),
        }
    }

    /// With the time of the last commit.
    pub fn with_last_commit(mut self, last_commit: Option<Timestamp>) -> Self {
        self.last_commit = last_commit;
        self
    }

    /// Reachable, on the schema this code uses, with nothing wrong.
    pub fn is_healthy(&self) -> bool {
        self.reachable && self.problem.is_none()
    }
}

/// What only one backend can tell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum BackendHealth {
    /// The embedded SQLite store: its single writer thread and its queue.
    Sqlite {
        /// Commands waiting for the writer now.
        writer_queued: u64,
        /// How many may wait before callers are made to wait
        /// (`Options::queue_depth`): a queue near it means the writer cannot keep up.
        writer_queue_capacity: u32,
        /// Group commits that reached the disk since the store opened.
        commits: u64,
    },
    /// The MySQL / MariaDB store: its connection pool.
    MySql {
        /// Connections open now.
        connections: u32,
        /// Of which idle.
        idle: u32,
        /// Most the pool may open: all busy means callers wait for one.
        connections_max: u32,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite() -> BackendHealth {
        BackendHealth::Sqlite {
            writer_queued: 0,
            writer_queue_capacity: 8,
            commits: 0,
        }
    }

    #[test]
    fn a_schema_mismatch_is_a_problem() {
        assert!(Health::answered(3, 3, sqlite()).is_healthy());
        let old = Health::answered(2, 3, sqlite());
        assert!(old.reachable);
        assert!(!old.is_healthy());
        assert_eq!(old.problem, Some("schema_version"));
    }

    #[test]
    fn an_unreachable_store_names_its_error() {
        let h = Health::unreachable(&Error::Closed, 3, sqlite());
        assert!(!h.reachable);
        assert!(!h.is_healthy());
        assert_eq!(h.problem, Some("store_closed"));
        assert_eq!(h.schema_version, None);
    }

    #[test]
    fn serializes_for_a_health_endpoint() {
        let h = Health::answered(3, 3, sqlite()).with_last_commit(Some(Timestamp::from_secs(1)));
        let json = serde_json::to_value(&h).unwrap();
        assert_eq!(json["backend"]["kind"], "sqlite");
        assert_eq!(json["backend"]["writer_queue_capacity"], 8);
        assert_eq!(json["last_commit"], 1_000_000);
        assert_eq!(json["problem"], serde_json::Value::Null);
    }
}
