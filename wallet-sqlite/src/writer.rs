//! The single writer thread: group commit.
//!
//! Callers put commands on a bounded queue. The writer takes everything waiting (up to
//! `batch_max`), opens one `BEGIN IMMEDIATE` transaction, applies each command inside its own
//! savepoint (a failing command is rolled back alone), commits once, and only then answers the
//! callers. With `synchronous = FULL` the commit is one fsync for the whole batch, which is
//! what lets many concurrent callers share the cost of durability.
//!
//! The writer keeps a bounded cache of wallet states (record plus head). It is the only writer
//! in this process, so the cache is exact as long as nobody else writes the file; SQLite's
//! `data_version` tells it when another connection did, and the cache is then dropped. Changes
//! made inside a batch are staged and reach the cache only when the batch commits.

use std::collections::{HashMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use rusqlite::Connection;
use tokio::sync::oneshot;
use wallet_core::command::{Command, Needs, Op};
use wallet_core::currency::CurrencyCode;
use wallet_core::decide::{Decision, Effects, State, decide};
use wallet_core::identity::UserRecord;
use wallet_core::ids::{UserId, WalletId};
use wallet_core::store::Outcome;
use wallet_core::transaction::Receipt;
use wallet_core::wallet::{SystemAccount, WalletState};
use wallet_core::{Clock, Error, Result};

use crate::checkpoint;
use crate::error::map_sqlite;
use crate::notes;
use crate::payment_methods;
use crate::payments;
use crate::queries;
use crate::users;

/// How long an idle writer polls its queue before it sleeps on it (see [`Writer::wait`]).
const SPIN: std::time::Duration = std::time::Duration::from_micros(50);

/// A read to run on a connection; it sends its own answer.
pub(crate) type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

/// Work for the writer thread (and, for in-memory stores, reads too).
// Writes are nearly every job: boxing their command would cost an allocation per command to
// save some bytes per queued read.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Job {
    /// A write command and where to send its outcome.
    Write(Command, oneshot::Sender<Result<Outcome>>),
    /// A read (in-memory stores only: they have a single connection).
    Read(ReadJob),
    /// Work that manages its own transaction on the writer's connection, between two group
    /// commits (an import). Afterwards the writer forgets its caches.
    Maintain(ReadJob),
}

/// Runs read jobs on `conn` until the queue is closed and drained.
pub(crate) fn serve_reads(conn: &Connection, jobs: &async_channel::Receiver<ReadJob>) {
    while let Ok(job) = jobs.recv_blocking() {
        run_read(conn, job);
    }
}

fn run_read(conn: &Connection, job: ReadJob) {
    // A panicking read must not take its thread down; its caller sees the store as closed for
    // that one call (the reply channel is dropped unanswered).
    let _ = catch_unwind(AssertUnwindSafe(move || job(conn)));
}

struct WriteJob {
    command: Command,
    reply: oneshot::Sender<Result<Outcome>>,
}

/// Why a command applied without a savepoint did not give a result.
enum Failed {
    /// The batch cannot commit (storage failed): every caller gets this error.
    Batch(Error),
    /// The command failed after it had written: the batch must start over with savepoints.
    Partly,
}

/// Bounded map of wallet states and user records, exact while this process is the only
/// writer.
struct Cache {
    wallets: HashMap<WalletId, WalletState>,
    users: HashMap<UserId, UserRecord>,
    system: HashMap<(SystemAccount, CurrencyCode), WalletId>,
    /// Running debit totals of wallets at the start of a limit window (see
    /// [`queries::debits_before`]): stable once taken, so spend is one subtraction.
    anchors: HashMap<(WalletId, i64), i64>,
    /// Wallets' stored limits (`None`: the defaults), read on every outgoing transfer.
    limits: HashMap<WalletId, Option<wallet_core::limits::Limits>>,
    capacity: usize,
}

/// Changes made by the commands of an open batch: they reach the cache when it commits.
#[derive(Default, Clone)]
struct Staged {
    wallets: HashMap<WalletId, WalletState>,
    users: HashMap<UserId, UserRecord>,
}

impl Staged {
    fn clear(&mut self) {
        self.wallets.clear();
        self.users.clear();
    }
}

impl Cache {
    fn clear(&mut self) {
        self.wallets.clear();
        self.users.clear();
        self.system.clear();
        self.anchors.clear();
        self.limits.clear();
    }

    fn put_user(&mut self, user: UserRecord) {
        bounded_insert(&mut self.users, user.id, user, self.capacity);
    }

    fn put(&mut self, state: WalletState) {
        bounded_insert(&mut self.wallets, state.record.id, state, self.capacity);
    }
}

