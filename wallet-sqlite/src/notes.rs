//! Notifications, and where they are kept.
//!
//! Every transfer leaves a notification for each user whose wallet it touched. As rows of
//! `notifications` indexed by user, each cost two B-tree inserts, one of them at a random place
//! in the index, and so one more page written at every commit: with 64 callers about a third
//! of the transfers per second (`docs/adr/0002-sqlite-writer.md`). So a money movement's
//! notification is kept on the entry it is about instead, a row the movement writes anyway:
//!
//! - `entries.note_id` is the notification's id (NULL: the entry carries none), `entries.note`
//!   its [`TxnNote::state`] times two, plus one once it was marked read on its own, and
//!   `entries.note_delay` its time minus the transaction's `completed_at` (NULL: the same).
//!   Its user is the wallet's owner; its text is rendered from the transaction when read.
//! - `entries.note_last`, on an entry of a customer wallet that carries none, is the `seq` of
//!   the wallet's latest earlier entry that does (NULL: none), so a listing steps from one
//!   notification to the next however many entries lie between them (all of a wallet's, while
//!   a host turns transaction notifications off).
//! - `wallets.notes_read_upto`: every notification carried by an entry of the wallet at or
//!   below this `seq` is read; marking all read moves it to the newest entry.
//!
//! Every other notification (text, and a movement's when none of the command's new entries is
//! in a wallet of its user: a hold's expiry, say) is a row of `notifications`, indexed by
//! (user, read state, id), as before. Ids come from one sequence (`sequences` row
//! `notification`) from which the writer reserves blocks, gives ids out in memory, and stores a
//! block's end before the commit that first uses it; it reads the sequence again whenever a
//! transaction rolls back or another connection has committed. So ids increase in commit order
//! across both places (and processes), and a user's notifications, newest first, are the merge
//! of their rows and of what their wallets' entries carry.
//!
//! What the writer keeps true, and the tests check (`tests/notifications.rs`):
//!
//! - `note_id` and `note` are both set or both NULL, and only on entries of customer wallets;
//!   within a wallet, `note_id` increases with `seq`;
//! - every id, in either place, is below the sequence's next value, and no id is used twice;
//! - `note_last` of an entry of a customer wallet that carries no notification names the
//!   latest earlier entry of the wallet that does, or is NULL when there is none.

use rusqlite::{Connection, OptionalExtension, params};
use wallet_core::command::MarkRead;
use wallet_core::decide::PostedLeg;
use wallet_core::ids::{TransactionId, UserId};
use wallet_core::notify::{NewNotification, NoteBody, Notification, NotificationType, TxnNote};
use wallet_core::{Error, Result, Timestamp};

use crate::error::map_sqlite;
use crate::payments::{fact_columns, read_notifications};

