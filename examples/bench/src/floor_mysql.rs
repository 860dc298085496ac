//! The floor on MySQL/MariaDB: the least a hand-written SQL implementation must do per
//! transfer, with no library around it, on `callers` connections of its own.
//!
//! Schema: `wallets(id, currency, balance, version)`, `transactions(id, idempotency_key UNIQUE,
//! kind, status, amount, description, created_at)`, `entries(id, transaction_id, wallet_id,
//! amount, created_at)` with an index on `(wallet_id, created_at)`, all InnoDB. A transfer is
//! one transaction: both wallets locked with one `SELECT … ORDER BY id FOR UPDATE` (ascending
//! id order, so two transfers never wait on each other in a cycle), a debit UPDATE, a credit
//! UPDATE, one INSERT into transactions with a random 32-hex key and two INSERTs into entries,
//! then COMMIT: eight round trips. A deadlock (1213) or lock-wait timeout (1205) rolls the
//! transaction back and runs it again.
//!
//! Sessions run at READ COMMITTED with a 5 s lock-wait timeout, as the library's do.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::SmallRng;
use sqlx::mysql::MySqlConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor, MySqlConnection};

use crate::{Measurement, Progress, Workload, random_key};

/// ER_LOCK_DEADLOCK.
const DEADLOCK: u16 = 1213;
/// ER_LOCK_WAIT_TIMEOUT.
const LOCK_WAIT_TIMEOUT: u16 = 1205;
/// Most times one transfer is run again before the floor gives up.
const RETRIES_MAX: u32 = 100;
/// Wallet rows per INSERT while funding.
const FUNDING_CHUNK: usize = 1_000;

const SCHEMA: &[&str] = &[
    "CREATE TABLE wallets (
        id       BIGINT NOT NULL PRIMARY KEY,
        currency VARCHAR(12) NOT NULL,
        balance  BIGINT NOT NULL,
        version  BIGINT NOT NULL
    ) ENGINE = InnoDB",
    "CREATE TABLE transactions (
        id              BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        idempotency_key VARCHAR(128) CHARACTER SET latin1 COLLATE latin1_general_cs NOT NULL,
        kind            VARCHAR(16) NOT NULL,
        status          VARCHAR(16) NOT NULL,
        amount          BIGINT NOT NULL,
        description     TEXT NULL,
        created_at      BIGINT NOT NULL,
        UNIQUE KEY transactions_by_key (idempotency_key)
    ) ENGINE = InnoDB",
    "CREATE TABLE entries (
        id             BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        transaction_id BIGINT NOT NULL,
        wallet_id      BIGINT NOT NULL,
        amount         BIGINT NOT NULL,
        created_at     BIGINT NOT NULL,
        KEY entries_wallet_time (wallet_id, created_at)
    ) ENGINE = InnoDB",
];

/// What the floor's callers met besides successful transfers.
#[derive(Debug, Default, Clone, Copy)]
pub struct Contention {
    /// Transactions rolled back by a deadlock and run again.
    pub deadlocks: u64,
    /// Transactions rolled back after a lock-wait timeout and run again.
    pub lock_timeouts: u64,
    /// Transfers refused for lack of funds (none with the bench's funding).
    pub refused: u64,
}

impl Contention {
    /// Every run again, whatever the cause.
    pub fn retries(&self) -> u64 {
        self.deadlocks + self.lock_timeouts
    }
}

/// A connection to `url` (a database URL) with the session settings the library uses.
async fn connect(url: &str) -> sqlx::Result<MySqlConnection> {
    let options: MySqlConnectOptions = url.parse()?;
    let mut conn = options.charset("utf8mb4").connect().await?;
    conn.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        .await?;
    conn.execute("SET SESSION innodb_lock_wait_timeout = 5")
        .await?;
    Ok(conn)
}

/// Creates the floor's tables in the (empty) database at `url` with `wallets` funded wallets.
pub async fn setup(url: &str, wallets: usize) -> sqlx::Result<()> {
    let mut conn = connect(url).await?;
    for statement in SCHEMA {
        conn.execute(*statement).await?;
    }
    let mut tx = conn.begin().await?;
    let mut id = 1usize;
    while id <= wallets {
        let last = (id + FUNDING_CHUNK - 1).min(wallets);
        let rows: Vec<String> = (id..=last)
            .map(|i| format!("({i}, 'USD', {}, 0)", crate::FUNDING_MINOR))
            .collect();
        let sql = format!(
            "INSERT INTO wallets (id, currency, balance, version) VALUES {}",
            rows.join(", ")
        );
        tx.execute(sql.as_str()).await?;
        id = last + 1;
    }
    tx.commit().await?;
    conn.close().await
}

