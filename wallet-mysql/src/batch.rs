//! One group commit: several money commands in one InnoDB transaction, in two round trips.
//!
//! 1. **Read, locked.** One multi-statement query: `BEGIN`; the lock of every account the
//!    commands name, with one `SELECT … WHERE id IN (…) ORDER BY id FOR UPDATE` over their
//!    union (ascending id order, so batches of several processes cannot deadlock on wallet
//!    rows), which reads them in full, heads included; the actors' rows; the transactions
//!    already stored under the commands' idempotency keys; the senders' limits.
//! 2. **Decide** each command in arrival order with `wallet_core::decide`, each against the
//!    state the earlier commands of the batch left (their heads, their limit-window anchors,
//!    their idempotency keys): [`Staged`]. A refusal changes nothing. A command whose decision
//!    needs more than a completed posting (or reads more than step 1 read) is left to the
//!    one-command path, after the batch: [`Answer::Deferred`].
//! 3. **Write and commit.** One multi-statement query: every transaction in one multi-row
//!    `INSERT`, every entry in another, every touched wallet's head in one `UPDATE`, the
//!    notifications and events, the read of the new transactions' ids, `COMMIT`.
//!
//! Transaction ids come from `AUTO_INCREMENT`, and a multi-row insert's ids need not be
//! consecutive (`innodb_autoinc_lock_mode = 2`, TiDB's cached ranges): so nothing assumes
//! they are. Within the script a statement names a new transaction by its unique key
//! (`initiated_by`, `idempotency_key`), and the script ends by reading the ids back by that
//! key, before its `COMMIT`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use sqlx::{Executor, FromRow, MySqlConnection};
use wallet_core::command::{Command, Fingerprint, Needs};
use wallet_core::decide::{Decision, Effects, Existing, Posting, Spend, State, decide};
use wallet_core::identity::UserRecord;
use wallet_core::ids::{TransactionId, UserId, WalletId};
use wallet_core::limits::Limits;
use wallet_core::notify::Trail;
use wallet_core::store::Outcome;
use wallet_core::transaction::{Receipt, Transaction};
use wallet_core::wallet::WalletState;
use wallet_core::{Error, ErrorKind, Result, Timestamp, stored};

use crate::error::{is_lost, map_sqlx};
use crate::queries::{self, RowHeads};
use crate::script::{Lit, Script, values_sql};
use crate::writer::{self, Shared};
use crate::{Unfinished, payments, users};

/// What a command of a batch gets once the batch has committed.
#[derive(Debug, Clone)]
pub(crate) enum Answer {
    /// Its posting, the batch's posting number `n`, is stored.
    Posted(usize),
    /// It repeats posting `n` of the batch (same submitter, key and request): a replay.
    Replayed(usize),
    /// Refused, with nothing written.
    Refused(Error),
    /// Not decided here: it runs alone after the batch (see the module's notes).
    Deferred,
}

/// A batch that committed: each command's answer, and the postings' transactions.
pub(crate) struct Committed {
    /// One per command, in order.
    pub(crate) answers: Vec<Answer>,
    /// The transaction of each posting, by posting number.
    pub(crate) transactions: Vec<Transaction>,
}

impl Committed {
    /// The outcome of the command answered `answer`; `None` for a deferred one.
    pub(crate) fn outcome(&self, answer: Answer) -> Option<Result<Outcome>> {
        let receipt = |n: usize, replayed| {
            self.transactions
                .get(n)
                .cloned()
                .map(|transaction| {
                    Outcome::Receipt(Receipt {
                        transaction,
                        replayed,
                    })
                })
                .ok_or_else(|| Error::Internal {
                    detail: "an answer names a posting the batch has not".into(),
                })
        };
        match answer {
            Answer::Posted(n) => Some(receipt(n, false)),
            Answer::Replayed(n) => Some(receipt(n, true)),
            Answer::Refused(e) => Some(Err(e)),
            Answer::Deferred => None,
        }
    }
}

/// Why a batch did not commit.
pub(crate) enum Failure {
    /// Nothing of it is stored: it was rolled back, or its connection broke before the round
    /// trip that carries the `COMMIT`.
    Undone(Error),
    /// The connection broke in the round trip that carries the `COMMIT`: the batch may or may
    /// not be stored. The answers it would have given.
    Unknown(Error, Vec<Answer>),
}

