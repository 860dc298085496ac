//! Commands: one InnoDB transaction each, row locks in ascending id order, retried on
//! deadlock.
//!
//! A command runs in four steps inside one transaction at READ COMMITTED:
//!
//! 1. **Discover and lock.** From what never changes (a merchant's wallet, a link's wallet, a
//!    transaction's legs, an owner's wallets) find every account the command may touch, and
//!    lock them with one `SELECT … ORDER BY id FOR UPDATE` (customer accounts first, then
//!    system accounts, each in ascending id order). Rows the decision reads that are not
//!    guarded by an account lock are locked too: the user being changed, the link being paid,
//!    the transaction being refunded or captured.
//! 2. **Load** the state the command needs. Every read runs after the locks are held, and at
//!    READ COMMITTED each read sees the latest committed data, so nothing a decision reads can
//!    change before the commit. If the loaded state names an account that is not locked yet (a
//!    hold that lapsed meanwhile, say), it is locked and the state loaded again.
//! 3. **Decide** with the pure `wallet_core::decide`, as every backend does.
//! 4. **Persist** the effects, the notifications and events, and the audit record; commit.
//!
//! Round trips are what a command's time goes to, so statements travel together where they
//! can (see [`crate::script`]): a command whose accounts it names itself (a transfer, say)
//! sends its `BEGIN`, its locks and all its reads in one round trip, and every command sends
//! its last writes with its `COMMIT` in one. A transfer is two round trips.
//!
//! When the server reports a deadlock or lock-wait timeout, or a concurrent transaction won
//! the race for a unique key (an idempotency key, a username), the transaction is rolled back
//! and the whole command runs again after a jittered exponential backoff. The second run sees
//! the winner's row, so its decision is a replay or the proper typed refusal.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use rand::RngExt;
use sqlx::mysql::MySqlRow;
use sqlx::{Executor, MySqlConnection, MySqlPool};
use wallet_core::command::{Command, Needs, Op, TxnLookup};
use wallet_core::currency::CurrencyCode;
use wallet_core::decide::{Decision, Effects, LedgerWrites, Posting, Shown, Spend, State, decide};
use wallet_core::ids::{TransactionId, WalletId};
use wallet_core::notify::Trail;
use wallet_core::store::Outcome;
use wallet_core::transaction::{Receipt, TransactionStatus};
use wallet_core::wallet::{SystemAccount, WalletState};
use wallet_core::{Error, ErrorKind, Result, Timestamp};

use crate::error::{DUPLICATE_DETAIL, map_sqlx};
use crate::queries::Windows;
use crate::script::{Lit, Script};
use crate::{Unfinished, payments, queries, users};

/// How the detail of a lost connection starts when the command had not begun.
pub(crate) const NOT_STARTED: &str = "connection lost before the command began";
/// Most entries of the anchor cache.
const ANCHORS_MAX: usize = 100_000;
/// Most load rounds for one command (each round locks accounts the previous one found).
const ROUNDS_MAX: usize = 4;
/// Shortest and longest backoff before a retry.
const BACKOFF_MIN: Duration = Duration::from_millis(1);
const BACKOFF_MAX: Duration = Duration::from_millis(200);

/// What the store remembers between commands: only facts that never change once written, so
/// any number of processes may share the database.
#[derive(Default)]
pub(crate) struct Shared {
    /// System account ids by kind and currency.
    systems: Mutex<HashMap<(SystemAccount, CurrencyCode), WalletId>>,
    /// Running debit totals of wallets at the start of a limit window (see
    /// [`queries::debits_since`]): fixed once the wallet has an entry in the window.
    anchors: Mutex<HashMap<(WalletId, i64), i64>>,
    /// Currencies' exponents: fixed once the currency is recorded.
    exponents: Mutex<HashMap<CurrencyCode, i64>>,
}

/// Runs a command to completion, retrying on contention.
pub(crate) async fn execute(
    pool: &MySqlPool,
    shared: &Shared,
    retries: u32,
    command: Command,
) -> Result<Outcome> {
    let mut conn = Unfinished::idle(pool.acquire().await.map_err(map_sqlx)?);
    let mut attempt = 0u32;
    let mut reconnects = 0u32;
    loop {
        match attempt_once(&mut conn, shared, &command).await {
            // The connection broke before the command could commit anything (its BEGIN, or
            // the round trip of its BEGIN, locks and reads, which holds no COMMIT): the server
            // rolls back whatever it ran, so take another connection. Dropping this one
            // closes it.
            Err(Error::Storage { detail })
                if detail.starts_with(NOT_STARTED) && reconnects < crate::RECONNECTS =>
            {
                reconnects += 1;
                conn = Unfinished::idle(pool.acquire().await.map_err(map_sqlx)?);
            }
            Err(e) if retriable(&e) && attempt < retries => {
                tracing::debug!(attempt, error = %e, "command retried");
                tokio::time::sleep(backoff(attempt)).await;
                attempt += 1;
            }
            Err(e) if retriable(&e) => {
                tracing::warn!(attempts = attempt + 1, "command gave up after retries");
                return Err(Error::StorageBusy);
            }
            other => return other,
        }
    }
}

