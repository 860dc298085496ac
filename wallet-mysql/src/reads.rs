//! Reads that span many rows: history pages, search, statements, admin lists, the dashboard,
//! the audit log, and `verify`.
//!
//! The semantics are those of the SQLite backend, statement for statement. Two things differ
//! because a MySQL connection carries one result set at a time, so a statement cannot be read
//! while another runs on the same connection:
//!
//! - scans that look rows up as they go (search, verify's merges) read in keyset chunks, each
//!   chunk a short indexed range, so memory stays bounded however large the ledger;
//! - sums are taken by the server, as exact decimals read back as text, so an overflowing
//!   total is reported as one rather than clamped.
//!
//! Lists of wallets read the page's ids from the wallets table alone (a primary key range in
//! id order) and then the wallets by id: joined with the tiny currency table in one
//! statement, the optimizer may start from the currencies and sort every wallet.

use std::collections::VecDeque;

use sqlx::MySqlConnection;
use wallet_core::admin::{
    Dashboard, Page, Period, TransactionPage, TransactionQuery, UserPage, UserQuery, Volume,
    WalletPage, WalletQuery,
};
use wallet_core::audit::{AuditAction, AuditQuery};
use wallet_core::currency::{Currency, CurrencyCode};
use wallet_core::history::{
    Counterparty, HistoryCursor, HistoryFilter, HistoryLine, HistoryPage, HistoryTotals,
};
use wallet_core::identity::KycStatus;
use wallet_core::ids::{TransactionId, TransactionRef, UserId, WalletId, WalletNumber};
use wallet_core::money::Money;
use wallet_core::reports::{EntryRange, SEARCH_SCAN_MAX, SearchText};
use wallet_core::store::AuditPage;
use wallet_core::stored::{self, AuditCols, UserCols};
use wallet_core::text::Description;
use wallet_core::transaction::{TransactionKind, TransactionStatus};
use wallet_core::verify::{EntryRow, LegRow, TransactionRow, Verifier, VerifyReport};
use wallet_core::wallet::{AccountKind, WalletState, WalletStatus};
use wallet_core::{Error, Result, Role, Timestamp};

use crate::error::map_sqlx;
use crate::queries;

/// The SQL of every read here. Parameters are positional (`?`), so a filter that is off when
/// its parameter is NULL binds that parameter twice.
mod sql {
    /// A range `[lo, hi)` of one wallet's entries (primary key range), filtered by kind and
    /// status bit masks.
    macro_rules! history_where {
        () => {
            " FROM entries e JOIN transactions t ON t.id = e.txn_id
              WHERE e.wallet_id = ? AND e.seq >= ? AND e.seq < ?
                AND ((1 << t.kind) & ?) <> 0 AND ((1 << t.status) & ?) <> 0"
        };
    }

    /// Credits and debits (negative) over a filtered range, as exact decimal text.
    pub(super) const HISTORY_SUMS: &str = concat!(
        "SELECT CAST(COALESCE(SUM(CASE WHEN e.amount > 0 THEN e.amount ELSE 0 END), 0) AS CHAR),
                CAST(COALESCE(SUM(CASE WHEN e.amount < 0 THEN e.amount ELSE 0 END), 0) AS CHAR)",
        history_where!()
    );
    pub(super) const HISTORY_PAGE: &str = concat!(
        "SELECT e.seq, e.txn_id, e.amount, e.balance_after, t.kind, t.status, t.description,
                t.created_at",
        history_where!(),
        " ORDER BY e.seq DESC LIMIT ?"
    );
    /// A range of one wallet's entries, oldest first (statements, analytics), each timed by
    /// its posting: the time that places it in the range.
    pub(super) const RANGE_ASC: &str =
        "SELECT e.seq, e.txn_id, e.amount, e.balance_after, t.kind, t.status, t.description,
                coalesce(t.completed_at, t.created_at)
         FROM entries e JOIN transactions t ON t.id = e.txn_id
         WHERE e.wallet_id = ? AND e.seq >= ? AND e.seq < ? ORDER BY e.seq LIMIT ?";
    /// A wallet's entries, newest first, below a sequence number (search scans these).
    pub(super) const DESCRIBED_DESC: &str =
        "SELECT e.seq, e.txn_id, e.amount, e.balance_after, t.kind, t.status, t.description,
                t.created_at
         FROM entries e JOIN transactions t ON t.id = e.txn_id
         WHERE e.wallet_id = ? AND e.seq < ? ORDER BY e.seq DESC LIMIT ?";
    /// The other side of a transaction: a customer wallet first, else a system account.
    pub(super) const COUNTERPARTY: &str =
        "SELECT o.wallet_id, w.kind FROM entries o JOIN wallets w ON w.id = o.wallet_id
         WHERE o.txn_id = ? AND o.wallet_id <> ?
         ORDER BY w.owner_id IS NULL, o.wallet_id LIMIT 1";

    /// Admin wallet list: ids of customer wallets, newest first below a bound (`i64::MAX`
    /// for the first page); the wallets themselves are then read by id. (Joined with the
    /// currencies in one statement, the optimizer may start from the tiny currency table and
    /// sort every wallet.)
    pub(super) const LIST_WALLETS: &str = "SELECT id FROM wallets
         WHERE id < ? AND owner_id IS NOT NULL AND (? IS NULL OR status = ?)
           AND (? IS NULL OR kind = ?) AND (? IS NULL OR currency = ?)
         ORDER BY id DESC LIMIT ?";
    /// Admin transaction list, like [`LIST_WALLETS`].
    pub(super) const LIST_TRANSACTIONS: &str = "SELECT id FROM transactions
         WHERE id < ? AND (? IS NULL OR kind = ?) AND (? IS NULL OR status = ?)
           AND (? IS NULL OR currency = ?) AND (? IS NULL OR created_at >= ?)
           AND (? IS NULL OR created_at < ?)
         ORDER BY id DESC LIMIT ?";
    /// Users, newest first below a bound, like [`LIST_WALLETS`].
    pub(super) const LIST_USERS: &str =
        "SELECT id, username, email, full_name, phone, national_id, role, active, kyc,
                kyc_reason, password, token_version, created_at, updated_at, deleted_at
         FROM users
         WHERE id < ? AND (? IS NULL OR role = ?) AND (? IS NULL OR kyc = ?)
           AND (? IS NULL OR active = ?) AND (? = 1 OR deleted_at IS NULL)
         ORDER BY id DESC LIMIT ?";

    pub(super) const USERS_BY_ROLE: &str =
        "SELECT role, count(*) FROM users WHERE deleted_at IS NULL GROUP BY role ORDER BY role";
    pub(super) const USERS_BY_KYC: &str =
        "SELECT kyc, count(*) FROM users WHERE deleted_at IS NULL GROUP BY kyc ORDER BY kyc";
    pub(super) const WALLETS_BY_STATUS: &str = "SELECT status, count(*) FROM wallets
         WHERE owner_id IS NOT NULL GROUP BY status ORDER BY status";
    /// The balance of every system account (its latest entry), per currency.
    pub(super) const SYSTEM_BALANCES: &str =
        "SELECT w.currency, c.exponent, CAST(SUM(e.balance_after) AS CHAR)
         FROM wallets w
         JOIN currencies c ON c.code = w.currency
         JOIN entries e ON e.wallet_id = w.id
             AND e.seq = (SELECT max(seq) FROM entries WHERE wallet_id = w.id)
         WHERE w.owner_id IS NULL
         GROUP BY w.currency, c.exponent ORDER BY w.currency";
    /// Completed movements in a period (transactions_by_time), per currency and kind.
    pub(super) const VOLUME: &str =
        "SELECT t.currency, c.exponent, t.kind, count(*), CAST(SUM(t.amount) AS CHAR)
         FROM transactions t JOIN currencies c ON c.code = t.currency
         WHERE t.created_at >= ? AND t.created_at < ? AND t.status = ?
         GROUP BY t.currency, c.exponent, t.kind ORDER BY t.currency, t.kind";

    /// The audit log, newest first below an id bound (`i64::MAX` for the first page); each
    /// other filter is off when its parameter is NULL. Three variants lead with the indexed
    /// condition that makes the scan short: the actor, the target, or just the id range.
    macro_rules! audit_page {
        ($lead:literal) => {
            concat!(
                "SELECT id, at, actor_id, action, target, detail, outcome FROM audit_log WHERE ",
                $lead,
                " id < ? AND (? IS NULL OR actor_id = ?) AND (? IS NULL OR action = ?)
                  AND (? IS NULL OR target = ?) AND (? IS NULL OR at >= ?)
                  AND (? IS NULL OR at < ?)
                 ORDER BY id DESC LIMIT ?"
            )
        };
    }
    pub(super) const AUDIT_PAGE: &str = audit_page!("");
    pub(super) const AUDIT_BY_ACTOR: &str = audit_page!("actor_id = ? AND");
    pub(super) const AUDIT_BY_TARGET: &str = audit_page!("target = ? AND");

    // `verify` reads whole tables on purpose, in keyset chunks: each chunk is one range of a
    // key, continuing after the last row of the previous chunk.

