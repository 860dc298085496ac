//! The `walletctl` binary end to end, on a populated SQLite ledger.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use wallet_core::testkit::portable_cases::populated;
use wallet_sqlite::{Options, SqliteStore};

fn walletctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_walletctl"))
        .args(args)
        .output()
        .unwrap()
}

/// Runs walletctl, expecting `code`; returns stdout and stderr.
#[track_caller]
fn expect(code: i32, args: &[&str]) -> (String, String) {
    let out = walletctl(args);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        out.status.code(),
        Some(code),
        "{args:?}\n{stdout}\n{stderr}"
    );
    (stdout, stderr)
}

fn url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// A populated ledger in a database file, closed.
async fn ledger_file(path: &Path) {
    let f = populated(SqliteStore::open(path, Options::default()).unwrap()).await;
    f.store.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_import_verify_copy() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    ledger_file(&p("a.db")).await;
    let (a, b, c) = (url(&p("a.db")), url(&p("b.db")), url(&p("c.db")));
    let file = p("a.jsonl");
    let file = file.to_str().unwrap();

    let (_, said) = expect(0, &["export", &a, file]);
    assert!(
        said.starts_with("exported ") && said.contains("sha256 "),
        "{said}"
    );
    // Never overwrites a file.
    let (_, said) = expect(1, &["export", &a, file]);
    assert!(said.contains("exists"), "{said}");

    let (_, said) = expect(0, &["import", &b, file]);
    assert!(said.contains("verified"), "{said}");
    let (report, _) = expect(0, &["verify", &b]);
    assert!(report.contains(": consistent"), "{report}");
    // Exported again, through stdout: the same bytes.
    let (again, _) = expect(0, &["export", &b, "-"]);
    assert_eq!(again.as_bytes(), std::fs::read(file).unwrap());
    // Into a store holding data: refused.
    let (_, said) = expect(1, &["import", &b, file]);
    assert!(said.contains("[store_not_empty]"), "{said}");

    // Straight from one store into another, then from stdin.
    expect(0, &["copy", &a, &c]);
    let (copied, _) = expect(0, &["export", &c, "-"]);
    assert_eq!(copied, again);
    let mut child = Command::new(env!("CARGO_BIN_EXE_walletctl"))
        .args(["import", &url(&p("d.db")), "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(again.as_bytes())
        .unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    expect(0, &["migrate", &url(&p("d.db"))]);
    let (report, _) = expect(0, &["verify", &url(&p("d.db"))]);
    assert!(report.contains(": consistent"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_files_and_bad_commands_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    ledger_file(&p("a.db")).await;
    let file = p("a.jsonl");
    expect(0, &["export", &url(&p("a.db")), file.to_str().unwrap()]);
    let bytes = std::fs::read(&file).unwrap();
    let cut = p("cut.jsonl");
    std::fs::write(&cut, &bytes[..bytes.len() - 20]).unwrap();
    let (_, said) = expect(1, &["import", &url(&p("b.db")), cut.to_str().unwrap()]);
    assert!(
        said.contains("[import_invalid]") && said.contains("truncated"),
        "{said}"
    );
    // The refused import left an empty, usable store.
    let (report, _) = expect(0, &["verify", &url(&p("b.db"))]);
    assert!(
        report.starts_with("0 accounts, 0 transactions, 0 entries"),
        "{report}"
    );
    expect(0, &["import", &url(&p("b.db")), file.to_str().unwrap()]);

    // A missing source, an unreachable MySQL server, unknown commands and URLs.
    let missing = url(&p("missing.db"));
    let (_, said) = expect(1, &["verify", &missing]);
    assert!(said.contains("no such file"), "{said}");
    assert!(!p("missing.db").exists());
    let (_, said) = expect(
        1,
        &[
            "copy",
            &url(&p("a.db")),
            "mysql://u@unresolvable.invalid/db",
        ],
    );
    assert!(said.contains("[storage_error]"), "{said}");
    expect(2, &[]);
    expect(2, &["export", "a.db", "-"]);
    expect(2, &["verify"]);
    expect(2, &["frobnicate", "x"]);
    let (help, _) = expect(0, &["--help"]);
    assert!(help.contains("walletctl copy"));
}
