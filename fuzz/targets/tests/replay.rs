//! Replays every committed corpus file (`fuzz/corpus/<target>/*`) through its target, on the
//! stable toolchain: each input that ever mattered to a fuzzer stays a regression test.

use std::path::{Path, PathBuf};

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|entry| entry.unwrap_or_else(|e| panic!("{e}")).path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(target: &str) {
    let run = wallet_fuzz::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, run)| *run)
        .unwrap_or_else(|| panic!("no target {target}"));
    let files = corpus(target);
    assert!(
        files.len() >= 5,
        "corpus of {target} has {} files",
        files.len()
    );
    for file in files {
        let data = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        // A panic names the file, so a failure is reproducible with `cargo fuzz run <target> <file>`.
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "{target}: {} fails", file.display());
    }
}

#[test]
fn every_target_has_a_test() {
    let names: Vec<&str> = wallet_fuzz::TARGETS.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        ["amount", "jwt", "history", "import", "csv", "commands"]
    );
}

#[test]
fn amount() {
    replay("amount");
}

#[test]
fn jwt() {
    replay("jwt");
}

#[test]
fn history() {
    replay("history");
}

#[test]
fn import() {
    replay("import");
}

#[test]
fn csv() {
    replay("csv");
}

#[test]
fn commands() {
    replay("commands");
}
