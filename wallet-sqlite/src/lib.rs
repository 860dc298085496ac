#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod admin;
mod backup;
mod checkpoint;
mod error;
mod notes;
mod payment_methods;
mod payments;
mod portable;

use wallet_core::Timestamp;
use wallet_core::decide::{LinkRecord, MerchantRecord, Spend};
use wallet_core::ids::MerchantId;
use wallet_core::limits::Limits;
use wallet_core::notify::{Event, Notification};
use wallet_core::reports::{EntryRange, SearchText};
mod queries;
mod schema;
mod users;
mod vfs;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;
use wallet_core::admin::{
    Dashboard, Period, TransactionPage, TransactionQuery, UserPage, UserQuery, WalletPage,
    WalletQuery,
};
use wallet_core::audit::AuditQuery;
use wallet_core::command::Command;
use wallet_core::currency::CurrencyCode;
use wallet_core::health::{BackendHealth, Health};
use wallet_core::history::{HistoryFilter, HistoryPage};
use wallet_core::identity::UserRecord;
use wallet_core::ids::{TransactionId, UserId, WalletId};
use wallet_core::payment_method::{PaymentMethod, PaymentMethodId};
use wallet_core::portable::{Imported, Portable, Summary};
use wallet_core::store::{AuditPage, Login, Outcome, Store};
use wallet_core::transaction::Transaction;
use wallet_core::verify::VerifyReport;
use wallet_core::wallet::WalletState;
use wallet_core::{Error, Result};

pub use crate::backup::BackupReport;
use crate::error::map_sqlite;
use crate::writer::{Counters, Job, ReadJob, Writer};

/// Most reader connections a store may have.
pub const READERS_MAX: u8 = 32;
/// Deepest write queue a store may have.
pub const QUEUE_DEPTH_MAX: u32 = 1 << 20;
/// Most commands one group commit may hold.
pub const BATCH_MAX: u32 = 65_536;
/// Largest write-ahead log a store lets build up before checkpointing: 4 GiB.
pub const CHECKPOINT_BYTES_MAX: u64 = 4 << 30;
/// Smallest checkpoint interval: 1 MiB.
pub const CHECKPOINT_BYTES_MIN: u64 = 1 << 20;

/// When a commit counts as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous = FULL`: a call returns only after its transaction is on disk and survives
    /// a power cut. The default.
    #[default]
    Full,
    /// `synchronous = NORMAL`: survives a crash of the process, but the last commits before a
    /// power cut or OS crash may be lost (never corrupted).
    Normal,
}

/// How to open a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// When a commit counts as done.
    pub durability: Durability,
    /// Reader connections (file stores; in-memory stores read on the writer). 1 to 32.
    pub readers: u8,
    /// Commands that may wait for the writer before callers are made to wait.
    pub queue_depth: u32,
    /// Most commands per group commit.
    pub batch_max: u32,
    /// Wallet states the writer keeps in memory (0 disables the cache).
    pub cache_wallets: u32,
    /// How long to wait for a lock held by another process, in milliseconds.
    pub busy_timeout_ms: u32,
    /// Page cache per connection, in KiB.
    pub page_cache_kib: u32,
    /// Refuse to grow the database file beyond about this many bytes (quotas, fault tests):
    /// writes past it fail with [`Error::StorageFull`] and store nothing.
    pub max_bytes: Option<u64>,
    /// Start copying the write-ahead log back into the database once it holds this many bytes.
    /// Checkpoints run on a background thread; a larger interval means fewer, cheaper pauses of
    /// the writer, and bounds the log's disk use to about this size (default 64 MiB).
    pub checkpoint_bytes: u64,
    /// Page size of a new database file in bytes (512 to 65536, a power of two; default 2048).
    /// Every transfer inserts into a few B-tree pages at random places, and each such page is
    /// written whole at commit, so small pages write less per transfer; too small, and the
    /// writer spends more time splitting pages and scanning its page cache at each commit
    /// (see `docs/adr/0002-sqlite-writer.md`). Ignored for existing files, whose page size is
    /// fixed.
    pub page_size: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            durability: Durability::Full,
            readers: 4,
            queue_depth: 4096,
            batch_max: 1024,
            cache_wallets: 65_536,
            busy_timeout_ms: 5000,
            page_cache_kib: 16 * 1024,
            max_bytes: None,
            checkpoint_bytes: 64 << 20,
            page_size: 2048,
        }
    }
}

