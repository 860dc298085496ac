//! Checkpoints off the writer's path.
//!
//! A checkpoint copies pages from the write-ahead log back into the database file and fsyncs
//! it. SQLite's automatic checkpoint runs inside a COMMIT, so the writer (and every caller
//! waiting on its batch) would stall for the whole copy. Here a separate thread with its own
//! connection does the copying while the writer keeps committing.
//!
//! The log can only be rewound to its start (bounding its size) when a write transaction begins
//! with every frame already copied, which a background thread racing the writer rarely achieves.
//! So once the background rounds leave only a short tail, the writer copies that tail itself
//! between two batches; its next transaction then rewinds the log. If the background thread
//! falls far behind, the writer catches up itself, so the log never grows without bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use rusqlite::wal::CheckpointMode;
use rusqlite::{Connection, MAIN_DB};

/// Frames the writer may copy itself to finish a checkpoint (a few milliseconds of work).
const WRITER_TAIL_FRAMES_MAX: i64 = 2_048;
/// Beyond this many times the checkpoint interval, the writer stops waiting for the background.
const BACKLOG_FACTOR_MAX: i64 = 4;

/// State shared by the writer and the checkpointer thread.
#[derive(Debug, Default)]
pub(crate) struct WalState {
    /// Frames in the log after the writer's latest commit (from SQLite's WAL hook).
    pub(crate) frames: AtomicI64,
    /// Frames copied into the database by the latest completed background round.
    pub(crate) backfilled: AtomicI64,
    /// Whether a background round is running or requested.
    pub(crate) busy: AtomicI64,
}

/// The writer's side: decides after each commit what, if anything, to do about the log.
pub(crate) struct Policy {
    /// Start copying once the log holds this many frames.
    pub(crate) interval: i64,
    pub(crate) state: Arc<WalState>,
    pub(crate) wake: async_channel::Sender<()>,
    /// Frames at the last observation, to notice the log being rewound.
    last_frames: i64,
    /// Do not retry a writer-side checkpoint before the log reaches this size.
    retry_at: i64,
}

impl Policy {
    /// `interval` is in frames (pages).
    pub(crate) fn new(
        interval: i64,
        state: Arc<WalState>,
        wake: async_channel::Sender<()>,
    ) -> Self {
        Policy {
            interval: interval.max(1),
            state,
            wake,
            last_frames: 0,
            retry_at: 0,
        }
    }

    /// Called by the writer between batches.
    pub(crate) fn after_commit(&mut self, conn: &Connection) {
        let frames = self.state.frames.load(Ordering::Relaxed);
        if frames < self.last_frames {
            // The log was rewound: earlier background progress no longer applies.
            self.state.backfilled.store(0, Ordering::Relaxed);
            self.retry_at = 0;
        }
        self.last_frames = frames;
        if frames < self.interval {
            return;
        }
        let backfilled = self.state.backfilled.load(Ordering::Relaxed);
        let tail = frames - backfilled;
        let overdue = frames >= self.interval.saturating_mul(BACKLOG_FACTOR_MAX);
        if (tail <= WRITER_TAIL_FRAMES_MAX || overdue) && frames >= self.retry_at {
            // Copy the rest ourselves; no new frames can appear while we do.
            match conn.wal_checkpoint_v2(Some(MAIN_DB), CheckpointMode::PASSIVE) {
                Ok((log, done)) if log == done => self.retry_at = 0,
                // Readers still use older frames: try again after some more growth.
                Ok(_) => self.retry_at = frames + WRITER_TAIL_FRAMES_MAX,
                Err(e) => {
                    tracing::warn!(error = %e, "checkpoint from the writer failed");
                    self.retry_at = frames + WRITER_TAIL_FRAMES_MAX;
                }
            }
        } else if self.state.busy.swap(1, Ordering::AcqRel) == 0 {
            // Ask for (another) background round; a full queue means one is already pending.
            let _ = self.wake.try_send(());
        }
    }
}

/// The checkpointer thread: copies the log into the database each time it is woken.
pub(crate) fn run(conn: Connection, wake: async_channel::Receiver<()>, state: Arc<WalState>) {
    while wake.recv_blocking().is_ok() {
        match conn.wal_checkpoint_v2(Some(MAIN_DB), CheckpointMode::PASSIVE) {
            Ok((_, done)) => state.backfilled.store(i64::from(done), Ordering::Relaxed),
            // Another checkpoint holds the lock (the writer finishing one): nothing to do.
            Err(e) => tracing::debug!(error = %e, "background checkpoint skipped"),
        }
        state.busy.store(0, Ordering::Release);
    }
}