/// Runs `commands` (each with its needs, all accepted by `group::batchable`) as one
/// transaction on `conn`.
pub(crate) async fn run(
    conn: &mut Unfinished,
    shared: &Shared,
    commands: &[(&Command, &Needs)],
) -> std::result::Result<Committed, Failure> {
    conn.start();
    let decided = async {
        let read = read(&mut conn.conn, shared, commands).await?;
        decide_all(&mut conn.conn, shared, commands, read).await
    }
    .await;
    match decided {
        Ok(decided) => write(conn, decided).await,
        Err(e) => Err(undo(conn, e).await),
    }
}

/// Rolls back after `e`, unless the connection is gone (then the server has rolled back, and
/// the connection is closed rather than reused).
async fn undo(conn: &mut Unfinished, e: Error) -> Failure {
    if !is_lost(&e) && conn.conn.execute("ROLLBACK").await.is_ok() {
        conn.finish();
    }
    Failure::Undone(e)
}

/// An account of the batch as the commands decided so far have left it.
struct Account {
    /// What decisions see.
    state: WalletState,
    /// What the row stores (head and anchors), as it will after the batch.
    row: RowHeads,
    /// Whether a command of the batch posted to it.
    posted: bool,
}

/// What step 1 read.
struct Read {
    accounts: BTreeMap<WalletId, Account>,
    actors: HashMap<UserId, UserRecord>,
    /// Submitter and key of every transaction already stored under a key of the batch.
    stored_keys: HashSet<(i64, String)>,
    limits: HashMap<WalletId, Limits>,
}

/// `SELECT` submitter, key and id of the transactions stored under `n` (submitter, key)
/// pairs (`?, ?` for each): one range of their unique index.
fn keys_sql(n: usize) -> String {
    let mut sql = values_sql(
        "SELECT initiated_by, idempotency_key, id FROM transactions
         WHERE (initiated_by, idempotency_key) IN (",
        "(?, ?)",
        n,
    );
    sql.push(')');
    sql
}

/// The literals of `keys` for [`keys_sql`].
fn key_args<'a>(keys: impl Iterator<Item = (UserId, &'a str)>) -> Vec<Lit<'a>> {
    keys.flat_map(|(by, key)| [Lit::Int(by.get()), Lit::Latin1(key)])
        .collect()
}

/// Step 1: `BEGIN`, the locks and every read, in one round trip.
async fn read(
    conn: &mut MySqlConnection,
    shared: &Shared,
    commands: &[(&Command, &Needs)],
) -> Result<Read> {
    let ids: BTreeSet<WalletId> = commands
        .iter()
        .flat_map(|(_, needs)| needs.wallets.iter().copied())
        .collect();
    let actors: BTreeSet<UserId> = commands.iter().filter_map(|(_, n)| n.actor).collect();
    let keys: BTreeSet<(UserId, &str)> = commands
        .iter()
        .filter_map(|(_, n)| n.idempotency.as_ref().map(|(by, k)| (*by, k.as_str())))
        .collect();
    let limited: BTreeSet<WalletId> = commands
        .iter()
        .filter_map(|(_, n)| n.limits.and_then(|i| n.wallets.get(i)).copied())
        .collect();
    let ints = |ids: &mut dyn Iterator<Item = i64>| ids.map(Lit::Int).collect::<Vec<_>>();

    let mut script = Script::new();
    script.push("BEGIN", &[])?;
    // Every list is pushed only when it is not empty: `IN ()` is not SQL.
    let sizes = [ids.len(), actors.len(), keys.len(), limited.len()];
    if !ids.is_empty() {
        script.push(
            &queries::lock_and_read_wallets_sql(ids.len()),
            &ints(&mut ids.iter().map(|id| id.get())),
        )?;
    }
    if !actors.is_empty() {
        script.push(
            &users::users_sql(actors.len()),
            &ints(&mut actors.iter().map(|id| id.get())),
        )?;
    }
    if !keys.is_empty() {
        script.push(&keys_sql(keys.len()), &key_args(keys.iter().copied()))?;
    }
    if !limited.is_empty() {
        script.push(
            &format!(
                "SELECT wallet_id, per_transaction, daily, monthly FROM wallet_limits
                 WHERE wallet_id IN ({})",
                queries::placeholders(limited.len())
            ),
            &ints(&mut limited.iter().map(|id| id.get())),
        )?;
    }
    let out = script.run(conn).await.map_err(writer::not_started)?;
    // The statements' results in order: BEGIN, then one per list pushed.
    let mut results = out.into_iter().skip(1);
    let mut rows_of = |size: usize| {
        if size == 0 {
            return Ok(Vec::new());
        }
        results
            .next()
            .map(|o| o.rows)
            .ok_or_else(|| Error::corrupt("a script returned fewer results than statements"))
    };
    let [locked, users, stored_keys, limits] = sizes.map(&mut rows_of);
    let mut read = Read {
        accounts: BTreeMap::new(),
        actors: HashMap::new(),
        stored_keys: HashSet::new(),
        limits: HashMap::new(),
    };
    for row in &locked? {
        let exponent = writer::exponent(conn, shared, &queries::locked_currency(row)?).await?;
        let (state, _) = queries::locked_wallet(row, exponent)?;
        let account = Account {
            state,
            row: queries::locked_heads(row)?,
            posted: false,
        };
        read.accounts.insert(account.state.record.id, account);
    }
    for row in &users? {
        if let Some(user) = users::user_of(Some(row))? {
            read.actors.insert(user.id, user);
        }
    }
    for row in &stored_keys? {
        let (by, key, _) = <(i64, String, i64)>::from_row(row).map_err(map_sqlx)?;
        read.stored_keys.insert((by, key));
    }
    for row in &limits? {
        let (wallet, per_transaction, daily, monthly) =
            <(i64, i64, i64, i64)>::from_row(row).map_err(map_sqlx)?;
        if let Some(l) = payments::limits_of(Some((per_transaction, daily, monthly))) {
            read.limits.insert(stored::wallet_id(wallet)?, l);
        }
    }
    Ok(read)
}

