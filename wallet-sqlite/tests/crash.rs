//! Kill -9 at random moments: every acknowledged transaction survives, nothing partial appears.
//!
//! The parent test starts this same test binary as a child (running the ignored
//! `crash_child` entry point), which transfers money from 8 concurrent tasks and prints
//! `ACK <reference> <key>` after each call returns. The parent SIGKILLs it at a random moment,
//! reopens the file, runs `verify()`, and checks every acknowledged reference is present with
//! its key. It repeats this 25 times on the same file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)] // tests

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::{RngExt, SeedableRng};
use wallet_core::{Actor, Role, TransactionRef, TransferRequest, UserId};
use wallet_sqlite::{Options, SqliteStore};

const DB_ENV: &str = "WALLET_CRASH_DB";
const RUN_ENV: &str = "WALLET_CRASH_RUN";
const WALLETS: i64 = 20;
const KILLS: u64 = 25;

/// The child: opens (or creates) the ledger and transfers until killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "entry point of the crash test's child process"]
async fn crash_child() {
    let path = std::env::var(DB_ENV).expect("run by the crash test");
    let run: u64 = std::env::var(RUN_ENV).unwrap().parse().unwrap();
    let ledger = common::ledger(SqliteStore::open(&path, Options::default()).unwrap()).await;
    // Every run after the first finds the wallets and replays their funding.
    let funded = common::funded_wallets(&ledger, WALLETS, "1000").await;
    let ids: Vec<_> = funded.iter().map(|(_, id)| *id).collect();
    let owners: Vec<_> = funded.iter().map(|(who, _)| *who).collect();
    println!("READY");
    std::io::stdout().flush().unwrap();
    let ledger = std::sync::Arc::new(ledger);
    let mut tasks = Vec::new();
    for t in 0..8u64 {
        let ledger = std::sync::Arc::clone(&ledger);
        let ids = ids.clone();
        let owners = owners.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::SmallRng::seed_from_u64(run * 100 + t);
            for i in 0.. {
                let from = rng.random_range(0..ids.len());
                let to = (from + rng.random_range(1..ids.len())) % ids.len();
                let key = format!("r{run}-t{t}-{i}");
                let amount = wallet_core::Decimal::new(rng.random_range(1..500), 2);
                let owner = owners[from];
                let req = TransferRequest::new(ids[from], ids[to], amount, key.clone());
                if let Ok(r) = ledger.transfer(&owner, req).await {
                    // One write of a whole line: atomic on a pipe, so the parent never reads half.
                    let line = format!("ACK {} {key}\n", r.transaction.reference);
                    std::io::stdout().write_all(line.as_bytes()).unwrap();
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// Runs the child once, kills it after `delay`, and returns the acknowledged transfers.
fn run_child(db: &Path, run: u64, delay: Duration) -> Vec<(TransactionRef, String)> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "crash_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DB_ENV, db)
        .env(RUN_ENV, run.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut acked = Vec::new();
        let mut ready = Some(ready_tx);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // libtest prints "test crash_child ... " without a newline before our output.
            if line.ends_with("READY") {
                if let Some(tx) = ready.take() {
                    let _ = tx.send(());
                }
            } else if let Some(rest) = line.strip_prefix("ACK ") {
                let mut parts = rest.split(' ');
                let reference: TransactionRef = parts.next().unwrap().parse().unwrap();
                acked.push((reference, parts.next().unwrap().to_string()));
            }
        }
        acked
    });
    ready_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("child became ready");
    std::thread::sleep(delay);
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    reader.join().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_acknowledged_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    let admin = Actor::new(UserId::new(999).unwrap(), Role::Admin);
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    let mut all_acked = Vec::new();
    let started = Instant::now();
    for run in 0..KILLS {
        let delay = Duration::from_millis(rng.random_range(20..400));
        let acked = run_child(&db, run, delay);
        let ledger = common::ledger(SqliteStore::open(&db, Options::default()).unwrap()).await;
        let report = ledger.verify(&admin).await.unwrap();
        assert!(report.is_ok(), "after kill {run}: {report:#?}");
        let usd = wallet_core::Currency::iso("USD").unwrap().code();
        assert_eq!(
            report.customer_balances[&usd],
            1000 * 100 * i128::from(WALLETS),
            "money conserved after kill {run}"
        );
        for (reference, key) in &acked {
            let t = ledger
                .transaction(&admin, *reference)
                .await
                .unwrap_or_else(|e| panic!("acknowledged {reference} lost after kill {run}: {e}"));
            assert_eq!(t.idempotency_key.as_str(), key);
            assert_eq!(t.legs.len(), 2);
        }
        all_acked.extend(acked);
    }
    // Earlier runs' acknowledgements are still there after all the later kills.
    let ledger = common::ledger(SqliteStore::open(&db, Options::default()).unwrap()).await;
    for (reference, _) in &all_acked {
        ledger.transaction(&admin, *reference).await.unwrap();
    }
    assert!(
        all_acked.len() > 100,
        "the children did real work: {}",
        all_acked.len()
    );
    println!(
        "{KILLS} kills, {} acknowledged transfers checked, {:.1}s",
        all_acked.len(),
        started.elapsed().as_secs_f64()
    );
}
