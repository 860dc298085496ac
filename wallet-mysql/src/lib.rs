#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod batch;
mod error;
mod events;
mod group;
mod payments;
mod portable;
mod queries;
mod reads;
mod schema;
mod script;
mod users;
mod writer;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions, MySqlSslMode};
use sqlx::{ConnectOptions as _, Connection, Executor, MySqlConnection};
use wallet_core::admin::{
    Dashboard, Period, TransactionPage, TransactionQuery, UserPage, UserQuery, WalletPage,
    WalletQuery,
};
use wallet_core::audit::AuditQuery;
use wallet_core::command::Command;
use wallet_core::currency::CurrencyCode;
use wallet_core::decide::{LinkRecord, MerchantRecord, Spend};
use wallet_core::health::{BackendHealth, Health};
use wallet_core::history::{HistoryFilter, HistoryPage};
use wallet_core::identity::UserRecord;
use wallet_core::ids::{MerchantId, TransactionId, UserId, WalletId};
use wallet_core::limits::Limits;
use wallet_core::notify::{Event, Notification};
use wallet_core::payment_method::{PaymentMethod, PaymentMethodId};
use wallet_core::reports::{EntryRange, SearchText};
use wallet_core::store::{AuditPage, Login, Outcome, Store};
use wallet_core::transaction::Transaction;
use wallet_core::verify::VerifyReport;
use wallet_core::wallet::WalletState;
use wallet_core::{Error, Result, Timestamp};

use crate::error::map_sqlx;

/// Oldest MariaDB this backend is tested with.
pub const MARIADB_MIN: (u32, u32) = (10, 6);
/// Oldest MySQL this backend supports (CHECK constraints, `FOR UPDATE` semantics).
pub const MYSQL_MIN: (u32, u32) = (8, 0);
/// Most connections a pool may have.
pub const CONNECTIONS_MAX: u32 = 1024;
/// How many times a call takes another connection when the one it got is broken.
const RECONNECTS: u32 = 3;
/// Most times a command is run again after a deadlock or lock-wait timeout.
pub const RETRIES_MAX: u32 = 64;
pub use group::{BATCH_ATTEMPTS_MAX, BATCH_COMMANDS_MAX, BATCHES_IN_FLIGHT_MAX, QUEUE_MAX};

/// How the connection to the server is protected.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Tls {
    /// Plain TCP. Only for a server on the same host or a private network.
    Disabled,
    /// TLS if the server offers it, plain otherwise (the MySQL clients' default).
    #[default]
    Preferred,
    /// TLS, without checking the server's certificate.
    Required,
    /// TLS with a certificate signed by the given CA (or the system's roots if `None`).
    VerifyCa(Option<PathBuf>),
    /// As [`Tls::VerifyCa`], and the certificate must name the host connected to.
    VerifyIdentity(Option<PathBuf>),
}

/// How to connect: pool, timeouts, TLS, retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectOptions {
    /// Most connections open at once (default 20, as the reference deployment).
    pub max_connections: u32,
    /// Connections kept open when idle (default 5; at most `max_connections`).
    pub min_connections: u32,
    /// How long a call waits for a free connection before failing with
    /// [`Error::StorageBusy`] (default 30 s).
    pub acquire_timeout: Duration,
    /// How long a statement waits for a row lock before the server gives up and the command
    /// is retried (`innodb_lock_wait_timeout`, whole seconds, default 5 s).
    pub lock_wait_timeout: Duration,
    /// How many times a command is run again after a deadlock, a lock-wait timeout or a lost
    /// race for a unique key (default 16). Backoff between attempts is exponential with full
    /// jitter, from 1 ms up to 200 ms.
    pub retries: u32,
    /// TLS mode.
    pub tls: Tls,
    /// Prepared statements kept per connection (default 256).
    pub statement_cache: usize,
    /// How long a group-commit batch, or a money command running alone, may keep the commands
    /// queued behind it waiting (default 100 ms; a batch normally takes a few milliseconds).
    /// After that it gives its place to a new batch and finishes on its own, so commands stuck
    /// on rows another session keeps locked hold back only themselves, not every money command
    /// of the store (see `docs/MYSQL.md`, "Group commit"). At least 1 ms.
    pub slow_batch_after: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            max_connections: 20,
            min_connections: 5,
            acquire_timeout: Duration::from_secs(30),
            lock_wait_timeout: Duration::from_secs(5),
            retries: 16,
            tls: Tls::Preferred,
            statement_cache: 256,
            slow_batch_after: Duration::from_millis(100),
        }
    }
}

