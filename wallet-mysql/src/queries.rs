//! The SQL of wallets, currencies, transactions and entries, shared by commands and reads.
//!
//! Rows are read as the column tuples of [`wallet_core::stored`] and converted there, so every
//! value read back is checked the same way as in the SQLite backend.

use sqlx::mysql::MySqlRow;
use sqlx::{MySqlConnection, Row};
use wallet_core::currency::{Currency, CurrencyCode};
use wallet_core::decide::{Existing, NewWallet, PendingRecord, PostedLeg, Posting};
use wallet_core::ids::{TransactionId, UserId, WalletId};
use wallet_core::stored::{self, LegCols, PendingCols, TxnCols, WalletCols};
use wallet_core::text::{Description, IdempotencyKey, Metadata};
use wallet_core::transaction::Transaction;
use wallet_core::wallet::{SystemAccount, WalletKind, WalletRecord, WalletState, WalletStatus};
use wallet_core::{Error, Result, Timestamp};

use crate::error::map_sqlx;
use crate::script::{Lit, Output, Script, values_sql};

/// A wallet and its latest entry (its head) in one statement; append a `WHERE`.
///
/// The currency's exponent is a subquery rather than a join: joined, MariaDB starts the plan
/// from `currencies` (one row) and reaches the wallets through their currency index, with a
/// temporary table and a sort; as a subquery it is one primary-key read per wallet.
macro_rules! wallet_select {
    () => {
        "SELECT w.id, w.owner_id, w.kind, w.currency,
                (SELECT c.exponent FROM currencies c WHERE c.code = w.currency), w.status, w.held,
                w.created_at, w.updated_at, e.seq, e.balance_after, e.debits_after,
                coalesce(t.completed_at, t.created_at)
         FROM wallets w
         LEFT JOIN entries e ON e.wallet_id = w.id
             AND e.seq = (SELECT s.seq FROM entries s WHERE s.wallet_id = w.id
                          ORDER BY s.seq DESC LIMIT 1)
         LEFT JOIN transactions t ON t.id = e.txn_id"
    };
}
#[allow(unused_imports)]
pub(crate) use wallet_select;

/// `?, ?, ?` for an `IN` list of `n` values (at least one).
pub(crate) fn placeholders(n: usize) -> String {
    let mut s = String::from("?");
    for _ in 1..n {
        s.push_str(", ?");
    }
    s
}

/// Locks `n` accounts by id (`?` for each), in ascending id order.
pub(crate) fn lock_wallets_sql(n: usize) -> String {
    format!(
        "SELECT id FROM wallets WHERE id IN ({}) ORDER BY id FOR UPDATE",
        placeholders(n)
    )
}

/// Locks `n` accounts by id (`?` for each) in ascending id order and reads them, with their
/// heads and limit-window anchors (see `schema::V3`): one table, so only their rows are locked.
pub(crate) fn lock_and_read_wallets_sql(n: usize) -> String {
    format!(
        "SELECT id, owner_id, kind, currency, status, held, created_at, updated_at,
                head_seq, head_balance, head_debits, head_at,
                day_from, day_debits, month_from, month_debits
         FROM wallets WHERE id IN ({}) ORDER BY id FOR UPDATE",
        placeholders(n)
    )
}

/// The currency code of a row read by [`lock_and_read_wallets_sql`].
pub(crate) fn locked_currency(row: &MySqlRow) -> Result<String> {
    row.try_get(3).map_err(map_sqlx)
}