impl Options {
    fn validate(&self) -> Result<()> {
        let bad = |reason: &str| {
            Err(Error::InvalidConfig {
                reason: reason.to_owned(),
            })
        };
        if self.readers == 0 || self.readers > READERS_MAX {
            return bad("readers must be between 1 and 32");
        }
        if self.queue_depth == 0 || self.queue_depth > QUEUE_DEPTH_MAX {
            return bad("queue_depth must be between 1 and 1048576");
        }
        if self.batch_max == 0 || self.batch_max > BATCH_MAX {
            return bad("batch_max must be between 1 and 65536");
        }
        if !self.page_size.is_power_of_two() || !(512..=65_536).contains(&self.page_size) {
            return bad("page_size must be a power of two between 512 and 65536");
        }
        if !(CHECKPOINT_BYTES_MIN..=CHECKPOINT_BYTES_MAX).contains(&self.checkpoint_bytes) {
            return bad("checkpoint_bytes must be between 1 MiB and 4 GiB");
        }
        Ok(())
    }
}

/// What the writer thread has done since the store opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterStats {
    /// Group commits attempted.
    pub batches: u64,
    /// Commands applied.
    pub commands: u64,
    /// Group commits that reached the disk.
    pub commits: u64,
    /// Commands waiting in the queue now.
    pub queued: u64,
    /// When the last group commit reached the disk.
    pub last_commit: Option<wallet_core::Timestamp>,
    /// Pages the commits wrote to the write-ahead log (file stores; 0 in memory): with the
    /// page size, what each commit hands to the disk before its fsync.
    pub log_pages: u64,
}

/// Where reads run: a pool of reader connections, or (in memory) the writer's connection.
enum Reads {
    Pool(async_channel::Sender<ReadJob>),
    Writer,
}

struct Inner {
    writes: async_channel::Sender<Job>,
    counters: Arc<Counters>,
    reads: Reads,
    threads: std::sync::Mutex<Vec<JoinHandle<()>>>,
    path: Option<PathBuf>,
    options: Options,
}

impl Inner {
    /// Closes the queues (queued work still runs) and waits for every thread to finish it.
    fn shut_down(&self) {
        self.writes.close();
        if let Reads::Pool(reads) = &self.reads {
            reads.close();
        }
        let threads: Vec<JoinHandle<()>> = self.threads().drain(..).collect();
        for t in threads {
            // A thread that panicked has nothing left to hand back; the store is closed anyway.
            let _ = t.join();
        }
    }
}

impl Inner {
    /// The store's threads (a thread that panicked while holding the lock left nothing to
    /// repair in a list of handles).
    fn threads(&self) -> std::sync::MutexGuard<'_, Vec<JoinHandle<()>>> {
        match self.threads.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// An embedded SQLite ledger store. Cheap to clone; all clones share one writer thread.
///
/// Dropping the last clone (or calling [`SqliteStore::close`]) lets queued work finish, then
/// closes the database.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

/// What a connection is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Writer,
    Reader,
    Checkpointer,
}

