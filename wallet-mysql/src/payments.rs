//! SQL for the money side beyond plain postings: pending transactions and holds, refunds,
//! limits, merchants, payment links and notifications.

use sqlx::{Either, MySqlConnection};
use wallet_core::command::MarkRead;
use wallet_core::decide::{LinkRecord, MerchantRecord, NewPending, PendingRecord, TxnUpdate};
use wallet_core::ids::{MerchantId, TransactionId, UserId, WalletId};
use wallet_core::limits::Limits;
use wallet_core::links::{LinkCode, LinkStatus};
use wallet_core::notify::{NewEvent, NewNotification, NoteBody, Notification};
use wallet_core::stored::{self, LinkCols, MerchantCols};
use wallet_core::text::{Description, ExternalRef, IdempotencyKey};
use wallet_core::{Error, Result, Timestamp};

use crate::error::{map_sqlx, server_code};
use crate::queries::{self, changed_one, insert_entries, last_id, pendings};
use crate::script::{Lit, Script, values_sql};

/// The transaction a gateway reference names, if any.
pub(crate) async fn txn_of_gateway(
    conn: &mut MySqlConnection,
    reference: &ExternalRef,
) -> Result<Option<TransactionId>> {
    let id: Option<i64> = sqlx::query_scalar("SELECT txn_id FROM pending WHERE gateway_ref = ?")
        .bind(reference.as_str())
        .fetch_optional(conn)
        .await
        .map_err(map_sqlx)?;
    id.map(stored::txn_id).transpose()
}

/// Open holds of `wallet` lapsed at `now` (at most `limit`).
pub(crate) async fn expired_of(
    conn: &mut MySqlConnection,
    wallet: WalletId,
    now: Timestamp,
    limit: u32,
) -> Result<Vec<PendingRecord>> {
    pendings(
        conn,
        "wallet_id = ? AND open = 1 AND expires_at <= ? ORDER BY expires_at LIMIT ?",
        &[wallet.get(), now.as_micros(), i64::from(limit)],
    )
    .await
}

/// Open holds and pending top-ups lapsed at `now` (at most `limit`).
pub(crate) async fn due(
    conn: &mut MySqlConnection,
    now: Timestamp,
    limit: u32,
) -> Result<Vec<PendingRecord>> {
    pendings(
        conn,
        "open = 1 AND expires_at <= ? ORDER BY expires_at LIMIT ?",
        &[now.as_micros(), i64::from(limit)],
    )
    .await
}

/// Inserts the pending record of transaction `txn`.
pub(crate) async fn insert_pending(
    conn: &mut MySqlConnection,
    txn: TransactionId,
    p: &NewPending,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO pending (txn_id, wallet_id, counter_id, amount, held, gateway_ref,
                              expires_at, open) VALUES (?, ?, ?, ?, ?, ?, ?, 1)",
    )
    .bind(txn.get())
    .bind(p.wallet.get())
    .bind(p.counter.map(WalletId::get))
    .bind(p.amount_minor)
    .bind(p.held_minor)
    .bind(p.gateway_ref.as_ref().map(ExternalRef::as_str))
    .bind(p.expires_at.as_micros())
    .execute(conn)
    .await
    .map_err(|e| {
        if server_code(&e) == Some(1062) && e.to_string().contains("pending_by_gateway") {
            Error::GatewayReferenceExists
        } else {
            map_sqlx(e)
        }
    })?;
    Ok(())
}

