//! The floor: the least a hand-written SQL implementation must do per transfer, with no library
//! around it. Same machine, same process, same run as the library, so ratios are fair.
//!
//! Schema: `wallets(id, currency, balance, version)`, `transactions(id, idempotency_key UNIQUE,
//! kind, status, amount, description, created_at)`, `entries(id, transaction_id, wallet_id,
//! amount, created_at)` with an index on `(wallet_id, created_at)`. A transfer is a conditional
//! debit UPDATE, a credit UPDATE, one INSERT into transactions with a random 32-hex key and two
//! INSERTs into entries.

use std::path::Path;
use std::time::Instant;

use rand::SeedableRng;
use rand::rngs::SmallRng;
use rusqlite::{Connection, params};

use crate::{Measurement, Progress, Workload, random_key};

const SCHEMA: &str = "
    PRAGMA journal_mode = WAL;
    PRAGMA synchronous = FULL;
    CREATE TABLE wallets (id INTEGER PRIMARY KEY, currency TEXT NOT NULL,
                          balance INTEGER NOT NULL, version INTEGER NOT NULL);
    CREATE TABLE transactions (id INTEGER PRIMARY KEY, idempotency_key TEXT NOT NULL UNIQUE,
                               kind TEXT NOT NULL, status TEXT NOT NULL, amount INTEGER NOT NULL,
                               description TEXT, created_at INTEGER NOT NULL);
    CREATE TABLE entries (id INTEGER PRIMARY KEY, transaction_id INTEGER NOT NULL,
                          wallet_id INTEGER NOT NULL, amount INTEGER NOT NULL,
                          created_at INTEGER NOT NULL);
    CREATE INDEX entries_wallet_time ON entries (wallet_id, created_at);
";

/// Creates the floor's database with `wallets` funded wallets.
pub fn setup(path: &Path, wallets: usize) -> rusqlite::Result<Connection> {
    let mut conn = Connection::open(path)?;
    conn.execute_batch(SCHEMA)?;
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare(
            "INSERT INTO wallets (id, currency, balance, version) VALUES (?1, 'USD', ?2, 0)",
        )?;
        for id in 1..=wallets {
            stmt.execute(params![id as i64, crate::FUNDING_MINOR])?;
        }
    }
    tx.commit()?;
    Ok(conn)
}

/// SQLite's automatic checkpoint interval, in log frames (`wal_autocheckpoint`'s default).
const AUTOCHECKPOINT_FRAMES: i64 = 1000;

/// Counts the pages the floor's commits write to its log (as the library's writer counts its
/// own, [`wallet_sqlite::WriterStats::log_pages`]), into `pages`.
///
/// SQLite's automatic checkpoint is itself a log hook, which this one replaces, so it does
/// what the default does after counting: a passive checkpoint once the log holds 1,000 frames.
/// Without it the floor's log grows for the whole run, which changes its figures (one
/// transfer per commit slows by a third, 1,000 per commit speeds up by a fifth).
pub fn count_log_pages(
    conn: &mut Connection,
    pages: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> rusqlite::Result<()> {
    use std::sync::atomic::Ordering;
    let last = std::sync::atomic::AtomicI64::new(0);
    conn.wal_hook(Some(
        move |wal: &mut rusqlite::hooks::Wal, frames: std::ffi::c_int| {
            let frames = i64::from(frames);
            let before = last.swap(frames, Ordering::Relaxed);
            let added = if frames >= before {
                frames - before
            } else {
                frames
            };
            pages.fetch_add(u64::try_from(added).unwrap_or(0), Ordering::Relaxed);
            if frames >= AUTOCHECKPOINT_FRAMES {
                // As SQLite's own hook: a checkpoint that cannot finish now is not an error.
                let _ = wal.checkpoint();
            }
            Ok(())
        },
    ))
}

/// Runs `w.transfers` transfers on one thread, `per_commit` per COMMIT.
pub fn run(
    conn: &mut Connection,
    w: &Workload,
    per_commit: usize,
    label: &str,
) -> rusqlite::Result<Measurement> {
    let mut rng = SmallRng::seed_from_u64(w.seed);
    let mut latencies = Vec::with_capacity(w.transfers / per_commit + 1);
    let progress = Progress::new(label, w.transfers);
    let started = Instant::now();
    let mut done = 0usize;
    let mut now_us: i64 = 1_767_225_600_000_000;
    while done < w.transfers {
        let batch = per_commit.min(w.transfers - done);
        let t0 = Instant::now();
        let tx = conn.transaction()?;
        {
            let mut debit = tx.prepare_cached(
                "UPDATE wallets SET balance = balance - ?2, version = version + 1 WHERE id = ?1 AND balance >= ?2",
            )?;
            let mut credit = tx.prepare_cached(
                "UPDATE wallets SET balance = balance + ?2, version = version + 1 WHERE id = ?1",
            )?;
            let mut txn = tx.prepare_cached(
                "INSERT INTO transactions (idempotency_key, kind, status, amount, description, created_at)
                 VALUES (?1, 'TRANSFER', 'COMPLETED', ?2, ?3, ?4)",
            )?;
            let mut entry = tx.prepare_cached(
                "INSERT INTO entries (transaction_id, wallet_id, amount, created_at) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for _ in 0..batch {
                let (from, to, amount) = w.pick(&mut rng);
                now_us += 1;
                if debit.execute(params![from, amount])? == 1 {
                    credit.execute(params![to, amount])?;
                    txn.execute(params![
                        random_key(&mut rng),
                        amount,
                        "bench transfer",
                        now_us
                    ])?;
                    let id = tx.last_insert_rowid();
                    entry.execute(params![id, from, -amount, now_us])?;
                    entry.execute(params![id, to, amount, now_us])?;
                }
            }
        }
        tx.commit()?;
        // Every transfer of a batch waits for that batch's commit.
        let per = t0.elapsed();
        latencies.extend(std::iter::repeat_n(per, batch));
        done += batch;
        progress.set(done);
    }
    let elapsed = started.elapsed();
    progress.finish();
    Ok(Measurement::new(w.transfers, elapsed, latencies))
}
