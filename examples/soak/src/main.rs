//! `wallet-soak`: a long mixed workload with many concurrent callers through the public API,
//! on each backend, checked at the end.
//!
//! ```text
//! cargo run --release -p wallet-soak -- [sqlite|mysql|all] [--minutes N | --seconds N]
//!     [--callers N] [--dir DIR] [--url mysql://root@127.0.0.1:3306] [--seed N] [--json FILE]
//! ```
//!
//! Each caller is one customer with a USD wallet, looping until the time is up over deposits,
//! withdrawals, transfers, holds with captures (whole or part) and releases, refunds (by the
//! SUPERUSER), replays of deposits, and reads (history, wallets, notifications, unread counts,
//! transactions). Amounts are random, so some calls are refused (insufficient funds, refunds
//! larger than the transfer): these are expected; any other error fails the run.
//!
//! At the end the run fails unless: `verify()` passes; the customers' money equals what the
//! acknowledged calls put in minus what they took out, and the money held equals the holds
//! left open (nothing acknowledged was lost or applied twice); no replay returned another
//! transaction; memory did not keep growing (RSS at the end within 20 % or 32 MiB of the
//! middle). Exit status: 0 pass, 1 fail, 2 usage error.
//!
//! SQLite runs on a new file in `--dir` (default `target/soak`); MySQL on a database
//! `wallet_soak` that it creates anew on the server and drops after a passing run.

// A command-line tool's job is to print.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod workload;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::{Connection, Executor, MySqlConnection};
use wallet_core::Store;

use crate::workload::{EXPECTED_ERRORS, Outcome, Setup};

/// Most concurrent callers.
const CALLERS_MAX: usize = 1024;
/// Longest run per backend.
const MINUTES_MAX: u64 = 24 * 60;
/// RSS growth from the middle of the run to its end that still counts as flat.
const RSS_GROWTH_MIB_MAX: f64 = 32.0;
const RSS_GROWTH_RATIO_MAX: f64 = 0.20;
/// The database the MySQL run uses.
const MYSQL_DB: &str = "wallet_soak";

struct Args {
    backends: Vec<&'static str>,
    duration: Duration,
    callers: usize,
    dir: PathBuf,
    url: String,
    seed: u64,
    json: Option<PathBuf>,
}

fn usage(message: &str) -> ExitCode {
    eprintln!("wallet-soak: {message}");
    eprintln!(
        "usage: wallet-soak [sqlite|mysql|all] [--minutes N | --seconds N] [--callers N] \
         [--dir DIR] [--url mysql://user@host:port] [--seed N] [--json FILE]"
    );
    ExitCode::from(2)
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        backends: vec!["sqlite"],
        duration: Duration::from_secs(600),
        callers: 64,
        dir: PathBuf::from("target/soak"),
        url: std::env::var("WALLET_TEST_MYSQL")
            .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into()),
        seed: 7,
        json: None,
    };
    let mut it = std::env::args().skip(1);
    let number = |v: Option<String>, what: &str| -> Result<u64, String> {
        v.and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("{what} needs a whole number"))
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "sqlite" => args.backends = vec!["sqlite"],
            "mysql" => args.backends = vec!["mysql"],
            "all" => args.backends = vec!["sqlite", "mysql"],
            "--minutes" => {
                let m = number(it.next(), "--minutes")?;
                if m == 0 || m > MINUTES_MAX {
                    return Err(format!("--minutes must be 1 to {MINUTES_MAX}"));
                }
                args.duration = Duration::from_secs(m * 60);
            }
            "--seconds" => {
                let s = number(it.next(), "--seconds")?;
                if s == 0 || s > MINUTES_MAX * 60 {
                    return Err(format!("--seconds must be 1 to {}", MINUTES_MAX * 60));
                }
                args.duration = Duration::from_secs(s);
            }
            "--callers" => {
                let n = usize::try_from(number(it.next(), "--callers")?).unwrap_or(0);
                if !(2..=CALLERS_MAX).contains(&n) {
                    return Err(format!("--callers must be 2 to {CALLERS_MAX}"));
                }
                args.callers = n;
            }
            "--seed" => args.seed = number(it.next(), "--seed")?,
            "--dir" => args.dir = it.next().ok_or("--dir needs a folder")?.into(),
            "--url" => args.url = it.next().ok_or("--url needs a server URL")?,
            "--json" => args.json = Some(it.next().ok_or("--json needs a file")?.into()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if !args.url.starts_with("mysql://") || args.url.trim_end_matches('/').matches('/').count() > 2
    {
        return Err("--url names the server (mysql://user@host:port), not a database".into());
    }
    Ok(args)
}

