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

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use rusqlite::Connection;
use tokio::sync::oneshot;
use wallet_core::command::{Command, Needs};
use wallet_core::currency::CurrencyCode;
use wallet_core::decide::{Decision, Effects, State, decide};
use wallet_core::ids::WalletId;
use wallet_core::store::Outcome;
use wallet_core::transaction::Receipt;
use wallet_core::wallet::{SystemAccount, WalletState};
use wallet_core::{Error, Result};

use crate::error::map_sqlite;
use crate::queries;

/// A read to run on a connection; it sends its own answer.
pub(crate) type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

/// Work for the writer thread (and, for in-memory stores, reads too).
pub(crate) enum Job {
    /// A write command and where to send its outcome.
    Write(Command, oneshot::Sender<Result<Outcome>>),
    /// A read (in-memory stores only: they have a single connection).
    Read(ReadJob),
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

/// Bounded map of wallet states, exact while this process is the only writer.
struct Cache {
    wallets: HashMap<WalletId, WalletState>,
    system: HashMap<(SystemAccount, CurrencyCode), WalletId>,
    capacity: usize,
}

impl Cache {
    fn clear(&mut self) {
        self.wallets.clear();
        self.system.clear();
    }

    fn put(&mut self, state: WalletState) {
        if self.capacity == 0 {
            return;
        }
        if self.wallets.len() >= self.capacity && !self.wallets.contains_key(&state.record.id) {
            // Evict an arbitrary entry: simple, O(1), and good enough for a bounded hot set.
            if let Some(victim) = self.wallets.keys().next().copied() {
                self.wallets.remove(&victim);
            }
        }
        self.wallets.insert(state.record.id, state);
    }
}

/// Writer statistics, for health reporting.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct WriterStats {
    pub(crate) batches: u64,
    pub(crate) commands: u64,
}

pub(crate) struct Writer {
    conn: Connection,
    cache: Cache,
    data_version: i64,
    batch_max: usize,
    stats: WriterStats,
}

/// Result of applying one command: its outcome and the wallet states it changed.
type Applied = (Outcome, Vec<WalletState>);

impl Writer {
    pub(crate) fn new(conn: Connection, cache_capacity: usize, batch_max: usize) -> Self {
        Writer {
            conn,
            cache: Cache {
                wallets: HashMap::new(),
                system: HashMap::new(),
                capacity: cache_capacity,
            },
            data_version: -1,
            batch_max: batch_max.max(1),
            stats: WriterStats::default(),
        }
    }

    /// Serves jobs until the queue is closed and drained.
    pub(crate) fn run(mut self, jobs: async_channel::Receiver<Job>) {
        let mut writes = Vec::with_capacity(self.batch_max);
        let mut reads = Vec::new();
        while let Ok(first) = jobs.recv_blocking() {
            let mut next = Some(first);
            while let Some(job) = next.take() {
                match job {
                    Job::Write(command, reply) => writes.push(WriteJob { command, reply }),
                    Job::Read(read) => reads.push(read),
                }
                if writes.len() < self.batch_max {
                    next = jobs.try_recv().ok();
                }
            }
            if !writes.is_empty() {
                self.commit_batch(&mut writes);
            }
            for read in reads.drain(..) {
                run_read(&self.conn, read);
            }
        }
        tracing::debug!(
            batches = self.stats.batches,
            commands = self.stats.commands,
            "writer stopped"
        );
    }

    fn commit_batch(&mut self, jobs: &mut Vec<WriteJob>) {
        self.stats.batches += 1;
        self.stats.commands += jobs.len() as u64;
        let mut results: Vec<Result<Outcome>> = Vec::with_capacity(jobs.len());
        let outcome = self.run_batch(jobs, &mut results);
        match outcome {
            Ok(()) => {
                for (job, result) in jobs.drain(..).zip(results) {
                    let _ = job.reply.send(result);
                }
            }
            Err(e) => {
                // Nothing of the batch is stored: every caller whose command had succeeded
                // learns it did not; the others keep their own error.
                self.cache.clear();
                let mut results = results.into_iter();
                for job in jobs.drain(..) {
                    let answer = match results.next() {
                        Some(Err(own)) => Err(own),
                        _ => Err(e.clone()),
                    };
                    let _ = job.reply.send(answer);
                }
            }
        }
    }

