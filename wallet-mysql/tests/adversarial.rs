//! Hostile input, cross-user access and session ends (`wallet_core::testkit::adversarial_cases`),
//! each case on its own fresh database.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

wallet_core::adversarial_suite!(|| async { common::fresh_store().await });