/// Resident memory of this process, MiB.
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// RSS samples over a run: at the start, every few seconds, at the end.
struct Memory {
    samples: Vec<(f64, f64)>,
}

impl Memory {
    /// The sample nearest to `at` seconds.
    fn at(&self, at: f64) -> f64 {
        self.samples
            .iter()
            .min_by(|a, b| (a.0 - at).abs().total_cmp(&(b.0 - at).abs()))
            .map_or(0.0, |s| s.1)
    }
    fn max(&self) -> f64 {
        self.samples.iter().map(|s| s.1).fold(0.0, f64::max)
    }
}

/// Samples RSS every `every` until `stop` is set.
fn sample_memory(stop: Arc<AtomicBool>, every: Duration) -> std::thread::JoinHandle<Memory> {
    std::thread::spawn(move || {
        let started = Instant::now();
        let mut samples = vec![(0.0, rss_mib())];
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(200));
            let t = started.elapsed().as_secs_f64();
            if t - samples.last().map_or(0.0, |s| s.0) >= every.as_secs_f64() {
                samples.push((t, rss_mib()));
            }
        }
        samples.push((started.elapsed().as_secs_f64(), rss_mib()));
        Memory { samples }
    })
}

/// Runs the workload on a ledger already set up and checks the end state.
async fn soak<S: Store + Clone>(
    backend: &str,
    setup: Setup<S>,
    args: &Args,
) -> Result<serde_json::Value, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let every = (args.duration / 20).clamp(Duration::from_secs(1), Duration::from_secs(15));
    let sampler = sample_memory(Arc::clone(&stop), every);
    let started = Instant::now();
    let outcome = workload::run(&setup, args.duration, args.seed)
        .await
        .map_err(|e| format!("the workload stopped: {e}"))?;
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let memory = sampler
        .join()
        .map_err(|_| "the memory sampler panicked".to_owned())?;
    let report = setup
        .ledger
        .verify(&setup.root)
        .await
        .map_err(|e| format!("verify failed to run: {e}"))?;
    let held = held_minor(&setup).await?;
    let health = setup.ledger.health().await;
    let checks = check(&setup, &outcome, &report, held, &memory);
    let calls: u64 = outcome.tally.values().flat_map(|m| m.values()).sum();
    print_report(
        backend, args, elapsed, calls, &outcome, &report, &memory, &checks,
    );
    println!(
        "health at the end: reachable {}, schema {:?}/{}, {:?}",
        health.reachable, health.schema_version, health.schema_supported, health.backend
    );
    let failed: Vec<&String> = checks
        .iter()
        .filter_map(|(ok, c)| (!ok).then_some(c))
        .collect();
    let result = json!({
        "backend": backend,
        "callers": args.callers,
        "seconds": elapsed,
        "calls": calls,
        "calls_per_second": calls as f64 / elapsed.max(f64::MIN_POSITIVE),
        "tally": outcome.tally,
        "anomalies": outcome.anomalies,
        "verify": {
            "ok": report.is_ok(),
            "accounts": report.accounts,
            "transactions": report.transactions,
            "entries": report.entries,
            "discrepancies": report.discrepancy_count,
        },
        "rss_mib": {
            "start": memory.at(0.0),
            "middle": memory.at(elapsed / 2.0),
            "end": memory.at(elapsed),
            "max": memory.max(),
        },
        "checks": checks.iter().map(|(ok, c)| json!({"ok": ok, "check": c})).collect::<Vec<_>>(),
        "passed": failed.is_empty(),
    });
    if failed.is_empty() {
        Ok(result)
    } else {
        Err(format!(
            "{backend}: {} check(s) failed:\n  {}\n{result}",
            failed.len(),
            failed
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n  ")
        ))
    }
}