pub(crate) mod sql {
    /// A notification's columns (`stored::StoredNotificationCols`), its transaction joined
    /// for the ones stored by reference; rows come from `n`.
    macro_rules! notification_select {
        () => {
            "SELECT n.id, n.user_id, n.kind, n.priority, n.title, n.message, n.read,
                    n.created_at, n.txn_state, t.id, t.kind, t.amount, t.currency, c.exponent,
                    t.original_id
             FROM n LEFT JOIN transactions t ON t.id = n.txn_id
             LEFT JOIN currencies c ON c.code = t.currency"
        };
    }
    /// The index is (user, read state, id): the newest rows of each state are two range
    /// reads, merged here, so a user with many notifications costs a page, not a scan.
    pub(crate) const ROWS: &str = concat!(
        "WITH n AS (SELECT * FROM (SELECT * FROM notifications
                                   WHERE user_id = ?1 AND read = 0 AND id < ?2
                                   ORDER BY id DESC LIMIT ?3)
                    UNION ALL
                    SELECT * FROM (SELECT * FROM notifications
                                   WHERE user_id = ?1 AND read = 1 AND id < ?2
                                   ORDER BY id DESC LIMIT ?3)) ",
        notification_select!(),
        " ORDER BY n.id DESC LIMIT ?3"
    );
    pub(crate) const UNREAD_ROWS: &str = concat!(
        "WITH n AS (SELECT * FROM notifications WHERE user_id = ?1 AND read = 0 AND id < ?2
                    ORDER BY id DESC LIMIT ?3) ",
        notification_select!(),
        " ORDER BY n.id DESC"
    );
    /// Every row in id order, rendered (for export).
    pub(crate) const ALL_ROWS: &str = concat!(
        "WITH n AS (SELECT * FROM notifications) ",
        notification_select!(),
        " ORDER BY n.id"
    );
    pub(crate) const UNREAD_ROW_COUNT: &str =
        "SELECT count(*) FROM notifications WHERE user_id = ?1 AND read = 0";
    pub(crate) const ROW: &str = "SELECT user_id, read FROM notifications WHERE id = ?1";
    pub(crate) const MARK_ROW: &str =
        "UPDATE notifications SET read = 1 WHERE id = ?1 AND user_id = ?2 AND read = 0";
    pub(crate) const MARK_ROWS: &str =
        "UPDATE notifications SET read = 1 WHERE user_id = ?1 AND read = 0";
    pub(crate) const INSERT_ROW: &str = "INSERT INTO notifications
             (id, user_id, kind, priority, title, message, read, created_at, txn_id, txn_state)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?8, ?9)";

    /// A carried notification's columns in the order [`super::carried`] reads them: id, user,
    /// note, read, time, then the transaction's facts (`stored::NullableTxnFactCols`).
    macro_rules! carried_select {
        () => {
            "SELECT e.note_id, w.owner_id, e.note,
                    e.seq <= w.notes_read_upto OR e.note % 2 = 1,
                    t.completed_at + coalesce(e.note_delay, 0),
                    t.id, t.kind, t.amount, t.currency, c.exponent, t.original_id
             FROM entries e JOIN wallets w ON w.id = e.wallet_id
             JOIN transactions t ON t.id = e.txn_id
             LEFT JOIN currencies c ON c.code = t.currency"
        };
    }
    pub(crate) const CARRIED: &str =
        concat!(carried_select!(), " WHERE e.wallet_id = ?1 AND e.seq = ?2");
    /// Every carried notification in id order (for export).
    pub(crate) const ALL_CARRIED: &str = concat!(
        carried_select!(),
        " WHERE e.note_id IS NOT NULL ORDER BY e.note_id"
    );
    pub(crate) const CARRIED_COUNT: &str = "SELECT count(*) FROM entries WHERE note_id IS NOT NULL";

    pub(crate) const WALLETS_OF: &str =
        "SELECT id, notes_read_upto FROM wallets WHERE owner_id = ?1 ORDER BY id";
    pub(crate) const HEAD: &str =
        "SELECT seq FROM entries WHERE wallet_id = ?1 ORDER BY seq DESC LIMIT 1";
    pub(crate) const ENTRY: &str =
        "SELECT seq, note_id, note, note_last FROM entries WHERE wallet_id = ?1 AND seq = ?2";
    /// A wallet's entries from `seq` ?2 down to (not including) ?3.
    pub(crate) const DOWN: &str = "SELECT seq, note_id, note, note_last FROM entries
         WHERE wallet_id = ?1 AND seq <= ?2 AND seq > ?3 ORDER BY seq DESC";
    pub(crate) const MARK_CARRIED: &str = "UPDATE entries SET note = note + 1
         WHERE wallet_id = ?1 AND seq = ?2 AND note % 2 = 0";
    pub(crate) const READ_UPTO: &str =
        "UPDATE wallets SET notes_read_upto = ?2 WHERE id = ?1 AND notes_read_upto < ?2";

    /// An entry, with the notification it carries; on an entry of a customer wallet that
    /// carries none (?7 NULL, ?10 true), `note_last` follows from the entry before it.
    pub(crate) const INSERT_ENTRY: &str = "INSERT INTO entries
             (wallet_id, seq, txn_id, amount, balance_after, debits_after,
              note_id, note, note_delay, note_last)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,
                 CASE WHEN ?7 IS NULL AND ?10 THEN
                     (SELECT CASE WHEN note_id IS NULL THEN note_last ELSE seq END
                      FROM entries WHERE wallet_id = ?1 AND seq = ?2 - 1)
                 END)";

    pub(crate) const NEXT_ID: &str = "SELECT next FROM sequences WHERE name = 'notification'";
    pub(crate) const STORE_NEXT_ID: &str =
        "UPDATE sequences SET next = ?1 WHERE name = 'notification' AND next < ?1";
    /// After an import: past every imported notification.
    pub(crate) const NEXT_ID_AFTER_IMPORT: &str = "UPDATE sequences
         SET next = (SELECT coalesce(max(id), 0) + 1 FROM notifications)
         WHERE name = 'notification'";

    #[cfg(test)]
    pub(crate) const INDEXED: &[&str] = &[
        ROWS,
        UNREAD_ROWS,
        UNREAD_ROW_COUNT,
        ROW,
        MARK_ROW,
        MARK_ROWS,
        CARRIED,
        WALLETS_OF,
        HEAD,
        ENTRY,
        DOWN,
        MARK_CARRIED,
        READ_UPTO,
        INSERT_ENTRY,
        NEXT_ID,
        STORE_NEXT_ID,
    ];
}