/// Inserts into a map of at most `capacity` entries. When full, an arbitrary entry is evicted:
/// simple, O(1), and good enough for a bounded hot set.
fn bounded_insert<K: Copy + Eq + std::hash::Hash, V>(
    map: &mut HashMap<K, V>,
    key: K,
    value: V,
    capacity: usize,
) {
    if capacity == 0 {
        return;
    }
    if map.len() >= capacity
        && !map.contains_key(&key)
        && let Some(victim) = map.keys().next().copied()
    {
        map.remove(&victim);
    }
    map.insert(key, value);
}

/// Counters the writer keeps for health reports and benchmarks, shared with the store.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Group commits attempted.
    pub(crate) batches: AtomicU64,
    /// Commands applied (committed or not).
    pub(crate) commands: AtomicU64,
    /// Batches that committed.
    pub(crate) commits: AtomicU64,
    /// When the last batch committed, microseconds since the Unix epoch (0: never).
    pub(crate) last_commit_micros: AtomicI64,
    /// Pages written to the write-ahead log by commits.
    pub(crate) log_pages: AtomicU64,
}

pub(crate) struct Writer {
    conn: Connection,
    cache: Cache,
    /// Notification ids, given out in commit order (`notes`).
    note_ids: notes::Ids,
    data_version: i64,
    batch_max: usize,
    counters: Arc<Counters>,
    checkpoints: Option<checkpoint::Policy>,
}

/// Result of applying one command: its outcome and the wallet states and users it changed.
type Applied = (Outcome, Vec<WalletState>, Vec<UserRecord>);

fn applied(outcome: Outcome) -> Applied {
    (outcome, Vec::new(), Vec::new())
}

/// Whether a decision inserts a new transaction (its first write).
fn creates_transaction(d: &Decision) -> bool {
    match d {
        Decision::Apply(Effects::Post(_)) => true,
        Decision::Apply(Effects::Ledger(w)) => w.new.is_some(),
        _ => false,
    }
}

impl Writer {
    pub(crate) fn new(
        conn: Connection,
        cache_capacity: usize,
        batch_max: usize,
        counters: Arc<Counters>,
        checkpoints: Option<checkpoint::Policy>,
    ) -> Self {
        Writer {
            conn,
            cache: Cache {
                wallets: HashMap::new(),
                users: HashMap::new(),
                system: HashMap::new(),
                anchors: HashMap::new(),
                limits: HashMap::new(),
                capacity: cache_capacity,
            },
            note_ids: notes::Ids::default(),
            data_version: -1,
            batch_max: batch_max.max(1),
            counters,
            checkpoints,
        }
    }

    /// Serves jobs until the queue is closed and drained.
    pub(crate) fn run(mut self, jobs: async_channel::Receiver<Job>) {
        // Jobs met while a batch gathered writes, served in arrival order once it committed.
        let mut aside = VecDeque::new();
        loop {
            let job = match aside.pop_front() {
                Some(job) => job,
                None => match Self::wait(&jobs) {
                    Ok(job) => job,
                    Err(_) => break,
                },
            };
            match job {
                Job::Read(read) => run_read(&self.conn, read),
                Job::Maintain(work) => self.maintain(work),
                Job::Write(command, reply) => {
                    self.group_commit(WriteJob { command, reply }, &jobs, &mut aside);
                }
            }
        }
        tracing::debug!(
            batches = self.counters.batches.load(Ordering::Relaxed),
            commands = self.counters.commands.load(Ordering::Relaxed),
            "writer stopped"
        );
    }

    /// The next job. An idle writer polls its queue for [`SPIN`] before it goes to sleep on
    /// it: waking a sleeping thread costs tens of microseconds on a virtual machine, and a lone
    /// caller's next command usually arrives within that time. (Measured: one caller's
    /// transfers/s rose by about 11 %; with 64 callers, whose commands are queued while a batch
    /// commits, no difference.)
    fn wait(
        jobs: &async_channel::Receiver<Job>,
    ) -> std::result::Result<Job, async_channel::RecvError> {
        let started = std::time::Instant::now();
        loop {
            match jobs.try_recv() {
                Ok(job) => return Ok(job),
                Err(async_channel::TryRecvError::Closed) => return Err(async_channel::RecvError),
                Err(async_channel::TryRecvError::Empty) => {}
            }
            if started.elapsed() >= SPIN {
                return jobs.recv_blocking();
            }
            std::hint::spin_loop();
        }
    }

