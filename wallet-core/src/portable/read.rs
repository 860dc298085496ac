//! Reading and checking a ledger file.
//!
//! Reading never panics and never trusts the input: lines are bounded, counts are bounded, and
//! nothing is allocated from a number the file announces.

use std::io::{BufRead, BufReader, Read};

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use sha2::{Digest, Sha256};

use super::progress::{Progress, check_arity, type_error};
use super::{
    Column, ColumnType, Counts, FORMAT, FORMAT_VERSION, LINE_BYTES_MAX, ROWS_PER_TABLE_MAX,
    SCHEMA_VERSION, Summary, TABLE_COUNT, TABLES, Table, Value, invalid, unhex,
};
use crate::error::{Error, Result};

/// Buffer between the reader and its input.
const BUFFER_BYTES: usize = 64 * 1024;

/// One row of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Its table.
    pub table: &'static Table,
    /// Its values, in the table's column order, each of its column's type or null.
    pub values: Vec<Value>,
    /// The 1-based line it was read from (for errors a backend raises about it).
    pub line: u64,
}

/// What [`Reader::next_item`] read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A row that follows the format's rules.
    Row(Row),
    /// A valid trailer, with nothing after it: the whole file is sound.
    End(Summary),
}

/// Reads a ledger file line by line, checking as it goes.
///
/// [`Reader::new`] reads the header. Each [`next_item`](Reader::next_item) returns a row, or
/// the [`Summary`] once the trailer's row count and checksum match and the input has ended.
/// Any fault is an [`Error::ImportInvalid`] naming the line; a failure to read the input is
/// [`Error::Storage`]. Rows are handed out before the checksum can be known, so a consumer
/// must treat them as provisional until [`Item::End`].
pub struct Reader<R: Read> {
    input: BufReader<R>,
    hasher: Sha256,
    progress: Progress,
    /// Lines read so far (the number of the line in `buf`).
    line: u64,
    buf: Vec<u8>,
    ended: bool,
}

impl<R: Read> std::fmt::Debug for Reader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("line", &self.line)
            .field("rows", &self.progress.total())
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl<R: Read> Reader<R> {
    /// Starts reading `input` and checks its header.
    pub fn new(input: R) -> Result<Self> {
        let mut reader = Reader {
            input: BufReader::with_capacity(BUFFER_BYTES, input),
            hasher: Sha256::new(),
            progress: Progress::new(Counts::default()),
            line: 0,
            buf: Vec::with_capacity(1024),
            ended: false,
        };
        if !reader.read_line()? {
            return Err(invalid(1, "the input is empty: no ledger file header"));
        }
        let counts = header_counts(&reader.buf).map_err(|reason| invalid(1, reason))?;
        reader.hasher.update(&reader.buf);
        reader.progress = Progress::new(counts);
        Ok(reader)
    }

    /// The rows per table the header announces.
    pub fn counts(&self) -> &Counts {
        self.progress.counts()
    }

    /// The number of the last line read.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// Reads the next row, or the trailer and the end of the input.
    pub fn next_item(&mut self) -> Result<Item> {
        if self.ended {
            return Err(Error::internal("read past the end of a ledger file"));
        }
        if !self.read_line()? {
            return Err(invalid(
                self.line.saturating_add(1),
                "the file ends before its trailer: truncated",
            ));
        }
        let line = self.line;
        let parsed: Line = object(&self.buf).map_err(|e| invalid(line, e))?;
        match parsed {
            Line {
                t: Some(table),
                r: Some(cells),
                end: None,
                rows: None,
                sha256: None,
            } => {
                let row = self.row(&table, cells).map_err(|r| invalid(line, r))?;
                self.hasher.update(&self.buf);
                Ok(Item::Row(row))
            }
            Line {
                t: None,
                r: None,
                end: Some(end),
                rows: Some(rows),
                sha256: Some(sha256),
            } => self.trailer(&end, rows, &sha256).map(Item::End),
            _ => Err(invalid(line, "neither a row nor the trailer")),
        }
    }

    /// Reads every remaining row into `each` and returns the summary of a sound file. The
    /// first error, the reader's or `each`'s, stops the reading and is returned.
    pub fn for_each_row(mut self, mut each: impl FnMut(Row) -> Result<()>) -> Result<Summary> {
        loop {
            match self.next_item()? {
                Item::Row(row) => each(row)?,
                Item::End(summary) => return Ok(summary),
            }
        }
    }

    /// Checks a data line and turns it into a row.
    fn row(&mut self, name: &str, cells: Vec<Cell>) -> Result<Row, String> {
        let current = self.progress.current();
        let index = match TABLES.get(current) {
            Some(t) if t.name == name => current,
            _ => TABLES
                .iter()
                .position(|t| t.name == name)
                .ok_or_else(|| format!("unknown table {name:?}"))?,
        };
        let table = TABLES.get(index).ok_or("unknown table")?;
        check_arity(table, cells.len())?;
        let values = cells
            .into_iter()
            .zip(table.columns)
            .map(|(cell, column)| cell.into_value(table, column))
            .collect::<Result<Vec<_>, _>>()?;
        self.progress.row(index, &values)?;
        Ok(Row {
            table,
            values,
            line: self.line,
        })
    }

    /// Checks the trailer against what was read, and that nothing follows it.
    fn trailer(&mut self, end: &str, rows: u64, sha256: &str) -> Result<Summary> {
        let line = self.line;
        if end != FORMAT {
            return Err(invalid(line, "a trailer of another format"));
        }
        let digest: [u8; 32] = std::mem::take(&mut self.hasher).finalize().into();
        if unhex(sha256).as_deref() != Some(digest.as_slice()) {
            return Err(invalid(
                line,
                "checksum mismatch: the file was damaged or altered",
            ));
        }
        self.progress.finish().map_err(|r| invalid(line, r))?;
        if rows != self.progress.total() {
            return Err(invalid(
                line,
                format!(
                    "the trailer counts {rows} rows where the file holds {}",
                    self.progress.total()
                ),
            ));
        }
        if self.read_line()? {
            return Err(invalid(self.line, "data after the trailer"));
        }
        self.ended = true;
        Ok(Summary {
            counts: *self.progress.counts(),
            rows,
            sha256: digest,
        })
    }

    /// Reads the next line, newline included, into `buf`; false at the end of the input.
    fn read_line(&mut self) -> Result<bool> {
        self.buf.clear();
        let limit = u64::try_from(LINE_BYTES_MAX).unwrap_or(u64::MAX);
        let n = (&mut self.input)
            .take(limit)
            .read_until(b'\n', &mut self.buf)
            .map_err(|e| Error::Storage {
                detail: format!("reading the ledger file: {e}"),
            })?;
        if n == 0 {
            return Ok(false);
        }
        self.line = self.line.saturating_add(1);
        if self.buf.last() != Some(&b'\n') {
            return Err(invalid(
                self.line,
                if self.buf.len() >= LINE_BYTES_MAX {
                    "a line longer than the format allows"
                } else {
                    "the file ends in the middle of a line: truncated"
                },
            ));
        }
        Ok(true)
    }
}

