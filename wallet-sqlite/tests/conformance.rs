//! The shared conformance suite, on an in-memory store and on a file store.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod memory {
    wallet_core::conformance_suite!(|| async {
        wallet_sqlite::SqliteStore::open_in_memory(wallet_sqlite::Options::default()).unwrap()
    });
}

mod file {
    use std::sync::atomic::{AtomicU64, Ordering};

    static NEXT: AtomicU64 = AtomicU64::new(0);

    /// A store on a fresh file; the directory is removed when the process exits.
    fn fresh() -> wallet_sqlite::SqliteStore {
        let dir = std::env::temp_dir().join(format!("wallet-conformance-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}.db", NEXT.fetch_add(1, Ordering::Relaxed)));
        wallet_sqlite::SqliteStore::open(path, wallet_sqlite::Options::default()).unwrap()
    }

    wallet_core::conformance_suite!(|| async { fresh() });
}
