//! Every SQL statement the backend runs, and the conversions between rows and domain types.
//!
//! Values read back are checked on the way in: anything out of range becomes
//! [`Error::StorageCorrupt`], never a panic.

use rusqlite::{Connection, OptionalExtension, Row, params};
use wallet_core::admin::Page;
use wallet_core::command::Fingerprint;
use wallet_core::currency::{Currency, CurrencyCode};
use wallet_core::decide::{Existing, NewWallet, Posting};
use wallet_core::history::{
    Counterparty, HistoryCursor, HistoryFilter, HistoryLine, HistoryPage, HistoryTotals,
};
use wallet_core::ids::{TransactionId, TransactionRef, UserId, WalletId, WalletNumber};
use wallet_core::money::Money;
use wallet_core::store::WALLETS_PER_OWNER_MAX;
use wallet_core::text::{Description, IdempotencyKey, Metadata};
use wallet_core::transaction::{Transaction, TransactionKind, TransactionStatus};
use wallet_core::verify::{EntryRow, LegRow, TransactionRow, Verifier, VerifyReport};
use wallet_core::wallet::{
    AccountKind, SystemAccount, WalletKind, WalletRecord, WalletState, WalletStatus,
};
use wallet_core::{Error, Result, Timestamp};

use crate::error::map_sqlite;
use wallet_core::stored::WalletCols;
pub(crate) use wallet_core::stored::{corrupt, currency, txn_id, wallet_id};

/// The SQL of every lookup the library makes, named so one test can check each is served by an
/// index (`tests::every_lookup_uses_an_index`). Only `verify` scans whole tables, on purpose.
mod sql {
    /// A wallet and its latest entry (its head) in one statement.
    macro_rules! wallet_select {
        () => {
            "SELECT w.id, w.owner_id, w.kind, w.currency, c.exponent, w.status, w.held,
                    w.created_at, w.updated_at, e.seq, e.balance_after, e.debits_after,
                    coalesce(t.completed_at, t.created_at)
             FROM wallets w
             JOIN currencies c ON c.code = w.currency
             LEFT JOIN entries e ON e.wallet_id = w.id
                 AND e.seq = (SELECT max(seq) FROM entries WHERE wallet_id = w.id)
             LEFT JOIN transactions t ON t.id = e.txn_id"
        };
    }
    /// A range of one wallet's entries, filtered by kind and status bit masks.
    macro_rules! history_where {
        () => {
            " FROM entries e JOIN transactions t ON t.id = e.txn_id
              WHERE e.wallet_id = ?1 AND e.seq >= ?2 AND e.seq < ?3
                AND ((1 << t.kind) & ?4) <> 0 AND ((1 << t.status) & ?5) <> 0"
        };
    }
    pub(super) const WALLET_BY_ID: &str = concat!(wallet_select!(), " WHERE w.id = ?1");
    pub(super) const WALLETS_OF: &str = concat!(
        wallet_select!(),
        " WHERE w.owner_id = ?1 ORDER BY w.id LIMIT ?2"
    );
    pub(super) const ALL_WALLETS: &str = concat!(wallet_select!(), " ORDER BY w.id");
    /// Admin wallet list: newest first from a bound (`i64::MAX` for the first page), with
    /// optional filters (NULL: off).
    pub(super) const LIST_WALLETS: &str = concat!(
        wallet_select!(),
        " WHERE w.id < ?1 AND w.owner_id IS NOT NULL AND (?2 IS NULL OR w.status = ?2)
            AND (?3 IS NULL OR w.kind = ?3) AND (?4 IS NULL OR w.currency = ?4)
          ORDER BY w.id DESC LIMIT ?5"
    );
    /// Admin transaction list, like [`LIST_WALLETS`].
    pub(super) const LIST_TRANSACTIONS: &str = "SELECT id FROM transactions
         WHERE id < ?1 AND (?2 IS NULL OR kind = ?2) AND (?3 IS NULL OR status = ?3)
           AND (?4 IS NULL OR currency = ?4) AND (?5 IS NULL OR created_at >= ?5)
           AND (?6 IS NULL OR created_at < ?6)
         ORDER BY id DESC LIMIT ?7";
    pub(super) const SYSTEM_ACCOUNT: &str =
        "SELECT id FROM wallets WHERE owner_id IS NULL AND kind = ?1 AND currency = ?2";
    pub(super) const SLOT: &str =
        "SELECT id FROM wallets WHERE owner_id = ?1 AND kind = ?2 AND currency = ?3";
    pub(super) const STORED_EXPONENT: &str = "SELECT exponent FROM currencies WHERE code = ?1";
    pub(super) const EXISTING: &str =
        "SELECT id, fingerprint FROM transactions WHERE initiated_by = ?1 AND idempotency_key = ?2";
    pub(super) const TRANSACTION: &str =
        "SELECT t.kind, t.status, t.amount, t.currency, c.exponent, t.description, t.metadata,
                t.initiated_by, t.idempotency_key, t.created_at, t.completed_at, t.refunded,
                t.original_id
         FROM transactions t JOIN currencies c ON c.code = t.currency WHERE t.id = ?1";
    pub(super) const LEGS: &str =
        "SELECT e.wallet_id, e.seq, e.amount, e.balance_after, w.owner_id, w.kind, w.currency,
                c.exponent
         FROM entries e JOIN wallets w ON w.id = e.wallet_id
         JOIN currencies c ON c.code = w.currency
         WHERE e.txn_id = ?1 ORDER BY e.amount, e.wallet_id";
    pub(super) const ENTRY_TIME: &str =
        "SELECT coalesce(t.completed_at, t.created_at) FROM entries e JOIN transactions t ON t.id = e.txn_id
         WHERE e.wallet_id = ?1 AND e.seq = ?2";
    pub(super) const SUMS_AT: &str =
        "SELECT balance_after, debits_after FROM entries WHERE wallet_id = ?1 AND seq = ?2";
    pub(super) const HISTORY_AMOUNTS: &str = concat!("SELECT e.amount", history_where!());
    /// A page of history with each line's counterparty (`COUNTERPARTY`, correlated) in the
    /// same statement: one statement per page rather than one per line.
    pub(super) const HISTORY_PAGE: &str = concat!(
        "SELECT p.*, (SELECT w.kind FROM wallets w WHERE w.id = p.counterparty) FROM (
           SELECT e.seq, e.txn_id, e.amount, e.balance_after, t.kind, t.status, t.description,
                  t.created_at,
                  (SELECT o.wallet_id FROM entries o JOIN wallets w ON w.id = o.wallet_id
                   WHERE o.txn_id = e.txn_id AND o.wallet_id <> e.wallet_id
                   ORDER BY w.owner_id IS NULL, o.wallet_id LIMIT 1) AS counterparty",
        history_where!(),
        " ORDER BY e.seq DESC LIMIT ?6) p ORDER BY p.seq DESC"
    );
    /// A range of one wallet's entries, oldest first (statements, analytics), each timed by
    /// its posting: the time that places it in the range.
    pub(super) const RANGE_ASC: &str =
        "SELECT e.seq, e.txn_id, e.amount, e.balance_after, t.kind, t.status, t.description,
                coalesce(t.completed_at, t.created_at)
         FROM entries e JOIN transactions t ON t.id = e.txn_id
         WHERE e.wallet_id = ?1 AND e.seq >= ?2 AND e.seq < ?3 ORDER BY e.seq LIMIT ?4";
    /// A wallet's entries with a description, newest first, below a sequence number.
    pub(super) const DESCRIBED_DESC: &str =
        "SELECT e.seq, e.txn_id, e.amount, e.balance_after, t.kind, t.status, t.description,
                t.created_at
         FROM entries e JOIN transactions t ON t.id = e.txn_id
         WHERE e.wallet_id = ?1 AND e.seq < ?2 ORDER BY e.seq DESC LIMIT ?3";
    pub(super) const COUNTERPARTY: &str =
        "SELECT o.wallet_id, w.kind FROM entries o JOIN wallets w ON w.id = o.wallet_id
         WHERE o.txn_id = ?1 AND o.wallet_id <> ?2
         ORDER BY w.owner_id IS NULL, o.wallet_id LIMIT 1";

