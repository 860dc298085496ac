//! A VFS that writes the write-ahead log in large pieces.
//!
//! SQLite appends a commit to the log one page at a time, with two `pwrite` calls per page
//! (the 24-byte frame header, then the page), and then calls `fsync`. With 1 KiB pages and a
//! group commit of 64 transfers that is several hundred system calls per commit, each paying
//! the file system's per-write costs (page-cache lookup, block mapping, time stamps): a
//! profile of the writer thread put 21 % of its time in those writes.
//!
//! The `wallet-wal` VFS is SQLite's own `unix` VFS with one difference: the log file's
//! writes are gathered in memory while they follow one another, and handed to the kernel in one
//! `pwrite` when something needs them in the file. Everything else, the database file and its
//! shared-memory index included, is the `unix` VFS's own file object, untouched.
//!
//! When the gathered bytes go to the file, always before SQLite could rely on them:
//! - before `xSync` (the commit's `fsync`), `xRead`, `xTruncate`, `xFileSize`,
//!   `xFileControl` and `xClose` on the log;
//! - before a write that does not continue the gathered run (SQLite rewriting a frame in
//!   place), so writes reach the file in the order SQLite issued them;
//! - when the buffer would exceed [`BUFFER_MAX`].
//!
//! Only the writer's connection uses it, and only with `synchronous = FULL`: a commit's frames
//! become visible to other connections when SQLite publishes them in the shared-memory index,
//! which it does after the commit's `xSync` on the log, so every published frame is already in
//! the file. (With `synchronous = NORMAL` there is no `xSync` before publishing, so the store
//! opens the writer with the plain `unix` VFS then.) A write error is reported by the call that
//! flushes, which is the commit's `xSync` at the latest: the commit fails and SQLite rolls it
//! back, exactly as if the `pwrite` itself had failed. (A flush in a call whose result SQLite
//! ignores, a file-control hint, is reported again by the next `xSync`.) Gathered bytes lost in a crash are bytes
//! the process had not written yet, which SQLite's recovery already treats as never written.

// This module is a SQLite VFS: FFI by nature. Every unsafe block says why it is sound.
#![allow(unsafe_code)]

use std::ffi::{CStr, c_int, c_void};
use std::ptr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::ffi;

/// The name the VFS is registered under.
pub(crate) const NAME: &str = "wallet-wal";
const NAME_C: &CStr = c"wallet-wal";

/// The most bytes gathered before they are written out regardless.
pub(crate) const BUFFER_MAX: usize = 4 << 20;

/// The most bytes handed to unix's `xWrite` at once: it takes at most `0x1ffff` bytes per call
/// (it masks larger sizes), so gathered bytes go out in pieces of 124 KiB.
const WRITE_MAX: usize = 0x1_F000;

/// Log writes gathered in memory: `data` belongs at offset `start` of the file.
struct Gathered {
    start: i64,
    data: Vec<u8>,
    /// The error of a flush whose caller may have ignored it (SQLite ignores the result of
    /// file-control hints and of closing): the next `xSync` reports it, so the commit whose
    /// frames were lost fails rather than being published without them.
    failed: c_int,
}

/// The file object of a log opened through this VFS. SQLite allocates `szOsFile` bytes for it
/// and passes them to `xOpen`; the `unix` file object lives at [`INNER_OFFSET`].
#[repr(C)]
struct LogFile {
    /// Must come first: SQLite sees a `sqlite3_file`.
    base: ffi::sqlite3_file,
    gathered: Gathered,
}

/// Where the wrapped `unix` file object starts inside a [`LogFile`]'s allocation.
const INNER_OFFSET: usize = std::mem::size_of::<LogFile>().next_multiple_of(16);

/// The `unix` VFS, found once.
struct Unix(*mut ffi::sqlite3_vfs);
// SAFETY: the pointer is to SQLite's static `unix` VFS object, which lives as long as the
// process and is only read.
unsafe impl Send for Unix {}
// SAFETY: as above; it is never written through.
unsafe impl Sync for Unix {}

static UNIX: OnceLock<Option<Unix>> = OnceLock::new();

/// Log writes SQLite asked for, and writes handed to the kernel, in this process.
static ASKED: AtomicU64 = AtomicU64::new(0);
static WRITTEN: AtomicU64 = AtomicU64::new(0);

