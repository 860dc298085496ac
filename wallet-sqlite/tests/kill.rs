//! SIGKILL during an export and during an import, at random moments.
//!
//! The parent test starts this same binary as a child (the ignored `kill_child` entry point),
//! which exports a ledger to a file or imports a file into a new database and is killed part
//! way. Afterwards:
//! - an export file is either refused by the reader (and the store it was offered to stays
//!   empty), or accepted and then byte for byte the complete export: never accepted half;
//! - an import target reopens, and is either empty or the whole ledger, verified.
//!
//! (SIGKILL during a migration is tested in `src/schema.rs`, which can build old schemas.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)] // tests

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::{RngExt, SeedableRng};
use wallet_core::portable::Portable;
use wallet_core::testkit::portable_cases::{export_bytes, import_bytes};
use wallet_core::{Actor, DepositRequest, Role, UserId};
use wallet_sqlite::{Durability, Options, SqliteStore};

const OP_ENV: &str = "WALLET_KILL_OP";
const FROM_ENV: &str = "WALLET_KILL_FROM";
const TO_ENV: &str = "WALLET_KILL_TO";
const RUNS: u64 = 10;

/// The child: one export (`FROM` database to `TO` file) or import (`FROM` file to a new `TO`
/// database), announced by `READY` and, if it lives that long, `DONE`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "entry point of the kill test's child process"]
async fn kill_child() {
    let op = std::env::var(OP_ENV).expect("run by the kill test");
    let from = PathBuf::from(std::env::var(FROM_ENV).unwrap());
    let to = PathBuf::from(std::env::var(TO_ENV).unwrap());
    match op.as_str() {
        "export" => {
            let store = SqliteStore::open(&from, Options::default()).unwrap();
            let file = std::fs::File::create_new(&to).unwrap();
            println!("READY");
            store.export(std::io::BufWriter::new(file)).await.unwrap();
        }
        "import" => {
            let store = SqliteStore::open(&to, Options::default()).unwrap();
            let file = std::fs::File::open(&from).unwrap();
            println!("READY");
            store.import(std::io::BufReader::new(file)).await.unwrap();
        }
        other => panic!("unknown op {other}"),
    }
    println!("DONE");
}

/// Runs the child, kills it `delay` after it is ready (unless it finished first), and returns
/// how long after being ready it finished, if it did.
fn run_child(op: &str, from: &Path, to: &Path, delay: Duration) -> Option<Duration> {
    wallet_core::testkit::child::run_and_kill(
        "kill_child",
        &[
            (OP_ENV, op.as_ref()),
            (FROM_ENV, from.as_os_str()),
            (TO_ENV, to.as_os_str()),
        ],
        delay,
    )
}

/// A ledger big enough that an export or import takes a while: 20 wallets, 3000 deposits
/// with long descriptions.
async fn source(path: &Path) -> Vec<u8> {
    let fast = Options {
        durability: Durability::Normal,
        ..Options::default()
    };
    let store = SqliteStore::open(path, fast).unwrap();
    let ledger = std::sync::Arc::new(common::ledger(store.clone()).await);
    let funded = common::funded_wallets(&ledger, 20, "1").await;
    let mut tasks = Vec::new();
    for (t, (who, id)) in funded.into_iter().enumerate() {
        let ledger = std::sync::Arc::clone(&ledger);
        tasks.push(tokio::spawn(async move {
            for i in 0..150 {
                let req = DepositRequest::new(id, wallet_core::Decimal::ONE, format!("d{t}-{i}"))
                    .description("y".repeat(300));
                ledger.deposit(&who, req).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (bytes, summary) = export_bytes(&store).await;
    assert!(summary.rows > 6000);
    store.close();
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_export_and_import_never_leaves_half() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("source.db");
    let reference = source(&db).await;
    let full = dir.path().join("full.jsonl");
    std::fs::write(&full, &reference).unwrap();
    let admin = Actor::new(UserId::new(999).unwrap(), Role::Admin);
    let mut rng = rand::rngs::SmallRng::seed_from_u64(11);

    // How long a whole export takes here, to spread the kills over it.
    let took = run_child(
        "export",
        &db,
        &dir.path().join("timing.jsonl"),
        Duration::from_secs(30),
    );
    let span_ms = u64::try_from(took.expect("an export finishes").as_millis())
        .unwrap()
        .max(10);

    let export_ms = span_ms;
    let (mut refused, mut accepted) = (0, 0);
    for run in 0..RUNS {
        let file = dir.path().join(format!("export-{run}.jsonl"));
        let delay = Duration::from_millis(rng.random_range(0..span_ms * 4 / 3));
        let done = run_child("export", &db, &file, delay);
        let bytes = std::fs::read(&file).unwrap_or_default();
        let target = SqliteStore::open_in_memory(Options::default()).unwrap();
        match import_bytes(&target, bytes.clone()).await {
            Ok(imported) => {
                assert_eq!(bytes, reference, "an accepted export is the whole export");
                assert!(imported.report.is_ok());
                accepted += 1;
            }
            Err(e) => {
                assert!(done.is_none(), "a finished export was refused: {e:?}");
                assert_eq!(e.code(), "import_invalid", "{e:?}");
                let (after, summary) = export_bytes(&target).await;
                assert_eq!(summary.rows, 0, "a refused file stores nothing");
                assert!(!after.is_empty());
                refused += 1;
            }
        }
    }

    let took = run_child(
        "import",
        &full,
        &dir.path().join("timing.db"),
        Duration::from_secs(30),
    );
    let span_ms = u64::try_from(took.expect("an import finishes").as_millis())
        .unwrap()
        .max(10);
    let (mut empty, mut complete) = (0, 0);
    for run in 0..RUNS {
        let target = dir.path().join(format!("import-{run}.db"));
        let delay = Duration::from_millis(rng.random_range(0..span_ms * 4 / 3));
        let done = run_child("import", &full, &target, delay);
        let store = SqliteStore::open(&target, Options::default()).unwrap();
        let (after, summary) = export_bytes(&store).await;
        if summary.rows == 0 {
            assert!(done.is_none(), "a finished import left nothing");
            empty += 1;
        } else {
            assert_eq!(after, reference, "an import is all or nothing");
            let ledger = common::ledger(store.clone()).await;
            assert!(ledger.verify(&admin).await.unwrap().is_ok());
            complete += 1;
        }
        store.close();
    }
    println!(
        "export: {refused} killed files refused, {accepted} complete; import: {empty} targets \
         left empty, {complete} complete; export {export_ms} ms, import {span_ms} ms; {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert!(refused > 0 && empty > 0, "some kills landed mid-way");
}