/// Applies changes to an existing transaction (its entries included).
pub(crate) async fn update_txn(
    conn: &mut MySqlConnection,
    u: &TxnUpdate,
    windows: queries::Windows,
) -> Result<()> {
    sqlx::query(
        "UPDATE transactions SET status = ?, amount = ?, refunded = ?,
             completed_at = coalesce(?, completed_at) WHERE id = ?",
    )
    .bind(u.status.to_db())
    .bind(u.amount_minor)
    .bind(u.refunded_minor)
    .bind(u.completed_at.map(Timestamp::as_micros))
    .bind(u.id.get())
    .execute(&mut *conn)
    .await
    .map_err(map_sqlx)?;
    insert_entries(conn, u.id, &u.legs, windows).await?;
    if u.close_pending {
        let done =
            sqlx::query("UPDATE pending SET held = 0, open = 0 WHERE txn_id = ? AND open = 1")
                .bind(u.id.get())
                .execute(&mut *conn)
                .await
                .map_err(map_sqlx)?;
        changed_one(done.rows_affected(), "open pending record")?;
    }
    if u.release_order {
        sqlx::query("DELETE FROM merchant_orders WHERE txn_id = ?")
            .bind(u.id.get())
            .execute(conn)
            .await
            .map_err(map_sqlx)?;
    }
    Ok(())
}

/// Records that refund `txn` reverses `original`.
pub(crate) async fn set_original(
    conn: &mut MySqlConnection,
    txn: TransactionId,
    original: TransactionId,
) -> Result<()> {
    let done = sqlx::query("UPDATE transactions SET original_id = ? WHERE id = ?")
        .bind(original.get())
        .bind(txn.get())
        .execute(conn)
        .await
        .map_err(map_sqlx)?;
    changed_one(done.rows_affected(), "transaction")
}

/// A wallet's stored limits: `?` the wallet.
pub(crate) const LIMITS: &str =
    "SELECT per_transaction, daily, monthly FROM wallet_limits WHERE wallet_id = ?";

/// A wallet's stored limits.
pub(crate) async fn limits(conn: &mut MySqlConnection, wallet: WalletId) -> Result<Option<Limits>> {
    let row: Option<(i64, i64, i64)> = sqlx::query_as(LIMITS)
        .bind(wallet.get())
        .fetch_optional(conn)
        .await
        .map_err(map_sqlx)?;
    Ok(limits_of(row))
}

/// The limits of a row read by [`LIMITS`], if any.
pub(crate) fn limits_of(row: Option<(i64, i64, i64)>) -> Option<Limits> {
    row.map(|(per_transaction, daily, monthly)| Limits {
        per_transaction,
        daily,
        monthly,
    })
}

/// Stores a wallet's limits (`None`: the defaults).
pub(crate) async fn set_limits(
    conn: &mut MySqlConnection,
    wallet: WalletId,
    l: Option<&Limits>,
) -> Result<()> {
    match l {
        None => {
            sqlx::query("DELETE FROM wallet_limits WHERE wallet_id = ?")
                .bind(wallet.get())
                .execute(conn)
                .await
        }
        Some(l) => {
            sqlx::query(
                "INSERT INTO wallet_limits (wallet_id, per_transaction, daily, monthly)
             VALUES (?, ?, ?, ?)
             ON DUPLICATE KEY UPDATE per_transaction = VALUES(per_transaction),
                 daily = VALUES(daily), monthly = VALUES(monthly)",
            )
            .bind(wallet.get())
            .bind(l.per_transaction)
            .bind(l.daily)
            .bind(l.monthly)
            .execute(conn)
            .await
        }
    }
    .map_err(map_sqlx)?;
    Ok(())
}

async fn merchant_by(
    conn: &mut MySqlConnection,
    sql: &str,
    key: i64,
) -> Result<Option<MerchantRecord>> {
    let row: Option<MerchantCols> = sqlx::query_as(sql)
        .bind(key)
        .fetch_optional(conn)
        .await
        .map_err(map_sqlx)?;
    row.map(stored::merchant).transpose()
}

/// A merchant by id.
pub(crate) async fn merchant(
    conn: &mut MySqlConnection,
    id: MerchantId,
) -> Result<Option<MerchantRecord>> {
    merchant_by(
        conn,
        "SELECT id, wallet_id, name, created_at FROM merchants WHERE id = ?",
        id.get(),
    )
    .await
}

/// The merchant registered on a wallet.
pub(crate) async fn merchant_of(
    conn: &mut MySqlConnection,
    wallet: WalletId,
) -> Result<Option<MerchantRecord>> {
    merchant_by(
        conn,
        "SELECT id, wallet_id, name, created_at FROM merchants WHERE wallet_id = ?",
        wallet.get(),
    )
    .await
}

