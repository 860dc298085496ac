//! SQL for the money side beyond plain postings: pending transactions and holds, refunds,
//! limits, merchants, payment links, notifications and the event feed.

use rusqlite::{Connection, OptionalExtension, params};
use wallet_core::command::TxnLookup;
use wallet_core::decide::{
    LinkRecord, MerchantRecord, NewPending, PendingRecord, StoredTxn, TxnUpdate,
};
use wallet_core::ids::{MerchantId, TransactionId, UserId, WalletId};
use wallet_core::limits::Limits;
use wallet_core::links::{LinkCode, LinkStatus};
use wallet_core::notify::{Event, NewEvent, Notification};
use wallet_core::stored::{NullableTxnFactCols, txn_fact_cols};
use wallet_core::text::{Description, ExternalRef, IdempotencyKey};
use wallet_core::wallet::WalletRecord;
use wallet_core::{Error, Result, Timestamp};

use crate::error::map_sqlite;
use crate::queries::{self, corrupt};

pub(crate) mod sql {
    macro_rules! pending_select {
        () => {
            "SELECT txn_id, wallet_id, counter_id, amount, held, gateway_ref, expires_at, open
             FROM pending"
        };
    }
    pub(crate) const PENDING_BY_TXN: &str = concat!(pending_select!(), " WHERE txn_id = ?1");
    pub(crate) const PENDING_BY_GATEWAY: &str =
        concat!(pending_select!(), " WHERE gateway_ref = ?1");
    pub(crate) const EXPIRED_OF_WALLET: &str = concat!(
        pending_select!(),
        " WHERE wallet_id = ?1 AND open = 1 AND expires_at <= ?2 ORDER BY expires_at LIMIT ?3"
    );
    pub(crate) const DUE: &str = concat!(
        pending_select!(),
        " WHERE open = 1 AND expires_at <= ?1 ORDER BY expires_at LIMIT ?2"
    );
    pub(crate) const LIMITS: &str =
        "SELECT per_transaction, daily, monthly FROM wallet_limits WHERE wallet_id = ?1";
    pub(crate) const MERCHANT: &str =
        "SELECT id, wallet_id, name, created_at FROM merchants WHERE id = ?1";
    pub(crate) const MERCHANT_OF_WALLET: &str =
        "SELECT id, wallet_id, name, created_at FROM merchants WHERE wallet_id = ?1";
    pub(crate) const ORDER: &str =
        "SELECT txn_id FROM merchant_orders WHERE merchant_id = ?1 AND order_id = ?2";
    pub(crate) const RELEASE_ORDER: &str = "DELETE FROM merchant_orders WHERE txn_id = ?1";
    macro_rules! link_select {
        () => {
            "SELECT l.id, l.code, l.wallet_id, l.amount, w.currency, c.exponent, l.description,
                    l.status, l.expires_at, l.paid_txn, l.created_by, l.idempotency_key,
                    l.fingerprint, l.created_at
             FROM payment_links l JOIN wallets w ON w.id = l.wallet_id
             JOIN currencies c ON c.code = w.currency"
        };
    }
    pub(crate) const LINK_BY_CODE: &str = concat!(link_select!(), " WHERE l.code = ?1");
    pub(crate) const LINK_BY_KEY: &str = concat!(
        link_select!(),
        " WHERE l.created_by = ?1 AND l.idempotency_key = ?2"
    );
    pub(crate) const LINKS_OF_WALLET: &str = concat!(
        link_select!(),
        " WHERE l.wallet_id = ?1 AND l.id < ?2 ORDER BY l.id DESC LIMIT ?3"
    );
    /// Events (`stored::StoredEventCols`) after a cursor, their transaction joined for the
    /// ones stored by reference.
    macro_rules! event_select {
        () => {
            "SELECT e.id, e.at, e.kind, e.subject, e.payload, e.txn_status, t.id, t.kind,
                    t.amount, t.currency, c.exponent, t.original_id
             FROM events e LEFT JOIN transactions t ON t.id = e.txn_id
             LEFT JOIN currencies c ON c.code = t.currency"
        };
    }
    pub(crate) const EVENTS: &str =
        concat!(event_select!(), " WHERE e.id > ?1 ORDER BY e.id LIMIT ?2");
    /// Every event in id order, rendered (for export).
    pub(crate) const ALL_EVENTS: &str = concat!(event_select!(), " ORDER BY e.id");

