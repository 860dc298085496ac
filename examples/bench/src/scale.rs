//! The scale scenario: a store holding 1,000,000 wallets and 10,000,000 transactions, one wallet
//! of which has 1,000,000 entries; transfer throughput, history page latency, `verify()` time,
//! process memory and bytes on disk at that size.
//!
//! The data set is built through the library's own import, so it is exactly what the store
//! would hold had the transactions been made through the API (the import verifies the whole
//! ledger before it commits). A generator writes a portable ledger file
//! ([`wallet_core::portable::Writer`]) into a pipe on a thread of its own while the store
//! imports from the other end, so no multi-gigabyte file is written in between.
//!
//! The generator does not hard-code the rows' shape: it makes a tiny ledger through the API
//! (two registered users, their wallets, two top-ups, one transfer), exports it, and uses those
//! rows as templates. It overwrites the columns it must (ids, names, keys, amounts, running
//! balances, times) by name and copies every other column from the template, so a column added
//! to the schema is filled with a value the library itself wrote, and a renamed one fails
//! loudly. The notification, event and audit tables are left empty: they are not ledger data.
//!
//! Everything is deterministic (seed 42): transactions are laid out arithmetically so that
//! each wallet's entries, with their running balances, can be computed on their own without
//! keeping the ten million transactions in memory.
//!
//! - Customer wallet `i` (0-based) belongs to user `i + 1`; wallet 0 is the hot wallet.
//! - Transactions `1..=N` top each wallet up with 1,000,000.00 from the top-up source account.
//! - Then `P = T - N` transfers, numbered `p = 0..P` (transaction id `N + 1 + p`): `H` of them
//!   between the hot wallet and the others (the hot wallet's history: `H + 1` entries), spread
//!   evenly, one at the start of each block of `P / H`; the rest among wallets `1..N` in rounds
//!   where wallet `s` sends to wallet `s + shift` (mod `N - 1`), a seeded shift per round.
//! - Amounts are 0.01 to 1.00; transaction `k` was created `k` milliseconds after
//!   2026-01-01T00:00:00Z.

use std::error::Error;
use std::io::Write;
use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use serde_json::json;
use wallet_core::portable::{
    Counts, Item, Portable, Reader, Summary, TABLE_COUNT, TABLES, Table, Value, Writer,
};
use wallet_core::{
    Actor, Decimal, HistoryCursor, HistoryQuery, Ledger, Role, TransferRequest, UserId, WalletId,
};
use wallet_sqlite::{Options, SqliteStore};

use crate::mysql::{Cpu, CpuUse};
use crate::{Measurement, Progress, Workload, library};

/// What the scale scenario builds and measures (`--scale-*` options).
#[derive(Debug, Clone)]
pub struct ScaleArgs {
    /// Customer wallets (and users) in the store.
    pub wallets: usize,
    /// Transactions in the store: one top-up per wallet, the rest transfers.
    pub transactions: usize,
    /// Entries of the hot wallet; `None`: a tenth of the transactions.
    pub hot_entries: Option<usize>,
    /// Transfers measured, with 64 callers, on the built store (and on scenario 1's store).
    pub transfers: usize,
    /// History pages read from the hot wallet.
    pub pages: usize,
    /// Wallets of the scenario-1 reference run (10,000 unless `--wallets`).
    pub reference_wallets: usize,
    /// Keep the database file after the run.
    pub keep: bool,
    /// Page cache of the store during the build, MiB (`None`: the store's default; the bench
    /// uses 512, which makes the import about three times faster). The measurements reopen
    /// the store with default options, in another process.
    pub build_cache_mib: Option<u32>,
}

/// What each customer wallet is funded with, minor units (as the other scenarios).
const FUNDING: i64 = crate::FUNDING_MINOR;
/// 2026-01-01T00:00:00Z in microseconds: users and wallets are created then, transaction `k`
/// at `k` milliseconds later.
const EPOCH_US: i64 = 1_767_225_600_000_000;
const STEP_US: i64 = 1_000;
/// Rows in a history page.
const PAGE_ROWS: u32 = 50;
const CALLERS: usize = 64;
const SEED: u64 = 42;

