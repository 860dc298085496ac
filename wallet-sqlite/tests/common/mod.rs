//! Helpers shared by the SQLite integration tests (see `wallet_core::testkit::storage`).

#![allow(unused_imports)] // each test crate uses a different subset

pub(crate) mod tmpfs;

pub(crate) use wallet_core::testkit::storage::{funded_wallets, ledger, user};
