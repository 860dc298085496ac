//! The library, through its public async API: `Ledger::transfer` with an idempotency key per
//! transfer, every rule checked, durable before each call returns.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::SmallRng;
use wallet_core::auth::{HashParams, Password};
use wallet_core::identity::KycPolicy;
use wallet_core::users::{AuthConfig, RegisterRequest};
use wallet_core::{
    Actor, Config, Decimal, DepositRequest, Ledger, OpenWalletRequest, Store, TransferRequest,
    WalletId, WalletKind,
};

use crate::{Measurement, Progress, Workload, random_key};

/// The configuration every bench ledger runs with, and the cheap password hashing of its
/// setup.
pub fn config() -> Result<(Config, AuthConfig), wallet_core::Error> {
    // Owners are registered users; the KYC rule is evaluated on every transfer, with a policy
    // that lets these unreviewed users send. Password hashing is made cheap: registration is
    // setup here, not what is measured.
    // Limits are computed on every transfer (as in production) but set high enough that the
    // random load never reaches them.
    let big = wallet_core::Decimal::from(1_000_000_000_000i64);
    let config = Config::default()
        .with_kyc_policy(KycPolicy {
            top_up: true,
            send: true,
            withdraw: true,
        })
        .with_default_limits(wallet_core::limits::DefaultLimits {
            per_transaction: big,
            daily: big,
            monthly: big,
        })?;
    let auth = AuthConfig {
        hashing: HashParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        },
        ..AuthConfig::default()
    };
    Ok((config, auth))
}

/// A ledger over `store` (empty, ready for use) with `wallets` funded wallets; returns it with
/// the wallets' ids and owners.
pub async fn setup<S: Store + Clone>(
    store: S,
    wallets: usize,
) -> Result<(Ledger<S>, Vec<(WalletId, Actor)>), wallet_core::Error> {
    let (config, auth) = config()?;
    let ledger = Ledger::new(store, config).await?.with_auth(auth, None)?;
    let mut tasks = Vec::new();
    let workers = 64usize;
    for worker in 0..workers {
        let ledger = ledger.clone();
        tasks.push(tokio::spawn(async move {
            let mut made = Vec::new();
            for i in (worker..wallets).step_by(workers) {
                let user = ledger
                    .register(RegisterRequest {
                        username: format!("bench{i}"),
                        email: format!("bench{i}@example.com"),
                        password: Password::new("a bench password"),
                        full_name: format!("Bench User {i}"),
                        phone: "+14155550100".into(),
                        national_id: None,
                    })
                    .await?;
                let owner = Actor::new(user.id, user.role);
                let w = ledger
                    .open_wallet(
                        &owner,
                        OpenWalletRequest::new(owner.user, WalletKind::Personal, "USD"),
                    )
                    .await?;
                let funding = Decimal::new(crate::FUNDING_MINOR, 2);
                ledger
                    .deposit(
                        &owner,
                        DepositRequest::new(w.id, funding, format!("fund-{i}")),
                    )
                    .await?;
                made.push((i, w.id, owner));
            }
            Ok::<_, wallet_core::Error>(made)
        }));
    }
    let mut all = Vec::with_capacity(wallets);
    for t in tasks {
        all.extend(t.await.map_err(|e| wallet_core::Error::Internal {
            detail: e.to_string(),
        })??);
    }
    all.sort_by_key(|(i, ..)| *i);
    Ok((
        ledger,
        all.into_iter().map(|(_, id, owner)| (id, owner)).collect(),
    ))
}

/// Runs `w.transfers` transfers split over `callers` concurrent tasks.
pub async fn run<S: Store + Clone>(
    ledger: &Ledger<S>,
    wallets: &[(WalletId, Actor)],
    w: &Workload,
    callers: usize,
    label: &str,
) -> Result<Measurement, wallet_core::Error> {
    let wallets = Arc::new(wallets.to_vec());
    let lookup: Lookup = Arc::new(move |i| wallets.get(i).copied());
    run_with(ledger, lookup, w, callers, label).await
}