/// Whether running the command again may succeed: the server rolled it back for contention,
/// or it lost a race for a unique key.
pub(crate) fn retriable(e: &Error) -> bool {
    match e {
        Error::StorageBusy => true,
        Error::Internal { detail } => detail.starts_with(DUPLICATE_DETAIL),
        _ => false,
    }
}

/// Exponential backoff with full jitter: uniform in `[min, min * 2^attempt]`, capped.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let cap = BACKOFF_MIN
        .saturating_mul(1u32 << attempt.min(16))
        .min(BACKOFF_MAX);
    let micros = u64::try_from(cap.as_micros()).unwrap_or(u64::MAX);
    let min = u64::try_from(BACKOFF_MIN.as_micros()).unwrap_or(1000);
    Duration::from_micros(rand::rng().random_range(min..=micros.max(min)))
}

/// A lost connection reported as the command not having begun: nothing it sent can have
/// committed, since the `COMMIT` was not sent yet.
pub(crate) fn not_started(e: Error) -> Error {
    if crate::error::is_lost(&e) {
        Error::Storage {
            detail: format!("{NOT_STARTED}: {e}"),
        }
    } else {
        e
    }
}

/// One try: a transaction that commits the command's effects, or rolls back and records the
/// refusal of an audited command.
///
/// The transaction is opened and ended with plain SQL (its `COMMIT` goes in the same round
/// trip as its last writes), so sqlx does not know of it: `conn` is marked unfinished while it
/// may be open, and a connection dropped in that state (the caller's future cancelled, say)
/// is closed, which makes the server roll back, instead of going back to the pool.
async fn attempt_once(
    conn: &mut Unfinished,
    shared: &Shared,
    command: &Command,
) -> Result<Outcome> {
    conn.start();
    let e = match run(&mut conn.conn, shared, command).await {
        Ok((outcome, None)) => {
            conn.finish();
            return Ok(outcome);
        }
        // A refusal whose effects are kept (a lapsed hold released as its capture is
        // refused): committed with them; answer with the refusal.
        Ok((_, Some(refusal))) => {
            conn.finish();
            return Err(refusal);
        }
        Err(e) => e,
    };
    // Rolling back fails only if the connection is gone, and then the server has rolled back
    // already (and the connection is closed, not reused). After a deadlock the server has
    // rolled back too; after other errors the transaction is still open.
    if !crate::error::is_lost(&e) && conn.conn.execute("ROLLBACK").await.is_ok() {
        conn.finish();
    }
    if retriable(&e) || e.kind() == ErrorKind::Unavailable {
        return Err(e);
    }
    // A refused admin or security action is recorded, without its effects.
    if let Some(note) = command.audit() {
        users::insert_audit(
            &mut conn.conn,
            command.now,
            command.actor.map(|a| a.user),
            &note,
            e.code(),
        )
        .await?;
    }
    Err(e)
}

/// Runs the command in one transaction, committed unless it fails.
async fn run(conn: &mut MySqlConnection, shared: &Shared, command: &Command) -> Result<Applied> {
    let mut locks = Locks::default();
    let ending = match one_round_needs(command) {
        Some(needs) => {
            let state = gather(conn, shared, command, &needs, &mut locks).await?;
            conclude(conn, command, &state).await?
        }
        None => {
            conn.execute("BEGIN")
                .await
                .map_err(|e| not_started(map_sqlx(e)))?;
            apply(conn, shared, command, &mut locks).await?
        }
    };
    write(conn, command, ending, true).await
}

/// Accounts this transaction has locked.
#[derive(Default)]
struct Locks {
    wallets: BTreeSet<WalletId>,
}

/// The ids as literals.
fn ints(ids: &[WalletId]) -> Vec<Lit<'static>> {
    ids.iter().map(|id| Lit::Int(id.get())).collect()
}

impl Locks {
    /// Locks the accounts of `ids` not locked yet, in ascending id order.
    async fn lock(&mut self, conn: &mut MySqlConnection, ids: &BTreeSet<WalletId>) -> Result<()> {
        let new: Vec<WalletId> = ids.difference(&self.wallets).copied().collect();
        if new.is_empty() {
            return Ok(());
        }
        let sql = queries::lock_wallets_sql(new.len());
        let mut q = sqlx::query(&sql);
        for id in &new {
            q = q.bind(id.get());
        }
        q.fetch_all(&mut *conn).await.map_err(map_sqlx)?;
        self.wallets.extend(new);
        Ok(())
    }
}

/// Every account id the loaded state holds.
fn accounts_in(state: &State) -> BTreeSet<WalletId> {
    state
        .wallets
        .iter()
        .chain(state.systems.iter())
        .flatten()
        .chain(state.owner_wallets.iter())
        .map(|w| w.record.id)
        .chain(state.due.iter().map(|p| p.wallet))
        .collect()
}

/// What a command has decided, and the outcome it answers with (and a refusal whose effects
/// are kept).
type Applied = (Outcome, Option<Error>);

