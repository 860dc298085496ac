//! The MariaDB server restarts in the middle of a load.
//!
//! Eight tasks transfer money, each retrying a failed call with the same idempotency key, until
//! the server has been shut down and started again (and at least a set number each, so the
//! load spans the whole outage however fast the transfers go). During the outage callers get
//! typed errors (kind `Unavailable`) or wait for the server, never a panic or a wrong answer;
//! afterwards every transfer happened exactly once, money is conserved and `verify()` passes.
//!
//! This binary holds one test only: a restart disturbs every connection to the server, and
//! cargo runs test binaries one after another (but the tests of one binary in parallel). A
//! guard brings the server back even if the test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)] // tests

mod common;

use std::collections::HashSet;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use wallet_core::testkit::d;
use wallet_core::testkit::storage::{funded_wallets, ledger};
use wallet_core::{Actor, ErrorKind, TransferRequest, UserId};

const TASKS: u64 = 8;
/// Transfers each task makes at least; it goes on until the restart is over.
const PER_TASK: u64 = 60;

/// Starts the server (`scripts/ensure-mariadb` waits until it answers) when dropped.
struct BringBack;

impl Drop for BringBack {
    fn drop(&mut self) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/ensure-mariadb");
        let _ = Command::new(script).status();
    }
}

/// Shuts the server down (waiting until it is gone) and starts it again.
fn restart_server() -> Duration {
    let started = Instant::now();
    let host = common::admin_url();
    let host = host.rsplit('@').next().unwrap_or("127.0.0.1:3306");
    let (h, p) = host.split_once(':').unwrap_or((host, "3306"));
    let down = Command::new("mariadb-admin")
        .args(["--protocol=tcp", "-h", h, "-P", p, "-uroot", "shutdown"])
        .status()
        .unwrap();
    assert!(down.success(), "mariadb-admin shutdown");
    // The command returns before the process has exited; starting meanwhile would find it
    // still running and do nothing.
    let gone = Instant::now() + Duration::from_secs(60);
    while Command::new("pidof")
        .arg("mariadbd")
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        assert!(Instant::now() < gone, "mariadbd did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
    let up = Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/ensure-mariadb"
    ))
    .status()
    .unwrap();
    assert!(up.success(), "the server came back");
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_restart_mid_load_loses_nothing_and_applies_nothing_twice() {
    assert!(
        std::env::var("WALLET_TEST_MYSQL").is_err(),
        "this test restarts the local server; it cannot restart one given by WALLET_TEST_MYSQL"
    );
    let _bring_back = BringBack;
    let ledger = Arc::new(ledger(common::fresh_store().await).await);
    let funded = funded_wallets(&ledger, 20, "100.00").await;
    let restarted = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut handles = Vec::new();
    for t in 0..TASKS {
        let ledger = Arc::clone(&ledger);
        let funded = funded.clone();
        let restarted = Arc::clone(&restarted);
        handles.push(tokio::spawn(async move {
            let mut rng = SmallRng::seed_from_u64(500 + t);
            let mut acked = Vec::new();
            let mut errors: Vec<&'static str> = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(120);
            let mut i = 0u64;
            while i < PER_TASK || !restarted.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let from = rng.random_range(0..funded.len());
                let to = (from + 1 + rng.random_range(0..funded.len() - 1)) % funded.len();
                let key = format!("k{t}-{i}");
                let req =
                    TransferRequest::new(funded[from].1, funded[to].1, d("0.01"), key.clone());
                // Retry with the same key until the outcome is known.
                loop {
                    match ledger.transfer(&funded[from].0, req.clone()).await {
                        Ok(r) => {
                            acked.push((r.transaction.reference, key.clone()));
                            break;
                        }
                        Err(e) if e.kind() == ErrorKind::Unavailable => {
                            errors.push(e.code());
                            assert!(Instant::now() < deadline, "still failing: {e:?}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        Err(e) => panic!("unexpected refusal {e:?}"),
                    }
                }
                // Pace the load so that it spans the restart.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (acked, errors, i)
        }));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let outage = tokio::task::spawn_blocking(restart_server).await.unwrap();
    restarted.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut acked = Vec::new();
    let mut errors = Vec::new();
    let mut attempted = 0u64;
    for h in handles {
        let (a, e, n) = h.await.unwrap();
        acked.extend(a);
        errors.extend(e);
        attempted += n;
    }
    let mut codes = errors.clone();
    codes.sort_unstable();
    codes.dedup();
    // The load spans the outage by construction (every task goes on until the server is back).
    // Whether a caller sees it depends on where each command was when the server went: one
    // in the round trip of its COMMIT gets a typed error; others wait for a new connection
    // and succeed. Either is right; a wrong answer or a panic is not.
    // A replayed answer after a lost acknowledgement names the same transaction: dedupe.
    let unique: HashSet<_> = acked.iter().cloned().collect();
    assert_eq!(
        unique.len(),
        usize::try_from(attempted).unwrap(),
        "every transfer happened exactly once"
    );
    let admin = Actor::new(UserId::new(9_999).unwrap(), wallet_core::Role::Admin);
    let report = ledger.verify(&admin).await.unwrap();
    assert!(report.is_ok(), "{report:#?}");
    let usd = wallet_core::Currency::iso("USD").unwrap().code();
    assert_eq!(
        report.customer_balances[&usd],
        10_000 * 20,
        "money conserved"
    );
    assert_eq!(
        usize::try_from(report.transactions).unwrap(),
        funded.len() + unique.len(),
        "nothing partial or doubled is stored"
    );
    for (reference, key) in &unique {
        let t = ledger.transaction(&admin, *reference).await.unwrap();
        assert_eq!(t.idempotency_key.as_str(), key);
    }
    println!(
        "restart: server down and up in {} ms; {} typed errors {codes:?} seen and retried; {} transfers, each once",
        outage.as_millis(),
        errors.len(),
        unique.len()
    );
}
