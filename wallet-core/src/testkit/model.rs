//! Model-based property test: random sequences of commands run against a backend and against a
//! small in-memory model of the rules; after every step the two must agree.
//!
//! After every step: every wallet's balance and status equal the model's, no customer wallet is
//! negative, and each currency's balances (system accounts included) sum to zero. Replays of
//! earlier requests return the first transaction and change nothing; reusing a key with other
//! parameters is a conflict. `verify()` passes at the end of every sequence.

use std::collections::HashMap;
use std::future::Future;

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use rust_decimal::Decimal;

use super::{Fixture, assert_code};
use crate::actor::Actor;
use crate::error::Error;
use crate::ids::{TransactionId, WalletId, WalletRef};
use crate::ledger::{DepositRequest, OpenWalletRequest, TransferRequest, WithdrawRequest};
use crate::store::Store;
use crate::transaction::Receipt;
use crate::wallet::{SystemAccount, WalletKind, WalletStatus};

const CURRENCIES: [(&str, u32); 2] = [("USD", 2), ("JPY", 0)];
const OWNERS: usize = 4;

/// One step of a generated sequence. Indexes are taken modulo what exists.
#[derive(Debug, Clone)]
pub enum Step {
    Open {
        owner: usize,
        kind: usize,
        currency: usize,
    },
    Deposit {
        wallet: usize,
        amount: i64,
    },
    Withdraw {
        wallet: usize,
        amount: i64,
    },
    Transfer {
        from: usize,
        to: usize,
        amount: i64,
        by_number: bool,
    },
    SetStatus {
        wallet: usize,
        status: usize,
    },
    Replay {
        pick: usize,
    },
    Conflict {
        pick: usize,
    },
}

fn step() -> impl Strategy<Value = Step> {
    let amount = prop_oneof![1 => Just(0i64), 20 => 1i64..5_000, 2 => 5_000i64..200_000];
    prop_oneof![
        2 => (0..OWNERS, 0..3usize, 0..CURRENCIES.len())
            .prop_map(|(owner, kind, currency)| Step::Open { owner, kind, currency }),
        6 => (any::<usize>(), amount.clone()).prop_map(|(wallet, amount)| Step::Deposit { wallet, amount }),
        3 => (any::<usize>(), amount.clone()).prop_map(|(wallet, amount)| Step::Withdraw { wallet, amount }),
        8 => (any::<usize>(), any::<usize>(), amount, any::<bool>())
            .prop_map(|(from, to, amount, by_number)| Step::Transfer { from, to, amount, by_number }),
        1 => (any::<usize>(), 0..WalletStatus::ALL.len())
            .prop_map(|(wallet, status)| Step::SetStatus { wallet, status }),
        2 => any::<usize>().prop_map(|pick| Step::Replay { pick }),
        1 => any::<usize>().prop_map(|pick| Step::Conflict { pick }),
    ]
}

/// Generated sequences: `cases` of them, each up to `steps_max` steps long.
pub fn sequences(steps_max: usize) -> impl Strategy<Value = Vec<Step>> {
    proptest::collection::vec(step(), 1..=steps_max)
}

#[derive(Debug, Clone)]
struct ModelWallet {
    id: WalletId,
    owner: usize,
    kind: usize,
    currency: usize,
    status: WalletStatus,
    balance: i64,
}

/// A request that succeeded, kept for replays.
#[derive(Debug, Clone)]
enum Sent {
    Deposit(Actor, DepositRequest),
    Withdraw(Actor, WithdrawRequest),
    Transfer(Actor, TransferRequest),
}

#[derive(Default)]
struct Model {
    wallets: Vec<ModelWallet>,
    external: HashMap<usize, WalletId>,
    sent: Vec<(Sent, TransactionId)>,
    /// The registered, KYC-verified owners (indexes `0..OWNERS`).
    owners: Vec<Actor>,
}

fn money(amount: i64, currency: usize) -> Decimal {
    Decimal::new(amount, CURRENCIES[currency].1)
}

fn status_error(status: WalletStatus) -> Option<&'static str> {
    match status {
        WalletStatus::Active => None,
        WalletStatus::Inactive => Some("wallet_inactive"),
        WalletStatus::Frozen => Some("wallet_frozen"),
        WalletStatus::Blocked => Some("wallet_blocked"),
        WalletStatus::Closed => Some("wallet_closed"),
    }
}

impl Model {
    fn pick(&self, i: usize) -> Option<usize> {
        (!self.wallets.is_empty()).then(|| i % self.wallets.len())
    }