/// Money reserved in all customer wallets now.
async fn held_minor<S: Store + Clone>(setup: &Setup<S>) -> Result<i64, String> {
    let mut held = 0;
    for (who, wallet) in &setup.customers {
        let w = setup
            .ledger
            .wallet(who, *wallet)
            .await
            .map_err(|e| format!("reading wallet {wallet}: {e}"))?;
        held += w.held.minor();
    }
    Ok(held)
}

/// Every end-of-run check: whether it passed, and what it says.
fn check<S>(
    setup: &Setup<S>,
    outcome: &Outcome,
    report: &wallet_core::VerifyReport,
    held_minor: i64,
    memory: &Memory,
) -> Vec<(bool, String)> {
    let mut checks = Vec::new();
    checks.push((
        report.is_ok(),
        format!(
            "verify(): {} discrepancies over {} accounts, {} transactions, {} entries",
            report.discrepancy_count, report.accounts, report.transactions, report.entries
        ),
    ));
    let unexpected: Vec<String> = outcome
        .tally
        .iter()
        .flat_map(|(op, m)| {
            m.iter()
                .filter(|(code, _)| **code != "ok" && !EXPECTED_ERRORS.contains(code))
                .map(move |(code, n)| format!("{op}/{code} x{n}"))
        })
        .collect();
    checks.push((
        unexpected.is_empty(),
        format!("unexpected errors: {}", list(&unexpected)),
    ));
    checks.push((
        outcome.anomalies.is_empty(),
        format!("anomalies: {}", list(&outcome.anomalies)),
    ));
    let expected = i128::from(setup.funded_minor) + i128::from(outcome.money_in_minor)
        - i128::from(outcome.money_out_minor);
    let found = report
        .customer_balances
        .iter()
        .find(|(c, _)| c.as_str() == "USD")
        .map_or(0, |(_, v)| *v);
    checks.push((
        found == expected,
        format!(
            "customer money: {found} minor units in the ledger, {expected} by the acknowledged calls \
             (funding {} + in {} - out {})",
            setup.funded_minor, outcome.money_in_minor, outcome.money_out_minor
        ),
    ));
    checks.push((
        held_minor == outcome.open_holds_minor,
        format!(
            "money held: {held_minor} minor units in the wallets, {} by the open holds",
            outcome.open_holds_minor
        ),
    ));
    let end = memory.samples.last().map_or(0.0, |s| s.1);
    let middle = memory.at(memory.samples.last().map_or(0.0, |s| s.0) / 2.0);
    let allowed = (middle * RSS_GROWTH_RATIO_MAX).max(RSS_GROWTH_MIB_MAX);
    checks.push((
        end - middle <= allowed,
        format!(
            "RSS flat: {:.1} MiB at the start, {middle:.1} in the middle, {end:.1} at the end \
             (growth allowed after the middle: {allowed:.1})",
            memory.at(0.0)
        ),
    ));
    checks
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join("; ")
    }
}