    #[cfg(test)]
    pub(crate) const INDEXED: &[&str] = &[
        PENDING_BY_TXN,
        PENDING_BY_GATEWAY,
        EXPIRED_OF_WALLET,
        DUE,
        LIMITS,
        MERCHANT,
        MERCHANT_OF_WALLET,
        ORDER,
        RELEASE_ORDER,
        LINK_BY_CODE,
        LINK_BY_KEY,
        LINKS_OF_WALLET,
        EVENTS,
    ];
}

use wallet_core::stored::{LinkCols, PendingCols, txn_id};

fn pending_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PendingCols> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
    ))
}

fn pendings(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<PendingRecord>> {
    let mut stmt = conn.prepare_cached(sql).map_err(map_sqlite)?;
    let rows = stmt.query_map(params, pending_row).map_err(map_sqlite)?;
    rows.map(|r| wallet_core::stored::pending(r.map_err(map_sqlite)?))
        .collect()
}

/// The pending record of a transaction.
pub(crate) fn pending_of(conn: &Connection, txn: TransactionId) -> Result<Option<PendingRecord>> {
    Ok(pendings(conn, sql::PENDING_BY_TXN, [txn.get()])?
        .into_iter()
        .next())
}

/// A transaction as decisions see it, by id or by gateway reference.
pub(crate) fn stored_txn(conn: &Connection, lookup: &TxnLookup) -> Result<Option<StoredTxn>> {
    let id = match lookup {
        TxnLookup::Id(id) => *id,
        TxnLookup::Gateway(reference) => {
            match pendings(conn, sql::PENDING_BY_GATEWAY, [reference.as_str()])?.first() {
                Some(p) => p.transaction,
                None => return Ok(None),
            }
        }
    };
    let Some((t, pending)) = queries::transaction_and_pending(conn, id)? else {
        return Ok(None);
    };
    Ok(Some(wallet_core::stored::stored_txn(&t, pending)))
}

/// Open holds of `wallet` lapsed at `now` (at most `limit`).
pub(crate) fn expired_of(
    conn: &Connection,
    wallet: WalletId,
    now: Timestamp,
    limit: u32,
) -> Result<Vec<PendingRecord>> {
    pendings(
        conn,
        sql::EXPIRED_OF_WALLET,
        params![wallet.get(), now.as_micros(), i64::from(limit)],
    )
}

/// Open holds and pending top-ups lapsed at `now` (at most `limit`).
pub(crate) fn due(conn: &Connection, now: Timestamp, limit: u32) -> Result<Vec<PendingRecord>> {
    pendings(conn, sql::DUE, params![now.as_micros(), i64::from(limit)])
}

/// Inserts the pending record of transaction `txn`.
pub(crate) fn insert_pending(conn: &Connection, txn: TransactionId, p: &NewPending) -> Result<()> {
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO pending (txn_id, wallet_id, counter_id, amount, held, gateway_ref,
                                  expires_at, open) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1)",
        )
        .map_err(map_sqlite)?;
    stmt.execute(params![
        txn.get(),
        p.wallet.get(),
        p.counter.map(WalletId::get),
        p.amount_minor,
        p.held_minor,
        p.gateway_ref.as_ref().map(ExternalRef::as_str),
        p.expires_at.as_micros(),
    ])
    .map_err(|e| match map_sqlite(e) {
        Error::Internal { detail } if detail.contains("gateway_ref") => {
            Error::GatewayReferenceExists
        }
        other => other,
    })?;
    Ok(())
}

fn changed_one(n: usize, what: &str) -> Result<()> {
    if n == 1 {
        Ok(())
    } else {
        Err(Error::corrupt(format!("{what} vanished")))
    }
}