    /// Expected error of a deposit/withdrawal into or out of wallet `w`, if any.
    fn one_sided(&self, w: usize, amount: i64, out: bool) -> Option<&'static str> {
        let wallet = &self.wallets[w];
        if amount <= 0 {
            return Some("amount_not_positive");
        }
        if let Some(e) = status_error(wallet.status) {
            return Some(e);
        }
        (out && wallet.balance < amount).then_some("insufficient_funds")
    }

    fn transfer(&self, from: usize, to: usize, amount: i64) -> Option<&'static str> {
        let (f, t) = (&self.wallets[from], &self.wallets[to]);
        if amount <= 0 {
            return Some("amount_not_positive");
        }
        if from == to {
            return Some("same_wallet");
        }
        if f.currency != t.currency {
            return Some("currency_mismatch");
        }
        if let Some(e) = status_error(f.status).or_else(|| status_error(t.status)) {
            return Some(e);
        }
        (f.balance < amount).then_some("insufficient_funds")
    }

    fn learn_external(&mut self, currency: usize, r: &Receipt) {
        for leg in &r.transaction.legs {
            if leg.system == Some(SystemAccount::External) {
                self.external.insert(currency, leg.wallet);
            }
        }
    }
}

async fn apply<S: Store + Clone>(f: &Fixture<S>, m: &mut Model, step: &Step) {
    f.clock.advance_micros(1_000);
    match *step {
        Step::Open {
            owner,
            kind,
            currency,
        } => {
            let actor = m.owners[owner];
            let kind_value = WalletKind::ALL[kind];
            let req = OpenWalletRequest::new(actor.user, kind_value, CURRENCIES[currency].0);
            let got = f.ledger.open_wallet(&actor, req).await;
            let exists = m
                .wallets
                .iter()
                .any(|w| w.owner == owner && w.kind == kind && w.currency == currency);
            if exists {
                assert_code(got, "wallet_exists");
            } else {
                let w = got.unwrap();
                m.wallets.push(ModelWallet {
                    id: w.id,
                    owner,
                    kind,
                    currency,
                    status: WalletStatus::Active,
                    balance: 0,
                });
            }
        }
        Step::Deposit { wallet, amount } | Step::Withdraw { wallet, amount } => {
            let Some(w) = m.pick(wallet) else { return };
            let out = matches!(step, Step::Withdraw { .. });
            let (owner, currency, id) =
                (m.wallets[w].owner, m.wallets[w].currency, m.wallets[w].id);
            let actor = m.owners[owner];
            let value = money(amount, currency);
            let (got, sent) = if out {
                let req = WithdrawRequest::new(id, value, f.key());
                (
                    f.ledger.withdraw(&actor, req.clone()).await,
                    Sent::Withdraw(actor, req),
                )
            } else {
                let req = DepositRequest::new(id, value, f.key());
                (
                    f.ledger.deposit(&actor, req.clone()).await,
                    Sent::Deposit(actor, req),
                )
            };
            match m.one_sided(w, amount, out) {
                Some(code) => assert_code(got, code),
                None => {
                    let r = got.unwrap();
                    assert!(!r.replayed);
                    m.wallets[w].balance += if out { -amount } else { amount };
                    m.learn_external(currency, &r);
                    m.sent.push((sent, r.transaction.id));
                }
            }
        }
        Step::Transfer {
            from,
            to,
            amount,
            by_number,
        } => {
            let (Some(a), Some(b)) = (m.pick(from), m.pick(to)) else {
                return;
            };
            let (fa, fb) = (&m.wallets[a], &m.wallets[b]);
            let actor = m.owners[fa.owner];
            let (src, dst): (WalletRef, WalletRef) = if by_number {
                (
                    crate::WalletNumber::of(fa.id).into(),
                    crate::WalletNumber::of(fb.id).into(),
                )
            } else {
                (fa.id.into(), fb.id.into())
            };
            let req = TransferRequest::new(src, dst, money(amount, fa.currency), f.key());
            let got = f.ledger.transfer(&actor, req.clone()).await;
            match m.transfer(a, b, amount) {
                Some(code) => assert_code(got, code),
                None => {
                    let r = got.unwrap();
                    m.wallets[a].balance -= amount;
                    m.wallets[b].balance += amount;
                    m.sent.push((Sent::Transfer(actor, req), r.transaction.id));
                }
            }
        }
        Step::SetStatus { wallet, status } => {
            let Some(w) = m.pick(wallet) else { return };
            let to = WalletStatus::ALL[status];
            let got = f
                .ledger
                .set_wallet_status(&f.root, m.wallets[w].id, to)
                .await;
            let current = m.wallets[w].status;
            if current == WalletStatus::Closed && to != WalletStatus::Closed {
                assert_code(got, "invalid_status_transition");
            } else if to == WalletStatus::Closed && current != to && m.wallets[w].balance != 0 {
                assert_code(got, "wallet_not_empty");
            } else {
                assert_eq!(got.unwrap().status, to);
                m.wallets[w].status = to;
            }
        }
        Step::Replay { pick } | Step::Conflict { pick } => {
            if m.sent.is_empty() {
                return;
            }
            let (sent, txn) = m.sent[pick % m.sent.len()].clone();
            let conflict = matches!(step, Step::Conflict { .. });
            let bump = |amount: Decimal| amount + Decimal::new(1, 0);
            let got = match sent {
                Sent::Deposit(actor, mut req) => {
                    if conflict {
                        req.details.amount = bump(req.details.amount);
                    }
                    f.ledger.deposit(&actor, req).await
                }
                Sent::Withdraw(actor, mut req) => {
                    if conflict {
                        req.details.amount = bump(req.details.amount);
                    }
                    f.ledger.withdraw(&actor, req).await
                }
                Sent::Transfer(actor, mut req) => {
                    if conflict {
                        req.details.amount = bump(req.details.amount);
                    }
                    f.ledger.transfer(&actor, req).await
                }
            };
            if conflict {
                assert_eq!(got.unwrap_err(), Error::IdempotencyConflict);
            } else {
                let r = got.unwrap();
                assert!(r.replayed, "a replay must not post again");
                assert_eq!(r.transaction.id, txn);
            }
        }
    }
}