    /// Ids of the accounts after an id (read by id next, like [`LIST_WALLETS`]).
    pub(super) const VERIFY_ACCOUNTS: &str =
        "SELECT id FROM wallets WHERE id > ? ORDER BY id LIMIT ?";
    /// Accounts whose stored head (`schema::V3`) differs from their latest entry.
    pub(super) const VERIFY_HEADS: &str = "SELECT w.id, w.head_seq FROM wallets w
         LEFT JOIN entries e ON e.wallet_id = w.id
             AND e.seq = (SELECT s.seq FROM entries s WHERE s.wallet_id = w.id
                          ORDER BY s.seq DESC LIMIT 1)
         LEFT JOIN transactions t ON t.id = e.txn_id
         WHERE NOT (w.head_seq = coalesce(e.seq, 0)
                    AND w.head_balance = coalesce(e.balance_after, 0)
                    AND w.head_debits = coalesce(e.debits_after, 0)
                    AND w.head_at = coalesce(t.completed_at, t.created_at, 0))
         ORDER BY w.id LIMIT 1000";
    /// Entries after a (wallet_id, seq) (the primary key).
    pub(super) const VERIFY_ENTRIES: &str =
        "SELECT wallet_id, seq, amount, balance_after, debits_after FROM entries
         WHERE wallet_id > ? OR (wallet_id = ? AND seq > ?)
         ORDER BY wallet_id, seq LIMIT ?";
    /// Transactions after an id.
    pub(super) const VERIFY_TRANSACTIONS: &str =
        "SELECT id, status, amount, currency, refunded, kind FROM transactions
         WHERE id > ? ORDER BY id LIMIT ?";
    /// Entries after a (txn_id, wallet_id, seq), in that order: entries_by_txn with the
    /// primary key InnoDB appends to it, read as one range. Each has its account's currency
    /// (NULL for an entry of an account that does not exist). The chunk is cut before the
    /// join: joined in one statement, the server sorts the whole rest of the table.
    pub(super) const VERIFY_LEGS: &str = "SELECT l.txn_id, l.wallet_id, l.seq, w.currency, l.amount
         FROM (SELECT txn_id, wallet_id, seq, amount FROM entries FORCE INDEX (entries_by_txn)
               WHERE txn_id > ? OR (txn_id = ? AND wallet_id > ?)
                  OR (txn_id = ? AND wallet_id = ? AND seq > ?)
               ORDER BY txn_id, wallet_id, seq LIMIT ?) l
         LEFT JOIN wallets w ON w.id = l.wallet_id
         ORDER BY l.txn_id, l.wallet_id, l.seq";
    /// What wallets after an id hold, and what their open holds reserve (NULL: no open hold).
    pub(super) const VERIFY_HOLDS: &str = "SELECT w.id, w.held,
                (SELECT CAST(SUM(p.held) AS CHAR) FROM pending p FORCE INDEX (pending_by_wallet)
                 WHERE p.wallet_id = w.id AND p.open = 1)
         FROM wallets w WHERE w.id > ? ORDER BY w.id LIMIT ?";
}

/// Rows per chunk of `verify`'s scans and of search's scan.
const CHUNK: i64 = 2000;

/// One history line's columns: seq, txn_id, amount, balance_after, kind, status,
/// description, time.
type LineCols = (i64, i64, i64, i64, i64, i64, Option<String>, i64);

/// Bit mask of stored enum values for `WHERE (1 << column) & mask`; all bits when unfiltered.
fn mask<T: Copy>(values: &[T], to_db: impl Fn(T) -> i64) -> u64 {
    if values.is_empty() {
        return u64::MAX;
    }
    values.iter().fold(0u64, |m, v| {
        let bit = u32::try_from(to_db(*v))
            .ok()
            .and_then(|s| 1u64.checked_shl(s))
            .unwrap_or(0);
        m | bit
    })
}

fn to_minor_i64(total: u64) -> Result<i64> {
    i64::try_from(total).map_err(|_| Error::AmountOverflow)
}

/// An exact sum the server computed as a decimal and returned as text.
fn decimal(text: &str) -> Result<i128> {
    text.trim()
        .parse::<i128>()
        .map_err(|_| Error::corrupt(format!("sum {text:?} is not an integer")))
}

/// A sum of money columns, which must fit the money type.
fn money_sum(text: &str) -> Result<i64> {
    i64::try_from(decimal(text)?).map_err(|_| Error::AmountOverflow)
}

fn optional_text<T>(
    raw: Option<String>,
    what: &str,
    parse: impl Fn(String) -> Result<T>,
) -> Result<Option<T>> {
    raw.map(|s| parse(s).map_err(stored::corrupt(what)))
        .transpose()
}

/// One past a wallet's latest sequence number: the end of its whole chain as a range.
fn end_of(state: &WalletState) -> Result<i64> {
    state
        .head
        .seq
        .checked_add(1)
        .ok_or_else(|| Error::corrupt("entry sequence number out of range"))
}

/// The other side of a transaction as seen from `wallet`: a customer wallet if there is one.
async fn counterparty(
    c: &mut MySqlConnection,
    txn: TransactionId,
    wallet: WalletId,
) -> Result<Option<Counterparty>> {
    let row: Option<(i64, i64)> = sqlx::query_as(sql::COUNTERPARTY)
        .bind(txn.get())
        .bind(wallet.get())
        .fetch_optional(c)
        .await
        .map_err(map_sqlx)?;
    row.map(|(id, kind)| {
        Ok(match AccountKind::from_db(kind)? {
            AccountKind::System(s) => Counterparty::System(s),
            AccountKind::Wallet(_) => {
                Counterparty::Wallet(WalletNumber::of(stored::wallet_id(id)?))
            }
        })
    })
    .transpose()
}

async fn history_line(
    c: &mut MySqlConnection,
    wallet: WalletId,
    cur: Currency,
    (seq, txn, amount, balance, kind, status, description, at): LineCols,
) -> Result<HistoryLine> {
    let txn = stored::txn_id(txn)?;
    Ok(HistoryLine {
        transaction: txn,
        reference: TransactionRef::of(txn),
        kind: TransactionKind::from_db(kind)?,
        status: TransactionStatus::from_db(status)?,
        amount: Money::from_minor(amount, cur),
        balance_after: Money::from_minor(balance, cur),
        seq,
        description: optional_text(description, "description", Description::new)?,
        counterparty: counterparty(c, txn, wallet).await?,
        created_at: Timestamp::from_micros(at),
    })
}