/// Parses a line that must be one JSON object (serde would also take an array for a struct).
fn object<'a, T: Deserialize<'a>>(line: &'a [u8]) -> Result<T, String> {
    if line.first() != Some(&b'{') {
        return Err("a line must be one JSON object".to_owned());
    }
    serde_json::from_slice(line).map_err(|e| e.to_string())
}

/// The header line.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    format: String,
    version: u64,
    schema: u64,
    counts: HeaderCounts,
}

/// The header's counts, in the order written (a map would hide repeated or reordered names).
struct HeaderCounts(Vec<(String, u64)>);

impl<'de> Deserialize<'de> for HeaderCounts {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = HeaderCounts;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of row counts")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<HeaderCounts, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, u64>()? {
                    if entries.len() >= TABLE_COUNT {
                        return Err(de::Error::custom("more counts than tables"));
                    }
                    entries.push(entry);
                }
                Ok(HeaderCounts(entries))
            }
        }
        deserializer.deserialize_map(Entries)
    }
}

/// Parses and checks the header line.
fn header_counts(line: &[u8]) -> Result<Counts, String> {
    let header: Header = object(line).map_err(|e| format!("not a ledger file header: {e}"))?;
    if header.format != FORMAT {
        return Err(format!("not a {FORMAT} file"));
    }
    if header.version != FORMAT_VERSION {
        return Err(format!(
            "format version {} (this code reads version {FORMAT_VERSION})",
            header.version
        ));
    }
    if header.schema != SCHEMA_VERSION {
        return Err(format!(
            "schema version {} (this code reads schema {SCHEMA_VERSION})",
            header.schema
        ));
    }
    let names_match = header.counts.0.len() == TABLE_COUNT
        && header
            .counts
            .0
            .iter()
            .zip(TABLES.iter())
            .all(|((name, _), table)| name == table.name);
    if !names_match {
        let names: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
        return Err(format!(
            "the header must count every table, in this order: {}",
            names.join(", ")
        ));
    }
    let mut counts = Counts::default();
    for (name, rows) in &header.counts.0 {
        if *rows > ROWS_PER_TABLE_MAX {
            return Err(format!("{name} announces {rows} rows, beyond the limit"));
        }
        counts
            .set(name, *rows)
            .map_err(|_| format!("unknown table {name:?}"))?;
    }
    Ok(counts)
}

/// A data line or the trailer (which fields are present tells them apart).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    t: Option<String>,
    r: Option<Vec<Cell>>,
    end: Option<String>,
    rows: Option<u64>,
    sha256: Option<String>,
}

/// A value as JSON spells it, before its column gives it a type.
enum Cell {
    Null,
    Int(i64),
    Str(String),
}

impl Cell {
    fn into_value(self, table: &Table, column: &Column) -> Result<Value, String> {
        let value = match (self, column.ty) {
            (Cell::Null, _) => Some(Value::Null),
            (Cell::Int(n), ColumnType::Int) => Some(Value::Int(n)),
            (Cell::Str(s), ColumnType::Text) => Some(Value::Text(s)),
            (Cell::Str(s), ColumnType::Blob) => unhex(&s).map(Value::Blob),
            _ => None,
        };
        value.ok_or_else(|| type_error(table, column))
    }
}

impl<'de> Deserialize<'de> for Cell {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CellVisitor;
        impl Visitor<'_> for CellVisitor {
            type Value = Cell;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("null, a 64-bit integer or a string")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Cell, E> {
                Ok(Cell::Null)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Cell, E> {
                Ok(Cell::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Cell, E> {
                i64::try_from(v)
                    .map(Cell::Int)
                    .map_err(|_| E::custom("an integer beyond 64 bits"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Cell, E> {
                Ok(Cell::Str(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Cell, E> {
                Ok(Cell::Str(v))
            }
        }
        deserializer.deserialize_any(CellVisitor)
    }
}