/// Inserts a merchant; returns it with its id.
pub(crate) async fn insert_merchant(
    conn: &mut MySqlConnection,
    m: &MerchantRecord,
) -> Result<MerchantRecord> {
    let done = sqlx::query("INSERT INTO merchants (wallet_id, name, created_at) VALUES (?, ?, ?)")
        .bind(m.wallet.get())
        .bind(m.name.as_str())
        .bind(m.created_at.as_micros())
        .execute(conn)
        .await
        .map_err(map_sqlx)?;
    Ok(MerchantRecord {
        id: MerchantId::new(last_id(done.last_insert_id())?)
            .map_err(stored::corrupt("merchant id"))?,
        ..m.clone()
    })
}

/// The payment that paid a merchant's order, if any.
pub(crate) async fn order_paid(
    conn: &mut MySqlConnection,
    merchant: MerchantId,
    order: &ExternalRef,
) -> Result<Option<TransactionId>> {
    let id: Option<i64> = sqlx::query_scalar(
        "SELECT txn_id FROM merchant_orders WHERE merchant_id = ? AND order_id = ?",
    )
    .bind(merchant.get())
    .bind(order.as_str())
    .fetch_optional(conn)
    .await
    .map_err(map_sqlx)?;
    id.map(stored::txn_id).transpose()
}

/// Records that `txn` pays a merchant's order.
pub(crate) async fn insert_order(
    conn: &mut MySqlConnection,
    merchant: MerchantId,
    order: &ExternalRef,
    txn: TransactionId,
) -> Result<()> {
    sqlx::query("INSERT INTO merchant_orders (merchant_id, order_id, txn_id) VALUES (?, ?, ?)")
        .bind(merchant.get())
        .bind(order.as_str())
        .bind(txn.get())
        .execute(conn)
        .await
        .map_err(map_sqlx)?;
    Ok(())
}

macro_rules! link_select {
    () => {
        "SELECT l.id, l.code, l.wallet_id, l.amount, w.currency, c.exponent, l.description,
                l.status, l.expires_at, l.paid_txn, l.created_by, l.idempotency_key,
                l.fingerprint, l.created_at
         FROM payment_links l JOIN wallets w ON w.id = l.wallet_id
         JOIN currencies c ON c.code = w.currency"
    };
}

/// A link by code; with `lock`, its row stays locked until the transaction ends.
pub(crate) async fn link(
    conn: &mut MySqlConnection,
    code: &LinkCode,
    lock: bool,
) -> Result<Option<LinkRecord>> {
    if lock {
        // Only the link's row: `FOR UPDATE` on the join would lock its wallet out of order.
        sqlx::query("SELECT id FROM payment_links WHERE code = ? FOR UPDATE")
            .bind(&code.bytes()[..])
            .fetch_optional(&mut *conn)
            .await
            .map_err(map_sqlx)?;
    }
    let row: Option<LinkCols> = sqlx::query_as(concat!(link_select!(), " WHERE l.code = ?"))
        .bind(&code.bytes()[..])
        .fetch_optional(conn)
        .await
        .map_err(map_sqlx)?;
    row.map(stored::link).transpose()
}

/// The link `user` created with `key`.
pub(crate) async fn link_by_key(
    conn: &mut MySqlConnection,
    user: UserId,
    key: &IdempotencyKey,
) -> Result<Option<LinkRecord>> {
    let row: Option<LinkCols> = sqlx::query_as(concat!(
        link_select!(),
        " WHERE l.created_by = ? AND l.idempotency_key = ?"
    ))
    .bind(user.get())
    .bind(key.as_str())
    .fetch_optional(conn)
    .await
    .map_err(map_sqlx)?;
    row.map(stored::link).transpose()
}