fn configure(conn: &Connection, options: &Options, role: Role) -> Result<()> {
    conn.busy_timeout(std::time::Duration::from_millis(u64::from(
        options.busy_timeout_ms,
    )))
    .map_err(map_sqlite)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(map_sqlite)?;
    // Plans never depend on bound values. Without this, SQLite marks a statement to be
    // prepared again whenever a rebinding crosses 0 or 1 in an equality, or changes a
    // `LIMIT ?`: the writer's binary search over a wallet's entries (`seq = ?` from 1 upward)
    // re-prepared its statement on most steps, about 5 % of the writer's time under load.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(map_sqlite)?;
    conn.pragma_update(None, "cache_size", -i64::from(options.page_cache_kib))
        .map_err(map_sqlite)?;
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(map_sqlite)?;
    let sync = match options.durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", sync)
        .map_err(map_sqlite)?;
    if options.max_bytes.is_some() {
        limit_size(conn, options.max_bytes)?;
    }
    match role {
        Role::Writer => {
            // Checkpoints run on their own thread (see `checkpoint`), never inside a COMMIT.
            // These pragmas answer with a row, so read it rather than `pragma_update`.
            let _: i64 = conn
                .query_row("PRAGMA wal_autocheckpoint = 0", [], |r| r.get(0))
                .map_err(map_sqlite)?;
            // When the log is rewound, truncate its file back to about one interval's size.
            let limit = i64::try_from(options.checkpoint_bytes).unwrap_or(i64::MAX);
            let _: i64 = conn
                .query_row(&format!("PRAGMA journal_size_limit = {limit}"), [], |r| {
                    r.get(0)
                })
                .map_err(map_sqlite)?;
        }
        Role::Reader => conn
            .pragma_update(None, "query_only", "ON")
            .map_err(map_sqlite)?,
        Role::Checkpointer => {}
    }
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// `f` as a job for a connection's thread, and where its answer will arrive.
fn answering<T: Send + 'static>(
    f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
) -> (ReadJob, oneshot::Receiver<Result<T>>) {
    let (tx, rx) = oneshot::channel();
    let job: ReadJob = Box::new(move |conn| {
        let _ = tx.send(f(conn));
    });
    (job, rx)
}

/// SQLite's own ceiling on a database's pages, the limit in force when none is set.
const PAGES_MAX: i64 = 0xFFFF_FFFE;