/// The account of a row read by [`lock_and_read_wallets_sql`], given its currency's exponent,
/// and its anchors (window start, running debits before it) for the day and the month.
pub(crate) fn locked_wallet(
    row: &MySqlRow,
    exponent: i64,
) -> Result<(WalletState, [(i64, i64); 2])> {
    let int = |i: usize| -> Result<i64> { row.try_get(i).map_err(map_sqlx) };
    // A wallet without entries has head 0 (see `schema::V3`).
    let head = |i: usize| -> Result<Option<i64>> { Ok((int(8)? > 0).then_some(int(i)?)) };
    let state = stored::wallet_state((
        int(0)?,
        row.try_get(1).map_err(map_sqlx)?,
        int(2)?,
        locked_currency(row)?,
        exponent,
        int(4)?,
        int(5)?,
        int(6)?,
        int(7)?,
        head(8)?,
        head(9)?,
        head(10)?,
        head(11)?,
    ))?;
    Ok((state, locked_heads(row)?.anchors()))
}

/// The stored head and anchors of a row read by [`lock_and_read_wallets_sql`].
pub(crate) fn locked_heads(row: &MySqlRow) -> Result<RowHeads> {
    let int = |i: usize| -> Result<i64> { row.try_get(i).map_err(map_sqlx) };
    Ok(RowHeads {
        seq: int(8)?,
        balance: int(9)?,
        debits: int(10)?,
        at: int(11)?,
        day_from: int(12)?,
        day_debits: int(13)?,
        month_from: int(14)?,
        month_debits: int(15)?,
    })
}

/// `n` wallets by id (`?` for each), in no particular order: see [`wallets_of_rows`].
pub(crate) fn wallets_sql(n: usize) -> String {
    format!("{} WHERE w.id IN ({})", wallet_select!(), placeholders(n))
}

/// The wallets of rows read by [`wallets_sql`], in id order.
pub(crate) fn wallets_of_rows(rows: &[MySqlRow]) -> Result<Vec<WalletState>> {
    use sqlx::FromRow;
    let mut wallets = rows
        .iter()
        .map(|row| stored::wallet_state(WalletCols::from_row(row).map_err(map_sqlx)?))
        .collect::<Result<Vec<_>>>()?;
    wallets.sort_by_key(|w| w.record.id);
    Ok(wallets)
}

/// A wallet or system account with its head.
pub(crate) async fn wallet(
    conn: &mut MySqlConnection,
    id: WalletId,
) -> Result<Option<WalletState>> {
    let row: Option<WalletCols> = sqlx::query_as(concat!(wallet_select!(), " WHERE w.id = ?"))
        .bind(id.get())
        .fetch_optional(conn)
        .await
        .map_err(map_sqlx)?;
    row.map(stored::wallet_state).transpose()
}

/// Wallets by id, in id order (missing ones left out).
pub(crate) async fn wallets(
    conn: &mut MySqlConnection,
    ids: &[WalletId],
) -> Result<Vec<WalletState>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = wallets_sql(ids.len());
    let mut q = sqlx::query(&sql);
    for id in ids {
        q = q.bind(id.get());
    }
    let rows = q.fetch_all(conn).await.map_err(map_sqlx)?;
    wallets_of_rows(&rows)
}

/// A user's wallets, ordered by id.
pub(crate) async fn wallets_of(
    conn: &mut MySqlConnection,
    owner: UserId,
) -> Result<Vec<WalletState>> {
    let rows: Vec<WalletCols> = sqlx::query_as(concat!(
        wallet_select!(),
        " WHERE w.owner_id = ? ORDER BY w.id LIMIT ?"
    ))
    .bind(owner.get())
    .bind(wallet_core::store::WALLETS_PER_OWNER_MAX)
    .fetch_all(conn)
    .await
    .map_err(map_sqlx)?;
    rows.into_iter().map(stored::wallet_state).collect()
}

/// The id of a currency's system account of `kind`.
pub(crate) async fn system_account(
    conn: &mut MySqlConnection,
    kind: SystemAccount,
    currency: CurrencyCode,
) -> Result<Option<WalletId>> {
    let id: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM wallets WHERE owner_id IS NULL AND kind = ? AND currency = ?",
    )
    .bind(kind.to_db())
    .bind(currency.as_str())
    .fetch_optional(conn)
    .await
    .map_err(map_sqlx)?;
    id.map(stored::wallet_id).transpose()
}