/// Links of a wallet, newest first, older than id `before`.
pub(crate) async fn links_of(
    conn: &mut MySqlConnection,
    wallet: WalletId,
    before: i64,
    limit: u32,
) -> Result<Vec<LinkRecord>> {
    let rows: Vec<LinkCols> = sqlx::query_as(concat!(
        link_select!(),
        " WHERE l.wallet_id = ? AND l.id < ? ORDER BY l.id DESC LIMIT ?"
    ))
    .bind(wallet.get())
    .bind(before)
    .bind(limit)
    .fetch_all(conn)
    .await
    .map_err(map_sqlx)?;
    rows.into_iter().map(stored::link).collect()
}

/// Inserts a link; returns it with its id.
pub(crate) async fn insert_link(conn: &mut MySqlConnection, l: &LinkRecord) -> Result<LinkRecord> {
    let done = sqlx::query(
        "INSERT INTO payment_links (code, wallet_id, amount, description, status, expires_at,
             paid_txn, created_by, idempotency_key, fingerprint, created_at)
         VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?)",
    )
    .bind(&l.code.bytes()[..])
    .bind(l.wallet.get())
    .bind(l.amount_minor)
    .bind(l.description.as_ref().map(Description::as_str))
    .bind(l.status.to_db())
    .bind(l.expires_at.as_micros())
    .bind(l.created_by.get())
    .bind(l.idempotency_key.as_str())
    .bind(&l.fingerprint.0[..])
    .bind(l.created_at.as_micros())
    .execute(conn)
    .await
    .map_err(map_sqlx)?;
    Ok(LinkRecord {
        id: last_id(done.last_insert_id())?,
        ..l.clone()
    })
}

/// Stores a link's status and payment.
pub(crate) async fn update_link(
    conn: &mut MySqlConnection,
    id: i64,
    status: LinkStatus,
    paid: Option<TransactionId>,
) -> Result<()> {
    sqlx::query(
        "UPDATE payment_links SET status = ?, paid_txn = coalesce(?, paid_txn) WHERE id = ?",
    )
    .bind(status.to_db())
    .bind(paid.map(TransactionId::get))
    .bind(id)
    .execute(conn)
    .await
    .map_err(map_sqlx)?;
    Ok(())
}

/// A transaction a script inserts before its trail, whose id is known only once the script has
/// run: the trail names it by `placeholder`, and the script by SQL.
pub(crate) struct NewTxn<'a> {
    /// The id the trail was built with.
    pub(crate) placeholder: TransactionId,
    /// Who submitted it, and under which key (unique together): how later statements find it.
    pub(crate) by: UserId,
    /// Its idempotency key.
    pub(crate) key: &'a IdempotencyKey,
}

/// Whether every notification and event of a trail refers to its transaction by id only (none
/// is text), so a script can name a transaction it inserts itself (see [`NewTxn`]).
pub(crate) fn by_reference_only(notifications: &[NewNotification], events: &[NewEvent]) -> bool {
    notifications
        .iter()
        .all(|n| matches!(n.body, NoteBody::Transaction(_)))
        && events.iter().all(|e| e.compact().is_some())
}

/// `SELECT id FROM transactions` of the one `by` submitted under `key`, as an expression: how a
/// statement names a transaction its own script inserted before it.
pub(crate) fn txn_by_key(by: UserId, key: &IdempotencyKey) -> Result<String> {
    Script::expression(
        "SELECT id FROM transactions WHERE initiated_by = ? AND idempotency_key = ?",
        &[Lit::Int(by.get()), Lit::Latin1(key.as_str())],
    )
}

/// Appends the inserts of notifications and events, each kind in one statement. With `new`,
/// the statement before them inserted that transaction's entries (see
/// [`queries::push_posting`]), and references to its placeholder name it by SQL.
pub(crate) fn push_trail(
    script: &mut Script,
    at: Timestamp,
    notifications: &[NewNotification],
    events: &[NewEvent],
    new: Option<&NewTxn<'_>>,
) -> Result<()> {
    // Until a statement of the trail generates an id, LAST_INSERT_ID() is the new
    // transaction's; afterwards its unique key finds it.
    let found = match new {
        Some(n) => txn_by_key(n.by, n.key)?,
        None => String::new(),
    };
    let txn_ref = |txn: TransactionId, last_insert_is_new: bool| match new {
        Some(n) if n.placeholder == txn && last_insert_is_new => queries::NEW_TXN_ID,
        Some(n) if n.placeholder == txn => Lit::Built(&found),
        _ => Lit::Int(txn.get()),
    };
    push_trails(script, &[(at, notifications, events)], &txn_ref)
}