impl ConnectOptions {
    fn validate(&self) -> Result<()> {
        let bad = |reason: &str| {
            Err(Error::InvalidConfig {
                reason: reason.into(),
            })
        };
        if self.max_connections == 0 || self.max_connections > CONNECTIONS_MAX {
            return bad("max_connections must be 1 to 1024");
        }
        if self.retries > RETRIES_MAX {
            return bad("retries must be at most 64");
        }
        if self.lock_wait_timeout.as_secs() == 0 || self.lock_wait_timeout.as_secs() > 3600 {
            return bad("lock_wait_timeout must be 1 s to 1 h");
        }
        if self.acquire_timeout.is_zero() {
            return bad("acquire_timeout must be positive");
        }
        if self.slow_batch_after < Duration::from_millis(1) {
            return bad("slow_batch_after must be at least 1 ms");
        }
        Ok(())
    }

    fn apply(&self, url: &str) -> Result<MySqlConnectOptions> {
        let parsed: MySqlConnectOptions =
            url.parse().map_err(|e: sqlx::Error| Error::InvalidConfig {
                reason: format!("bad MySQL URL: {}", redact(&e.to_string())),
            })?;
        let (mode, ca) = match &self.tls {
            Tls::Disabled => (MySqlSslMode::Disabled, None),
            Tls::Preferred => (MySqlSslMode::Preferred, None),
            Tls::Required => (MySqlSslMode::Required, None),
            Tls::VerifyCa(ca) => (MySqlSslMode::VerifyCa, ca.clone()),
            Tls::VerifyIdentity(ca) => (MySqlSslMode::VerifyIdentity, ca.clone()),
        };
        let mut options = parsed
            .ssl_mode(mode)
            .charset("utf8mb4")
            .statement_cache_capacity(self.statement_cache)
            .log_statements(tracing::log::LevelFilter::Trace);
        if let Some(ca) = ca {
            options = options.ssl_ca(ca);
        }
        Ok(options)
    }
}

/// Removes anything that looks like a password from a message about a URL.
fn redact(message: &str) -> String {
    if message.contains('@') {
        "(details withheld: the URL may hold a password)".into()
    } else {
        message.into()
    }
}

/// Settings every connection gets, whatever the server's defaults: row locks without gap
/// locks and fresh reads after each lock (READ COMMITTED), strict types, UTC.
async fn configure(conn: &mut MySqlConnection, lock_wait_secs: u64) -> sqlx::Result<()> {
    conn.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        .await?;
    conn.execute(
        "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE,\
         ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'",
    )
    .await?;
    conn.execute("SET SESSION time_zone = '+00:00'").await?;
    sqlx::query("SET SESSION innodb_lock_wait_timeout = ?")
        .bind(lock_wait_secs)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Checks the server is a MySQL or MariaDB version this backend supports.
async fn check_server(conn: &mut MySqlConnection) -> Result<()> {
    let version: String = sqlx::query_scalar("SELECT version()")
        .fetch_one(&mut *conn)
        .await
        .map_err(map_sqlx)?;
    let mut parts = version
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    let mariadb = version.to_ascii_lowercase().contains("mariadb");
    // TiDB reports a MySQL-compatible version followed by its own ("8.0.11-TiDB-v7.5.0").
    let minimum = if mariadb { MARIADB_MIN } else { MYSQL_MIN };
    if found < minimum {
        return Err(Error::InvalidConfig {
            reason: format!(
                "server version {version} is too old (need {} {}.{} or later)",
                if mariadb { "MariaDB" } else { "MySQL" },
                minimum.0,
                minimum.1
            ),
        });
    }
    Ok(())
}

/// A MySQL or MariaDB ledger store: a pool of connections, each command one transaction.
///
/// Cheap to clone; every clone shares the pool.
#[derive(Clone)]
pub struct MySqlStore {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) pool: MySqlPool,
    pub(crate) retries: u32,
    pub(crate) writer: writer::Shared,
    /// Money commands waiting for a batch (see [`group`]).
    pub(crate) queue: group::Queue,
    /// When a command of this process last committed, in microseconds (0: never).
    last_commit_micros: std::sync::atomic::AtomicI64,
    /// Kept alive as long as the store (see [`MySqlStore::with_guard`]).
    guard: Option<Box<dyn std::any::Any + Send + Sync>>,
}