/// The wallet (0-based, as [`Workload::pick`] numbers them from 1) and its owner.
pub type Lookup = Arc<dyn Fn(usize) -> Option<(WalletId, Actor)> + Send + Sync>;

/// [`run`] with the wallets given by a function rather than a list (the scale scenario's million
/// wallets are numbered, not listed).
pub async fn run_with<S: Store + Clone>(
    ledger: &Ledger<S>,
    wallets: Lookup,
    w: &Workload,
    callers: usize,
    label: &str,
) -> Result<Measurement, wallet_core::Error> {
    let progress = Arc::new(Progress::new(label, w.transfers));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for caller in 0..callers {
        let share = w.transfers / callers + usize::from(caller < w.transfers % callers);
        let ledger = ledger.clone();
        let wallets = Arc::clone(&wallets);
        let progress = Arc::clone(&progress);
        let w = w.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = SmallRng::seed_from_u64(w.seed.wrapping_add(caller as u64));
            let mut latencies: Vec<Duration> = Vec::with_capacity(share);
            let mut busy = 0usize;
            for _ in 0..share {
                let (from, to, amount) = w.pick(&mut rng);
                let missing = |n: i64| wallet_core::Error::Internal {
                    detail: format!("no wallet {n} in the bench's list"),
                };
                let (from_id, owner) = wallets((from - 1) as usize).ok_or_else(|| missing(from))?;
                let (to_id, _) = wallets((to - 1) as usize).ok_or_else(|| missing(to))?;
                let req = TransferRequest::new(
                    from_id,
                    to_id,
                    Decimal::new(amount, 2),
                    random_key(&mut rng),
                )
                .description("bench transfer");
                let t0 = Instant::now();
                match ledger.transfer(&owner, req).await {
                    Ok(_) => latencies.push(t0.elapsed()),
                    // The store gave up after its own retries (contention): the caller sees
                    // the failure, the run goes on, and the count is reported.
                    Err(wallet_core::Error::StorageBusy) => busy += 1,
                    Err(e) => return Err(e),
                }
                progress.add(1);
            }
            Ok::<_, wallet_core::Error>((latencies, busy))
        }));
    }
    let mut latencies = Vec::with_capacity(w.transfers);
    let mut busy = 0;
    for t in tasks {
        let (l, b) = t.await.map_err(|e| wallet_core::Error::Internal {
            detail: e.to_string(),
        })??;
        latencies.extend(l);
        busy += b;
    }
    let elapsed = started.elapsed();
    progress.finish();
    if busy > 0 {
        eprintln!(
            "  {label}: {busy} transfer(s) failed with StorageBusy after the store's retries"
        );
    }
    Ok(Measurement::new(w.transfers - busy, elapsed, latencies).with_busy(busy))
}

/// Checks the whole ledger after a run, as an administrator. Returns whether it was checked:
/// `BENCH_SKIP_VERIFY=1` skips it, a debugging aid for checkouts whose store cannot verify yet.
pub async fn verify<S: Store>(
    ledger: &Ledger<S>,
    scenario: &str,
) -> Result<bool, Box<dyn std::error::Error>> {
    if std::env::var("BENCH_SKIP_VERIFY").is_ok_and(|v| v == "1") {
        eprintln!("  {scenario}: verify skipped (BENCH_SKIP_VERIFY=1)");
        return Ok(false);
    }
    let admin = Actor::new(
        wallet_core::UserId::new(i64::MAX)?,
        wallet_core::Role::Admin,
    );
    let report = ledger.verify(&admin).await.map_err(|e| {
        format!("verify after {scenario} could not run: {e:?} (BENCH_SKIP_VERIFY=1 skips it)")
    })?;
    if !report.is_ok() {
        return Err(format!("verify failed after {scenario}: {report:?}").into());
    }
    Ok(true)
}
