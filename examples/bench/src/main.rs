//! `wallet-bench`: the library's transfer throughput and latency, side by side with a
//! hand-written SQL floor in the same process and the same run.
//!
//! ```text
//! cargo run --release -p wallet-bench -- sqlite [--quick] [--json FILE] [--dir DIR]
//!     [--wallets N] [--transfers N] [--scenario NAME]...
//! cargo run --release -p wallet-bench -- sqlite --scenario scale [--scale-wallets N]
//!     [--scale-transactions N] [--scale-hot N] [--scale-transfers N] [--scale-pages N]
//!     [--scale-build-cache-mib N] [--scale-keep]
//! cargo run --release -p wallet-bench -- mysql [--url mysql://root@127.0.0.1:3306] [--quick]
//!     [--json FILE] [--wallets N] [--transfers N] [--scenario NAME]...
//! ```
//!
//! Prints a table; with `--json` also writes one JSON object per scenario per line.
//! `--quick` is a smoke run (well under a minute): it proves the harness works, not a speed.
//! `--scenario scale` (SQLite only, never part of the default or quick run) builds a store of
//! 1,000,000 wallets and 10,000,000 transactions through the portable import and measures it
//! (see `scale.rs`).
//! `BENCH_SKIP_VERIFY=1` skips the ledger check after each library run (a debugging aid).

mod floor;
mod floor_mysql;
mod library;
mod mysql;
mod scale;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rand::RngExt;
use rand::rngs::SmallRng;
use serde_json::json;

/// Every wallet starts with 1,000,000.00 so no transfer fails for lack of funds.
pub const FUNDING_MINOR: i64 = 100_000_000;

/// The scenario that builds a store of a million wallets and ten million transactions and
/// measures it (`--scenario scale`; never part of the default run).
const SCALE: &str = "scale";

/// What to run: how many wallets, which of them are used, how many transfers.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Wallets created.
    pub wallets: usize,
    /// Transfers only among the first `hot` wallets, if set.
    pub hot: Option<usize>,
    /// Transfers to run.
    pub transfers: usize,
    /// Seed of the random pairs and amounts.
    pub seed: u64,
}

impl Workload {
    /// A random pair of distinct wallets (1-based) and an amount of 0.01 to 1.00.
    pub fn pick(&self, rng: &mut SmallRng) -> (i64, i64, i64) {
        let n = self.hot.unwrap_or(self.wallets).min(self.wallets);
        let from = rng.random_range(0..n);
        let mut to = rng.random_range(0..n - 1);
        if to >= from {
            to += 1;
        }
        (from as i64 + 1, to as i64 + 1, rng.random_range(1..=100))
    }
}

/// A random 32-hex-digit idempotency key.
pub fn random_key(rng: &mut SmallRng) -> String {
    format!("{:032x}", rng.random::<u128>())
}

/// Throughput and latency of one run.
#[derive(Debug, Clone)]
pub struct Measurement {
    transfers: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    /// Calls that failed with `StorageBusy` (not counted in `transfers`).
    busy: usize,
}

impl Measurement {
    fn new(transfers: usize, elapsed: Duration, mut latencies: Vec<Duration>) -> Self {
        latencies.sort_unstable();
        Measurement {
            transfers,
            elapsed,
            latencies,
            busy: 0,
        }
    }

    fn with_busy(self, busy: usize) -> Self {
        Measurement { busy, ..self }
    }

    fn tps(&self) -> f64 {
        self.transfers as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i.min(self.latencies.len() - 1)].as_secs_f64() * 1000.0
    }
}

/// A progress line on stderr, at most every two seconds.
pub struct Progress {
    label: String,
    unit: &'static str,
    total: usize,
    done: AtomicUsize,
    started: Instant,
    last_ms: AtomicU64,
}

impl Progress {
    fn new(label: &str, total: usize) -> Self {
        Self::counting(label, total, "transfers")
    }