    /// The next write waiting in the queue, if any. Reads met on the way are set aside (they
    /// will see the batch committed); maintenance is set aside too and ends the batch, so that
    /// writes queued after it wait for it.
    fn next_write(
        jobs: &async_channel::Receiver<Job>,
        aside: &mut VecDeque<Job>,
    ) -> Option<WriteJob> {
        while let Ok(job) = jobs.try_recv() {
            match job {
                Job::Write(command, reply) => return Some(WriteJob { command, reply }),
                Job::Read(read) => aside.push_back(Job::Read(read)),
                Job::Maintain(work) => {
                    aside.push_back(Job::Maintain(work));
                    return None;
                }
            }
        }
        None
    }

    /// Runs maintenance work, then forgets every cached state (the work may have changed any
    /// row) and lets the checkpoint policy see the log it may have grown.
    fn maintain(&mut self, work: ReadJob) {
        run_read(&self.conn, work);
        if !self.conn.is_autocommit() {
            // Work that panicked mid-transaction must not leave it open for the next batch.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        self.cache.clear();
        self.note_ids.forget();
        if let Some(policy) = &mut self.checkpoints {
            policy.after_commit(&self.conn);
        }
    }

    /// One group commit: opens a transaction, applies `first` and then every command that
    /// arrives while the batch is being applied (up to `batch_max`), commits once, and only
    /// then answers the callers. Taking late arrivals into the open batch, rather than draining
    /// the queue once up front, lets callers answered by the previous commit join this one.
    ///
    /// Commands run without a savepoint of their own when they can (see [`Writer::apply_bare`]);
    /// if one fails after it has written, the batch is rolled back and applied again from the
    /// start with a savepoint around every command, which rolls the failing one back alone.
    fn group_commit(
        &mut self,
        first: WriteJob,
        jobs: &async_channel::Receiver<Job>,
        aside: &mut VecDeque<Job>,
    ) {
        self.counters.batches.fetch_add(1, Ordering::Relaxed);
        self.counters.commands.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.begin() {
            let _ = first.reply.send(Err(e));
            return;
        }
        let mut staged = Staged::default();
        let mut batch = vec![first];
        let mut results: Vec<Result<Outcome>> = Vec::new();
        let mut guarded = false;
        let doomed = loop {
            let Some(job) = batch.get(results.len()) else {
                if batch.len() < self.batch_max
                    && let Some(next) = Self::next_write(jobs, aside)
                {
                    self.counters.commands.fetch_add(1, Ordering::Relaxed);
                    batch.push(next);
                    continue;
                }
                break None;
            };
            let command = &job.command;
            let step = if guarded || matches!(command.op, Op::Batch(_)) {
                self.apply_in_savepoint(command, &mut staged)
                    .map_err(Failed::Batch)
            } else {
                self.apply_bare(command, &mut staged)
            };
            match step {
                Ok(result) => results.push(result),
                Err(Failed::Batch(e)) => {
                    results.push(Err(e.clone()));
                    break Some(e);
                }
                Err(Failed::Partly) => {
                    // Start over with a savepoint around every command.
                    let _ = self.conn.execute_batch("ROLLBACK");
                    self.cache.clear();
                    self.note_ids.forget();
                    staged.clear();
                    results.clear();
                    guarded = true;
                    if let Err(e) = self.begin() {
                        break Some(e);
                    }
                }
            }
        };
        let committed = match doomed {
            None => self
                .note_ids
                .save(&self.conn)
                .and_then(|()| self.conn.execute_batch("COMMIT").map_err(map_sqlite)),
            Some(e) => Err(e),
        };
        let replies = batch.into_iter().map(|job| job.reply);
        match committed {
            Ok(()) => {
                self.counters.commits.fetch_add(1, Ordering::Relaxed);
                self.counters.last_commit_micros.store(
                    wallet_core::SystemClock.now().as_micros(),
                    Ordering::Relaxed,
                );
                for state in staged.wallets.into_values() {
                    self.cache.put(state);
                }
                for user in staged.users.into_values() {
                    self.cache.put_user(user);
                }
                for (reply, result) in replies.zip(results) {
                    let _ = reply.send(result);
                }
                if let Some(policy) = &mut self.checkpoints {
                    policy.after_commit(&self.conn);
                }
            }
            Err(e) => {
                // ROLLBACK fails only if no transaction is open (SQLite may already have rolled
                // back, on a full disk for example): either way nothing of the batch remains.
                let _ = self.conn.execute_batch("ROLLBACK");
                self.cache.clear();
                self.note_ids.forget();
                // Every caller whose command had succeeded learns it did not; the others keep
                // their own error, and any not applied yet (the batch failed to restart) gets
                // the batch's.
                let mut results = results.into_iter();
                for reply in replies {
                    let _ = reply.send(match results.next() {
                        Some(Err(own)) => Err(own),
                        Some(Ok(_)) | None => Err(e.clone()),
                    });
                }
            }
        }
    }

    /// Starts a write transaction and drops the cache if another connection wrote meanwhile.
    fn begin(&mut self) -> Result<()> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(map_sqlite)?;
        // Another connection (another process) committed since our last batch: cached wallet
        // states may be stale.
        let version = self
            .conn
            .prepare_cached("PRAGMA data_version")
            .and_then(|mut s| s.query_row([], |r| r.get::<_, i64>(0)));
        match version {
            Ok(v) => {
                if v != self.data_version {
                    self.cache.clear();
                    self.note_ids.forget();
                    self.data_version = v;
                }
                Ok(())
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                self.note_ids.forget();
                Err(map_sqlite(e))
            }
        }
    }

