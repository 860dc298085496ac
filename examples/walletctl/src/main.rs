//! `walletctl`: moves whole ledgers between stores in the portable format
//! (`docs/PORTABLE.md`).
//!
//! ```text
//! walletctl export  <url> <file|->     write the store to a new file (or stdout)
//! walletctl import  <url> <file|->     load a file (or stdin) into an empty store
//! walletctl verify  <url>              check every balance and transaction
//! walletctl migrate <url>              bring the store's schema to the latest version
//! walletctl copy    <from-url> <to-url>  export one store straight into another, empty one
//! ```
//!
//! URLs: `sqlite://path/to/file.db` (`sqlite:///absolute/path.db`). Progress and summaries go
//! to stderr, so `export <url> -` can be piped. Exit status: 0 on success, 1 on failure
//! (including a ledger that does not verify), 2 on a usage error.

// A command-line tool's job is to print.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod backend;

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;

use wallet_core::Store;
use wallet_core::portable::{Imported, Portable, Summary};

use crate::backend::{AnyStore, Open};

const USAGE: &str = "usage:
  walletctl export  <url> <file|->       write the store to a new file (- for stdout)
  walletctl import  <url> <file|->       load a file (- for stdin) into an empty store
  walletctl verify  <url>                check every balance and transaction
  walletctl migrate <url>                bring the store's schema to the latest version
  walletctl copy    <from-url> <to-url>  export one store into another, empty one
urls: sqlite://path/to/file.db, sqlite:///absolute/path.db";

/// Why a command failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The command line is wrong.
    Usage(String),
    /// The library refused or failed.
    Wallet(wallet_core::Error),
    /// Anything else (files, backends not built in).
    Other(String),
}

impl From<wallet_core::Error> for Failure {
    fn from(e: wallet_core::Error) -> Self {
        Failure::Wallet(e)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Usage(m) | Failure::Other(m) => f.write_str(m),
            Failure::Wallet(e) => write!(f, "{e} [{}]", e.code()),
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(m)) => {
            eprintln!("walletctl: {m}\n{USAGE}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("walletctl: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &[&str]) -> Result<(), Failure> {
    match args {
        ["export", url, file] => export(url, file).await,
        ["import", url, file] => import(url, file).await,
        ["verify", url] => verify(url).await,
        ["migrate", url] => migrate(url).await,
        ["copy", from, to] => copy(from, to).await,
        ["help" | "--help" | "-h"] => {
            println!("{USAGE}");
            Ok(())
        }
        [] => Err(Failure::Usage("no command".into())),
        [command, ..] => Err(Failure::Usage(format!(
            "{command}: unknown command or wrong number of arguments"
        ))),
    }
}

/// Runs `command` on the store at `url` and closes the store whatever happened.
async fn with_open<T>(
    url: &str,
    how: Open,
    command: impl AsyncFnOnce(&AnyStore) -> Result<T, Failure>,
) -> Result<T, Failure> {
    let store = AnyStore::open(url, how).await?;
    let result = command(&store).await;
    store.close().await;
    result
}

async fn export(url: &str, file: &str) -> Result<(), Failure> {
    let out: Box<dyn Write + Send> = if file == "-" {
        Box::new(std::io::stdout())
    } else {
        // Never overwrite: the file named could be the very export someone means to import.
        let created = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(file)
            .map_err(|e| Failure::Other(format!("{file}: {e}")))?;
        Box::new(created)
    };
    let exported = with_open(url, Open::Existing, async |store| {
        Ok(with_store!(store, s => s.export(out).await)?)
    })
    .await;
    match exported {
        Ok(summary) => {
            if file != "-" {
                sync(Path::new(file))?;
            }
            eprintln!("exported {}", describe(&summary));
            Ok(())
        }
        Err(e) => {
            if file != "-" {
                // A file without its trailer is refused by every import; remove it anyway.
                let _ = std::fs::remove_file(file);
            }
            Err(e)
        }
    }
}

/// Makes the file at `path` durable (its data reached the disk before we say it did).
fn sync(path: &Path) -> Result<(), Failure> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| Failure::Other(format!("{}: {e}", path.display())))
}

async fn import(url: &str, file: &str) -> Result<(), Failure> {
    let input: Box<dyn Read + Send> = if file == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(File::open(file).map_err(|e| Failure::Other(format!("{file}: {e}")))?)
    };
    let imported = with_open(url, Open::MayCreate, async |store| {
        Ok(with_store!(store, s => s.import(input).await)?)
    })
    .await?;
    eprintln!("imported {}", describe_import(&imported));
    Ok(())
}

async fn verify(url: &str) -> Result<(), Failure> {
    let report = with_open(url, Open::Existing, async |store| {
        Ok(with_store!(store, s => s.verify().await)?)
    })
    .await?;
    println!(
        "{} accounts, {} transactions, {} entries: {}",
        report.accounts,
        report.transactions,
        report.entries,
        if report.is_ok() {
            "consistent".to_owned()
        } else {
            format!("{} DISCREPANCIES", report.discrepancy_count)
        }
    );
    for d in &report.discrepancies {
        println!("  {d:?}");
    }
    if report.is_ok() {
        Ok(())
    } else {
        Err(Failure::Other("the ledger does not verify".into()))
    }
}

async fn migrate(url: &str) -> Result<(), Failure> {
    // Opening migrates; there is nothing else to do.
    let store = AnyStore::open(url, Open::MayCreate).await?;
    store.close().await;
    eprintln!("{url}: the schema is at the latest version");
    Ok(())
}

async fn copy(from: &str, to: &str) -> Result<(), Failure> {
    let source = AnyStore::open(from, Open::Existing).await?;
    let target = match AnyStore::open(to, Open::MayCreate).await {
        Ok(t) => t,
        Err(e) => {
            source.close().await;
            return Err(e);
        }
    };
    let copied = with_store!(&source, a => with_store!(&target, b => stream(a, b).await));
    source.close().await;
    target.close().await;
    let imported = copied?;
    eprintln!("copied {}", describe_import(&imported));
    Ok(())
}

/// Exports `source` into `target` through a pipe, without a file in between.
async fn stream<A: Portable, B: Portable>(source: &A, target: &B) -> Result<Imported, Failure> {
    let (reader, writer) =
        std::io::pipe().map_err(|e| Failure::Other(format!("cannot create a pipe: {e}")))?;
    let (exported, imported) = tokio::join!(source.export(writer), target.import(reader));
    match (exported, imported) {
        (Ok(_), Ok(imported)) => Ok(imported),
        // Each side's failure ends the other (a closed pipe); say what both saw.
        (Err(e), Err(i)) => Err(Failure::Other(format!(
            "export failed: {e} [{}]; import failed: {i} [{}]",
            e.code(),
            i.code()
        ))),
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => Err(e.into()),
    }
}

fn describe(summary: &Summary) -> String {
    let tables: Vec<String> = summary
        .counts
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(t, n)| format!("{} {n}", t.name))
        .collect();
    format!(
        "{} rows ({}), sha256 {}",
        summary.rows,
        tables.join(", "),
        summary.sha256_hex()
    )
}

fn describe_import(imported: &Imported) -> String {
    format!(
        "{}; verified {} accounts, {} transactions, {} entries",
        describe(&imported.summary),
        imported.report.accounts,
        imported.report.transactions,
        imported.report.entries
    )
}