/// One page of a wallet's history with totals over the whole filtered range.
pub(crate) async fn history(c: &mut MySqlConnection, f: &HistoryFilter) -> Result<HistoryPage> {
    let state = queries::wallet(c, f.wallet)
        .await?
        .ok_or(Error::WalletNotFound)?;
    let cur = state.record.currency;
    let (last, end) = (state.head.seq, end_of(&state)?);
    // The filter's time range as a range of sequence numbers [lo, hi).
    let lo = match f.since {
        Some(t) => queries::first_seq_at_or_after(c, f.wallet, last, t).await?,
        None => 1,
    };
    let hi = match f.until {
        Some(t) => queries::first_seq_at_or_after(c, f.wallet, last, t).await?,
        None => end,
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
        let (b_hi, d_hi) = queries::sums_at(c, f.wallet, hi - 1).await?;
        let (b_lo, d_lo) = queries::sums_at(c, f.wallet, lo - 1).await?;
        let credits_at = |b: i64, d: i64| b.cast_unsigned().wrapping_add(d.cast_unsigned());
        let debits = d_hi.cast_unsigned().wrapping_sub(d_lo.cast_unsigned());
        let credits = credits_at(b_hi, d_hi).wrapping_sub(credits_at(b_lo, d_lo));
        HistoryTotals {
            credits: Money::from_minor(to_minor_i64(credits)?, cur),
            debits: Money::from_minor(to_minor_i64(debits)?, cur),
        }
    } else {
        let (credits, debits): (String, String) = sqlx::query_as(sql::HISTORY_SUMS)
            .bind(f.wallet.get())
            .bind(lo)
            .bind(hi)
            .bind(kinds)
            .bind(statuses)
            .fetch_one(&mut *c)
            .await
            .map_err(map_sqlx)?;
        let fit = |v: i128| i64::try_from(v).map_err(|_| Error::AmountOverflow);
        HistoryTotals {
            credits: Money::from_minor(fit(decimal(&credits)?)?, cur),
            debits: Money::from_minor(
                fit(decimal(&debits)?
                    .checked_neg()
                    .ok_or(Error::AmountOverflow)?)?,
                cur,
            ),
        }
    };

    let upper = f.before_seq.map_or(hi, |b| b.min(hi));
    let rows: Vec<LineCols> = sqlx::query_as(sql::HISTORY_PAGE)
        .bind(f.wallet.get())
        .bind(lo)
        .bind(upper)
        .bind(kinds)
        .bind(statuses)
        .bind(i64::from(f.limit) + 1)
        .fetch_all(&mut *c)
        .await
        .map_err(map_sqlx)?;
    let limit = usize::try_from(f.limit).unwrap_or(usize::MAX);
    let more = rows.len() > limit;
    let mut lines = Vec::with_capacity(rows.len().min(limit));
    for cols in rows.into_iter().take(limit) {
        lines.push(history_line(c, f.wallet, cur, cols).await?);
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

/// A wallet's entries posted in `[since, until)`.
pub(crate) async fn entries_between(
    c: &mut MySqlConnection,
    w: WalletId,
    since: Timestamp,
    until: Timestamp,
    max: u32,
) -> Result<EntryRange> {
    let state = queries::wallet(c, w).await?.ok_or(Error::WalletNotFound)?;
    let cur = state.record.currency;
    let last = state.head.seq;
    end_of(&state)?;
    let lo = queries::first_seq_at_or_after(c, w, last, since).await?;
    let hi = queries::first_seq_at_or_after(c, w, last, until)
        .await?
        .max(lo);
    let opening = queries::sums_at(c, w, lo - 1).await?.0;
    let rows: Vec<LineCols> = sqlx::query_as(sql::RANGE_ASC)
        .bind(w.get())
        .bind(lo)
        .bind(hi)
        .bind(i64::from(max))
        .fetch_all(&mut *c)
        .await
        .map_err(map_sqlx)?;
    let mut lines = Vec::with_capacity(rows.len());
    for cols in rows {
        lines.push(history_line(c, w, cur, cols).await?);
    }
    Ok(EntryRange {
        opening_minor: opening,
        lines,
        truncated: hi - lo > i64::from(max),
    })
}

/// History lines whose description contains `needle`, newest first, below `before_seq`.
///
/// Scans at most [`SEARCH_SCAN_MAX`] entries, in chunks, and stops at the first match past
/// the page; if the budget runs out first, `next` continues after the last entry scanned.
pub(crate) async fn search(
    c: &mut MySqlConnection,
    w: WalletId,
    needle: &SearchText,
    before_seq: Option<i64>,
    limit: u32,
) -> Result<HistoryPage> {
    let state = queries::wallet(c, w).await?.ok_or(Error::WalletNotFound)?;
    let cur = state.record.currency;
    let end = end_of(&state)?;
    let upper = before_seq.map_or(end, |b| b.min(end));
    let scan = i64::from(SEARCH_SCAN_MAX);
    let want = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut found: Vec<LineCols> = Vec::new();
    let (mut scanned, mut last_seq, mut next) = (0i64, upper, None);
    'scan: while scanned < scan {
        let take = CHUNK.min(scan - scanned);
        let rows: Vec<LineCols> = sqlx::query_as(sql::DESCRIBED_DESC)
            .bind(w.get())
            .bind(last_seq)
            .bind(take)
            .fetch_all(&mut *c)
            .await
            .map_err(map_sqlx)?;
        let fetched = rows.len();
        for cols in rows {
            scanned += 1;
            last_seq = cols.0;
            if cols.6.as_deref().is_some_and(|d| needle.matches(d)) {
                if found.len() == want {
                    // One more match exists: continue after the last returned line.
                    next = found.last().map(|l| HistoryCursor::new(w, l.0));
                    break 'scan;
                }
                found.push(cols);
            }
        }
        if i64::try_from(fetched).unwrap_or(i64::MAX) < take {
            break; // the wallet's first entry was scanned
        }
    }
    if next.is_none() && scanned == scan && last_seq > 1 {
        // The scan budget ran out before the wallet's first entry: continue from there.
        next = Some(HistoryCursor::new(w, last_seq));
    }
    let mut lines = Vec::with_capacity(found.len());
    for cols in found {
        lines.push(history_line(c, w, cur, cols).await?);
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

/// Customer wallets matching a query, newest first.
pub(crate) async fn list_wallets(c: &mut MySqlConnection, q: &WalletQuery) -> Result<WalletPage> {
    let status = q.status.map(WalletStatus::to_db);
    let kind = q.kind.map(|k| AccountKind::Wallet(k).to_db());
    let currency = q.currency.as_ref().map(CurrencyCode::as_str);
    let ids: Vec<i64> = sqlx::query_scalar(sql::LIST_WALLETS)
        .bind(q.before.map_or(i64::MAX, WalletId::get))
        .bind(status)
        .bind(status)
        .bind(kind)
        .bind(kind)
        .bind(currency)
        .bind(currency)
        .bind(i64::from(q.limit) + 1)
        .fetch_all(&mut *c)
        .await
        .map_err(map_sqlx)?;
    let mut items = accounts(c, &ids).await?;
    items.reverse();
    let items = items.iter().map(WalletState::to_wallet).collect();
    Ok(Page::from_overfetch(items, q.limit, |w| w.id))
}

/// The accounts with these ids (ascending), in id order. Accounts are never deleted, so one
/// missing is corrupt data.
async fn accounts(c: &mut MySqlConnection, ids: &[i64]) -> Result<Vec<WalletState>> {
    let ids = ids
        .iter()
        .map(|&id| stored::wallet_id(id))
        .collect::<Result<Vec<_>>>()?;
    let found = queries::wallets(c, &ids).await?;
    if found.len() != ids.len() {
        return Err(Error::corrupt("wallet vanished while listed"));
    }
    Ok(found)
}

/// Transactions matching a query, newest first.
pub(crate) async fn list_transactions(
    c: &mut MySqlConnection,
    q: &TransactionQuery,
) -> Result<TransactionPage> {
    let kind = q.kind.map(TransactionKind::to_db);
    let status = q.status.map(TransactionStatus::to_db);
    let currency = q.currency.as_ref().map(CurrencyCode::as_str);
    let since = q.since.map(Timestamp::as_micros);
    let until = q.until.map(Timestamp::as_micros);
    let ids: Vec<i64> = sqlx::query_scalar(sql::LIST_TRANSACTIONS)
        .bind(q.before.map_or(i64::MAX, TransactionId::get))
        .bind(kind)
        .bind(kind)
        .bind(status)
        .bind(status)
        .bind(currency)
        .bind(currency)
        .bind(since)
        .bind(since)
        .bind(until)
        .bind(until)
        .bind(i64::from(q.limit) + 1)
        .fetch_all(&mut *c)
        .await
        .map_err(map_sqlx)?;
    let mut items = Vec::with_capacity(ids.len());
    for id in ids {
        let t = queries::transaction(c, stored::txn_id(id)?)
            .await?
            .ok_or_else(|| Error::corrupt("transaction vanished inside a snapshot"))?;
        items.push(t);
    }
    Ok(Page::from_overfetch(items, q.limit, |t| t.id))
}

/// Users matching a query, newest first.
pub(crate) async fn list_users(c: &mut MySqlConnection, q: &UserQuery) -> Result<UserPage> {
    let role = q.role.map(Role::to_db);
    let kyc = q.kyc.map(KycStatus::to_db);
    let active = q.active.map(i64::from);
    let rows: Vec<UserCols> = sqlx::query_as(sql::LIST_USERS)
        .bind(q.before.map_or(i64::MAX, UserId::get))
        .bind(role)
        .bind(role)
        .bind(kyc)
        .bind(kyc)
        .bind(active)
        .bind(active)
        .bind(i64::from(q.include_deleted))
        .bind(i64::from(q.limit) + 1)
        .fetch_all(c)
        .await
        .map_err(map_sqlx)?;
    let items = rows
        .into_iter()
        .map(|r| Ok(stored::user_record(r)?.to_user()))
        .collect::<Result<Vec<_>>>()?;
    Ok(Page::from_overfetch(items, q.limit, |u| u.id))
}

/// Counts grouped by a stored enumeration.
async fn counts<T>(
    c: &mut MySqlConnection,
    statement: &'static str,
    decode: impl Fn(i64) -> Result<T>,
) -> Result<Vec<(T, u64)>> {
    let rows: Vec<(i64, i64)> = sqlx::query_as(statement)
        .fetch_all(c)
        .await
        .map_err(map_sqlx)?;
    rows.into_iter()
        .map(|(value, n)| Ok((decode(value)?, stored::count(n)?)))
        .collect()
}

/// The admin dashboard.
pub(crate) async fn dashboard(c: &mut MySqlConnection, p: Period) -> Result<Dashboard> {
    let users_by_role = counts(c, sql::USERS_BY_ROLE, Role::from_db).await?;
    let users_by_kyc = counts(c, sql::USERS_BY_KYC, KycStatus::from_db).await?;
    let wallets_by_status = counts(c, sql::WALLETS_BY_STATUS, WalletStatus::from_db).await?;

    let rows: Vec<(String, i64, String)> = sqlx::query_as(sql::SYSTEM_BALANCES)
        .fetch_all(&mut *c)
        .await
        .map_err(map_sqlx)?;
    let mut total_balances = Vec::with_capacity(rows.len());
    for (code, exponent, system_sum) in rows {
        // Every currency's balances sum to zero, so customers hold what the system accounts
        // are short of.
        let held = money_sum(&system_sum)?
            .checked_neg()
            .ok_or(Error::AmountOverflow)?;
        total_balances.push(Money::from_minor(held, stored::currency(&code, exponent)?));
    }

    let rows: Vec<(String, i64, i64, i64, String)> = sqlx::query_as(sql::VOLUME)
        .bind(p.since.as_micros())
        .bind(p.until.as_micros())
        .bind(TransactionStatus::Completed.to_db())
        .fetch_all(&mut *c)
        .await
        .map_err(map_sqlx)?;
    let mut volume = Vec::with_capacity(rows.len());
    for (code, exponent, kind, n, amount) in rows {
        volume.push(Volume {
            kind: TransactionKind::from_db(kind)?,
            count: stored::count(n)?,
            amount: Money::from_minor(money_sum(&amount)?, stored::currency(&code, exponent)?),
        });
    }
    Ok(Dashboard {
        users_by_role,
        users_by_kyc,
        wallets_by_status,
        total_balances,
        volume,
        fee_revenue: Vec::new(),
    })
}

/// A page of the audit log.
pub(crate) async fn audit_log(c: &mut MySqlConnection, q: &AuditQuery) -> Result<AuditPage> {
    let actor = q.actor.map(UserId::get);
    let target = q.target.as_deref();
    // Lead with the condition an index serves best; the same value is bound again below.
    let query = if let Some(a) = actor {
        sqlx::query_as::<_, AuditCols>(sql::AUDIT_BY_ACTOR).bind(a)
    } else if let Some(t) = target {
        sqlx::query_as::<_, AuditCols>(sql::AUDIT_BY_TARGET).bind(t)
    } else {
        sqlx::query_as::<_, AuditCols>(sql::AUDIT_PAGE)
    };
    let action = q.action.map(AuditAction::to_db);
    let since = q.since.map(Timestamp::as_micros);
    let until = q.until.map(Timestamp::as_micros);
    let rows = query
        .bind(q.before.unwrap_or(i64::MAX))
        .bind(actor)
        .bind(actor)
        .bind(action)
        .bind(action)
        .bind(target)
        .bind(target)
        .bind(since)
        .bind(since)
        .bind(until)
        .bind(until)
        .bind(i64::from(q.limit) + 1)
        .fetch_all(c)
        .await
        .map_err(map_sqlx)?;
    let items = rows
        .into_iter()
        .map(stored::audit_entry)
        .collect::<Result<Vec<_>>>()?;
    Ok(Page::from_overfetch(items, q.limit, |e| e.id))
}

/// Entry columns in pass 1: wallet_id, seq, amount, balance_after, debits_after.
type EntryCols = (i64, i64, i64, i64, i64);
/// Leg columns in pass 2: txn_id, wallet_id, seq, currency (NULL: no such account), amount.
type VerifyLegCols = (i64, i64, i64, Option<String>, i64);

/// Every entry in (wallet_id, seq) order, read a chunk at a time.
#[derive(Default)]
struct Entries {
    rows: VecDeque<EntryCols>,
    after: Option<(i64, i64)>,
    exhausted: bool,
}

impl Entries {
    /// The wallet of the next entry, if any.
    async fn peek(&mut self, c: &mut MySqlConnection) -> Result<Option<i64>> {
        if self.rows.is_empty() && !self.exhausted {
            let (wallet, seq) = self.after.unwrap_or((i64::MIN, i64::MIN));
            let rows: Vec<EntryCols> = sqlx::query_as(sql::VERIFY_ENTRIES)
                .bind(wallet)
                .bind(wallet)
                .bind(seq)
                .bind(CHUNK)
                .fetch_all(c)
                .await
                .map_err(map_sqlx)?;
            self.exhausted = i64::try_from(rows.len()).unwrap_or(i64::MAX) < CHUNK;
            if let Some(last) = rows.last() {
                self.after = Some((last.0, last.1));
            }
            self.rows = rows.into();
        }
        Ok(self.rows.front().map(|e| e.0))
    }

    /// Feeds the entries at the front whose wallet satisfies `take` to the verifier.
    async fn drain(
        &mut self,
        c: &mut MySqlConnection,
        v: &mut Verifier,
        take: impl Fn(i64) -> bool,
    ) -> Result<()> {
        while let Some(wallet) = self.peek(c).await? {
            if !take(wallet) {
                break;
            }
            let Some((wallet, seq, amount, balance, debits)) = self.rows.pop_front() else {
                break;
            };
            v.entry(&EntryRow {
                wallet: stored::wallet_id(wallet)?,
                seq,
                amount_minor: amount,
                balance_after_minor: balance,
                debits_after_minor: debits,
            });
        }
        Ok(())
    }
}

/// Every entry in (txn_id, wallet_id, seq) order with its account's currency, a chunk at a
/// time.
#[derive(Default)]
struct Legs {
    rows: VecDeque<VerifyLegCols>,
    after: Option<(i64, i64, i64)>,
    exhausted: bool,
}

impl Legs {
    /// The transaction of the next leg, if any.
    async fn peek(&mut self, c: &mut MySqlConnection) -> Result<Option<i64>> {
        if self.rows.is_empty() && !self.exhausted {
            let (txn, wallet, seq) = self.after.unwrap_or((i64::MIN, i64::MIN, i64::MIN));
            let rows: Vec<VerifyLegCols> = sqlx::query_as(sql::VERIFY_LEGS)
                .bind(txn)
                .bind(txn)
                .bind(wallet)
                .bind(txn)
                .bind(wallet)
                .bind(seq)
                .bind(CHUNK)
                .fetch_all(c)
                .await
                .map_err(map_sqlx)?;
            self.exhausted = i64::try_from(rows.len()).unwrap_or(i64::MAX) < CHUNK;
            if let Some(last) = rows.last() {
                self.after = Some((last.0, last.1, last.2));
            }
            self.rows = rows.into();
        }
        Ok(self.rows.front().map(|l| l.0))
    }

    /// Feeds the legs at the front whose transaction satisfies `take` to the verifier.
    async fn drain(
        &mut self,
        c: &mut MySqlConnection,
        v: &mut Verifier,
        take: impl Fn(i64) -> bool,
    ) -> Result<()> {
        while let Some(txn) = self.peek(c).await? {
            if !take(txn) {
                break;
            }
            let Some((txn, wallet, _seq, code, amount)) = self.rows.pop_front() else {
                break;
            };
            // An entry of an account that does not exist is pass 1's orphan; like the SQLite
            // backend's inner join, pass 2 leaves it out (the entry counts then differ).
            let Some(code) = code else {
                continue;
            };
            v.leg(&LegRow {
                transaction: stored::txn_id(txn)?,
                wallet: stored::wallet_id(wallet)?,
                currency: CurrencyCode::new(&code).map_err(stored::corrupt("currency code"))?,
                amount_minor: amount,
            });
        }
        Ok(())
    }
}

/// Checks the whole ledger (see [`wallet_core::verify`]). The caller runs this inside one
/// snapshot, so every chunk of every pass sees the same ledger.
pub(crate) async fn verify(c: &mut MySqlConnection) -> Result<VerifyReport> {
    let mut v = Verifier::new();

    // Pass 1: accounts in id order, merged with entries in (wallet_id, seq) order. Entries of
    // accounts that do not exist sort between accounts and are reported as orphans.
    let mut entries = Entries::default();
    let mut after = i64::MIN;
    loop {
        let ids: Vec<i64> = sqlx::query_scalar(sql::VERIFY_ACCOUNTS)
            .bind(after)
            .bind(CHUNK)
            .fetch_all(&mut *c)
            .await
            .map_err(map_sqlx)?;
        let Some(&last) = ids.last() else {
            break;
        };
        after = last;
        for account in accounts(c, &ids).await? {
            let record = account.record;
            let id = record.id.get();
            entries.drain(c, &mut v, |w| w < id).await?;
            v.account(&record);
            entries.drain(c, &mut v, |w| w == id).await?;
        }
    }
    entries.drain(c, &mut v, |_| true).await?;
    let heads: Vec<(i64, i64)> = sqlx::query_as(sql::VERIFY_HEADS)
        .fetch_all(&mut *c)
        .await
        .map_err(map_sqlx)?;
    for (wallet, seq) in heads {
        v.stored_head(stored::wallet_id(wallet)?, seq);
    }

    // Pass 2: transactions in id order, merged with entries in txn_id order (entries_by_txn).
    let mut legs = Legs::default();
    let mut after = i64::MIN;
    loop {
        let txns: Vec<(i64, i64, i64, String, i64, i64)> = sqlx::query_as(sql::VERIFY_TRANSACTIONS)
            .bind(after)
            .bind(CHUNK)
            .fetch_all(&mut *c)
            .await
            .map_err(map_sqlx)?;
        let Some(last) = txns.last() else {
            break;
        };
        after = last.0;
        for (id, status, amount, code, refunded, kind) in txns {
            legs.drain(c, &mut v, |t| t < id).await?;
            v.transaction(&TransactionRow {
                id: stored::txn_id(id)?,
                status: TransactionStatus::from_db(status)?,
                amount_minor: amount,
                refunded_minor: refunded,
                currency: CurrencyCode::new(&code).map_err(stored::corrupt("currency code"))?,
                exchange: TransactionKind::from_db(kind)? == TransactionKind::Exchange,
            });
            legs.drain(c, &mut v, |t| t == id).await?;
        }
    }
    legs.drain(c, &mut v, |_| true).await?;

    // Pass 3: what wallets hold against what their open holds reserve.
    let mut after = i64::MIN;
    loop {
        let rows: Vec<(i64, i64, Option<String>)> = sqlx::query_as(sql::VERIFY_HOLDS)
            .bind(after)
            .bind(CHUNK)
            .fetch_all(&mut *c)
            .await
            .map_err(map_sqlx)?;
        let Some(last) = rows.last() else {
            break;
        };
        after = last.0;
        for (wallet, held, reserved) in rows {
            let reserved = reserved
                .map(|r| {
                    i64::try_from(decimal(&r)?)
                        .map_err(|_| Error::corrupt("open holds of a wallet overflow"))
                })
                .transpose()?;
            if held != 0 || reserved.is_some() {
                v.holds(stored::wallet_id(wallet)?, held, reserved.unwrap_or(0));
            }
        }
    }
    Ok(v.finish())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::collections::HashMap;
    use std::sync::atomic::{AtomicU32, Ordering};

    use sqlx::{Connection, Executor, Row};
    use wallet_core::history::HistoryQuery;
    use wallet_core::verify::Discrepancy;
    use wallet_core::wallet::SystemAccount;

    use super::*;

    const SERVER: &str = "mysql://root@127.0.0.1:3306";
    const T0: i64 = 1_000_000_000;

    /// Rows inserted here by hand carry no heads (`schema::V3`): they are set from the
    /// entries, as an import sets them, before the check.
    async fn verify(c: &mut MySqlConnection) -> Result<VerifyReport> {
        c.execute(crate::schema::HEADS_FROM_ENTRIES)
            .await
            .map_err(map_sqlx)?;
        super::verify(c).await
    }

    /// A fresh, migrated database; drop it with [`drop_db`].
    async fn fresh() -> (MySqlConnection, String) {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "wt_reads_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let mut server = MySqlConnection::connect(SERVER).await.unwrap();
        server
            .execute(format!("DROP DATABASE IF EXISTS {name}").as_str())
            .await
            .unwrap();
        server
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap();
        server.close().await.unwrap();
        let mut c = MySqlConnection::connect(&format!("{SERVER}/{name}"))
            .await
            .unwrap();
        // As strict as MySQL 8's defaults (ONLY_FULL_GROUP_BY) plus what the store sets.
        c.execute(
            "SET SESSION sql_mode = 'ONLY_FULL_GROUP_BY,STRICT_ALL_TABLES,NO_ZERO_DATE,\
             NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'",
        )
        .await
        .unwrap();
        crate::schema::migrate(&mut c).await.unwrap();
        (c, name)
    }

    async fn drop_db(c: MySqlConnection, name: &str) {
        c.close().await.unwrap();
        let mut server = MySqlConnection::connect(SERVER).await.unwrap();
        server
            .execute(format!("DROP DATABASE {name}").as_str())
            .await
            .unwrap();
        server.close().await.unwrap();
    }

    fn wid(n: i64) -> WalletId {
        WalletId::new(n).unwrap()
    }

    fn uid(n: i64) -> UserId {
        UserId::new(n).unwrap()
    }

    /// Inserts a currency and its system accounts (External, FeeRevenue, Exchange).
    async fn currency(c: &mut MySqlConnection, code: &str) {
        sqlx::query("INSERT INTO currencies (code, exponent) VALUES (?, 2)")
            .bind(code)
            .execute(&mut *c)
            .await
            .unwrap();
        for kind in SystemAccount::ALL {
            sqlx::query(
                "INSERT INTO wallets (owner_id, kind, currency, status, held, created_at,
                     updated_at) VALUES (NULL, ?, ?, 1, 0, ?, ?)",
            )
            .bind(kind.to_db())
            .bind(code)
            .bind(T0)
            .bind(T0)
            .execute(&mut *c)
            .await
            .unwrap();
        }
    }

    async fn wallet(c: &mut MySqlConnection, owner: i64, kind: i64, code: &str, status: i64) {
        sqlx::query(
            "INSERT INTO wallets (owner_id, kind, currency, status, held, created_at, updated_at)
             VALUES (?, ?, ?, ?, 0, ?, ?)",
        )
        .bind(owner)
        .bind(kind)
        .bind(code)
        .bind(status)
        .bind(T0)
        .bind(T0)
        .execute(&mut *c)
        .await
        .unwrap();
    }

    /// Posts transactions with correct entry chains.
    #[derive(Default)]
    struct Book {
        heads: HashMap<i64, (i64, i64, i64)>,
        next_txn: i64,
    }

    impl Book {
        /// The entry values of a leg, advancing the wallet's chain.
        fn advance(&mut self, wallet: i64, amount: i64) -> (i64, i64, i64) {
            let head = self.heads.entry(wallet).or_insert((0, 0, 0));
            head.0 += 1;
            head.1 += amount;
            if amount < 0 {
                head.2 -= amount;
            }
            *head
        }

        #[allow(clippy::too_many_arguments)]
        async fn post(
            &mut self,
            c: &mut MySqlConnection,
            kind: TransactionKind,
            status: TransactionStatus,
            amount: i64,
            description: Option<&str>,
            created: i64,
            completed: Option<i64>,
            legs: &[(i64, i64)],
        ) -> i64 {
            self.next_txn += 1;
            let id = self.next_txn;
            sqlx::query(
                "INSERT INTO transactions (id, kind, status, amount, currency, description,
                     metadata, initiated_by, idempotency_key, fingerprint, created_at,
                     completed_at)
                 VALUES (?, ?, ?, ?, 'USD', ?, NULL, 1, ?, ?, ?, ?)",
            )
            .bind(id)
            .bind(kind.to_db())
            .bind(status.to_db())
            .bind(amount)
            .bind(description)
            .bind(format!("k{id}"))
            .bind(vec![0u8; 16])
            .bind(created)
            .bind(completed)
            .execute(&mut *c)
            .await
            .unwrap();
            for &(wallet, amount) in legs {
                let (seq, balance, debits) = self.advance(wallet, amount);
                sqlx::query(
                    "INSERT INTO entries (wallet_id, seq, txn_id, amount, balance_after,
                         debits_after) VALUES (?, ?, ?, ?, ?, ?)",
                )
                .bind(wallet)
                .bind(seq)
                .bind(id)
                .bind(amount)
                .bind(balance)
                .bind(debits)
                .execute(&mut *c)
                .await
                .unwrap();
            }
            id
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn user(
        c: &mut MySqlConnection,
        name: Option<&str>,
        role: Role,
        active: bool,
        kyc: KycStatus,
        deleted: Option<i64>,
    ) {
        sqlx::query(
            "INSERT INTO users (username, email, full_name, phone, national_id, role, active,
                 kyc, kyc_reason, password, token_version, created_at, updated_at, deleted_at)
             VALUES (?, ?, ?, ?, NULL, ?, ?, ?, NULL, NULL, 0, ?, ?, ?)",
        )
        .bind(name)
        .bind(name.map(|n| format!("{n}@example.com")))
        .bind(name.map(|n| format!("{n} Example")))
        .bind(name.map(|_| "+15551234567"))
        .bind(role.to_db())
        .bind(i64::from(active))
        .bind(kyc.to_db())
        .bind(T0)
        .bind(T0)
        .bind(deleted)
        .execute(&mut *c)
        .await
        .unwrap();
    }

    async fn audit(
        c: &mut MySqlConnection,
        at: i64,
        actor: Option<i64>,
        action: AuditAction,
        target: Option<&str>,
    ) {
        sqlx::query(
            "INSERT INTO audit_log (at, actor_id, action, target, detail, outcome)
             VALUES (?, ?, ?, ?, NULL, 'ok')",
        )
        .bind(at)
        .bind(actor)
        .bind(action.to_db())
        .bind(target)
        .execute(&mut *c)
        .await
        .unwrap();
    }

    // Accounts: USD system 1 (External), 2, 3; alice's USD wallet 4; bob's USD wallet 5;
    // EUR system 6, 7, 8; alice's frozen EUR savings wallet 9.
    const EXTERNAL: i64 = 1;
    const ALICE: i64 = 4;
    const BOB: i64 = 5;
    const ALICE_EUR: i64 = 9;

    /// The small ledger every test reads. Alice's chain (seq: amount, balance, time):
    /// 1: +10000 10000 T0+1 (top-up), 2: -2500 7500 T0+2 (transfer to bob),
    /// 3: -1000 6500 T0+4 (withdrawal), 4: +700 7200 T0+5 (transfer from bob),
    /// 5: +2000 9200 T0+8 (top-up created T0+7, completed T0+8). She holds 300 for a pending
    /// payment (txn 6); txn 8 failed.
    async fn small_ledger(c: &mut MySqlConnection) {
        use TransactionKind as K;
        use TransactionStatus as S;
        currency(c, "USD").await;
        user(
            c,
            Some("alice"),
            Role::User,
            true,
            KycStatus::Verified,
            None,
        )
        .await;
        user(c, Some("bob"), Role::User, false, KycStatus::Pending, None).await;
        user(c, None, Role::User, false, KycStatus::Pending, Some(T0)).await;
        user(
            c,
            Some("admin"),
            Role::Admin,
            true,
            KycStatus::Verified,
            None,
        )
        .await;
        wallet(c, 1, 1, "USD", 1).await;
        wallet(c, 2, 1, "USD", 1).await;
        currency(c, "EUR").await;
        wallet(c, 1, 3, "EUR", WalletStatus::Frozen.to_db()).await;
        let mut b = Book::default();
        let done = S::Completed;
        let t = |n| Some(T0 + n);
        b.post(
            c,
            K::TopUp,
            done,
            10000,
            Some("Salary March"),
            T0 + 1,
            t(1),
            &[(EXTERNAL, -10000), (ALICE, 10000)],
        )
        .await;
        b.post(
            c,
            K::Transfer,
            done,
            2500,
            Some("Rent share"),
            T0 + 2,
            t(2),
            &[(ALICE, -2500), (BOB, 2500)],
        )
        .await;
        b.post(
            c,
            K::TopUp,
            done,
            5000,
            Some("gift from GRANDMA"),
            T0 + 3,
            t(3),
            &[(EXTERNAL, -5000), (BOB, 5000)],
        )
        .await;
        b.post(
            c,
            K::Withdrawal,
            done,
            1000,
            None,
            T0 + 4,
            t(4),
            &[(ALICE, -1000), (EXTERNAL, 1000)],
        )
        .await;
        b.post(
            c,
            K::Transfer,
            done,
            700,
            Some("rent refund partial"),
            T0 + 5,
            t(5),
            &[(BOB, -700), (ALICE, 700)],
        )
        .await;
        let hold = b
            .post(
                c,
                K::Payment,
                S::Pending,
                300,
                Some("Pending thing"),
                T0 + 6,
                None,
                &[],
            )
            .await;
        b.post(
            c,
            K::TopUp,
            done,
            2000,
            None,
            T0 + 7,
            t(8),
            &[(EXTERNAL, -2000), (ALICE, 2000)],
        )
        .await;
        b.post(c, K::Transfer, S::Failed, 50, None, T0 + 9, None, &[])
            .await;
        sqlx::query(
            "INSERT INTO pending (txn_id, wallet_id, counter_id, amount, held, gateway_ref,
                 expires_at, open) VALUES (?, ?, ?, 300, 300, NULL, ?, 1)",
        )
        .bind(hold)
        .bind(ALICE)
        .bind(BOB)
        .bind(T0 + 1000)
        .execute(&mut *c)
        .await
        .unwrap();
        c.execute("UPDATE wallets SET held = 300 WHERE id = 4")
            .await
            .unwrap();
        audit(c, 100, Some(4), AuditAction::Login, None).await;
        audit(c, 200, Some(1), AuditAction::Login, None).await;
        audit(c, 300, Some(4), AuditAction::SetRole, Some("user:2")).await;
        audit(c, 400, None, AuditAction::Bootstrap, Some("user:4")).await;
        audit(c, 500, Some(4), AuditAction::SetRole, Some("user:1")).await;
    }

    fn filter(wallet: i64, limit: u32) -> HistoryFilter {
        let mut q = HistoryQuery::new(wid(wallet));
        q.limit = limit;
        q.to_filter().unwrap()
    }

    fn seqs(page: &HistoryPage) -> Vec<i64> {
        page.lines.iter().map(|l| l.seq).collect()
    }

    fn totals(page: &HistoryPage) -> (i64, i64) {
        (page.totals.credits.minor(), page.totals.debits.minor())
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn reads_of_a_small_ledger() {
        let (mut conn, name) = fresh().await;
        small_ledger(&mut conn).await;
        let c = &mut conn;

        // History: newest first, paged by cursor, totals over the whole range on every page.
        let mut f = filter(ALICE, 2);
        let p1 = history(c, &f).await.unwrap();
        assert_eq!(seqs(&p1), vec![5, 4]);
        assert_eq!(totals(&p1), (12700, 3500));
        assert_eq!(p1.next, Some(HistoryCursor::new(wid(ALICE), 4)));
        let top = &p1.lines[0];
        assert_eq!(top.kind, TransactionKind::TopUp);
        assert_eq!(top.amount.minor(), 2000);
        assert_eq!(top.balance_after.minor(), 9200);
        assert_eq!(
            top.created_at,
            Timestamp::from_micros(T0 + 7),
            "created, not posted"
        );
        assert_eq!(
            top.counterparty,
            Some(Counterparty::System(SystemAccount::External))
        );
        assert_eq!(
            p1.lines[1].counterparty,
            Some(Counterparty::Wallet(WalletNumber::of(wid(BOB))))
        );
        f.before_seq = Some(4);
        let p2 = history(c, &f).await.unwrap();
        assert_eq!(seqs(&p2), vec![3, 2]);
        assert_eq!(totals(&p2), (12700, 3500));
        assert!(p2.lines[0].description.is_none());
        assert_eq!(
            p2.lines[1].description.as_ref().unwrap().as_str(),
            "Rent share"
        );
        f.before_seq = Some(2);
        let p3 = history(c, &f).await.unwrap();
        assert_eq!(seqs(&p3), vec![1]);
        assert_eq!(p3.next, None);
        // Exactly `limit` rows left: no next page.
        f.before_seq = Some(3);
        assert_eq!(history(c, &f).await.unwrap().next, None);

        // Kind, status and time filters; totals follow the filter.
        let mut q = HistoryQuery::new(wid(ALICE));
        q.kinds = vec![TransactionKind::Transfer];
        let p = history(c, &q.to_filter().unwrap()).await.unwrap();
        assert_eq!((seqs(&p), totals(&p)), (vec![4, 2], (700, 2500)));
        q.kinds = vec![TransactionKind::TopUp];
        q.statuses = vec![TransactionStatus::Completed];
        let p = history(c, &q.to_filter().unwrap()).await.unwrap();
        assert_eq!((seqs(&p), totals(&p)), (vec![5, 1], (12000, 0)));
        q.statuses = vec![TransactionStatus::Failed];
        let p = history(c, &q.to_filter().unwrap()).await.unwrap();
        assert_eq!((seqs(&p), totals(&p)), (vec![], (0, 0)));
        let mut q = HistoryQuery::new(wid(ALICE));
        q.since = Some(Timestamp::from_micros(T0 + 2));
        q.until = Some(Timestamp::from_micros(T0 + 5));
        let p = history(c, &q.to_filter().unwrap()).await.unwrap();
        assert_eq!((seqs(&p), totals(&p)), (vec![3, 2], (0, 3500)));
        // Posting time places an entry: seq 5 was posted at T0+8.
        q.since = Some(Timestamp::from_micros(T0 + 8));
        q.until = None;
        let p = history(c, &q.to_filter().unwrap()).await.unwrap();
        assert_eq!((seqs(&p), totals(&p)), (vec![5], (2000, 0)));
        q.since = Some(Timestamp::from_micros(T0 + 100));
        let p = history(c, &q.to_filter().unwrap()).await.unwrap();
        assert_eq!((seqs(&p), totals(&p)), (vec![], (0, 0)));
        // Filtered totals over a time range (the summing statement).
        q.since = Some(Timestamp::from_micros(T0 + 2));
        q.until = Some(Timestamp::from_micros(T0 + 6));
        q.kinds = vec![TransactionKind::Transfer, TransactionKind::Withdrawal];
        let p = history(c, &q.to_filter().unwrap()).await.unwrap();
        assert_eq!((seqs(&p), totals(&p)), (vec![4, 3, 2], (700, 3500)));
        // A wallet without entries, and one that does not exist.
        let p = history(c, &filter(ALICE_EUR, 10)).await.unwrap();
        assert_eq!((seqs(&p), totals(&p), p.next), (vec![], (0, 0), None));
        assert_eq!(
            history(c, &filter(999, 10)).await.unwrap_err(),
            Error::WalletNotFound
        );

        // Search: case-insensitive, newest first, paged.
        let rent = SearchText::new("RENT").unwrap();
        let p = search(c, wid(ALICE), &rent, None, 10).await.unwrap();
        assert_eq!((seqs(&p), p.next, totals(&p)), (vec![4, 2], None, (0, 0)));
        let p = search(c, wid(ALICE), &rent, None, 1).await.unwrap();
        assert_eq!(seqs(&p), vec![4]);
        assert_eq!(p.next, Some(HistoryCursor::new(wid(ALICE), 4)));
        let p = search(c, wid(ALICE), &rent, Some(4), 1).await.unwrap();
        assert_eq!((seqs(&p), p.next), (vec![2], None));
        let grandma = SearchText::new("grandma").unwrap();
        let p = search(c, wid(BOB), &grandma, None, 10).await.unwrap();
        assert_eq!(seqs(&p), vec![2]);
        assert_eq!(
            p.lines[0].counterparty,
            Some(Counterparty::System(SystemAccount::External))
        );
        let p = search(c, wid(ALICE), &grandma, Some(100), 10)
            .await
            .unwrap();
        assert_eq!((seqs(&p), p.next), (vec![], None));
        assert_eq!(
            search(c, wid(999), &rent, None, 10).await.unwrap_err(),
            Error::WalletNotFound
        );

        // Entries between two times: opening balance, posting times, truncation.
        let at = Timestamp::from_micros;
        let r = entries_between(c, wid(ALICE), at(T0 + 2), at(T0 + 6), 10)
            .await
            .unwrap();
        assert_eq!(r.opening_minor, 10000);
        assert_eq!(
            r.lines.iter().map(|l| l.seq).collect::<Vec<_>>(),
            vec![2, 3, 4]
        );
        assert!(!r.truncated);
        let r = entries_between(c, wid(ALICE), at(T0 + 2), at(T0 + 6), 2)
            .await
            .unwrap();
        assert_eq!(
            r.lines.iter().map(|l| l.seq).collect::<Vec<_>>(),
            vec![2, 3]
        );
        assert!(r.truncated);
        let r = entries_between(c, wid(ALICE), at(T0 + 7), at(T0 + 9), 10)
            .await
            .unwrap();
        assert_eq!(r.opening_minor, 7200);
        assert_eq!(r.lines[0].seq, 5);
        assert_eq!(r.lines[0].created_at, at(T0 + 8), "posting time");
        let r = entries_between(c, wid(ALICE), at(T0 + 50), at(T0 + 60), 10)
            .await
            .unwrap();
        assert_eq!(
            (r.opening_minor, r.lines.len(), r.truncated),
            (9200, 0, false)
        );
        let r = entries_between(c, wid(ALICE), at(0), at(T0 + 1), 10)
            .await
            .unwrap();
        assert_eq!((r.opening_minor, r.lines.len()), (0, 0));

        // Wallet list: customers only, newest first, filters.
        let ids = |p: &WalletPage| p.items.iter().map(|w| w.id.get()).collect::<Vec<_>>();
        let mut wq = WalletQuery {
            limit: 2,
            ..WalletQuery::default()
        };
        let p = list_wallets(c, &wq).await.unwrap();
        assert_eq!((ids(&p), p.next), (vec![ALICE_EUR, BOB], Some(wid(BOB))));
        assert_eq!(p.items[1].balance.minor(), 6800);
        wq.before = p.next;
        let p = list_wallets(c, &wq).await.unwrap();
        assert_eq!((ids(&p), p.next), (vec![ALICE], None));
        assert_eq!(p.items[0].balance.minor(), 9200);
        let wq = WalletQuery {
            currency: Some(CurrencyCode::new("USD").unwrap()),
            limit: 10,
            ..WalletQuery::default()
        };
        assert_eq!(ids(&list_wallets(c, &wq).await.unwrap()), vec![BOB, ALICE]);
        let wq = WalletQuery {
            status: Some(WalletStatus::Frozen),
            limit: 10,
            ..WalletQuery::default()
        };
        assert_eq!(ids(&list_wallets(c, &wq).await.unwrap()), vec![ALICE_EUR]);
        let wq = WalletQuery {
            kind: Some(wallet_core::wallet::WalletKind::Savings),
            status: Some(WalletStatus::Active),
            limit: 10,
            ..WalletQuery::default()
        };
        assert_eq!(ids(&list_wallets(c, &wq).await.unwrap()), Vec::<i64>::new());

        // Transaction list.
        let tids = |p: &TransactionPage| p.items.iter().map(|t| t.id.get()).collect::<Vec<_>>();
        let mut tq = TransactionQuery {
            limit: 3,
            ..TransactionQuery::default()
        };
        let p = list_transactions(c, &tq).await.unwrap();
        assert_eq!(tids(&p), vec![8, 7, 6]);
        assert_eq!(p.next.map(TransactionId::get), Some(6));
        tq.before = p.next;
        let p = list_transactions(c, &tq).await.unwrap();
        assert_eq!(tids(&p), vec![5, 4, 3]);
        let transfer = &p.items[0];
        assert_eq!(transfer.legs.len(), 2);
        assert_eq!(transfer.legs[0].amount.minor(), -700, "debits first");
        let tq = TransactionQuery {
            status: Some(TransactionStatus::Completed),
            limit: 10,
            ..TransactionQuery::default()
        };
        assert_eq!(
            tids(&list_transactions(c, &tq).await.unwrap()),
            vec![7, 5, 4, 3, 2, 1]
        );
        let tq = TransactionQuery {
            kind: Some(TransactionKind::TopUp),
            currency: Some(CurrencyCode::new("USD").unwrap()),
            limit: 10,
            ..TransactionQuery::default()
        };
        assert_eq!(
            tids(&list_transactions(c, &tq).await.unwrap()),
            vec![7, 3, 1]
        );
        let tq = TransactionQuery {
            since: Some(at(T0 + 3)),
            until: Some(at(T0 + 6)),
            limit: 10,
            ..TransactionQuery::default()
        };
        assert_eq!(
            tids(&list_transactions(c, &tq).await.unwrap()),
            vec![5, 4, 3]
        );
        let tq = TransactionQuery {
            currency: Some(CurrencyCode::new("EUR").unwrap()),
            limit: 10,
            ..TransactionQuery::default()
        };
        assert!(list_transactions(c, &tq).await.unwrap().items.is_empty());

        // User list.
        let uids = |p: &UserPage| p.items.iter().map(|u| u.id.get()).collect::<Vec<_>>();
        let mut uq = UserQuery {
            limit: 2,
            ..UserQuery::default()
        };
        let p = list_users(c, &uq).await.unwrap();
        assert_eq!((uids(&p), p.next), (vec![4, 2], Some(uid(2))));
        assert_eq!(
            p.items[0].profile.as_ref().unwrap().username.as_str(),
            "admin"
        );
        uq.before = p.next;
        let p = list_users(c, &uq).await.unwrap();
        assert_eq!((uids(&p), p.next), (vec![1], None));
        let uq = UserQuery {
            include_deleted: true,
            limit: 10,
            ..UserQuery::default()
        };
        let p = list_users(c, &uq).await.unwrap();
        assert_eq!(uids(&p), vec![4, 3, 2, 1]);
        assert!(p.items[1].profile.is_none() && p.items[1].deleted_at.is_some());
        let uq = UserQuery {
            role: Some(Role::Admin),
            limit: 10,
            ..UserQuery::default()
        };
        assert_eq!(uids(&list_users(c, &uq).await.unwrap()), vec![4]);
        let uq = UserQuery {
            kyc: Some(KycStatus::Pending),
            limit: 10,
            ..UserQuery::default()
        };
        assert_eq!(uids(&list_users(c, &uq).await.unwrap()), vec![2]);
        let uq = UserQuery {
            active: Some(false),
            include_deleted: true,
            limit: 10,
            ..UserQuery::default()
        };
        assert_eq!(uids(&list_users(c, &uq).await.unwrap()), vec![3, 2]);

        // Dashboard.
        let d = dashboard(c, Period::new(at(T0), at(T0 + 100)).unwrap())
            .await
            .unwrap();
        assert_eq!(d.users_by_role, vec![(Role::User, 2), (Role::Admin, 1)]);
        assert_eq!(
            d.users_by_kyc,
            vec![(KycStatus::Pending, 1), (KycStatus::Verified, 2)]
        );
        assert_eq!(
            d.wallets_by_status,
            vec![(WalletStatus::Active, 2), (WalletStatus::Frozen, 1)]
        );
        let usd = stored::currency("USD", 2).unwrap();
        assert_eq!(d.total_balances, vec![Money::from_minor(16000, usd)]);
        let vol = |d: &Dashboard| {
            d.volume
                .iter()
                .map(|v| (v.kind, v.count, v.amount.minor()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            vol(&d),
            vec![
                (TransactionKind::TopUp, 3, 17000),
                (TransactionKind::Withdrawal, 1, 1000),
                (TransactionKind::Transfer, 2, 3200),
            ]
        );
        assert!(d.fee_revenue.is_empty());
        let d = dashboard(c, Period::new(at(T0 + 3), at(T0 + 7)).unwrap())
            .await
            .unwrap();
        assert_eq!(
            vol(&d),
            vec![
                (TransactionKind::TopUp, 1, 5000),
                (TransactionKind::Withdrawal, 1, 1000),
                (TransactionKind::Transfer, 1, 700),
            ]
        );

        // Audit log.
        let aids = |p: &AuditPage| p.items.iter().map(|e| e.id).collect::<Vec<_>>();
        let mut aq = AuditQuery {
            actor: None,
            action: None,
            target: None,
            since: None,
            until: None,
            before: None,
            limit: 2,
        };
        let p = audit_log(c, &aq).await.unwrap();
        assert_eq!((aids(&p), p.next), (vec![5, 4], Some(4)));
        assert_eq!(p.items[1].actor, None);
        assert_eq!(p.items[1].action, AuditAction::Bootstrap);
        aq.before = p.next;
        let p = audit_log(c, &aq).await.unwrap();
        assert_eq!((aids(&p), p.next), (vec![3, 2], Some(2)));
        aq.before = None;
        aq.limit = 10;
        aq.actor = Some(uid(4));
        assert_eq!(aids(&audit_log(c, &aq).await.unwrap()), vec![5, 3, 1]);
        aq.action = Some(AuditAction::SetRole);
        assert_eq!(aids(&audit_log(c, &aq).await.unwrap()), vec![5, 3]);
        aq.target = Some("user:1".into());
        assert_eq!(aids(&audit_log(c, &aq).await.unwrap()), vec![5]);
        aq.actor = None;
        aq.action = None;
        aq.target = Some("user:2".into());
        let p = audit_log(c, &aq).await.unwrap();
        assert_eq!(aids(&p), vec![3]);
        assert_eq!(p.items[0].target.as_deref(), Some("user:2"));
        aq.target = None;
        aq.since = Some(at(200));
        aq.until = Some(at(400));
        assert_eq!(aids(&audit_log(c, &aq).await.unwrap()), vec![3, 2]);
        aq.actor = Some(uid(4));
        aq.before = Some(3);
        assert_eq!(aids(&audit_log(c, &aq).await.unwrap()), Vec::<i64>::new());

        // Verify: the ledger is consistent; then break it in three ways.
        let r = verify(c).await.unwrap();
        assert!(r.is_ok(), "{r:?}");
        assert_eq!((r.accounts, r.transactions, r.entries), (9, 8, 12));
        assert_eq!(
            r.customer_balances.get(&CurrencyCode::new("USD").unwrap()),
            Some(&16000)
        );
        c.execute(
            "UPDATE entries SET balance_after = balance_after + 1 WHERE wallet_id = 4 AND seq = 3",
        )
        .await
        .unwrap();
        let r = verify(c).await.unwrap();
        assert!(!r.is_ok());
        assert!(
            r.discrepancies.iter().any(|d| matches!(
                d,
                Discrepancy::ChainBroken { wallet, seq: 3, .. } if wallet.get() == ALICE
            )),
            "{r:?}"
        );
        c.execute(
            "UPDATE entries SET balance_after = balance_after - 1 WHERE wallet_id = 4 AND seq = 3",
        )
        .await
        .unwrap();
        assert!(verify(c).await.unwrap().is_ok());
        c.execute("UPDATE wallets SET held = 200 WHERE id = 4")
            .await
            .unwrap();
        let r = verify(c).await.unwrap();
        assert_eq!(
            r.discrepancies,
            vec![Discrepancy::HeldMismatch {
                wallet: wid(ALICE),
                held_minor: 200,
                holds_minor: 300
            }]
        );
        c.execute("UPDATE wallets SET held = 300 WHERE id = 4")
            .await
            .unwrap();
        c.execute("INSERT INTO entries VALUES (7, 1, 2, 5, 5, 0)")
            .await
            .unwrap();
        let r = verify(c).await.unwrap();
        // Wallet 7 exists (a EUR system account), so the entry is no orphan: its chain is
        // fine, but transaction 2 no longer balances.
        assert!(
            !r.discrepancies.iter().any(|d| matches!(
                d,
                Discrepancy::OrphanEntry { .. } | Discrepancy::ChainBroken { .. }
            )),
            "{r:?}"
        );
        assert!(
            r.discrepancies.iter().any(|d| matches!(
                d,
                Discrepancy::Unbalanced { transaction, .. } if transaction.get() == 2
            )),
            "{r:?}"
        );
        c.execute("DELETE FROM entries WHERE wallet_id = 7")
            .await
            .unwrap();
        c.execute("INSERT INTO entries VALUES (42, 1, 2, 5, 5, 0)")
            .await
            .unwrap();
        let r = verify(c).await.unwrap();
        assert!(
            r.discrepancies.iter().any(|d| matches!(
                d,
                Discrepancy::OrphanEntry { wallet, seq: 1 } if wallet.get() == 42
            )),
            "{r:?}"
        );

        // Values out of range are reported as corrupt data, never a panic.
        c.execute("DELETE FROM entries WHERE wallet_id = 42")
            .await
            .unwrap();
        // (Below 64: a larger kind shifts out of the filter mask, so its rows match no
        // filter at all, as in the SQLite backend.)
        c.execute("UPDATE transactions SET kind = 50 WHERE id = 2")
            .await
            .unwrap();
        let corrupt = |r: Result<_>| matches!(r, Err(Error::StorageCorrupt { .. }));
        assert!(corrupt(history(c, &filter(ALICE, 10)).await.map(|_| ())));
        assert!(corrupt(verify(c).await.map(|_| ())));
        let mut q = HistoryQuery::new(wid(ALICE));
        q.kinds = vec![TransactionKind::TopUp];
        let p = history(c, &q.to_filter().unwrap()).await.unwrap();
        assert_eq!(seqs(&p), vec![5, 1], "an unknown kind matches no filter");
        c.execute("UPDATE transactions SET kind = 3 WHERE id = 2")
            .await
            .unwrap();
        c.execute("UPDATE users SET role = -1 WHERE id = 2")
            .await
            .unwrap();
        assert!(corrupt(
            list_users(
                c,
                &UserQuery {
                    limit: 5,
                    ..UserQuery::default()
                }
            )
            .await
            .map(|_| ())
        ));
        assert!(corrupt(
            dashboard(c, Period::new(at(0), at(1)).unwrap())
                .await
                .map(|_| ())
        ));

        drop_db(conn, &name).await;
    }

    /// Enough rows that verify's and search's scans take several chunks, and search's budget
    /// runs out.
    #[tokio::test(flavor = "multi_thread")]
    async fn scans_span_chunks() {
        let (mut c, name) = fresh().await;
        currency(&mut c, "USD").await;
        user(
            &mut c,
            Some("busy"),
            Role::User,
            true,
            KycStatus::Verified,
            None,
        )
        .await;
        wallet(&mut c, 1, 1, "USD", 1).await;
        let busy = 4;
        let n: i64 = i64::from(SEARCH_SCAN_MAX) + 500;
        let needles = [5, 3000, n - 10];
        let mut book = Book::default();
        for start in (1..=n).step_by(1000) {
            let end = (start + 999).min(n);
            let mut txns = Vec::new();
            let mut entries = Vec::new();
            for i in start..=end {
                let desc = if needles.contains(&i) {
                    format!("'Needle {i}'")
                } else {
                    "NULL".into()
                };
                txns.push(format!(
                    "({i}, 1, 2, 1, 'USD', {desc}, 1, 'k{i}', x'00000000000000000000000000000000', {}, {})",
                    T0 + i,
                    T0 + i
                ));
                for (w, a) in [(EXTERNAL, -1), (busy, 1)] {
                    let (seq, bal, deb) = book.advance(w, a);
                    entries.push(format!("({w}, {seq}, {i}, {a}, {bal}, {deb})"));
                }
            }
            c.execute(
                format!(
                    "INSERT INTO transactions (id, kind, status, amount, currency, description,
                         initiated_by, idempotency_key, fingerprint, created_at, completed_at)
                     VALUES {}",
                    txns.join(", ")
                )
                .as_str(),
            )
            .await
            .unwrap();
            c.execute(format!("INSERT INTO entries VALUES {}", entries.join(", ")).as_str())
                .await
                .unwrap();
        }

        let r = verify(&mut c).await.unwrap();
        assert!(r.is_ok(), "{r:?}");
        let n_u = u64::try_from(n).unwrap();
        assert_eq!((r.accounts, r.transactions, r.entries), (4, n_u, 2 * n_u));

        // The newest needle is found; the budget (20 000 entries) ends before the oldest.
        let needle = SearchText::new("nEEdle").unwrap();
        let p = search(&mut c, wid(busy), &needle, None, 10).await.unwrap();
        assert_eq!(seqs(&p), vec![n - 10, 3000]);
        let stop = n - i64::from(SEARCH_SCAN_MAX) + 1;
        assert_eq!(p.next, Some(HistoryCursor::new(wid(busy), stop)));
        let p = search(&mut c, wid(busy), &needle, Some(stop), 10)
            .await
            .unwrap();
        assert_eq!((seqs(&p), p.next), (vec![5], None));
        let p = search(&mut c, wid(busy), &needle, None, 1).await.unwrap();
        assert_eq!(seqs(&p), vec![n - 10]);
        assert_eq!(p.next, Some(HistoryCursor::new(wid(busy), n - 10)));

        // Totals by running sums and by the summing statement agree.
        let p = history(&mut c, &filter(busy, 3)).await.unwrap();
        assert_eq!((seqs(&p), totals(&p)), (vec![n, n - 1, n - 2], (n, 0)));
        let mut q = HistoryQuery::new(wid(busy));
        q.kinds = vec![TransactionKind::TopUp];
        q.since = Some(Timestamp::from_micros(T0 + 101));
        let p = history(&mut c, &q.to_filter().unwrap()).await.unwrap();
        assert_eq!(totals(&p), (n - 100, 0));
        let p = history(&mut c, &{
            let mut f = filter(EXTERNAL, 1);
            f.kinds = vec![TransactionKind::TopUp];
            f
        })
        .await
        .unwrap();
        assert_eq!(totals(&p), (0, n));

        // A broken chain deep in the second chunk is found.
        c.execute("UPDATE entries SET debits_after = 0 WHERE wallet_id = 1 AND seq = 2500")
            .await
            .unwrap();
        let r = verify(&mut c).await.unwrap();
        assert_eq!(r.discrepancy_count, 2, "{r:?}");
        drop_db(c, &name).await;
    }

    /// Every statement is served by an index: no full scan of a table, and verify's chunks
    /// are ranges of the key they continue after.
    #[tokio::test(flavor = "multi_thread")]
    async fn statements_use_indexes() {
        let (mut c, name) = fresh().await;
        small_ledger(&mut c).await;
        // Enough audit rows that reading by target beats reading by id.
        let rows: Vec<String> = (0..3000)
            .map(|i| format!("({i}, {}, 1, 'user:{}', 'ok')", i % 7, i % 300))
            .collect();
        c.execute(
            format!(
                "INSERT INTO audit_log (at, actor_id, action, target, outcome) VALUES {}",
                rows.join(", ")
            )
            .as_str(),
        )
        .await
        .unwrap();
        c.execute("ANALYZE TABLE wallets, transactions, entries, users, audit_log, pending")
            .await
            .unwrap();
        // (statement, parameters as i64 or NULL)
        let n = None::<i64>;
        let one = Some(1i64);
        let cases: Vec<(&str, Vec<Option<i64>>)> = vec![
            (
                sql::HISTORY_SUMS,
                vec![one, one, Some(9), Some(-1), Some(-1)],
            ),
            (
                sql::HISTORY_PAGE,
                vec![one, one, Some(9), Some(-1), Some(-1), Some(5)],
            ),
            (sql::RANGE_ASC, vec![one, one, Some(9), Some(5)]),
            (sql::DESCRIBED_DESC, vec![one, Some(9), Some(5)]),
            (sql::COUNTERPARTY, vec![one, one]),
            (
                sql::LIST_WALLETS,
                vec![Some(i64::MAX), n, n, n, n, n, n, Some(3)],
            ),
            (
                sql::LIST_TRANSACTIONS,
                vec![Some(i64::MAX), n, n, n, n, n, n, n, n, n, n, Some(3)],
            ),
            (
                sql::LIST_USERS,
                vec![Some(i64::MAX), n, n, n, n, n, n, Some(0), Some(3)],
            ),
            (sql::SYSTEM_BALANCES, vec![]),
            (sql::VOLUME, vec![Some(0), Some(T0), Some(2)]),
            (
                sql::AUDIT_PAGE,
                vec![Some(i64::MAX), n, n, n, n, n, n, n, n, n, n, Some(3)],
            ),
            (
                sql::AUDIT_BY_ACTOR,
                vec![
                    one,
                    Some(i64::MAX),
                    one,
                    one,
                    n,
                    n,
                    n,
                    n,
                    n,
                    n,
                    n,
                    n,
                    Some(3),
                ],
            ),
            (sql::VERIFY_ACCOUNTS, vec![Some(0), Some(3)]),
            (
                sql::VERIFY_ENTRIES,
                vec![Some(4), Some(4), Some(2), Some(3)],
            ),
            (sql::VERIFY_TRANSACTIONS, vec![Some(2), Some(3)]),
            (
                sql::VERIFY_LEGS,
                vec![
                    Some(2),
                    Some(2),
                    Some(4),
                    Some(2),
                    Some(4),
                    Some(1),
                    Some(3),
                ],
            ),
            (sql::VERIFY_HOLDS, vec![Some(0), Some(3)]),
        ];
        for (statement, params) in cases {
            let explain = format!("EXPLAIN {statement}");
            let mut q = sqlx::query(&explain);
            for p in params {
                q = q.bind(p);
            }
            let rows = q.fetch_all(&mut c).await.unwrap();
            let plan: Vec<(Option<String>, Option<String>, Option<String>)> = rows
                .iter()
                .map(|r| {
                    (
                        r.try_get::<Option<String>, _>("table").unwrap(),
                        r.try_get::<Option<String>, _>("type").unwrap(),
                        r.try_get::<Option<String>, _>("key").unwrap(),
                    )
                })
                .collect();
            // The currency table (a few rows, one per currency) may be read whole, and so
            // may a derived table (a chunk already cut to size).
            let full = plan.iter().any(|(table, ty, _)| {
                let table = table.as_deref().unwrap_or("");
                ty.as_deref() == Some("ALL") && table != "c" && !table.starts_with("<derived")
            });
            assert!(!full, "{statement}\n{plan:#?}");
            let ranges = [
                (sql::VERIFY_ENTRIES, "entries", "PRIMARY"),
                (sql::VERIFY_LEGS, "entries", "entries_by_txn"),
            ];
            for (s, table, key) in ranges {
                if s == statement {
                    let step = plan.iter().find(|p| p.0.as_deref() == Some(table));
                    assert_eq!(
                        step.map(|p| (p.1.as_deref(), p.2.as_deref())),
                        Some((Some("range"), Some(key))),
                        "{statement}\n{plan:#?}"
                    );
                }
            }
        }
        let explain = format!("EXPLAIN {}", sql::AUDIT_BY_TARGET);
        let target: Vec<sqlx::mysql::MySqlRow> = sqlx::query(&explain)
            .bind("user:2")
            .bind(i64::MAX)
            .bind(n)
            .bind(n)
            .bind(n)
            .bind(n)
            .bind("user:2")
            .bind("user:2")
            .bind(n)
            .bind(n)
            .bind(n)
            .bind(n)
            .bind(3)
            .fetch_all(&mut c)
            .await
            .unwrap();
        let key: Option<String> = target[0].try_get("key").unwrap();
        assert_eq!(key.as_deref(), Some("audit_by_target"));
        drop_db(c, &name).await;
    }

    /// The futures `Store` methods return must be `Send`.
    #[allow(dead_code)]
    fn futures_are_send(c: &mut MySqlConnection, f: &HistoryFilter) {
        fn send<T: Send>(_: T) {}
        send(history(c, f));
        send(verify(c));
        send(search(c, f.wallet, &SearchText::new("x").unwrap(), None, 1));
        send(entries_between(
            c,
            f.wallet,
            Timestamp::from_micros(0),
            Timestamp::from_micros(0),
            1,
        ));
        send(list_users(c, &UserQuery::default()));
        send(list_wallets(c, &WalletQuery::default()));
        send(list_transactions(c, &TransactionQuery::default()));
        send(dashboard(
            c,
            Period::new(Timestamp::from_micros(0), Timestamp::from_micros(1)).unwrap(),
        ));
        send(audit_log(c, &AuditQuery::default()));
    }
}