/// The server's error number, if `e` is one the server reported.
fn server_code(e: &sqlx::Error) -> Option<u16> {
    match e {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
            .map(sqlx::mysql::MySqlDatabaseError::number),
        _ => None,
    }
}

/// Microseconds since the Unix epoch.
fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// One transfer as one transaction. `Ok(false)`: refused for lack of funds.
async fn transfer(
    conn: &mut MySqlConnection,
    from: i64,
    to: i64,
    amount: i64,
    key: &str,
) -> sqlx::Result<bool> {
    let mut tx = conn.begin().await?;
    let locked: Vec<(i64, i64)> =
        sqlx::query_as("SELECT id, balance FROM wallets WHERE id IN (?, ?) ORDER BY id FOR UPDATE")
            .bind(from)
            .bind(to)
            .fetch_all(&mut *tx)
            .await?;
    let funded = locked
        .iter()
        .any(|&(id, balance)| id == from && balance >= amount);
    if !funded || locked.len() != 2 {
        tx.rollback().await?;
        return Ok(false);
    }
    sqlx::query("UPDATE wallets SET balance = balance - ?, version = version + 1 WHERE id = ?")
        .bind(amount)
        .bind(from)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE wallets SET balance = balance + ?, version = version + 1 WHERE id = ?")
        .bind(amount)
        .bind(to)
        .execute(&mut *tx)
        .await?;
    let now = now_micros();
    let id = sqlx::query(
        "INSERT INTO transactions (idempotency_key, kind, status, amount, description, created_at)
         VALUES (?, 'TRANSFER', 'COMPLETED', ?, 'bench transfer', ?)",
    )
    .bind(key)
    .bind(amount)
    .bind(now)
    .execute(&mut *tx)
    .await?
    .last_insert_id();
    for (wallet, delta) in [(from, -amount), (to, amount)] {
        sqlx::query(
            "INSERT INTO entries (transaction_id, wallet_id, amount, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(id)
        .bind(wallet)
        .bind(delta)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// Runs `w.transfers` transfers split over `callers` connections to `url`, each caller drawing
/// the same pairs as the library's caller of the same number.
pub async fn run(
    url: &str,
    w: &Workload,
    callers: usize,
    label: &str,
) -> Result<(Measurement, Contention), Box<dyn std::error::Error>> {
    let callers = callers.max(1);
    let mut conns = Vec::with_capacity(callers);
    for _ in 0..callers {
        conns.push(connect(url).await?);
    }
    let progress = Arc::new(Progress::new(label, w.transfers));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(callers);
    for (caller, mut conn) in conns.into_iter().enumerate() {
        let share = w.transfers / callers + usize::from(caller < w.transfers % callers);
        let progress = Arc::clone(&progress);
        let w = w.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = SmallRng::seed_from_u64(w.seed.wrapping_add(caller as u64));
            let mut latencies: Vec<Duration> = Vec::with_capacity(share);
            let mut seen = Contention::default();
            for _ in 0..share {
                let (from, to, amount) = w.pick(&mut rng);
                let key = random_key(&mut rng);
                let t0 = Instant::now();
                let mut attempt = 0u32;
                loop {
                    match transfer(&mut conn, from, to, amount, &key).await {
                        Ok(true) => break,
                        Ok(false) => {
                            seen.refused += 1;
                            break;
                        }
                        Err(e) if attempt < RETRIES_MAX => match server_code(&e) {
                            // The transaction object rolled back on drop; on this connection
                            // the ROLLBACK runs before the next statement.
                            Some(DEADLOCK) => seen.deadlocks += 1,
                            Some(LOCK_WAIT_TIMEOUT) => seen.lock_timeouts += 1,
                            _ => return Err(e),
                        },
                        Err(e) => return Err(e),
                    }
                    attempt += 1;
                }
                latencies.push(t0.elapsed());
                progress.add(1);
            }
            let _ = conn.close().await;
            Ok::<_, sqlx::Error>((latencies, seen))
        }));
    }
    let mut latencies = Vec::with_capacity(w.transfers);
    let mut seen = Contention::default();
    for t in tasks {
        let (l, c) = t.await??;
        latencies.extend(l);
        seen.deadlocks += c.deadlocks;
        seen.lock_timeouts += c.lock_timeouts;
        seen.refused += c.refused;
    }
    let elapsed = started.elapsed();
    progress.finish();
    Ok((Measurement::new(w.transfers, elapsed, latencies), seen))
}