/// Compares every balance and status with the model and checks conservation per currency.
async fn check<S: Store + Clone>(f: &Fixture<S>, m: &Model) {
    let mut sums: HashMap<usize, i64> = HashMap::new();
    for w in &m.wallets {
        let stored = f.store.wallet(w.id).await.unwrap().expect("wallet exists");
        assert_eq!(stored.head.balance_minor, w.balance, "balance of {}", w.id);
        assert_eq!(stored.record.status, w.status, "status of {}", w.id);
        assert!(stored.head.balance_minor >= 0);
        *sums.entry(w.currency).or_default() += stored.head.balance_minor;
    }
    for (currency, id) in &m.external {
        let external = f
            .store
            .wallet(*id)
            .await
            .unwrap()
            .expect("system account exists");
        let customers = sums.get(currency).copied().unwrap_or(0);
        assert_eq!(
            external.head.balance_minor + customers,
            0,
            "{} does not sum to zero",
            CURRENCIES[*currency].0
        );
    }
}

/// Runs one sequence on a fresh store.
pub async fn run_sequence<S: Store + Clone>(store: S, steps: &[Step]) {
    // Limits are their own cases; here they would only cut sequences short.
    let config = crate::config::Config::default()
        .with_default_limits(super::unlimited())
        .unwrap();
    let f = Fixture::with_config(store, config).await;
    let mut m = Model::default();
    for _ in 0..OWNERS {
        m.owners.push(f.user().await);
    }
    for s in steps {
        apply(&f, &mut m, s).await;
        check(&f, &m).await;
    }
    f.assert_verified().await;
}

/// How many sequences to run and how long they may be: 48 sequences of up to 150 steps (about
/// 3,600 operations) unless `WALLET_MODEL_CASES` / `WALLET_MODEL_STEPS` say otherwise.
pub fn budget() -> (u32, usize) {
    let var = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let cases = u32::try_from(var("WALLET_MODEL_CASES", 48)).unwrap_or(48);
    (cases, var("WALLET_MODEL_STEPS", 150))
}

/// Runs `cases` generated sequences of up to `steps_max` steps, each on a fresh store from
/// `make`, on a current-thread runtime. Panics (fails the test) on the first disagreement,
/// after shrinking it to a minimal sequence.
pub fn run<S, F, Fut>(make: F, cases: u32, steps_max: usize)
where
    S: Store + Clone,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut runner = TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let result = runner.run(&sequences(steps_max), |steps| {
        runtime.block_on(async {
            let store = make().await;
            run_sequence(store, &steps).await;
        });
        Ok(())
    });
    if let Err(e) = result {
        panic!("model test failed: {e}");
    }
}