    /// A progress line counting `unit` rather than transfers.
    fn counting(label: &str, total: usize, unit: &'static str) -> Self {
        Progress {
            label: label.to_owned(),
            unit,
            total,
            done: AtomicUsize::new(0),
            started: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn add(&self, n: usize) {
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        self.maybe_print(done);
    }

    fn set(&self, done: usize) {
        self.done.store(done, Ordering::Relaxed);
        self.maybe_print(done);
    }

    fn maybe_print(&self, done: usize) {
        let now = self.started.elapsed().as_millis() as u64;
        let last = self.last_ms.load(Ordering::Relaxed);
        if now >= last + 2000
            && self
                .last_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let rate = done as f64 / self.started.elapsed().as_secs_f64();
            eprintln!(
                "  {}: {done}/{} {}, {rate:.0}/s",
                self.label, self.total, self.unit
            );
        }
    }

    fn finish(&self) {}
}

/// A number from the environment, for tuning experiments (`BENCH_PAGE_SIZE=2048`).
fn env_number(name: &str) -> Option<u32> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// The library's store options: the defaults, with the tuning experiments' overrides from the
/// environment (`BENCH_PAGE_SIZE`, `BENCH_CHECKPOINT_MIB`, `BENCH_CACHE_KIB`).
fn store_options() -> wallet_sqlite::Options {
    let mut options = wallet_sqlite::Options::default();
    if let Some(v) = env_number("BENCH_PAGE_SIZE") {
        options.page_size = v;
    }
    if let Some(v) = env_number("BENCH_CHECKPOINT_MIB") {
        options.checkpoint_bytes = u64::from(v) << 20;
    }
    if let Some(v) = env_number("BENCH_CACHE_KIB") {
        options.page_cache_kib = v;
    }
    options
}

/// The database's page size in bytes.
fn page_size(path: &Path) -> rusqlite::Result<f64> {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0))
        .map(|n| n as f64)
}

/// Bytes the database uses now (pages in use times page size, WAL included).
fn used_bytes(path: &Path) -> rusqlite::Result<i64> {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    let size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    Ok((pages - free) * size)
}