    /// Applies one command inside a savepoint. The outer `Err` dooms the whole batch (the
    /// savepoint machinery or storage failed); the inner result is the command's own.
    fn apply_in_savepoint(
        &mut self,
        command: &Command,
        staged: &mut Staged,
    ) -> Result<Result<Outcome>> {
        self.savepoint("SAVEPOINT cmd")?;
        match self.apply_caught(command, staged) {
            Ok(done) => {
                self.savepoint("RELEASE cmd")?;
                Ok(Self::keep(done, staged))
            }
            Err(e) => {
                if let Err(rollback) = self
                    .savepoint("ROLLBACK TO cmd")
                    .and_then(|()| self.savepoint("RELEASE cmd"))
                {
                    // After some errors (full disk, I/O) SQLite has already rolled the whole
                    // transaction back, savepoint included: the batch is lost, report the cause.
                    return Err(if e.kind() == wallet_core::ErrorKind::Unavailable {
                        e
                    } else {
                        rollback
                    });
                }
                self.refused(command, e, staged)
            }
        }
    }

    /// Applies one command without a savepoint: most commands write nothing until their
    /// decision is made and write nothing after it that can be refused, so a command that
    /// fails has usually written nothing, and a savepoint (which copies every page the command
    /// touches into a sub-journal, and costs three statements) would roll back nothing.
    /// `Failed::Partly` says the command failed after writing: the batch must start over with
    /// savepoints.
    fn apply_bare(
        &mut self,
        command: &Command,
        staged: &mut Staged,
    ) -> std::result::Result<Result<Outcome>, Failed> {
        let before = self.conn.total_changes();
        match self.apply_caught(command, staged) {
            Ok(done) => Ok(Self::keep(done, staged)),
            // SQLite rolled the whole transaction back itself (a full disk, an I/O error): the
            // batch is lost.
            Err(e) if self.conn.is_autocommit() => Err(Failed::Batch(e)),
            // Nothing was written: the batch is as if the command had not run.
            Err(e) if self.conn.total_changes() == before => {
                self.refused(command, e, staged).map_err(Failed::Batch)
            }
            Err(_) => Err(Failed::Partly),
        }
    }

    /// Runs a savepoint statement, prepared once.
    fn savepoint(&self, sql: &str) -> Result<()> {
        self.conn
            .prepare_cached(sql)
            .and_then(|mut s| s.execute([]))
            .map(drop)
            .map_err(map_sqlite)
    }

    /// [`Writer::apply`], with a panic turned into an internal error.
    fn apply_caught(
        &mut self,
        command: &Command,
        staged: &Staged,
    ) -> Result<(Applied, Option<Error>)> {
        catch_unwind(AssertUnwindSafe(|| self.apply(command, staged))).unwrap_or_else(|_| {
            Err(Error::Internal {
                detail: "command panicked".into(),
            })
        })
    }

    /// Stages what an applied command changed and gives its result.
    fn keep(
        ((outcome, changed, users), refusal): (Applied, Option<Error>),
        staged: &mut Staged,
    ) -> Result<Outcome> {
        for state in changed {
            staged.wallets.insert(state.record.id, state);
        }
        for user in users {
            staged.users.insert(user.id, user);
        }
        match refusal {
            None => Ok(outcome),
            Some(e) => Err(e),
        }
    }

    /// Handles a command that failed and left nothing behind: the outer `Err` dooms the batch
    /// (storage failed); otherwise the refusal is audited and is the command's result.
    fn refused(
        &mut self,
        command: &Command,
        e: Error,
        staged: &mut Staged,
    ) -> Result<Result<Outcome>> {
        if matches!(e, Error::Internal { .. } | Error::StorageCorrupt { .. }) {
            // Something unexpected happened: stop trusting cached state.
            self.cache.clear();
            staged.clear();
        }
        // A storage failure inside a command (disk full, I/O) dooms the batch.
        if e.kind() == wallet_core::ErrorKind::Unavailable {
            return Err(e);
        }
        // A refused admin or security action is recorded, without its effects.
        self.audit(command, e.code())?;
        Ok(Err(e))
    }

