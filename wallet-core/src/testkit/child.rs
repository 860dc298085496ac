//! Killing a child process at a random moment: the harness of the SIGKILL tests.
//!
//! The test binary starts itself again running one ignored test (the child's entry point),
//! which prints `READY` when the work to interrupt begins and `DONE` if it ends; the parent
//! kills it a chosen delay after `READY` and learns whether it finished first.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs this test binary's ignored test `entry` as a child with `env` set, kills it (SIGKILL
/// on Unix) `delay` after it prints `READY` unless it printed `DONE` first, and returns how
/// long after `READY` it printed `DONE`, if it did.
pub fn run_and_kill(entry: &str, env: &[(&str, &OsStr)], delay: Duration) -> Option<Duration> {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            entry,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // libtest prints "test <entry> ... " without a newline before the child's output.
    loop {
        let line = lines.next().expect("child became ready").unwrap();
        if line.ends_with("READY") {
            break;
        }
    }
    let ready = Instant::now();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        if lines.any(|l| l.is_ok_and(|l| l.ends_with("DONE"))) {
            let _ = done_tx.send(ready.elapsed());
        }
    });
    let done = done_rx.recv_timeout(delay).ok();
    child.kill().unwrap();
    child.wait().unwrap();
    reader.join().unwrap();
    done
}