/// What is left to write when a command has decided: written with its `COMMIT`, in one round
/// trip.
enum Ending {
    /// The outcome is known; the trail is left to write.
    Known(Applied, Trail),
    /// A completed posting, not written yet, the limit windows of its command, and its trail,
    /// which names the transaction by [`placeholder`]: the receipt gets the id the
    /// transaction's insert generates.
    Posting(Posting, Windows, Trail),
}

/// The id a trail names a posting's transaction by until its insert has generated the real
/// one (see [`payments::NewTxn`]): a batch's first posting's ([`crate::batch::placeholder`]).
fn placeholder() -> Result<TransactionId> {
    crate::batch::placeholder(0)
}

/// Writes what the command left to write, in one round trip, with the `COMMIT` if `commit`.
async fn write(
    conn: &mut MySqlConnection,
    command: &Command,
    ending: Ending,
    commit: bool,
) -> Result<Applied> {
    let mut script = Script::new();
    match &ending {
        Ending::Known(_, trail) => payments::push_trail(
            &mut script,
            command.now,
            &trail.notifications,
            &trail.events,
            None,
        )?,
        Ending::Posting(p, windows, trail) => {
            queries::push_posting(&mut script, p, *windows)?;
            let new = payments::NewTxn {
                placeholder: placeholder()?,
                by: p.initiated_by,
                key: &p.idempotency_key,
            };
            payments::push_trail(
                &mut script,
                command.now,
                &trail.notifications,
                &trail.events,
                Some(&new),
            )?;
        }
    }
    if commit {
        script.push("COMMIT", &[])?;
    }
    let out = if script.is_empty() {
        Vec::new()
    } else {
        script.run(conn).await?
    };
    Ok(match ending {
        Ending::Known(applied, _) => applied,
        Ending::Posting(p, ..) => {
            // The posting's insert is the script's first statement.
            let first = out
                .first()
                .ok_or_else(|| Error::corrupt("a posting's insert returned nothing"))?;
            let id = queries::inserted_txn(first)?;
            (
                Outcome::Receipt(Receipt {
                    transaction: p.to_transaction(id),
                    replayed: false,
                }),
                None,
            )
        }
    })
}

/// Steps 1 to 3 for any command, one statement at a time, in a transaction already begun; a
/// batch applies each of its operations in turn and writes it before the next one loads.
async fn apply(
    conn: &mut MySqlConnection,
    shared: &Shared,
    command: &Command,
    locks: &mut Locks,
) -> Result<Ending> {
    if let Op::Batch(ops) = &command.op {
        wallet_core::decide::check_batch(ops)?;
        let mut outcomes = Vec::with_capacity(ops.len());
        for op in ops {
            let sub = command.with_op(op.clone());
            // Each operation sees the ones before it: they are in this same transaction.
            let ending = Box::pin(apply(conn, shared, &sub, locks)).await?;
            let (outcome, refusal) = write(conn, &sub, ending, false).await?;
            if let Some(e) = refusal {
                return Err(e);
            }
            outcomes.push(outcome);
        }
        return Ok(Ending::Known(
            (Outcome::Batch(outcomes), None),
            Trail::default(),
        ));
    }
    let needs = command.needs();
    prelock(conn, shared, &needs, locks).await?;
    let mut state = load(conn, shared, command, &needs).await?;
    for _ in 0..ROUNDS_MAX {
        let missing: BTreeSet<WalletId> = accounts_in(&state)
            .difference(&locks.wallets)
            .copied()
            .collect();
        if missing.is_empty() {
            break;
        }
        locks.lock(conn, &missing).await?;
        state = load(conn, shared, command, &needs).await?;
    }
    if !accounts_in(&state).is_subset(&locks.wallets) {
        // The accounts kept changing under us: let the retry loop try again later.
        return Err(Error::StorageBusy);
    }
    conclude(conn, command, &state).await
}

/// What a command needs, if it is a command whose accounts are all named by the command itself
/// (a transfer, say): then its `BEGIN`, its locks and all its reads go to the server in one
/// round trip (see [`gather`]). `None` for any other command.
pub(crate) fn one_round_needs(command: &Command) -> Option<Needs> {
    if matches!(command.op, Op::Batch(_)) {
        return None;
    }
    let needs = command.needs();
    // Exactly what `gather` loads, nothing else: a command that needs more goes the other way.
    let gathered = Needs {
        wallets: needs.wallets.clone(),
        actor: needs.actor,
        idempotency: needs.idempotency.clone(),
        expired_holds: needs.expired_holds,
        spend: needs.spend,
        limits: needs.limits,
        ..Needs::default()
    };
    (gathered == needs && !needs.wallets.is_empty()).then_some(needs)
}