/// Applies changes to an existing transaction; its new entries go to `posted`.
pub(crate) fn update_txn(
    conn: &Connection,
    u: &TxnUpdate,
    posted: &mut crate::notes::Posted,
) -> Result<()> {
    let mut stmt = conn
        .prepare_cached(
            "UPDATE transactions SET status = ?2, amount = ?3, refunded = ?4,
                 completed_at = coalesce(?5, completed_at) WHERE id = ?1",
        )
        .map_err(map_sqlite)?;
    let n = stmt
        .execute(params![
            u.id.get(),
            u.status.to_db(),
            u.amount_minor,
            u.refunded_minor,
            u.completed_at.map(Timestamp::as_micros)
        ])
        .map_err(map_sqlite)?;
    changed_one(n, "transaction")?;
    posted.add(u.id, u.completed_at, &u.legs);
    if u.close_pending {
        let mut stmt = conn
            .prepare_cached("UPDATE pending SET held = 0, open = 0 WHERE txn_id = ?1")
            .map_err(map_sqlite)?;
        changed_one(
            stmt.execute([u.id.get()]).map_err(map_sqlite)?,
            "pending record",
        )?;
    }
    if u.release_order {
        conn.prepare_cached(sql::RELEASE_ORDER)
            .and_then(|mut s| s.execute([u.id.get()]))
            .map_err(map_sqlite)?;
    }
    Ok(())
}

/// Records that refund `txn` reverses `original`.
pub(crate) fn set_original(
    conn: &Connection,
    txn: TransactionId,
    original: TransactionId,
) -> Result<()> {
    let n = conn
        .prepare_cached("UPDATE transactions SET original_id = ?2 WHERE id = ?1")
        .and_then(|mut s| s.execute(params![txn.get(), original.get()]))
        .map_err(map_sqlite)?;
    changed_one(n, "transaction")
}

/// Stores what a wallet holds.
pub(crate) fn update_held(conn: &Connection, w: &WalletRecord) -> Result<()> {
    let n = conn
        .prepare_cached("UPDATE wallets SET held = ?2, updated_at = ?3 WHERE id = ?1")
        .and_then(|mut s| s.execute(params![w.id.get(), w.held_minor, w.updated_at.as_micros()]))
        .map_err(map_sqlite)?;
    changed_one(n, "wallet")
}

/// A wallet's stored limits.
pub(crate) fn limits(conn: &Connection, wallet: WalletId) -> Result<Option<Limits>> {
    let mut stmt = conn.prepare_cached(sql::LIMITS).map_err(map_sqlite)?;
    stmt.query_row([wallet.get()], |r| {
        Ok(Limits {
            per_transaction: r.get(0)?,
            daily: r.get(1)?,
            monthly: r.get(2)?,
        })
    })
    .optional()
    .map_err(map_sqlite)
}

/// Stores a wallet's limits (`None`: the defaults).
pub(crate) fn set_limits(conn: &Connection, wallet: WalletId, l: Option<&Limits>) -> Result<()> {
    match l {
        None => conn
            .prepare_cached("DELETE FROM wallet_limits WHERE wallet_id = ?1")
            .and_then(|mut s| s.execute([wallet.get()])),
        Some(l) => conn
            .prepare_cached(
                "INSERT INTO wallet_limits (wallet_id, per_transaction, daily, monthly)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (wallet_id) DO UPDATE SET per_transaction = excluded.per_transaction,
                     daily = excluded.daily, monthly = excluded.monthly",
            )
            .and_then(|mut s| {
                s.execute(params![wallet.get(), l.per_transaction, l.daily, l.monthly])
            }),
    }
    .map_err(map_sqlite)?;
    Ok(())
}

