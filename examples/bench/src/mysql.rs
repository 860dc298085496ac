//! The `mysql` backend: each scenario runs the library on a fresh database, then the floor on
//! another, both on the server at `--url`, and drops both databases afterwards.
//!
//! Databases are named `bench_<scenario>_library` and `bench_<scenario>_floor`. A scenario that
//! fails leaves its database for inspection; the next run of that scenario drops it and starts
//! afresh.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::{Connection, Executor, MySqlConnection};
use wallet_mysql::{ConnectOptions, MySqlStore};

use crate::{Measurement, Scenario, floor_mysql, library, rss_mb};

/// The server when `--url` is not given.
pub const DEFAULT_URL: &str = "mysql://root@127.0.0.1:3306";

type BoxError = Box<dyn std::error::Error>;

/// Checks `url` names a server, not a database, and returns it without a trailing slash.
pub fn server_url(url: &str) -> Result<String, String> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let base = base.trim_end_matches('/');
    let Some(rest) = base.strip_prefix("mysql://") else {
        return Err(format!("--url must start with mysql:// (got {url:?})"));
    };
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    if host.is_empty() || host.contains('/') {
        return Err(
            "--url names the server (mysql://user@host:port): the bench creates its own databases"
                .into(),
        );
    }
    Ok(if query.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{query}")
    })
}

/// `url` with its password, if any, replaced by `***`, for messages.
fn shown(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.rsplit_once('@') {
        Some((user, host)) if user.contains(':') => {
            let name = user.split_once(':').map_or(user, |(name, _)| name);
            format!("{scheme}://{name}:***@{host}")
        }
        _ => url.to_owned(),
    }
}

/// The URL of database `db` on `server`.
fn db_url(server: &str, db: &str) -> String {
    match server.split_once('?') {
        Some((base, query)) => format!("{base}/{db}?{query}"),
        None => format!("{server}/{db}"),
    }
}

/// `bench_<scenario>_<role>`, with the scenario's dashes as underscores.
fn db_name(scenario: &str, role: &str) -> String {
    format!("bench_{}_{role}", scenario.replace('-', "_"))
}

async fn recreate(admin: &mut MySqlConnection, db: &str) -> sqlx::Result<()> {
    drop_db(admin, db).await?;
    admin
        .execute(format!("CREATE DATABASE `{db}` CHARACTER SET utf8mb4").as_str())
        .await?;
    Ok(())
}

async fn drop_db(admin: &mut MySqlConnection, db: &str) -> sqlx::Result<()> {
    admin
        .execute(format!("DROP DATABASE IF EXISTS `{db}`").as_str())
        .await?;
    Ok(())
}

/// Server-wide counters, read before and after a timed run. They count every client's work,
/// so they are exact only while the bench is the server's only client (see [`Watch`]; with
/// no retries, a clean run has exactly one BEGIN per transfer).
#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    /// Statements executed (text queries and prepared-statement executions).
    questions: u64,
    /// Transactions begun.
    begins: u64,
    /// Rows and index entries the storage engine was asked for (`Handler_read_*`).
    reads: u64,
    /// fsync calls of InnoDB's data and log files.
    fsyncs: u64,
    /// Writes of the redo log (a group commit is one).
    log_writes: u64,
    /// Deadlocks InnoDB detected (and resolved by rolling back a victim).
    deadlocks: u64,
}

impl Counters {
    async fn read(admin: &mut MySqlConnection) -> sqlx::Result<Self> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SHOW GLOBAL STATUS WHERE Variable_name IN ('Questions', 'Com_begin',
             'Innodb_data_fsyncs', 'Innodb_log_writes', 'Innodb_deadlocks')
             OR Variable_name LIKE 'Handler\\_read\\_%'",
        )
        .fetch_all(&mut *admin)
        .await?;
        let mut c = Counters::default();
        for (name, value) in rows {
            let value: u64 = value.parse().unwrap_or(0);
            match name.as_str() {
                "Questions" => c.questions = value,
                "Com_begin" => c.begins = value,
                "Innodb_data_fsyncs" => c.fsyncs = value,
                "Innodb_log_writes" => c.log_writes = value,
                "Innodb_deadlocks" => c.deadlocks = value,
                n if n.starts_with("Handler_read_") => c.reads += value,
                _ => {}
            }
        }
        Ok(c)
    }

    fn since(self, before: Counters) -> Counters {
        Counters {
            questions: self.questions.saturating_sub(before.questions),
            begins: self.begins.saturating_sub(before.begins),
            reads: self.reads.saturating_sub(before.reads),
            fsyncs: self.fsyncs.saturating_sub(before.fsyncs),
            log_writes: self.log_writes.saturating_sub(before.log_writes),
            deadlocks: self.deadlocks.saturating_sub(before.deadlocks),
        }
    }
}