/// How many log writes SQLite asked for and how many reached the kernel, so far.
#[cfg(test)]
pub(crate) fn writes() -> (u64, u64) {
    (
        ASKED.load(Ordering::Relaxed),
        WRITTEN.load(Ordering::Relaxed),
    )
}
static REGISTERED: OnceLock<bool> = OnceLock::new();

/// Registers the VFS (once per process) and says whether it is available. It is not where
/// SQLite has no `unix` VFS (other platforms) or registration failed; the store then opens
/// the writer with the default VFS.
pub(crate) fn available() -> bool {
    *REGISTERED.get_or_init(register)
}

fn register() -> bool {
    // SAFETY: sqlite3_vfs_find only reads SQLite's VFS list (it initializes SQLite first if
    // needed) and returns a pointer to a static object or null.
    let unix = unsafe { ffi::sqlite3_vfs_find(c"unix".as_ptr()) };
    if unix.is_null() {
        return false;
    }
    let _ = UNIX.set(Some(Unix(unix)));
    // SAFETY: `unix` is non-null and points to SQLite's static VFS object.
    let mut vfs: ffi::sqlite3_vfs = unsafe { *unix };
    let Ok(inner_size) = usize::try_from(vfs.szOsFile) else {
        return false;
    };
    let Ok(size) = c_int::try_from(INNER_OFFSET + inner_size) else {
        return false;
    };
    // A copy of `unix` that differs in its name, its file object's size and its `xOpen`. The
    // other methods are unix's own, which use their VFS argument only for `mxPathname` and
    // `pAppData` (both copied): SQLite itself defines its `unix-*` variants the same way.
    vfs.szOsFile = size;
    vfs.zName = NAME_C.as_ptr();
    vfs.pNext = ptr::null_mut();
    vfs.xOpen = Some(open);
    let vfs = Box::leak(Box::new(vfs));
    // SAFETY: `vfs` is a valid, leaked (so never freed) VFS object; 0 keeps the default VFS.
    let rc = unsafe { ffi::sqlite3_vfs_register(vfs, 0) };
    rc == ffi::SQLITE_OK
}

fn unix() -> *mut ffi::sqlite3_vfs {
    match UNIX.get() {
        Some(Some(u)) => u.0,
        _ => ptr::null_mut(),
    }
}

/// The `unix` file object wrapped by `file`.
///
/// # Safety
/// `file` must be a [`LogFile`] opened by [`open`].
unsafe fn inner(file: *mut ffi::sqlite3_file) -> *mut ffi::sqlite3_file {
    // SAFETY: the caller guarantees the allocation is `szOsFile` bytes long, which covers
    // INNER_OFFSET plus the unix file object.
    unsafe { file.cast::<u8>().add(INNER_OFFSET).cast() }
}

/// The unix methods of an opened inner file.
///
/// # Safety
/// `inner` must be an opened unix file object.
unsafe fn methods(inner: *mut ffi::sqlite3_file) -> &'static ffi::sqlite3_io_methods {
    // SAFETY: an opened unix file points to one of unix's static method tables.
    unsafe { &*(*inner).pMethods }
}

unsafe extern "C" fn open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let unix = unix();
    // SAFETY: `unix` is SQLite's static unix VFS (registration succeeded only with it).
    let Some(unix_open) = (unsafe { unix.as_ref() }).and_then(|u| u.xOpen) else {
        return ffi::SQLITE_ERROR;
    };
    if flags & ffi::SQLITE_OPEN_WAL == 0 {
        // Anything but a log is unix's own object, at the start of the allocation (which is
        // larger than unix needs).
        // SAFETY: forwarding SQLite's own arguments; `file` has room for a unix file.
        return unsafe { unix_open(unix, name, file, flags, out_flags) };
    }
    // SAFETY: `file` has szOsFile bytes: the LogFile header, then the unix file object.
    unsafe {
        let inner = inner(file);
        (*file).pMethods = ptr::null();
        let rc = unix_open(unix, name, inner, flags, out_flags);
        if rc != ffi::SQLITE_OK {
            if !(*inner).pMethods.is_null()
                && let Some(close) = methods(inner).xClose
            {
                close(inner);
            }
            return rc;
        }
        let log = file.cast::<LogFile>();
        ptr::addr_of_mut!((*log).gathered).write(Gathered {
            start: 0,
            data: Vec::with_capacity(64 << 10),
            failed: ffi::SQLITE_OK,
        });
        (*file).pMethods = &LOG_METHODS;
    }
    ffi::SQLITE_OK
}

