//! Fuzz target bodies for the wallet library.
//!
//! Each public function takes the fuzzer's bytes and panics only when it finds a defect: a
//! panic inside the library, an error that is not one of the library's typed errors, or a
//! broken invariant (a ledger that no longer verifies, a value that does not read back). The
//! cargo-fuzz binaries in `fuzz/fuzz_targets/` call these functions, and so does the replay
//! test (`tests/replay.rs`), which runs every committed corpus file on the stable toolchain.
//!
//! | target | what it drives |
//! |---|---|
//! | [`amount`] | amount text, currency codes, decimal to minor units and back |
//! | [`jwt`] | session-token verification: raw text, tampered tokens, forged claims |
//! | [`history`] | history queries and cursors, run against a small ledger and checked against a brute-force filter |
//! | [`import`] | the portable-ledger reader and an import into an empty store |
//! | [`csv`] | CSV rows: every cell reads back, formula cells are neutralized |
//! | [`commands`] | sequences of service calls on an in-memory store, `verify()` after each |

// Fuzz targets report a defect by panicking: that is how libFuzzer and the replay test see it.
#![allow(clippy::panic)]

mod amount;
mod commands;
mod csv;
mod history;
mod import;
mod input;
mod jwt;

pub use amount::amount;
pub use commands::commands;
pub use csv::csv;
pub use history::history;
pub use import::import;
pub use jwt::jwt;

/// A target's body: it panics on a defect.
pub type Target = fn(&[u8]);

/// Every target, by the name of its corpus directory (`fuzz/corpus/<name>/`).
pub const TARGETS: [(&str, Target); 6] = [
    ("amount", amount),
    ("jwt", jwt),
    ("history", history),
    ("import", import),
    ("csv", csv),
    ("commands", commands),
];

/// Panics unless `error` is one of the library's typed errors: a caller can act on it (bad
/// input, not found, forbidden, conflict, rejected, throttled), as opposed to an internal
/// failure or corruption, which no input may cause.
#[track_caller]
pub(crate) fn assert_typed(context: &str, error: &wallet_core::Error) {
    use wallet_core::ErrorKind;
    assert!(
        !matches!(error.kind(), ErrorKind::Internal | ErrorKind::Unavailable),
        "{context}: untyped error {:?}: {error:?}",
        error.code()
    );
}
