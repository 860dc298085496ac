//! SIGKILL while a file migrates, at random moments.
//!
//! A file is built at each older schema version holding a ledger of top-ups, users, an audit
//! trail, notifications and events (whichever of those tables the version has), enough rows
//! that the later migrations take a moment (they copy, scan or rebuild those tables). This
//! same test binary is started as a child (the ignored `migrate_child` entry point) to open a
//! copy with the library, which migrates it to the latest version, and is killed at a random
//! moment. Afterwards the file must be exactly one of the versions: its `user_version` is
//! between the start and the latest, its schema is that version's, and every row of every
//! table is what the uninterrupted migration to that version leaves. Opening it with the
//! library then finishes the migration (to exactly what an uninterrupted one leaves) and
//! `verify()` passes.
//!
//! It is written against `MIGRATIONS` and `latest_version()`, not a version number, so a new
//! migration is covered (from every older version) as soon as it is added.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::{RngExt, SeedableRng};
use rusqlite::Connection;
use wallet_core::store::Store;

use super::{dump, latest_version, migrate_to, pragma_i64};
use crate::{Options, SqliteStore};

const PATH_ENV: &str = "WALLET_MIGRATE_KILL_PATH";
/// Kills per start version.
const RUNS: usize = 6;
/// Customer wallets (one user each).
const USERS: i64 = 500;
/// Completed top-ups (two entries each).
const TOP_UPS: i64 = 6_000;
/// Notifications, and events, where the version has them.
const NOTES: i64 = 6_000;

/// The child: opens the file named by `PATH_ENV` with the library (which migrates it),
/// announced by `READY` and, if it lives that long, `DONE`.
#[test]
#[ignore = "entry point of the migration kill test's child process"]
fn migrate_child() {
    let path = PathBuf::from(std::env::var(PATH_ENV).expect("run by the kill test"));
    println!("READY");
    let store = SqliteStore::open(&path, Options::default()).unwrap();
    println!("DONE");
    store.close();
}

/// Runs the child on `path`, kills it `delay` after it is ready (unless it finished first),
/// and returns how long after being ready it finished, if it did.
fn run_child(path: &Path, delay: Duration) -> Option<Duration> {
    wallet_core::testkit::child::run_and_kill(
        "schema::kill::migrate_child",
        &[(PATH_ENV, path.as_os_str())],
        delay,
    )
}

fn has_table(conn: &Connection, name: &str) -> bool {
    conn.query_row(
        "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?1",
        [name],
        |r| r.get::<_, i64>(0),
    )
    .unwrap()
        == 1
}

/// Fills whichever of the tables this test knows the file's version has: a consistent ledger
/// (every top-up debits the external account and credits a wallet, chains and running totals
/// correct), its users, an audit trail, notifications and events. Columns are named as the
/// migration that created each table named them, so later versions keep them.
fn fill(conn: &mut Connection) {
    let tx = conn.transaction().unwrap();
    let count = |n: i64| {
        format!("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n})")
    };
    let users = count(USERS);
    let top_ups = count(TOP_UPS);
    let notes = count(NOTES);
    tx.execute_batch(&format!(
        "INSERT INTO currencies (code, exponent) VALUES ('USD', 2);
         INSERT INTO wallets (id, owner_id, kind, currency, status, held, created_at, updated_at)
         VALUES (1, NULL, 101, 'USD', 1, 0, 1, 1);
         {users} INSERT INTO wallets (id, owner_id, kind, currency, status, held, created_at,
                                      updated_at)
         SELECT i + 1, i, 1, 'USD', 1, 0, 1 + i, 1 + i FROM n;
         {top_ups} INSERT INTO transactions (id, kind, status, amount, currency, description,
             metadata, initiated_by, idempotency_key, fingerprint, created_at, completed_at)
         SELECT i, 1, 2, 100 + i % 97, 'USD', 'top-up number ' || i || ' by card', NULL,
                1 + i % {USERS}, 'key-' || i, zeroblob(16), 10000 + i, 10000 + i FROM n;
         INSERT INTO entries (wallet_id, seq, txn_id, amount, balance_after, debits_after)
         SELECT 1, id, id, -amount, -sum(amount) OVER w, sum(amount) OVER w
         FROM transactions WINDOW w AS (ORDER BY id);
         INSERT INTO entries (wallet_id, seq, txn_id, amount, balance_after, debits_after)
         SELECT initiated_by + 1, row_number() OVER w, id, amount, sum(amount) OVER w, 0
         FROM transactions WINDOW w AS (PARTITION BY initiated_by ORDER BY id);"
    ))
    .unwrap();
    if has_table(&tx, "users") {
        tx.execute_batch(&format!(
            "{users} INSERT INTO users (id, username, email, full_name, phone, role, active, kyc,
                                        token_version, created_at, updated_at)
             SELECT i, 'user' || i, 'user' || i || '@example.com', 'User ' || i, '+14155550100',
                    1, 1, 2, 0, 1 + i, 1 + i FROM n;"
        ))
        .unwrap();
    }
    if has_table(&tx, "audit_log") {
        tx.execute_batch(&format!(
            "{users} INSERT INTO audit_log (at, actor_id, action, target, detail, outcome)
             SELECT 1 + i, i, 2, 'user:' || i, NULL, 'ok' FROM n;"
        ))
        .unwrap();
    }
    if has_table(&tx, "notifications") {
        tx.execute_batch(&format!(
            "{notes} INSERT INTO notifications (user_id, kind, priority, title, message, read,
                                                created_at)
             SELECT 1 + i % {USERS}, 1, 2, 'Money received',
                    'Your wallet received a top-up of ' || (100 + i % 97) || ' cents, number '
                    || i || '.', i % 2, 10000 + i FROM n;"
        ))
        .unwrap();
    }
    if has_table(&tx, "events") {
        tx.execute_batch(&format!(
            "{notes} INSERT INTO events (at, kind, subject, payload)
             SELECT 10000 + i, 'transaction.completed', 'transaction:' || i,
                    '{{\"amount\":\"' || (100 + i % 97) || '\",\"currency\":\"USD\",\"kind\":\"TOP_UP\"}}'
             FROM n;"
        ))
        .unwrap();
    }
    tx.commit().unwrap();
}

