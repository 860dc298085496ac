//! The portable ledger format: a whole store as one checksummed stream of JSON Lines, the
//! same for every backend (`docs/PORTABLE.md` describes it byte by byte).
//!
//! ```text
//! {"format":"wallet-ledger","version":1,"schema":3,"counts":{"currencies":1,"users":2,…}}
//! {"t":"currencies","r":["USD",2]}
//! {"t":"users","r":[1,"root","root@example.com",…]}
//! …
//! {"end":"wallet-ledger","rows":42,"sha256":"9f86d081…"}
//! ```
//!
//! A header names the format, its version, the schema version and how many rows each table
//! holds; then one line per row, table by table in [`TABLES`] order, rows in primary-key order;
//! then a trailer with the row count and the SHA-256 of every byte before it.
//!
//! This module is pure: [`Writer`] and [`Reader`] work on any [`std::io::Write`] and
//! [`std::io::Read`], and check everything that can be checked without a database (table order,
//! key order, arity, types, counts, checksum, nothing after the trailer). A backend does the rest
//! through the [`Portable`] trait: it feeds a consistent snapshot's rows to a [`Writer`], and
//! inserts a [`Reader`]'s rows into an empty store in one transaction that it commits only
//! after the reader reached a valid trailer and the loaded ledger verifies.

mod progress;
mod read;
mod tables;
mod write;

use std::future::Future;
use std::io::{Read, Write};

pub use read::{Item, Reader, Row};
pub use tables::{Column, ColumnType, TABLE_COUNT, TABLES, Table};
pub use write::Writer;

use crate::error::{Error, Result};
use crate::store::Store;
use crate::verify::VerifyReport;

/// The `format` field of every header.
pub const FORMAT: &str = "wallet-ledger";
/// The version of the format this code writes and reads.
pub const FORMAT_VERSION: u64 = 1;
/// The schema version whose tables the format carries (see [`TABLES`]).
pub const SCHEMA_VERSION: u64 = 3;
/// Longest line, its newline included: 1 MiB. The longest row the library stores is a few
/// tens of KiB, so a longer line is not one of ours.
pub const LINE_BYTES_MAX: usize = 1 << 20;
/// Most rows a header may announce for one table (about 10¹²), so that totals never overflow.
pub const ROWS_PER_TABLE_MAX: u64 = 1 << 40;
/// Longest explanation an [`Error::ImportInvalid`] carries, in bytes: a message quoting a
/// malformed line must not carry the whole line (it may hold a password hash).
const REASON_BYTES_MAX: usize = 200;

/// One value of a row.
///
/// The derived order is the order of primary keys in a file: integers by value, text and bytes
/// bytewise (SQLite's `BINARY` collation).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Value {
    /// SQL `NULL`.
    Null,
    /// An integer.
    Int(i64),
    /// Text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

impl Value {
    /// Whether the value may be stored in a column of type `ty` (null fits every column).
    pub fn fits(&self, ty: ColumnType) -> bool {
        matches!(
            (self, ty),
            (Value::Null, _)
                | (Value::Int(_), ColumnType::Int)
                | (Value::Text(_), ColumnType::Text)
                | (Value::Blob(_), ColumnType::Blob)
        )
    }
}

/// Rows per table, in [`TABLES`] order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    rows: [u64; TABLE_COUNT],
}

impl Counts {
    /// Counts each table with `count`, in [`TABLES`] order.
    pub fn collect(mut count: impl FnMut(&'static Table) -> Result<u64>) -> Result<Self> {
        let mut counts = Counts::default();
        for (slot, table) in counts.rows.iter_mut().zip(TABLES.iter()) {
            *slot = count(table)?;
        }
        Ok(counts)
    }

    /// The rows of the table named `table`, if the format has such a table.
    pub fn get(&self, table: &str) -> Option<u64> {
        TABLES
            .iter()
            .position(|t| t.name == table)
            .and_then(|i| self.rows.get(i).copied())
    }

    /// Sets the rows of the table named `table`; refuses a table the format does not have.
    pub fn set(&mut self, table: &str, rows: u64) -> Result<()> {
        let slot = TABLES
            .iter()
            .position(|t| t.name == table)
            .and_then(|i| self.rows.get_mut(i))
            .ok_or_else(|| Error::internal(format!("no table {table:?} in the ledger format")))?;
        *slot = rows;
        Ok(())
    }

    /// Each table with its rows, in [`TABLES`] order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static Table, u64)> + '_ {
        TABLES.iter().zip(self.rows.iter().copied())
    }

    /// Rows in all tables (saturating; real counts are far below the limit).
    pub fn total(&self) -> u64 {
        self.rows.iter().fold(0u64, |sum, n| sum.saturating_add(*n))
    }

    /// Whether every table is empty.
    pub fn is_empty(&self) -> bool {
        self.rows.iter().all(|n| *n == 0)
    }

    /// The count at position `index` of [`TABLES`] (0 past the end).
    pub(crate) fn at(&self, index: usize) -> u64 {
        self.rows.get(index).copied().unwrap_or(0)
    }
}

