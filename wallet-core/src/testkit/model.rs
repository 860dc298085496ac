//! Model-based property test: random sequences of commands run against a backend and against a
//! small in-memory model of the rules; after every step the two must agree.
//!
//! Besides top-ups, withdrawals and transfers (which pay a 1% fee, rounded down, into the fee
//! revenue account), sequences place holds, capture them wholly or partly, void them, refund
//! transfers wholly or partly, and exchange money between an owner's USD and JPY wallets.
//!
//! After every step: every wallet's balance, held amount and status equal the model's; no
//! customer wallet is negative and none holds more than its balance; each currency's balances
//! (system accounts included) sum to zero; no transaction is refunded beyond its amount. Replays
//! of earlier requests return the first transaction and change nothing; reusing a key with
//! other parameters is a conflict. `verify()` passes after every step.

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
use crate::wallet::{WalletKind, WalletStatus};

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
    Hold {
        from: usize,
        to: usize,
        outside: bool,
        amount: i64,
    },
    Capture {
        pick: usize,
        part: bool,
    },
    Void {
        pick: usize,
    },
    Refund {
        pick: usize,
        amount: Option<i64>,
    },
    Exchange {
        from: usize,
        to: usize,
        amount: i64,
        rate: usize,
    },
}

/// Exchange rates the model asks for: its reference rates (USD → JPY, JPY → USD) and one
/// off by more than the 1% tolerance, which must be refused.
const RATES: [&str; 3] = ["150.25", "0.0066", "1.37"];

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
        3 => (any::<usize>(), any::<usize>(), any::<bool>(), 1i64..20_000)
            .prop_map(|(from, to, outside, amount)| Step::Hold { from, to, outside, amount }),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(pick, part)| Step::Capture { pick, part }),
        1 => any::<usize>().prop_map(|pick| Step::Void { pick }),
        2 => (any::<usize>(), proptest::option::of(0i64..20_000))
            .prop_map(|(pick, amount)| Step::Refund { pick, amount }),
        2 => (any::<usize>(), any::<usize>(), 1i64..50_000, 0..RATES.len())
            .prop_map(|(from, to, amount, rate)| Step::Exchange { from, to, amount, rate }),
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
    held: i64,
}

/// A hold as the model sees it.
#[derive(Debug, Clone)]
struct ModelHold {
    txn: crate::ids::TransactionRef,
    from: usize,
    to: Option<usize>,
    amount: i64,
    /// What it reserves: amount plus fee.
    reserved: i64,
    state: HoldState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HoldState {
    Open,
    Captured(i64),
    Voided,
}

/// A completed transfer, for refunds.
#[derive(Debug, Clone)]
struct ModelTransfer {
    txn: crate::ids::TransactionRef,
    from: usize,
    to: usize,
    amount: i64,
    refunded: i64,
}

/// The model's fee on transfers: 1%, rounded down.
fn transfer_fee(amount: i64) -> i64 {
    amount / 100
}

/// The fee schedule the model's ledger runs with.
fn fees() -> crate::fees::FeeSchedule {
    let rule = crate::fees::FeeRule::new(
        Decimal::ZERO,
        Decimal::ONE,
        Decimal::ZERO,
        None,
        crate::fees::Rounding::Down,
    )
    .expect("a valid rule");
    crate::fees::FeeSchedule::new().with(crate::transaction::TransactionKind::Transfer, rule)
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
    /// Every system account seen, by currency.
    external: HashMap<usize, Vec<WalletId>>,
    holds: Vec<ModelHold>,
    transfers: Vec<ModelTransfer>,
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
        (out && wallet.balance - wallet.held < amount).then_some("insufficient_funds")
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
        (f.balance - f.held < amount + transfer_fee(amount)).then_some("insufficient_funds")
    }

