//! Storage faults under load: the database reaches its size limit, the filesystem fills up,
//! the files turn read-only. Callers get typed errors, nothing acknowledged is lost, `verify()`
//! passes, and once the fault is gone the same store (not reopened) writes again, with the
//! failed calls retried under their own idempotency keys.
//!
//! The filesystem faults are real, not simulated in the library: a small tmpfs is mounted for
//! the test and filled (ENOSPC), and the database and its log are made immutable with
//! `chattr +i` (EPERM on every write, even through open descriptors and even for root, which a
//! `chmod` is not; a read-only remount is refused while files are open for writing). Both need
//! root (CAP_SYS_ADMIN, CAP_LINUX_IMMUTABLE), as in the project's CI container; without them
//! the tests fail and say so, unless `WALLET_TEST_NO_MOUNT=1` is set to skip them on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)] // tests

mod common;

use common::tmpfs::Tmpfs;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use wallet_core::testkit::d;
use wallet_core::{
    Actor, DepositRequest, Ledger, OpenWalletRequest, Role, TransactionRef, UserId, WalletId,
    WalletKind,
};
use wallet_sqlite::{Options, SqliteStore};

const TASKS: i64 = 4;

fn admin() -> Actor {
    Actor::new(UserId::new(999).unwrap(), Role::Admin)
}

/// One wallet per task, each owned by its own user.
async fn wallets(ledger: &Ledger<SqliteStore>) -> Vec<(Actor, WalletId)> {
    let mut out = Vec::new();
    for n in 1..=TASKS {
        let who = common::user(ledger, n).await;
        let w = ledger
            .open_wallet(
                &who,
                OpenWalletRequest::new(who.user, WalletKind::Personal, "USD"),
            )
            .await
            .unwrap();
        out.push((who, w.id));
    }
    out
}

/// What a load did: acknowledged deposits, and the requests that failed with their error.
#[derive(Default)]
struct Load {
    acked: Vec<(TransactionRef, String)>,
    failed: Vec<(Actor, DepositRequest, wallet_core::Error)>,
}

/// Each task deposits 1 USD with a long description (to fill the file fast) into its wallet
/// until its first failure or until `stop` is set.
async fn load(
    ledger: &Arc<Ledger<SqliteStore>>,
    wallets: &[(Actor, WalletId)],
    prefix: &str,
    stop: &Arc<AtomicBool>,
) -> Load {
    let mut handles = Vec::new();
    for (t, (who, id)) in wallets.iter().cloned().enumerate() {
        let ledger = Arc::clone(ledger);
        let stop = Arc::clone(stop);
        let prefix = prefix.to_owned();
        handles.push(tokio::spawn(async move {
            let mut out = Load::default();
            for i in 0..200_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let key = format!("{prefix}-{t}-{i}");
                let req = DepositRequest::new(id, d("1"), key.clone()).description("x".repeat(400));
                match ledger.deposit(&who, req.clone()).await {
                    Ok(r) => {
                        assert!(!r.replayed);
                        out.acked.push((r.transaction.reference, key));
                    }
                    Err(e) => {
                        out.failed.push((who, req, e));
                        break;
                    }
                }
            }
            out
        }));
    }
    let mut all = Load::default();
    for h in handles {
        let one = h.await.unwrap();
        all.acked.extend(one.acked);
        all.failed.extend(one.failed);
    }
    all
}

/// The ledger holds exactly `deposits` of 1 USD besides nothing else, each acknowledged one
/// is present with its key, and `verify()` passes.
async fn check(
    ledger: &Ledger<SqliteStore>,
    wallets: &[(Actor, WalletId)],
    acked: &[(TransactionRef, String)],
) {
    let report = ledger.verify(&admin()).await.unwrap();
    assert!(report.is_ok(), "{report:#?}");
    assert_eq!(
        usize::try_from(report.transactions).unwrap(),
        acked.len(),
        "exactly the acknowledged deposits are stored"
    );
    let mut total = wallet_core::Decimal::ZERO;
    for (who, id) in wallets {
        total += ledger.wallet(who, *id).await.unwrap().balance.amount();
    }
    assert_eq!(total, wallet_core::Decimal::from(acked.len()));
    for (reference, key) in acked {
        let t = ledger.transaction(&admin(), *reference).await.unwrap();
        assert_eq!(t.idempotency_key.as_str(), key);
    }
}

