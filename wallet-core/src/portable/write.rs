//! Writing a ledger file.

use std::io::{BufWriter, Write};

use sha2::{Digest, Sha256};

use super::progress::Progress;
use super::{
    Counts, FORMAT, FORMAT_VERSION, LINE_BYTES_MAX, ROWS_PER_TABLE_MAX, SCHEMA_VERSION, Summary,
    TABLES, Table, Value,
};
use crate::auth::password::hex;
use crate::error::{Error, Result};

/// Buffer between the writer and its output.
const BUFFER_BYTES: usize = 64 * 1024;

/// Streams a ledger file: the header at creation, one [`row`](Writer::row) at a time, and the
/// trailer at [`finish`](Writer::finish).
///
/// The writer holds a backend to its promises: rows that break the format's rules (wrong
/// table order, key order, arity or type, more or fewer rows than counted) are refused with
/// [`Error::Internal`], so it never writes a file its [`Reader`](super::Reader) would refuse.
/// A file whose `finish` was not reached has no trailer, and no reader accepts it.
pub struct Writer<W: Write> {
    out: BufWriter<W>,
    hasher: Sha256,
    progress: Progress,
    /// The line being built (kept to reuse its allocation).
    line: Vec<u8>,
}

impl<W: Write> std::fmt::Debug for Writer<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("table", &self.progress.current())
            .field("rows", &self.progress.total())
            .finish_non_exhaustive()
    }
}

fn write_failed(e: &std::io::Error) -> Error {
    Error::Storage {
        detail: format!("writing the ledger file: {e}"),
    }
}

impl<W: Write> Writer<W> {
    /// Starts a file whose tables hold `counts` rows, writing its header.
    pub fn new(out: W, counts: &Counts) -> Result<Self> {
        if let Some((table, rows)) = counts.iter().find(|(_, n)| *n > ROWS_PER_TABLE_MAX) {
            return Err(Error::internal(format!(
                "{} has {rows} rows, more than a ledger file carries",
                table.name
            )));
        }
        let mut writer = Writer {
            out: BufWriter::with_capacity(BUFFER_BYTES, out),
            hasher: Sha256::new(),
            progress: Progress::new(*counts),
            line: Vec::with_capacity(256),
        };
        writer.line.extend_from_slice(
            format!(
                "{{\"format\":\"{FORMAT}\",\"version\":{FORMAT_VERSION},\"schema\":{SCHEMA_VERSION},\"counts\":{{"
            )
            .as_bytes(),
        );
        for (i, (table, rows)) in counts.iter().enumerate() {
            if i > 0 {
                writer.line.push(b',');
            }
            writer
                .line
                .extend_from_slice(format!("\"{}\":{rows}", table.name).as_bytes());
        }
        writer.line.extend_from_slice(b"}}\n");
        writer.emit()?;
        Ok(writer)
    }

    /// Writes one row of `table`; `values` are in the table's column order.
    pub fn row(&mut self, table: &Table, values: &[Value]) -> Result<()> {
        let current = self.progress.current();
        let index = match TABLES.get(current) {
            Some(t) if t.name == table.name => current,
            _ => table.position().ok_or_else(|| {
                Error::internal(format!("no table {:?} in the ledger format", table.name))
            })?,
        };
        self.progress
            .row(index, values)
            .map_err(|reason| Error::internal(format!("exporting: {reason}")))?;
        if let Err(e) = self.encode(table, values) {
            self.line.clear();
            return Err(e);
        }
        self.emit()
    }

    /// Builds the line of a row.
    fn encode(&mut self, table: &Table, values: &[Value]) -> Result<()> {
        let line = &mut self.line;
        let failed = |e: &dyn std::fmt::Display| Error::internal(format!("encoding a row: {e}"));
        line.extend_from_slice(b"{\"t\":\"");
        line.extend_from_slice(table.name.as_bytes());
        line.extend_from_slice(b"\",\"r\":[");
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                line.push(b',');
            }
            match value {
                Value::Null => line.extend_from_slice(b"null"),
                Value::Int(n) => write!(line, "{n}").map_err(|e| failed(&e))?,
                Value::Text(s) => serde_json::to_writer(&mut *line, s).map_err(|e| failed(&e))?,
                Value::Blob(b) => {
                    line.push(b'"');
                    line.extend_from_slice(hex(b).as_bytes());
                    line.push(b'"');
                }
            }
        }
        line.extend_from_slice(b"]}\n");
        Ok(())
    }

    /// Checks every table had its counted rows, writes the trailer and flushes the output.
    pub fn finish(mut self) -> Result<Summary> {
        self.progress
            .finish()
            .map_err(|reason| Error::internal(format!("exporting: {reason}")))?;
        let sha256: [u8; 32] = std::mem::take(&mut self.hasher).finalize().into();
        let summary = Summary {
            counts: *self.progress.counts(),
            rows: self.progress.total(),
            sha256,
        };
        let trailer = trailer_line(summary.rows, &summary.sha256);
        self.out
            .write_all(trailer.as_bytes())
            .map_err(|e| write_failed(&e))?;
        self.out.flush().map_err(|e| write_failed(&e))?;
        Ok(summary)
    }

    /// Hashes and writes the line built so far, and empties it.
    fn emit(&mut self) -> Result<()> {
        if self.line.len() > LINE_BYTES_MAX {
            let len = self.line.len();
            self.line.clear();
            return Err(Error::internal(format!(
                "a line of {len} bytes, longer than a ledger file allows"
            )));
        }
        self.hasher.update(&self.line);
        let written = self.out.write_all(&self.line);
        self.line.clear();
        written.map_err(|e| write_failed(&e))
    }
}

/// The trailer of a file of `rows` rows whose bytes before the trailer hash to `sha256`.
pub(crate) fn trailer_line(rows: u64, sha256: &[u8; 32]) -> String {
    format!(
        "{{\"end\":\"{FORMAT}\",\"rows\":{rows},\"sha256\":\"{}\"}}\n",
        hex(sha256)
    )
}