/// The owner's wallet of this kind and currency, if any.
pub(crate) async fn slot(
    conn: &mut MySqlConnection,
    owner: UserId,
    kind: WalletKind,
    currency: CurrencyCode,
) -> Result<Option<WalletId>> {
    let id: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM wallets WHERE owner_id = ? AND kind = ? AND currency = ?",
    )
    .bind(owner.get())
    .bind(kind.to_db())
    .bind(currency.as_str())
    .fetch_optional(conn)
    .await
    .map_err(map_sqlx)?;
    id.map(stored::wallet_id).transpose()
}

/// The exponent recorded for a currency, if it is recorded.
pub(crate) async fn stored_exponent(
    conn: &mut MySqlConnection,
    code: CurrencyCode,
) -> Result<Option<u8>> {
    let e: Option<i64> = sqlx::query_scalar("SELECT exponent FROM currencies WHERE code = ?")
        .bind(code.as_str())
        .fetch_optional(conn)
        .await
        .map_err(map_sqlx)?;
    e.map(|e| u8::try_from(e).map_err(|_| Error::corrupt("currency exponent")))
        .transpose()
}

/// Every recorded currency.
pub(crate) async fn currencies(conn: &mut MySqlConnection) -> Result<Vec<(CurrencyCode, u8)>> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT code, exponent FROM currencies ORDER BY code")
            .fetch_all(conn)
            .await
            .map_err(map_sqlx)?;
    rows.into_iter()
        .map(|(code, exp)| {
            let c = stored::currency(&code, exp)?;
            Ok((c.code(), c.exponent()))
        })
        .collect()
}

/// The transaction an actor created with a key: `?` the actor, `?` the key.
pub(crate) const EXISTING: &str =
    "SELECT id, fingerprint FROM transactions WHERE initiated_by = ? AND idempotency_key = ?";

/// The transaction an actor created with this key, if any.
pub(crate) async fn existing(
    conn: &mut MySqlConnection,
    actor: UserId,
    key: &IdempotencyKey,
) -> Result<Option<Existing>> {
    let row: Option<(i64, Vec<u8>)> = sqlx::query_as(EXISTING)
        .bind(actor.get())
        .bind(key.as_str())
        .fetch_optional(conn)
        .await
        .map_err(map_sqlx)?;
    existing_of(row)
}

/// The transaction of a row read by [`EXISTING`], if any.
pub(crate) fn existing_of(row: Option<(i64, Vec<u8>)>) -> Result<Option<Existing>> {
    row.map(|(id, fp)| {
        Ok(Existing {
            id: stored::txn_id(id)?,
            fingerprint: stored::fingerprint(&fp)?,
        })
    })
    .transpose()
}

/// Records a currency and creates one of each system account for it.
pub(crate) async fn register_currency(
    conn: &mut MySqlConnection,
    c: Currency,
    at: Timestamp,
) -> Result<()> {
    sqlx::query("INSERT INTO currencies (code, exponent) VALUES (?, ?)")
        .bind(c.code().as_str())
        .bind(c.exponent())
        .execute(&mut *conn)
        .await
        .map_err(map_sqlx)?;
    for kind in SystemAccount::ALL {
        sqlx::query(
            "INSERT INTO wallets (owner_id, kind, currency, status, held, created_at, updated_at)
             VALUES (NULL, ?, ?, ?, 0, ?, ?)",
        )
        .bind(kind.to_db())
        .bind(c.code().as_str())
        .bind(WalletStatus::Active.to_db())
        .bind(at.as_micros())
        .bind(at.as_micros())
        .execute(&mut *conn)
        .await
        .map_err(map_sqlx)?;
    }
    Ok(())
}