/// CPU time this process's threads have used, in nanoseconds (`/proc/self/task/*/schedstat`):
/// only those named `name` if given (a thread's name as the kernel shows it, at most 15 bytes).
/// Unlike throughput, CPU per transfer hardly depends on what other processes do with the
/// machine, so it is the steadier figure when the machine is shared.
fn thread_cpu_ns(name: Option<&str>) -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter(|task| {
            name.is_none_or(|name| {
                std::fs::read_to_string(task.path().join("comm")).is_ok_and(|c| c.trim() == name)
            })
        })
        .filter_map(|task| {
            let stat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
            stat.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum()
}

/// Microseconds per transfer, to one decimal, of a CPU time in nanoseconds.
fn us_per(ns: u64, transfers: usize) -> f64 {
    (ns as f64 / 1000.0 / transfers.max(1) as f64 * 10.0).round() / 10.0
}

/// Resident memory of this process, MiB.
fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

struct Args {
    backend: String,
    quick: bool,
    json: Option<PathBuf>,
    dir: PathBuf,
    url: Option<String>,
    wallets: Option<usize>,
    transfers: Option<usize>,
    scenarios: Vec<String>,
    scale: scale::ScaleArgs,
    scale_build: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut parsed = Args {
        backend: String::new(),
        quick: false,
        json: None,
        dir: PathBuf::from("target/bench"),
        url: None,
        wallets: None,
        transfers: None,
        scenarios: Vec::new(),
        scale: scale::ScaleArgs {
            wallets: 1_000_000,
            transactions: 10_000_000,
            hot_entries: None,
            transfers: 50_000,
            pages: 1_000,
            reference_wallets: 10_000,
            keep: false,
            build_cache_mib: Some(512),
        },
        scale_build: None,
    };
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--quick" => parsed.quick = true,
            "--json" => parsed.json = Some(PathBuf::from(value("--json")?)),
            "--dir" => parsed.dir = PathBuf::from(value("--dir")?),
            "--url" => parsed.url = Some(value("--url")?),
            "--wallets" => {
                parsed.wallets = Some(
                    value("--wallets")?
                        .parse()
                        .map_err(|e| format!("--wallets: {e}"))?,
                )
            }
            "--transfers" => {
                parsed.transfers = Some(
                    value("--transfers")?
                        .parse()
                        .map_err(|e| format!("--transfers: {e}"))?,
                )
            }
            "--scenario" => parsed.scenarios.push(value("--scenario")?),
            "--scale-keep" => parsed.scale.keep = true,
            // Internal: the scale scenario's build, run in a child process.
            "--scale-build" => parsed.scale_build = Some(PathBuf::from(value("--scale-build")?)),
            "--scale-wallets"
            | "--scale-transactions"
            | "--scale-hot"
            | "--scale-transfers"
            | "--scale-pages"
            | "--scale-build-cache-mib" => {
                let n: usize = value(&a)?.parse().map_err(|e| format!("{a}: {e}"))?;
                let s = &mut parsed.scale;
                match a.as_str() {
                    "--scale-wallets" => s.wallets = n,
                    "--scale-transactions" => s.transactions = n,
                    "--scale-hot" => s.hot_entries = Some(n),
                    "--scale-transfers" => s.transfers = n,
                    "--scale-build-cache-mib" => {
                        s.build_cache_mib = Some(u32::try_from(n).map_err(|e| format!("{a}: {e}"))?)
                    }
                    _ => s.pages = n,
                }
            }
            "-h" | "--help" => return Err(String::new()),
            other if other.starts_with('-') => return Err(format!("unknown option {other}")),
            other if parsed.backend.is_empty() => parsed.backend = other.to_owned(),
            other => return Err(format!("unexpected argument {other}")),
        }
    }
    if let Some(w) = parsed.wallets {
        parsed.scale.reference_wallets = w;
    }
    match parsed.backend.as_str() {
        "mysql" if parsed.scenarios.iter().any(|s| s == SCALE) => {
            Err("the scale scenario is for the sqlite backend".into())
        }
        "sqlite" if parsed.url.is_some() => Err("--url is for the mysql backend".into()),
        "sqlite" | "mysql" => Ok(parsed),
        other => Err(format!("backend must be sqlite or mysql (got {other:?})")),
    }
}

/// One scenario: the library with `callers` concurrent callers against a floor.
struct Scenario {
    name: String,
    workload: Workload,
    callers: usize,
    /// Transfers per COMMIT of the floor it is compared with.
    floor_per_commit: usize,
}

fn fresh(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(format!("{name}.db"));
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.clone().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
    path
}

/// The progress line that opens a scenario.
fn announce(s: &Scenario) {
    let w = &s.workload;
    eprintln!(
        "{}: {} wallets{}, {} transfers, {} caller(s)",
        s.name,
        w.wallets,
        w.hot.map(|h| format!(" (hot set {h})")).unwrap_or_default(),
        w.transfers,
        s.callers
    );
}

/// The SQLite store's writer thread, by the name it is given (`wallet_sqlite`).
const WRITER: &str = "wallet-writer";