    /// Everything above except `ALL_WALLETS`, which `verify` runs as a deliberate full scan.
    #[cfg(test)]
    pub(super) const INDEXED: &[&str] = &[
        WALLET_BY_ID,
        WALLETS_OF,
        SYSTEM_ACCOUNT,
        SLOT,
        STORED_EXPONENT,
        EXISTING,
        TRANSACTION,
        LEGS,
        ENTRY_TIME,
        SUMS_AT,
        HISTORY_AMOUNTS,
        HISTORY_PAGE,
        COUNTERPARTY,
        RANGE_ASC,
        DESCRIBED_DESC,
        LIST_WALLETS,
        LIST_TRANSACTIONS,
    ];
}

/// A page of customer wallets for the admin list.
pub(crate) fn list_wallets(
    conn: &Connection,
    q: &wallet_core::admin::WalletQuery,
) -> Result<wallet_core::admin::WalletPage> {
    let mut stmt = conn.prepare_cached(sql::LIST_WALLETS).map_err(map_sqlite)?;
    let rows = stmt
        .query_map(
            params![
                q.before.map_or(i64::MAX, WalletId::get),
                q.status.map(WalletStatus::to_db),
                q.kind.map(|k| AccountKind::Wallet(k).to_db()),
                q.currency.as_ref().map(CurrencyCode::as_str),
                i64::from(q.limit) + 1
            ],
            read_wallet_row,
        )
        .map_err(map_sqlite)?;
    let mut items = Vec::new();
    for row in rows {
        items.push(wallet_core::stored::wallet_state(row.map_err(map_sqlite)?)?.to_wallet());
    }
    Ok(Page::from_overfetch(items, q.limit, |w| w.id))
}