/// What a file is at: version, application id and schema.
#[derive(Debug, PartialEq)]
struct Shape {
    version: i64,
    application_id: i64,
    schema: Vec<(String, String, String)>,
}

fn shape(conn: &Connection) -> Shape {
    Shape {
        version: pragma_i64(conn, "user_version").unwrap(),
        application_id: pragma_i64(conn, "application_id").unwrap(),
        schema: dump(conn),
    }
}

/// Asserts the file at `found` is the file at `expected`: same shape, and every table holds
/// the same rows (compared in SQLite, both ways, with the counts). Every table of the schema
/// has a primary key, so rows are distinct and set difference is enough.
fn assert_same(found: &Path, expected: &Path, what: &str) {
    let conn = Connection::open(found).unwrap();
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok", "{what}");
    let want = Connection::open(expected).unwrap();
    let shape_found = shape(&conn);
    assert_eq!(shape_found, shape(&want), "{what}");
    drop(want);
    conn.execute(
        "ATTACH DATABASE ?1 AS expected",
        [expected.to_str().unwrap()],
    )
    .unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM main.sqlite_schema WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for t in tables {
        let (rows, wanted, missing, extra): (i64, i64, i64, i64) = conn
            .query_row(
                &format!(
                    "SELECT (SELECT count(*) FROM main.\"{t}\"),
                            (SELECT count(*) FROM expected.\"{t}\"),
                            (SELECT count(*) FROM (SELECT * FROM expected.\"{t}\"
                                                   EXCEPT SELECT * FROM main.\"{t}\")),
                            (SELECT count(*) FROM (SELECT * FROM main.\"{t}\"
                                                   EXCEPT SELECT * FROM expected.\"{t}\"))"
                ),
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        assert_eq!(
            (rows, missing, extra),
            (wanted, 0, 0),
            "{what}: table {t} (rows, missing, extra)"
        );
    }
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_migration_leaves_one_whole_version() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let latest = latest_version();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    // The schema of each version as a fresh file gets it.
    let fresh: Vec<_> = (0..=latest)
        .map(|v| {
            let mut conn = Connection::open_in_memory().unwrap();
            migrate_to(&mut conn, v).unwrap();
            dump(&conn)
        })
        .collect();
    let mut report = Vec::new();
    let mut interrupted = 0;
    for start in 1..latest {
        // The file at `start` (closed, so its log is checkpointed away: one file to copy).
        let template = dir.path().join(format!("v{start}.db"));
        {
            let mut conn = Connection::open(&template).unwrap();
            let mode: String = conn
                .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
                .unwrap();
            assert_eq!(mode, "wal");
            migrate_to(&mut conn, start).unwrap();
            fill(&mut conn);
        }
        // What an uninterrupted migration leaves at each version from `start` on.
        let mut expected = BTreeMap::new();
        for v in start..=latest {
            let file = dir.path().join(format!("v{start}-to-v{v}.db"));
            copy(&template, &file);
            let mut conn = Connection::open(&file).unwrap();
            migrate_to(&mut conn, v).unwrap();
            assert_eq!(shape(&conn).schema, fresh[usize::try_from(v).unwrap()]);
            let entries: i64 = conn
                .query_row("SELECT count(*) FROM entries", [], |r| r.get(0))
                .unwrap();
            assert_eq!(entries, 2 * TOP_UPS);
            expected.insert(v, file);
        }

        // How long the library takes to open (and migrate) the file here.
        let timing = dir.path().join(format!("v{start}-timing.db"));
        copy(&template, &timing);
        let took = run_child(&timing, Duration::from_secs(60)).expect("a migration finishes");
        let span_ms = u64::try_from(took.as_millis()).unwrap().max(10);

        let mut versions = BTreeMap::<i64, usize>::new();
        for run in 0..RUNS {
            let file = dir.path().join(format!("v{start}-run{run}.db"));
            copy(&template, &file);
            let delay = Duration::from_millis(rng.random_range(0..span_ms * 4 / 3));
            let done = run_child(&file, delay);
            let what = format!("from version {start}, killed after {delay:?}");
            let version = pragma_i64(&Connection::open(&file).unwrap(), "user_version").unwrap();
            assert!(
                (start..=latest).contains(&version),
                "{what}: version {version}"
            );
            assert_same(&file, &expected[&version], &what);
            if done.is_some() {
                assert_eq!(version, latest, "{what}: finished but not at the latest");
            } else {
                interrupted += 1;
            }
            *versions.entry(version).or_default() += 1;

            // The library finishes the migration and the ledger verifies.
            let store = SqliteStore::open(&file, Options::default()).unwrap();
            let verified = store.verify().await.unwrap();
            assert!(verified.is_ok(), "{what}: {verified:?}");
            assert_eq!(verified.transactions, u64::try_from(TOP_UPS).unwrap());
            store.close();
            assert_same(&file, &expected[&latest], &format!("{what}, reopened"));
        }
        report.push(format!(
            "from v{start} ({span_ms} ms to open): versions found {versions:?}"
        ));
    }
    println!(
        "migration kills: {}; {interrupted} of {} runs killed before the open finished; {:.1}s",
        report.join("; "),
        RUNS * report.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        interrupted > 0,
        "some kills landed before the migration finished"
    );
}