/// Notification ids the writer reserves at a time: the sequence is written once per this many
/// ids, not at every commit (with one caller a commit per transfer, that row was one page of
/// the ten each commit writes). A restart or another process's commit forgets the rest of a
/// block, leaving a gap in the ids, never a reuse.
const IDS_PER_BLOCK: i64 = 1024;

/// The sequence of notification ids as the writer holds it: read from the database when first
/// needed in a transaction, advanced in memory within a reserved block, and the block's end
/// stored before the commit whenever it moved.
#[derive(Debug, Default)]
pub(crate) struct Ids {
    /// The next id to give out, once read.
    next: Option<i64>,
    /// The end of the reserved block: ids below it are this writer's to give out, and the
    /// sequence must hold at least this much when a transaction that gave them out commits.
    limit: i64,
}

impl Ids {
    /// The next id.
    pub(crate) fn take(&mut self, conn: &Connection) -> Result<i64> {
        let next = match self.next {
            Some(next) => next,
            None => {
                let stored: i64 = conn
                    .prepare_cached(sql::NEXT_ID)
                    .and_then(|mut s| s.query_row([], |r| r.get(0)))
                    .optional()
                    .map_err(map_sqlite)?
                    .ok_or_else(|| Error::corrupt("the notification id sequence is missing"))?;
                self.limit = stored;
                stored
            }
        };
        let exhausted = || Error::corrupt("notification ids exhausted");
        if next >= self.limit {
            self.limit = next.checked_add(IDS_PER_BLOCK).ok_or_else(exhausted)?;
        }
        self.next = Some(next.checked_add(1).ok_or_else(exhausted)?);
        Ok(next)
    }

    /// Stores the reserved block's end if the sequence holds less; runs before each commit. The
    /// update writes nothing (and dirties no page) when the sequence is already there, which is
    /// every commit but one per block; and it repairs a reservation a rolled-back savepoint
    /// undid.
    pub(crate) fn save(&mut self, conn: &Connection) -> Result<()> {
        if self.next.is_none() {
            return Ok(());
        }
        conn.prepare_cached(sql::STORE_NEXT_ID)
            .and_then(|mut s| s.execute([self.limit]))
            .map(drop)
            .map_err(map_sqlite)
    }

    /// Forgets the sequence, to read it again: after a rollback (what was stored in the
    /// transaction is gone), or when another connection may have given out ids (so that ids
    /// keep increasing in commit order across processes). Never while a transaction that gave
    /// out ids stays open: the database does not know them yet.
    pub(crate) fn forget(&mut self) {
        self.next = None;
    }
}

/// An entry the command being applied has posted, written once its notifications are known.
#[derive(Debug)]
struct Unwritten {
    leg: PostedLeg,
    txn: i64,
    /// When the transaction completed, microseconds: what a carried notification's time is
    /// kept relative to. `None`: the entry carries none.
    completed_at: Option<i64>,
    /// The notification it carries: id, state, time minus `completed_at`.
    note: Option<(i64, i64, i64)>,
}

/// The entries a command posts. They are written when the command's notifications are
/// stored ([`store`]), so a money movement's notification goes into the entry it is about
/// with the entry's own insert, or earlier ([`Posted::write`]) when the command must read them
/// back first; then the notification is kept as a row.
#[derive(Debug, Default)]
pub(crate) struct Posted(Vec<Unwritten>);