impl std::fmt::Debug for MySqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MySqlStore")
            .field("connections", &self.inner.pool.size())
            .field("idle", &self.inner.pool.num_idle())
            .finish()
    }
}

/// Brings the database at `url` to the schema this code uses. Needs DDL rights (CREATE,
/// ALTER, INDEX); run it from a deployment step, not from the application, whose user needs
/// only SELECT, INSERT, UPDATE and DELETE. Safe to run again and from several processes.
pub async fn migrate(url: &str, options: &ConnectOptions) -> Result<()> {
    options.validate()?;
    let mut conn = options.apply(url)?.connect().await.map_err(map_sqlx)?;
    check_server(&mut conn).await?;
    configure(&mut conn, options.lock_wait_timeout.as_secs())
        .await
        .map_err(map_sqlx)?;
    let result = schema::migrate(&mut conn).await;
    let _ = conn.close().await;
    result
}

impl MySqlStore {
    /// Connects to the database at `url` (`mysql://user:password@host:port/database`).
    ///
    /// Refuses a server that is too old, and a database whose schema is older or newer than
    /// this code ([`Error::SchemaVersion`]: run [`migrate`] first).
    pub async fn connect(url: &str, options: ConnectOptions) -> Result<Self> {
        options.validate()?;
        let connect = options.apply(url)?;
        let lock_wait = options.lock_wait_timeout.as_secs();
        let pool = MySqlPoolOptions::new()
            .max_connections(options.max_connections)
            .min_connections(options.min_connections.min(options.max_connections))
            .acquire_timeout(options.acquire_timeout)
            .test_before_acquire(false)
            .after_connect(move |conn, _meta| {
                Box::pin(async move { configure(conn, lock_wait).await })
            })
            .connect_with(connect)
            .await
            .map_err(map_sqlx)?;
        let checked = async {
            let mut conn = pool.acquire().await.map_err(map_sqlx)?;
            check_server(&mut conn).await?;
            schema::check(&mut conn).await
        }
        .await;
        if let Err(e) = checked {
            pool.close().await;
            return Err(e);
        }
        Ok(MySqlStore {
            inner: Arc::new(Inner {
                pool,
                retries: options.retries,
                writer: writer::Shared::default(),
                queue: group::Queue::new(options.max_connections, options.slow_batch_after),
                last_commit_micros: std::sync::atomic::AtomicI64::new(0),
                guard: None,
            }),
        })
    }

    /// Keeps `guard` alive until the last clone of this store is dropped (tests use it to
    /// drop a scratch database once its store is gone). Has no effect on a store that has
    /// been cloned already.
    pub fn with_guard(mut self, guard: impl Send + Sync + 'static) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.guard = Some(Box::new(guard));
        }
        self
    }

    /// Closes every connection; calls afterwards fail with [`Error::Closed`].
    pub async fn close(&self) {
        self.inner.pool.close().await;
    }

    /// Money commands waiting for a batch now (see "Group commit" in the crate's docs).
    pub fn queued(&self) -> usize {
        self.inner.queue.waiting()
    }

    /// Group commits so far: batches of two commands or more that committed, and how many
    /// commands they held in all.
    pub fn group_commits(&self) -> (u64, u64) {
        self.inner.queue.committed()
    }

    /// The pool's state: open connections and how many of them are idle.
    pub fn pool_state(&self) -> (u32, usize) {
        (self.inner.pool.size(), self.inner.pool.num_idle())
    }
}

