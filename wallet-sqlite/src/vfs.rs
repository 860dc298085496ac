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
//! `pwrite` when something needs them in the file. Everything else is the `unix` VFS's own
//! file object; the database file's is wrapped only to see when the log's write lock is
//! released (below).
//!
//! When the gathered bytes go to the file, always before SQLite could rely on them:
//! - before `xSync` (the commit's `fsync`), `xRead`, `xTruncate`, `xFileSize`,
//!   `xFileControl` and `xClose` on the log;
//! - before a write that does not continue the gathered run (SQLite rewriting a frame in
//!   place), so writes reach the file in the order SQLite issued them;
//! - when the buffer would exceed [`BUFFER_MAX`];
//! - before the connection releases the log's write lock (`xShmLock` on the database file).
//!   Only the holder of that lock writes frames: bytes still gathered when it is released
//!   (frames a transaction spilled before it rolled back) would otherwise reach the file
//!   later, on top of frames another connection has committed there meanwhile.
//!
//! Only the writer's connection uses it, and only with `synchronous = FULL`: a commit's frames
//! become visible to other connections when SQLite publishes them in the shared-memory index,
//! which it does after the commit's `xSync` on the log, so every published frame is already in
//! the file. (With `synchronous = NORMAL` there is no `xSync` before publishing, so the store
//! opens the writer with the plain `unix` VFS then. Nor is there one after the last frame when
//! SQLite pads a commit to a sector boundary, which it does when the database file does not
//! promise powersafe overwrite, `psow=0`: such a log is opened without gathering.)
//!
//! A write error is reported by the call that flushes, and also kept until the next `xSync`,
//! which fails: SQLite handles a failed write by refusing to commit the transaction, but a
//! failed read (or a file-control hint, whose result it ignores) may only fail one statement,
//! and the transaction would commit without the frames. The kept error is dropped when the
//! write lock is released: the transaction it belonged to is over. Gathered bytes lost in a
//! crash are bytes the process had not written yet, which SQLite's recovery already treats as
//! never written.

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

/// The log's write lock: SQLite's `WAL_WRITE_LOCK`, the first shared-memory lock.
const WAL_WRITE_LOCK: c_int = 0;

/// Log writes gathered in memory: `data` belongs at offset `start` of the file.
struct Gathered {
    start: i64,
    data: Vec<u8>,
    /// The error of a failed flush, reported again by the next `xSync` so that the transaction
    /// whose frames were lost cannot commit (see the module's docs).
    failed: c_int,
}

/// The file object of a log opened through this VFS. SQLite allocates `szOsFile` bytes for it
/// and passes them to `xOpen`; the `unix` file object lives at [`INNER_OFFSET`].
#[repr(C)]
struct LogFile {
    /// Must come first: SQLite sees a `sqlite3_file`.
    base: ffi::sqlite3_file,
    gathered: Gathered,
    /// The database file this log belongs to (same connection), which points back here.
    db: *mut DbFile,
}

/// The file object of a main database opened through this VFS; the `unix` file object lives
/// at [`INNER_OFFSET`].
#[repr(C)]
struct DbFile {
    /// Must come first: SQLite sees a `sqlite3_file`.
    base: ffi::sqlite3_file,
    /// The log opened through this VFS for this database, or null.
    log: *mut LogFile,
}

/// Where the wrapped `unix` file object starts inside a [`LogFile`]'s or [`DbFile`]'s
/// allocation.
const INNER_OFFSET: usize = {
    let log = std::mem::size_of::<LogFile>();
    let db = std::mem::size_of::<DbFile>();
    (if log > db { log } else { db }).next_multiple_of(16)
};

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
/// `file` must be a [`LogFile`] or [`DbFile`] opened by [`open`].
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

