//! Export and import in the portable format (`wallet_core::portable`).
//!
//! The format's tables and columns are this schema's, so statements are built from the
//! format's table list. Two MySQL particulars: the event feed's position is `seq` (see
//! `events.rs`), written as the event's id and read back into both `id` and `seq`; and text
//! keys are ordered bytewise (`CAST(… AS BINARY)`), as the format requires, whatever the
//! column's collation.
//!
//! Events that were committed but not yet numbered when the export's snapshot began are part
//! of that snapshot (their transactions are), so they are exported too: after the numbered
//! ones, in id order, at the next positions (what the sequencer gives them when nothing
//! commits first). Leaving them out would drop them from every copy made from the file.
//!
//! An import runs in one transaction: rows arrive from a parsing thread through a bounded
//! channel and are inserted in multi-row statements; the ledger is verified on the
//! uncommitted data; the transaction commits only once the file's trailer checked out and
//! the verification is clean. Anything else rolls it back, leaving the store empty.

use std::io::{Read, Write};

use futures_util::TryStreamExt;
use sqlx::mysql::MySqlRow;
use sqlx::{Acquire, MySqlConnection, Row as _};
use wallet_core::portable::{
    ColumnType, Counts, Imported, Reader, Row, Summary, TABLES, Table, Value, Writer,
};
use wallet_core::{Error, Result};

use crate::error::{map_sqlx, server_code};
use crate::{begin_snapshot, events, payments, reads};

/// Rows per INSERT statement of an import.
const INSERT_ROWS: usize = 500;
/// Rows read ahead of the inserts.
const CHANNEL_ROWS: usize = 4096;
/// The parser's error when the inserts stopped taking its rows.
const STOPPED: &str = "the import stopped reading rows";

fn is_events(table: &Table) -> bool {
    table.name == "events"
}

/// The position an event is exported at: its `seq`, or for one not numbered yet, the next
/// positions after the highest number, in id order (see the module's documentation).
const EVENT_POSITION: &str = "CAST(coalesce(`seq`, (SELECT coalesce(max(`seq`), 0) FROM `events`) \
     + ROW_NUMBER() OVER (PARTITION BY `seq` IS NULL ORDER BY `id`)) AS SIGNED)";