fn merchant_by(conn: &Connection, sql: &str, key: i64) -> Result<Option<MerchantRecord>> {
    let mut stmt = conn.prepare_cached(sql).map_err(map_sqlite)?;
    let row: Option<(i64, i64, String, i64)> = stmt
        .query_row([key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()
        .map_err(map_sqlite)?;
    row.map(wallet_core::stored::merchant).transpose()
}

/// A merchant by id.
pub(crate) fn merchant(conn: &Connection, id: MerchantId) -> Result<Option<MerchantRecord>> {
    merchant_by(conn, sql::MERCHANT, id.get())
}

/// The merchant registered on a wallet.
pub(crate) fn merchant_of(conn: &Connection, wallet: WalletId) -> Result<Option<MerchantRecord>> {
    merchant_by(conn, sql::MERCHANT_OF_WALLET, wallet.get())
}

/// Inserts a merchant; returns it with its id.
pub(crate) fn insert_merchant(conn: &Connection, m: &MerchantRecord) -> Result<MerchantRecord> {
    conn.prepare_cached("INSERT INTO merchants (wallet_id, name, created_at) VALUES (?1, ?2, ?3)")
        .and_then(|mut s| {
            s.execute(params![
                m.wallet.get(),
                m.name.as_str(),
                m.created_at.as_micros()
            ])
        })
        .map_err(map_sqlite)?;
    Ok(MerchantRecord {
        id: MerchantId::new(conn.last_insert_rowid()).map_err(corrupt("merchant id"))?,
        ..m.clone()
    })
}

/// The payment that paid a merchant's order, if any.
pub(crate) fn order_paid(
    conn: &Connection,
    merchant: MerchantId,
    order: &ExternalRef,
) -> Result<Option<TransactionId>> {
    let mut stmt = conn.prepare_cached(sql::ORDER).map_err(map_sqlite)?;
    let id: Option<i64> = stmt
        .query_row(params![merchant.get(), order.as_str()], |r| r.get(0))
        .optional()
        .map_err(map_sqlite)?;
    id.map(txn_id).transpose()
}

/// Records that `txn` pays a merchant's order.
pub(crate) fn insert_order(
    conn: &Connection,
    merchant: MerchantId,
    order: &ExternalRef,
    txn: TransactionId,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO merchant_orders (merchant_id, order_id, txn_id) VALUES (?1, ?2, ?3)",
    )
    .and_then(|mut s| s.execute(params![merchant.get(), order.as_str(), txn.get()]))
    .map_err(map_sqlite)?;
    Ok(())
}

fn link_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LinkCols> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
        r.get(11)?,
        r.get(12)?,
        r.get(13)?,
    ))
}

fn links(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<Vec<LinkRecord>> {
    let mut stmt = conn.prepare_cached(sql).map_err(map_sqlite)?;
    let rows = stmt.query_map(params, link_row).map_err(map_sqlite)?;
    rows.map(|r| wallet_core::stored::link(r.map_err(map_sqlite)?))
        .collect()
}

/// A payment link by code.
pub(crate) fn link(conn: &Connection, code: &LinkCode) -> Result<Option<LinkRecord>> {
    Ok(links(conn, sql::LINK_BY_CODE, [&code.bytes()[..]])?
        .into_iter()
        .next())
}

/// The link `user` created with `key`.
pub(crate) fn link_by_key(
    conn: &Connection,
    user: UserId,
    key: &IdempotencyKey,
) -> Result<Option<LinkRecord>> {
    Ok(
        links(conn, sql::LINK_BY_KEY, params![user.get(), key.as_str()])?
            .into_iter()
            .next(),
    )
}

/// Links of a wallet, newest first, older than id `before`.
pub(crate) fn links_of(
    conn: &Connection,
    wallet: WalletId,
    before: i64,
    limit: u32,
) -> Result<Vec<LinkRecord>> {
    links(
        conn,
        sql::LINKS_OF_WALLET,
        params![wallet.get(), before, i64::from(limit)],
    )
}

/// Inserts a link; returns it with its id.
pub(crate) fn insert_link(conn: &Connection, l: &LinkRecord) -> Result<LinkRecord> {
    conn.prepare_cached(
        "INSERT INTO payment_links (code, wallet_id, amount, description, status, expires_at,
             paid_txn, created_by, idempotency_key, fingerprint, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, ?7, ?8, ?9, ?10)",
    )
    .and_then(|mut s| {
        s.execute(params![
            &l.code.bytes()[..],
            l.wallet.get(),
            l.amount_minor,
            l.description.as_ref().map(Description::as_str),
            l.status.to_db(),
            l.expires_at.as_micros(),
            l.created_by.get(),
            l.idempotency_key.as_str(),
            &l.fingerprint.0[..],
            l.created_at.as_micros(),
        ])
    })
    .map_err(map_sqlite)?;
    Ok(LinkRecord {
        id: conn.last_insert_rowid(),
        ..l.clone()
    })
}