/// Opens unix's file object at `INNER_OFFSET` of `file`, leaving `file` closed (no methods)
/// if that fails.
///
/// # Safety
/// As `xOpen`; `file` has `szOsFile` bytes.
unsafe fn open_inner(
    unix: *mut ffi::sqlite3_vfs,
    unix_open: unsafe extern "C" fn(
        *mut ffi::sqlite3_vfs,
        ffi::sqlite3_filename,
        *mut ffi::sqlite3_file,
        c_int,
        *mut c_int,
    ) -> c_int,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    // SAFETY: per the contract, `file` has room for the header and the unix object.
    unsafe {
        let inner = inner(file);
        (*file).pMethods = ptr::null();
        (*inner).pMethods = ptr::null();
        let rc = unix_open(unix, name, inner, flags, out_flags);
        if rc != ffi::SQLITE_OK
            && !(*inner).pMethods.is_null()
            && let Some(close) = methods(inner).xClose
        {
            close(inner);
        }
        rc
    }
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
    if flags & ffi::SQLITE_OPEN_MAIN_DB != 0 && !name.is_null() {
        // SAFETY: `file` has szOsFile bytes: the DbFile header, then the unix file object.
        unsafe {
            let rc = open_inner(unix, unix_open, name, file, flags, out_flags);
            if rc != ffi::SQLITE_OK {
                return rc;
            }
            let db = file.cast::<DbFile>();
            ptr::addr_of_mut!((*db).log).write(ptr::null_mut());
            (*file).pMethods = &DB_METHODS;
        }
        return ffi::SQLITE_OK;
    }
    // The database this log belongs to, if it was opened here and promises powersafe
    // overwrite (otherwise SQLite pads commits and writes after their sync, see the docs).
    // SQLite names the database file object of a log being opened
    // (`sqlite3_database_file_object`, meant for VFSes); it is ours if it has our methods.
    // SAFETY: `name` is the log name SQLite passed to this xOpen, as that function requires;
    // the database file it returns is open, belongs to the same connection and thread.
    let db = (flags & ffi::SQLITE_OPEN_WAL != 0 && !name.is_null())
        .then(|| unsafe {
            let found = ffi::sqlite3_database_file_object(name);
            if found.is_null() || !ptr::eq((*found).pMethods, &DB_METHODS) {
                return None;
            }
            let found = found.cast::<DbFile>();
            let db_inner = inner(found.cast());
            let characteristics = methods(db_inner).xDeviceCharacteristics?(db_inner);
            (characteristics & ffi::SQLITE_IOCAP_POWERSAFE_OVERWRITE != 0).then_some(found)
        })
        .flatten();
    let Some(db) = db else {
        // Anything but a log we can gather is unix's own object, at the start of the
        // allocation (which is larger than unix needs).
        // SAFETY: forwarding SQLite's own arguments; `file` has room for a unix file.
        return unsafe { unix_open(unix, name, file, flags, out_flags) };
    };
    // SAFETY: `file` has szOsFile bytes: the LogFile header, then the unix file object. `db`
    // is this connection's database file (the log's name is its database's), used by the
    // same thread.
    unsafe {
        let rc = open_inner(unix, unix_open, name, file, flags, out_flags);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        let log = file.cast::<LogFile>();
        ptr::addr_of_mut!((*log).gathered).write(Gathered {
            start: 0,
            data: Vec::with_capacity(64 << 10),
            failed: ffi::SQLITE_OK,
        });
        ptr::addr_of_mut!((*log).db).write(db);
        (*db).log = log;
        (*file).pMethods = &LOG_METHODS;
    }
    ffi::SQLITE_OK
}