async fn run_scenario(
    dir: &Path,
    s: &Scenario,
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let w = &s.workload;
    announce(s);
    // The library.
    let path = fresh(dir, &format!("{}-library", s.name));
    let store = wallet_sqlite::SqliteStore::open(&path, store_options())?;
    let (ledger, wallets) = library::setup(store, w.wallets).await?;
    let before = used_bytes(&path)?;
    let stats_before = ledger.store().writer_stats();
    let (writer_before, process_before) = (thread_cpu_ns(Some(WRITER)), thread_cpu_ns(None));
    let lib = library::run(&ledger, &wallets, w, s.callers, "library").await?;
    let writer_ns = thread_cpu_ns(Some(WRITER)).saturating_sub(writer_before);
    let process_ns = thread_cpu_ns(None).saturating_sub(process_before);
    let stats = ledger.store().writer_stats();
    let batch_avg = (stats.commands - stats_before.commands) as f64
        / (stats.batches - stats_before.batches).max(1) as f64;
    let lib_bytes = (used_bytes(&path)? - before) as f64 / w.transfers as f64;
    let log_bytes = (stats.log_pages - stats_before.log_pages) as f64 * page_size(&path)?
        / w.transfers.max(1) as f64;
    let rss = rss_mb();
    library::verify(&ledger, &s.name).await?;
    drop(ledger);

    // The floor, on the same data shape.
    let floor_path = fresh(dir, &format!("{}-floor", s.name));
    let mut conn = floor::setup(&floor_path, w.wallets)?;
    let floor_before = used_bytes(&floor_path)?;
    let floor_label = format!("floor ({} per commit)", s.floor_per_commit);
    let floor_pages = std::sync::Arc::new(AtomicU64::new(0));
    floor::count_log_pages(&mut conn, std::sync::Arc::clone(&floor_pages))?;
    let floor_cpu_before = thread_cpu_ns(None);
    let fl = floor::run(&mut conn, w, s.floor_per_commit, &floor_label)?;
    let floor_ns = thread_cpu_ns(None).saturating_sub(floor_cpu_before);
    let floor_bytes = (used_bytes(&floor_path)? - floor_before) as f64 / w.transfers as f64;
    let floor_log_bytes = floor_pages.load(Ordering::Relaxed) as f64 * page_size(&floor_path)?
        / w.transfers.max(1) as f64;
    drop(conn);

    Ok(json!({
        "backend": "sqlite",
        "scenario": s.name,
        "wallets": w.wallets,
        "hot_set": w.hot,
        "callers": s.callers,
        "transfers": w.transfers,
        "library_tps": lib.tps().round(),
        "floor_tps": fl.tps().round(),
        "floor_per_commit": s.floor_per_commit,
        "ratio": (lib.tps() / fl.tps() * 100.0).round() / 100.0,
        "p50_ms": (lib.percentile_ms(0.50) * 1000.0).round() / 1000.0,
        "p99_ms": (lib.percentile_ms(0.99) * 1000.0).round() / 1000.0,
        "p999_ms": (lib.percentile_ms(0.999) * 1000.0).round() / 1000.0,
        "max_ms": (lib.percentile_ms(1.0) * 1000.0).round() / 1000.0,
        "floor_p50_ms": (fl.percentile_ms(0.50) * 1000.0).round() / 1000.0,
        "floor_p99_ms": (fl.percentile_ms(0.99) * 1000.0).round() / 1000.0,
        "bytes_per_transfer": lib_bytes.round(),
        "floor_bytes_per_transfer": floor_bytes.round(),
        "rss_mb": rss.round(),
        "batch_avg": (batch_avg * 10.0).round() / 10.0,
        "log_bytes_per_transfer": log_bytes.round(),
        "floor_log_bytes_per_transfer": floor_log_bytes.round(),
        "writer_cpu_us": us_per(writer_ns, w.transfers),
        "library_cpu_us": us_per(process_ns, w.transfers),
        "floor_cpu_us": us_per(floor_ns, w.transfers),
        "cpu_ratio": (floor_ns as f64 / writer_ns.max(1) as f64 * 100.0).round() / 100.0,
    }))
}