/// A page of transactions for the admin list.
pub(crate) fn list_transactions(
    conn: &Connection,
    q: &wallet_core::admin::TransactionQuery,
) -> Result<wallet_core::admin::TransactionPage> {
    let mut stmt = conn
        .prepare_cached(sql::LIST_TRANSACTIONS)
        .map_err(map_sqlite)?;
    let ids = stmt
        .query_map(
            params![
                q.before.map_or(i64::MAX, TransactionId::get),
                q.kind.map(TransactionKind::to_db),
                q.status.map(TransactionStatus::to_db),
                q.currency.as_ref().map(CurrencyCode::as_str),
                q.since.map(Timestamp::as_micros),
                q.until.map(Timestamp::as_micros),
                i64::from(q.limit) + 1
            ],
            |r| r.get::<_, i64>(0),
        )
        .map_err(map_sqlite)?
        .collect::<rusqlite::Result<Vec<i64>>>()
        .map_err(map_sqlite)?;
    let mut items = Vec::with_capacity(ids.len());
    for id in ids {
        let t = transaction(conn, txn_id(id)?)?
            .ok_or_else(|| Error::corrupt("transaction vanished inside a snapshot"))?;
        items.push(t);
    }
    Ok(Page::from_overfetch(items, q.limit, |t| t.id))
}

fn read_wallet_row(r: &Row<'_>) -> rusqlite::Result<WalletCols> {
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
    ))
}

/// A wallet or system account with its head.
pub(crate) fn wallet(conn: &Connection, id: WalletId) -> Result<Option<WalletState>> {
    let mut stmt = conn.prepare_cached(sql::WALLET_BY_ID).map_err(map_sqlite)?;
    let row = stmt
        .query_row([id.get()], read_wallet_row)
        .optional()
        .map_err(map_sqlite)?;
    row.map(wallet_core::stored::wallet_state).transpose()
}

/// A user's wallets, ordered by id.
pub(crate) fn wallets_of(conn: &Connection, owner: UserId) -> Result<Vec<WalletState>> {
    let mut stmt = conn.prepare_cached(sql::WALLETS_OF).map_err(map_sqlite)?;
    let rows = stmt
        .query_map(params![owner.get(), WALLETS_PER_OWNER_MAX], read_wallet_row)
        .map_err(map_sqlite)?;
    rows.map(|r| {
        r.map_err(map_sqlite)
            .and_then(wallet_core::stored::wallet_state)
    })
    .collect()
}

/// The wallet id a single-row lookup finds, if any.
fn wallet_id_of(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Option<WalletId>> {
    let mut stmt = conn.prepare_cached(sql).map_err(map_sqlite)?;
    let id: Option<i64> = stmt
        .query_row(params, |r| r.get(0))
        .optional()
        .map_err(map_sqlite)?;
    id.map(wallet_id).transpose()
}

/// The id of a currency's system account of `kind`.
pub(crate) fn system_account(
    conn: &Connection,
    kind: SystemAccount,
    currency: CurrencyCode,
) -> Result<Option<WalletId>> {
    wallet_id_of(
        conn,
        sql::SYSTEM_ACCOUNT,
        params![kind.to_db(), currency.as_str()],
    )
}

/// The owner's wallet of this kind and currency, if any.
pub(crate) fn slot(
    conn: &Connection,
    owner: UserId,
    kind: WalletKind,
    currency: CurrencyCode,
) -> Result<Option<WalletId>> {
    wallet_id_of(
        conn,
        sql::SLOT,
        params![owner.get(), kind.to_db(), currency.as_str()],
    )
}

/// The exponent recorded for a currency, if it is recorded.
pub(crate) fn stored_exponent(conn: &Connection, code: CurrencyCode) -> Result<Option<u8>> {
    let mut stmt = conn
        .prepare_cached(sql::STORED_EXPONENT)
        .map_err(map_sqlite)?;
    let e: Option<i64> = stmt
        .query_row([code.as_str()], |r| r.get(0))
        .optional()
        .map_err(map_sqlite)?;
    e.map(|e| u8::try_from(e).map_err(|_| Error::corrupt("currency exponent")))
        .transpose()
}

/// Every recorded currency.
pub(crate) fn currencies(conn: &Connection) -> Result<Vec<(CurrencyCode, u8)>> {
    let mut stmt = conn
        .prepare_cached("SELECT code, exponent FROM currencies ORDER BY code")
        .map_err(map_sqlite)?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .map_err(map_sqlite)?;
    rows.map(|r| {
        let (code, exp) = r.map_err(map_sqlite)?;
        let c = currency(&code, exp)?;
        Ok((c.code(), c.exponent()))
    })
    .collect()
}

/// The transaction an actor created with this key, if any.
pub(crate) fn existing(
    conn: &Connection,
    actor: UserId,
    key: &IdempotencyKey,
) -> Result<Option<Existing>> {
    let mut stmt = conn.prepare_cached(sql::EXISTING).map_err(map_sqlite)?;
    let row: Option<(i64, Vec<u8>)> = stmt
        .query_row(params![actor.get(), key.as_str()], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()
        .map_err(map_sqlite)?;
    row.map(|(id, fp)| {
        let fingerprint =
            <[u8; 16]>::try_from(fp.as_slice()).map_err(|_| Error::corrupt("fingerprint"))?;
        Ok(Existing {
            id: txn_id(id)?,
            fingerprint: Fingerprint(fingerprint),
        })
    })
    .transpose()
}

/// Records a currency and creates one of each system account for it.
pub(crate) fn register_currency(conn: &Connection, c: Currency, at: Timestamp) -> Result<()> {
    conn.prepare_cached("INSERT INTO currencies (code, exponent) VALUES (?1, ?2)")
        .and_then(|mut s| s.execute(params![c.code().as_str(), c.exponent()]))
        .map_err(map_sqlite)?;
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO wallets (owner_id, kind, currency, status, held, created_at, updated_at)
             VALUES (NULL, ?1, ?2, ?3, 0, ?4, ?4)",
        )
        .map_err(map_sqlite)?;
    for kind in SystemAccount::ALL {
        stmt.execute(params![
            kind.to_db(),
            c.code().as_str(),
            WalletStatus::Active.to_db(),
            at.as_micros()
        ])
        .map_err(map_sqlite)?;
    }
    Ok(())
}

/// Inserts a customer wallet and returns its id.
pub(crate) fn insert_wallet(conn: &Connection, w: &NewWallet) -> Result<WalletId> {
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO wallets (owner_id, kind, currency, status, held, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, 0, ?5, ?5)",
        )
        .map_err(map_sqlite)?;
    stmt.execute(params![
        w.owner.get(),
        w.kind.to_db(),
        w.currency.code().as_str(),
        w.status.to_db(),
        w.created_at.as_micros()
    ])
    .map_err(map_sqlite)?;
    wallet_id(conn.last_insert_rowid())
}