    /// Writes the command's audit record, if it leaves one, with `outcome`.
    fn audit(&self, command: &Command, outcome: &str) -> Result<()> {
        match command.audit() {
            Some(note) => users::insert_audit(
                &self.conn,
                command.now,
                command.actor.map(|a| a.user),
                &note,
                outcome,
            ),
            None => Ok(()),
        }
    }

    /// Loads, decides and persists one command. The error beside the result is a refusal
    /// whose effects are nevertheless kept (a lapsed hold released as its capture is refused).
    fn apply(&mut self, command: &Command, staged: &Staged) -> Result<(Applied, Option<Error>)> {
        if let Op::Batch(ops) = &command.op {
            return self.apply_batch(command, ops, staged).map(|a| (a, None));
        }
        let needs = command.needs();
        // A money movement's idempotency key is almost always new, and the unique index the
        // new transaction's insert goes through answers that anyway: so look the key up only
        // when the decision is anything but a new transaction, or that insert finds the key
        // taken (a retry). Saves an index descent per transfer. Commands that leave an audit
        // record write it before their effects, so they look the key up first, as before.
        let optimistic = needs.idempotency.is_some() && command.audit().is_none();
        let mut state = self.load(command, &needs, staged, !optimistic)?;
        let mut decided = decide(command, &state);
        if optimistic && !matches!(&decided, Ok(d) if creates_transaction(d)) {
            state.existing = self.existing(&needs)?;
            if state.existing.is_some() {
                decided = decide(command, &state);
            }
        }
        match self.apply_decision(command, decided?) {
            Err(e) if optimistic && queries::is_key_taken(&e) => {
                // Nothing was written: the transaction's insert is a command's first write.
                state.existing = self.existing(&needs)?;
                let decision = decide(command, &state)?;
                self.apply_decision(command, decision)
            }
            other => other,
        }
    }

    /// The transaction a command's actor made with its idempotency key, if any.
    fn existing(&self, needs: &Needs) -> Result<Option<wallet_core::decide::Existing>> {
        match &needs.idempotency {
            Some((actor, key)) => queries::existing(&self.conn, *actor, key),
            None => Ok(None),
        }
    }

    /// Audits and persists a decision, and stores what it leaves for users and hosts.
    fn apply_decision(
        &mut self,
        command: &Command,
        decision: Decision,
    ) -> Result<(Applied, Option<Error>)> {
        let outcome = match (&command.op, &decision) {
            (Op::Audit(record), _) => record.outcome,
            (_, Decision::Refuse(_, e)) => e.code(),
            _ => wallet_core::audit::OUTCOME_OK,
        };
        self.audit(command, outcome)?;
        let mut posted = notes::Posted::default();
        let (applied_now, refusal) = match decision {
            Decision::Replay(id) => {
                let transaction = queries::transaction(&self.conn, id)?
                    .ok_or_else(|| Error::corrupt("idempotency record without its transaction"))?;
                // A repeat changes nothing and leaves no trail.
                return Ok((
                    applied(Outcome::Receipt(Receipt {
                        transaction,
                        replayed: true,
                    })),
                    None,
                ));
            }
            Decision::Unchanged(wallet) => return Ok((applied(Outcome::Wallet(wallet)), None)),
            Decision::Done(outcome) => return Ok((applied(outcome), None)),
            Decision::Apply(effects) => (self.persist(effects, &mut posted)?, None),
            Decision::Refuse(effects, e) => (self.persist(effects, &mut posted)?, Some(e)),
        };
        let trail = wallet_core::notify::trail(command, &applied_now.0);
        notes::store(
            &self.conn,
            &mut self.note_ids,
            command.now,
            &mut posted,
            &trail.notifications,
        )?;
        payments::insert_events(&self.conn, command.now, &trail.events)?;
        Ok((applied_now, refusal))
    }

    /// Applies a batch's operations in order, each seeing the ones before it; the first
    /// failure fails the batch (its savepoint is rolled back by the caller).
    fn apply_batch(&mut self, command: &Command, ops: &[Op], staged: &Staged) -> Result<Applied> {
        wallet_core::decide::check_batch(ops)?;
        let mut overlay = staged.clone();
        let mut outcomes = Vec::with_capacity(ops.len());
        let (mut all_wallets, mut all_users) = (Vec::new(), Vec::new());
        for op in ops {
            let sub = command.with_op(op.clone());
            let ((outcome, wallets, users), refusal) = self.apply(&sub, &overlay)?;
            if let Some(e) = refusal {
                return Err(e);
            }
            for w in &wallets {
                overlay.wallets.insert(w.record.id, w.clone());
            }
            for u in &users {
                overlay.users.insert(u.id, u.clone());
            }
            outcomes.push(outcome);
            all_wallets.extend(wallets);
            all_users.extend(users);
        }
        Ok((Outcome::Batch(outcomes), all_wallets, all_users))
    }