/// The id posting `n`'s trail and its repeats name it by until its insert has generated the
/// real one; no real transaction ever has it (ids count up from 1).
pub(crate) fn placeholder(n: usize) -> Result<TransactionId> {
    let n = i64::try_from(n).map_err(|_| Error::Internal {
        detail: "posting number out of range".into(),
    })?;
    TransactionId::new(i64::MAX - n)
}

/// The posting number of a placeholder among `postings` postings, if `id` is one.
fn posting_of(id: TransactionId, postings: usize) -> Option<usize> {
    usize::try_from(i64::MAX - id.get())
        .ok()
        .filter(|n| *n < postings)
}

/// What the decisions of a batch leave to write.
struct Decided {
    answers: Vec<Answer>,
    postings: Vec<Posting>,
    /// Each posting's trail, and when its command ran.
    trails: Vec<(Timestamp, Trail)>,
    /// Every account posted to, with its row as the batch leaves it.
    heads: Vec<(WalletId, RowHeads)>,
}

/// What the decided commands of a batch have changed, which the next ones see.
struct Staged {
    read: Read,
    /// The key of each posting so far: submitter and key, its request's fingerprint, and its
    /// posting number.
    keys: HashMap<(UserId, String), (Fingerprint, usize)>,
    postings: Vec<Posting>,
    trails: Vec<(Timestamp, Trail)>,
}

/// Step 2: each command in turn.
async fn decide_all(
    conn: &mut MySqlConnection,
    shared: &Shared,
    commands: &[(&Command, &Needs)],
    read: Read,
) -> Result<Decided> {
    let mut staged = Staged {
        read,
        keys: HashMap::new(),
        postings: Vec::new(),
        trails: Vec::new(),
    };
    let mut answers = Vec::with_capacity(commands.len());
    for (command, needs) in commands {
        let answer = match decide_one(conn, shared, command, needs, &mut staged).await {
            Ok(answer) => answer,
            // The storage failed: the batch cannot go on.
            Err(e) if e.kind() == ErrorKind::Unavailable => return Err(e),
            // The command's own problem (an amount out of range, say): its refusal.
            Err(e) => Answer::Refused(e),
        };
        answers.push(answer);
    }
    let heads = staged
        .read
        .accounts
        .iter()
        .filter(|(_, a)| a.posted)
        .map(|(id, a)| (*id, a.row))
        .collect();
    Ok(Decided {
        answers,
        postings: staged.postings,
        trails: staged.trails,
        heads,
    })
}

