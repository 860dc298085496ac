//! The shared conformance suite, each case on its own fresh database, connected as a user
//! that may only SELECT, INSERT, UPDATE and DELETE.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

wallet_core::conformance_suite!(|| async { common::fresh_store().await });
