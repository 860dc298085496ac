//! The mixed workload: callers, their operations, the tally of outcomes, and the money the
//! acknowledged operations say the customers must hold at the end.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use wallet_core::auth::HashParams;
use wallet_core::config::Config;
use wallet_core::limits::DefaultLimits;
use wallet_core::payments::{HoldRequest, HoldTarget, RefundRequest};
use wallet_core::{
    Actor, AuthConfig, Decimal, DepositRequest, Error, HistoryQuery, JwtSecret, KycStatus, Ledger,
    MoveDetails, OpenWalletRequest, Password, RegisterRequest, Role, Store, TransactionRef,
    TransferRequest, WalletId, WalletKind, WithdrawRequest,
};

/// Every customer wallet starts with 50.00 USD: little against amounts of up to 6.00, so
/// balances wander down to nothing now and then and some calls are refused for lack of funds.
const FUNDING_MINOR: i64 = 5_000;
/// Refunds wait in this queue; older transfers drop out.
const REFUNDABLE_MAX: usize = 4096;
/// Open holds a caller keeps before it must settle one.
const OPEN_HOLDS_MAX: usize = 8;

/// Business errors the workload provokes on purpose (amounts are random, so some calls ask for
/// more than is there). Any other error fails the run.
pub(crate) const EXPECTED_ERRORS: &[&str] = &[
    "insufficient_funds",
    "refund_exceeds_original",
    "not_refundable",
];

/// Outcome counts: operation → outcome (`ok` or an error code) → count.
pub(crate) type Tally = BTreeMap<&'static str, BTreeMap<&'static str, u64>>;

/// What the run did and what it saw.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// Every call's outcome.
    pub(crate) tally: Tally,
    /// Calls whose result contradicted what the caller knew (a replay that returned another
    /// transaction, a read of one's own transaction that failed): described, in order.
    pub(crate) anomalies: Vec<String>,
    /// Money the acknowledged calls put in (deposits), minor units.
    pub(crate) money_in_minor: i64,
    /// Money the acknowledged calls took out (withdrawals, holds captured to outside).
    pub(crate) money_out_minor: i64,
    /// Money still reserved by holds that were acknowledged and not settled.
    pub(crate) open_holds_minor: i64,
}

/// The ledger and the customers the callers act as.
pub(crate) struct Setup<S> {
    /// The service.
    pub(crate) ledger: Ledger<S>,
    /// The bootstrapped SUPERUSER (refunds, verify).
    pub(crate) root: Actor,
    /// One customer and their USD wallet per caller.
    pub(crate) customers: Vec<(Actor, WalletId)>,
    /// Money put in while setting up, minor units.
    pub(crate) funded_minor: i64,
}

fn usd(minor: i64) -> Decimal {
    Decimal::new(minor, 2)
}

fn registration(name: &str) -> RegisterRequest {
    RegisterRequest {
        username: name.to_owned(),
        email: format!("{name}@soak.example"),
        password: Password::new("soak test password, long enough"),
        full_name: format!("Soak {name}"),
        phone: "+14155550100".to_owned(),
        national_id: None,
    }
}

/// A ledger over `store` with `callers` KYC-verified customers, each with a funded USD wallet.
pub(crate) async fn set_up<S: Store + Clone>(store: S, callers: usize) -> Result<Setup<S>, Error> {
    let big = Decimal::from(1_000_000_000_000_i64);
    let config = Config::default().with_default_limits(DefaultLimits {
        per_transaction: big,
        daily: big,
        monthly: big,
    })?;
    // Cheap hashing: the soak is about the ledger under load, not Argon2id's cost.
    let auth = AuthConfig {
        hashing: HashParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        },
        hash_workers: 1,
        ..AuthConfig::default()
    };
    let secret = JwtSecret::new((0..64u8).map(|i| i.wrapping_mul(31) ^ 0x5a).collect())?;
    let ledger = Ledger::new(store, config)
        .await?
        .with_auth(auth, Some(secret))?;
    let root = ledger.bootstrap(registration("soakroot")).await?;
    let root = Actor::new(root.id, root.role);
    let mut customers = Vec::with_capacity(callers);
    let mut funded_minor = 0;
    for i in 0..callers {
        let user = ledger.register(registration(&format!("soak{i}"))).await?;
        ledger
            .review_kyc(&root, user.id, KycStatus::Verified, "soak")
            .await?;
        let who = Actor::new(user.id, Role::User);
        let w = ledger
            .open_wallet(
                &who,
                OpenWalletRequest::new(who.user, WalletKind::Personal, "USD"),
            )
            .await?;
        ledger
            .deposit(
                &who,
                DepositRequest::new(w.id, usd(FUNDING_MINOR), format!("fund-{i}")),
            )
            .await?;
        funded_minor += FUNDING_MINOR;
        customers.push((who, w.id));
    }
    Ok(Setup {
        ledger,
        root,
        customers,
        funded_minor,
    })
}