    /// Runs one batch in one transaction. On `Err`, the transaction was rolled back.
    fn run_batch(&mut self, jobs: &[WriteJob], results: &mut Vec<Result<Outcome>>) -> Result<()> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(map_sqlite)?;
        let body = self.apply_all(jobs, results);
        let committed = body.and_then(|staged| {
            self.conn.execute_batch("COMMIT").map_err(map_sqlite)?;
            Ok(staged)
        });
        match committed {
            Ok(staged) => {
                for state in staged.into_values() {
                    self.cache.put(state);
                }
                Ok(())
            }
            Err(e) => {
                // ROLLBACK fails only if no transaction is open (SQLite may already have
                // rolled back on a full disk): either way nothing of the batch remains.
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Applies every command of the batch, each in a savepoint; returns the staged states.
    fn apply_all(
        &mut self,
        jobs: &[WriteJob],
        results: &mut Vec<Result<Outcome>>,
    ) -> Result<HashMap<WalletId, WalletState>> {
        // Another connection (another process) wrote since our last batch: the cache may be stale.
        let version: i64 = self
            .conn
            .pragma_query_value(None, "data_version", |r| r.get(0))
            .map_err(map_sqlite)?;
        if version != self.data_version {
            self.cache.clear();
            self.data_version = version;
        }
        let mut staged: HashMap<WalletId, WalletState> = HashMap::new();
        for job in jobs {
            self.conn
                .execute_batch("SAVEPOINT cmd")
                .map_err(map_sqlite)?;
            let applied = catch_unwind(AssertUnwindSafe(|| self.apply(&job.command, &staged)))
                .unwrap_or_else(|_| {
                    Err(Error::Internal {
                        detail: "command panicked".into(),
                    })
                });
            match applied {
                Ok((outcome, changed)) => {
                    self.conn.execute_batch("RELEASE cmd").map_err(map_sqlite)?;
                    for state in changed {
                        staged.insert(state.record.id, state);
                    }
                    results.push(Ok(outcome));
                }
                Err(e) => {
                    self.conn
                        .execute_batch("ROLLBACK TO cmd; RELEASE cmd")
                        .map_err(map_sqlite)?;
                    if matches!(e, Error::Internal { .. } | Error::StorageCorrupt { .. }) {
                        // Something unexpected: do not trust cached state any more.
                        self.cache.clear();
                        staged.clear();
                    }
                    // A storage failure inside a command (disk full, I/O) dooms the batch.
                    if e.kind() == wallet_core::ErrorKind::Unavailable {
                        return Err(e);
                    }
                    results.push(Err(e));
                }
            }
        }
        Ok(staged)
    }

    /// Loads, decides and persists one command.
    fn apply(
        &mut self,
        command: &Command,
        staged: &HashMap<WalletId, WalletState>,
    ) -> Result<Applied> {
        let needs = command.needs();
        let state = self.load(&needs, staged)?;
        match decide(command, &state)? {
            Decision::Replay(id) => {
                let transaction = queries::transaction(&self.conn, id)?
                    .ok_or_else(|| Error::corrupt("idempotency record without its transaction"))?;
                Ok((
                    Outcome::Receipt(Receipt {
                        transaction,
                        replayed: true,
                    }),
                    Vec::new(),
                ))
            }
            Decision::Unchanged(wallet) => Ok((Outcome::Wallet(wallet), Vec::new())),
            Decision::Apply(effects) => self.persist(effects),
        }
    }

    fn wallet(
        &mut self,
        id: WalletId,
        staged: &HashMap<WalletId, WalletState>,
    ) -> Result<Option<WalletState>> {
        if let Some(s) = staged.get(&id).or_else(|| self.cache.wallets.get(&id)) {
            return Ok(Some(s.clone()));
        }
        let loaded = queries::wallet(&self.conn, id)?;
        if let Some(s) = &loaded {
            self.cache.put(s.clone());
        }
        Ok(loaded)
    }

    fn load(&mut self, needs: &Needs, staged: &HashMap<WalletId, WalletState>) -> Result<State> {
        let mut state = State::default();
        for id in &needs.wallets {
            let w = self.wallet(*id, staged)?;
            state.wallets.push(w);
        }
        if let Some((kind, index)) = needs.system
            && let Some(Some(owner_wallet)) = state.wallets.get(index)
        {
            let code = owner_wallet.record.currency.code();
            let id = match self.cache.system.get(&(kind, code)) {
                Some(id) => Some(*id),
                None => queries::system_account(&self.conn, kind, code)?,
            };
            if let Some(id) = id {
                self.cache.system.insert((kind, code), id);
                state.system = self.wallet(id, staged)?;
            }
        }
        if let Some((actor, key)) = &needs.idempotency {
            state.existing = queries::existing(&self.conn, *actor, key)?;
        }
        if let Some((owner, kind, code)) = needs.slot {
            state.slot = queries::slot(&self.conn, owner, kind, code)?;
        }
        if let Some(code) = needs.currency {
            state.stored_exponent = queries::stored_exponent(&self.conn, code)?;
        }
        Ok(state)
    }

    fn persist(&mut self, effects: Effects) -> Result<Applied> {
        match effects {
            Effects::OpenWallet(new) => {
                if new.register_currency {
                    queries::register_currency(&self.conn, new.currency, new.created_at)?;
                }
                let id = queries::insert_wallet(&self.conn, &new)?;
                let state = WalletState::new_empty(new.record(id));
                Ok((Outcome::Wallet(state.clone()), vec![state]))
            }
            Effects::SetStatus(state) => {
                queries::update_status(&self.conn, &state.record)?;
                Ok((Outcome::Wallet(state.clone()), vec![state]))
            }
            Effects::Post(posting) => {
                let id = queries::insert_posting(&self.conn, &posting)?;
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
                Ok((Outcome::Receipt(receipt), changed))
            }
        }
    }
}
