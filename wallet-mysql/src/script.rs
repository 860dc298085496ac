//! Several statements sent in one round trip: a multi-statement text query.
//!
//! A command's reads after its locks, and its writes with the `COMMIT`, each go to the server
//! as one text query, so a transfer waits for two round trips instead of ten. Values are
//! written into the text as literals, never concatenated as text: integers as integers, text
//! and bytes as hexadecimal literals (`_utf8mb4 X'…'`, `X'…'`), which cannot end the literal or
//! start another statement whatever they hold. Statements are the same SQL the prepared path
//! uses, with each `?` replaced by its value's literal.
//!
//! The server runs the statements in order and stops at the first that fails: nothing after a
//! failed statement runs (a `COMMIT` at the end included), and the error is returned.

use std::fmt::Write as _;

use futures_util::TryStreamExt;
use sqlx::mysql::{MySqlQueryResult, MySqlRow};
use sqlx::{Either, MySqlConnection};
use wallet_core::{Error, Result};

use crate::error::map_sqlx;

/// A value written into a statement as a literal.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Lit<'a> {
    /// An integer.
    Int(i64),
    /// An integer or NULL.
    OptInt(Option<i64>),
    /// Text in the connection's character set (`utf8mb4`).
    Text(&'a str),
    /// Text or NULL.
    OptText(Option<&'a str>),
    /// ASCII text for a `latin1` column (idempotency keys): the introducer makes the literal
    /// take the column's collation, so its unique index is used.
    Latin1(&'a str),
    /// ASCII text for an `ascii` column (currency codes).
    Ascii(&'a str),
    /// Bytes for a binary column.
    Bytes(&'a [u8]),
    /// SQL written by this crate (an expression such as `LAST_INSERT_ID()`), never a value.
    Sql(&'static str),
    /// An expression this crate built from other literals (see [`Script::expression`]).
    Built(&'a str),
}

/// `X'…'`: the bytes in hexadecimal.
fn hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    out.push_str("X'");
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out.push('\'');
}

impl Lit<'_> {
    fn write(self, out: &mut String) {
        match self {
            Lit::Int(v) | Lit::OptInt(Some(v)) => {
                // Writing to a String cannot fail.
                let _ = write!(out, "{v}");
            }
            Lit::OptInt(None) | Lit::OptText(None) => out.push_str("NULL"),
            Lit::Text(s) | Lit::OptText(Some(s)) => {
                out.push_str("_utf8mb4 ");
                hex(out, s.as_bytes());
            }
            Lit::Latin1(s) => {
                out.push_str("_latin1 ");
                hex(out, s.as_bytes());
            }
            Lit::Ascii(s) => {
                out.push_str("_ascii ");
                hex(out, s.as_bytes());
            }
            Lit::Bytes(b) => hex(out, b),
            Lit::Sql(s) => out.push_str(s),
            Lit::Built(s) => out.push_str(s),
        }
    }
}

/// Statements to send together.
#[derive(Debug, Default)]
pub(crate) struct Script {
    sql: String,
    statements: usize,
}

/// What one statement of a script returned.
#[derive(Debug)]
pub(crate) struct Output {
    /// Its rows (none for a statement that returns none).
    pub(crate) rows: Vec<MySqlRow>,
    /// Rows changed and the auto-increment id it generated, if any.
    pub(crate) done: MySqlQueryResult,
}

/// `sql` with each `?` replaced by the next of `args`; fails unless they match in number.
fn fill(out: &mut String, sql: &str, args: &[Lit<'_>]) -> Result<()> {
    let mut parts = sql.split('?');
    out.push_str(parts.next().unwrap_or(""));
    let mut args = args.iter();
    for part in parts {
        args.next()
            .ok_or_else(|| Error::Internal {
                detail: format!("a statement has more placeholders than values: {sql}"),
            })?
            .write(out);
        out.push_str(part);
    }
    if args.next().is_some() {
        return Err(Error::Internal {
            detail: format!("a statement has fewer placeholders than values: {sql}"),
        });
    }
    Ok(())
}

impl Script {
    /// An empty script.
    pub(crate) fn new() -> Self {
        Script::default()
    }

    /// Appends `sql` (one statement, `?` for each value) with `args` written in.
    pub(crate) fn push(&mut self, sql: &str, args: &[Lit<'_>]) -> Result<&mut Self> {
        if self.statements > 0 {
            self.sql.push_str(";\n");
        }
        fill(&mut self.sql, sql, args)?;
        self.statements += 1;
        Ok(self)
    }

    /// `sql` with `args` written in, to use as an expression inside another statement.
    pub(crate) fn expression(sql: &str, args: &[Lit<'_>]) -> Result<String> {
        let mut out = String::from("(");
        fill(&mut out, sql, args)?;
        out.push(')');
        Ok(out)
    }

    /// Whether the script holds no statement.
    pub(crate) fn is_empty(&self) -> bool {
        self.statements == 0
    }

    /// Sends the script in one round trip; returns what each statement returned, in order.
    pub(crate) async fn run(&self, conn: &mut MySqlConnection) -> Result<Vec<Output>> {
        let mut outputs = Vec::with_capacity(self.statements);
        let mut rows = Vec::new();
        let mut stream = sqlx::raw_sql(&self.sql).fetch_many(&mut *conn);
        while let Some(item) = stream.try_next().await.map_err(map_sqlx)? {
            match item {
                Either::Right(row) => rows.push(row),
                // Each statement ends with its result, after its rows.
                Either::Left(done) => outputs.push(Output {
                    rows: std::mem::take(&mut rows),
                    done,
                }),
            }
        }
        if outputs.len() != self.statements {
            return Err(Error::Internal {
                detail: format!(
                    "a script of {} statements returned {} results",
                    self.statements,
                    outputs.len()
                ),
            });
        }
        Ok(outputs)
    }
}

/// `head` followed by `rows` copies of `row`, comma-separated: a multi-row `INSERT`.
pub(crate) fn values_sql(head: &str, row: &str, rows: usize) -> String {
    let mut sql = String::with_capacity(head.len() + rows * (row.len() + 2));
    sql.push_str(head);
    for i in 0..rows {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(row);
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_literals_that_cannot_end_their_quotes() {
        let mut s = Script::new();
        s.push(
            "INSERT INTO t (a, b, c, d, e) VALUES (?, ?, ?, ?, ?)",
            &[
                Lit::Int(-5),
                Lit::Text("it's'; DROP TABLE t; --"),
                Lit::OptText(None),
                Lit::Latin1("k?"),
                Lit::Bytes(&[0, 255]),
            ],
        )
        .map(|_| ())
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            s.sql,
            "INSERT INTO t (a, b, c, d, e) VALUES (-5, _utf8mb4 X'69742773273B2044524F50205441424C4520743B202D2D', \
             NULL, _latin1 X'6B3F', X'00FF')"
        );
        assert_eq!(s.statements, 1);
    }

    #[test]
    fn placeholders_and_values_must_match() {
        let mut s = Script::new();
        assert!(s.push("SELECT ?", &[]).is_err());
        assert!(s.push("SELECT 1", &[Lit::Int(1)]).is_err());
    }
}