/// What all callers share.
struct Shared {
    wallets: Vec<WalletId>,
    /// Transfers that went through, with their amounts: refunds pick from here.
    refundable: Mutex<std::collections::VecDeque<(TransactionRef, i64)>>,
    money_in: AtomicI64,
    money_out: AtomicI64,
}

/// One caller's own record.
#[derive(Default)]
struct Caller {
    tally: Tally,
    anomalies: Vec<String>,
    next_key: u64,
    /// Holds placed and not settled: reference, amount, whether captured money leaves.
    holds: Vec<(TransactionRef, i64, bool)>,
    /// The last deposit: its key, amount and transaction, to replay.
    last_deposit: Option<(String, i64, TransactionRef)>,
}

impl Caller {
    fn key(&mut self, caller: usize) -> String {
        self.next_key += 1;
        format!("soak-{caller}-{}", self.next_key)
    }

    fn count<T>(&mut self, op: &'static str, result: &Result<T, Error>) {
        let outcome = match result {
            Ok(_) => "ok",
            Err(e) => e.code(),
        };
        *self
            .tally
            .entry(op)
            .or_default()
            .entry(outcome)
            .or_default() += 1;
    }
}

/// Runs `setup.customers.len()` callers until `duration` has passed; `tick` is called about
/// every second from the first caller with the time elapsed (RSS sampling).
pub(crate) async fn run<S: Store + Clone>(
    setup: &Setup<S>,
    duration: Duration,
    seed: u64,
) -> Result<Outcome, Error> {
    let shared = Arc::new(Shared {
        wallets: setup.customers.iter().map(|(_, w)| *w).collect(),
        refundable: Mutex::new(std::collections::VecDeque::new()),
        money_in: AtomicI64::new(0),
        money_out: AtomicI64::new(0),
    });
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for (i, (who, wallet)) in setup.customers.iter().enumerate() {
        let ledger = setup.ledger.clone();
        let shared = Arc::clone(&shared);
        let (who, wallet, root) = (*who, *wallet, setup.root);
        let rng = SmallRng::seed_from_u64(seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        tasks.push(tokio::spawn(async move {
            caller(i, &ledger, who, wallet, root, &shared, rng, deadline).await
        }));
    }
    let mut outcome = Outcome::default();
    for t in tasks {
        let c = t.await.map_err(|e| Error::Internal {
            detail: format!("caller task: {e}"),
        })?;
        for (op, outcomes) in c.tally {
            for (code, n) in outcomes {
                *outcome
                    .tally
                    .entry(op)
                    .or_default()
                    .entry(code)
                    .or_default() += n;
            }
        }
        outcome.anomalies.extend(c.anomalies);
        outcome.open_holds_minor += c.holds.iter().map(|h| h.1).sum::<i64>();
    }
    outcome.money_in_minor = shared.money_in.load(Ordering::Relaxed);
    outcome.money_out_minor = shared.money_out.load(Ordering::Relaxed);
    Ok(outcome)
}

#[allow(clippy::too_many_arguments)] // one caller's whole context, spelled out once
async fn caller<S: Store + Clone>(
    i: usize,
    ledger: &Ledger<S>,
    who: Actor,
    wallet: WalletId,
    root: Actor,
    shared: &Shared,
    mut rng: SmallRng,
    deadline: Instant,
) -> Caller {
    let mut me = Caller::default();
    while Instant::now() < deadline {
        let other = loop {
            let w = shared.wallets[rng.random_range(0..shared.wallets.len())];
            if w != wallet || shared.wallets.len() < 2 {
                break w;
            }
        };
        // Amounts of 0.01 to 6.00.
        let amount = rng.random_range(1..=600_i64);
        match rng.random_range(0..100) {
            0..=14 => {
                let key = me.key(i);
                let r = ledger
                    .deposit(&who, DepositRequest::new(wallet, usd(amount), key.clone()))
                    .await;
                me.count("deposit", &r);
                if let Ok(receipt) = r {
                    shared.money_in.fetch_add(amount, Ordering::Relaxed);
                    me.last_deposit = Some((key, amount, receipt.transaction.reference));
                }
            }
            15..=26 => {
                let r = ledger
                    .withdraw(&who, WithdrawRequest::new(wallet, usd(amount), me.key(i)))
                    .await;
                me.count("withdraw", &r);
                if r.is_ok() {
                    shared.money_out.fetch_add(amount, Ordering::Relaxed);
                }
            }
            27..=46 => {
                let r = ledger
                    .transfer(
                        &who,
                        TransferRequest::new(wallet, other, usd(amount), me.key(i))
                            .description("soak transfer"),
                    )
                    .await;
                me.count("transfer", &r);
                if let Ok(receipt) = r {
                    let mut q = match shared.refundable.lock() {
                        Ok(q) => q,
                        Err(poisoned) => poisoned.into_inner(),
                    };
                    if q.len() >= REFUNDABLE_MAX {
                        q.pop_front();
                    }
                    q.push_back((receipt.transaction.reference, amount));
                }
            }
            47..=54 if me.holds.len() < OPEN_HOLDS_MAX => {
                let outside = rng.random_bool(0.5);
                let target = if outside {
                    HoldTarget::Outside
                } else {
                    HoldTarget::Wallet(other.into())
                };
                let r = ledger
                    .hold(
                        &who,
                        HoldRequest {
                            wallet: wallet.into(),
                            target,
                            details: MoveDetails {
                                amount: usd(amount),
                                description: None,
                                metadata: None,
                                idempotency_key: me.key(i),
                            },
                            ttl_micros: None,
                        },
                    )
                    .await;
                me.count("hold", &r);
                if let Ok(receipt) = r {
                    me.holds
                        .push((receipt.transaction.reference, amount, outside));
                }
            }
            47..=60 if !me.holds.is_empty() => {
                let (reference, held, outside) =
                    me.holds.swap_remove(rng.random_range(0..me.holds.len()));
                // Full, or part (the rest is released).
                let part = rng.random_bool(0.3).then(|| rng.random_range(1..=held));
                let r = ledger.capture(&who, reference, part.map(usd)).await;
                me.count("capture", &r);
                match r {
                    Ok(_) if outside => {
                        shared
                            .money_out
                            .fetch_add(part.unwrap_or(held), Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(_) => me.holds.push((reference, held, outside)),
                }
            }
            47..=64 if !me.holds.is_empty() => {
                let (reference, held, outside) =
                    me.holds.swap_remove(rng.random_range(0..me.holds.len()));
                let r = ledger.cancel(&who, reference).await;
                me.count("release", &r);
                if r.is_err() {
                    me.holds.push((reference, held, outside));
                }
            }
            65..=69 => {
                let picked = {
                    let mut q = match shared.refundable.lock() {
                        Ok(q) => q,
                        Err(poisoned) => poisoned.into_inner(),
                    };
                    let n = q.len();
                    if n == 0 {
                        None
                    } else {
                        q.swap_remove_back(rng.random_range(0..n))
                    }
                };
                if let Some((reference, sent)) = picked {
                    // Some refunds ask for more than the transfer moved: refused.
                    let part = rng.random_range(1..=sent + sent / 4);
                    let r = ledger
                        .refund(
                            &root,
                            RefundRequest {
                                transaction: reference,
                                amount: Some(usd(part)),
                                description: Some("soak refund".into()),
                                idempotency_key: me.key(i),
                            },
                        )
                        .await;
                    me.count("refund", &r);
                }
            }
            70..=72 => {
                // A retry of the last deposit: must return the first transaction, post nothing.
                if let Some((key, amount, first)) = me.last_deposit.clone() {
                    let r = ledger
                        .deposit(&who, DepositRequest::new(wallet, usd(amount), key))
                        .await;
                    me.count("deposit_replay", &r);
                    match r {
                        Ok(receipt)
                            if receipt.replayed && receipt.transaction.reference == first => {}
                        Ok(receipt) => me.anomalies.push(format!(
                            "caller {i}: replay of {first} answered {} (replayed: {})",
                            receipt.transaction.reference, receipt.replayed
                        )),
                        Err(_) => {}
                    }
                }
            }
            73..=82 => {
                let mut query = HistoryQuery::new(wallet);
                query.limit = 20;
                let r = ledger.history(&who, query).await;
                me.count("history", &r);
            }
            83..=86 => {
                let r = ledger.wallets_of(&who, who.user).await;
                me.count("wallets_of", &r);
            }
            87..=90 => {
                let r = ledger.wallet(&who, wallet).await;
                me.count("wallet", &r);
            }
            91..=94 => {
                let r = ledger.notifications(&who, who.user, false, None, 20).await;
                me.count("notifications", &r);
            }
            95..=96 => {
                let r = ledger.unread_count(&who, who.user).await;
                me.count("unread_count", &r);
            }
            _ => {
                if let Some((_, _, reference)) = me.last_deposit.clone() {
                    let r = ledger.transaction(&who, reference).await;
                    me.count("transaction", &r);
                    if let Err(e) = &r {
                        me.anomalies.push(format!(
                            "caller {i}: own deposit {reference} unreadable: {}",
                            e.code()
                        ));
                    }
                }
            }
        }
    }
    me
}