/// Every exported row of `table` (one stored as written: not the notifications or events) in
/// primary-key order.
fn select_sql(table: &Table) -> String {
    let order = table
        .key()
        .iter()
        .map(|c| match c.ty {
            ColumnType::Int => format!("`{}`", c.name),
            _ => format!("CAST(`{}` AS BINARY)", c.name),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let columns = table
        .columns
        .iter()
        .map(|c| format!("`{}`", c.name))
        .collect::<Vec<_>>()
        .join(", ");
    format!("SELECT {columns} FROM `{}` ORDER BY {order}", table.name)
}

/// Every event with its position, rendered from its transaction where stored by reference:
/// numbered events first, by number; then the others, by id.
fn events_sql() -> String {
    format!(
        "SELECT e.pos, {} FROM (SELECT {EVENT_POSITION} AS pos, events.* FROM events) e{}
         ORDER BY e.seq IS NULL, e.seq, e.id",
        events::event_columns!(),
        events::event_joins!()
    )
}

/// Inserts `rows` rows of `table`, every column given (and the events' `seq`).
fn insert_sql(table: &Table, rows: usize) -> String {
    let mut names: Vec<String> = table
        .columns
        .iter()
        .map(|c| format!("`{}`", c.name))
        .collect();
    if is_events(table) {
        names.push("`seq`".to_owned());
    }
    let one = format!("({})", vec!["?"; names.len()].join(", "));
    format!(
        "INSERT INTO `{}` ({}) VALUES {}",
        table.name,
        names.join(", "),
        vec![one; rows].join(", ")
    )
}

async fn count(conn: &mut MySqlConnection, table: &Table) -> Result<u64> {
    let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM `{}`", table.name))
        .fetch_one(conn)
        .await
        .map_err(map_sqlx)?;
    u64::try_from(n).map_err(|_| Error::corrupt("a negative row count"))
}

fn value(row: &MySqlRow, i: usize, ty: ColumnType) -> Result<Value> {
    let v = match ty {
        ColumnType::Int => row
            .try_get::<Option<i64>, _>(i)
            .map_err(map_sqlx)?
            .map(Value::Int),
        ColumnType::Text => row
            .try_get::<Option<String>, _>(i)
            .map_err(map_sqlx)?
            .map(Value::Text),
        ColumnType::Blob => row
            .try_get::<Option<Vec<u8>>, _>(i)
            .map_err(map_sqlx)?
            .map(Value::Blob),
    };
    Ok(v.unwrap_or(Value::Null))
}

/// Writes the whole database to `out`, reading one snapshot. Events committed but not yet
/// numbered are numbered first; those committed between that and the snapshot get the next
/// positions in the file (see the module's documentation).
pub(crate) async fn export(conn: &mut MySqlConnection, out: impl Write) -> Result<Summary> {
    events::sequence(conn).await?;
    begin_snapshot(conn).await?;
    let written = export_snapshot(conn, out).await;
    let end = sqlx::query("COMMIT")
        .execute(&mut *conn)
        .await
        .map_err(map_sqlx);
    let summary = written?;
    end?;
    Ok(summary)
}

async fn export_snapshot(conn: &mut MySqlConnection, out: impl Write) -> Result<Summary> {
    let mut counts = Counts::default();
    for table in &TABLES {
        let n = count(conn, table).await?;
        counts.set(table.name, n)?;
    }
    let mut writer = Writer::new(out, &counts)?;
    let mut values = Vec::new();
    for table in &TABLES {
        // Notifications and events of money movements are stored by reference; the file
        // carries them rendered, as `notifications()` and `events()` return them.
        match table.name {
            "notifications" => {
                let mut rows = sqlx::query_as::<_, payments::NotificationRow>(concat!(
                    "WITH n AS (SELECT * FROM notifications) ",
                    payments::notification_select!(),
                    " ORDER BY n.id"
                ))
                .fetch(&mut *conn);
                while let Some(row) = rows.try_next().await.map_err(map_sqlx)? {
                    let n = payments::notification_of(row)?;
                    writer.row(table, &wallet_core::portable::notification_row(n))?;
                }
                continue;
            }
            "events" => {
                let sql = events_sql();
                let mut rows = sqlx::query_as::<_, events::EventRow>(&sql).fetch(&mut *conn);
                while let Some(row) = rows.try_next().await.map_err(map_sqlx)? {
                    let e = events::event_of(row)?;
                    writer.row(table, &wallet_core::portable::event_row(e))?;
                }
                continue;
            }
            _ => {}
        }
        // Streamed: no table is held whole in memory.
        let sql = select_sql(table);
        let mut rows = sqlx::query(&sql).fetch(&mut *conn);
        while let Some(row) = rows.try_next().await.map_err(map_sqlx)? {
            values.clear();
            for (i, c) in table.columns.iter().enumerate() {
                values.push(value(&row, i, c.ty)?);
            }
            writer.row(table, &values)?;
        }
    }
    writer.finish()
}

/// Loads a ledger file into the (empty) database in one transaction.
pub(crate) async fn import<R: Read + Send + 'static>(
    conn: &mut MySqlConnection,
    input: R,
) -> Result<Imported> {
    let mut tx = conn.begin().await.map_err(map_sqlx)?;
    match load(&mut tx, input).await {
        Ok(imported) => {
            tx.commit().await.map_err(map_sqlx)?;
            Ok(imported)
        }
        Err(e) => {
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}

async fn load<R: Read + Send + 'static>(conn: &mut MySqlConnection, input: R) -> Result<Imported> {
    for table in &TABLES {
        let any: Option<i64> =
            sqlx::query_scalar(&format!("SELECT 1 FROM `{}` LIMIT 1", table.name))
                .fetch_optional(&mut *conn)
                .await
                .map_err(map_sqlx)?;
        if any.is_some() {
            return Err(Error::StoreNotEmpty);
        }
    }
    let (rows_tx, mut rows_rx) = tokio::sync::mpsc::channel::<Row>(CHANNEL_ROWS);
    // Parsing reads blocking I/O: on a thread of its own, ahead of the inserts.
    let parser = tokio::task::spawn_blocking(move || {
        Reader::new(input)?.for_each_row(|row| {
            rows_tx.blocking_send(row).map_err(|_| Error::Internal {
                detail: STOPPED.into(),
            })
        })
    });
    let mut batch: Vec<Row> = Vec::with_capacity(INSERT_ROWS);
    let mut max_event = 0i64;
    let inserted = async {
        while let Some(row) = rows_rx.recv().await {
            if is_events(row.table)
                && let Some(Value::Int(id)) = row.values.first()
            {
                max_event = max_event.max(*id);
            }
            if batch
                .first()
                .is_some_and(|first| first.table.name != row.table.name)
                || batch.len() >= INSERT_ROWS
            {
                insert(conn, &batch).await?;
                batch.clear();
            }
            batch.push(row);
        }
        insert(conn, &batch).await
    }
    .await;
    // Stop the parser if the inserts failed (its channel is closed), and wait for it.
    drop(rows_rx);
    let parsed = parser.await.map_err(|e| Error::Internal {
        detail: format!("the import's parser failed: {e}"),
    })?;
    // A damaged file explains a failed insert better than the insert's own error; but a
    // parser that failed only because the failed inserts stopped taking its rows explains
    // nothing (it used to hide the insert's `import_invalid` behind an internal error).
    let summary = match (parsed, inserted) {
        (Err(Error::Internal { detail }), Err(e)) if detail == STOPPED => return Err(e),
        (Err(e), _) => return Err(e),
        (Ok(_), Err(e)) => return Err(e),
        (Ok(summary), Ok(())) => summary,
    };
    sqlx::query("UPDATE event_sequence SET last_seq = ? WHERE id = 1")
        .bind(max_event)
        .execute(&mut *conn)
        .await
        .map_err(map_sqlx)?;
    sqlx::query(crate::schema::HEADS_FROM_ENTRIES)
        .execute(&mut *conn)
        .await
        .map_err(map_sqlx)?;
    Imported::verified(summary, reads::verify(conn).await?)
}

/// Inserts rows of one table in one statement.
async fn insert(conn: &mut MySqlConnection, rows: &[Row]) -> Result<()> {
    let Some(first) = rows.first() else {
        return Ok(());
    };
    let table = first.table;
    let sql = insert_sql(table, rows.len());
    let mut q = sqlx::query(&sql);
    for row in rows {
        for v in &row.values {
            q = match v {
                Value::Null => q.bind(None::<i64>),
                Value::Int(n) => q.bind(*n),
                Value::Text(t) => q.bind(t.as_str()),
                Value::Blob(b) => q.bind(b.as_slice()),
            };
        }
        if is_events(table) {
            q = match row.values.first() {
                Some(Value::Int(id)) => q.bind(*id),
                _ => q.bind(None::<i64>),
            };
        }
    }
    match q.execute(conn).await {
        Ok(_) => Ok(()),
        Err(e) if server_code(&e).is_some_and(breaks_schema) => Err(Error::ImportInvalid {
            line: first.line,
            reason: format!(
                "a row of {} among lines {}..={} breaks the schema: {}",
                table.name,
                first.line,
                rows.last().map_or(first.line, |r| r.line),
                e
            ),
        }),
        Err(e) => Err(map_sqlx(e)),
    }
}

/// Server errors that mean the data, not the store, is at fault: duplicate key, NULL in a
/// NOT NULL column, value too long or out of range, bad text, CHECK constraint (MySQL, MariaDB).
fn breaks_schema(code: u16) -> bool {
    matches!(code, 1062 | 1048 | 1406 | 1264 | 1366 | 3819 | 4025 | 1292)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_follow_the_format() {
        let events = Table::named("events").unwrap_or(&TABLES[0]);
        let sql = events_sql();
        assert!(sql.starts_with("SELECT e.pos, e.at, e.kind"));
        assert!(sql.contains(&format!(
            "(SELECT {EVENT_POSITION} AS pos, events.* FROM events) e"
        )));
        assert!(sql.ends_with("ORDER BY e.seq IS NULL, e.seq, e.id"));
        assert_eq!(
            insert_sql(events, 2),
            "INSERT INTO `events` (`id`, `at`, `kind`, `subject`, `payload`, `seq`) \
             VALUES (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?)"
        );
        let orders = Table::named("merchant_orders").unwrap_or(&TABLES[0]);
        assert!(select_sql(orders).ends_with("ORDER BY `merchant_id`, CAST(`order_id` AS BINARY)"));
    }
}