/// Steps 1 and 2 in one round trip, for the commands [`one_round_needs`] accepts: `BEGIN`,
/// the lock of the command's accounts (ascending id order), which reads them in full (heads
/// and limit-window anchors included, see `schema::V3`), then the actor and the idempotency
/// record and the sender's limits, all in one script. Lapsed holds, a currency's exponent not
/// cached yet and spend windows the anchors do not settle are read afterwards, in the same
/// transaction.
async fn gather(
    conn: &mut MySqlConnection,
    shared: &Shared,
    command: &Command,
    needs: &Needs,
    locks: &mut Locks,
) -> Result<State> {
    let ids: Vec<WalletId> = needs
        .wallets
        .iter()
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut script = Script::new();
    script.push("BEGIN", &[])?;
    script.push(&queries::lock_and_read_wallets_sql(ids.len()), &ints(&ids))?;
    let combined = match (needs.actor, &needs.idempotency) {
        (Some(actor), Some((submitter, key))) if actor == *submitter => {
            script.push(
                users::USER_AND_EXISTING,
                &[Lit::Latin1(key.as_str()), Lit::Int(actor.get())],
            )?;
            true
        }
        (Some(actor), _) => {
            script.push(users::USER_BY_ID, &[Lit::Int(actor.get())])?;
            false
        }
        (None, _) => false,
    };
    if let Some((submitter, key)) = &needs.idempotency
        && !combined
    {
        script.push(
            queries::EXISTING,
            &[Lit::Int(submitter.get()), Lit::Latin1(key.as_str())],
        )?;
    }
    let limited = needs.limits.and_then(|i| needs.wallets.get(i)).copied();
    if let Some(wallet) = limited {
        script.push(payments::LIMITS, &[Lit::Int(wallet.get())])?;
    }

    let mut out = script.run(conn).await.map_err(not_started)?.into_iter();
    let mut next = || {
        out.next()
            .ok_or_else(|| Error::corrupt("a script returned fewer results than statements"))
    };
    next()?; // BEGIN
    let locked = next()?.rows;
    locks.wallets.extend(ids.iter().copied());
    let mut state = State::default();
    if needs.actor.is_some() {
        let rows = next()?.rows;
        if combined {
            (state.actor, state.existing) = users::user_and_existing_of(rows.first())?;
        } else {
            state.actor = users::user_of(rows.first())?;
        }
    }
    if needs.idempotency.is_some() && !combined {
        state.existing = queries::existing_of(first_as(&next()?.rows)?)?;
    }
    let limits = match limited {
        Some(_) => first_as(&next()?.rows)?,
        None => None,
    };
    let mut named = Vec::with_capacity(locked.len());
    let mut anchors = HashMap::new();
    for row in &locked {
        let exponent = exponent(conn, shared, &queries::locked_currency(row)?).await?;
        let (wallet, stored) = queries::locked_wallet(row, exponent)?;
        anchors.insert(wallet.record.id, stored);
        named.push(wallet);
    }
    state.wallets = in_order(&needs.wallets, &named);
    // As `load`: the limits of a wallet that exists.
    if let Some(index) = needs.limits
        && let Some(Some(_)) = state.wallets.get(index)
    {
        state.limits = payments::limits_of(limits);
    }
    let spender = needs.spend.and_then(|i| needs.wallets.get(i));
    let stored = spender
        .and_then(|w| anchors.get(w))
        .copied()
        .unwrap_or_default();
    load_expired(conn, command, needs, &mut state).await?;
    load_spend(conn, shared, command, needs, &mut state, &stored).await?;
    if !accounts_in(&state).is_subset(&locks.wallets) {
        // Cannot happen for the commands gathered here (their accounts are the ones named),
        // but a decision never runs on accounts it has not locked.
        return Err(Error::StorageBusy);
    }
    Ok(state)
}

/// The exponent of a currency (cached: it never changes once recorded).
pub(crate) async fn exponent(
    conn: &mut MySqlConnection,
    shared: &Shared,
    code: &str,
) -> Result<i64> {
    let code = CurrencyCode::new(code).map_err(wallet_core::stored::corrupt("currency code"))?;
    if let Some(e) = lock_map(&shared.exponents).get(&code) {
        return Ok(*e);
    }
    let e = queries::stored_exponent(conn, code)
        .await?
        .ok_or_else(|| Error::corrupt("a wallet's currency is not recorded"))?;
    lock_map(&shared.exponents).insert(code, i64::from(e));
    Ok(i64::from(e))
}

/// The first row as a tuple, if any.
pub(crate) fn first_as<T>(rows: &[MySqlRow]) -> Result<Option<T>>
where
    T: for<'r> sqlx::FromRow<'r, MySqlRow>,
{
    rows.first()
        .map(|row| T::from_row(row).map_err(map_sqlx))
        .transpose()
}

/// `found` in the order `ids` names them, `None` for each missing one.
pub(crate) fn in_order(ids: &[WalletId], found: &[WalletState]) -> Vec<Option<WalletState>> {
    ids.iter()
        .map(|id| found.iter().find(|w| w.record.id == *id).cloned())
        .collect()
}