/// The notifications and events of one command, and when it ran.
pub(crate) type TrailRows<'t> = (Timestamp, &'t [NewNotification], &'t [NewEvent]);

/// Appends the inserts of the notifications and events of `trails`, each kind in one
/// statement. `txn_ref` gives the literal naming a transaction a row refers to, told whether
/// `LAST_INSERT_ID()` is still the id that the statement before the trail generated (true
/// until a statement of the trail generates one).
pub(crate) fn push_trails<'a>(
    script: &mut Script,
    trails: &[TrailRows<'_>],
    txn_ref: &dyn Fn(TransactionId, bool) -> Lit<'a>,
) -> Result<()> {
    let notifications = trails
        .iter()
        .flat_map(|(at, n, _)| n.iter().map(move |n| (*at, n)));
    let count = notifications.clone().count();
    // Money movements' notifications and events are stored by reference, as in SQLite (see
    // `wallet_core::notify::TxnNote`): their text columns stay null.
    if count > 0 {
        let sql = values_sql(
            "INSERT INTO notifications
                 (user_id, kind, priority, title, message, `read`, created_at, txn_id, txn_state)
             VALUES ",
            "(?, ?, ?, ?, ?, 0, ?, ?, ?)",
            count,
        );
        let mut args = Vec::with_capacity(count * 8);
        for (at, n) in notifications {
            let (title, message, txn, state) = match &n.body {
                NoteBody::Text { title, message } => (
                    Lit::Text(title),
                    Lit::Text(message),
                    Lit::OptInt(None),
                    Lit::OptInt(None),
                ),
                NoteBody::Transaction(note) => (
                    Lit::OptText(None),
                    Lit::OptText(None),
                    txn_ref(note.txn, true),
                    Lit::Int(note.state()),
                ),
            };
            args.extend([
                Lit::Int(n.user.get()),
                Lit::Int(n.kind.to_db()),
                Lit::Int(n.priority.to_db()),
                title,
                message,
                Lit::Int(at.as_micros()),
                txn,
                state,
            ]);
        }
        script.push(&sql, &args)?;
    }
    // Each event as the reference it is stored as, or its text (rendered only then).
    let rows: Vec<_> = trails
        .iter()
        .flat_map(|(at, _, events)| events.iter().map(move |e| (*at, e)))
        .map(|(at, e)| match e.compact() {
            Some(reference) => (at, Either::Left(reference)),
            None => (at, Either::Right((e.kind(), e.subject(), e.payload()))),
        })
        .collect();
    if !rows.is_empty() {
        let sql = values_sql(
            "INSERT INTO events (at, kind, subject, payload, txn_id, txn_status) VALUES ",
            "(?, ?, ?, ?, ?, ?)",
            rows.len(),
        );
        let mut args = Vec::with_capacity(rows.len() * 6);
        for (at, row) in &rows {
            args.push(Lit::Int(at.as_micros()));
            match row {
                Either::Left((txn, status)) => args.extend([
                    Lit::OptText(None),
                    Lit::OptText(None),
                    Lit::OptText(None),
                    txn_ref(*txn, count == 0),
                    Lit::Int(status.to_db()),
                ]),
                Either::Right((kind, subject, payload)) => args.extend([
                    Lit::Text(kind),
                    Lit::Text(subject),
                    Lit::Text(payload),
                    Lit::OptInt(None),
                    Lit::OptInt(None),
                ]),
            }
        }
        script.push(&sql, &args)?;
    }
    Ok(())
}