fn print_table(rows: &[serde_json::Value]) {
    println!(
        "\n{:<22} {:>8} {:>7} {:>9} {:>11} {:>11} {:>6} {:>8} {:>8} {:>7} {:>7} {:>14} {:>9}",
        "scenario",
        "wallets",
        "callers",
        "transfers",
        "library/s",
        "floor/s",
        "ratio",
        "p50 ms",
        "p99 ms",
        "B/xfer",
        "RSS MB",
        "CPU us w/f",
        "CPU ratio"
    );
    let v = |r: &serde_json::Value, k: &str| match &r[k] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".into(),
        other => other.to_string(),
    };
    for r in rows {
        println!(
            "{:<22} {:>8} {:>7} {:>9} {:>11} {:>11} {:>6} {:>8} {:>8} {:>7} {:>7} {:>14} {:>9}",
            v(r, "scenario"),
            v(r, "wallets"),
            v(r, "callers"),
            v(r, "transfers"),
            v(r, "library_tps"),
            format!("{} ({})", v(r, "floor_tps"), v(r, "floor_per_commit")),
            v(r, "ratio"),
            v(r, "p50_ms"),
            v(r, "p99_ms"),
            v(r, "bytes_per_transfer"),
            v(r, "rss_mb"),
            format!("{}/{}", v(r, "writer_cpu_us"), v(r, "floor_cpu_us")),
            v(r, "cpu_ratio"),
        );
    }
    println!("floor/s: hand-written SQL in the same run (transfers per COMMIT in parentheses)");
    println!(
        "CPU us w/f: CPU time per transfer of the library's writer thread and of the floor; \
         CPU ratio: floor over writer (steadier than throughput on a shared machine)"
    );
}

/// What the MySQL server and the machine counted per transfer during each timed run, and the
/// contention seen.
fn print_mysql_table(rows: &[serde_json::Value]) {
    println!(
        "\n{:<22} {:>13} {:>13} {:>13} {:>13} {:>13} {:>11} {:>6} {:>8} {:>11} {:>7}",
        "scenario",
        "stmts",
        "row reads",
        "fsyncs",
        "CPU ms",
        "server CPU ms",
        "deadlocks",
        "busy",
        "fl retry",
        "others %",
        "verify"
    );
    let v = |r: &serde_json::Value, k: &str| match &r[k] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".into(),
        other => other.to_string(),
    };
    let pair = |r: &serde_json::Value, k: &str| {
        format!(
            "{}/{}",
            v(r, &format!("library_{k}")),
            v(r, &format!("floor_{k}"))
        )
    };
    for r in rows {
        println!(
            "{:<22} {:>13} {:>13} {:>13} {:>13} {:>13} {:>11} {:>6} {:>8} {:>11} {:>7}",
            v(r, "scenario"),
            pair(r, "statements_per_transfer"),
            pair(r, "reads_per_transfer"),
            pair(r, "fsyncs_per_transfer"),
            pair(r, "cpu_ms"),
            pair(r, "server_cpu_ms"),
            pair(r, "server_deadlocks"),
            v(r, "library_busy"),
            v(r, "floor_retries"),
            pair(r, "other_cpu_pct"),
            if r["verified"] == true {
                "ok"
            } else {
                "skipped"
            },
        );
    }
    println!(
        "library/floor, per transfer during the timed runs (deadlocks: in all). stmts, row reads \
         (Handler_read_*), fsyncs and deadlocks: the server's global counters, every client's \
         work included; CPU ms: this process; others %: other processes' share of the \
         machine's CPU; busy: library calls that failed with StorageBusy; fl retry: the \
         floor's own deadlocks and lock-wait timeouts"
    );
}

/// The SQLite scenarios: one caller against one transfer per commit, 64 callers against the
/// floor's best case of 1,000 per commit.
fn sqlite_scenarios(wallets: usize, many: usize, seed: u64) -> Vec<Scenario> {
    let one = (many / 10).max(1);
    vec![
        Scenario {
            name: "sequential".into(),
            workload: Workload {
                wallets,
                hot: None,
                transfers: one,
                seed,
            },
            callers: 1,
            floor_per_commit: 1,
        },
        Scenario {
            name: "concurrent-64".into(),
            workload: Workload {
                wallets,
                hot: None,
                transfers: many,
                seed,
            },
            callers: 64,
            floor_per_commit: 1000,
        },
        Scenario {
            name: "hot-10-concurrent-64".into(),
            workload: Workload {
                wallets,
                hot: Some(10),
                transfers: many,
                seed,
            },
            callers: 64,
            floor_per_commit: 1000,
        },
    ]
}