/// Step 3: decides, records the audit note, and writes the effects, except those of a
/// completed posting, which are left to [`write`] with the trail.
async fn conclude(conn: &mut MySqlConnection, command: &Command, state: &State) -> Result<Ending> {
    let decision = decide(command, state)?;
    let outcome = match (&command.op, &decision) {
        (Op::Audit(record), _) => record.outcome,
        (_, Decision::Refuse(_, e)) => e.code(),
        _ => wallet_core::audit::OUTCOME_OK,
    };
    if let Some(note) = command.audit() {
        users::insert_audit(
            conn,
            command.now,
            command.actor.map(|a| a.user),
            &note,
            outcome,
        )
        .await?;
    }
    let (mut effects, refusal) = match decision {
        Decision::Replay(id) => {
            let transaction = queries::transaction(conn, id)
                .await?
                .ok_or_else(|| Error::corrupt("idempotency record without its transaction"))?;
            // A repeat changes nothing and leaves no trail.
            return Ok(Ending::Known(
                (
                    Outcome::Receipt(Receipt {
                        transaction,
                        replayed: true,
                    }),
                    None,
                ),
                Trail::default(),
            ));
        }
        Decision::Unchanged(wallet) => {
            return Ok(Ending::Known(
                (Outcome::Wallet(wallet), None),
                Trail::default(),
            ));
        }
        Decision::Done(outcome) => return Ok(Ending::Known((outcome, None), Trail::default())),
        Decision::Apply(effects) => (effects, None),
        Decision::Refuse(effects, e) => (effects, Some(e)),
    };
    // A completed posting whose trail refers to it by id only is written with its trail and
    // the COMMIT: the trail is built as it will be, naming the transaction by the placeholder
    // until the insert gives the id.
    let ready = match (&refusal, &effects) {
        (None, Effects::Ledger(writes)) => completed_posting(writes)
            .map(|p| -> Result<Trail> {
                let shown = Outcome::Receipt(Receipt {
                    transaction: p.to_transaction(placeholder()?),
                    replayed: false,
                });
                Ok(wallet_core::notify::trail(command, &shown))
            })
            .transpose()?
            .filter(|t| payments::by_reference_only(&t.notifications, &t.events)),
        _ => None,
    };
    if let Some(trail) = ready
        && let Effects::Ledger(writes) = &mut effects
        && let Some(p) = writes.new.take()
    {
        return Ok(Ending::Posting(p, windows(command)?, trail));
    }
    let outcome = persist(conn, effects, windows(command)?).await?;
    let trail = wallet_core::notify::trail(command, &outcome);
    Ok(Ending::Known((outcome, refusal), trail))
}

/// The new posting of ledger writes that consist of it alone, completed, and show it.
pub(crate) fn completed_posting(w: &LedgerWrites) -> Option<&Posting> {
    let alone = w.new_pending.is_none()
        && w.new_order.is_none()
        && w.link_paid.is_none()
        && w.refund_of.is_none()
        && w.updates.is_empty()
        && w.records.is_empty()
        && matches!(w.shown, Shown::New);
    w.new
        .as_ref()
        .filter(|p| alone && p.status == TransactionStatus::Completed)
}

/// The id of a currency's system account of `kind` (cached: it never changes).
async fn system_id(
    conn: &mut MySqlConnection,
    shared: &Shared,
    kind: SystemAccount,
    code: CurrencyCode,
) -> Result<Option<WalletId>> {
    if let Some(id) = lock_map(&shared.systems).get(&(kind, code)) {
        return Ok(Some(*id));
    }
    let id = queries::system_account(conn, kind, code).await?;
    if let Some(id) = id {
        lock_map(&shared.systems).insert((kind, code), id);
    }
    Ok(id)
}

pub(crate) fn lock_map<K, V>(m: &Mutex<HashMap<K, V>>) -> std::sync::MutexGuard<'_, HashMap<K, V>> {
    // A panic while holding the guard cannot leave a half-made entry (inserts are atomic), so
    // a poisoned map is still good.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Step 1: locks the rows the command's decision depends on, from what never changes.