/// Loads one command's state from what the batch read and staged, decides it, and stages its
/// posting.
async fn decide_one(
    conn: &mut MySqlConnection,
    shared: &Shared,
    command: &Command,
    needs: &Needs,
    staged: &mut Staged,
) -> Result<Answer> {
    let Some((by, key)) = &needs.idempotency else {
        return Ok(Answer::Deferred);
    };
    let staged_key = (*by, key.as_str().to_owned());
    let existing = match staged.keys.get(&staged_key) {
        Some((fingerprint, n)) => Some(Existing {
            id: placeholder(*n)?,
            fingerprint: *fingerprint,
        }),
        // A repeat of a stored transaction answers with it as stored: read alone.
        None if staged
            .read
            .stored_keys
            .contains(&(by.get(), key.as_str().to_owned())) =>
        {
            return Ok(Answer::Deferred);
        }
        None => None,
    };
    let read = &staged.read;
    let wallets: Vec<Option<WalletState>> = needs
        .wallets
        .iter()
        .map(|id| read.accounts.get(id).map(|a| a.state.clone()))
        .collect();
    // Lapsed holds of the sender are read by the one-command path only.
    if let Some(i) = needs.expired_holds
        && let Some(Some(w)) = wallets.get(i)
        && w.record.held_minor > 0
    {
        return Ok(Answer::Deferred);
    }
    let mut state = State {
        wallets,
        actor: needs.actor.and_then(|id| read.actors.get(&id).cloned()),
        existing,
        ..State::default()
    };
    if let Some(i) = needs.limits
        && let Some(Some(w)) = state.wallets.get(i)
    {
        state.limits = read.limits.get(&w.record.id).copied();
    }
    let spender = needs
        .spend
        .and_then(|i| state.wallets.get(i).cloned().flatten())
        .and_then(|w| read.accounts.get(&w.record.id).map(|a| (w, a)));
    match spender {
        // Posted to in this batch: its anchors are the ones staged; a window they do not know
        // would need a search of entries the batch has not written yet.
        Some((w, account)) if account.posted => {
            let windows = writer::windows(command)?;
            let anchors = account.row.anchors();
            let known = |start| writer::spent_known(shared, &w, start, &anchors);
            let (Some(today), Some(month)) = (known(windows.day), known(windows.month)) else {
                return Ok(Answer::Deferred);
            };
            state.spend = Some(Spend {
                today: today?,
                month: month?,
            });
        }
        Some((_, account)) => {
            let anchors = account.row.anchors();
            writer::load_spend(conn, shared, command, needs, &mut state, &anchors).await?;
        }
        None => {}
    }

    let decision = match decide(command, &state) {
        Ok(decision) => decision,
        Err(e) => return Ok(Answer::Refused(e)),
    };
    match decision {
        Decision::Replay(id) => {
            Ok(posting_of(id, staged.postings.len()).map_or(Answer::Deferred, Answer::Replayed))
        }
        Decision::Apply(Effects::Ledger(mut writes)) => {
            if writer::completed_posting(&writes).is_none() {
                return Ok(Answer::Deferred);
            }
            let Some(posting) = writes.new.take() else {
                return Ok(Answer::Deferred);
            };
            stage(command, posting, staged_key, staged)
        }
        _ => Ok(Answer::Deferred),
    }
}

/// Stages a completed posting: its accounts' heads and anchors, its key, its trail.
fn stage(
    command: &Command,
    posting: Posting,
    key: (UserId, String),
    staged: &mut Staged,
) -> Result<Answer> {
    let n = staged.postings.len();
    let shown = Outcome::Receipt(Receipt {
        transaction: posting.to_transaction(placeholder(n)?),
        replayed: false,
    });
    let trail = wallet_core::notify::trail(command, &shown);
    let accounts = &mut staged.read.accounts;
    let locked = posting
        .legs
        .iter()
        .all(|leg| accounts.contains_key(&leg.record.id));
    // The script names the transaction by its key; a trail with text would need more.
    if !locked || !payments::by_reference_only(&trail.notifications, &trail.events) {
        return Ok(Answer::Deferred);
    }
    let windows = writer::windows(command)?;
    for leg in &posting.legs {
        if let Some(account) = accounts.get_mut(&leg.record.id) {
            account.row.post(leg, windows);
            account.state.head = leg.head;
            account.posted = true;
        }
    }
    staged.keys.insert(key, (posting.fingerprint, n));
    staged.trails.push((command.now, trail));
    staged.postings.push(posting);
    Ok(Answer::Posted(n))
}