    fn user(&mut self, id: UserId, staged: &Staged) -> Result<Option<UserRecord>> {
        if let Some(u) = staged.users.get(&id).or_else(|| self.cache.users.get(&id)) {
            return Ok(Some(u.clone()));
        }
        let loaded = users::user(&self.conn, id)?;
        if let Some(u) = &loaded {
            self.cache.put_user(u.clone());
        }
        Ok(loaded)
    }

    fn wallet(&mut self, id: WalletId, staged: &Staged) -> Result<Option<WalletState>> {
        if let Some(s) = staged
            .wallets
            .get(&id)
            .or_else(|| self.cache.wallets.get(&id))
        {
            return Ok(Some(s.clone()));
        }
        let loaded = queries::wallet(&self.conn, id)?;
        if let Some(s) = &loaded {
            self.cache.put(s.clone());
        }
        Ok(loaded)
    }

    fn system_id(&mut self, kind: SystemAccount, code: CurrencyCode) -> Result<Option<WalletId>> {
        let id = match self.cache.system.get(&(kind, code)) {
            Some(id) => Some(*id),
            None => queries::system_account(&self.conn, kind, code)?,
        };
        if let Some(id) = id {
            self.cache.system.insert((kind, code), id);
        }
        Ok(id)
    }

    /// Appends wallet `id` to `state.wallets` unless it is there already.
    fn add_wallet(&mut self, state: &mut State, id: WalletId, staged: &Staged) -> Result<()> {
        if !state.wallets.iter().flatten().any(|w| w.record.id == id) {
            let w = self.wallet(id, staged)?;
            state.wallets.push(w);
        }
        Ok(())
    }

    /// Posted debits of `w` since the start of the window beginning at `start`.
    fn spent_since(&mut self, w: &WalletState, start: wallet_core::Timestamp) -> Result<i64> {
        if w.head.seq == 0 || w.head.last_at < start {
            return Ok(0);
        }
        let key = (w.record.id, start.as_micros());
        let anchor = match self.cache.anchors.get(&key) {
            Some(a) => *a,
            None => {
                let a = queries::debits_before(&self.conn, w, start)?;
                bounded_insert(&mut self.cache.anchors, key, a, self.cache.capacity);
                a
            }
        };
        queries::debits_since_anchor(w, anchor)
    }