/// Stores a wallet's status.
pub(crate) fn update_status(conn: &Connection, w: &WalletRecord) -> Result<()> {
    let mut stmt = conn
        .prepare_cached("UPDATE wallets SET status = ?2, updated_at = ?3 WHERE id = ?1")
        .map_err(map_sqlite)?;
    let n = stmt
        .execute(params![
            w.id.get(),
            w.status.to_db(),
            w.updated_at.as_micros()
        ])
        .map_err(map_sqlite)?;
    if n == 1 {
        Ok(())
    } else {
        Err(Error::corrupt("wallet vanished"))
    }
}

/// What [`insert_posting`] reports when its idempotency key is already taken: the writer then
/// looks the key up and decides again (a replay or a conflict). Never reaches a caller.
const KEY_TAKEN: &str = "idempotency key taken";

/// Whether `e` is [`insert_posting`] finding its idempotency key taken.
pub(crate) fn is_key_taken(e: &Error) -> bool {
    matches!(e, Error::Internal { detail } if detail == KEY_TAKEN)
}

/// Inserts a transaction; its entries go to `posted`. Returns the transaction id.
pub(crate) fn insert_posting(
    conn: &Connection,
    p: &Posting,
    posted: &mut crate::notes::Posted,
) -> Result<TransactionId> {
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO transactions (kind, status, amount, currency, description, metadata,
                 initiated_by, idempotency_key, fingerprint, created_at, completed_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )
        .map_err(map_sqlite)?;
    stmt.execute(params![
        p.kind.to_db(),
        p.status.to_db(),
        p.amount_minor,
        p.currency.code().as_str(),
        p.description.as_ref().map(Description::as_str),
        p.metadata.as_ref().map(Metadata::to_json),
        p.initiated_by.get(),
        p.idempotency_key.as_str(),
        &p.fingerprint.0[..],
        p.created_at.as_micros(),
        p.completed_at.map(Timestamp::as_micros),
    ])
    .map_err(|e| match &e {
        // The only unique key a new transaction's row can collide on (its id is assigned).
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
        {
            Error::Internal {
                detail: KEY_TAKEN.into(),
            }
        }
        _ => map_sqlite(e),
    })?;
    let id = txn_id(conn.last_insert_rowid())?;
    posted.add(id, p.completed_at, &p.legs);
    Ok(id)
}

fn optional_text<T>(
    raw: Option<String>,
    what: &str,
    parse: impl Fn(String) -> Result<T>,
) -> Result<Option<T>> {
    raw.map(|s| parse(s).map_err(corrupt(what))).transpose()
}

/// A transaction with its legs, debits first.
pub(crate) fn transaction(conn: &Connection, id: TransactionId) -> Result<Option<Transaction>> {
    Ok(transaction_and_pending(conn, id)?.map(|(t, _)| t))
}

/// A transaction with its legs, and its pending record as stored (holds, pending top-ups).
pub(crate) fn transaction_and_pending(
    conn: &Connection,
    id: TransactionId,
) -> Result<Option<(Transaction, Option<wallet_core::decide::PendingRecord>)>> {
    use wallet_core::stored::TxnCols;
    let mut stmt = conn.prepare_cached(sql::TRANSACTION).map_err(map_sqlite)?;
    let row: Option<TxnCols> = stmt
        .query_row([id.get()], |r| {
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
            ))
        })
        .optional()
        .map_err(map_sqlite)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let mut legs_stmt = conn.prepare_cached(sql::LEGS).map_err(map_sqlite)?;
    let legs = legs_stmt
        .query_map([id.get()], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Option<i64>>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, i64>(7)?,
            ))
        })
        .map_err(map_sqlite)?
        .map(|r| wallet_core::stored::leg(r.map_err(map_sqlite)?))
        .collect::<Result<Vec<_>>>()?;
    let pending = crate::payments::pending_of(conn, id)?;
    let transaction = wallet_core::stored::transaction(id, row, legs, pending.as_ref())?;
    Ok(Some((transaction, pending)))
}