/// Retries every failed request with its own key: each now executes (nothing of it had been
/// stored), once.
async fn retry_failed(ledger: &Ledger<SqliteStore>, load: &Load) -> Vec<(TransactionRef, String)> {
    let mut acked = Vec::new();
    for (who, req, _) in &load.failed {
        let r = ledger.deposit(who, req.clone()).await.unwrap();
        assert!(
            !r.replayed,
            "a failed call stored nothing, so its retry runs"
        );
        acked.push((
            r.transaction.reference,
            r.transaction.idempotency_key.to_string(),
        ));
        let again = ledger.deposit(who, req.clone()).await.unwrap();
        assert!(again.replayed, "and a second retry replays it");
        assert_eq!(again.transaction.reference, r.transaction.reference);
    }
    acked
}

/// The size limit (`Options::max_bytes`) is reached by four concurrent writers; the limit is
/// then lifted on the open store and the failed calls are retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_size_limit_reached_under_load_is_lifted_without_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let limited = Options {
        max_bytes: Some(768 << 10),
        ..Options::default()
    };
    let store = SqliteStore::open(dir.path().join("wallet.db"), limited).unwrap();
    let ledger = Arc::new(common::ledger(store.clone()).await);
    let wallets = wallets(&ledger).await;
    let stop = Arc::new(AtomicBool::new(false));
    let first = load(&ledger, &wallets, "a", &stop).await;
    assert_eq!(
        first.failed.len(),
        wallets.len(),
        "every task met the limit"
    );
    for (_, _, e) in &first.failed {
        assert_eq!(e.code(), "storage_full", "{e:?}");
        assert!(e.is_retryable());
    }
    assert!(
        first.acked.len() > 100,
        "{} acknowledged",
        first.acked.len()
    );
    check(&ledger, &wallets, &first.acked).await;

    store.set_max_bytes(None).await.unwrap();
    let mut acked = first.acked.clone();
    acked.extend(retry_failed(&ledger, &first).await);
    // And the load goes on well past the old limit.
    let stop_later = Arc::clone(&stop);
    let stopper = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        stop_later.store(true, Ordering::Relaxed);
    });
    let second = load(&ledger, &wallets, "b", &stop).await;
    stopper.await.unwrap();
    assert!(
        second.failed.is_empty(),
        "{:?}",
        second.failed.first().map(|f| &f.2)
    );
    acked.extend(second.acked);
    check(&ledger, &wallets, &acked).await;
    let size = std::fs::metadata(dir.path().join("wallet.db"))
        .unwrap()
        .len()
        + std::fs::metadata(dir.path().join("wallet.db-wal")).map_or(0, |m| m.len());
    assert!(
        size > 768 << 10,
        "the store grew past the old limit: {size} bytes"
    );
    println!(
        "size limit: {} acknowledged before the limit, {} failed calls retried, {} in all",
        first.acked.len(),
        first.failed.len(),
        acked.len()
    );
}

fn fill(path: &Path, bytes: usize) {
    std::fs::write(path, vec![0x5a; bytes]).unwrap();
}

/// A real filesystem fills up under load (ENOSPC), then space returns. Same store throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_filesystem_under_load_recovers_when_space_returns() {
    let Some(fs) = Tmpfs::mount(4096) else {
        return;
    };
    // Ballast that is deleted later to give the space back.
    fill(&fs.path("ballast"), 1 << 20);
    let options = Options {
        checkpoint_bytes: 1 << 20,
        ..Options::default()
    };
    let store = SqliteStore::open(fs.path("wallet.db"), options).unwrap();
    let ledger = Arc::new(common::ledger(store.clone()).await);
    let wallets = wallets(&ledger).await;
    let stop = Arc::new(AtomicBool::new(false));

    // 1. The disk fills up.
    let full = load(&ledger, &wallets, "a", &stop).await;
    assert!(!full.failed.is_empty());
    for (_, _, e) in &full.failed {
        assert_eq!(e.code(), "storage_full", "{e:?}");
    }
    assert!(full.acked.len() > 100, "{} acknowledged", full.acked.len());
    check(&ledger, &wallets, &full.acked).await;

    // 2. Space returns: the same store writes again, and the failed calls are retried.
    std::fs::remove_file(fs.path("ballast")).unwrap();
    let mut acked = full.acked.clone();
    acked.extend(retry_failed(&ledger, &full).await);
    check(&ledger, &wallets, &acked).await;

    store.close();
    drop(ledger);

    // Everything acknowledged is in the file, reopened.
    let ledger =
        common::ledger(SqliteStore::open(fs.path("wallet.db"), Options::default()).unwrap()).await;
    check(&ledger, &wallets, &acked).await;
    println!(
        "tmpfs: {} acknowledged before ENOSPC ({} failed calls), {} in all",
        full.acked.len(),
        full.failed.len(),
        acked.len()
    );
}