/// The MySQL scenarios: random pairs among all wallets, then the hot set of 10, each at 1, 8,
/// 32 and 64 callers. The floor commits every transfer, as a server application does; one
/// caller runs a tenth of the transfers.
fn mysql_scenarios(wallets: usize, many: usize, seed: u64) -> Vec<Scenario> {
    let mut all = Vec::new();
    for hot in [None, Some(10)] {
        for callers in [1, 8, 32, 64] {
            all.push(Scenario {
                name: match hot {
                    None => format!("mysql-{callers}"),
                    Some(h) => format!("mysql-hot-{h}-{callers}"),
                },
                workload: Workload {
                    wallets,
                    hot,
                    transfers: if callers == 1 {
                        (many / 10).max(1)
                    } else {
                        many
                    },
                    seed,
                },
                callers,
                floor_per_commit: 1,
            });
        }
    }
    all
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!(
                "{e}\nusage: wallet-bench sqlite [--quick] [--json FILE] [--dir DIR] [--wallets N] [--transfers N] [--scenario NAME]...\n       wallet-bench sqlite --scenario scale [--scale-wallets N] [--scale-transactions N] [--scale-hot N] [--scale-transfers N] [--scale-pages N] [--scale-build-cache-mib N] [--scale-keep]\n       wallet-bench mysql [--url {}] [--quick] [--json FILE] [--wallets N] [--transfers N] [--scenario NAME]...",
                mysql::DEFAULT_URL
            );
            std::process::exit(2);
        }
    };
    if let Some(path) = &args.scale_build {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        return runtime.block_on(scale::build(path, &args.scale));
    }
    let mysql = args.backend == "mysql";
    let server = match &args.url {
        Some(url) => mysql::server_url(url)?,
        None => mysql::DEFAULT_URL.to_owned(),
    };
    if !mysql {
        std::fs::create_dir_all(&args.dir)?;
    }
    let seed = 42;
    let all = if mysql {
        let wallets = args
            .wallets
            .unwrap_or(if args.quick { 300 } else { 10_000 });
        let many = args
            .transfers
            .unwrap_or(if args.quick { 1_000 } else { 20_000 });
        mysql_scenarios(wallets, many, seed)
    } else {
        let wallets = args
            .wallets
            .unwrap_or(if args.quick { 1_000 } else { 10_000 });
        let many = args
            .transfers
            .unwrap_or(if args.quick { 4_000 } else { 200_000 });
        sqlite_scenarios(wallets, many, seed)
    };
    let scale = args.scenarios.iter().any(|n| n == SCALE);
    if let Some(unknown) = args
        .scenarios
        .iter()
        .find(|n| *n != SCALE && !all.iter().any(|s| s.name == **n))
    {
        let mut names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
        if !mysql {
            names.push(SCALE);
        }
        return Err(format!("no scenario {unknown:?} (have {})", names.join(", ")).into());
    }
    // Created up front so that a bad path fails before the run, and written scenario by
    // scenario so that an interrupted run keeps what it measured.
    let mut json = match &args.json {
        Some(path) => Some(std::fs::File::create(path)?),
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut rows = Vec::new();
    // A quick MySQL run takes the extremes, 1 and 64 callers, unless scenarios are named.
    let selected = |s: &Scenario| {
        if args.scenarios.is_empty() {
            !(mysql && args.quick) || matches!(s.callers, 1 | 64)
        } else {
            args.scenarios.contains(&s.name)
        }
    };
    for s in all.iter().filter(|s| selected(s)) {
        let row = if mysql {
            runtime.block_on(mysql::run_scenario(&server, s))?
        } else {
            runtime.block_on(run_scenario(&args.dir, s))?
        };
        if let Some(f) = &mut json {
            writeln!(f, "{row}")?;
            f.flush()?;
        }
        rows.push(row);
    }
    if scale {
        let row = runtime.block_on(scale::run(&args.dir, &args.scale))?;
        if let Some(f) = &mut json {
            writeln!(f, "{row}")?;
            f.flush()?;
        }
        scale::print(&row);
        rows.push(row);
    }
    print_table(&rows);
    if mysql {
        print_mysql_table(&rows);
    }
    Ok(())
}