/// Creation time of the transaction of entry `seq` of `wallet`.
fn entry_time(conn: &Connection, wallet: WalletId, seq: i64) -> Result<Timestamp> {
    let mut stmt = conn.prepare_cached(sql::ENTRY_TIME).map_err(map_sqlite)?;
    let at: Option<i64> = stmt
        .query_row(params![wallet.get(), seq], |r| r.get(0))
        .optional()
        .map_err(map_sqlite)?;
    at.map(Timestamp::from_micros)
        .ok_or_else(|| Error::corrupt(format!("entry {seq} of wallet {wallet} missing")))
}

/// The smallest `seq` in `1..=last` whose transaction was created at or after `t`
/// (`last + 1` if none). Entries of a wallet are in time order, so this is a binary search:
/// about 20 point lookups for a million entries, and no time index to maintain on every write.
pub(crate) fn first_seq_at_or_after(
    conn: &Connection,
    wallet: WalletId,
    last: i64,
    t: Timestamp,
) -> Result<i64> {
    let (mut lo, mut hi) = (1i64, last + 1);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if entry_time(conn, wallet, mid)? >= t {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok(lo)
}

/// Balance and running debits after entry `seq` (zero before the first entry).
pub(crate) fn sums_at(conn: &Connection, wallet: WalletId, seq: i64) -> Result<(i64, i64)> {
    if seq < 1 {
        return Ok((0, 0));
    }
    let mut stmt = conn.prepare_cached(sql::SUMS_AT).map_err(map_sqlite)?;
    stmt.query_row(params![wallet.get(), seq], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .map_err(map_sqlite)?
        .ok_or_else(|| Error::corrupt(format!("entry {seq} of wallet {wallet} missing")))
}

/// Bit mask of stored enum values for `WHERE (1 << column) & mask`; all bits when unfiltered.
fn mask<T: Copy>(values: &[T], to_db: impl Fn(T) -> i64) -> i64 {
    if values.is_empty() {
        return -1;
    }
    values.iter().fold(0i64, |m, v| m | (1i64 << to_db(*v)))
}

fn to_minor_i64(total: u64) -> Result<i64> {
    i64::try_from(total).map_err(|_| Error::AmountOverflow)
}

/// The running debit total of `wallet` just before its first entry posted at or after `t`.
/// Entries are in time order, so this never changes once `t` is at or before the wallet's
/// latest entry: the writer caches it per wallet and window.
pub(crate) fn debits_before(conn: &Connection, w: &WalletState, t: Timestamp) -> Result<i64> {
    let first = first_seq_at_or_after(conn, w.record.id, w.head.seq, t)?;
    Ok(sums_at(conn, w.record.id, first - 1)?.1)
}

type LineCols = (i64, i64, i64, i64, i64, i64, Option<String>, i64);

fn line_cols(r: &Row<'_>) -> rusqlite::Result<LineCols> {
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

fn history_line(
    conn: &Connection,
    wallet: WalletId,
    cur: Currency,
    (seq, txn, amount, balance, kind, status, description, created): LineCols,
) -> Result<HistoryLine> {
    let txn = txn_id(txn)?;
    Ok(HistoryLine {
        transaction: txn,
        reference: TransactionRef::of(txn),
        kind: TransactionKind::from_db(kind)?,
        status: TransactionStatus::from_db(status)?,
        amount: Money::from_minor(amount, cur),
        balance_after: Money::from_minor(balance, cur),
        seq,
        description: optional_text(description, "description", Description::new)?,
        counterparty: counterparty(conn, txn, wallet)?,
        created_at: Timestamp::from_micros(created),
    })
}

/// A wallet's entries posted in `[since, until)`, oldest first, at most `max`.
pub(crate) fn entries_between(
    conn: &Connection,
    wallet: WalletId,
    since: Timestamp,
    until: Timestamp,
    max: u32,
) -> Result<wallet_core::reports::EntryRange> {
    let state = self::wallet(conn, wallet)?.ok_or(Error::WalletNotFound)?;
    let cur = state.record.currency;
    let last = state.head.seq;
    let lo = first_seq_at_or_after(conn, wallet, last, since)?;
    let hi = first_seq_at_or_after(conn, wallet, last, until)?.max(lo);
    let opening = sums_at(conn, wallet, lo - 1)?.0;
    let mut stmt = conn.prepare_cached(sql::RANGE_ASC).map_err(map_sqlite)?;
    let rows = stmt
        .query_map(params![wallet.get(), lo, hi, i64::from(max)], line_cols)
        .map_err(map_sqlite)?;
    let lines = rows
        .map(|r| history_line(conn, wallet, cur, r.map_err(map_sqlite)?))
        .collect::<Result<Vec<_>>>()?;
    Ok(wallet_core::reports::EntryRange {
        opening_minor: opening,
        lines,
        truncated: hi - lo > i64::from(max),
    })
}

/// Lines whose description contains `needle`, newest first, below `before_seq`.
pub(crate) fn search(
    conn: &Connection,
    wallet: WalletId,
    needle: &wallet_core::reports::SearchText,
    before_seq: Option<i64>,
    limit: u32,
) -> Result<HistoryPage> {
    let state = self::wallet(conn, wallet)?.ok_or(Error::WalletNotFound)?;
    let cur = state.record.currency;
    let upper = before_seq.map_or(state.head.seq + 1, |b| b.min(state.head.seq + 1));
    let mut stmt = conn
        .prepare_cached(sql::DESCRIBED_DESC)
        .map_err(map_sqlite)?;
    let scan = i64::from(wallet_core::reports::SEARCH_SCAN_MAX);
    let rows = stmt
        .query_map(params![wallet.get(), upper, scan], line_cols)
        .map_err(map_sqlite)?;
    let want = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut lines = Vec::new();
    let (mut scanned, mut last_seq, mut next) = (0i64, upper, None);
    for row in rows {
        let cols = row.map_err(map_sqlite)?;
        scanned += 1;
        last_seq = cols.0;
        if cols.6.as_deref().is_some_and(|d| needle.matches(d)) {
            if lines.len() == want {
                // One more match exists: continue after the last returned line.
                next = lines
                    .last()
                    .map(|l: &HistoryLine| HistoryCursor::new(wallet, l.seq));
                break;
            }
            lines.push(history_line(conn, wallet, cur, cols)?);
        }
    }
    if next.is_none() && scanned == scan && last_seq > 1 {
        // The scan budget ran out before the wallet's first entry: continue from there.
        next = Some(HistoryCursor::new(wallet, last_seq));
    }
    let zero = Money::zero(cur);
    Ok(HistoryPage {
        lines,
        next,
        totals: HistoryTotals {
            credits: zero,
            debits: zero,
        },
    })
}

/// Debits posted since `anchor` (a running total taken earlier), from the wallet's head.
pub(crate) fn debits_since_anchor(w: &WalletState, anchor: i64) -> Result<i64> {
    to_minor_i64(
        w.head
            .debits_minor
            .cast_unsigned()
            .wrapping_sub(anchor.cast_unsigned()),
    )
}

/// One page of a wallet's history with totals over the whole filtered range.
pub(crate) fn history(conn: &Connection, f: &HistoryFilter) -> Result<HistoryPage> {
    let state = wallet(conn, f.wallet)?.ok_or(Error::WalletNotFound)?;
    let cur = state.record.currency;
    let last = state.head.seq;
    // The filter's time range as a range of sequence numbers [lo, hi).
    let lo = match f.since {
        Some(t) => first_seq_at_or_after(conn, f.wallet, last, t)?,
        None => 1,
    };
    let hi = match f.until {
        Some(t) => first_seq_at_or_after(conn, f.wallet, last, t)?,
        None => last + 1,
    };
    let kinds = mask(&f.kinds, TransactionKind::to_db);
    let statuses = mask(&f.statuses, TransactionStatus::to_db);

    let totals = if hi <= lo {
        HistoryTotals {
            credits: Money::zero(cur),
            debits: Money::zero(cur),
        }
    } else if f.is_unfiltered() {
        // Differences of running sums: two point lookups however long the range.
        let (b_hi, d_hi) = sums_at(conn, f.wallet, hi - 1)?;
        let (b_lo, d_lo) = sums_at(conn, f.wallet, lo - 1)?;
        let credits_at = |b: i64, d: i64| b.cast_unsigned().wrapping_add(d.cast_unsigned());
        let debits = d_hi.cast_unsigned().wrapping_sub(d_lo.cast_unsigned());
        let credits = credits_at(b_hi, d_hi).wrapping_sub(credits_at(b_lo, d_lo));
        HistoryTotals {
            credits: Money::from_minor(to_minor_i64(credits)?, cur),
            debits: Money::from_minor(to_minor_i64(debits)?, cur),
        }
    } else {
        let mut stmt = conn
            .prepare_cached(sql::HISTORY_AMOUNTS)
            .map_err(map_sqlite)?;
        let mut rows = stmt
            .query(params![f.wallet.get(), lo, hi, kinds, statuses])
            .map_err(map_sqlite)?;
        let (mut credits, mut debits) = (0i128, 0i128);
        while let Some(r) = rows.next().map_err(map_sqlite)? {
            let amount: i64 = r.get(0).map_err(map_sqlite)?;
            if amount > 0 {
                credits += i128::from(amount);
            } else {
                debits -= i128::from(amount);
            }
        }
        let fit = |v: i128| i64::try_from(v).map_err(|_| Error::AmountOverflow);
        HistoryTotals {
            credits: Money::from_minor(fit(credits)?, cur),
            debits: Money::from_minor(fit(debits)?, cur),
        }
    };

    let upper = f.before_seq.map_or(hi, |b| b.min(hi));
    let mut stmt = conn.prepare_cached(sql::HISTORY_PAGE).map_err(map_sqlite)?;
    let fetch = i64::from(f.limit) + 1;
    let rows = stmt
        .query_map(
            params![f.wallet.get(), lo, upper, kinds, statuses, fetch],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, i64>(7)?,
                    r.get::<_, Option<i64>>(8)?,
                    r.get::<_, Option<i64>>(9)?,
                ))
            },
        )
        .map_err(map_sqlite)?;
    let mut lines = Vec::with_capacity(usize::try_from(f.limit).unwrap_or(0));
    let mut more = false;
    for row in rows {
        let (seq, txn, amount, balance, kind, status, description, created, other, other_kind) =
            row.map_err(map_sqlite)?;
        if lines.len() == usize::try_from(f.limit).unwrap_or(usize::MAX) {
            more = true;
            break;
        }
        let txn = txn_id(txn)?;
        lines.push(HistoryLine {
            transaction: txn,
            reference: TransactionRef::of(txn),
            kind: TransactionKind::from_db(kind)?,
            status: TransactionStatus::from_db(status)?,
            amount: Money::from_minor(amount, cur),
            balance_after: Money::from_minor(balance, cur),
            seq,
            description: optional_text(description, "description", Description::new)?,
            counterparty: match (other, other_kind) {
                (Some(id), Some(kind)) => Some(counterparty_of(id, kind)?),
                (None, None) => None,
                _ => return Err(Error::corrupt("a counterparty wallet without its row")),
            },
            created_at: Timestamp::from_micros(created),
        });
    }
    let next = match lines.last() {
        Some(l) if more => Some(HistoryCursor::new(f.wallet, l.seq)),
        _ => None,
    };
    Ok(HistoryPage {
        lines,
        next,
        totals,
    })
}