/// Per transfer, to two decimals.
fn per(count: u64, transfers: usize) -> f64 {
    (count as f64 / transfers.max(1) as f64 * 100.0).round() / 100.0
}

/// Watches the server during a timed run for other clients, four times a second: a sample
/// counts if any session outside the bench is running a statement or is connected to a
/// database other than the bench's (a test suite between statements, say).
struct Watch {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(u64, u64)>,
}

impl Watch {
    async fn start(server: &str) -> sqlx::Result<Self> {
        let mut conn = MySqlConnection::connect(server).await?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let (mut samples, mut busy) = (0u64, 0u64);
            while !stopped.load(Ordering::Relaxed) {
                let others: sqlx::Result<i64> = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM information_schema.PROCESSLIST
                     WHERE ID <> CONNECTION_ID() AND COMMAND NOT IN ('Daemon', 'Binlog Dump')
                       AND (DB IS NULL OR DB NOT LIKE 'bench\\_%')
                       AND (COMMAND <> 'Sleep' OR DB IS NOT NULL)",
                )
                .fetch_one(&mut conn)
                .await;
                samples += 1;
                busy += u64::from(others.is_ok_and(|n| n > 0));
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            let _ = conn.close().await;
            (samples, busy)
        });
        Ok(Watch { stop, task })
    }

    /// Percentage of samples that saw another client at work.
    async fn stop(self) -> f64 {
        self.stop.store(true, Ordering::Relaxed);
        match self.task.await {
            Ok((samples, busy)) if samples > 0 => (busy as f64 * 100.0 / samples as f64).round(),
            _ => 0.0,
        }
    }
}

/// CPU time from `/proc`, in clock ticks: the whole machine's, this process's, and the
/// server's (when it runs on this machine and its pid file is readable).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cpu {
    /// Every tick of every CPU, idle and stolen included: wall time times CPUs.
    all: u64,
    /// Ticks some process ran (user, nice, system, interrupts).
    busy: u64,
    own: u64,
    server: Option<u64>,
}

/// User plus system ticks of a process, from `/proc/<pid>/stat`.
fn process_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces), from field 3 (state) on.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

impl Cpu {
    pub(crate) fn read(server_pid: Option<&str>) -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let line = stat.lines().next()?.strip_prefix("cpu ")?;
        let v: Vec<u64> = line
            .split_whitespace()
            .take(8)
            .map(|f| f.parse().unwrap_or(0))
            .collect();
        let [user, nice, system, idle, iowait, irq, softirq, steal] = v[..] else {
            return None;
        };
        Some(Cpu {
            all: user + nice + system + idle + iowait + irq + softirq + steal,
            busy: user + nice + system + irq + softirq,
            own: process_ticks("self")?,
            server: server_pid.and_then(process_ticks),
        })
    }
}

/// Where the CPU went during a timed run.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct CpuUse {
    /// This process (the library or the floor, and the driver), ms per transfer.
    pub(crate) own_ms: f64,
    /// The database server, ms per transfer (`None` if not on this machine).
    server_ms: Option<f64>,
    /// Other processes' share of the machine's CPU time, percent.
    pub(crate) others_pct: f64,
}