/// Writes the gathered bytes to the file, in pieces of at most [`WRITE_MAX`] bytes (one
/// `pwrite` each; unix's `xWrite` loops over short writes itself). Whatever happens, the bytes
/// were handed over once and are dropped: a failure fails the commit they belong to (the
/// caller reports it, or the next `xSync` does, see [`Gathered::failed`]), and SQLite writes
/// the frames again if the transaction is retried.
///
/// # Safety
/// `file` must be an open [`LogFile`].
unsafe fn flush(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: per the contract, `file` is an open LogFile and its inner file is open.
    unsafe {
        let log = file.cast::<LogFile>();
        let gathered = &mut (*log).gathered;
        if gathered.data.is_empty() {
            return ffi::SQLITE_OK;
        }
        let inner = inner(file);
        let mut rc = ffi::SQLITE_OK;
        let mut offset = gathered.start;
        for piece in gathered.data.chunks(WRITE_MAX) {
            // A piece is at most WRITE_MAX bytes, which fits both types.
            let (Some(write), Ok(amount), Ok(step)) = (
                methods(inner).xWrite,
                c_int::try_from(piece.len()),
                i64::try_from(piece.len()),
            ) else {
                rc = ffi::SQLITE_IOERR_WRITE;
                break;
            };
            rc = write(inner, piece.as_ptr().cast(), amount, offset);
            WRITTEN.fetch_add(1, Ordering::Relaxed);
            if rc != ffi::SQLITE_OK {
                break;
            }
            offset += step;
        }
        gathered.data.clear();
        if gathered.data.capacity() > BUFFER_MAX {
            gathered.data.shrink_to(BUFFER_MAX);
        }
        rc
    }
}

/// [`flush`] for a caller whose result SQLite may ignore: a failure is also kept for the next
/// `xSync`.
///
/// # Safety
/// `file` must be an open [`LogFile`].
unsafe fn flush_or_remember(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: per the contract, `file` is an open LogFile.
    unsafe {
        let rc = flush(file);
        if rc != ffi::SQLITE_OK {
            (*file.cast::<LogFile>()).gathered.failed = rc;
        }
        rc
    }
}

/// Runs `then` on the inner file after flushing, or returns the flush's error.
macro_rules! flushed {
    ($file:expr, $method:ident, |$f:ident, $m:ident| $then:expr) => {{
        // SAFETY: SQLite calls these methods only on a file `open` set LOG_METHODS on.
        let rc = unsafe { flush($file) };
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        // SAFETY: as above; the inner file is open.
        unsafe {
            let $f = inner($file);
            match methods($f).$method {
                Some($m) => $then,
                None => ffi::SQLITE_IOERR,
            }
        }
    }};
}

unsafe extern "C" fn log_close(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: SQLite closes a file once; `open` initialized `gathered` and the inner file.
    unsafe {
        let flushed = flush(file);
        let inner = inner(file);
        let closed = match methods(inner).xClose {
            Some(close) => close(inner),
            None => ffi::SQLITE_OK,
        };
        ptr::drop_in_place(ptr::addr_of_mut!((*file.cast::<LogFile>()).gathered));
        (*file).pMethods = ptr::null();
        if flushed != ffi::SQLITE_OK {
            flushed
        } else {
            closed
        }
    }
}

unsafe extern "C" fn log_write(
    file: *mut ffi::sqlite3_file,
    buf: *const c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    let Ok(len) = usize::try_from(amount) else {
        return ffi::SQLITE_IOERR_WRITE;
    };
    ASKED.fetch_add(1, Ordering::Relaxed);
    // SAFETY: SQLite passes an open LogFile and `amount` readable bytes at `buf`.
    unsafe {
        let log = file.cast::<LogFile>();
        let continues = {
            let g = &(*log).gathered;
            !g.data.is_empty()
                && i64::try_from(g.data.len()).is_ok_and(|n| g.start.checked_add(n) == Some(offset))
                && g.data.len() + len <= BUFFER_MAX
        };
        if !continues {
            let rc = flush(file);
            if rc != ffi::SQLITE_OK {
                return rc;
            }
            if len > WRITE_MAX {
                // SQLite writes a header or a page at a time, never more than 64 KiB; anything
                // larger goes straight through, as it came.
                let inner = inner(file);
                WRITTEN.fetch_add(1, Ordering::Relaxed);
                return match methods(inner).xWrite {
                    Some(write) => write(inner, buf, amount, offset),
                    None => ffi::SQLITE_IOERR_WRITE,
                };
            }
            (*log).gathered.start = offset;
        }
        let bytes = std::slice::from_raw_parts(buf.cast::<u8>(), len);
        (*log).gathered.data.extend_from_slice(bytes);
    }
    ffi::SQLITE_OK
}