/// The other side of a transaction as seen from `wallet`: a customer wallet if there is one.
fn counterparty(
    conn: &Connection,
    txn: TransactionId,
    wallet: WalletId,
) -> Result<Option<Counterparty>> {
    let mut stmt = conn.prepare_cached(sql::COUNTERPARTY).map_err(map_sqlite)?;
    let row: Option<(i64, i64)> = stmt
        .query_row(params![txn.get(), wallet.get()], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()
        .map_err(map_sqlite)?;
    row.map(|(id, kind)| counterparty_of(id, kind)).transpose()
}

/// A counterparty from its wallet's id and kind.
fn counterparty_of(id: i64, kind: i64) -> Result<Counterparty> {
    Ok(match AccountKind::from_db(kind)? {
        AccountKind::System(s) => Counterparty::System(s),
        AccountKind::Wallet(_) => Counterparty::Wallet(WalletNumber::of(wallet_id(id)?)),
    })
}

/// Feeds the rows at the front of `rows` whose key satisfies `take` to `emit`, in order. A row
/// that fails to read is always taken, so its error surfaces.
fn drain<T>(
    rows: &mut std::iter::Peekable<impl Iterator<Item = rusqlite::Result<T>>>,
    key: impl Fn(&T) -> i64,
    take: impl Fn(i64) -> bool,
    mut emit: impl FnMut(T) -> Result<()>,
) -> Result<()> {
    while let Some(front) = rows.peek() {
        if let Ok(row) = front
            && !take(key(row))
        {
            break;
        }
        match rows.next() {
            Some(row) => emit(row.map_err(map_sqlite)?)?,
            None => break,
        }
    }
    Ok(())
}

type EntryCols = (i64, i64, i64, i64, i64);
type LegCols = (i64, i64, String, i64);

fn emit_entry(v: &mut Verifier, (wallet, seq, amount, balance, debits): EntryCols) -> Result<()> {
    v.entry(&EntryRow {
        wallet: wallet_id(wallet)?,
        seq,
        amount_minor: amount,
        balance_after_minor: balance,
        debits_after_minor: debits,
    });
    Ok(())
}

fn emit_leg(v: &mut Verifier, (txn, wallet, code, amount): LegCols) -> Result<()> {
    v.leg(&LegRow {
        transaction: txn_id(txn)?,
        wallet: wallet_id(wallet)?,
        currency: CurrencyCode::new(&code).map_err(corrupt("currency code"))?,
        amount_minor: amount,
    });
    Ok(())
}

/// Runs both verification passes (see [`wallet_core::verify`]). The caller wraps this in a read
/// transaction so both passes see one snapshot. Each pass is a merge of two ordered scans, so
/// memory stays constant however large the ledger.
pub(crate) fn verify(conn: &Connection) -> Result<VerifyReport> {
    let mut v = Verifier::new();

    // Pass 1: accounts in id order, merged with entries in (wallet_id, seq) order. Entries of
    // accounts that do not exist sort between accounts and are reported as orphans.
    let mut accounts = conn.prepare(sql::ALL_WALLETS).map_err(map_sqlite)?;
    let mut entries = conn
        .prepare("SELECT wallet_id, seq, amount, balance_after, debits_after FROM entries ORDER BY wallet_id, seq")
        .map_err(map_sqlite)?;
    let mut entry_rows = entries
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .map_err(map_sqlite)?
        .peekable();
    let entry_key = |e: &EntryCols| e.0;
    for account in accounts
        .query_map([], read_wallet_row)
        .map_err(map_sqlite)?
    {
        let record = wallet_core::stored::wallet_state(account.map_err(map_sqlite)?)?.record;
        let id = record.id.get();
        drain(
            &mut entry_rows,
            entry_key,
            |w| w < id,
            |e| emit_entry(&mut v, e),
        )?;
        v.account(&record);
        drain(
            &mut entry_rows,
            entry_key,
            |w| w == id,
            |e| emit_entry(&mut v, e),
        )?;
    }
    drain(
        &mut entry_rows,
        entry_key,
        |_| true,
        |e| emit_entry(&mut v, e),
    )?;

    // Pass 2: transactions in id order, merged with entries in txn_id order (entries_by_txn).
    let mut txns = conn
        .prepare(
            "SELECT id, status, amount, currency, refunded, kind FROM transactions ORDER BY id",
        )
        .map_err(map_sqlite)?;
    let mut legs = conn
        .prepare(
            "SELECT e.txn_id, e.wallet_id, w.currency, e.amount
             FROM entries e JOIN wallets w ON w.id = e.wallet_id ORDER BY e.txn_id",
        )
        .map_err(map_sqlite)?;
    let mut leg_rows = legs
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .map_err(map_sqlite)?
        .peekable();
    let leg_key = |l: &LegCols| l.0;
    let txn_rows = txns
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
            ))
        })
        .map_err(map_sqlite)?;
    for txn in txn_rows {
        let (id, status, amount, code, refunded, kind) = txn.map_err(map_sqlite)?;
        drain(&mut leg_rows, leg_key, |t| t < id, |l| emit_leg(&mut v, l))?;
        v.transaction(&TransactionRow {
            id: txn_id(id)?,
            status: TransactionStatus::from_db(status)?,
            amount_minor: amount,
            refunded_minor: refunded,
            currency: CurrencyCode::new(&code).map_err(corrupt("currency code"))?,
            exchange: TransactionKind::from_db(kind)? == TransactionKind::Exchange,
        });
        drain(&mut leg_rows, leg_key, |t| t == id, |l| emit_leg(&mut v, l))?;
    }
    drain(&mut leg_rows, leg_key, |_| true, |l| emit_leg(&mut v, l))?;

    // Pass 3: what wallets hold against what their open holds reserve.
    let mut holds = conn
        .prepare(
            "SELECT w.id, w.held, coalesce(p.reserved, 0) FROM wallets w
             LEFT JOIN (SELECT wallet_id, sum(held) AS reserved FROM pending
                        WHERE open = 1 GROUP BY wallet_id) p ON p.wallet_id = w.id
             WHERE w.held <> 0 OR p.reserved IS NOT NULL ORDER BY w.id",
        )
        .map_err(map_sqlite)?;
    let rows = holds
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })
        .map_err(map_sqlite)?;
    for row in rows {
        let (wallet, held, reserved) = row.map_err(map_sqlite)?;
        v.holds(wallet_id(wallet)?, held, reserved);
    }
    Ok(v.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_lookup_uses_an_index() {
        assert_indexed(sql::INDEXED);
        assert_indexed(crate::users::sql::INDEXED);
        assert_indexed(crate::admin::sql::INDEXED);
        assert_indexed(crate::payment_methods::sql::INDEXED);
        assert_indexed(crate::payments::sql::INDEXED);
        assert_indexed(crate::notes::sql::INDEXED);
    }

    /// Asserts no statement in `statements` scans a table without an index.
    fn assert_indexed(statements: &[&str]) {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::schema::migrate_to(&mut conn, crate::schema::latest_version()).unwrap();
        for statement in statements {
            let mut plan = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {statement}"))
                .unwrap();
            // Parameters stay unbound: the plan does not depend on their values.
            let mut rows = plan.raw_query();
            let mut steps = Vec::new();
            while let Some(row) = rows.next().unwrap() {
                steps.push(row.get::<_, String>(3).unwrap());
            }
            // "SCAN" without an index is a full table scan; a correlated "SCAN CONSTANT ROW" or
            // a temp b-tree for a small sort would show up differently, and "SCAN x" of a
            // co-routine x (a subquery, itself planned in the steps checked here) reads the rows
            // that subquery yields.
            let coroutines: Vec<String> = steps
                .iter()
                .filter_map(|s| s.strip_prefix("CO-ROUTINE "))
                .map(|name| format!("SCAN {name}"))
                .collect();
            let scans: Vec<&String> = steps
                .iter()
                .filter(|s| s.starts_with("SCAN") && !s.contains("USING"))
                .filter(|s| !coroutines.contains(s))
                .collect();
            assert!(scans.is_empty(), "{statement}\n{steps:#?}");
        }
    }
}