impl CpuUse {
    pub(crate) fn between(before: Cpu, after: Cpu, elapsed: Duration, transfers: usize) -> Self {
        let all = after.all.saturating_sub(before.all).max(1) as f64;
        let cpus = std::fs::read_to_string("/proc/stat")
            .map(|s| {
                s.lines()
                    .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
                    .count()
            })
            .unwrap_or(1)
            .max(1);
        // All ticks span `elapsed` on every CPU, which converts ticks to milliseconds.
        let ms_per_tick = elapsed.as_secs_f64() * 1000.0 * cpus as f64 / all;
        let own = after.own.saturating_sub(before.own);
        let server = match (before.server, after.server) {
            (Some(b), Some(a)) => Some(a.saturating_sub(b)),
            _ => None,
        };
        let busy = after.busy.saturating_sub(before.busy);
        let others = busy.saturating_sub(own + server.unwrap_or(0));
        let per = |ticks: u64| {
            (ticks as f64 * ms_per_tick / transfers.max(1) as f64 * 100.0).round() / 100.0
        };
        CpuUse {
            own_ms: per(own),
            server_ms: server.map(per),
            others_pct: (others as f64 * 100.0 / all).round(),
        }
    }
}

/// The server's process id, if it runs on this machine and its pid file is readable.
async fn server_pid(admin: &mut MySqlConnection) -> Option<String> {
    let path: String = sqlx::query_scalar("SELECT @@pid_file")
        .fetch_one(&mut *admin)
        .await
        .ok()?;
    let pid = std::fs::read_to_string(path).ok()?.trim().to_owned();
    // A pid file of another machine's server names some unrelated local process, if any.
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    matches!(comm.trim(), "mariadbd" | "mysqld").then_some(pid)
}

/// A timed run's measurement with what the server and the machine counted meanwhile.
struct Timed<T> {
    result: T,
    counters: Counters,
    sessions_pct: f64,
    cpu: CpuUse,
}

async fn timed<T>(
    server: &str,
    admin: &mut MySqlConnection,
    transfers: usize,
    run: impl Future<Output = Result<T, BoxError>>,
) -> Result<Timed<T>, BoxError> {
    let pid = server_pid(admin).await;
    let watch = Watch::start(server).await?;
    let before = Counters::read(admin).await?;
    let cpu_before = Cpu::read(pid.as_deref());
    let started = Instant::now();
    let result = run.await;
    let elapsed = started.elapsed();
    let cpu_after = Cpu::read(pid.as_deref());
    let after = Counters::read(admin).await?;
    let sessions_pct = watch.stop().await;
    let cpu = match (cpu_before, cpu_after) {
        (Some(b), Some(a)) => CpuUse::between(b, a, elapsed, transfers),
        _ => CpuUse::default(),
    };
    Ok(Timed {
        result: result?,
        counters: after.since(before),
        sessions_pct,
        cpu,
    })
}