/// What a file holds, as written by [`Writer::finish`] or read up to a valid trailer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Rows per table.
    pub counts: Counts,
    /// Rows in all.
    pub rows: u64,
    /// SHA-256 of every byte before the trailer.
    pub sha256: [u8; 32],
}

impl Summary {
    /// The checksum as the trailer writes it: 64 lower-case hexadecimal digits.
    pub fn sha256_hex(&self) -> String {
        crate::auth::password::hex(&self.sha256)
    }
}

/// What an import loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The file's contents.
    pub summary: Summary,
    /// The verification of the loaded ledger, run before it was committed (always clean: an
    /// import whose ledger does not verify stores nothing).
    pub report: VerifyReport,
}

impl Imported {
    /// What an import loaded, if the loaded ledger verifies; otherwise the import is refused
    /// ([`Error::ImportInvalid`] at line 0: the file as a whole), naming the first discrepancy.
    pub fn verified(summary: Summary, report: VerifyReport) -> Result<Self> {
        if !report.is_ok() {
            let first = report
                .discrepancies
                .first()
                .map(|d| format!("; the first: {d:?}"))
                .unwrap_or_default();
            return Err(invalid(
                0,
                format!(
                    "the ledger does not verify: {} discrepancies{first}",
                    report.discrepancy_count
                ),
            ));
        }
        Ok(Imported { summary, report })
    }
}

/// A store that can be exported to and imported from the portable format.
///
/// Contract, for every backend:
/// - [`export`](Portable::export) reads one consistent snapshot while the store stays usable
///   (writes continue and are simply not in the file), counts every table of [`TABLES`], and
///   feeds each table's rows in primary-key order to a [`Writer`]. Re-exporting an imported
///   store gives the same bytes.
/// - [`import`](Portable::import) is serialized with the store's writes. It refuses a store
///   holding any row ([`Error::StoreNotEmpty`]), inserts a [`Reader`]'s rows with their ids
///   unchanged in one transaction, runs the ledger verification inside that transaction, and
///   commits only after the reader reached a valid trailer and the verification is clean.
///   Otherwise it rolls back and the store is still empty: a damaged file is
///   [`Error::ImportInvalid`], a storage failure keeps its own error. Caches of the store are
///   dropped afterwards.
pub trait Portable: Store {
    /// Writes the whole store to `out` and returns what was written. `out` is buffered by the
    /// writer; it is flushed before the call returns.
    fn export<W: Write + Send + 'static>(
        &self,
        out: W,
    ) -> impl Future<Output = Result<Summary>> + Send;

    /// Loads a ledger file into this store, which must be empty.
    fn import<R: Read + Send + 'static>(
        &self,
        input: R,
    ) -> impl Future<Output = Result<Imported>> + Send;
}

/// An [`Error::ImportInvalid`] at `line`, its reason cut to a bounded length.
pub(crate) fn invalid(line: u64, reason: impl Into<String>) -> Error {
    let mut reason = reason.into();
    if reason.len() > REASON_BYTES_MAX {
        let mut cut = REASON_BYTES_MAX;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
        reason.push('…');
    }
    Error::ImportInvalid { line, reason }
}

/// Bytes from lower-case hexadecimal (the only form a file uses, so each value has one
/// spelling).
pub(crate) fn unhex(text: &str) -> Option<Vec<u8>> {
    fn digit(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks_exact(2)
        .map(|pair| match pair {
            [hi, lo] => Some(digit(*hi)? << 4 | digit(*lo)?),
            _ => None,
        })
        .collect()
}

/// For tests of tampering: `file` with its trailer (if any) replaced by one that matches its
/// lines, so that a deliberately altered file passes the checksum and reaches the checks
/// behind it. Every line after the first counts as a row.
#[cfg(any(test, feature = "testkit"))]
pub fn reseal(file: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut body = Vec::with_capacity(file.len());
    let mut rows = 0u64;
    for (i, line) in file.split_inclusive(|b| *b == b'\n').enumerate() {
        if line.starts_with(b"{\"end\"") {
            continue;
        }
        if i > 0 {
            rows += 1;
        }
        body.extend_from_slice(line);
    }
    let sha256: [u8; 32] = Sha256::digest(&body).into();
    body.extend_from_slice(write::trailer_line(rows, &sha256).as_bytes());
    body
}

/// A notification as the `notifications` table carries it: rendered, whatever way the backend
/// stores it (money movements' notifications are stored by reference).
pub fn notification_row(n: crate::notify::Notification) -> [Value; 8] {
    [
        Value::Int(n.id.get()),
        Value::Int(n.user.get()),
        Value::Int(n.kind.to_db()),
        Value::Int(n.priority.to_db()),
        Value::Text(n.title),
        Value::Text(n.message),
        Value::Int(i64::from(n.read)),
        Value::Int(n.created_at.as_micros()),
    ]
}

/// An event as the `events` table carries it: rendered, with its position as its id.
pub fn event_row(e: crate::notify::Event) -> [Value; 5] {
    [
        Value::Int(e.id),
        Value::Int(e.at.as_micros()),
        Value::Text(e.kind),
        Value::Text(e.subject),
        Value::Text(e.payload),
    ]
}

#[cfg(test)]
mod tests;