async fn prelock(
    conn: &mut MySqlConnection,
    shared: &Shared,
    needs: &Needs,
    locks: &mut Locks,
) -> Result<()> {
    if let Some(id) = needs.user {
        users::lock_user(conn, id).await?;
    }
    if let Some(owner) = needs.methods_of {
        users::lock_user(conn, owner).await?;
    }
    if let Some(id) = needs.payment_method
        && let Some(m) = users::method(conn, id).await?
    {
        users::lock_user(conn, m.owner).await?;
    }
    if needs.superusers {
        users::lock_superusers(conn).await?;
    }
    let mut customers: BTreeSet<WalletId> = needs.wallets.iter().copied().collect();
    let mut systems = BTreeSet::new();
    if let Some(owner) = needs.owner_wallets {
        customers.extend(
            queries::wallets_of(conn, owner)
                .await?
                .iter()
                .map(|w| w.record.id),
        );
    }
    if let Some((id, _)) = &needs.merchant
        && let Some(m) = payments::merchant(conn, *id).await?
    {
        customers.insert(m.wallet);
    }
    if let Some(code) = &needs.link
        && let Some(l) = payments::link(conn, code, true).await?
    {
        customers.insert(l.wallet);
    }
    if let Some(lookup) = &needs.transaction {
        let id = match lookup {
            TxnLookup::Id(id) => Some(*id),
            TxnLookup::Gateway(reference) => payments::txn_of_gateway(conn, reference).await?,
        };
        if let Some(id) = id {
            // Serializes refunds, captures and callbacks of one transaction.
            sqlx::query("SELECT id FROM transactions WHERE id = ? FOR UPDATE")
                .bind(id.get())
                .fetch_optional(&mut *conn)
                .await
                .map_err(map_sqlx)?;
            if let Some((t, pending)) = queries::transaction_and_pending(conn, id).await? {
                customers.extend(t.legs.iter().map(|l| l.wallet));
                if let Some(p) = &pending {
                    customers.insert(p.wallet);
                    customers.extend(p.counter);
                }
                for kind in SystemAccount::ALL {
                    systems
                        .extend(system_id(conn, shared, *kind, t.amount.currency().code()).await?);
                }
            }
        }
    }
    // System accounts found among the legs are locked with the other system accounts.
    let found_systems: Vec<WalletId> = customers.intersection(&systems).copied().collect();
    for id in found_systems {
        customers.remove(&id);
    }
    locks.lock(conn, &customers).await?;
    if !needs.systems.is_empty() {
        let mut currencies = Vec::new();
        for (kind, index) in &needs.systems {
            if let Some(id) = needs.wallets.get(*index) {
                currencies.push((*kind, *id));
            }
        }
        for (kind, wallet) in currencies {
            let code: Option<String> =
                sqlx::query_scalar("SELECT currency FROM wallets WHERE id = ?")
                    .bind(wallet.get())
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(map_sqlx)?;
            if let Some(code) = code {
                let code = CurrencyCode::new(&code)
                    .map_err(wallet_core::stored::corrupt("currency code"))?;
                systems.extend(system_id(conn, shared, kind, code).await?);
            }
        }
    }
    locks.lock(conn, &systems).await
}

/// Appends wallet `id` to `state.wallets` unless it is there already.
async fn add_wallet(conn: &mut MySqlConnection, state: &mut State, id: WalletId) -> Result<()> {
    if !state.wallets.iter().flatten().any(|w| w.record.id == id) {
        let w = queries::wallet(conn, id).await?;
        state.wallets.push(w);
    }
    Ok(())
}

/// Posted debits of `w` since `start`, if known without reading entries: none posted since
/// (its head lies before `start`), or from the anchor its row keeps for a window starting at
/// `start` (`stored`: window starts and the debits before them, if the row was read with them),
/// or from the anchor cache.
pub(crate) fn spent_known(
    shared: &Shared,
    w: &WalletState,
    start: Timestamp,
    stored: &[(i64, i64)],
) -> Option<Result<i64>> {
    if w.head.seq == 0 || w.head.last_at < start {
        return Some(Ok(0));
    }
    let kept = stored
        .iter()
        .find(|(from, _)| *from == start.as_micros())
        .map(|(_, debits)| *debits);
    let anchor = kept.or_else(|| {
        lock_map(&shared.anchors)
            .get(&(w.record.id, start.as_micros()))
            .copied()
    })?;
    Some(debits_after(w, anchor))
}

/// The debits of `w` after the running total `anchor`.
fn debits_after(w: &WalletState, anchor: i64) -> Result<i64> {
    i64::try_from(
        w.head
            .debits_minor
            .cast_unsigned()
            .wrapping_sub(anchor.cast_unsigned()),
    )
    .map_err(|_| Error::AmountOverflow)
}

/// Posted debits of `w` since `start`: as [`spent_known`], else by a search of its entries
/// (whose result is cached).
async fn spent_since(
    conn: &mut MySqlConnection,
    shared: &Shared,
    w: &WalletState,
    start: Timestamp,
    stored: &[(i64, i64)],
) -> Result<i64> {
    if let Some(spent) = spent_known(shared, w, start, stored) {
        return spent;
    }
    let first = queries::first_seq_at_or_after(conn, w.record.id, w.head.seq, start).await?;
    let anchor = queries::sums_at(conn, w.record.id, first - 1).await?.1;
    let mut anchors = lock_map(&shared.anchors);
    if anchors.len() >= ANCHORS_MAX {
        anchors.clear();
    }
    anchors.insert((w.record.id, start.as_micros()), anchor);
    drop(anchors);
    debits_after(w, anchor)
}

/// The starts of the day and the month containing the command's `now`: its limit windows.
pub(crate) fn windows(command: &Command) -> Result<Windows> {
    let zone = command.config.time_zone();
    Ok(Windows {
        day: zone.period_start(command.now, wallet_core::calendar::Granularity::Day)?,
        month: zone.period_start(command.now, wallet_core::calendar::Granularity::Month)?,
    })
}

/// The lapsed holds of the wallet `needs` names, if it holds any.
async fn load_expired(
    conn: &mut MySqlConnection,
    command: &Command,
    needs: &Needs,
    state: &mut State,
) -> Result<()> {
    if let Some(index) = needs.expired_holds
        && let Some(Some(w)) = state.wallets.get(index)
        && w.record.held_minor > 0
    {
        state.expired = payments::expired_of(conn, w.record.id, command.now, 100).await?;
    }
    Ok(())
}

