//! Export and import in the portable format (`wallet_core::portable`).
//!
//! All the format's rules live in wallet-core; this module only moves rows between SQLite and
//! a `Writer` or `Reader`, with statements built from the format's table list (whose names
//! are this schema's, checked by a test against the live schema).

use std::io::{Read, Write};

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ErrorCode, Statement};
use wallet_core::portable::{Counts, Imported, Reader, Row, Summary, TABLES, Table, Value, Writer};
use wallet_core::{Error, Result};

use crate::error::map_sqlite;
use crate::{in_snapshot, notes, payments, queries};
use wallet_core::portable;

/// `` `a`, `b`, `c` ``: column names quoted the way both SQLite and MySQL accept (some, such as
/// `read`, are keywords).
fn quoted(names: impl Iterator<Item = &'static str>) -> String {
    names
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every row of `table` in primary-key order (the order a file requires).
fn select_sql(table: &Table) -> String {
    format!(
        "SELECT {} FROM `{}` ORDER BY {}",
        quoted(table.columns.iter().map(|c| c.name)),
        table.name,
        quoted(table.key().iter().map(|c| c.name)),
    )
}

/// Inserts one row of `table`, every column given.
fn insert_sql(table: &Table) -> String {
    let params: Vec<String> = (1..=table.columns.len()).map(|i| format!("?{i}")).collect();
    format!(
        "INSERT INTO `{}` ({}) VALUES ({})",
        table.name,
        quoted(table.columns.iter().map(|c| c.name)),
        params.join(", ")
    )
}

fn count(conn: &Connection, table: &Table) -> Result<u64> {
    let n: i64 = conn
        .query_row(&format!("SELECT count(*) FROM `{}`", table.name), [], |r| {
            r.get(0)
        })
        .map_err(map_sqlite)?;
    u64::try_from(n).map_err(|_| Error::corrupt("a negative row count"))
}

/// Writes the whole database to `out`, reading one snapshot.
pub(crate) fn export(conn: &Connection, out: impl Write) -> Result<Summary> {
    in_snapshot(conn, |conn| {
        let counts = Counts::collect(|table| match table.name {
            "notifications" => notes::count(conn),
            _ => count(conn, table),
        })?;
        let mut writer = Writer::new(out, &counts)?;
        let mut values = Vec::new();
        for table in &TABLES {
            // Notifications and events of money movements are stored by reference (and
            // notifications partly in the entries they are about); the file carries them
            // rendered, as every backend reads them.
            match table.name {
                "notifications" => {
                    notes::for_each(conn, |n| writer.row(table, &portable::notification_row(n)))?;
                    continue;
                }
                "events" => {
                    let mut stmt = conn
                        .prepare(payments::sql::ALL_EVENTS)
                        .map_err(map_sqlite)?;
                    for e in payments::read_events(&mut stmt, [])? {
                        writer.row(table, &portable::event_row(e))?;
                    }
                    continue;
                }
                _ => {}
            }
            let mut stmt = conn.prepare(&select_sql(table)).map_err(map_sqlite)?;
            let mut rows = stmt.query([]).map_err(map_sqlite)?;
            while let Some(row) = rows.next().map_err(map_sqlite)? {
                values.clear();
                for i in 0..table.columns.len() {
                    values.push(value(row.get_ref(i).map_err(map_sqlite)?)?);
                }
                writer.row(table, &values)?;
            }
        }
        writer.finish()
    })
}

/// A stored value as the format carries it. STRICT tables hold no floating-point values.
fn value(v: ValueRef<'_>) -> Result<Value> {
    Ok(match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(n) => Value::Int(n),
        ValueRef::Text(t) => Value::Text(
            String::from_utf8(t.to_vec()).map_err(|_| Error::corrupt("text that is not UTF-8"))?,
        ),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        ValueRef::Real(_) => return Err(Error::corrupt("a floating-point value")),
    })
}

fn param(v: &Value) -> ToSqlOutput<'_> {
    ToSqlOutput::Borrowed(match v {
        Value::Null => ValueRef::Null,
        Value::Int(n) => ValueRef::Integer(*n),
        Value::Text(t) => ValueRef::Text(t.as_bytes()),
        Value::Blob(b) => ValueRef::Blob(b),
    })
}

/// Loads a file into the (empty) database in one write transaction, committed only if the
/// whole file is sound and the loaded ledger verifies. Runs on the writer's connection.
pub(crate) fn import(conn: &Connection, input: impl Read) -> Result<Imported> {
    conn.execute_batch("BEGIN IMMEDIATE").map_err(map_sqlite)?;
    let loaded = load(conn, input);
    let ended = match &loaded {
        Ok(_) => conn.execute_batch("COMMIT"),
        Err(_) => conn.execute_batch("ROLLBACK"),
    };
    if let Err(e) = ended {
        // A failed COMMIT leaves the transaction open: undo it. (After some errors SQLite has
        // already rolled back, and this fails harmlessly.)
        let _ = conn.execute_batch("ROLLBACK");
        return Err(loaded.err().unwrap_or_else(|| map_sqlite(e)));
    }
    loaded
}

fn load(conn: &Connection, input: impl Read) -> Result<Imported> {
    for table in &TABLES {
        if count(conn, table)? > 0 {
            return Err(Error::StoreNotEmpty);
        }
    }
    let reader = Reader::new(input)?;
    let mut insert: Option<(&'static str, Statement<'_>)> = None;
    let summary = reader.for_each_row(|row| {
        let stmt = match &mut insert {
            Some((name, stmt)) if *name == row.table.name => stmt,
            _ => {
                let stmt = conn.prepare(&insert_sql(row.table)).map_err(map_sqlite)?;
                &mut insert.insert((row.table.name, stmt)).1
            }
        };
        insert_row(stmt, &row)
    })?;
    drop(insert);
    notes::after_import(conn)?;
    Imported::verified(summary, queries::verify(conn)?)
}

fn insert_row(stmt: &mut Statement<'_>, row: &Row) -> Result<()> {
    match stmt.execute(rusqlite::params_from_iter(row.values.iter().map(param))) {
        Ok(_) => Ok(()),
        // The file is well-formed but its data breaks the schema (a NOT NULL, CHECK, UNIQUE or
        // foreign-key constraint): the file is at fault, not the store.
        Err(rusqlite::Error::SqliteFailure(f, message))
            if f.code == ErrorCode::ConstraintViolation =>
        {
            Err(Error::ImportInvalid {
                line: row.line,
                reason: format!(
                    "a row of {} breaks the schema: {}",
                    row.table.name,
                    message.unwrap_or_else(|| f.to_string())
                ),
            })
        }
        Err(e) => Err(map_sqlite(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_quote_every_name() {
        let notifications = Table::named("notifications").unwrap();
        assert_eq!(
            select_sql(notifications),
            "SELECT `id`, `user_id`, `kind`, `priority`, `title`, `message`, `read`, \
             `created_at` FROM `notifications` ORDER BY `id`"
        );
        let orders = Table::named("merchant_orders").unwrap();
        assert_eq!(
            insert_sql(orders),
            "INSERT INTO `merchant_orders` (`merchant_id`, `order_id`, `txn_id`) \
             VALUES (?1, ?2, ?3)"
        );
        assert!(select_sql(orders).ends_with("ORDER BY `merchant_id`, `order_id`"));
    }
}