/// Stores a link's status and payment.
pub(crate) fn update_link(
    conn: &Connection,
    id: i64,
    status: LinkStatus,
    paid: Option<TransactionId>,
) -> Result<()> {
    let n = conn
        .prepare_cached(
            "UPDATE payment_links SET status = ?2, paid_txn = coalesce(?3, paid_txn) WHERE id = ?1",
        )
        .and_then(|mut s| s.execute(params![id, status.to_db(), paid.map(TransactionId::get)]))
        .map_err(map_sqlite)?;
    changed_one(n, "payment link")
}

/// Appends events.
pub(crate) fn insert_events(conn: &Connection, at: Timestamp, events: &[NewEvent]) -> Result<()> {
    if !events.is_empty() {
        let mut stmt = conn
            .prepare_cached(
                "INSERT INTO events (at, kind, subject, payload, txn_id, txn_status)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .map_err(map_sqlite)?;
        for e in events {
            match e.compact() {
                Some((txn, status)) => stmt.execute(params![
                    at.as_micros(),
                    None::<&str>,
                    None::<&str>,
                    None::<&str>,
                    txn.get(),
                    status.to_db()
                ]),
                None => stmt.execute(params![
                    at.as_micros(),
                    e.kind(),
                    e.subject(),
                    e.payload(),
                    None::<i64>,
                    None::<i64>
                ]),
            }
            .map_err(map_sqlite)?;
        }
    }
    Ok(())
}

/// The six nullable columns of a joined transaction's facts, from column `first` on.
pub(crate) fn fact_columns(
    r: &rusqlite::Row<'_>,
    first: usize,
) -> rusqlite::Result<NullableTxnFactCols> {
    Ok((
        r.get(first)?,
        r.get(first + 1)?,
        r.get(first + 2)?,
        r.get(first + 3)?,
        r.get(first + 4)?,
        r.get(first + 5)?,
    ))
}

/// Reads rows of `notification_select!` into rendered notifications.
pub(crate) fn read_notifications(
    stmt: &mut rusqlite::Statement<'_>,
    params: impl rusqlite::Params,
) -> Result<Vec<Notification>> {
    let rows = stmt
        .query_map(params, |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, i64>(7)?,
                r.get::<_, Option<i64>>(8)?,
                fact_columns(r, 9)?,
            ))
        })
        .map_err(map_sqlite)?;
    rows.map(|r| {
        let (id, user, kind, priority, title, message, read, at, state, facts) =
            r.map_err(map_sqlite)?;
        let facts = txn_fact_cols(facts)?;
        wallet_core::stored::stored_notification((
            id, user, kind, priority, title, message, read, at, state, facts,
        ))
    })
    .collect()
}

/// Reads rows of `event_select!` into rendered events.
pub(crate) fn read_events(
    stmt: &mut rusqlite::Statement<'_>,
    params: impl rusqlite::Params,
) -> Result<Vec<Event>> {
    let rows = stmt
        .query_map(params, |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<i64>>(5)?,
                fact_columns(r, 6)?,
            ))
        })
        .map_err(map_sqlite)?;
    rows.map(|r| {
        let (id, at, kind, subject, payload, status, facts) = r.map_err(map_sqlite)?;
        let facts = txn_fact_cols(facts)?;
        wallet_core::stored::stored_event((id, at, kind, subject, payload, status, facts))
    })
    .collect()
}

/// Events after `after`, oldest first.
pub(crate) fn events(conn: &Connection, after: i64, limit: u32) -> Result<Vec<Event>> {
    let mut stmt = conn.prepare_cached(sql::EVENTS).map_err(map_sqlite)?;
    read_events(&mut stmt, params![after, i64::from(limit)])
}