unsafe extern "C" fn log_read(
    file: *mut ffi::sqlite3_file,
    buf: *mut c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    flushed!(file, xRead, |f, read| read(f, buf, amount, offset))
}

unsafe extern "C" fn log_truncate(file: *mut ffi::sqlite3_file, size: ffi::sqlite3_int64) -> c_int {
    flushed!(file, xTruncate, |f, truncate| truncate(f, size))
}

unsafe extern "C" fn log_sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    // SAFETY: SQLite calls this only on a file `open` set LOG_METHODS on.
    unsafe {
        let flushed = flush(file);
        let earlier = std::mem::replace(
            &mut (*file.cast::<LogFile>()).gathered.failed,
            ffi::SQLITE_OK,
        );
        if flushed != ffi::SQLITE_OK {
            return flushed;
        }
        if earlier != ffi::SQLITE_OK {
            // Bytes of this transaction never reached the file: the commit must fail.
            return earlier;
        }
        let f = inner(file);
        match methods(f).xSync {
            Some(sync) => sync(f, flags),
            None => ffi::SQLITE_IOERR_FSYNC,
        }
    }
}

unsafe extern "C" fn log_file_size(
    file: *mut ffi::sqlite3_file,
    size: *mut ffi::sqlite3_int64,
) -> c_int {
    flushed!(file, xFileSize, |f, file_size| file_size(f, size))
}

unsafe extern "C" fn log_file_control(
    file: *mut ffi::sqlite3_file,
    op: c_int,
    arg: *mut c_void,
) -> c_int {
    // SQLite ignores the result of file-control hints: a failed flush is remembered.
    // SAFETY: SQLite calls this only on a file `open` set LOG_METHODS on.
    let rc = unsafe { flush_or_remember(file) };
    if rc != ffi::SQLITE_OK {
        return rc;
    }
    // SAFETY: as above; the inner file is open.
    unsafe {
        let f = inner(file);
        match methods(f).xFileControl {
            Some(control) => control(f, op, arg),
            None => ffi::SQLITE_NOTFOUND,
        }
    }
}

