//! Quickstart: an embedded SQLite ledger in a dozen calls.
//!
//! `cargo run -p quickstart [path/to/wallet.db]` (default `target/quickstart/wallet.db`, recreated
//! on every run).

use std::error::Error;
use std::path::PathBuf;

use wallet_core::auth::{JwtSecret, Password};
use wallet_core::identity::KycStatus;
use wallet_core::users::{AuthConfig, RegisterRequest};
use wallet_core::{
    Actor, Config, DepositRequest, HistoryQuery, Ledger, OpenWalletRequest, TransferRequest,
    Wallet, WalletKind, parse_amount,
};

/// The demo users' password (a real host takes it from the user, never from code).
const PASSWORD: &str = "quickstart passphrase";

fn person(username: &str, full_name: &str) -> RegisterRequest {
    RegisterRequest {
        username: username.into(),
        email: format!("{username}@example.com"),
        password: Password::new(PASSWORD),
        full_name: full_name.into(),
        phone: "+14155550100".into(),
        national_id: None,
    }
}
use wallet_sqlite::{Options, SqliteStore};

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let path = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/quickstart/wallet.db"));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.clone().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }

    // 1. Open (create and migrate) the database file; durable by default. Sessions are JWTs
    //    signed with a secret the host keeps (here a fresh random one).
    let store = SqliteStore::open(&path, Options::default())?;
    let ledger = Ledger::new(store, Config::default())
        .await?
        .with_auth(AuthConfig::default(), Some(JwtSecret::generate()?))?;

    // 2. No default accounts: the first SUPERUSER is created explicitly. Then two customers
    //    register, an administrator verifies their identity (KYC), and Alice logs in.
    let root = ledger.bootstrap(person("root", "Rita Root")).await?;
    let root = Actor::new(root.id, root.role);
    let mut customers = Vec::new();
    for (username, name) in [("alice", "Alice Liddell"), ("bob", "Bob Builder")] {
        let user = ledger.register(person(username, name)).await?;
        ledger
            .review_kyc(&root, user.id, KycStatus::Verified, "passport checked")
            .await?;
        customers.push(user.id);
    }
    let session = ledger
        .login("alice@example.com", Password::new(PASSWORD))
        .await?;
    // A host puts the token in a cookie or header and authenticates every request with it.
    let alice = ledger.authenticate(session.token.expose()).await?;
    let bob = Actor::user(customers[1]);
    let auditor = root;

    // 3. A USD wallet each.
    let open = |who: Actor| OpenWalletRequest::new(who.user, WalletKind::Personal, "USD");
    let alices = ledger.open_wallet(&alice, open(alice)).await?;
    let bobs = ledger.open_wallet(&bob, open(bob)).await?;

    // 4. Top up, then move money. Idempotency keys make every call safe to retry.
    let topup = DepositRequest::new(alices.id, parse_amount("250.00")?, "alice-topup-1")
        .description("Card top-up");
    ledger.deposit(&alice, topup).await?;
    let rent = TransferRequest::new(
        alices.id,
        bobs.number,
        parse_amount("120.50")?,
        "rent-2026-11",
    )
    .description("November rent");
    let receipt = ledger.transfer(&alice, rent).await?;
    let coffee = TransferRequest::new(bobs.id, alices.id, parse_amount("4.75")?, "coffee-1")
        .description("Coffee, thanks!");
    ledger.transfer(&bob, coffee).await?;

    // Retrying the rent transfer with the same key returns the same transaction.
    let retry = TransferRequest::new(
        alices.id,
        bobs.number,
        parse_amount("120.50")?,
        "rent-2026-11",
    )
    .description("November rent");
    let again = ledger.transfer(&alice, retry).await?;
    assert!(again.replayed && again.transaction.id == receipt.transaction.id);

    println!("Ledger file: {}", path.display());
    println!(
        "Signed in as alice (user {}), session valid until {}\n",
        alice.user, session.expires_at
    );
    println!("Balances");
    for w in [
        ledger.wallet(&alice, alices.id).await?,
        ledger.wallet(&bob, bobs.id).await?,
    ] {
        print_wallet(&w);
    }

    let page = ledger.history(&alice, HistoryQuery::new(alices.id)).await?;
    println!("\nHistory of {} (newest first)", alices.number);
    println!(
        "{:<20} {:<18} {:<10} {:>10} {:>10}  Description",
        "Time (UTC)", "Reference", "Kind", "Amount", "Balance"
    );
    for line in &page.lines {
        let time = line.created_at.to_string();
        println!(
            "{:<20} {:<18} {:<10} {:>10} {:>10}  {}",
            time.get(..19).unwrap_or(&time),
            line.reference.to_string(),
            line.kind.as_str(),
            line.amount.amount().to_string(),
            line.balance_after.amount().to_string(),
            line.description.as_ref().map_or("", |d| d.as_str()),
        );
    }
    println!(
        "Totals: in {}, out {}",
        page.totals.credits, page.totals.debits
    );

    let report = ledger.verify(&auditor).await?;
    println!(
        "\nverify(): {} accounts, {} transactions, {} entries, {}",
        report.accounts,
        report.transactions,
        report.entries,
        if report.is_ok() {
            "consistent"
        } else {
            "DISCREPANCIES FOUND"
        }
    );
    Ok(())
}

fn print_wallet(w: &Wallet) {
    println!(
        "  {}  owner {:<3} {:>10} {}  ({})",
        w.number,
        w.owner.map(|o| o.to_string()).unwrap_or_default(),
        w.balance.amount().to_string(),
        w.currency,
        w.status
    );
}