/// Limits the database `conn` writes to about `max_bytes` (`None`: SQLite's own ceiling).
/// Growing past the limit fails with `SQLITE_FULL` ([`Error::StorageFull`]).
fn limit_size(conn: &Connection, max_bytes: Option<u64>) -> Result<()> {
    let pages = match max_bytes {
        None => PAGES_MAX,
        Some(bytes) => {
            let page_size: i64 = conn
                .pragma_query_value(None, "page_size", |r| r.get(0))
                .map_err(map_sqlite)?;
            (i64::try_from(bytes).unwrap_or(i64::MAX) / page_size.max(1)).clamp(1, PAGES_MAX)
        }
    };
    // The pragma answers with the limit in force, so read it rather than `pragma_update`. The
    // limit never goes below the file's current size, whatever was asked.
    let _: i64 = conn
        .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |r| {
            r.get(0)
        })
        .map_err(map_sqlite)?;
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and migrates it to the current
    /// schema. Refuses files of other applications and schemas newer than this code.
    pub fn open(path: impl AsRef<Path>, options: Options) -> Result<Self> {
        options.validate()?;
        let path = path.as_ref().to_path_buf();
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        // The writer gathers its log writes (see `vfs`), which is sound only when every commit
        // syncs the log before publishing it: with durability FULL.
        let mut conn = if options.durability == Durability::Full && vfs::available() {
            Connection::open_with_flags_and_vfs(&path, flags, vfs::NAME)
        } else {
            Connection::open_with_flags(&path, flags)
        }
        .map_err(map_sqlite)?;
        // Takes effect only while the file is still empty, before WAL mode is set.
        conn.pragma_update(None, "page_size", i64::from(options.page_size))
            .map_err(map_sqlite)?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(map_sqlite)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::Storage {
                detail: format!("cannot enable WAL (journal_mode is {mode})"),
            });
        }
        configure(&conn, &options, Role::Writer)?;
        schema::migrate_to(&mut conn, schema::latest_version())?;

        let mut readers = Vec::with_capacity(usize::from(options.readers));
        for _ in 0..options.readers {
            readers.push(open_reader(&path, &options)?);
        }
        let checkpointer = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(map_sqlite)?;
        configure(&checkpointer, &options, Role::Checkpointer)?;
        Self::start(conn, readers, Some((path, checkpointer)), options)
    }

    /// A private in-memory database, for tests and ephemeral use. One connection serves both
    /// reads and writes; nothing survives the store.
    pub fn open_in_memory(options: Options) -> Result<Self> {
        options.validate()?;
        let mut conn = Connection::open_in_memory().map_err(map_sqlite)?;
        configure(&conn, &options, Role::Writer)?;
        schema::migrate_to(&mut conn, schema::latest_version())?;
        Self::start(conn, Vec::new(), None, options)
    }

    /// Starts the threads. `file` is the path and the checkpointer's connection (none in memory).
    fn start(
        mut writer_conn: Connection,
        readers: Vec<Connection>,
        file: Option<(PathBuf, Connection)>,
        options: Options,
    ) -> Result<Self> {
        let queue = usize::try_from(options.queue_depth).unwrap_or(usize::MAX);
        let (write_tx, write_rx) = async_channel::bounded::<Job>(queue);
        let counters = Arc::new(Counters::default());
        let mut threads = Vec::new();
        let (path, policy) = match file {
            None => (None, None),
            Some((path, checkpointer)) => {
                let state = Arc::new(checkpoint::WalState::default());
                let frames = Arc::clone(&state);
                let written = Arc::clone(&counters);
                writer_conn
                    .wal_hook(Some(
                        move |_: &mut rusqlite::hooks::Wal, pages: std::ffi::c_int| {
                            let pages = i64::from(pages);
                            let before = frames
                                .frames
                                .swap(pages, std::sync::atomic::Ordering::Relaxed);
                            // The log holds `pages` frames after this commit; fewer than
                            // before means it was rewound and this commit's frames are all.
                            let added = if pages >= before {
                                pages - before
                            } else {
                                pages
                            };
                            written.log_pages.fetch_add(
                                u64::try_from(added).unwrap_or(0),
                                std::sync::atomic::Ordering::Relaxed,
                            );
                            Ok(())
                        },
                    ))
                    .map_err(map_sqlite)?;
                let (wake_tx, wake_rx) = async_channel::bounded::<()>(1);
                let shared = Arc::clone(&state);
                threads.push(spawn("wallet-checkpointer".into(), move || {
                    checkpoint::run(checkpointer, wake_rx, shared)
                })?);
                let page_size: i64 = writer_conn
                    .pragma_query_value(None, "page_size", |r| r.get(0))
                    .map_err(map_sqlite)?;
                let interval =
                    i64::try_from(options.checkpoint_bytes).unwrap_or(i64::MAX) / page_size.max(1);
                let policy = checkpoint::Policy::new(interval, state, wake_tx);
                (Some(path), Some(policy))
            }
        };
        let writer = Writer::new(
            writer_conn,
            usize::try_from(options.cache_wallets).unwrap_or(usize::MAX),
            usize::try_from(options.batch_max).unwrap_or(1),
            Arc::clone(&counters),
            policy,
        );
        // The writer goes first: shutting down joins threads in order, and the checkpointer
        // only stops once the writer (holding its wake-up channel) is gone.
        threads.insert(
            0,
            spawn("wallet-writer".into(), move || writer.run(write_rx))?,
        );
        let reads = if readers.is_empty() {
            Reads::Writer
        } else {
            let (read_tx, read_rx) = async_channel::bounded::<ReadJob>(queue);
            for (i, conn) in readers.into_iter().enumerate() {
                let rx = read_rx.clone();
                threads.push(spawn(format!("wallet-reader-{i}"), move || {
                    writer::serve_reads(&conn, &rx)
                })?);
            }
            Reads::Pool(read_tx)
        };
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                writes: write_tx,
                counters,
                reads,
                threads: std::sync::Mutex::new(threads),
                path,
                options,
            }),
        })
    }

    /// What the writer has done so far.
    pub fn writer_stats(&self) -> WriterStats {
        let c = &self.inner.counters;
        let last = c
            .last_commit_micros
            .load(std::sync::atomic::Ordering::Relaxed);
        WriterStats {
            batches: c.batches.load(std::sync::atomic::Ordering::Relaxed),
            commands: c.commands.load(std::sync::atomic::Ordering::Relaxed),
            commits: c.commits.load(std::sync::atomic::Ordering::Relaxed),
            queued: u64::try_from(self.inner.writes.len()).unwrap_or(u64::MAX),
            last_commit: (last != 0).then(|| wallet_core::Timestamp::from_micros(last)),
            log_pages: c.log_pages.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// The database file, if the store is not in memory.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// Runs `f` on a reader connection and returns its result.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (job, rx) = answering(f);
        let sent = match &self.inner.reads {
            Reads::Pool(reads) => reads.send(job).await.is_ok(),
            Reads::Writer => self.inner.writes.send(Job::Read(job)).await.is_ok(),
        };
        if !sent {
            return Err(Error::Closed);
        }
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Runs `f` on a connection of its own, in a thread of its own, so that a long read (an
    /// export) neither holds a pooled reader nor delays anyone. In memory, where there is only
    /// the writer's connection, it runs there.
    async fn read_alone<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let Some(path) = self.inner.path.clone() else {
            return self.read(f).await;
        };
        if self.inner.writes.is_closed() {
            return Err(Error::Closed);
        }
        let options = self.inner.options.clone();
        let (tx, rx) = oneshot::channel();
        let thread = spawn("wallet-reader-alone".into(), move || {
            let _ = tx.send(open_reader(&path, &options).and_then(|conn| f(&conn)));
        })?;
        {
            // Closing the store waits for this read as for queued work.
            let mut threads = self.inner.threads();
            threads.retain(|t| !t.is_finished());
            threads.push(thread);
        }
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Copies the database into a new file at `path` while the store keeps serving reads and
    /// writes (SQLite's online backup API, reading one snapshot on a connection and thread of
    /// its own).
    ///
    /// The copy holds every transaction committed before the call and possibly some committed
    /// during it: exactly those up to one commit, never part of one. It is a complete wallet
    /// database that [`SqliteStore::open`] opens as it is. It is written under
    /// `<path>.partial`, checked with `PRAGMA quick_check`, synced and only then renamed to
    /// `path`, so `path` never names a partial copy. Writers are not blocked; the write-ahead
    /// log grows until the copy ends (it cannot be rewound past the snapshot being copied).
    ///
    /// Fails with [`Error::InvalidConfig`] if `path` already exists, [`Error::StorageFull`] if
    /// the target disk fills up (the partial file is removed), [`Error::Closed`] if the store
    /// is closed.
    pub async fn backup_to(&self, path: impl AsRef<Path>) -> Result<BackupReport> {
        let target = path.as_ref().to_path_buf();
        self.read_alone(move |conn| backup::run(conn, &target))
            .await
    }

    /// Changes the size limit of [`Options::max_bytes`] on the open store (`None` lifts it).
    /// Takes effect between two group commits; writes that failed with [`Error::StorageFull`]
    /// can then be retried with their idempotency keys, without reopening the store. A limit
    /// below the file's current size holds it at that size.
    pub async fn set_max_bytes(&self, max_bytes: Option<u64>) -> Result<()> {
        self.maintain(move |conn| limit_size(conn, max_bytes)).await
    }

    /// Runs `f` on the writer's connection between group commits (maintenance: a size limit,
    /// an import), and returns its answer.
    async fn maintain<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (job, rx) = answering(f);
        self.inner
            .writes
            .send(Job::Maintain(job))
            .await
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Stops accepting work, lets queued work finish, and waits for the threads to exit.
    /// Every clone of this store answers [`Error::Closed`] afterwards.
    pub fn close(&self) {
        self.inner.shut_down();
    }
}

/// A read-only connection to the database at `path`, at the schema this code expects.
fn open_reader(path: &Path, options: &Options) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(map_sqlite)?;
    configure(&conn, options, Role::Reader)?;
    schema::check_version(&conn)?;
    Ok(conn)
}

fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name)
        .spawn(f)
        .map_err(|e| Error::Storage {
            detail: format!("cannot start thread: {e}"),
        })
}