/// Forwards a method that does not touch the log's contents.
macro_rules! forward {
    ($name:ident, $method:ident, ($($arg:ident: $ty:ty),*) -> $ret:ty, $missing:expr) => {
        unsafe extern "C" fn $name(file: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> $ret {
            // SAFETY: SQLite calls these methods only on a file `open` set LOG_METHODS on.
            unsafe {
                let f = inner(file);
                match methods(f).$method {
                    Some(m) => m(f $(, $arg)*),
                    None => $missing,
                }
            }
        }
    };
}

forward!(log_lock, xLock, (level: c_int) -> c_int, ffi::SQLITE_OK);
forward!(log_unlock, xUnlock, (level: c_int) -> c_int, ffi::SQLITE_OK);
forward!(log_check_reserved, xCheckReservedLock, (out: *mut c_int) -> c_int, ffi::SQLITE_OK);
forward!(log_sector_size, xSectorSize, () -> c_int, 4096);
forward!(log_device, xDeviceCharacteristics, () -> c_int, 0);
forward!(log_shm_map, xShmMap,
    (page: c_int, size: c_int, extend: c_int, out: *mut *mut c_void) -> c_int, ffi::SQLITE_IOERR);
forward!(log_shm_lock, xShmLock, (offset: c_int, n: c_int, flags: c_int) -> c_int,
    ffi::SQLITE_IOERR);
forward!(log_shm_unmap, xShmUnmap, (delete: c_int) -> c_int, ffi::SQLITE_OK);
forward!(log_unfetch, xUnfetch, (offset: ffi::sqlite3_int64, p: *mut c_void) -> c_int,
    ffi::SQLITE_OK);

unsafe extern "C" fn log_shm_barrier(file: *mut ffi::sqlite3_file) {
    // SAFETY: SQLite calls this only on a file `open` set LOG_METHODS on.
    unsafe {
        let f = inner(file);
        if let Some(barrier) = methods(f).xShmBarrier {
            barrier(f);
        }
    }
}

unsafe extern "C" fn log_fetch(
    _file: *mut ffi::sqlite3_file,
    _offset: ffi::sqlite3_int64,
    _amount: c_int,
    out: *mut *mut c_void,
) -> c_int {
    // The log is never memory-mapped (its latest bytes may still be gathered here); a fetch
    // that returns no mapping makes SQLite read instead.
    // SAFETY: `out` is SQLite's pointer to receive the mapping.
    unsafe { *out = ptr::null_mut() };
    ffi::SQLITE_OK
}

static LOG_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(log_close),
    xRead: Some(log_read),
    xWrite: Some(log_write),
    xTruncate: Some(log_truncate),
    xSync: Some(log_sync),
    xFileSize: Some(log_file_size),
    xLock: Some(log_lock),
    xUnlock: Some(log_unlock),
    xCheckReservedLock: Some(log_check_reserved),
    xFileControl: Some(log_file_control),
    xSectorSize: Some(log_sector_size),
    xDeviceCharacteristics: Some(log_device),
    xShmMap: Some(log_shm_map),
    xShmLock: Some(log_shm_lock),
    xShmBarrier: Some(log_shm_barrier),
    xShmUnmap: Some(log_shm_unmap),
    xFetch: Some(log_fetch),
    xUnfetch: Some(log_unfetch),
};

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use proptest::prelude::*;
    use rusqlite::{Connection, OpenFlags, params};

    use super::*;

    /// The write counters are per process: the tests that write through the VFS take turns.
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn turn() -> std::sync::MutexGuard<'static, ()> {
        TURN.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A connection through the gathering VFS, as the store's writer has: WAL, FULL, 1 KiB
    /// pages, and a small cache so that big transactions spill frames before they commit.
    fn gathering(path: &Path) -> Connection {
        assert!(available(), "the unix VFS exists on this platform");
        let conn = Connection::open_with_flags_and_vfs(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
            NAME,
        )
        .unwrap();
        conn.execute_batch(
            "PRAGMA page_size = 1024; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
             PRAGMA cache_size = 64; PRAGMA wal_autocheckpoint = 0;
             CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v BLOB NOT NULL);
             CREATE INDEX IF NOT EXISTS t_v ON t (v);",
        )
        .unwrap();
        conn
    }

    /// Another connection on the same file through plain `unix`, as the store's readers and
    /// checkpointer have.
    fn plain(path: &Path) -> Connection {
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE).unwrap()
    }

    fn contents(conn: &Connection) -> BTreeMap<i64, Vec<u8>> {
        let mut stmt = conn.prepare("SELECT k, v FROM t ORDER BY k").unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    fn integrity(conn: &Connection) -> String {
        conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap()
    }

    /// `len` pseudo-random bytes determined by `seed`.
    fn blob(seed: i64, len: usize) -> Vec<u8> {
        let mut x = seed.unsigned_abs();
        (0..len)
            .map(|_| {
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                x.to_le_bytes()[7]
            })
            .collect()
    }

    #[test]
    fn a_commit_reaches_the_kernel_in_few_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("few.db");
        let _turn = turn();
        let conn = gathering(&path);
        // A cache that holds the whole transaction: nothing spills before the commit.
        conn.execute_batch("PRAGMA cache_size = -16384").unwrap();
        let (asked0, written0) = writes();
        let tx = conn.unchecked_transaction().unwrap();
        for k in 0..200 {
            tx.execute(
                "INSERT INTO t (k, v) VALUES (?1, ?2)",
                params![k, blob(k, 300)],
            )
            .unwrap();
        }
        tx.commit().unwrap();
        let (asked, written) = writes();
        // Other tests run in parallel and count too, so compare this test's own share loosely:
        // SQLite asked for two writes per page (header, page) of well over a hundred pages.
        assert!(asked - asked0 >= 200, "asked {}", asked - asked0);
        assert!(
            (written - written0) * 10 < asked - asked0,
            "written {} of {}",
            written - written0,
            asked - asked0
        );
        assert_eq!(contents(&plain(&path)).len(), 200);
    }

    #[test]
    fn transactions_larger_than_the_buffer_and_the_cache_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.db");
        let mut model = BTreeMap::new();
        let _turn = turn();
        {
            let conn = gathering(&path);
            // About 12 MiB in one transaction: more than BUFFER_MAX, with a 64-page cache
            // that spills (and reads back) frames long before the commit.
            let tx = conn.unchecked_transaction().unwrap();
            for k in 0..6_000 {
                let v = blob(k, 2_000);
                tx.execute("INSERT INTO t (k, v) VALUES (?1, ?2)", params![k, v])
                    .unwrap();
                model.insert(k, v);
            }
            // Rewrite some of it inside the same transaction, and undo part of that.
            tx.execute_batch("SAVEPOINT s").unwrap();
            tx.execute("UPDATE t SET v = x'00' WHERE k % 3 = 0", [])
                .unwrap();
            tx.execute_batch("ROLLBACK TO s; RELEASE s").unwrap();
            tx.execute("DELETE FROM t WHERE k % 5 = 0", []).unwrap();
            model.retain(|k, _| k % 5 != 0);
            tx.commit().unwrap();
            // Another connection sees the commit while the writer is still open.
            assert_eq!(contents(&plain(&path)), model);
        }
        let reopened = plain(&path);
        assert_eq!(integrity(&reopened), "ok");
        assert_eq!(contents(&reopened), model);
    }

    #[derive(Debug, Clone)]
    enum Step {
        Put(i64, usize),
        Delete(i64),
        /// Runs the steps before it in a savepoint that is rolled back.
        Undo(Vec<(i64, usize)>),
        Commit,
        Checkpoint,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            6 => (0i64..400, 1usize..3_000).prop_map(|(k, n)| Step::Put(k, n)),
            2 => (0i64..400).prop_map(Step::Delete),
            1 => proptest::collection::vec((0i64..400, 1usize..3_000), 1..20).prop_map(Step::Undo),
            2 => Just(Step::Commit),
            1 => Just(Step::Checkpoint),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Whatever SQLite writes through the VFS, another connection reading through plain
        /// `unix` sees exactly the committed state after every commit, and the file is sound.
        #[test]
        fn other_connections_see_exactly_what_was_committed(steps in proptest::collection::vec(step(), 1..120)) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("model.db");
            let _turn = turn();
            let conn = gathering(&path);
            let reader = plain(&path);
            let mut committed: BTreeMap<i64, Vec<u8>> = BTreeMap::new();
            let mut open = committed.clone();
            conn.execute_batch("BEGIN IMMEDIATE").unwrap();
            for s in steps.iter().chain([&Step::Commit]) {
                match s {
                    Step::Put(k, n) => {
                        let v = blob(*k + 1_000, *n);
                        conn.execute("INSERT OR REPLACE INTO t (k, v) VALUES (?1, ?2)", params![k, v]).unwrap();
                        open.insert(*k, v);
                    }
                    Step::Delete(k) => {
                        conn.execute("DELETE FROM t WHERE k = ?1", params![k]).unwrap();
                        open.remove(k);
                    }
                    Step::Undo(puts) => {
                        conn.execute_batch("SAVEPOINT u").unwrap();
                        for (k, n) in puts {
                            conn.execute("INSERT OR REPLACE INTO t (k, v) VALUES (?1, ?2)", params![k, blob(*k, *n)]).unwrap();
                        }
                        conn.execute_batch("ROLLBACK TO u; RELEASE u").unwrap();
                    }
                    Step::Commit => {
                        conn.execute_batch("COMMIT").unwrap();
                        committed = open.clone();
                        prop_assert_eq!(&contents(&reader), &committed);
                        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
                    }
                    Step::Checkpoint => {
                        // From the plain connection, as the store's checkpointer does; it copies
                        // only what is committed, and the writer restarts the log after it.
                        let _: (i64, i64, i64) = reader
                            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                            .unwrap();
                    }
                }
            }
            conn.execute_batch("ROLLBACK").unwrap();
            drop(conn);
            prop_assert_eq!(integrity(&reader), "ok");
            prop_assert_eq!(contents(&reader), committed);
        }
    }
}