/// Inserts a customer wallet and returns its id.
pub(crate) async fn insert_wallet(conn: &mut MySqlConnection, w: &NewWallet) -> Result<WalletId> {
    let done = sqlx::query(
        "INSERT INTO wallets (owner_id, kind, currency, status, held, created_at, updated_at)
         VALUES (?, ?, ?, ?, 0, ?, ?)",
    )
    .bind(w.owner.get())
    .bind(w.kind.to_db())
    .bind(w.currency.code().as_str())
    .bind(w.status.to_db())
    .bind(w.created_at.as_micros())
    .bind(w.created_at.as_micros())
    .execute(conn)
    .await
    .map_err(map_sqlx)?;
    stored::wallet_id(last_id(done.last_insert_id())?)
}

/// An auto-increment id as the signed 64-bit value the domain uses.
pub(crate) fn last_id(raw: u64) -> Result<i64> {
    i64::try_from(raw).map_err(|_| Error::corrupt("row id out of range"))
}

/// Fails unless exactly one row changed.
pub(crate) fn changed_one(n: u64, what: &str) -> Result<()> {
    if n == 1 {
        Ok(())
    } else {
        Err(Error::corrupt(format!("{what} vanished")))
    }
}

/// Stores a wallet's status.
pub(crate) async fn update_status(conn: &mut MySqlConnection, w: &WalletRecord) -> Result<()> {
    let done = sqlx::query("UPDATE wallets SET status = ?, updated_at = ? WHERE id = ?")
        .bind(w.status.to_db())
        .bind(w.updated_at.as_micros())
        .bind(w.id.get())
        .execute(conn)
        .await
        .map_err(map_sqlx)?;
    // MySQL counts rows whose values changed; an unchanged row is found, not missing.
    if done.rows_affected() <= 1 {
        Ok(())
    } else {
        Err(Error::corrupt("wallet id not unique"))
    }
}

/// Stores what a wallet holds.
pub(crate) async fn update_held(conn: &mut MySqlConnection, w: &WalletRecord) -> Result<()> {
    sqlx::query("UPDATE wallets SET held = ?, updated_at = ? WHERE id = ?")
        .bind(w.held_minor)
        .bind(w.updated_at.as_micros())
        .bind(w.id.get())
        .execute(conn)
        .await
        .map_err(map_sqlx)?;
    Ok(())
}

/// Inserts transactions: the head of a multi-row `INSERT`, and one row (`?` for each column).
const INSERT_TRANSACTIONS: &str = "INSERT INTO transactions (kind, status, amount, currency,
     description, metadata, initiated_by, idempotency_key, fingerprint, created_at, completed_at)
     VALUES ";
const TRANSACTION_ROW: &str = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// What names a posting's new transaction inside the script that inserts it, after its own
/// `INSERT`: `LAST_INSERT_ID()` is the id that `INSERT` generated until another statement
/// generates one (inserting entries does not).
pub(crate) const NEW_TXN_ID: Lit<'static> = Lit::Sql("LAST_INSERT_ID()");

/// Appends one `INSERT` of the transactions of `postings` (at least one), in their order; each
/// posting's metadata is rendered into `metadata` (one slot per posting), which the literals
/// borrow.
fn push_transactions<'a>(
    script: &mut Script,
    postings: &[&'a Posting],
    metadata: &'a [Option<String>],
) -> Result<()> {
    let codes: Vec<CurrencyCode> = postings.iter().map(|p| p.currency.code()).collect();
    let mut args = Vec::with_capacity(postings.len() * 11);
    for ((p, metadata), code) in postings.iter().zip(metadata).zip(&codes) {
        args.extend([
            Lit::Int(p.kind.to_db()),
            Lit::Int(p.status.to_db()),
            Lit::Int(p.amount_minor),
            Lit::Ascii(code.as_str()),
            Lit::OptText(p.description.as_ref().map(Description::as_str)),
            Lit::OptText(metadata.as_deref()),
            Lit::Int(p.initiated_by.get()),
            Lit::Latin1(p.idempotency_key.as_str()),
            Lit::Bytes(&p.fingerprint.0),
            Lit::Int(p.created_at.as_micros()),
            Lit::OptInt(p.completed_at.map(Timestamp::as_micros)),
        ]);
    }
    let sql = values_sql(INSERT_TRANSACTIONS, TRANSACTION_ROW, postings.len());
    script.push(&sql, &args)?;
    Ok(())
}