    /// Remembers every system account a receipt touched.
    fn learn_external(&mut self, _currency: usize, r: &Receipt) {
        for leg in &r.transaction.legs {
            if leg.system.is_some() {
                let currency = CURRENCIES
                    .iter()
                    .position(|(code, _)| *code == leg.amount.currency().code().as_str())
                    .expect("a model currency");
                let seen = self.external.entry(currency).or_default();
                if !seen.contains(&leg.wallet) {
                    seen.push(leg.wallet);
                }
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
                    held: 0,
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
                    m.wallets[a].balance -= amount + transfer_fee(amount);
                    m.wallets[b].balance += amount;
                    m.learn_external(0, &r);
                    m.transfers.push(ModelTransfer {
                        txn: r.transaction.reference,
                        from: a,
                        to: b,
                        amount,
                        refunded: 0,
                    });
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
        Step::Hold {
            from,
            to,
            outside,
            amount,
        } => hold(f, m, from, to, outside, amount).await,
        Step::Capture { pick, part } => capture(f, m, pick, part).await,
        Step::Void { pick } => void(f, m, pick).await,
        Step::Refund { pick, amount } => refund(f, m, pick, amount).await,
        Step::Exchange {
            from,
            to,
            amount,
            rate,
        } => exchange(f, m, from, to, amount, rate).await,
    }
}

async fn hold<S: Store + Clone>(
    f: &Fixture<S>,
    m: &mut Model,
    from: usize,
    to: usize,
    outside: bool,
    amount: i64,
) {
    let (Some(a), Some(b)) = (m.pick(from), m.pick(to)) else {
        return;
    };
    let w = &m.wallets[a];
    let actor = m.owners[w.owner];
    let target = if outside {
        crate::payments::HoldTarget::Outside
    } else {
        crate::payments::HoldTarget::Wallet(m.wallets[b].id.into())
    };
    let req = crate::payments::HoldRequest {
        wallet: w.id.into(),
        target,
        details: crate::ledger::MoveDetails {
            amount: money(amount, w.currency),
            description: None,
            metadata: None,
            idempotency_key: f.key(),
        },
        ttl_micros: None,
    };
    let got = f.ledger.hold(&actor, req).await;
    let (expected, fee) = if outside {
        (m.one_sided(a, amount, true), 0)
    } else {
        (m.transfer(a, b, amount), transfer_fee(amount))
    };
    match expected {
        Some(code) => assert_code(got, code),
        None => {
            let r = got.unwrap();
            assert_eq!(r.transaction.status, crate::TransactionStatus::Pending);
            m.wallets[a].held += amount + fee;
            m.holds.push(ModelHold {
                txn: r.transaction.reference,
                from: a,
                to: (!outside).then_some(b),
                amount,
                reserved: amount + fee,
                state: HoldState::Open,
            });
        }
    }
}

async fn capture<S: Store + Clone>(f: &Fixture<S>, m: &mut Model, pick: usize, part: bool) {
    if m.holds.is_empty() {
        return;
    }
    let i = pick % m.holds.len();
    let h = m.holds[i].clone();
    let amount = if part {
        (h.amount / 2).max(1)
    } else {
        h.amount
    };
    let actor = m.owners[m.wallets[h.from].owner];
    let currency = m.wallets[h.from].currency;
    let got = f
        .ledger
        .capture(&actor, h.txn, Some(money(amount, currency)))
        .await;
    match h.state {
        HoldState::Captured(c) if c == amount => assert!(got.unwrap().replayed),
        HoldState::Captured(_) | HoldState::Voided => assert_code(got, "not_pending"),
        HoldState::Open => {
            let status = status_error(m.wallets[h.from].status)
                .or_else(|| h.to.and_then(|t| status_error(m.wallets[t].status)));
            if let Some(code) = status {
                return assert_code(got, code);
            }
            let r = got.unwrap();
            assert_eq!(r.transaction.status, crate::TransactionStatus::Completed);
            m.learn_external(currency, &r);
            let fee = if h.to.is_some() {
                transfer_fee(amount)
            } else {
                0
            };
            let from = &mut m.wallets[h.from];
            from.held -= h.reserved;
            from.balance -= amount + fee;
            if let Some(t) = h.to {
                m.wallets[t].balance += amount;
                m.transfers.push(ModelTransfer {
                    txn: h.txn,
                    from: h.from,
                    to: t,
                    amount,
                    refunded: 0,
                });
            }
            m.holds[i].state = HoldState::Captured(amount);
        }
    }
}

async fn void<S: Store + Clone>(f: &Fixture<S>, m: &mut Model, pick: usize) {
    if m.holds.is_empty() {
        return;
    }
    let i = pick % m.holds.len();
    let h = m.holds[i].clone();
    let actor = m.owners[m.wallets[h.from].owner];
    let got = f.ledger.cancel(&actor, h.txn).await;
    match h.state {
        HoldState::Voided => assert!(got.unwrap().replayed),
        HoldState::Captured(_) => assert_code(got, "not_pending"),
        HoldState::Open => {
            assert_eq!(
                got.unwrap().transaction.status,
                crate::TransactionStatus::Cancelled
            );
            m.wallets[h.from].held -= h.reserved;
            m.holds[i].state = HoldState::Voided;
        }
    }
}

async fn refund<S: Store + Clone>(f: &Fixture<S>, m: &mut Model, pick: usize, amount: Option<i64>) {
    if m.transfers.is_empty() {
        return;
    }
    let i = pick % m.transfers.len();
    let t = m.transfers[i].clone();
    let currency = m.wallets[t.to].currency;
    // The recipient gives money back.
    let actor = m.owners[m.wallets[t.to].owner];
    let got = f
        .ledger
        .refund(
            &actor,
            crate::payments::RefundRequest {
                transaction: t.txn,
                amount: amount.map(|a| money(a, currency)),
                description: None,
                idempotency_key: f.key(),
            },
        )
        .await;
    let refundable = t.amount - t.refunded;
    let r = amount.unwrap_or(refundable);
    let to = &m.wallets[t.to];
    let expected = if refundable == 0 {
        Some("not_refundable")
    } else if amount.is_some_and(|a| a <= 0) {
        Some("amount_not_positive")
    } else if r > refundable {
        Some("refund_exceeds_original")
    } else if let Some(e) =
        status_error(m.wallets[t.from].status).or_else(|| status_error(to.status))
    {
        Some(e)
    } else if to.balance - to.held < r {
        Some("insufficient_funds")
    } else {
        None
    };
    match expected {
        Some(code) => assert_code(got, code),
        None => {
            let receipt = got.unwrap();
            assert_eq!(receipt.transaction.amount.minor(), r);
            m.wallets[t.to].balance -= r;
            m.wallets[t.from].balance += r;
            m.transfers[i].refunded += r;
        }
    }
}

async fn exchange<S: Store + Clone>(
    f: &Fixture<S>,
    m: &mut Model,
    from: usize,
    to: usize,
    amount: i64,
    rate: usize,
) {
    let (Some(a), Some(b)) = (m.pick(from), m.pick(to)) else {
        return;
    };
    let (wa, wb) = (m.wallets[a].clone(), m.wallets[b].clone());
    let actor = m.owners[wa.owner];
    let rate_index = rate;
    let rate = super::d(RATES[rate]);
    let got = f
        .ledger
        .exchange(
            &actor,
            crate::payments::ExchangeRequest {
                from: wa.id.into(),
                to: wb.id.into(),
                rate,
                rounding: crate::fees::Rounding::Down,
                details: crate::ledger::MoveDetails {
                    amount: money(amount, wa.currency),
                    description: None,
                    metadata: None,
                    idempotency_key: f.key(),
                },
            },
        )
        .await;
    // The converted amount, rounded down to the target's minor unit.
    let scale = Decimal::from(10i64.pow(CURRENCIES[wb.currency].1));
    let converted = rust_decimal::prelude::ToPrimitive::to_i64(
        &(money(amount, wa.currency) * rate * scale).floor(),
    )
    .expect("a small amount");
    let expected = if a == b {
        Some("same_wallet")
    } else if wa.owner != wb.owner {
        Some("forbidden")
    } else if wa.currency == wb.currency {
        Some("invalid_rate")
    } else if RATES[usize::from(wa.currency == 1)] != RATES[rate_index] {
        // Not the reference rate of this direction: off by far more than the tolerance.
        Some("invalid_rate")
    } else if let Some(e) = status_error(wa.status).or_else(|| status_error(wb.status)) {
        Some(e)
    } else if wa.balance - wa.held < amount {
        Some("insufficient_funds")
    } else if converted <= 0 {
        Some("invalid_rate")
    } else {
        None
    };
    match expected {
        Some(code) => assert_code(got, code),
        None => {
            let r = got.unwrap();
            m.learn_external(wa.currency, &r);
            m.wallets[a].balance -= amount;
            m.wallets[b].balance += converted;
        }
    }
}

/// Compares every balance and status with the model and checks conservation per currency.
async fn check<S: Store + Clone>(f: &Fixture<S>, m: &Model) {
    let mut sums: HashMap<usize, i64> = HashMap::new();
    for w in &m.wallets {
        let stored = f.store.wallet(w.id).await.unwrap().expect("wallet exists");
        assert_eq!(stored.head.balance_minor, w.balance, "balance of {}", w.id);
        assert_eq!(stored.record.held_minor, w.held, "held of {}", w.id);
        assert_eq!(stored.record.status, w.status, "status of {}", w.id);
        assert!(stored.head.balance_minor >= 0);
        assert!(stored.record.held_minor <= stored.head.balance_minor);
        *sums.entry(w.currency).or_default() += stored.head.balance_minor;
    }
    for (currency, ids) in &m.external {
        let mut total = sums.get(currency).copied().unwrap_or(0);
        for id in ids {
            let account = f
                .store
                .wallet(*id)
                .await
                .unwrap()
                .expect("system account exists");
            total += account.head.balance_minor;
        }
        assert_eq!(total, 0, "{} does not sum to zero", CURRENCIES[*currency].0);
    }
    for t in &m.transfers {
        let stored = f.store.transaction(t.txn.id()).await.unwrap().unwrap();
        assert_eq!(stored.refunded.minor(), t.refunded, "refunded of {}", t.txn);
        assert!(stored.refunded.minor() <= stored.amount.minor());
    }
    f.assert_verified().await;
}

/// Runs one sequence on a fresh store.
pub async fn run_sequence<S: Store + Clone>(store: S, steps: &[Step]) {
    // Limits are their own cases; here they would only cut sequences short.
    let config = crate::config::Config::default()
        .with_default_limits(super::unlimited())
        .unwrap()
        .with_fees(fees())
        .with_reference_rate("USD", "JPY", super::d(RATES[0]))
        .unwrap()
        .with_reference_rate("JPY", "USD", super::d(RATES[1]))
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