/// Runs `$body` with `$conn` bound to a pooled connection; again on another connection if the
/// first turns out to be broken (a pooled connection the server has closed): reads change
/// nothing, so running them again is safe.
macro_rules! with_conn {
    ($store:expr, $conn:ident => $body:expr) => {{
        let mut tries = 0;
        loop {
            let mut pooled = $store.inner.pool.acquire().await.map_err(map_sqlx)?;
            let $conn: &mut MySqlConnection = &mut pooled;
            match $body {
                Err(e) if error::is_lost(&e) && tries < RECONNECTS => tries += 1,
                other => break other,
            }
        }
    }};
}

/// As [`with_conn!`], inside one read-only transaction that sees a single snapshot.
///
/// The transaction is opened with plain SQL, which sqlx does not track: if the call were
/// cancelled before the `COMMIT` (a caller's timeout, a client gone) and the connection went
/// back to the pool, it would stay inside the old REPEATABLE READ snapshot, and every later
/// read on it would return stale data. So the connection is held by an [`Unfinished`] guard
/// and closed instead of reused unless the snapshot was ended.
macro_rules! snapshot {
    ($store:expr, $conn:ident => $body:expr) => {{
        let mut tries = 0;
        loop {
            let pooled = $store.inner.pool.acquire().await.map_err(map_sqlx)?;
            let mut open = Unfinished::new(pooled);
            let ended: Result<_> = async {
                let $conn: &mut MySqlConnection = &mut open.conn;
                begin_snapshot($conn).await?;
                let result = $body;
                // A read-only transaction has nothing to commit; ending it releases the
                // snapshot.
                $conn.execute("COMMIT").await.map_err(map_sqlx)?;
                Ok(result)
            }
            .await;
            let result = match ended {
                Ok(result) => {
                    open.finish();
                    result
                }
                Err(e) => Err(e),
            };
            match result {
                Err(e) if error::is_lost(&e) && tries < RECONNECTS => tries += 1,
                other => break other,
            }
        }
    }};
}

/// A pooled connection that may be inside a transaction sqlx does not know of: closed, not
/// returned to the pool, when dropped before [`Unfinished::finish`].
pub(crate) struct Unfinished {
    pub(crate) conn: sqlx::pool::PoolConnection<sqlx::MySql>,
    finished: bool,
}

impl Unfinished {
    /// A connection about to open such a transaction.
    fn new(conn: sqlx::pool::PoolConnection<sqlx::MySql>) -> Self {
        Unfinished {
            conn,
            finished: false,
        }
    }

    /// A connection in no transaction yet (see [`Unfinished::start`]).
    pub(crate) fn idle(conn: sqlx::pool::PoolConnection<sqlx::MySql>) -> Self {
        Unfinished {
            conn,
            finished: true,
        }
    }

    /// A transaction may be open from now on, until [`Unfinished::finish`].
    pub(crate) fn start(&mut self) {
        self.finished = false;
    }

    /// The transaction was ended: the connection may serve other calls.
    pub(crate) fn finish(&mut self) {
        self.finished = true;
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if !self.finished {
            self.conn.close_on_drop();
        }
    }
}

/// Starts a read-only transaction on one consistent snapshot.
async fn begin_snapshot(conn: &mut MySqlConnection) -> Result<()> {
    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .await
        .map_err(map_sqlx)?;
    conn.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        .await
        .map_err(map_sqlx)?;
    Ok(())
}