impl Store for SqliteStore {
    async fn health(&self) -> Health {
        // `user_version` is in the database header: reading it touches no table, and running
        // it as an ordinary read proves a reader (in memory: the writer) is serving.
        let version = self
            .read(|c| {
                c.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))
                    .map_err(map_sqlite)
            })
            .await;
        let stats = self.writer_stats();
        let backend = BackendHealth::Sqlite {
            writer_queued: stats.queued,
            writer_queue_capacity: self.inner.options.queue_depth,
            commits: stats.commits,
        };
        let supported = schema::latest_version();
        match version {
            Ok(v) => Health::answered(v, supported, backend),
            Err(e) => Health::unreachable(&e, supported, backend),
        }
        .with_last_commit(stats.last_commit)
    }

    async fn execute(&self, command: Command) -> Result<Outcome> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .writes
            .send(Job::Write(command, tx))
            .await
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }

    async fn wallet(&self, id: WalletId) -> Result<Option<WalletState>> {
        self.read(move |c| queries::wallet(c, id)).await
    }

    async fn wallets_of(&self, owner: UserId) -> Result<Vec<WalletState>> {
        self.read(move |c| queries::wallets_of(c, owner)).await
    }

    async fn transaction(&self, id: TransactionId) -> Result<Option<Transaction>> {
        self.read(move |c| queries::transaction(c, id)).await
    }

    async fn history(&self, filter: HistoryFilter) -> Result<HistoryPage> {
        self.read(move |c| in_snapshot(c, |c| queries::history(c, &filter)))
            .await
    }

    async fn verify(&self) -> Result<VerifyReport> {
        self.read(|c| in_snapshot(c, queries::verify)).await
    }

    async fn currencies(&self) -> Result<Vec<(CurrencyCode, u8)>> {
        self.read(queries::currencies).await
    }

    async fn user(&self, id: UserId) -> Result<Option<UserRecord>> {
        self.read(move |c| users::user(c, id)).await
    }

    async fn user_by_login(&self, login: Login) -> Result<Option<UserRecord>> {
        self.read(move |c| users::user_by_login(c, &login)).await
    }

    async fn users(&self, query: UserQuery) -> Result<UserPage> {
        self.read(move |c| in_snapshot(c, |c| admin::list_users(c, &query)))
            .await
    }

    async fn list_wallets(&self, query: WalletQuery) -> Result<WalletPage> {
        self.read(move |c| queries::list_wallets(c, &query)).await
    }

    async fn list_transactions(&self, query: TransactionQuery) -> Result<TransactionPage> {
        self.read(move |c| in_snapshot(c, |c| queries::list_transactions(c, &query)))
            .await
    }

    async fn dashboard(&self, period: Period) -> Result<Dashboard> {
        self.read(move |c| in_snapshot(c, |c| admin::dashboard(c, period)))
            .await
    }

    async fn payment_method(&self, id: PaymentMethodId) -> Result<Option<PaymentMethod>> {
        self.read(move |c| payment_methods::method(c, id)).await
    }

    async fn payment_methods_of(&self, owner: UserId) -> Result<Vec<PaymentMethod>> {
        self.read(move |c| payment_methods::methods_of(c, owner))
            .await
    }

    async fn audit_log(&self, query: AuditQuery) -> Result<AuditPage> {
        self.read(move |c| users::audit_log(c, &query)).await
    }

    async fn link(&self, code: wallet_core::links::LinkCode) -> Result<Option<LinkRecord>> {
        self.read(move |c| payments::link(c, &code)).await
    }

    async fn links_of(&self, wallet: WalletId, before: i64, limit: u32) -> Result<Vec<LinkRecord>> {
        self.read(move |c| payments::links_of(c, wallet, before, limit))
            .await
    }

    async fn merchant(&self, id: MerchantId) -> Result<Option<MerchantRecord>> {
        self.read(move |c| payments::merchant(c, id)).await
    }

    async fn limits(&self, wallet: WalletId) -> Result<Option<Limits>> {
        self.read(move |c| payments::limits(c, wallet)).await
    }

    async fn spent(&self, wallet: WalletId, day: Timestamp, month: Timestamp) -> Result<Spend> {
        self.read(move |c| {
            in_snapshot(c, |c| {
                let w = queries::wallet(c, wallet)?.ok_or(Error::WalletNotFound)?;
                let since = |start: Timestamp| -> Result<i64> {
                    if w.head.seq == 0 || w.head.last_at < start {
                        return Ok(0);
                    }
                    queries::debits_since_anchor(&w, queries::debits_before(c, &w, start)?)
                };
                Ok(Spend {
                    today: since(day)?,
                    month: since(month)?,
                })
            })
        })
        .await
    }

    async fn notifications(
        &self,
        user: UserId,
        unread_only: bool,
        before: i64,
        limit: u32,
    ) -> Result<Vec<Notification>> {
        // Several statements (rows, then each wallet's entries): one snapshot, so a page never
        // mixes a state before a commit with one after it.
        self.read(move |c| in_snapshot(c, |c| notes::list(c, user, unread_only, before, limit)))
            .await
    }

    async fn unread_count(&self, user: UserId) -> Result<u64> {
        self.read(move |c| in_snapshot(c, |c| notes::unread_count(c, user)))
            .await
    }

    async fn events(&self, after: i64, limit: u32) -> Result<Vec<Event>> {
        self.read(move |c| payments::events(c, after, limit)).await
    }

    async fn entries_between(
        &self,
        wallet: WalletId,
        since: Timestamp,
        until: Timestamp,
        max: u32,
    ) -> Result<EntryRange> {
        self.read(move |c| {
            in_snapshot(c, |c| {
                queries::entries_between(c, wallet, since, until, max)
            })
        })
        .await
    }

    async fn search(
        &self,
        wallet: WalletId,
        needle: SearchText,
        before_seq: Option<i64>,
        limit: u32,
    ) -> Result<HistoryPage> {
        self.read(move |c| {
            in_snapshot(c, |c| {
                queries::search(c, wallet, &needle, before_seq, limit)
            })
        })
        .await
    }
}

/// Export and import in the portable format (see `docs/PORTABLE.md`).
///
/// An export reads one snapshot on a connection and thread of its own, so reads and writes go
/// on meanwhile (the write-ahead log cannot be rewound past the snapshot until it ends). An
/// import runs on the writer thread, between two group commits, in one transaction: writes
/// queued behind it wait, and it drops the writer's caches.
impl Portable for SqliteStore {
    async fn export<W: std::io::Write + Send + 'static>(&self, out: W) -> Result<Summary> {
        self.read_alone(move |conn| portable::export(conn, out))
            .await
    }

    async fn import<R: std::io::Read + Send + 'static>(&self, input: R) -> Result<Imported> {
        self.maintain(move |conn| portable::import(conn, input))
            .await
    }
}

/// Runs `f` inside a read transaction so all its statements see one snapshot.
pub(crate) fn in_snapshot<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T>,
) -> Result<T> {
    conn.execute_batch("BEGIN DEFERRED").map_err(map_sqlite)?;
    let result = f(conn);
    // A read transaction has nothing to commit; ending it releases the snapshot.
    let end = conn.execute_batch("COMMIT").map_err(map_sqlite);
    let value = result?;
    end?;
    Ok(value)
}