impl Posted {
    /// Adds the entries `legs` of transaction `txn`, completed at `completed_at`.
    pub(crate) fn add(
        &mut self,
        txn: TransactionId,
        completed_at: Option<Timestamp>,
        legs: &[PostedLeg],
    ) {
        self.0.extend(legs.iter().map(|leg| Unwritten {
            leg: leg.clone(),
            txn: txn.get(),
            completed_at: completed_at.map(Timestamp::as_micros),
            note: None,
        }));
    }

    /// Writes every entry not written yet.
    pub(crate) fn write(&mut self, conn: &Connection) -> Result<()> {
        if self.0.is_empty() {
            return Ok(());
        }
        let mut stmt = conn.prepare_cached(sql::INSERT_ENTRY).map_err(map_sqlite)?;
        for e in self.0.drain(..) {
            let (id, note, delay) = match e.note {
                Some((id, state, delay)) => (Some(id), Some(state * 2), Some(delay)),
                None => (None, None, None),
            };
            stmt.execute(params![
                e.leg.record.id.get(),
                e.leg.head.seq,
                e.txn,
                e.leg.amount_minor,
                e.leg.head.balance_minor,
                e.leg.head.debits_minor,
                id,
                note,
                delay.filter(|d| *d != 0),
                e.leg.record.owner.is_some(),
            ])
            .map_err(map_sqlite)?;
        }
        Ok(())
    }
}

/// Stores a command's notifications, made at `at`, then writes `posted`: a money movement's
/// notification goes into an entry of `posted` of that transaction in a wallet of its user
/// when there is one, any other into `notifications`.
pub(crate) fn store(
    conn: &Connection,
    ids: &mut Ids,
    at: Timestamp,
    posted: &mut Posted,
    notifications: &[NewNotification],
) -> Result<()> {
    for n in notifications {
        let id = ids.take(conn)?;
        if let NoteBody::Transaction(note) = &n.body
            && carry(posted, id, at, n, note)?
        {
            continue;
        }
        insert_row(conn, id, at, n)?;
    }
    posted.write(conn)
}

/// Puts notification `id` into an unwritten entry that can carry it; false if none can. An
/// entry renders only what a movement's notification always is (its kind and priority follow
/// from its state), so anything else is kept as a row.
fn carry(
    posted: &mut Posted,
    id: i64,
    at: Timestamp,
    n: &NewNotification,
    note: &TxnNote,
) -> Result<bool> {
    if n.kind != NotificationType::Transaction || n.priority != note.headline().1 {
        return Ok(false);
    }
    let user = Some(n.user);
    let Some((index, completed_at)) = posted.0.iter().enumerate().find_map(|(i, e)| {
        let ours = e.txn == note.txn.get() && e.leg.record.owner == user;
        e.completed_at.filter(|_| ours).map(|c| (i, c))
    }) else {
        return Ok(false);
    };
    // Ids must increase with `seq` within a wallet (listings search by id): give each wallet
    // at most one per command, whose ids are all above earlier commands'.
    let wallet = posted.0[index].leg.record.id;
    if posted
        .0
        .iter()
        .any(|e| e.note.is_some() && e.leg.record.id == wallet)
    {
        return Ok(false);
    }
    let delay = at
        .as_micros()
        .checked_sub(completed_at)
        .ok_or_else(|| Error::Internal {
            detail: "a notification's time is out of range".into(),
        })?;
    posted.0[index].note = Some((id, note.state(), delay));
    Ok(true)
}

/// Inserts a notification as a row of `notifications`.
fn insert_row(conn: &Connection, id: i64, at: Timestamp, n: &NewNotification) -> Result<()> {
    let mut stmt = conn.prepare_cached(sql::INSERT_ROW).map_err(map_sqlite)?;
    let (user, kind, priority) = (n.user.get(), n.kind.to_db(), n.priority.to_db());
    match &n.body {
        NoteBody::Text { title, message } => stmt.execute(params![
            id,
            user,
            kind,
            priority,
            title,
            message,
            at.as_micros(),
            None::<i64>,
            None::<i64>
        ]),
        NoteBody::Transaction(note) => stmt.execute(params![
            id,
            user,
            kind,
            priority,
            None::<&str>,
            None::<&str>,
            at.as_micros(),
            note.txn.get(),
            note.state()
        ]),
    }
    .map_err(map_sqlite)?;
    Ok(())
}

