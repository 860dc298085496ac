//! Group commit: money commands that wait together run together, in one transaction.
//!
//! A command that names all its accounts and ends in a completed posting (a transfer without
//! a fee rule, at once: [`batchable`]) may join a batch. If nothing is queued and fewer than
//! [`BATCHES_IN_FLIGHT_MAX`] places are taken, it takes a place and runs alone, in its caller's
//! task, exactly as before (a lone caller pays nothing for batching). Otherwise it is queued,
//! and a worker task takes everything waiting (at most [`BATCH_COMMANDS_MAX`]) and runs it as
//! one batch ([`crate::batch`]): one transaction, two round trips, one commit whose fsync and
//! per-statement parsing the whole batch shares. Nobody waits to fill a batch: a worker takes
//! what is queued when it is free. At most [`BATCHES_IN_FLIGHT_MAX`] places (workers and
//! commands running alone) are taken at once per store; a worker exits when the queue is
//! empty, a command running alone that ends while commands wait starts a worker for them, and
//! a command queued while a place is free starts one. A worker that stops mid-batch (a panic,
//! or its runtime shutting down) starts another for the commands still queued, on the runtime
//! of the first of them: nobody waits for a worker that will never come.
//!
//! A place is held only while its batch (or lone command) is quick: one that has run for
//! `ConnectOptions::slow_batch_after` gives its place to a new worker for whatever is queued
//! and finishes on its own ([`holding`]). So commands stuck on rows another session keeps
//! locked (up to `innodb_lock_wait_timeout` per attempt, with retries) hold back only
//! themselves and their own batch, never every command of the store; the places bound how many
//! quick batches share the server, the pool how many run at all.
//!
//! Callers are answered only after their batch committed (or failed). The workers are tasks of
//! their own, so a caller whose future is dropped (a timeout) leaves its command to finish and
//! its answer unread; no other caller's answer depends on it, and no transaction stays open.
//!
//! When a batch fails, every command of it is still answered exactly once:
//!
//! - rolled back for contention (a deadlock, a lock-wait timeout, a race for an idempotency key
//!   with another process): the batch runs again after a backoff, at most
//!   [`BATCH_ATTEMPTS_MAX`] times in all, then each command runs alone, with the one-command
//!   path's retries (and its `StorageBusy` after the last);
//! - its connection lost before the round trip that carries the `COMMIT`: nothing is stored,
//!   and the batch runs again on another connection (at most `RECONNECTS` times);
//! - its connection lost in the round trip that carries the `COMMIT`: each command whose
//!   posting it carried gets the lost-connection error (`Error::Storage`, ambiguous, as a
//!   single command's); the others (refusals and replays, decided on state that may not have
//!   been committed) run alone;
//! - any other error: each command runs alone and gets its own answer.
//!
//! Commands that run alone after a batch run side by side, as they would have without
//! batching: one after the other, each would wait for the turns of all before it.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;
use wallet_core::command::{Command, Needs, Op, Timing};
use wallet_core::store::Outcome;
use wallet_core::{Error, Result};

use crate::batch::{self, Answer, Failure};
use crate::error::is_lost;
use crate::{Inner, Unfinished, writer};

/// Most commands in one batch. A batch's write script holds each command's text (description,
/// metadata, key: at most about 15 kB written as hexadecimal), so it stays within about 1 MB,
/// well under the servers' default `max_allowed_packet` (16 MB MariaDB, 64 MB MySQL).
pub const BATCH_COMMANDS_MAX: usize = 64;
/// Most commands waiting for a batch; beyond it a command runs alone (and waits for a
/// connection from the pool like any other).
pub const QUEUE_MAX: usize = 4096;
/// Most batches one store runs at once (never more than its pool's connections).
pub const BATCHES_IN_FLIGHT_MAX: usize = 2;
/// Most times one batch is tried after contention before its commands run alone.
pub const BATCH_ATTEMPTS_MAX: u32 = 3;

/// A queued command and where its answer goes.
struct Job {
    command: Command,
    needs: Needs,
    reply: oneshot::Sender<Result<Outcome>>,
    /// Its caller's runtime, alive while the caller waits: where a worker is started for it
    /// when the one that should serve it stopped (see [`Worker`]'s drop).
    runtime: tokio::runtime::Handle,
}

/// The commands waiting for a batch, and the workers running.
pub(crate) struct Queue {
    waiting: Mutex<Waiting>,
    workers_max: usize,
    /// How long a batch or a lone command keeps its place ([`holding`]).
    slow_after: std::time::Duration,
    /// Batches of two commands or more that committed, and the commands they answered.
    batches: AtomicU64,
    batched: AtomicU64,
}

#[derive(Default)]
struct Waiting {
    jobs: VecDeque<Job>,
    workers: usize,
}

impl Queue {
    /// A queue served by at most `connections` workers (and [`BATCHES_IN_FLIGHT_MAX`]) at a
    /// time, each of which gives its place up once its batch has run for `slow_after`.
    pub(crate) fn new(connections: u32, slow_after: std::time::Duration) -> Self {
        Queue {
            waiting: Mutex::new(Waiting::default()),
            workers_max: BATCHES_IN_FLIGHT_MAX.min(usize::try_from(connections).unwrap_or(1)),
            slow_after,
            batches: AtomicU64::new(0),
            batched: AtomicU64::new(0),
        }
    }

