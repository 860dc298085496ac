//! The event feed, in commit order.
//!
//! Commands insert events with an auto-increment `id` and no `seq`. Ids are handed out when
//! rows are inserted, not when transactions commit, so two concurrent commands can commit in
//! the opposite order of their ids: a reader paging by id could see id 8, move its cursor past
//! it, and never see id 7 committed a moment later. So readers page by `seq` instead, which
//! only committed events get: before each read, the sequencer takes the `event_sequence` row
//! lock, numbers every committed event that has no `seq` yet (in id order) after the last
//! number given, and commits. Sequencers run one at a time, so numbers become visible in
//! order, and an event committed later always gets a larger number than any a reader has
//! already seen. Writers never touch the sequence row: the cost is on the (rare) reader.

use sqlx::{Acquire, MySqlConnection};
use wallet_core::notify::Event;
use wallet_core::{Result, stored};

use crate::error::map_sqlx;

/// The columns an event is read with after its position (`stored::StoredEventCols`,
/// flattened), from `e` and its transaction `t` (joined by `event_joins!`) for the ones stored
/// by reference: money movements' events, rendered when read.
macro_rules! event_columns {
    () => {
        "e.at, e.kind, e.subject, e.payload, e.txn_status, t.id, t.kind, t.amount, t.currency,
         c.exponent, t.original_id"
    };
}
pub(crate) use event_columns;

/// Joins an event `e` to its transaction and the transaction's currency.
macro_rules! event_joins {
    () => {
        " LEFT JOIN transactions t ON t.id = e.txn_id LEFT JOIN currencies c ON c.code = t.currency"
    };
}
pub(crate) use event_joins;

/// An event row: its position, then `event_columns!`.
pub(crate) type EventRow = (
    i64,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<i64>,
);

/// An event from its row, rendered.
pub(crate) fn event_of(r: EventRow) -> Result<Event> {
    let (id, at, kind, subject, payload, status, t0, t1, t2, t3, t4, t5) = r;
    let facts = stored::txn_fact_cols((t0, t1, t2, t3, t4, t5))?;
    stored::stored_event((id, at, kind, subject, payload, status, facts))
}

/// Most events numbered per round.
const ROUND_MAX: i64 = 1000;
/// Rows per numbering statement.
const CHUNK: usize = 100;

/// Gives sequence numbers to committed events that have none. Returns how many were numbered.
pub(crate) async fn sequence(conn: &mut MySqlConnection) -> Result<u64> {
    let waiting: Option<i64> =
        sqlx::query_scalar("SELECT id FROM events WHERE seq IS NULL ORDER BY id LIMIT 1")
            .fetch_optional(&mut *conn)
            .await
            .map_err(map_sqlx)?;
    if waiting.is_none() {
        return Ok(0);
    }
    let mut tx = conn.begin().await.map_err(map_sqlx)?;
    let last: i64 =
        sqlx::query_scalar("SELECT last_seq FROM event_sequence WHERE id = 1 FOR UPDATE")
            .fetch_one(&mut *tx)
            .await
            .map_err(map_sqlx)?;
    // Read again under the lock: another sequencer may have numbered them meanwhile.
    let ids: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM events WHERE seq IS NULL ORDER BY id LIMIT ?")
            .bind(ROUND_MAX)
            .fetch_all(&mut *tx)
            .await
            .map_err(map_sqlx)?;
    let mut next = last;
    for chunk in ids.chunks(CHUNK) {
        let mut sql = String::from("UPDATE events SET seq = CASE id");
        for _ in chunk {
            sql.push_str(" WHEN ? THEN ?");
        }
        sql.push_str(" END WHERE id IN (");
        sql.push_str(&crate::queries::placeholders(chunk.len()));
        sql.push(')');
        let mut q = sqlx::query(&sql);
        for id in chunk {
            next += 1;
            q = q.bind(*id).bind(next);
        }
        for id in chunk {
            q = q.bind(*id);
        }
        q.execute(&mut *tx).await.map_err(map_sqlx)?;
    }
    sqlx::query("UPDATE event_sequence SET last_seq = ? WHERE id = 1")
        .bind(next)
        .execute(&mut *tx)
        .await
        .map_err(map_sqlx)?;
    tx.commit().await.map_err(map_sqlx)?;
    Ok(u64::try_from(ids.len()).unwrap_or(u64::MAX))
}

/// Events with sequence numbers above `after`, oldest first.
pub(crate) async fn events(
    conn: &mut MySqlConnection,
    after: i64,
    limit: u32,
) -> Result<Vec<Event>> {
    sequence(conn).await?;
    let rows: Vec<EventRow> = sqlx::query_as(concat!(
        "SELECT e.seq, ",
        event_columns!(),
        " FROM events e",
        event_joins!(),
        " WHERE e.seq > ? ORDER BY e.seq LIMIT ?"
    ))
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
    .map_err(map_sqlx)?;
    rows.into_iter().map(event_of).collect()
}