    /// The state `command` needs; its idempotency record only if `look_up_key`.
    fn load(
        &mut self,
        command: &Command,
        needs: &Needs,
        staged: &Staged,
        look_up_key: bool,
    ) -> Result<State> {
        let now = command.now;
        let mut state = State::default();
        if let Some(id) = needs.actor {
            state.actor = self.user(id, staged)?;
        }
        if let Some(id) = needs.user {
            state.user = self.user(id, staged)?;
        }
        if let Some((username, email)) = &needs.logins {
            (state.username_owner, state.email_owner) =
                users::login_owners(&self.conn, username.as_ref(), email.as_ref())?;
        }
        if needs.superusers {
            state.active_superusers = users::active_superusers(&self.conn)?;
        }
        if let Some(id) = needs.payment_method {
            state.payment_method = payment_methods::method(&self.conn, id)?;
        }
        if let Some(owner) = needs.methods_of {
            state.methods = payment_methods::methods_of(&self.conn, owner)?;
        }
        if let Some(owner) = needs.owner_wallets {
            // Straight from the database, then overlaid with this batch's and the cache's
            // newer states (the cache is exact; the statement reads committed rows too).
            let mut wallets = queries::wallets_of(&self.conn, owner)?;
            for w in &mut wallets {
                if let Some(newer) = self.wallet(w.record.id, staged)? {
                    *w = newer;
                }
            }
            state.owner_wallets = wallets;
        }
        for id in &needs.wallets {
            let w = self.wallet(*id, staged)?;
            state.wallets.push(w);
        }
        if let Some((id, order)) = &needs.merchant {
            state.merchant = payments::merchant(&self.conn, *id)?;
            if let Some(m) = &state.merchant {
                let wallet = m.wallet;
                self.add_wallet(&mut state, wallet, staged)?;
                if let Some(order) = order {
                    state.order_paid = payments::order_paid(&self.conn, *id, order)?;
                }
            }
        }
        if let Some(code) = &needs.link {
            state.link = payments::link(&self.conn, code)?;
            if let Some(wallet) = state.link.as_ref().map(|l| l.wallet) {
                self.add_wallet(&mut state, wallet, staged)?;
            }
        }
        for (kind, index) in &needs.systems {
            let code = match state.wallets.get(*index) {
                Some(Some(w)) => Some(w.record.currency.code()),
                _ => None,
            };
            let account = match code {
                Some(code) => match self.system_id(*kind, code)? {
                    Some(id) => self.wallet(id, staged)?,
                    None => None,
                },
                None => None,
            };
            state.systems.push(account);
        }
        if let Some(lookup) = &needs.transaction {
            state.transaction = payments::stored_txn(&self.conn, lookup)?;
            if let Some(t) = state.transaction.clone() {
                let mut ids: Vec<WalletId> = t.legs.iter().map(|(w, _)| *w).collect();
                if let Some(p) = &t.pending {
                    ids.push(p.wallet);
                    ids.extend(p.counter);
                }
                for kind in SystemAccount::ALL {
                    ids.extend(self.system_id(*kind, t.currency.code())?);
                }
                ids.sort();
                ids.dedup();
                for id in ids {
                    self.add_wallet(&mut state, id, staged)?;
                }
            }
        }
        if let Some(index) = needs.expired_holds
            && let Some(Some(w)) = state.wallets.get(index)
            && w.record.held_minor > 0
        {
            state.expired = payments::expired_of(&self.conn, w.record.id, now, 100)?;
        }
        if let Some(index) = needs.limits
            && let Some(Some(w)) = state.wallets.get(index)
        {
            let id = w.record.id;
            state.limits = match self.cache.limits.get(&id) {
                Some(limits) => *limits,
                None => {
                    let limits = payments::limits(&self.conn, id)?;
                    bounded_insert(&mut self.cache.limits, id, limits, self.cache.capacity);
                    limits
                }
            };
        }
        if let Some(index) = needs.spend
            && let Some(Some(w)) = state.wallets.get(index).cloned()
        {
            let zone = command.config.time_zone();
            let day = zone.period_start(now, wallet_core::calendar::Granularity::Day)?;
            let month = zone.period_start(now, wallet_core::calendar::Granularity::Month)?;
            state.spend = Some(wallet_core::decide::Spend {
                today: self.spent_since(&w, day)?,
                month: self.spent_since(&w, month)?,
            });
        }
        if let Some(limit) = needs.due {
            state.due = payments::due(&self.conn, now, limit)?;
            let wallets: Vec<WalletId> = state.due.iter().map(|p| p.wallet).collect();
            for id in wallets {
                self.add_wallet(&mut state, id, staged)?;
            }
        }
        if let Some(wallet) = needs.merchant_of {
            state.merchant_of = payments::merchant_of(&self.conn, wallet)?;
        }
        if let Some((user, key)) = &needs.link_key {
            state.link_existing = payments::link_by_key(&self.conn, *user, key)?;
        }
        if look_up_key {
            state.existing = self.existing(needs)?;
        }
        if let Some((owner, kind, code)) = needs.slot {
            state.slot = queries::slot(&self.conn, owner, kind, code)?;
        }
        if let Some(code) = needs.currency {
            state.stored_exponent = queries::stored_exponent(&self.conn, code)?;
        }
        Ok(state)
    }