#[allow(clippy::too_many_arguments)] // a report of everything measured
fn print_report(
    backend: &str,
    args: &Args,
    elapsed: f64,
    calls: u64,
    outcome: &Outcome,
    report: &wallet_core::VerifyReport,
    memory: &Memory,
    checks: &[(bool, String)],
) {
    println!(
        "\n== {backend}: {} callers for {elapsed:.0} s, {calls} calls ({:.0}/s), seed {}",
        args.callers,
        calls as f64 / elapsed.max(f64::MIN_POSITIVE),
        args.seed
    );
    println!("{:<16} {:>10}  outcomes", "operation", "calls");
    for (op, m) in &outcome.tally {
        let n: u64 = m.values().sum();
        let outcomes: Vec<String> = m.iter().map(|(c, k)| format!("{c} {k}")).collect();
        println!("{op:<16} {n:>10}  {}", outcomes.join(", "));
    }
    println!(
        "verify: ok={} accounts={} transactions={} entries={}",
        report.is_ok(),
        report.accounts,
        report.transactions,
        report.entries
    );
    let rss: Vec<String> = memory
        .samples
        .iter()
        .map(|(t, m)| format!("{t:.0}s:{m:.0}"))
        .collect();
    println!("RSS MiB over time: {}", rss.join(" "));
    for (ok, c) in checks {
        println!("[{}] {c}", if *ok { "pass" } else { "FAIL" });
    }
}

async fn run_sqlite(args: &Args) -> Result<serde_json::Value, String> {
    std::fs::create_dir_all(&args.dir).map_err(|e| format!("{}: {e}", args.dir.display()))?;
    let path = args.dir.join("soak.db");
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.clone().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
    let store = wallet_sqlite::SqliteStore::open(&path, wallet_sqlite::Options::default())
        .map_err(|e| format!("opening {}: {e}", path.display()))?;
    println!("sqlite: {} (durability FULL)", path.display());
    let setup = workload::set_up(store.clone(), args.callers)
        .await
        .map_err(|e| format!("setting up: {e}"))?;
    let result = soak("sqlite", setup, args).await;
    store.close();
    result
}

async fn run_mysql(args: &Args) -> Result<serde_json::Value, String> {
    let server = args.url.trim_end_matches('/');
    let mut admin = MySqlConnection::connect(server)
        .await
        .map_err(|e| format!("connecting to the MySQL server: {e}"))?;
    admin
        .execute(format!("DROP DATABASE IF EXISTS {MYSQL_DB}").as_str())
        .await
        .map_err(|e| e.to_string())?;
    admin
        .execute(format!("CREATE DATABASE {MYSQL_DB} CHARACTER SET utf8mb4").as_str())
        .await
        .map_err(|e| e.to_string())?;
    let url = format!("{server}/{MYSQL_DB}");
    let options = wallet_mysql::ConnectOptions {
        tls: wallet_mysql::Tls::Disabled,
        ..wallet_mysql::ConnectOptions::default()
    };
    wallet_mysql::migrate(&url, &options)
        .await
        .map_err(|e| format!("migrating: {e}"))?;
    let store = wallet_mysql::MySqlStore::connect(&url, options.clone())
        .await
        .map_err(|e| format!("connecting: {e}"))?;
    println!(
        "mysql: database {MYSQL_DB}, pool of {} connections",
        options.max_connections
    );
    let setup = workload::set_up(store.clone(), args.callers)
        .await
        .map_err(|e| format!("setting up: {e}"))?;
    let result = soak("mysql", setup, args).await;
    store.close().await;
    if result.is_ok() {
        let _ = admin
            .execute(format!("DROP DATABASE IF EXISTS {MYSQL_DB}").as_str())
            .await;
    }
    result
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => return usage(&e),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wallet-soak: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut results = Vec::new();
    let mut failed = false;
    for backend in &args.backends {
        let result = runtime.block_on(async {
            match *backend {
                "mysql" => run_mysql(&args).await,
                _ => run_sqlite(&args).await,
            }
        });
        match result {
            Ok(v) => results.push(v),
            Err(e) => {
                eprintln!("wallet-soak: FAILED: {e}");
                failed = true;
            }
        }
    }
    if let Some(path) = &args.json {
        let lines: String = results.iter().map(|v| format!("{v}\n")).collect();
        if let Err(e) = std::fs::write(path, lines) {
            eprintln!("wallet-soak: writing {}: {e}", path.display());
            failed = true;
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        println!("\nwallet-soak: passed");
        ExitCode::SUCCESS
    }
}