/// A wallet of a user, as notifications see it.
#[derive(Debug, Clone, Copy)]
struct Wallet {
    id: i64,
    /// `notes_read_upto`.
    read_upto: i64,
    /// Its newest entry's `seq` (0: none).
    head: i64,
}

fn wallets_of(conn: &Connection, user: UserId) -> Result<Vec<Wallet>> {
    let mut stmt = conn.prepare_cached(sql::WALLETS_OF).map_err(map_sqlite)?;
    let found: Vec<(i64, i64)> = stmt
        .query_map([user.get()], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(map_sqlite)?
        .collect::<rusqlite::Result<_>>()
        .map_err(map_sqlite)?;
    let mut head = conn.prepare_cached(sql::HEAD).map_err(map_sqlite)?;
    found
        .into_iter()
        .map(|(id, read_upto)| {
            let head: Option<i64> = head
                .query_row([id], |r| r.get(0))
                .optional()
                .map_err(map_sqlite)?;
            Ok(Wallet {
                id,
                read_upto,
                head: head.unwrap_or(0),
            })
        })
        .collect()
}

/// An entry that carries a notification: its `seq`, the notification's id, and its `note`.
#[derive(Debug, Clone, Copy)]
struct Carrier {
    seq: i64,
    id: i64,
    note: i64,
}

impl Carrier {
    /// Whether it was marked read on its own (the wallet's `notes_read_upto` aside).
    fn marked(&self) -> bool {
        self.note % 2 == 1
    }
}

/// An entry's `seq`, `note_id`, `note` and `note_last`, as [`sql::ENTRY`] and [`sql::DOWN`]
/// read them.
type EntryNoteCols = (i64, Option<i64>, Option<i64>, Option<i64>);

fn entry_note_cols(r: &rusqlite::Row<'_>) -> rusqlite::Result<EntryNoteCols> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

/// What an entry says about notifications: the one it carries, or (if none) the `seq` of the
/// latest earlier entry that carries one (0: none).
fn step(cols: EntryNoteCols) -> Result<std::result::Result<Carrier, i64>> {
    let (seq, id, note, last) = cols;
    match (id, note) {
        (Some(id), Some(note)) => Ok(Ok(Carrier { seq, id, note })),
        (None, None) => {
            let last = last.unwrap_or(0);
            // Each step goes down the chain, so a walk always ends.
            if !(0..seq).contains(&last) {
                return Err(Error::corrupt("a notification chain that does not go down"));
            }
            Ok(Err(last))
        }
        _ => Err(Error::corrupt("an entry's notification is half there")),
    }
}

/// The newest entry of `wallet` at or below `seq` that carries a notification.
fn carrier_at(conn: &Connection, wallet: i64, seq: i64) -> Result<Option<Carrier>> {
    let mut stmt = conn.prepare_cached(sql::ENTRY).map_err(map_sqlite)?;
    let mut seq = seq;
    while seq > 0 {
        let Some(cols) = stmt
            .query_row(params![wallet, seq], entry_note_cols)
            .optional()
            .map_err(map_sqlite)?
        else {
            return Err(Error::corrupt("a wallet's entries have a gap"));
        };
        match step(cols)? {
            Ok(c) => return Ok(Some(c)),
            Err(last) => seq = last,
        }
    }
    Ok(None)
}

/// The `seq` to walk `w` down from for notifications with ids below `before`: the highest
/// whose newest carrier at or below it has an id below `before` (0: none has). Ids increase
/// with `seq`, so this is a binary search.
fn start(conn: &Connection, w: &Wallet, before: i64) -> Result<i64> {
    let below = |seq: i64| -> Result<bool> {
        Ok(carrier_at(conn, w.id, seq)?.is_none_or(|c| c.id < before))
    };
    if before == i64::MAX || below(w.head)? {
        return Ok(w.head);
    }
    let (mut low, mut high) = (0, w.head);
    while high - low > 1 {
        let mid = low + (high - low) / 2;
        if below(mid)? {
            low = mid;
        } else {
            high = mid;
        }
    }
    Ok(low)
}

/// Visits the entries of wallet `wallet` that carry a notification, newest first, from `seq`
/// `from` down to (not including) `floor`, while `visit` says to go on. Entries that carry
/// none are read one after another when they are few, and jumped over when they are many.
fn walk(
    conn: &Connection,
    wallet: i64,
    from: i64,
    floor: i64,
    mut visit: impl FnMut(Carrier) -> Result<bool>,
) -> Result<()> {
    let mut stmt = conn.prepare_cached(sql::DOWN).map_err(map_sqlite)?;
    let mut top = from;
    while top > floor {
        let mut rows = stmt
            .query(params![wallet, top, floor])
            .map_err(map_sqlite)?;
        let mut jump = None;
        while let Some(row) = rows.next().map_err(map_sqlite)? {
            match step(entry_note_cols(row).map_err(map_sqlite)?)? {
                Ok(c) => {
                    if !visit(c)? {
                        return Ok(());
                    }
                }
                Err(last) => {
                    let seq: i64 = row.get(0).map_err(map_sqlite)?;
                    if last < seq - 1 {
                        jump = Some(last);
                        break;
                    }
                }
            }
        }
        match jump {
            Some(last) => top = last,
            None => break,
        }
    }
    Ok(())
}

/// How many notifications carried by `w`'s entries are unread.
fn unread_carried(conn: &Connection, w: &Wallet) -> Result<u64> {
    let mut n = 0u64;
    walk(conn, w.id, w.head, w.read_upto, |c| {
        if !c.marked() {
            n += 1;
        }
        Ok(true)
    })?;
    Ok(n)
}

/// A carried notification, rendered from a row of [`sql::CARRIED`] or [`sql::ALL_CARRIED`].
fn carried(r: &rusqlite::Row<'_>) -> Result<Notification> {
    let get = |e| map_sqlite(e);
    let id: i64 = r.get(0).map_err(get)?;
    let user: Option<i64> = r.get(1).map_err(get)?;
    let note: i64 = r.get(2).map_err(get)?;
    let read: bool = r.get(3).map_err(get)?;
    let at: Option<i64> = r.get(4).map_err(get)?;
    let facts = wallet_core::stored::txn_fact_cols(fact_columns(r, 5).map_err(get)?)?;
    let (Some(user), Some(at)) = (user, at) else {
        return Err(Error::corrupt(
            "a notification carried by an entry of no user's, or of an incomplete transaction",
        ));
    };
    let state = note.div_euclid(2);
    wallet_core::stored::stored_notification((
        id,
        user,
        NotificationType::Transaction.to_db(),
        TxnNote::priority_of_state(state)?.to_db(),
        None,
        None,
        i64::from(read),
        at,
        Some(state),
        facts,
    ))
}

/// A user's notifications, newest first, with ids below `before`.
pub(crate) fn list(
    conn: &Connection,
    user: UserId,
    unread_only: bool,
    before: i64,
    limit: u32,
) -> Result<Vec<Notification>> {
    let want = usize::try_from(limit).unwrap_or(usize::MAX);
    let sql = if unread_only {
        sql::UNREAD_ROWS
    } else {
        sql::ROWS
    };
    let mut stmt = conn.prepare_cached(sql).map_err(map_sqlite)?;
    let rows = read_notifications(&mut stmt, params![user.get(), before, i64::from(limit)])?;
    // The newest `limit` carried by each wallet; then the newest `limit` of everything.
    let mut found: Vec<(i64, Option<(i64, i64)>)> =
        rows.iter().map(|n| (n.id.get(), None)).collect();
    for w in wallets_of(conn, user)? {
        let from = start(conn, &w, before)?;
        let floor = if unread_only { w.read_upto } else { 0 };
        let mut taken = 0usize;
        walk(conn, w.id, from, floor, |c| {
            if !(unread_only && c.marked()) {
                found.push((c.id, Some((w.id, c.seq))));
                taken += 1;
            }
            Ok(taken < want)
        })?;
    }
    found.sort_unstable_by_key(|f| std::cmp::Reverse(f.0));
    found.truncate(want);
    let mut rows = rows.into_iter();
    let mut render = conn.prepare_cached(sql::CARRIED).map_err(map_sqlite)?;
    let mut out = Vec::with_capacity(found.len());
    for (id, place) in found {
        match place {
            Some((wallet, seq)) => {
                let mut q = render.query(params![wallet, seq]).map_err(map_sqlite)?;
                let row = q
                    .next()
                    .map_err(map_sqlite)?
                    .ok_or_else(|| Error::corrupt("a carried notification vanished"))?;
                out.push(carried(row)?);
            }
            // Rows come newest first, as `found` has them.
            None => out.push(
                rows.find(|n| n.id.get() == id)
                    .ok_or_else(|| Error::corrupt("a notification row vanished"))?,
            ),
        }
    }
    Ok(out)
}

/// How many unread notifications a user has.
pub(crate) fn unread_count(conn: &Connection, user: UserId) -> Result<u64> {
    let rows: i64 = conn
        .prepare_cached(sql::UNREAD_ROW_COUNT)
        .and_then(|mut s| s.query_row([user.get()], |r| r.get(0)))
        .map_err(map_sqlite)?;
    let mut n = u64::try_from(rows).map_err(|_| Error::corrupt("notification count"))?;
    for w in wallets_of(conn, user)? {
        n += unread_carried(conn, &w)?;
    }
    Ok(n)
}

/// Marks notifications read; returns how many changed. Runs on the writer's connection.
pub(crate) fn mark_read(conn: &Connection, m: &MarkRead) -> Result<u64> {
    let user = m.user.get();
    let wallets = wallets_of(conn, m.user)?;
    let mut changed = 0u64;
    match &m.ids {
        None => {
            let rows = conn
                .prepare_cached(sql::MARK_ROWS)
                .and_then(|mut s| s.execute([user]))
                .map_err(map_sqlite)?;
            changed += u64::try_from(rows).unwrap_or(u64::MAX);
            let mut upto = conn.prepare_cached(sql::READ_UPTO).map_err(map_sqlite)?;
            for w in wallets.iter().filter(|w| w.head > w.read_upto) {
                changed += unread_carried(conn, w)?;
                upto.execute(params![w.id, w.head]).map_err(map_sqlite)?;
            }
        }
        Some(ids) => {
            let mut row = conn.prepare_cached(sql::ROW).map_err(map_sqlite)?;
            let mut mark_row = conn.prepare_cached(sql::MARK_ROW).map_err(map_sqlite)?;
            let mut mark_carried = conn.prepare_cached(sql::MARK_CARRIED).map_err(map_sqlite)?;
            for id in ids.iter().map(|id| id.get()) {
                // Ids are unique across both places: a row's id is carried by no entry.
                let found: Option<(i64, i64)> = row
                    .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
                    .map_err(map_sqlite)?;
                if found.is_some() {
                    let n = mark_row.execute(params![id, user]).map_err(map_sqlite)?;
                    changed += u64::try_from(n).unwrap_or(u64::MAX);
                    continue;
                }
                for w in &wallets {
                    let Some(c) = carrier_at(conn, w.id, start(conn, w, id.saturating_add(1))?)?
                    else {
                        continue;
                    };
                    if c.id == id {
                        if c.seq > w.read_upto {
                            let n = mark_carried
                                .execute(params![w.id, c.seq])
                                .map_err(map_sqlite)?;
                            changed += u64::try_from(n).unwrap_or(u64::MAX);
                        }
                        break;
                    }
                }
            }
        }
    }
    Ok(changed)
}

/// How many notifications the store holds, in both places (for export).
pub(crate) fn count(conn: &Connection) -> Result<u64> {
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM notifications", [], |r| r.get(0))
        .map_err(map_sqlite)?;
    let carried: i64 = conn
        .query_row(sql::CARRIED_COUNT, [], |r| r.get(0))
        .map_err(map_sqlite)?;
    rows.checked_add(carried)
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| Error::corrupt("notification count"))
}

/// Every notification in id order, rendered, from both places (for export).
pub(crate) fn for_each(
    conn: &Connection,
    mut f: impl FnMut(Notification) -> Result<()>,
) -> Result<()> {
    let mut rows_stmt = conn.prepare(sql::ALL_ROWS).map_err(map_sqlite)?;
    let mut rows = read_notifications(&mut rows_stmt, [])?
        .into_iter()
        .peekable();
    let mut carried_stmt = conn.prepare(sql::ALL_CARRIED).map_err(map_sqlite)?;
    let mut carried_rows = carried_stmt.query([]).map_err(map_sqlite)?;
    while let Some(row) = carried_rows.next().map_err(map_sqlite)? {
        let n = carried(row)?;
        while let Some(r) = rows.next_if(|r| r.id < n.id) {
            f(r)?;
        }
        f(n)?;
    }
    rows.try_for_each(f)
}

/// After an import, which brings notifications as rows: ids go on after theirs.
pub(crate) fn after_import(conn: &Connection) -> Result<()> {
    conn.execute(sql::NEXT_ID_AFTER_IMPORT, [])
        .map(drop)
        .map_err(map_sqlite)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{latest_version, migrate_to};
    use wallet_core::notify::Priority;
    use wallet_core::transaction::{TransactionKind, TransactionStatus};

    /// A version-4 database keeps its notifications as rows, read and unread as they were; the
    /// sequence starts after them, and the wallets' entries carry none.
    #[test]
    fn upgrading_keeps_every_notification_as_a_row() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate_to(&mut conn, 4).unwrap();
        let (transfer, completed) = (
            TransactionKind::Transfer.to_db(),
            TransactionStatus::Completed.to_db(),
        );
        let (money, system) = (
            NotificationType::Transaction.to_db(),
            NotificationType::System.to_db(),
        );
        let normal = Priority::Normal.to_db();
        conn.execute_batch(&format!(
            "INSERT INTO currencies VALUES ('USD', 2);
             INSERT INTO users (id, username, email, role, active, kyc, token_version,
                                created_at, updated_at)
             VALUES (1, 'a', 'a@example.com', 1, 1, 1, 0, 1, 1),
                    (2, 'b', 'b@example.com', 1, 1, 1, 0, 1, 1);
             INSERT INTO wallets (id, owner_id, kind, currency, status, created_at, updated_at)
             VALUES (10, 1, 1, 'USD', 1, 1, 1), (11, 2, 1, 'USD', 1, 1, 1);
             INSERT INTO transactions (id, kind, status, amount, currency, initiated_by,
                                       idempotency_key, fingerprint, created_at, completed_at)
             VALUES (5, {transfer}, {completed}, 100, 'USD', 1, 'k', zeroblob(16), 2, 2);
             INSERT INTO entries (wallet_id, seq, txn_id, amount, balance_after, debits_after)
             VALUES (10, 1, 5, -100, -100, 100), (11, 1, 5, 100, 100, 0);
             INSERT INTO notifications (id, user_id, kind, priority, title, message, read,
                                        created_at, txn_id, txn_state)
             VALUES (1, 1, {system}, {normal}, 'Welcome', 'Hello.', 1, 1, NULL, NULL),
                    (2, 1, {money}, {normal}, NULL, NULL, 0, 2, 5, {sent}),
                    (3, 2, {money}, {normal}, NULL, NULL, 0, 2, 5, {received});",
            sent = completed * 2,
            received = completed * 2 + 1,
        ))
        .unwrap();
        migrate_to(&mut conn, latest_version()).unwrap();

        let a = UserId::new(1).unwrap();
        let page: Vec<(i64, bool, String)> = list(&conn, a, false, i64::MAX, 10)
            .unwrap()
            .into_iter()
            .map(|n| (n.id.get(), n.read, n.title))
            .collect();
        assert_eq!(
            page,
            vec![(2, false, "Money sent".into()), (1, true, "Welcome".into())]
        );
        assert_eq!(unread_count(&conn, a).unwrap(), 1);
        assert_eq!(unread_count(&conn, UserId::new(2).unwrap()).unwrap(), 1);
        assert_eq!(count(&conn).unwrap(), 3);
        let mut ids = Ids::default();
        assert_eq!(ids.take(&conn).unwrap(), 4);
        assert_eq!(ids.take(&conn).unwrap(), 5);
        ids.save(&conn).unwrap();
        ids.forget();
        // The rest of the block is forgotten, never reused.
        assert_eq!(
            ids.take(&conn).unwrap(),
            4 + IDS_PER_BLOCK,
            "the block was not stored"
        );
        let carried: i64 = conn
            .query_row(
                "SELECT count(*) FROM entries WHERE note_id IS NOT NULL OR note_last IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(carried, 0);
    }
}