/// The columns a notification is read with (`stored::StoredNotificationCols`, flattened), its
/// transaction joined for the ones stored by reference; rows come from `n`.
macro_rules! notification_select {
    () => {
        "SELECT n.id, n.user_id, n.kind, n.priority, n.title, n.message, n.`read`,
                n.created_at, n.txn_state, t.id, t.kind, t.amount, t.currency, c.exponent,
                t.original_id
         FROM n LEFT JOIN transactions t ON t.id = n.txn_id
         LEFT JOIN currencies c ON c.code = t.currency"
    };
}
pub(crate) use notification_select;

/// A notification row as read by `notification_select!`.
pub(crate) type NotificationRow = (
    i64,
    i64,
    i64,
    i64,
    Option<String>,
    Option<String>,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<i64>,
);

/// A notification from a row of `notification_select!`, rendered.
pub(crate) fn notification_of(r: NotificationRow) -> Result<Notification> {
    let (id, user, kind, priority, title, message, read, at, state, t0, t1, t2, t3, t4, t5) = r;
    let facts = stored::txn_fact_cols((t0, t1, t2, t3, t4, t5))?;
    stored::stored_notification((
        id, user, kind, priority, title, message, read, at, state, facts,
    ))
}

/// A user's notifications, newest first, older than id `before`.
pub(crate) async fn notifications(
    conn: &mut MySqlConnection,
    user: UserId,
    unread_only: bool,
    before: i64,
    limit: u32,
) -> Result<Vec<Notification>> {
    // The index is (user, read state, id): the newest of each state are two range reads.
    let rows: Vec<NotificationRow> = if unread_only {
        sqlx::query_as(concat!(
            "WITH n AS (SELECT * FROM notifications WHERE user_id = ? AND `read` = 0 AND id < ?
                        ORDER BY id DESC LIMIT ?) ",
            notification_select!(),
            " ORDER BY n.id DESC"
        ))
        .bind(user.get())
        .bind(before)
        .bind(limit)
    } else {
        sqlx::query_as(concat!(
            "WITH n AS ((SELECT * FROM notifications WHERE user_id = ? AND `read` = 0 AND id < ?
                         ORDER BY id DESC LIMIT ?)
                        UNION ALL
                        (SELECT * FROM notifications WHERE user_id = ? AND `read` = 1 AND id < ?
                         ORDER BY id DESC LIMIT ?)) ",
            notification_select!(),
            " ORDER BY n.id DESC LIMIT ?"
        ))
        .bind(user.get())
        .bind(before)
        .bind(limit)
        .bind(user.get())
        .bind(before)
        .bind(limit)
        .bind(limit)
    }
    .fetch_all(conn)
    .await
    .map_err(map_sqlx)?;
    rows.into_iter().map(notification_of).collect()
}

/// How many unread notifications a user has.
pub(crate) async fn unread_count(conn: &mut MySqlConnection, user: UserId) -> Result<u64> {
    let n: i64 =
        sqlx::query_scalar("SELECT count(*) FROM notifications WHERE user_id = ? AND `read` = 0")
            .bind(user.get())
            .fetch_one(conn)
            .await
            .map_err(map_sqlx)?;
    stored::count(n)
}

/// Marks notifications read; returns how many changed.
pub(crate) async fn mark_read(conn: &mut MySqlConnection, m: &MarkRead) -> Result<u64> {
    match &m.ids {
        None => Ok(sqlx::query(
            "UPDATE notifications SET `read` = 1 WHERE user_id = ? AND `read` = 0",
        )
        .bind(m.user.get())
        .execute(conn)
        .await
        .map_err(map_sqlx)?
        .rows_affected()),
        Some(ids) => {
            let mut n = 0;
            for id in ids {
                n += sqlx::query(
                    "UPDATE notifications SET `read` = 1 WHERE id = ? AND user_id = ? AND `read` = 0",
                )
                .bind(id.get())
                .bind(m.user.get())
                .execute(&mut *conn)
                .await
                .map_err(map_sqlx)?
                .rows_affected();
            }
            Ok(n)
        }
    }
}
