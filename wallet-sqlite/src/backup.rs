//! Online backup: a consistent copy of a live database file, taken while writes go on.
//!
//! The copy is read from one snapshot on a read-only connection of its own (see
//! [`crate::SqliteStore::backup_to`]). In WAL mode a reader never blocks the writer, so callers
//! keep committing throughout; the only cost to them is that the write-ahead log cannot be
//! rewound past the snapshot until the copy ends, so it grows meanwhile.
//!
//! SQLite's backup API restarts a copy from the first page whenever another connection commits
//! between two steps, which under steady load would never finish. Holding one read transaction
//! across all the steps pins the snapshot, so every step reads the same version of the file and
//! the copy finishes after one pass, whatever the writer does.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rusqlite::Connection;
use rusqlite::backup::{Backup, StepResult};
use wallet_core::{Error, Result};

use crate::error::map_sqlite;

/// Pages copied per step: a few MiB at the default page size, so progress is reported often
/// without paying the per-step overhead too many times.
const PAGES_PER_STEP: std::ffi::c_int = 4096;
/// Consecutive steps that may find the destination busy before the backup gives up.
const BUSY_STEPS_MAX: u32 = 1000;

/// What an online backup copied.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupReport {
    /// Where the copy is.
    pub path: PathBuf,
    /// Database pages copied.
    pub pages: u64,
    /// Size of the copy in bytes.
    pub bytes: u64,
    /// How long the copy took, in milliseconds.
    pub elapsed_ms: u64,
}

/// The temporary name the copy is written under before it is renamed into place.
fn partial_path(target: &Path) -> Result<PathBuf> {
    let name = target.file_name().ok_or_else(|| Error::InvalidConfig {
        reason: format!("backup target {} has no file name", target.display()),
    })?;
    let mut partial = name.to_os_string();
    partial.push(".partial");
    Ok(target.with_file_name(partial))
}

fn io_error(what: &str, path: &Path, e: &std::io::Error) -> Error {
    if e.raw_os_error() == Some(28) {
        // ENOSPC
        return Error::StorageFull;
    }
    Error::Storage {
        detail: format!("{what} {}: {e}", path.display()),
    }
}

/// Copies the database `source` reads into a new file at `target`.
///
/// The copy is written to `<target>.partial`, synced, and only then renamed to `target`, so a
/// crash or an error never leaves a half-written file under the name a restore would use.
/// `target` must not exist.
pub(crate) fn run(source: &Connection, target: &Path) -> Result<BackupReport> {
    let started = Instant::now();
    if target.exists() {
        return Err(Error::InvalidConfig {
            reason: format!("backup target {} already exists", target.display()),
        });
    }
    let partial = partial_path(target)?;
    // A leftover from an interrupted backup is never a usable copy.
    match std::fs::remove_file(&partial) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error("cannot remove", &partial, &e)),
    }
    let copied = copy(source, &partial);
    let pages = match copied {
        Ok(pages) => pages,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    let bytes = std::fs::metadata(&partial)
        .map_err(|e| io_error("cannot read", &partial, &e))?
        .len();
    std::fs::rename(&partial, target).map_err(|e| io_error("cannot rename to", target, &e))?;
    // The rename is durable only once the directory is synced.
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_error("cannot sync", dir, &e))?;
    }
    Ok(BackupReport {
        path: target.to_path_buf(),
        pages,
        bytes,
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

/// Copies every page of one snapshot of `source` into a new database at `partial`, and returns
/// how many pages it copied.
fn copy(source: &Connection, partial: &Path) -> Result<u64> {
    let mut dest = Connection::open(partial).map_err(map_sqlite)?;
    // The copy is a plain file until it is renamed; a full fsync at its commit makes it durable.
    dest.pragma_update(None, "synchronous", "FULL")
        .map_err(map_sqlite)?;
    // Pin one snapshot for every step (see the module's docs). A read is needed to start it.
    source.execute_batch("BEGIN DEFERRED").map_err(map_sqlite)?;
    let copied = (|| {
        let _: i64 = source
            .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
            .map_err(map_sqlite)?;
        let backup = Backup::new(source, &mut dest).map_err(map_sqlite)?;
        let mut busy = 0u32;
        loop {
            match backup.step(PAGES_PER_STEP).map_err(map_sqlite)? {
                StepResult::Done => break,
                StepResult::More => busy = 0,
                // Only the destination can be busy (nobody else knows its name); wait a little.
                // (Any result a later SQLite adds is treated the same way: retried, bounded.)
                _ => {
                    busy += 1;
                    if busy > BUSY_STEPS_MAX {
                        return Err(Error::StorageBusy);
                    }
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
            }
        }
        let progress = backup.progress();
        Ok(u64::try_from(progress.pagecount).unwrap_or(0))
    })();
    // A read transaction has nothing to commit; ending it releases the snapshot.
    let ended = source.execute_batch("COMMIT").map_err(map_sqlite);
    let pages = copied?;
    ended?;
    // The copy is checked before it is trusted: its pages must form a sound database.
    let check: String = dest
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(map_sqlite)?;
    if check != "ok" {
        return Err(Error::corrupt(format!(
            "the backup copy fails quick_check: {check}"
        )));
    }
    dest.close().map_err(|(_, e)| map_sqlite(e))?;
    Ok(pages)
}