/// The metadata of each posting as the JSON text it is stored as.
pub(crate) fn metadata_of(postings: &[&Posting]) -> Vec<Option<String>> {
    postings
        .iter()
        .map(|p| p.metadata.as_ref().map(Metadata::to_json))
        .collect()
}

/// Appends the inserts of a posting: its transaction, then its entries (in one statement),
/// which name the transaction by [`NEW_TXN_ID`], and the update of their wallets' heads. The
/// transaction's id is the first statement's `last_insert_id`.
pub(crate) fn push_posting(script: &mut Script, p: &Posting, windows: Windows) -> Result<()> {
    let metadata = metadata_of(&[p]);
    push_transactions(script, &[p], &metadata)?;
    push_entries(script, NEW_TXN_ID, &p.legs, windows)
}

/// Appends the insert of the transactions of `postings` (at least one) in one statement, then
/// of all their entries in another, each naming its transaction by the literal `txn_of` gives
/// for its posting's index (ids are generated by the server, and need not be consecutive), and
/// the update of every touched wallet to `heads`: their heads after the last posting, which
/// the caller computed from the rows it locked (see [`RowHeads::post`]).
pub(crate) fn push_postings<'a>(
    script: &mut Script,
    postings: &[&'a Posting],
    metadata: &'a [Option<String>],
    txn_of: &dyn Fn(usize) -> Lit<'a>,
    heads: &[(WalletId, RowHeads)],
) -> Result<()> {
    if postings.is_empty() {
        return Ok(());
    }
    push_transactions(script, postings, metadata)?;
    let rows: Vec<(Lit<'a>, &PostedLeg)> = postings
        .iter()
        .enumerate()
        .flat_map(|(i, p)| p.legs.iter().map(move |leg| (txn_of(i), leg)))
        .collect();
    push_entry_rows(script, &rows)?;
    push_heads(script, heads)
}

/// The id of the transaction a script's `INSERT` (its output `out`) generated.
pub(crate) fn inserted_txn(out: &Output) -> Result<TransactionId> {
    stored::txn_id(last_id(out.done.last_insert_id())?)
}

/// Inserts a transaction and its entries in one round trip; returns the transaction id.
pub(crate) async fn insert_posting(
    conn: &mut MySqlConnection,
    p: &Posting,
    windows: Windows,
) -> Result<TransactionId> {
    let mut script = Script::new();
    push_posting(&mut script, p, windows)?;
    let out = script.run(conn).await?;
    inserted_txn(
        out.first()
            .ok_or_else(|| Error::corrupt("no result of the insert"))?,
    )
}

/// The starts of the limit windows (day and month) of the command that posts: the wallet
/// rows keep the running debits before them (see `schema::V3`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Windows {
    /// The start of the day containing the command's `now`.
    pub(crate) day: Timestamp,
    /// The start of its month.
    pub(crate) month: Timestamp,
}

/// `CASE id WHEN ? THEN ? … END` for `n` wallets.
fn case_sql(n: usize) -> String {
    let mut sql = String::from("CASE id");
    for _ in 0..n {
        sql.push_str(" WHEN ? THEN ?");
    }
    sql.push_str(" END");
    sql
}