/// Runs one scenario: the library, then the floor, each on a fresh database.
pub async fn run_scenario(server: &str, s: &Scenario) -> Result<serde_json::Value, BoxError> {
    let w = &s.workload;
    crate::announce(s);
    let mut admin = MySqlConnection::connect(server).await.map_err(|e| {
        format!(
            "MySQL/MariaDB is not reachable at {}: {e} (scripts/ensure-mariadb starts a local one)",
            shown(server)
        )
    })?;

    // The library: migrated as the administrative user, a pool of one connection per caller
    // and two spare, all opened before the setup.
    let started = Instant::now();
    let lib_db = db_name(&s.name, "library");
    recreate(&mut admin, &lib_db).await?;
    let url = db_url(server, &lib_db);
    let pool = u32::try_from(s.callers.max(1) + 2)?;
    let options = ConnectOptions {
        max_connections: pool,
        min_connections: pool,
        ..ConnectOptions::default()
    };
    wallet_mysql::migrate(&url, &options).await?;
    let store = MySqlStore::connect(&url, options).await?;
    let created = started.elapsed();
    let (ledger, wallets) = library::setup(store, w.wallets).await?;
    eprintln!(
        "  setup: database created and migrated in {:.1} s, {} funded wallets through the library in {:.1} s",
        created.as_secs_f64(),
        w.wallets,
        (started.elapsed() - created).as_secs_f64()
    );
    let lib = timed(server, &mut admin, w.transfers, async {
        Ok(library::run(&ledger, &wallets, w, s.callers, "library").await?)
    })
    .await?;
    let rss = rss_mb();
    let verified = library::verify(&ledger, &s.name).await?;
    ledger.store().close().await;
    drop(ledger);
    drop_db(&mut admin, &lib_db).await?;

    // The floor, on the same data shape, with as many connections as the library has callers.
    let floor_db = db_name(&s.name, "floor");
    recreate(&mut admin, &floor_db).await?;
    let floor_url = db_url(server, &floor_db);
    floor_mysql::setup(&floor_url, w.wallets).await?;
    let floor_label = format!("floor ({} per commit)", s.floor_per_commit);
    let fl = timed(
        server,
        &mut admin,
        w.transfers,
        floor_mysql::run(&floor_url, w, s.callers, &floor_label),
    )
    .await?;
    drop_db(&mut admin, &floor_db).await?;
    let _ = admin.close().await;

    let (fl_m, contention) = &fl.result;
    let l: &Measurement = &lib.result;
    let ms = |m: &Measurement, p: f64| (m.percentile_ms(p) * 1000.0).round() / 1000.0;
    let mut row = json!({
        "backend": "mysql",
        "scenario": s.name,
        "wallets": w.wallets,
        "hot_set": w.hot,
        "callers": s.callers,
        "transfers": w.transfers,
        "library_tps": l.tps().round(),
        "floor_tps": fl_m.tps().round(),
        "floor_per_commit": s.floor_per_commit,
        "ratio": (l.tps() / fl_m.tps() * 100.0).round() / 100.0,
        "p50_ms": ms(l, 0.50),
        "p99_ms": ms(l, 0.99),
        "p999_ms": ms(l, 0.999),
        "max_ms": ms(l, 1.0),
        "floor_p50_ms": ms(fl_m, 0.50),
        "floor_p99_ms": ms(fl_m, 0.99),
        "bytes_per_transfer": null,
        "floor_bytes_per_transfer": null,
        "rss_mb": rss.round(),
    });
    // What the server and the machine counted, in a second object: one `json!` of every field
    // exceeds the macro's recursion limit.
    let counted = json!({
        "pool": pool,
        "verified": verified,
        "library_busy": l.busy,
        "library_server_deadlocks": lib.counters.deadlocks,
        "library_statements_per_transfer": per(lib.counters.questions, w.transfers),
        "library_begins_per_transfer": per(lib.counters.begins, w.transfers),
        "library_reads_per_transfer": per(lib.counters.reads, w.transfers),
        "library_fsyncs_per_transfer": per(lib.counters.fsyncs, w.transfers),
        "library_log_writes_per_transfer": per(lib.counters.log_writes, w.transfers),
        "library_other_sessions_pct": lib.sessions_pct,
        "library_cpu_ms": lib.cpu.own_ms,
        "library_server_cpu_ms": lib.cpu.server_ms,
        "library_other_cpu_pct": lib.cpu.others_pct,
        "floor_retries": contention.retries(),
        "floor_deadlocks": contention.deadlocks,
        "floor_server_deadlocks": fl.counters.deadlocks,
        "floor_lock_timeouts": contention.lock_timeouts,
        "floor_refused": contention.refused,
        "floor_statements_per_transfer": per(fl.counters.questions, w.transfers),
        "floor_begins_per_transfer": per(fl.counters.begins, w.transfers),
        "floor_reads_per_transfer": per(fl.counters.reads, w.transfers),
        "floor_fsyncs_per_transfer": per(fl.counters.fsyncs, w.transfers),
        "floor_log_writes_per_transfer": per(fl.counters.log_writes, w.transfers),
        "floor_other_sessions_pct": fl.sessions_pct,
        "floor_cpu_ms": fl.cpu.own_ms,
        "floor_server_cpu_ms": fl.cpu.server_ms,
        "floor_other_cpu_pct": fl.cpu.others_pct,
    });
    if let (Some(row), serde_json::Value::Object(counted)) = (row.as_object_mut(), counted) {
        row.extend(counted);
    }
    Ok(row)
}