/// Step 3: the writes, the read of the new ids and the `COMMIT`, in one round trip; or, with
/// nothing to write, the end of the transaction.
async fn write(conn: &mut Unfinished, decided: Decided) -> std::result::Result<Committed, Failure> {
    let Decided {
        answers,
        postings,
        trails,
        heads,
    } = decided;
    if postings.is_empty() {
        // Refusals and deferrals only: nothing to keep. The answers stand whether or not the
        // rollback arrives (a connection that fails it is closed, which rolls back too).
        if conn.conn.execute("ROLLBACK").await.is_ok() {
            conn.finish();
        }
        return Ok(Committed {
            answers,
            transactions: Vec::new(),
        });
    }
    let script = match script(&postings, &trails, &heads) {
        Ok(script) => script,
        Err(e) => return Err(undo(conn, e).await),
    };
    let out = match script.run(&mut conn.conn).await {
        Ok(out) => out,
        Err(e) if is_lost(&e) => return Err(Failure::Unknown(e, answers)),
        // The server stopped at the failing statement, before the COMMIT.
        Err(e) => return Err(undo(conn, e).await),
    };
    conn.finish();
    match transactions(&postings, &out) {
        Ok(transactions) => Ok(Committed {
            answers,
            transactions,
        }),
        // Committed, but the ids did not come back as written: cannot happen (the read is in
        // the same transaction as the inserts). No caller is told a wrong id, nor that its
        // committed transfer failed for good: each gets the ambiguous error a lost `COMMIT`
        // gives, which a retry with the same key answers with the stored receipt.
        Err(e) => Err(Failure::Unknown(
            Error::Storage {
                detail: format!("the batch committed but its receipts could not be built: {e}"),
            },
            answers,
        )),
    }
}

/// The write script of a batch with at least one posting.
fn script(
    postings: &[Posting],
    trails: &[(Timestamp, Trail)],
    heads: &[(WalletId, RowHeads)],
) -> Result<Script> {
    let refs: Vec<&Posting> = postings.iter().collect();
    let metadata = queries::metadata_of(&refs);
    let found = postings
        .iter()
        .map(|p| payments::txn_by_key(p.initiated_by, &p.idempotency_key))
        .collect::<Result<Vec<_>>>()?;
    // A number out of range gives NULL, which the NOT NULL columns refuse: never a wrong row.
    let by_number = |n: usize| found.get(n).map_or(Lit::Sql("NULL"), |f| Lit::Built(f));
    let mut script = Script::new();
    queries::push_postings(&mut script, &refs, &metadata, &by_number, heads)?;
    let rows: Vec<payments::TrailRows<'_>> = trails
        .iter()
        .map(|(at, t)| (*at, t.notifications.as_slice(), t.events.as_slice()))
        .collect();
    payments::push_trails(
        &mut script,
        &rows,
        &|txn, _| match posting_of(txn, postings.len()) {
            Some(n) => by_number(n),
            None => Lit::Int(txn.get()),
        },
    )?;
    script.push(
        &keys_sql(postings.len()),
        &key_args(
            postings
                .iter()
                .map(|p| (p.initiated_by, p.idempotency_key.as_str())),
        ),
    )?;
    script.push("COMMIT", &[])?;
    Ok(script)
}

/// The postings' transactions, with the ids the script read back (its last result but one).
fn transactions(postings: &[Posting], out: &[crate::script::Output]) -> Result<Vec<Transaction>> {
    let rows = out
        .len()
        .checked_sub(2)
        .and_then(|i| out.get(i))
        .map(|o| &o.rows)
        .ok_or_else(|| Error::corrupt("a batch's script returned too few results"))?;
    let mut ids = HashMap::with_capacity(rows.len());
    for row in rows {
        let (by, key, id) = <(i64, String, i64)>::from_row(row).map_err(map_sqlx)?;
        ids.insert((by, key), id);
    }
    postings
        .iter()
        .map(|p| {
            let id = ids
                .get(&(p.initiated_by.get(), p.idempotency_key.as_str().to_owned()))
                .ok_or_else(|| Error::corrupt("a batch's transaction was not read back"))?;
            Ok(p.to_transaction(stored::txn_id(*id)?))
        })
        .collect()
}