    /// Writes a decision's effects; the entries it posts go to `posted`, for the caller to
    /// write with the command's notifications.
    fn persist(&mut self, effects: Effects, posted: &mut notes::Posted) -> Result<Applied> {
        match effects {
            Effects::OpenWallet(new) => {
                if new.register_currency {
                    queries::register_currency(&self.conn, new.currency, new.created_at)?;
                }
                let id = queries::insert_wallet(&self.conn, &new)?;
                let state = WalletState::new_empty(new.record(id));
                Ok((Outcome::Wallet(state.clone()), vec![state], Vec::new()))
            }
            Effects::SetStatus(state) => {
                queries::update_status(&self.conn, &state.record)?;
                Ok((Outcome::Wallet(state.clone()), vec![state], Vec::new()))
            }
            Effects::Post(posting) => {
                let id = queries::insert_posting(&self.conn, &posting, posted)?;
                let changed = posting
                    .legs
                    .iter()
                    .map(|l| WalletState {
                        record: l.record.clone(),
                        head: l.head,
                    })
                    .collect();
                let receipt = Receipt {
                    transaction: posting.to_transaction(id),
                    replayed: false,
                };
                Ok((Outcome::Receipt(receipt), changed, Vec::new()))
            }
            Effects::InsertUser(new) => {
                let id = users::insert_user(&self.conn, &new.record)?;
                let record = UserRecord { id, ..new.record };
                Ok((Outcome::User(record.clone()), Vec::new(), vec![record]))
            }
            Effects::UpdateUser(record) => {
                users::update_user(&self.conn, &record)?;
                Ok((Outcome::User(record.clone()), Vec::new(), vec![record]))
            }
            Effects::DeleteUser { user, wallets } => {
                for w in &wallets {
                    queries::update_status(&self.conn, &w.record)?;
                }
                users::update_user(&self.conn, &user)?;
                payment_methods::delete_of_owner(&self.conn, user.id)?;
                Ok((Outcome::User(user.clone()), wallets, vec![user]))
            }
            Effects::Nothing => Ok(applied(Outcome::Done)),
            Effects::InsertPaymentMethod(m) => Ok(applied(Outcome::PaymentMethod(
                payment_methods::insert(&self.conn, &m)?,
            ))),
            Effects::UpdatePaymentMethod(m) => {
                payment_methods::update(&self.conn, &m)?;
                Ok(applied(Outcome::PaymentMethod(m)))
            }
            Effects::DeletePaymentMethod(id) => {
                payment_methods::delete(&self.conn, id)?;
                Ok(applied(Outcome::Done))
            }
            Effects::Ledger(writes) => self.persist_ledger(*writes, posted),
            Effects::SetLimits(wallet, limits) => {
                payments::set_limits(&self.conn, wallet, limits.as_ref())?;
                // Read again once needed: the new value is not committed yet, and a failed
                // batch clears the whole cache.
                self.cache.limits.remove(&wallet);
                Ok(applied(Outcome::Done))
            }
            Effects::InsertMerchant(m) => Ok(applied(Outcome::Merchant(
                payments::insert_merchant(&self.conn, &m)?,
            ))),
            Effects::InsertLink(l) => Ok(applied(Outcome::Link(
                payments::insert_link(&self.conn, &l)?.to_link(),
            ))),
            Effects::UpdateLink(l) => {
                payments::update_link(&self.conn, l.id, l.status, l.paid_by)?;
                Ok(applied(Outcome::Link(l.to_link())))
            }
            Effects::MarkRead(m) => Ok(applied(Outcome::Count(notes::mark_read(&self.conn, &m)?))),
        }
    }

    fn persist_ledger(
        &mut self,
        w: wallet_core::decide::LedgerWrites,
        posted: &mut notes::Posted,
    ) -> Result<Applied> {
        let new_id = match &w.new {
            Some(p) => Some(queries::insert_posting(&self.conn, p, posted)?),
            None => None,
        };
        if let Some(id) = new_id {
            if let Some(p) = &w.new_pending {
                payments::insert_pending(&self.conn, id, p)?;
            }
            if let Some((merchant, order)) = &w.new_order {
                payments::insert_order(&self.conn, *merchant, order, id)?;
            }
            if let Some(link) = w.link_paid {
                payments::update_link(
                    &self.conn,
                    link,
                    wallet_core::links::LinkStatus::Paid,
                    Some(id),
                )?;
            }
            if let Some(original) = w.refund_of {
                payments::set_original(&self.conn, id, original)?;
            }
        }
        for u in &w.updates {
            payments::update_txn(&self.conn, u, posted)?;
        }
        for r in &w.records {
            payments::update_held(&self.conn, r)?;
        }
        let outcome = match (w.shown, &w.new, new_id) {
            (wallet_core::decide::Shown::Count(n), _, _) => Outcome::Count(n),
            // The common case, built without reading back what was just written.
            (wallet_core::decide::Shown::New, Some(p), Some(id))
                if p.status == wallet_core::TransactionStatus::Completed
                    && w.refund_of.is_none() =>
            {
                Outcome::Receipt(Receipt {
                    transaction: p.to_transaction(id),
                    replayed: false,
                })
            }
            (shown, _, _) => {
                let id = match (shown, new_id) {
                    (wallet_core::decide::Shown::Existing(id), _) => id,
                    (_, Some(id)) => id,
                    _ => return Err(Error::corrupt("a receipt without a transaction")),
                };
                // The receipt is read back with its legs, so they must be written first (their
                // notifications are then kept as rows).
                posted.write(&self.conn)?;
                let transaction = queries::transaction(&self.conn, id)?
                    .ok_or_else(|| Error::corrupt("transaction vanished"))?;
                Outcome::Receipt(Receipt {
                    transaction,
                    replayed: false,
                })
            }
        };
        Ok((outcome, w.touched, Vec::new()))
    }
}
