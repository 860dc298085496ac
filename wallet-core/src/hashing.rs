//! A small pool of threads that hash and verify passwords off the caller's async executor.
//!
//! Argon2id with the default parameters takes tens of milliseconds and 19 MiB per hash: run on
//! an async executor thread it would stall every other task there, and run on a fresh thread
//! per request a login flood would exhaust memory. The pool bounds both: `workers` threads,
//! each holding at most one hash's memory, fed by a bounded queue that callers wait on.

use std::sync::Arc;
use std::thread;

use crate::auth::{Password, PasswordHash, PasswordHasher};
use crate::error::{Error, Result};

/// Most hashing jobs waiting for a worker; further callers wait for room.
pub(crate) const HASH_QUEUE_MAX: usize = 1024;

enum Job {
    Hash(Password, async_channel::Sender<Result<PasswordHash>>),
    /// Verify against the hash, or against the dummy when there is none.
    Verify(
        Password,
        Option<PasswordHash>,
        async_channel::Sender<Verified>,
    ),
}

/// The result of a verification.
#[derive(Debug)]
pub(crate) struct Verified {
    /// The password matched.
    pub(crate) ok: bool,
    /// When the password matched a hash made with other parameters: a new hash of it made
    /// with the current ones, to store in place of the old.
    pub(crate) upgraded: Option<PasswordHash>,
}

/// See the module documentation. Dropping the last handle stops the workers once they finish
/// the jobs already queued.
pub(crate) struct HashPool {
    jobs: async_channel::Sender<Job>,
}

impl HashPool {
    /// Starts `workers` threads (at least one).
    pub(crate) fn start(hasher: PasswordHasher, workers: usize) -> Result<Arc<Self>> {
        let (tx, rx) = async_channel::bounded::<Job>(HASH_QUEUE_MAX);
        for i in 0..workers.max(1) {
            let rx = rx.clone();
            let hasher = hasher.clone();
            thread::Builder::new()
                .name(format!("wallet-hash-{i}"))
                .spawn(move || serve(&hasher, &rx))
                .map_err(|e| Error::internal(format!("cannot start a hashing thread: {e}")))?;
        }
        Ok(Arc::new(HashPool { jobs: tx }))
    }

    /// Hashes `password` with the configured parameters.
    pub(crate) async fn hash(&self, password: Password) -> Result<PasswordHash> {
        let (tx, rx) = async_channel::bounded(1);
        self.submit(Job::Hash(password, tx)).await?;
        rx.recv().await.map_err(|_| stopped())?
    }

    /// Verifies `password` against `hash`; with no hash, does the same work against a dummy
    /// and reports a mismatch, so unknown users cost what known ones do.
    pub(crate) async fn verify(
        &self,
        password: Password,
        hash: Option<PasswordHash>,
    ) -> Result<Verified> {
        let (tx, rx) = async_channel::bounded(1);
        self.submit(Job::Verify(password, hash, tx)).await?;
        rx.recv().await.map_err(|_| stopped())
    }

    async fn submit(&self, job: Job) -> Result<()> {
        self.jobs.send(job).await.map_err(|_| stopped())
    }
}

fn stopped() -> Error {
    Error::internal("the password hashing pool stopped")
}

fn serve(hasher: &PasswordHasher, jobs: &async_channel::Receiver<Job>) {
    while let Ok(job) = jobs.recv_blocking() {
        match job {
            Job::Hash(password, reply) => {
                let _ = reply.send_blocking(hasher.hash(&password));
            }
            Job::Verify(password, hash, reply) => {
                let verified = match &hash {
                    Some(h) => {
                        let ok = hasher.verify(&password, h);
                        // A failed re-hash only postpones the upgrade to a later login.
                        let upgraded = (ok && hasher.needs_rehash(h))
                            .then(|| hasher.hash(&password).ok())
                            .flatten();
                        Verified { ok, upgraded }
                    }
                    None => {
                        hasher.verify_dummy(&password);
                        Verified {
                            ok: false,
                            upgraded: None,
                        }
                    }
                };
                let _ = reply.send_blocking(verified);
            }
        }
    }
}