impl wallet_core::portable::Portable for MySqlStore {
    async fn export<W: std::io::Write + Send + 'static>(
        &self,
        out: W,
    ) -> Result<wallet_core::portable::Summary> {
        // The export reads in a snapshot opened with plain SQL: see `snapshot!`.
        let mut open = Unfinished::new(self.inner.pool.acquire().await.map_err(map_sqlx)?);
        let summary = portable::export(&mut open.conn, out).await;
        if summary.is_ok() {
            open.finish();
        }
        summary
    }

    async fn import<R: std::io::Read + Send + 'static>(
        &self,
        input: R,
    ) -> Result<wallet_core::portable::Imported> {
        let mut conn = self.inner.pool.acquire().await.map_err(map_sqlx)?;
        portable::import(&mut conn, input).await
    }
}

impl Store for MySqlStore {
    async fn health(&self) -> Health {
        let pool = &self.inner.pool;
        let backend = BackendHealth::MySql {
            connections: pool.size(),
            idle: u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
            connections_max: pool.options().get_max_connections(),
        };
        // One primary-key read: proves a connection can be had and the server answers.
        let version: Result<Option<i64>> = async {
            with_conn!(self, c => {
                sqlx::query_scalar("SELECT version FROM wallet_schema WHERE id = 1")
                    .fetch_optional(&mut *c)
                    .await
                    .map_err(map_sqlx)
            })
        }
        .await;
        let supported = schema::latest_version();
        let last = self
            .inner
            .last_commit_micros
            .load(std::sync::atomic::Ordering::Relaxed);
        match version {
            Ok(v) => Health::answered(v.unwrap_or(0), supported, backend),
            Err(e) => Health::unreachable(&e, supported, backend),
        }
        .with_last_commit((last != 0).then(|| Timestamp::from_micros(last)))
    }

    async fn execute(&self, command: Command) -> Result<Outcome> {
        let outcome = group::execute(&self.inner, command).await;
        if outcome.is_ok() {
            // Wall-clock time, as the SQLite store's: the command's own `now` is the host's
            // clock, which tests and simulations move at will.
            self.inner.last_commit_micros.store(
                wallet_core::Clock::now(&wallet_core::SystemClock).as_micros(),
                std::sync::atomic::Ordering::Relaxed,
            );
        }
        outcome
    }

    async fn wallet(&self, id: WalletId) -> Result<Option<WalletState>> {
        with_conn!(self, c => queries::wallet(c, id).await)
    }

    async fn wallets_of(&self, owner: UserId) -> Result<Vec<WalletState>> {
        with_conn!(self, c => queries::wallets_of(c, owner).await)
    }

    async fn transaction(&self, id: TransactionId) -> Result<Option<Transaction>> {
        snapshot!(self, c => queries::transaction(c, id).await)
    }

    async fn history(&self, filter: HistoryFilter) -> Result<HistoryPage> {
        snapshot!(self, c => reads::history(c, &filter).await)
    }

    async fn verify(&self) -> Result<VerifyReport> {
        snapshot!(self, c => reads::verify(c).await)
    }

    async fn currencies(&self) -> Result<Vec<(CurrencyCode, u8)>> {
        with_conn!(self, c => queries::currencies(c).await)
    }

    async fn user(&self, id: UserId) -> Result<Option<UserRecord>> {
        with_conn!(self, c => users::user(c, id).await)
    }

    async fn user_by_login(&self, login: Login) -> Result<Option<UserRecord>> {
        with_conn!(self, c => users::user_by_login(c, &login).await)
    }

    async fn users(&self, query: UserQuery) -> Result<UserPage> {
        snapshot!(self, c => reads::list_users(c, &query).await)
    }

    async fn list_wallets(&self, query: WalletQuery) -> Result<WalletPage> {
        with_conn!(self, c => reads::list_wallets(c, &query).await)
    }

    async fn list_transactions(&self, query: TransactionQuery) -> Result<TransactionPage> {
        snapshot!(self, c => reads::list_transactions(c, &query).await)
    }

    async fn dashboard(&self, period: Period) -> Result<Dashboard> {
        snapshot!(self, c => reads::dashboard(c, period).await)
    }