/// What the wallet `needs` names has spent in its day and month (`stored`: the anchors its
/// row keeps, if read).
pub(crate) async fn load_spend(
    conn: &mut MySqlConnection,
    shared: &Shared,
    command: &Command,
    needs: &Needs,
    state: &mut State,
    stored: &[(i64, i64)],
) -> Result<()> {
    if let Some(index) = needs.spend
        && let Some(Some(w)) = state.wallets.get(index).cloned()
    {
        let windows = windows(command)?;
        state.spend = Some(Spend {
            today: spent_since(conn, shared, &w, windows.day, stored).await?,
            month: spent_since(conn, shared, &w, windows.month, stored).await?,
        });
    }
    Ok(())
}

/// Step 2: the state the command needs, read after its locks are held.
async fn load(
    conn: &mut MySqlConnection,
    shared: &Shared,
    command: &Command,
    needs: &Needs,
) -> Result<State> {
    let now = command.now;
    let mut state = State::default();
    // A money movement reads its actor and its idempotency record in one round trip.
    let mut existing_loaded = false;
    if let Some(id) = needs.actor {
        match &needs.idempotency {
            Some((submitter, key)) if *submitter == id => {
                (state.actor, state.existing) = users::user_and_existing(conn, id, key).await?;
                existing_loaded = true;
            }
            _ => state.actor = users::user(conn, id).await?,
        }
    }
    if let Some(id) = needs.user {
        state.user = users::user(conn, id).await?;
    }
    if let Some((username, email)) = &needs.logins {
        (state.username_owner, state.email_owner) =
            users::login_owners(conn, username.as_ref(), email.as_ref()).await?;
    }
    if needs.superusers {
        state.active_superusers = users::active_superusers(conn).await?;
    }
    if let Some(id) = needs.payment_method {
        state.payment_method = users::method(conn, id).await?;
    }
    if let Some(owner) = needs.methods_of {
        state.methods = users::methods_of(conn, owner).await?;
    }
    if let Some(owner) = needs.owner_wallets {
        state.owner_wallets = queries::wallets_of(conn, owner).await?;
    }
    // The command's own wallets in one statement, in the order it names them.
    let named = queries::wallets(conn, &needs.wallets).await?;
    state.wallets = in_order(&needs.wallets, &named);
    if let Some((id, order)) = &needs.merchant {
        state.merchant = payments::merchant(conn, *id).await?;
        if let Some(m) = &state.merchant {
            let wallet = m.wallet;
            add_wallet(conn, &mut state, wallet).await?;
            if let Some(order) = order {
                state.order_paid = payments::order_paid(conn, *id, order).await?;
            }
        }
    }
    if let Some(code) = &needs.link {
        state.link = payments::link(conn, code, false).await?;
        if let Some(wallet) = state.link.as_ref().map(|l| l.wallet) {
            add_wallet(conn, &mut state, wallet).await?;
        }
    }
    for (kind, index) in &needs.systems {
        let code = match state.wallets.get(*index) {
            Some(Some(w)) => Some(w.record.currency.code()),
            _ => None,
        };
        let account = match code {
            Some(code) => match system_id(conn, shared, *kind, code).await? {
                Some(id) => queries::wallet(conn, id).await?,
                None => None,
            },
            None => None,
        };
        state.systems.push(account);
    }
    if let Some(lookup) = &needs.transaction {
        let id = match lookup {
            TxnLookup::Id(id) => Some(*id),
            TxnLookup::Gateway(reference) => payments::txn_of_gateway(conn, reference).await?,
        };
        let found = match id {
            Some(id) => queries::transaction_and_pending(conn, id).await?,
            None => None,
        };
        if let Some((t, pending)) = found {
            let stored = wallet_core::stored::stored_txn(&t, pending);
            let mut ids: Vec<WalletId> = stored.legs.iter().map(|(w, _)| *w).collect();
            if let Some(p) = &stored.pending {
                ids.push(p.wallet);
                ids.extend(p.counter);
            }
            for kind in SystemAccount::ALL {
                ids.extend(system_id(conn, shared, *kind, stored.currency.code()).await?);
            }
            ids.sort();
            ids.dedup();
            for id in ids {
                add_wallet(conn, &mut state, id).await?;
            }
            state.transaction = Some(stored);
        }
    }
    load_expired(conn, command, needs, &mut state).await?;
    if let Some(index) = needs.limits
        && let Some(Some(w)) = state.wallets.get(index)
    {
        state.limits = payments::limits(conn, w.record.id).await?;
    }
    load_spend(conn, shared, command, needs, &mut state, &[]).await?;
    if let Some(limit) = needs.due {
        state.due = payments::due(conn, now, limit).await?;
        let wallets: Vec<WalletId> = state.due.iter().map(|p| p.wallet).collect();
        for id in wallets {
            add_wallet(conn, &mut state, id).await?;
        }
    }
    if let Some(wallet) = needs.merchant_of {
        state.merchant_of = payments::merchant_of(conn, wallet).await?;
    }
    if let Some((user, key)) = &needs.link_key {
        state.link_existing = payments::link_by_key(conn, *user, key).await?;
    }
    if let Some((actor, key)) = &needs.idempotency
        && !existing_loaded
    {
        state.existing = queries::existing(conn, *actor, key).await?;
    }
    if let Some((owner, kind, code)) = needs.slot {
        state.slot = queries::slot(conn, owner, kind, code).await?;
    }
    if let Some(code) = needs.currency {
        state.stored_exponent = queries::stored_exponent(conn, code).await?;
    }
    Ok(state)
}