/// Sets or clears the immutable attribute of `path`. Unlike a `chmod`, which root ignores and
/// which never affects a file already open, the kernel refuses every write to an immutable
/// file, through descriptors opened before too (EPERM): the file really turns read-only under
/// the open store.
fn immutable(path: &Path, on: bool) -> bool {
    Command::new("chattr")
        .arg(if on { "+i" } else { "-i" })
        .arg(path)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Clears the immutable attribute on drop, so a failing test leaves removable files.
struct Mutable(Vec<PathBuf>);

impl Drop for Mutable {
    fn drop(&mut self) {
        for p in &self.0 {
            immutable(p, false);
        }
    }
}

/// The database file and its write-ahead log turn read-only (immutable) while four tasks
/// write, then writable again. Same store throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_turning_read_only_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wallet.db");
    let store = SqliteStore::open(&db, Options::default()).unwrap();
    let ledger = Arc::new(common::ledger(store.clone()).await);
    let wallets = wallets(&ledger).await;
    let files = vec![db.clone(), dir.path().join("wallet.db-wal")];
    let _restore = Mutable(files.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let flip = {
        let files = files.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            files.iter().all(|f| immutable(f, true))
        })
    };
    let read_only = load(&ledger, &wallets, "b", &stop).await;
    if !flip.join().unwrap() {
        if std::env::var("WALLET_TEST_NO_MOUNT").as_deref() == Ok("1") {
            println!("SKIPPED: chattr +i is not permitted and WALLET_TEST_NO_MOUNT=1");
            return;
        }
        panic!(
            "chattr +i failed: this test needs root with CAP_LINUX_IMMUTABLE on a filesystem \
             that supports it; set WALLET_TEST_NO_MOUNT=1 to skip it on purpose"
        );
    }
    assert_eq!(
        read_only.failed.len(),
        wallets.len(),
        "every task saw the fault"
    );
    let mut codes: Vec<&str> = read_only.failed.iter().map(|f| f.2.code()).collect();
    codes.sort_unstable();
    codes.dedup();
    for (_, _, e) in &read_only.failed {
        assert_eq!(
            e.kind(),
            wallet_core::ErrorKind::Unavailable,
            "a typed storage error: {e:?}"
        );
        assert!(e.is_retryable(), "{e:?}");
    }
    assert!(
        read_only.acked.len() > 10,
        "{} acknowledged",
        read_only.acked.len()
    );
    let mut acked = read_only.acked.clone();
    // Reads go on while the files are read-only, and see every acknowledged deposit.
    check(&ledger, &wallets, &acked).await;
    // New writes keep failing, typed, while the fault lasts.
    let (who, req, _) = &read_only.failed[0];
    let e = ledger.deposit(who, req.clone()).await.unwrap_err();
    assert_eq!(e.kind(), wallet_core::ErrorKind::Unavailable, "{e:?}");

    // Writable again: the same store recovers and the failed calls are retried.
    for f in &files {
        assert!(immutable(f, false));
    }
    acked.extend(retry_failed(&ledger, &read_only).await);
    check(&ledger, &wallets, &acked).await;
    store.close();
    drop(ledger);
    let ledger = common::ledger(SqliteStore::open(&db, Options::default()).unwrap()).await;
    check(&ledger, &wallets, &acked).await;
    println!(
        "read-only files: {} acknowledged before the fault, errors {codes:?}, {} in all",
        read_only.acked.len(),
        acked.len()
    );
}