/// SplitMix64: a seeded hash of an index, so any transfer's pair and amount can be recomputed.
fn mix(seed: u64, x: u64) -> u64 {
    let mut z = seed
        .wrapping_add(x.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The arithmetic layout of the transactions (see the module documentation).
#[derive(Debug, Clone)]
struct Plan {
    /// Customer wallets.
    n: u64,
    /// Transfers.
    p: u64,
    /// Transfers with the hot wallet.
    h: u64,
    /// Transfers among the other wallets.
    q: u64,
    /// The other wallets (`n - 1`).
    m: u64,
    /// Block length: each block starts with one hot transfer.
    b: u64,
    /// The shift of each round of regular transfers.
    shifts: Vec<u64>,
}

impl Plan {
    fn new(wallets: usize, transactions: usize, hot_entries: usize) -> Result<Self, String> {
        let n = wallets as u64;
        let t = transactions as u64;
        if n < 3 {
            return Err("--scale-wallets must be at least 3".into());
        }
        if t < n {
            return Err(
                "--scale-transactions must be at least --scale-wallets (one top-up each)".into(),
            );
        }
        let p = t - n;
        let h = (hot_entries as u64).saturating_sub(1);
        if h > p {
            return Err(format!(
                "the hot wallet's {hot_entries} entries need {h} transfers, more than the {p} there are"
            ));
        }
        let q = p - h;
        let m = n - 1;
        let b = p.checked_div(h).unwrap_or(1);
        let shifts = (0..q.div_ceil(m))
            .map(|r| 1 + mix(SEED ^ 0x5348_4946_5453, r) % (m - 1))
            .collect();
        Ok(Plan {
            n,
            p,
            h,
            q,
            m,
            b,
            shifts,
        })
    }

    fn amount(p: u64) -> i64 {
        1 + (mix(SEED ^ 0x414D_4F55_4E54, p) % 100) as i64
    }

    /// Where hot transfer `j` is in the sequence of transfers.
    fn hot_at(&self, j: u64) -> u64 {
        j * self.b
    }

    /// Where regular transfer `q` is in the sequence of transfers.
    fn regular_at(&self, q: u64) -> u64 {
        let in_blocks = self.h * (self.b - 1);
        if q < in_blocks {
            (q / (self.b - 1)) * self.b + 1 + q % (self.b - 1)
        } else {
            self.h * self.b + (q - in_blocks)
        }
    }

    fn shift(&self, round: u64) -> u64 {
        self.shifts.get(round as usize).copied().unwrap_or(1)
    }

    /// Transfer `p`: sender, recipient (customer wallet numbers, 0-based) and amount.
    fn transfer(&self, p: u64) -> (u64, u64, i64) {
        let amount = Self::amount(p);
        if p < self.h * self.b && p.is_multiple_of(self.b) {
            let j = p / self.b;
            let other = 1 + j % self.m;
            return if mix(SEED ^ 0x0048_4F54, j) & 1 == 1 {
                (0, other, amount)
            } else {
                (other, 0, amount)
            };
        }
        let q = if p < self.h * self.b {
            (p / self.b) * (self.b - 1) + p % self.b - 1
        } else {
            self.h * (self.b - 1) + (p - self.h * self.b)
        };
        let (round, s) = (q / self.m, q % self.m);
        (1 + s, 1 + (s + self.shift(round)) % self.m, amount)
    }

    /// The transfers wallet `i` takes part in, in order.
    fn transfers_of(&self, i: u64, out: &mut Vec<u64>) {
        out.clear();
        if i == 0 {
            out.extend((0..self.h).map(|j| self.hot_at(j)));
            return;
        }
        let s = i - 1;
        for (round, shift) in self.shifts.iter().enumerate() {
            let base = round as u64 * self.m;
            let sends = base + s;
            if sends < self.q {
                out.push(self.regular_at(sends));
            }
            let receives = base + (s + self.m - shift) % self.m;
            if receives < self.q {
                out.push(self.regular_at(receives));
            }
        }
        out.extend((s..self.h).step_by(self.m as usize).map(|j| self.hot_at(j)));
        out.sort_unstable();
    }
}

/// Rows of a ledger made through the API, whose columns the generator copies.
#[derive(Debug, Clone)]
struct Template {
    currencies: Vec<Vec<Value>>,
    user: Vec<Value>,
    system_accounts: Vec<Vec<Value>>,
    wallet: Vec<Value>,
    top_up: Vec<Value>,
    transfer: Vec<Value>,
    entry: Vec<Value>,
    /// The account top-ups are taken from.
    source: i64,
    /// The first id after the system accounts: customer wallet `i` has id `first_wallet + i`.
    first_wallet: i64,
    /// The role of the template's users (every generated user has it).
    role: Role,
}

/// A `Write` whose bytes stay readable after the writer is handed away.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("a poisoned buffer"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn table(name: &str) -> Result<&'static Table, String> {
    Table::named(name).ok_or_else(|| format!("the ledger format has no table {name}"))
}

fn column(table: &Table, name: &str) -> Result<usize, String> {
    table
        .columns
        .iter()
        .position(|c| c.name == name)
        .ok_or_else(|| format!("the ledger format has no column {}.{name}", table.name))
}

/// Sets column `at` of `row` (positions come from the row's own table, so always in range).
fn put(row: &mut [Value], at: usize, value: Value) {
    if let Some(slot) = row.get_mut(at) {
        *slot = value;
    }
}

fn int_at(row: &[Value], at: usize) -> Option<i64> {
    match row.get(at) {
        Some(Value::Int(v)) => Some(*v),
        _ => None,
    }
}

/// Columns the generator writes itself, per table; every other column is the template's.
const WRITTEN: &[(&str, &[&str])] = &[
    (
        "users",
        &[
            "id",
            "username",
            "email",
            "full_name",
            "created_at",
            "updated_at",
        ],
    ),
    ("wallets", &["id", "owner_id", "created_at", "updated_at"]),
    (
        "transactions",
        &[
            "id",
            "amount",
            "initiated_by",
            "idempotency_key",
            "fingerprint",
            "created_at",
            "completed_at",
        ],
    ),
    (
        "entries",
        &[
            "wallet_id",
            "seq",
            "txn_id",
            "amount",
            "balance_after",
            "debits_after",
        ],
    ),
];

/// Tables the generator leaves empty although the template has rows there: not ledger data.
const LEFT_EMPTY: &[&str] = &["notifications", "events", "audit_log"];

impl Template {
    /// Makes the template ledger through the API and reads back its export.
    async fn make() -> Result<Self, Box<dyn Error>> {
        let store = SqliteStore::open_in_memory(Options::default())?;
        let (ledger, wallets) = library::setup(store, 2).await?;
        let [(from, owner), (to, _)] = wallets[..] else {
            return Err("the template ledger has no two wallets".into());
        };
        ledger
            .transfer(
                &owner,
                TransferRequest::new(from, to, Decimal::new(1, 2), "scale-template")
                    .description("bench transfer"),
            )
            .await?;
        let out = Shared::default();
        ledger.store().export(out.clone()).await?;
        let bytes = out.0.lock().map_err(|_| "a poisoned buffer")?.clone();
        let mut reader = Reader::new(&bytes[..])?;
        let mut rows: Vec<Vec<Vec<Value>>> = vec![Vec::new(); TABLE_COUNT];
        while let Item::Row(row) = reader.next_item()? {
            let at = row.table.position().ok_or("a row of an unknown table")?;
            if let Some(t) = rows.get_mut(at) {
                t.push(row.values);
            }
        }
        Self::from_rows(rows, owner.role)
    }

    fn from_rows(mut rows: Vec<Vec<Vec<Value>>>, role: Role) -> Result<Self, Box<dyn Error>> {
        let mut take = |name: &str| -> Result<Vec<Vec<Value>>, String> {
            let at = table(name)?.position().ok_or("no position")?;
            Ok(rows.get_mut(at).map(std::mem::take).unwrap_or_default())
        };
        let currencies = take("currencies")?;
        let users = take("users")?;
        let wallets = take("wallets")?;
        let transactions = take("transactions")?;
        let entries = take("entries")?;
        for name in LEFT_EMPTY {
            take(name)?;
        }
        // Any other table with rows holds something a ledger of transfers needs and this
        // generator does not know how to make: stop rather than build a wrong data set.
        for (t, r) in TABLES.iter().zip(&rows) {
            if !r.is_empty() {
                return Err(format!(
                    "the template ledger has rows in {}, which the scale generator does not make",
                    t.name
                )
                .into());
            }
        }
        let owner = column(table("wallets")?, "owner_id")?;
        let id = column(table("wallets")?, "id")?;
        let (system_accounts, customers): (Vec<_>, Vec<_>) = wallets
            .into_iter()
            .partition(|w| matches!(w.get(owner), Some(Value::Null)));
        let first_wallet = customers
            .iter()
            .filter_map(|w| int_at(w, id))
            .min()
            .ok_or("the template ledger has no customer wallet")?;
        if system_accounts
            .iter()
            .any(|w| int_at(w, id).is_none_or(|i| i >= first_wallet))
        {
            return Err("the template's system accounts do not come before its wallets".into());
        }
        let wallet = customers.into_iter().next().ok_or("no customer wallet")?;
        let user = users.into_iter().next().ok_or("the template has no user")?;
        let top_up = transactions.first().cloned().ok_or("no transaction")?;
        let transfer = transactions.last().cloned().ok_or("no transaction")?;
        let kind = column(table("transactions")?, "kind")?;
        if top_up.get(kind) == transfer.get(kind) {
            return Err("the template's top-up and transfer have the same kind".into());
        }
        // The top-up's debited account is where every top-up comes from.
        let e = table("entries")?;
        let (e_wallet, e_txn, e_amount) = (
            column(e, "wallet_id")?,
            column(e, "txn_id")?,
            column(e, "amount")?,
        );
        let top_up_id = int_at(&top_up, column(table("transactions")?, "id")?);
        let source = entries
            .iter()
            .find(|r| int_at(r, e_txn) == top_up_id && int_at(r, e_amount).is_some_and(|a| a < 0))
            .and_then(|r| int_at(r, e_wallet))
            .ok_or("the template's top-up debits no account")?;
        if !system_accounts
            .iter()
            .any(|w| int_at(w, id) == Some(source))
        {
            return Err("the template's top-ups do not come from a system account".into());
        }
        let entry = entries.into_iter().next().ok_or("no entry")?;
        for (name, written) in WRITTEN {
            let t = table(name)?;
            for c in *written {
                column(t, c)?;
            }
            let copied: Vec<&str> = t
                .columns
                .iter()
                .map(|c| c.name)
                .filter(|c| !written.contains(c))
                .collect();
            if *name == "entries" && !copied.is_empty() {
                eprintln!(
                    "  scale: entries.{} copied from the template (unknown to the generator)",
                    copied.join(", entries.")
                );
            }
        }
        Ok(Template {
            currencies,
            user,
            system_accounts,
            wallet,
            top_up,
            transfer,
            entry,
            source,
            first_wallet,
            role,
        })
    }
}

/// Writes the whole data set as a ledger file into `out`.
fn generate(
    out: impl Write,
    t: &Template,
    plan: &Plan,
) -> Result<Summary, Box<dyn Error + Send + Sync>> {
    let (users, wallets, transactions, entries) = (
        table("users")?,
        table("wallets")?,
        table("transactions")?,
        table("entries")?,
    );
    let n = plan.n;
    let total_txns = n + plan.p;
    let mut counts = Counts::default();
    counts.set("currencies", t.currencies.len() as u64)?;
    counts.set("users", n)?;
    counts.set("wallets", t.system_accounts.len() as u64 + n)?;
    counts.set("transactions", total_txns)?;
    counts.set("entries", 2 * total_txns)?;
    let progress = Progress::counting("generate", counts.total() as usize, "rows");
    let mut w = Writer::new(out, &counts)?;
    let currencies = table("currencies")?;
    for row in &t.currencies {
        w.row(currencies, row)?;
    }

    let mut row = t.user.clone();
    let c = |name| column(users, name);
    let (id, username, email, full_name, created, updated) = (
        c("id")?,
        c("username")?,
        c("email")?,
        c("full_name")?,
        c("created_at")?,
        c("updated_at")?,
    );
    put(&mut row, created, Value::Int(EPOCH_US));
    put(&mut row, updated, Value::Int(EPOCH_US));
    for i in 0..n {
        put(&mut row, id, Value::Int(i as i64 + 1));
        put(&mut row, username, Value::Text(format!("scale{i}")));
        put(
            &mut row,
            email,
            Value::Text(format!("scale{i}@example.com")),
        );
        put(&mut row, full_name, Value::Text(format!("Scale User {i}")));
        w.row(users, &row)?;
        progress.add(1);
    }

    for row in &t.system_accounts {
        w.row(wallets, row)?;
    }
    let mut row = t.wallet.clone();
    let c = |name| column(wallets, name);
    let (id, owner, created, updated) =
        (c("id")?, c("owner_id")?, c("created_at")?, c("updated_at")?);
    put(&mut row, created, Value::Int(EPOCH_US));
    put(&mut row, updated, Value::Int(EPOCH_US));
    for i in 0..n {
        put(&mut row, id, Value::Int(t.first_wallet + i as i64));
        put(&mut row, owner, Value::Int(i as i64 + 1));
        w.row(wallets, &row)?;
        progress.add(1);
    }

    let c = |name| column(transactions, name);
    let (id, amount, by, key, fingerprint, created, completed) = (
        c("id")?,
        c("amount")?,
        c("initiated_by")?,
        c("idempotency_key")?,
        c("fingerprint")?,
        c("created_at")?,
        c("completed_at")?,
    );
    let mut txn = |row: &mut Vec<Value>, txn_id: u64, minor: i64, user: u64, k: String| {
        let at = EPOCH_US + txn_id as i64 * STEP_US;
        let h = mix(SEED ^ 0x4650, txn_id);
        put(row, id, Value::Int(txn_id as i64));
        put(row, amount, Value::Int(minor));
        put(row, by, Value::Int(user as i64));
        put(row, key, Value::Text(k));
        put(
            row,
            fingerprint,
            Value::Blob([h.to_le_bytes(), (!h).to_le_bytes()].concat()),
        );
        put(row, created, Value::Int(at));
        put(row, completed, Value::Int(at));
        let written = w.row(transactions, row);
        progress.add(1);
        written
    };
    let mut row = t.top_up.clone();
    for i in 0..n {
        txn(&mut row, i + 1, FUNDING, i + 1, format!("fund-{i}"))?;
    }
    let mut row = t.transfer.clone();
    for p in 0..plan.p {
        let (from, _, minor) = plan.transfer(p);
        let key = format!("{p:016x}{:016x}", mix(SEED ^ 0x004B_4559, p));
        txn(&mut row, n + 1 + p, minor, from + 1, key)?;
    }

    let mut row = t.entry.clone();
    let c = |name| column(entries, name);
    let (wallet, seq, txn_id, amount, balance, debits) = (
        c("wallet_id")?,
        c("seq")?,
        c("txn_id")?,
        c("amount")?,
        c("balance_after")?,
        c("debits_after")?,
    );
    let mut entry = |row: &mut Vec<Value>, k: i64, txn: u64, minor: i64, bal: i64, deb: i64| {
        put(row, seq, Value::Int(k));
        put(row, txn_id, Value::Int(txn as i64));
        put(row, amount, Value::Int(minor));
        put(row, balance, Value::Int(bal));
        put(row, debits, Value::Int(deb));
        let written = w.row(entries, row);
        progress.add(1);
        written
    };
    // The top-up source account: one debit per top-up. (System accounts come first.)
    put(&mut row, wallet, Value::Int(t.source));
    for k in 1..=n as i64 {
        entry(&mut row, k, k as u64, -FUNDING, -FUNDING * k, FUNDING * k)?;
    }
    let mut mine = Vec::new();
    for i in 0..n {
        put(&mut row, wallet, Value::Int(t.first_wallet + i as i64));
        let (mut bal, mut deb) = (FUNDING, 0i64);
        entry(&mut row, 1, i + 1, FUNDING, bal, deb)?;
        plan.transfers_of(i, &mut mine);
        for (k, p) in mine.iter().enumerate() {
            let (from, _, minor) = plan.transfer(*p);
            let signed = if from == i {
                deb += minor;
                -minor
            } else {
                minor
            };
            bal += signed;
            entry(&mut row, k as i64 + 2, n + 1 + p, signed, bal, deb)?;
        }
    }
    progress.finish();
    Ok(w.finish()?)
}

/// Prints a line every `every` while a long step runs, until dropped.
struct Ticker {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    fn start(label: &'static str, every: Duration) -> Self {
        let (stop, wait) = mpsc::channel::<()>();
        let started = Instant::now();
        let thread = std::thread::spawn(move || {
            while let Err(RecvTimeoutError::Timeout) = wait.recv_timeout(every) {
                eprintln!(
                    "  {label}: {:.0} s, RSS {:.0} MB",
                    started.elapsed().as_secs_f64(),
                    crate::rss_mb()
                );
            }
        });
        Ticker {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A status field of this process (`VmHWM`, `VmRSS`), MiB.
fn status_mb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Starts the peak-memory count afresh (Linux: `VmHWM` falls back to the current RSS).
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Bytes of the database's files on disk (log included).
fn file_bytes(path: &Path) -> u64 {
    ["", "-wal"]
        .iter()
        .map(|suffix| {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            std::fs::metadata(p).map_or(0, |m| m.len())
        })
        .sum()
}

/// This process's CPU per operation and other processes' share of the machine since `before`.
fn cpu_use(before: Option<Cpu>, elapsed: Duration, ops: usize) -> Option<CpuUse> {
    Some(CpuUse::between(before?, Cpu::read(None)?, elapsed, ops))
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Builds the data set into a new store at `path` (the child process of [`run`]); prints what
/// it built as one JSON object on stdout.
pub async fn build(path: &Path, a: &ScaleArgs) -> Result<(), Box<dyn Error>> {
    let hot_entries = a.hot_entries.unwrap_or(a.transactions / 10);
    let plan = Plan::new(a.wallets, a.transactions, hot_entries)?;
    let template = Template::make().await?;
    let started = Instant::now();
    let mut options = crate::store_options();
    if let Some(mib) = a.build_cache_mib {
        options.page_cache_kib = mib.saturating_mul(1024);
    }
    let store = SqliteStore::open(path, options)?;
    let (input, output) = std::io::pipe()?;
    let generator = std::thread::spawn(move || generate(output, &template, &plan));
    let imported = {
        let _ticker = Ticker::start("build", Duration::from_secs(30));
        store.import(input).await
    };
    let generated = generator
        .join()
        .map_err(|_| "the generator thread panicked")?;
    let summary = match (generated, imported) {
        (Ok(_), Ok(imported)) => imported.summary,
        (Err(e), _) => return Err(format!("generating the data set: {e}").into()),
        (Ok(_), Err(e)) => return Err(format!("importing the data set: {e:?}").into()),
    };
    drop(store);
    let peak = status_mb("VmHWM:");
    eprintln!(
        "  build: {} rows in {:.0} s, peak RSS {peak:.0} MB",
        summary.rows,
        started.elapsed().as_secs_f64(),
    );
    println!(
        "{}",
        json!({
            "rows": summary.rows,
            "transactions": summary.counts.get("transactions"),
            "rss_peak_mb": peak.round(),
        })
    );
    Ok(())
}

/// Builds the store and measures it; then runs scenario 1's library half for the ratio.
pub async fn run(dir: &Path, a: &ScaleArgs) -> Result<serde_json::Value, Box<dyn Error>> {
    let hot_entries = a.hot_entries.unwrap_or(a.transactions / 10);
    Plan::new(a.wallets, a.transactions, hot_entries)?;
    eprintln!(
        "scale: {} wallets, {} transactions ({} entries on the hot wallet); then {} transfers \
         with {CALLERS} callers, {} history pages, verify",
        a.wallets, a.transactions, hot_entries, a.transfers, a.pages
    );
    let template = Template::make().await?;
    let path = crate::fresh(dir, "scale-library");

    // Build, in a child process so that its memory (the generator, the import's page cache)
    // is not counted in this process's RSS.
    let started = Instant::now();
    let exe = std::env::current_exe()?;
    let mut child = std::process::Command::new(exe);
    child
        .arg("sqlite")
        .arg("--scale-build")
        .arg(&path)
        .args(["--scale-wallets", &a.wallets.to_string()])
        .args(["--scale-transactions", &a.transactions.to_string()])
        .args(["--scale-hot", &hot_entries.to_string()]);
    if let Some(mib) = a.build_cache_mib {
        child.args(["--scale-build-cache-mib", &mib.to_string()]);
    }
    let out = child.stderr(std::process::Stdio::inherit()).output()?;
    if !out.status.success() {
        return Err(format!("building the data set failed ({})", out.status).into());
    }
    let built: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let build = started.elapsed();
    let build_peak = built["rss_peak_mb"].as_f64().unwrap_or(0.0);
    let build_rows = built["rows"].as_u64().unwrap_or(0);
    let transactions = built["transactions"].as_u64().unwrap_or(0);
    let built_bytes = crate::used_bytes(&path)?;
    let peak_reset = reset_peak();

    // The built store, opened as an application opens it.
    let store = SqliteStore::open(&path, crate::store_options())?;
    let (config, _) = library::config()?;
    let ledger = Ledger::new(store, config).await?;
    let actor = |i: usize| -> Option<Actor> {
        Some(Actor::new(UserId::new(i as i64 + 1).ok()?, template.role))
    };
    let first = template.first_wallet;
    let role = template.role;
    let lookup: library::Lookup = Arc::new(move |i| {
        let wallet = WalletId::new(first + i as i64).ok()?;
        Some((wallet, Actor::new(UserId::new(i as i64 + 1).ok()?, role)))
    });
    let workload = Workload {
        wallets: a.wallets,
        hot: None,
        transfers: a.transfers,
        seed: SEED,
    };
    let before = crate::used_bytes(&path)?;
    let cpu = Cpu::read(None);
    let lib = library::run_with(&ledger, lookup, &workload, CALLERS, "scale transfers").await?;
    let transfer_cpu = cpu_use(cpu, lib.elapsed, a.transfers);
    let grown = crate::used_bytes(&path)? - before;

    // History pages of the hot wallet: the first page and pages at random depths.
    let hot = WalletId::new(first)?;
    let owner = actor(0).ok_or("no owner for the hot wallet")?;
    let head = ledger
        .history(&owner, HistoryQuery::new(hot))
        .await?
        .lines
        .first()
        .map_or(0, |l| l.seq);
    let mut rng = SmallRng::seed_from_u64(SEED);
    let mut latencies = Vec::with_capacity(a.pages);
    let progress = Progress::counting("history", a.pages, "pages");
    let history_started = Instant::now();
    let cpu_history = Cpu::read(None);
    for k in 0..a.pages {
        let mut query = HistoryQuery::new(hot);
        query.limit = PAGE_ROWS;
        if k % 10 != 0 && head > 1 {
            query.after = Some(HistoryCursor::new(hot, rng.random_range(2..=head)));
        }
        let newest = query.after.map_or(head, |c| c.seq() - 1);
        let t0 = Instant::now();
        let page = ledger.history(&owner, query).await?;
        latencies.push(t0.elapsed());
        let want = newest.min(i64::from(PAGE_ROWS));
        if page.lines.len() as i64 != want || page.lines.first().is_some_and(|l| l.seq != newest) {
            return Err(format!(
                "a history page below entry {} held {} lines from {:?}, not {want} from {newest}",
                newest + 1,
                page.lines.len(),
                page.lines.first().map(|l| l.seq)
            )
            .into());
        }
        progress.add(1);
    }
    let history = Measurement::new(a.pages, history_started.elapsed(), latencies);
    let history_cpu = cpu_use(cpu_history, history.elapsed, a.pages);

    let verify_started = Instant::now();
    let cpu_verify = Cpu::read(None);
    let verified = {
        let _ticker = Ticker::start("verify", Duration::from_secs(30));
        library::verify(&ledger, "scale").await?
    };
    let verify = verify_started.elapsed();
    let verify_cpu = cpu_use(cpu_verify, verify, 1);
    let rss = crate::rss_mb();
    let peak = status_mb("VmHWM:");
    drop(ledger);
    let db_bytes = file_bytes(&path);
    let used = crate::used_bytes(&path)?;
    if !a.keep {
        crate::fresh(dir, "scale-library");
    }

    // Scenario 1's library half, for the ratio the target names.
    eprintln!(
        "scale: scenario 1 reference ({} wallets, {} transfers, {CALLERS} callers)",
        a.reference_wallets, a.transfers
    );
    let ref_path = crate::fresh(dir, "scale-reference");
    let store = SqliteStore::open(&ref_path, crate::store_options())?;
    let (ledger, wallets) = library::setup(store, a.reference_wallets).await?;
    let reference_load = Workload {
        wallets: a.reference_wallets,
        ..workload.clone()
    };
    let reference = library::run(&ledger, &wallets, &reference_load, CALLERS, "reference").await?;
    drop(ledger);
    crate::fresh(dir, "scale-reference");

    Ok(json!({
        "backend": "sqlite",
        "scenario": "scale",
        "wallets": a.wallets,
        "transactions": transactions,
        "hot_entries": hot_entries,
        "callers": CALLERS,
        "transfers": a.transfers,
        "busy": lib.busy,
        "library_tps": lib.tps().round(),
        "floor_tps": reference.tps().round(),
        "floor_per_commit": null,
        "reference": format!("scenario 1 library: {} wallets, {CALLERS} callers", a.reference_wallets),
        "ratio": (lib.tps() / reference.tps() * 100.0).round() / 100.0,
        "p50_ms": round3(lib.percentile_ms(0.50)),
        "p99_ms": round3(lib.percentile_ms(0.99)),
        "reference_p50_ms": round3(reference.percentile_ms(0.50)),
        "reference_p99_ms": round3(reference.percentile_ms(0.99)),
        "bytes_per_transfer": (grown as f64 / a.transfers.max(1) as f64).round(),
        "db_bytes": db_bytes,
        "db_used_bytes": used,
        "built_bytes_per_transaction": (built_bytes as f64 / transactions.max(1) as f64).round(),
        "history_pages": a.pages,
        "history_p50_ms": round3(history.percentile_ms(0.50)),
        "history_p99_ms": round3(history.percentile_ms(0.99)),
        "history_max_ms": round3(history.percentile_ms(1.0)),
        "verify_s": (verify.as_secs_f64() * 10.0).round() / 10.0,
        "verified": verified,
        "build_s": build.as_secs_f64().round(),
        "build_rows": build_rows,
        "build_rss_peak_mb": build_peak.round(),
        "rss_mb": rss.round(),
        "transfer_cpu_ms": transfer_cpu.map(|c| c.own_ms),
        "history_cpu_ms": history_cpu.map(|c| c.own_ms),
        "verify_cpu_s": verify_cpu.map(|c| (c.own_ms / 100.0).round() / 10.0),
        "others_cpu_pct": [transfer_cpu.map(|c| c.others_pct), history_cpu.map(|c| c.others_pct), verify_cpu.map(|c| c.others_pct)],
        "rss_peak_mb": if peak_reset { serde_json::Value::from(peak.round()) } else { serde_json::Value::Null },
    }))
}

/// Prints the scale scenario's figures.
pub fn print(row: &serde_json::Value) {
    let v = |k: &str| match &row[k] {
        serde_json::Value::Null => "-".to_owned(),
        other => other.to_string(),
    };
    println!(
        "\nscale: {} wallets, {} transactions, hot wallet {} entries; built in {} s (peak RSS {} MB)",
        v("wallets"),
        v("transactions"),
        v("hot_entries"),
        v("build_s"),
        v("build_rss_peak_mb")
    );
    println!(
        "  transfers ({} callers): {}/s, p50 {} ms, p99 {} ms; scenario 1 in the same run {}/s: ratio {}",
        v("callers"),
        v("library_tps"),
        v("p50_ms"),
        v("p99_ms"),
        v("floor_tps"),
        v("ratio")
    );
    println!(
        "  history ({} pages of 50): p50 {} ms, p99 {} ms; verify {} s; RSS {} MB (peak after the build {} MB)",
        v("history_pages"),
        v("history_p50_ms"),
        v("history_p99_ms"),
        v("verify_s"),
        v("rss_mb"),
        v("rss_peak_mb")
    );
    println!(
        "  this process's CPU: {} ms per transfer, {} ms per page, {} s for verify; others' share of the machine (transfers, history, verify): {} %",
        v("transfer_cpu_ms"),
        v("history_cpu_ms"),
        v("verify_cpu_s"),
        v("others_cpu_pct")
    );
    println!(
        "  disk: {} bytes per transfer measured, {} bytes per transaction built, {} bytes of files",
        v("bytes_per_transfer"),
        v("built_bytes_per_transaction"),
        v("db_bytes")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every transfer is listed, once, for its sender and its recipient and for no other
    /// wallet, in order; the hot wallet has its entries; no transfer is to oneself.
    #[test]
    fn each_transfer_belongs_to_exactly_its_two_wallets() {
        // (wallets, transactions, hot entries): blocks of several, blocks of one, no hot
        // transfers, a last round cut short, only hot transfers.
        for (n, t, hot) in [
            (10, 137, 20),
            (7, 40, 34),
            (5, 60, 0),
            (12, 100, 9),
            (3, 13, 11),
        ] {
            let plan = Plan::new(n, t, hot).unwrap();
            let mut seen = vec![0u32; plan.p as usize];
            let mut list = Vec::new();
            for i in 0..plan.n {
                plan.transfers_of(i, &mut list);
                assert!(
                    list.windows(2).all(|w| w[0] < w[1]),
                    "{n}/{t}/{hot}: {list:?}"
                );
                if i == 0 {
                    assert_eq!(list.len() + 1, hot.max(1), "{n}/{t}/{hot}");
                }
                for &p in &list {
                    let (from, to, amount) = plan.transfer(p);
                    assert!(from == i || to == i, "{n}/{t}/{hot}: {p} is not {i}'s");
                    assert_ne!(from, to);
                    assert!((1..=100).contains(&amount));
                    seen[p as usize] += 1;
                }
            }
            assert!(seen.iter().all(|&s| s == 2), "{n}/{t}/{hot}: {seen:?}");
        }
        assert!(Plan::new(2, 10, 0).is_err());
        assert!(Plan::new(10, 9, 0).is_err());
        assert!(Plan::new(10, 20, 12).is_err());
    }

    /// A small data set goes through the store's import (which refuses a ledger that does not
    /// verify) and reads back through the API as generated.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_generated_ledger_imports_and_verifies() {
        let template = Template::make().await.unwrap();
        let plan = Plan::new(40, 500, 120).unwrap();
        let mut file = Vec::new();
        let summary = generate(&mut file, &template, &plan).unwrap();
        assert_eq!(summary.counts.get("transactions"), Some(500));
        assert_eq!(summary.counts.get("entries"), Some(1000));
        assert_eq!(summary.counts.get("users"), Some(40));
        // Deterministic: the same data set byte for byte.
        let mut again = Vec::new();
        generate(&mut again, &template, &plan).unwrap();
        assert!(file == again);

        let store = SqliteStore::open_in_memory(Options::default()).unwrap();
        let imported = store.import(std::io::Cursor::new(file)).await.unwrap();
        assert!(imported.report.is_ok());
        assert_eq!(imported.report.transactions, 500);
        let (config, _) = library::config().unwrap();
        let ledger = Ledger::new(store, config).await.unwrap();
        let hot = WalletId::new(template.first_wallet).unwrap();
        let owner = Actor::new(UserId::new(1).unwrap(), template.role);
        let page = ledger
            .history(&owner, HistoryQuery::new(hot))
            .await
            .unwrap();
        assert_eq!(page.lines.first().map(|l| l.seq), Some(120));
        assert_eq!(page.lines.len(), 50);
        // The imported store takes new transfers.
        let other = WalletId::new(template.first_wallet + 7).unwrap();
        ledger
            .transfer(
                &owner,
                TransferRequest::new(hot, other, Decimal::new(5, 2), "after-import"),
            )
            .await
            .unwrap();
        assert!(library::verify(&ledger, "test").await.unwrap());
    }
}
