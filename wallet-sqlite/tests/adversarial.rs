//! Hostile input, cross-user access and session ends (`wallet_core::testkit::adversarial_cases`)
//! on an in-memory store.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

wallet_core::adversarial_suite!(|| async {
    wallet_sqlite::SqliteStore::open_in_memory(wallet_sqlite::Options::default()).unwrap()
});