    async fn payment_method(&self, id: PaymentMethodId) -> Result<Option<PaymentMethod>> {
        with_conn!(self, c => users::method(c, id).await)
    }

    async fn payment_methods_of(&self, owner: UserId) -> Result<Vec<PaymentMethod>> {
        with_conn!(self, c => users::methods_of(c, owner).await)
    }

    async fn audit_log(&self, query: AuditQuery) -> Result<AuditPage> {
        with_conn!(self, c => reads::audit_log(c, &query).await)
    }

    async fn link(&self, code: wallet_core::links::LinkCode) -> Result<Option<LinkRecord>> {
        with_conn!(self, c => payments::link(c, &code, false).await)
    }

    async fn links_of(&self, wallet: WalletId, before: i64, limit: u32) -> Result<Vec<LinkRecord>> {
        with_conn!(self, c => payments::links_of(c, wallet, before, limit).await)
    }

    async fn merchant(&self, id: MerchantId) -> Result<Option<MerchantRecord>> {
        with_conn!(self, c => payments::merchant(c, id).await)
    }

    async fn limits(&self, wallet: WalletId) -> Result<Option<Limits>> {
        with_conn!(self, c => payments::limits(c, wallet).await)
    }

    async fn spent(&self, wallet: WalletId, day: Timestamp, month: Timestamp) -> Result<Spend> {
        snapshot!(self, c => async {
            let w = queries::wallet(c, wallet)
                .await?
                .ok_or(Error::WalletNotFound)?;
            Ok(Spend {
                today: queries::debits_since(c, &w, day).await?,
                month: queries::debits_since(c, &w, month).await?,
            })
        }
        .await)
    }

    async fn notifications(
        &self,
        user: UserId,
        unread_only: bool,
        before: i64,
        limit: u32,
    ) -> Result<Vec<Notification>> {
        with_conn!(self, c => payments::notifications(c, user, unread_only, before, limit).await)
    }

    async fn unread_count(&self, user: UserId) -> Result<u64> {
        with_conn!(self, c => payments::unread_count(c, user).await)
    }

    async fn events(&self, after: i64, limit: u32) -> Result<Vec<Event>> {
        with_conn!(self, c => events::events(c, after, limit).await)
    }

    async fn entries_between(
        &self,
        wallet: WalletId,
        since: Timestamp,
        until: Timestamp,
        max: u32,
    ) -> Result<EntryRange> {
        snapshot!(self, c => reads::entries_between(c, wallet, since, until, max).await)
    }

    async fn search(
        &self,
        wallet: WalletId,
        needle: SearchText,
        before_seq: Option<i64>,
        limit: u32,
    ) -> Result<HistoryPage> {
        snapshot!(self, c => reads::search(c, wallet, &needle, before_seq, limit).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every option out of range is refused with a typed error naming it, before any
    /// connection is made; the defaults pass.
    #[test]
    fn options_out_of_range_are_refused() {
        assert!(ConnectOptions::default().validate().is_ok());
        type Spoil = fn(&mut ConnectOptions);
        let cases: [(&str, Spoil); 7] = [
            ("max_connections", |o| o.max_connections = 0),
            ("max_connections", |o| {
                o.max_connections = CONNECTIONS_MAX + 1
            }),
            ("retries", |o| o.retries = RETRIES_MAX + 1),
            ("lock_wait_timeout", |o| {
                o.lock_wait_timeout = Duration::from_millis(500);
            }),
            ("lock_wait_timeout", |o| {
                o.lock_wait_timeout = Duration::from_secs(3601);
            }),
            ("acquire_timeout", |o| o.acquire_timeout = Duration::ZERO),
            ("slow_batch_after", |o| {
                o.slow_batch_after = Duration::from_micros(999);
            }),
        ];
        for (name, spoil) in cases {
            let mut options = ConnectOptions::default();
            spoil(&mut options);
            match options.validate() {
                Err(Error::InvalidConfig { reason }) => assert!(reason.contains(name), "{reason}"),
                other => panic!("{name}: {other:?}"),
            }
        }
    }
}