    /// Commands waiting for a worker.
    pub(crate) fn waiting(&self) -> usize {
        self.lock().jobs.len()
    }

    /// Batches of two commands or more that committed, and the commands they held.
    pub(crate) fn committed(&self) -> (u64, u64) {
        (
            self.batches.load(Ordering::Relaxed),
            self.batched.load(Ordering::Relaxed),
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        // Every change under this lock is a push, a pop or a count: a panic cannot leave it
        // half-made, so a poisoned lock is still good.
        self.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What a command needs, if it may join a batch: a money movement at once, whose accounts it
/// names itself and whose reads a batch makes (see `writer::one_round_needs`: no system
/// account, so no fee rule), with an actor and an idempotency key.
fn batchable(command: &Command) -> Option<Needs> {
    match &command.op {
        Op::Move(m) if m.timing == Timing::Now => {}
        _ => return None,
    }
    writer::one_round_needs(command)
        .filter(|needs| needs.actor.is_some() && needs.idempotency.is_some())
}

/// Runs a command: in a batch if it may join one, else alone.
pub(crate) async fn execute(inner: &Arc<Inner>, command: Command) -> Result<Outcome> {
    let runtime = tokio::runtime::Handle::try_current();
    let (Some(needs), Ok(runtime)) = (batchable(&command), runtime) else {
        return alone(inner, command).await;
    };
    let (reply, answer) = oneshot::channel();
    let job = Job {
        command,
        needs,
        reply,
        runtime: runtime.clone(),
    };
    let route = {
        let mut waiting = inner.queue.lock();
        if waiting.jobs.is_empty() && waiting.workers < inner.queue.workers_max {
            // Nothing to batch with: run alone, in the caller's task, taking a worker's place
            // meanwhile so that commands arriving now wait for a batch.
            waiting.workers += 1;
            Route::Alone(job.command)
        } else if waiting.jobs.len() >= QUEUE_MAX {
            Route::Full(job.command)
        } else {
            waiting.jobs.push_back(job);
            let start = waiting.workers < inner.queue.workers_max;
            if start {
                waiting.workers += 1;
            }
            Route::Queued { start }
        }
    };
    match route {
        Route::Alone(command) => {
            // Given back when this call ends, is cancelled or turns slow; starts a worker for
            // whatever queued meanwhile.
            let place = Worker {
                inner: Arc::clone(inner),
                running: true,
                started: true,
            };
            return holding(place, alone(inner, command)).await.0;
        }
        Route::Full(command) => return alone(inner, command).await,
        Route::Queued { start: true } => {
            runtime.spawn(work(Worker {
                inner: Arc::clone(inner),
                running: true,
                started: false,
            }));
        }
        Route::Queued { start: false } => {}
    }
    // The sender is dropped unanswered only if the worker stopped mid-batch (a panic, or its
    // runtime shutting down): the command may or may not have committed.
    answer.await.unwrap_or_else(|_| {
        Err(Error::Storage {
            detail: "the command's outcome is unknown: its batch was stopped".into(),
        })
    })
}

/// Where a command goes.
enum Route {
    /// The queue is empty and a worker's place free: it runs at once, in the caller's task.
    Alone(Command),
    /// The queue is full: it runs alone.
    Full(Command),
    /// Queued, and whether a worker must be started for it.
    Queued { start: bool },
}

/// The one-command path (`writer::execute`), with its retries.
async fn alone(inner: &Inner, command: Command) -> Result<Outcome> {
    writer::execute(&inner.pool, &inner.writer, inner.retries, command).await
}

/// A place among the store's workers, taken by a worker task or by a command running alone:
/// given back when it ends, even by a panic, a cancelled caller or its runtime's shutdown.
///
/// Commands queued while it is taken rely on it: they queued because no place was free, and
/// started no worker. So whenever it ends with commands still queued (a command running alone
/// that ends, in any way; a worker task that panics or is dropped mid-batch by its runtime's
/// shutdown; a worker task exits normally only when the queue is empty) it starts a worker for
/// them, on the runtime of the first of them (its caller waits on it, so it is alive, unless
/// that runtime is the one shutting down).
struct Worker {
    inner: Arc<Inner>,
    running: bool,
    /// Whether it ever ran: a worker task dropped before its first poll (spawned on a runtime
    /// that is shutting down, which drops it at once) starts none, so drops cannot chain.
    started: bool,
}

impl Drop for Worker {
    fn drop(&mut self) {
        if !self.running {
            return;
        }
        let successor = {
            let mut waiting = self.inner.queue.lock();
            waiting.workers = waiting.workers.saturating_sub(1);
            let runtime = waiting
                .jobs
                .front()
                .filter(|_| self.started)
                .map(|job| job.runtime.clone());
            if runtime.is_some() {
                waiting.workers += 1;
            }
            runtime
        };
        // Spawned with the lock released: a runtime that is shutting down drops what is spawned
        // on it at once, in this thread, and that drop takes the lock too.
        if let Some(runtime) = successor {
            runtime.spawn(work(Worker {
                inner: Arc::clone(&self.inner),
                running: true,
                started: false,
            }));
        }
    }
}

/// Runs `work` holding `place`, and gives the place back (starting a worker for whatever is
/// queued) if the work has not ended after the queue's `slow_after`: the work then finishes
/// without it. Returns the work's output, and the place if it was kept.
async fn holding<T>(place: Worker, work: impl Future<Output = T>) -> (T, Option<Worker>) {
    let slow_after = place.inner.queue.slow_after;
    let mut work = std::pin::pin!(work);
    match tokio::time::timeout(slow_after, work.as_mut()).await {
        Ok(out) => (out, Some(place)),
        Err(_) => {
            tracing::debug!(?slow_after, "a slow batch gives its place to the queue");
            drop(place);
            (work.await, None)
        }
    }
}

/// Serves batches until the queue is empty, or until a batch turns slow (another worker then
/// serves the queue).
async fn work(mut worker: Worker) {
    worker.started = true;
    let inner = Arc::clone(&worker.inner);
    loop {
        let jobs: Vec<Job> = {
            let mut waiting = inner.queue.lock();
            if waiting.jobs.is_empty() {
                waiting.workers = waiting.workers.saturating_sub(1);
                worker.running = false;
                return;
            }
            let n = waiting.jobs.len().min(BATCH_COMMANDS_MAX);
            waiting.jobs.drain(..n).collect()
        };
        match holding(worker, run(&inner, jobs)).await {
            ((), Some(kept)) => worker = kept,
            ((), None) => return,
        }
    }
}

/// What became of a batch.
enum Ended {
    Committed(batch::Committed),
    Unknown(Error, Vec<Answer>),
    /// Not stored; every command runs alone.
    Undone,
}

/// Runs one batch and answers each of its commands exactly once.
async fn run(inner: &Inner, jobs: Vec<Job>) {
    if jobs.len() == 1 {
        // Alone anyway: the one-command path is the same two round trips.
        for job in jobs {
            let _ = job.reply.send(alone(inner, job.command).await);
        }
        return;
    }
    let ended = attempts(inner, &jobs).await;
    let mut left = Vec::new();
    match ended {
        Ended::Committed(done) => {
            let held = u64::try_from(jobs.len()).unwrap_or(u64::MAX);
            inner.queue.batches.fetch_add(1, Ordering::Relaxed);
            inner.queue.batched.fetch_add(held, Ordering::Relaxed);
            for (job, answer) in jobs.into_iter().zip(done.answers.clone()) {
                match done.outcome(answer) {
                    Some(outcome) => {
                        let _ = job.reply.send(outcome);
                    }
                    None => left.push(job),
                }
            }
        }
        Ended::Unknown(e, answers) => {
            for (job, answer) in jobs.into_iter().zip(answers) {
                match answer {
                    Answer::Posted(_) => {
                        let _ = job.reply.send(Err(e.clone()));
                    }
                    _ => left.push(job),
                }
            }
        }
        Ended::Undone => left = jobs,
    }
    // After the batch's connection went back to the pool: a pool of one must serve these.
    // Side by side, as without batching: one after the other, each would wait for the turns
    // of all before it (a whole `acquire_timeout` each when the pool has no connection free).
    futures_util::future::join_all(left.into_iter().map(|job| async move {
        let _ = job.reply.send(alone(inner, job.command).await);
    }))
    .await;
}

/// Tries a batch until it commits, its outcome is unknown, or it is given up.
async fn attempts(inner: &Inner, jobs: &[Job]) -> Ended {
    let commands: Vec<_> = jobs.iter().map(|j| (&j.command, &j.needs)).collect();
    let (mut attempt, mut reconnects) = (1u32, 0u32);
    loop {
        let mut conn = match inner.pool.acquire().await {
            Ok(conn) => Unfinished::idle(conn),
            // Each command will meet the same trouble alone, and report it.
            Err(_) => return Ended::Undone,
        };
        match batch::run(&mut conn, &inner.writer, &commands).await {
            Ok(done) => return Ended::Committed(done),
            Err(Failure::Unknown(e, answers)) => return Ended::Unknown(e, answers),
            // Nothing was stored: try again on another connection.
            Err(Failure::Undone(e)) if is_lost(&e) && reconnects < crate::RECONNECTS => {
                reconnects += 1;
            }
            Err(Failure::Undone(e)) if writer::retriable(&e) && attempt < BATCH_ATTEMPTS_MAX => {
                tracing::debug!(attempt, error = %e, "batch retried");
                drop(conn);
                tokio::time::sleep(writer::backoff(attempt - 1)).await;
                attempt += 1;
            }
            Err(Failure::Undone(e)) => {
                tracing::debug!(error = %e, "batch given up: its commands run alone");
                return Ended::Undone;
            }
        }
    }
}