/// Step 4: writes the effects of a decision.
async fn persist(
    conn: &mut MySqlConnection,
    effects: Effects,
    windows: Windows,
) -> Result<Outcome> {
    Ok(match effects {
        Effects::OpenWallet(new) => {
            if new.register_currency {
                queries::register_currency(conn, new.currency, new.created_at).await?;
            }
            let id = queries::insert_wallet(conn, &new).await?;
            Outcome::Wallet(WalletState::new_empty(new.record(id)))
        }
        Effects::SetStatus(state) => {
            queries::update_status(conn, &state.record).await?;
            Outcome::Wallet(state)
        }
        Effects::Post(posting) => {
            let id = queries::insert_posting(conn, &posting, windows).await?;
            Outcome::Receipt(Receipt {
                transaction: posting.to_transaction(id),
                replayed: false,
            })
        }
        Effects::InsertUser(new) => {
            let id = users::insert_user(conn, &new.record).await?;
            Outcome::User(wallet_core::identity::UserRecord { id, ..new.record })
        }
        Effects::UpdateUser(record) => {
            users::update_user(conn, &record).await?;
            Outcome::User(record)
        }
        Effects::DeleteUser { user, wallets } => {
            for w in &wallets {
                queries::update_status(conn, &w.record).await?;
            }
            users::update_user(conn, &user).await?;
            users::delete_methods_of(conn, user.id).await?;
            Outcome::User(user)
        }
        Effects::Nothing => Outcome::Done,
        Effects::InsertPaymentMethod(m) => {
            Outcome::PaymentMethod(users::insert_method(conn, &m).await?)
        }
        Effects::UpdatePaymentMethod(m) => {
            users::update_method(conn, &m).await?;
            Outcome::PaymentMethod(m)
        }
        Effects::DeletePaymentMethod(id) => {
            users::delete_method(conn, id).await?;
            Outcome::Done
        }
        Effects::Ledger(writes) => persist_ledger(conn, *writes, windows).await?,
        Effects::SetLimits(wallet, limits) => {
            payments::set_limits(conn, wallet, limits.as_ref()).await?;
            Outcome::Done
        }
        Effects::InsertMerchant(m) => Outcome::Merchant(payments::insert_merchant(conn, &m).await?),
        Effects::InsertLink(l) => Outcome::Link(payments::insert_link(conn, &l).await?.to_link()),
        Effects::UpdateLink(l) => {
            payments::update_link(conn, l.id, l.status, l.paid_by).await?;
            Outcome::Link(l.to_link())
        }
        Effects::MarkRead(m) => Outcome::Count(payments::mark_read(conn, &m).await?),
    })
}

async fn persist_ledger(
    conn: &mut MySqlConnection,
    w: LedgerWrites,
    windows: Windows,
) -> Result<Outcome> {
    let new_id = match &w.new {
        Some(p) => Some(queries::insert_posting(conn, p, windows).await?),
        None => None,
    };
    if let Some(id) = new_id {
        if let Some(p) = &w.new_pending {
            payments::insert_pending(conn, id, p).await?;
        }
        if let Some((merchant, order)) = &w.new_order {
            payments::insert_order(conn, *merchant, order, id).await?;
        }
        if let Some(link) = w.link_paid {
            payments::update_link(conn, link, wallet_core::links::LinkStatus::Paid, Some(id))
                .await?;
        }
        if let Some(original) = w.refund_of {
            payments::set_original(conn, id, original).await?;
        }
    }
    for u in &w.updates {
        payments::update_txn(conn, u, windows).await?;
    }
    for r in &w.records {
        queries::update_held(conn, r).await?;
    }
    Ok(match (w.shown, &w.new, new_id) {
        (Shown::Count(n), _, _) => Outcome::Count(n),
        // The common case, built without reading back what was just written.
        (Shown::New, Some(p), Some(id))
            if p.status == TransactionStatus::Completed && w.refund_of.is_none() =>
        {
            Outcome::Receipt(Receipt {
                transaction: p.to_transaction(id),
                replayed: false,
            })
        }
        (shown, _, _) => {
            let id = match (shown, new_id) {
                (Shown::Existing(id), _) => id,
                (_, Some(id)) => id,
                _ => return Err(Error::corrupt("a receipt without a transaction")),
            };
            let transaction = queries::transaction(conn, id)
                .await?
                .ok_or_else(|| Error::corrupt("transaction vanished"))?;
            Outcome::Receipt(Receipt {
                transaction,
                replayed: false,
            })
        }
    })
}