/// Appends the insert of the entries of transaction `txn` (an id or [`NEW_TXN_ID`]), in one
/// statement, and the update of their wallets' heads; nothing if there are none.
///
/// A wallet's anchor for a window (the running debits before it) is set when its previous
/// head lies before the window's start: then no entry of the wallet lies in the window, and
/// the previous head's debits are the anchor. The anchors are assigned before the head, from
/// the previous head, whether the server assigns left to right or all at once.
/// [`RowHeads::post`] does the same in memory.
pub(crate) fn push_entries(
    script: &mut Script,
    txn: Lit<'_>,
    legs: &[PostedLeg],
    windows: Windows,
) -> Result<()> {
    if legs.is_empty() {
        return Ok(());
    }
    let rows: Vec<(Lit<'_>, &PostedLeg)> = legs.iter().map(|leg| (txn, leg)).collect();
    push_entry_rows(script, &rows)?;

    let case = case_sql(legs.len());
    let sql = format!(
        "UPDATE wallets SET
             day_debits = IF(head_at < ?, head_debits, day_debits),
             day_from = IF(head_at < ?, ?, day_from),
             month_debits = IF(head_at < ?, head_debits, month_debits),
             month_from = IF(head_at < ?, ?, month_from),
             head_seq = {case}, head_balance = {case}, head_debits = {case}, head_at = {case}
         WHERE id IN ({})",
        placeholders(legs.len())
    );
    let (day, month) = (windows.day.as_micros(), windows.month.as_micros());
    let mut args = vec![
        Lit::Int(day),
        Lit::Int(day),
        Lit::Int(day),
        Lit::Int(month),
        Lit::Int(month),
        Lit::Int(month),
    ];
    let heads: [fn(&PostedLeg) -> i64; 4] = [
        |l| l.head.seq,
        |l| l.head.balance_minor,
        |l| l.head.debits_minor,
        |l| l.head.last_at.as_micros(),
    ];
    for head in heads {
        for leg in legs {
            args.extend([Lit::Int(leg.record.id.get()), Lit::Int(head(leg))]);
        }
    }
    args.extend(legs.iter().map(|l| Lit::Int(l.record.id.get())));
    script.push(&sql, &args)?;
    Ok(())
}

/// Appends one insert of `rows` (at least one): each entry with the literal naming its
/// transaction.
fn push_entry_rows(script: &mut Script, rows: &[(Lit<'_>, &PostedLeg)]) -> Result<()> {
    let sql = values_sql(
        "INSERT INTO entries (wallet_id, seq, txn_id, amount, balance_after, debits_after) VALUES ",
        "(?, ?, ?, ?, ?, ?)",
        rows.len(),
    );
    let mut args = Vec::with_capacity(rows.len() * 6);
    for (txn, leg) in rows {
        args.extend([
            Lit::Int(leg.record.id.get()),
            Lit::Int(leg.head.seq),
            *txn,
            Lit::Int(leg.amount_minor),
            Lit::Int(leg.head.balance_minor),
            Lit::Int(leg.head.debits_minor),
        ]);
    }
    script.push(&sql, &args)?;
    Ok(())
}

/// The head and limit-window anchors a wallet row keeps (see `schema::V3`), as stored: a
/// wallet without entries has head 0 (`at` 0 included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RowHeads {
    /// `head_seq`, `head_balance`, `head_debits`, `head_at`.
    pub(crate) seq: i64,
    pub(crate) balance: i64,
    pub(crate) debits: i64,
    pub(crate) at: i64,
    /// `day_from`, `day_debits`, `month_from`, `month_debits`.
    pub(crate) day_from: i64,
    pub(crate) day_debits: i64,
    pub(crate) month_from: i64,
    pub(crate) month_debits: i64,
}

impl RowHeads {
    /// The columns after `leg` is posted under `windows`: what [`push_entries`]' update does
    /// to the row, done in memory.
    pub(crate) fn post(&mut self, leg: &PostedLeg, windows: Windows) {
        let (day, month) = (windows.day.as_micros(), windows.month.as_micros());
        if self.at < day {
            self.day_debits = self.debits;
            self.day_from = day;
        }
        if self.at < month {
            self.month_debits = self.debits;
            self.month_from = month;
        }
        self.seq = leg.head.seq;
        self.balance = leg.head.balance_minor;
        self.debits = leg.head.debits_minor;
        self.at = leg.head.last_at.as_micros();
    }

    /// The anchors (window start, running debits before it) for the day and the month.
    pub(crate) fn anchors(&self) -> [(i64, i64); 2] {
        [
            (self.day_from, self.day_debits),
            (self.month_from, self.month_debits),
        ]
    }
}

/// How a column of [`RowHeads`] is read from it.
type HeadColumn = fn(&RowHeads) -> i64;

/// Appends one update that sets every column of [`RowHeads`] of each wallet of `heads` to the
/// given values; nothing if there are none.
fn push_heads(script: &mut Script, heads: &[(WalletId, RowHeads)]) -> Result<()> {
    if heads.is_empty() {
        return Ok(());
    }
    const COLUMNS: [(&str, HeadColumn); 8] = [
        ("head_seq", |h| h.seq),
        ("head_balance", |h| h.balance),
        ("head_debits", |h| h.debits),
        ("head_at", |h| h.at),
        ("day_from", |h| h.day_from),
        ("day_debits", |h| h.day_debits),
        ("month_from", |h| h.month_from),
        ("month_debits", |h| h.month_debits),
    ];
    let case = case_sql(heads.len());
    let sets: Vec<String> = COLUMNS
        .iter()
        .map(|(column, _)| format!("{column} = {case}"))
        .collect();
    let sql = format!(
        "UPDATE wallets SET {} WHERE id IN ({})",
        sets.join(", "),
        placeholders(heads.len())
    );
    let mut args = Vec::with_capacity(heads.len() * (2 * COLUMNS.len() + 1));
    for (_, value) in COLUMNS {
        for (id, h) in heads {
            args.extend([Lit::Int(id.get()), Lit::Int(value(h))]);
        }
    }
    args.extend(heads.iter().map(|(id, _)| Lit::Int(id.get())));
    script.push(&sql, &args)?;
    Ok(())
}

/// Inserts the entries of transaction `id` and updates their wallets' heads, in one round
/// trip.
pub(crate) async fn insert_entries(
    conn: &mut MySqlConnection,
    id: TransactionId,
    legs: &[PostedLeg],
    windows: Windows,
) -> Result<()> {
    let mut script = Script::new();
    push_entries(&mut script, Lit::Int(id.get()), legs, windows)?;
    if !script.is_empty() {
        script.run(conn).await?;
    }
    Ok(())
}

/// Pending records (holds, pending top-ups) matching `condition` (the SQL after `WHERE`,
/// with `?` for each of `binds`).
pub(crate) async fn pendings(
    conn: &mut MySqlConnection,
    condition: &str,
    binds: &[i64],
) -> Result<Vec<PendingRecord>> {
    let sql = format!(
        "SELECT txn_id, wallet_id, counter_id, amount, held, gateway_ref, expires_at, open
         FROM pending WHERE {condition}"
    );
    let mut q = sqlx::query_as::<_, PendingCols>(&sql);
    for b in binds {
        q = q.bind(*b);
    }
    let rows = q.fetch_all(conn).await.map_err(map_sqlx)?;
    rows.into_iter().map(stored::pending).collect()
}

/// The pending record of a transaction.
pub(crate) async fn pending_of(
    conn: &mut MySqlConnection,
    txn: TransactionId,
) -> Result<Option<PendingRecord>> {
    Ok(pendings(conn, "txn_id = ?", &[txn.get()])
        .await?
        .into_iter()
        .next())
}

/// A transaction with its legs, debits first.
pub(crate) async fn transaction(
    conn: &mut MySqlConnection,
    id: TransactionId,
) -> Result<Option<Transaction>> {
    Ok(transaction_and_pending(conn, id).await?.map(|(t, _)| t))
}

/// A transaction with its legs, and its pending record as stored (holds, pending top-ups).
pub(crate) async fn transaction_and_pending(
    conn: &mut MySqlConnection,
    id: TransactionId,
) -> Result<Option<(Transaction, Option<PendingRecord>)>> {
    let row: Option<TxnCols> = sqlx::query_as(
        "SELECT t.kind, t.status, t.amount, t.currency, c.exponent, t.description, t.metadata,
                t.initiated_by, t.idempotency_key, t.created_at, t.completed_at, t.refunded,
                t.original_id
         FROM transactions t JOIN currencies c ON c.code = t.currency WHERE t.id = ?",
    )
    .bind(id.get())
    .fetch_optional(&mut *conn)
    .await
    .map_err(map_sqlx)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let legs: Vec<LegCols> = sqlx::query_as(
        "SELECT e.wallet_id, e.seq, e.amount, e.balance_after, w.owner_id, w.kind, w.currency,
                c.exponent
         FROM entries e JOIN wallets w ON w.id = e.wallet_id
         JOIN currencies c ON c.code = w.currency
         WHERE e.txn_id = ? ORDER BY e.amount, e.wallet_id",
    )
    .bind(id.get())
    .fetch_all(&mut *conn)
    .await
    .map_err(map_sqlx)?;
    let legs = legs
        .into_iter()
        .map(stored::leg)
        .collect::<Result<Vec<_>>>()?;
    let pending = pending_of(conn, id).await?;
    let transaction = stored::transaction(id, row, legs, pending.as_ref())?;
    Ok(Some((transaction, pending)))
}

/// Posting time of entry `seq` of `wallet`.
async fn entry_time(conn: &mut MySqlConnection, wallet: WalletId, seq: i64) -> Result<Timestamp> {
    let at: Option<i64> = sqlx::query_scalar(
        "SELECT coalesce(t.completed_at, t.created_at) FROM entries e
         JOIN transactions t ON t.id = e.txn_id WHERE e.wallet_id = ? AND e.seq = ?",
    )
    .bind(wallet.get())
    .bind(seq)
    .fetch_optional(conn)
    .await
    .map_err(map_sqlx)?;
    at.map(Timestamp::from_micros)
        .ok_or_else(|| Error::corrupt(format!("entry {seq} of wallet {wallet} missing")))
}

/// The smallest `seq` in `1..=last` posted at or after `t` (`last + 1` if none): a binary
/// search over the wallet's chain, which is in time order.
pub(crate) async fn first_seq_at_or_after(
    conn: &mut MySqlConnection,
    wallet: WalletId,
    last: i64,
    t: Timestamp,
) -> Result<i64> {
    let (mut lo, mut hi) = (1i64, last + 1);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if entry_time(conn, wallet, mid).await? >= t {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok(lo)
}

/// Balance and running debits after entry `seq` (zero before the first entry).
pub(crate) async fn sums_at(
    conn: &mut MySqlConnection,
    wallet: WalletId,
    seq: i64,
) -> Result<(i64, i64)> {
    if seq < 1 {
        return Ok((0, 0));
    }
    let row: Option<(i64, i64)> = sqlx::query_as(
        "SELECT balance_after, debits_after FROM entries WHERE wallet_id = ? AND seq = ?",
    )
    .bind(wallet.get())
    .bind(seq)
    .fetch_optional(conn)
    .await
    .map_err(map_sqlx)?;
    row.ok_or_else(|| Error::corrupt(format!("entry {seq} of wallet {wallet} missing")))
}

/// Posted debits of `w` since `start` (the start of a limit window).
pub(crate) async fn debits_since(
    conn: &mut MySqlConnection,
    w: &WalletState,
    start: Timestamp,
) -> Result<i64> {
    if w.head.seq == 0 || w.head.last_at < start {
        return Ok(0);
    }
    let first = first_seq_at_or_after(conn, w.record.id, w.head.seq, start).await?;
    let before = sums_at(conn, w.record.id, first - 1).await?.1;
    // Running totals are kept modulo 2^64 (as in the SQLite backend); their difference is
    // exact as long as the window's debits fit in an i64.
    i64::try_from(
        w.head
            .debits_minor
            .cast_unsigned()
            .wrapping_sub(before.cast_unsigned()),
    )
    .map_err(|_| Error::AmountOverflow)
}