/// Writes the gathered bytes to the file, in pieces of at most [`WRITE_MAX`] bytes (one
/// `pwrite` each; unix's `xWrite` loops over short writes itself). Whatever happens, the bytes
/// were handed over once and are dropped; a failure is returned and also kept in
/// [`Gathered::failed`] for the next `xSync`, so the transaction they belong to cannot commit.
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
        if rc != ffi::SQLITE_OK {
            gathered.failed = rc;
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
    // SAFETY: SQLite closes a file once; `open` initialized `gathered`, `db` and the inner
    // file. The database file outlives its log (SQLite closes the log first) and belongs to
    // the same connection.
    unsafe {
        let flushed = flush(file);
        let log = file.cast::<LogFile>();
        let db = (*log).db;
        if !db.is_null() && ptr::eq((*db).log, log) {
            (*db).log = ptr::null_mut();
        }
        let inner = inner(file);
        let closed = match methods(inner).xClose {
            Some(close) => close(inner),
            None => ffi::SQLITE_OK,
        };
        ptr::drop_in_place(ptr::addr_of_mut!((*log).gathered));
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
        // A failure here is kept in `failed` too, and reported just below.
        let _ = flush(file);
        let failed = std::mem::replace(
            &mut (*file.cast::<LogFile>()).gathered.failed,
            ffi::SQLITE_OK,
        );
        if failed != ffi::SQLITE_OK {
            // Bytes of this transaction never reached the file: the commit must fail.
            return failed;
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
    // SQLite ignores the result of file-control hints: a failed flush is kept for `xSync`.
    flushed!(file, xFileControl, |f, control| control(f, op, arg))
}

/// Forwards a method to the wrapped unix file untouched.
macro_rules! forward {
    ($name:ident, $method:ident, ($($arg:ident: $ty:ty),*) -> $ret:ty, $missing:expr) => {
        unsafe extern "C" fn $name(file: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> $ret {
            // SAFETY: SQLite calls these methods only on a file `open` set LOG_METHODS or
            // DB_METHODS on.
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

forward!(fwd_read, xRead,
    (buf: *mut c_void, amount: c_int, offset: ffi::sqlite3_int64) -> c_int, ffi::SQLITE_IOERR_READ);
forward!(fwd_write, xWrite,
    (buf: *const c_void, amount: c_int, offset: ffi::sqlite3_int64) -> c_int,
    ffi::SQLITE_IOERR_WRITE);
forward!(fwd_truncate, xTruncate, (size: ffi::sqlite3_int64) -> c_int, ffi::SQLITE_IOERR_TRUNCATE);
forward!(fwd_sync, xSync, (flags: c_int) -> c_int, ffi::SQLITE_IOERR_FSYNC);
forward!(fwd_file_size, xFileSize, (size: *mut ffi::sqlite3_int64) -> c_int,
    ffi::SQLITE_IOERR_FSTAT);
forward!(fwd_file_control, xFileControl, (op: c_int, arg: *mut c_void) -> c_int,
    ffi::SQLITE_NOTFOUND);
forward!(fwd_lock, xLock, (level: c_int) -> c_int, ffi::SQLITE_OK);
forward!(fwd_unlock, xUnlock, (level: c_int) -> c_int, ffi::SQLITE_OK);
forward!(fwd_check_reserved, xCheckReservedLock, (out: *mut c_int) -> c_int, ffi::SQLITE_OK);
forward!(fwd_sector_size, xSectorSize, () -> c_int, 4096);
forward!(fwd_device, xDeviceCharacteristics, () -> c_int, 0);
forward!(fwd_shm_map, xShmMap,
    (page: c_int, size: c_int, extend: c_int, out: *mut *mut c_void) -> c_int, ffi::SQLITE_IOERR);
forward!(fwd_shm_lock, xShmLock, (offset: c_int, n: c_int, flags: c_int) -> c_int,
    ffi::SQLITE_IOERR);
forward!(fwd_shm_unmap, xShmUnmap, (delete: c_int) -> c_int, ffi::SQLITE_OK);
forward!(fwd_fetch, xFetch,
(offset: ffi::sqlite3_int64, amount: c_int, out: *mut *mut c_void) -> c_int, {
    // No mapping: SQLite reads instead.
    *out = ptr::null_mut();
    ffi::SQLITE_OK
});
forward!(fwd_unfetch, xUnfetch, (offset: ffi::sqlite3_int64, p: *mut c_void) -> c_int,
    ffi::SQLITE_OK);

unsafe extern "C" fn fwd_shm_barrier(file: *mut ffi::sqlite3_file) {
    // SAFETY: SQLite calls this only on a file `open` set LOG_METHODS or DB_METHODS on.
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
    xLock: Some(fwd_lock),
    xUnlock: Some(fwd_unlock),
    xCheckReservedLock: Some(fwd_check_reserved),
    xFileControl: Some(log_file_control),
    xSectorSize: Some(fwd_sector_size),
    xDeviceCharacteristics: Some(fwd_device),
    xShmMap: Some(fwd_shm_map),
    xShmLock: Some(fwd_shm_lock),
    xShmBarrier: Some(fwd_shm_barrier),
    xShmUnmap: Some(fwd_shm_unmap),
    xFetch: Some(log_fetch),
    xUnfetch: Some(fwd_unfetch),
};

unsafe extern "C" fn db_close(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: SQLite closes a file once; `open` initialized the header.
    unsafe {
        let db = file.cast::<DbFile>();
        let log = (*db).log;
        if !log.is_null() {
            // SQLite closes the log first; should it not, the log must not reach back here.
            (*log).db = ptr::null_mut();
        }
        let inner = inner(file);
        let closed = match methods(inner).xClose {
            Some(close) => close(inner),
            None => ffi::SQLITE_OK,
        };
        (*file).pMethods = ptr::null();
        closed
    }
}

unsafe extern "C" fn db_shm_lock(
    file: *mut ffi::sqlite3_file,
    offset: c_int,
    n: c_int,
    flags: c_int,
) -> c_int {
    // SAFETY: SQLite calls this only on a file `open` set DB_METHODS on; its log (if any) is
    // open and belongs to the same connection.
    unsafe {
        let log = (*file.cast::<DbFile>()).log;
        let releases_writer = flags == ffi::SQLITE_SHM_UNLOCK | ffi::SQLITE_SHM_EXCLUSIVE
            && offset <= WAL_WRITE_LOCK
            && offset + n > WAL_WRITE_LOCK;
        if releases_writer && !log.is_null() {
            // Frames still gathered belong to a transaction that ended without committing
            // them (a commit syncs, which flushes): they go out now, while no other
            // connection can write frames, as unix would have written them. The transaction
            // is over, and with it any error kept for its commit.
            let _ = flush(log.cast());
            (*log).gathered.failed = ffi::SQLITE_OK;
        }
        fwd_shm_lock(file, offset, n, flags)
    }
}

static DB_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(db_close),
    xRead: Some(fwd_read),
    xWrite: Some(fwd_write),
    xTruncate: Some(fwd_truncate),
    xSync: Some(fwd_sync),
    xFileSize: Some(fwd_file_size),
    xLock: Some(fwd_lock),
    xUnlock: Some(fwd_unlock),
    xCheckReservedLock: Some(fwd_check_reserved),
    xFileControl: Some(fwd_file_control),
    xSectorSize: Some(fwd_sector_size),
    xDeviceCharacteristics: Some(fwd_device),
    xShmMap: Some(fwd_shm_map),
    xShmLock: Some(db_shm_lock),
    xShmBarrier: Some(fwd_shm_barrier),
    xShmUnmap: Some(fwd_shm_unmap),
    xFetch: Some(fwd_fetch),
    xUnfetch: Some(fwd_unfetch),
};

/// A small tmpfs for the full-disk test, shared with the integration tests.
#[cfg(test)]
#[path = "../tests/common/tmpfs.rs"]
mod tmpfs;

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use proptest::prelude::*;
    use rusqlite::{Connection, OpenFlags, params};

    use super::tmpfs::Tmpfs;
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

    /// Bytes the log of `conn` holds gathered (0 if its log is not one of ours).
    fn gathered(conn: &Connection) -> usize {
        let mut file: *mut ffi::sqlite3_file = ptr::null_mut();
        // SAFETY: the handle is open; JOURNAL_POINTER stores the log's file object (or null)
        // into `file`.
        let rc = unsafe {
            ffi::sqlite3_file_control(
                conn.handle(),
                c"main".as_ptr(),
                ffi::SQLITE_FCNTL_JOURNAL_POINTER,
                ptr::addr_of_mut!(file).cast(),
            )
        };
        assert_eq!(rc, ffi::SQLITE_OK);
        // SAFETY: a file whose methods are LOG_METHODS is a LogFile opened by `open`.
        unsafe {
            if file.is_null() || !ptr::eq((*file).pMethods, &LOG_METHODS) {
                return 0;
            }
            (*file.cast::<LogFile>()).gathered.data.len()
        }
    }

    /// Fills the file system holding `path` until it has no room left.
    fn fill(path: &Path) {
        use std::io::Write;
        let mut f = std::fs::File::create(path).unwrap();
        let chunk = vec![0x5a; 4096];
        while f.write_all(&chunk).is_ok() {}
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

    /// A flush that fails in a read (the disk filled up) loses frames SQLite believes are in
    /// the file; SQLite sees a failed read, not a failed write, so it keeps the transaction
    /// open when the statement had its own journal. The transaction must not commit.
    #[test]
    fn frames_lost_by_a_failed_flush_never_commit() {
        let Some(disk) = Tmpfs::mount(2048) else {
            return;
        };
        let path = disk.path("full.db");
        let _turn = turn();
        let conn = gathering(&path);
        for k in 0..50 {
            conn.execute(
                "INSERT INTO t (k, v) VALUES (?1, ?2)",
                params![k, blob(k, 300)],
            )
            .unwrap();
        }
        let before = contents(&conn);
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        for k in 1_000..1_300 {
            conn.execute(
                "INSERT INTO t (k, v) VALUES (?1, ?2)",
                params![k, blob(k, 900)],
            )
            .unwrap();
        }
        assert!(gathered(&conn) > 0, "spilled frames are gathered");
        // Room in the cache from now on: the log's next call is a read, not a spill.
        conn.execute_batch("PRAGMA cache_size = -16384").unwrap();
        fill(&disk.path("filler"));
        // A statement with its own journal reads the log: the flush fails (no room).
        let e = conn
            .execute(
                "INSERT INTO t (k, v) SELECT k + 5000, v FROM t WHERE k < 50",
                [],
            )
            .unwrap_err();
        assert_eq!(
            e.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DiskFull),
            "{e}"
        );
        assert!(
            !conn.is_autocommit(),
            "SQLite rolled back the statement only"
        );
        std::fs::remove_file(disk.path("filler")).unwrap();
        // Room again: the commit must still fail, since some of its frames never reached the
        // file. (If it did not, readers would see those pages as zeros.)
        let committed = conn.execute_batch("COMMIT");
        let reader = plain(&path);
        assert_eq!(integrity(&reader), "ok");
        assert!(
            committed.is_err(),
            "a commit missing frames was acknowledged"
        );
        assert_eq!(contents(&reader), before);
        // The next transaction is not blamed for the lost frames.
        conn.execute("INSERT INTO t (k, v) VALUES (7777, x'07')", [])
            .unwrap();
        assert_eq!(contents(&reader).len(), before.len() + 1);
    }

    /// Frames a transaction spilled and then rolled back are dead, but they may still be
    /// gathered when the writer releases the log's write lock. Another connection (another
    /// process, an operator's tool) then appends its own commit at the same offsets; the
    /// gathered bytes must never land on top of it afterwards.
    #[test]
    fn a_rolled_back_spill_never_lands_on_another_writers_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stale.db");
        let _turn = turn();
        let conn = gathering(&path);
        conn.execute("INSERT INTO t (k, v) VALUES (0, x'00')", [])
            .unwrap();
        // An empty log: the writer's next frames go at its start, page 1 included.
        let _: (i64, i64, i64) = conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        // A transaction larger than the 64-page cache spills frames, then rolls back.
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        for k in 1..300 {
            conn.execute(
                "INSERT INTO t (k, v) VALUES (?1, ?2)",
                params![k, blob(k, 900)],
            )
            .unwrap();
        }
        assert!(
            gathered(&conn) > 0,
            "the spill's last frames are still gathered"
        );
        conn.execute_batch("ROLLBACK").unwrap();
        // Another writer commits: its frames take the offsets of the rolled-back ones.
        let other = plain(&path);
        other
            .execute_batch("PRAGMA wal_autocheckpoint = 0; BEGIN IMMEDIATE")
            .unwrap();
        for k in 1..600 {
            other
                .execute(
                    "INSERT INTO t (k, v) VALUES (?1, ?2)",
                    params![k, blob(-k, 900)],
                )
                .unwrap();
        }
        other.execute_batch("COMMIT").unwrap();
        let committed = contents(&other);
        assert_eq!(committed.len(), 600);
        // The first writer touches the log again (a read), then goes away.
        assert_eq!(contents(&conn), committed);
        drop(conn);
        let fresh = plain(&path);
        assert_eq!(contents(&fresh), committed);
        assert_eq!(integrity(&fresh), "ok");
    }

    /// With `psow=0` (a URI parameter) SQLite pads a commit to a sector boundary and syncs
    /// only up to it: the rest of the last frame is written after the sync, and the commit is
    /// published without another one. Those bytes must be in the file all the same.
    #[test]
    fn a_commit_padded_to_a_sector_is_whole_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("psow.db");
        let _turn = turn();
        assert!(available());
        let uri = format!("file:{}?psow=0", path.display());
        let conn = Connection::open_with_flags_and_vfs(
            &uri,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_URI,
            NAME,
        )
        .unwrap();
        conn.execute_batch(
            "PRAGMA page_size = 1024; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
             PRAGMA wal_autocheckpoint = 0;
             CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB NOT NULL);",
        )
        .unwrap();
        let reader = plain(&path);
        let mut model = BTreeMap::new();
        for k in 0..20 {
            let v = blob(k, 700);
            conn.execute("INSERT INTO t (k, v) VALUES (?1, ?2)", params![k, v])
                .unwrap();
            model.insert(k, v);
            // Read by another connection while the writer does nothing more.
            assert_eq!(contents(&reader), model, "after commit {k}");
        }
        drop(conn);
        assert_eq!(integrity(&reader), "ok");
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
