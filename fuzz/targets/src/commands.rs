//! Sequences of service calls on an in-memory SQLite store.

use std::sync::OnceLock;

use rust_decimal::Decimal;
use tokio::runtime::Runtime;
use wallet_core::fees::{FeeRule, FeeSchedule, Rounding};
use wallet_core::ids::{MerchantId, TransactionRef};
use wallet_core::payment_method::PaymentMethodStatus;
use wallet_core::payments::{
    BatchOp, ExchangeRequest, HoldRequest, HoldTarget, LinkRequest, PaymentRequest, RefundRequest,
};
use wallet_core::testkit::{Fixture, d, unlimited};
use wallet_core::{
    Actor, Config, DepositRequest, KycStatus, MoveDetails, Receipt, Role, TransactionKind,
    TransferRequest, Wallet, WalletId, WalletKind, WalletRef, WalletStatus, WithdrawRequest,
};
use wallet_sqlite::{Options, SqliteStore};

use crate::assert_typed;
use crate::input::Input;

/// Longest sequence one input runs.
pub(crate) const STEPS_MAX: usize = 48;
/// Most users a sequence registers beyond the fixture's.
const USERS_MAX: usize = 6;

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("runtime: {e}"))
    })
}

fn config(choice: u8) -> Config {
    let ok = |r: wallet_core::Result<Config>| r.unwrap_or_else(|e| panic!("config: {e:?}"));
    let base = ok(Config::default()
        .with_reference_rate("USD", "JPY", d("150"))
        .and_then(|c| c.with_reference_rate("JPY", "USD", d("0.0066666667"))));
    match choice % 3 {
        // Default limits and KYC policy, no fees.
        0 => base,
        // No limits to speak of, fees on transfers and top-ups.
        1 => {
            let transfer = FeeRule::new(
                d("0.05"),
                d("1.5"),
                d("0.01"),
                Some(d("7")),
                Rounding::HalfEven,
            )
            .unwrap_or_else(|e| panic!("fee: {e:?}"));
            let top_up = FeeRule::new(d("0"), d("2"), d("0"), None, Rounding::Up)
                .unwrap_or_else(|e| panic!("fee: {e:?}"));
            ok(base.with_default_limits(unlimited())).with_fees(
                FeeSchedule::new()
                    .with(TransactionKind::Transfer, transfer)
                    .with(TransactionKind::TopUp, top_up),
            )
        }
        // Short holds and pending top-ups, so that expiry happens within a sequence.
        _ => ok(base
            .with_hold_ttl(60_000_000, 3_600_000_000)
            .and_then(|c| c.with_pending_timeout(120_000_000))),
    }
}

/// What a sequence has made so far, for later steps to refer to.
struct World {
    f: Fixture<SqliteStore>,
    actors: Vec<Actor>,
    wallets: Vec<Wallet>,
    transactions: Vec<TransactionRef>,
    merchants: Vec<MerchantId>,
    links: Vec<String>,
    gateway_refs: Vec<String>,
    keys: Vec<String>,
    methods: Vec<wallet_core::PaymentMethodId>,
    calls: u64,
    refusals: u64,
}

impl World {
    fn actor(&self, input: &mut Input<'_>) -> Actor {
        self.actors[input.index(self.actors.len())]
    }

    fn wallet(&self, input: &mut Input<'_>) -> WalletRef {
        match self.wallets.len() {
            0 => WalletRef::from(WalletId::new(1).unwrap_or_else(|e| panic!("{e:?}"))),
            n => {
                let w = &self.wallets[input.index(n)];
                if input.bool() {
                    w.number.into()
                } else {
                    w.id.into()
                }
            }
        }
    }

    fn transaction(&self, input: &mut Input<'_>) -> Option<TransactionRef> {
        (!self.transactions.is_empty())
            .then(|| self.transactions[input.index(self.transactions.len())])
    }

    /// A fresh key, or (one time in eight) one used before: a replay or a conflict.
    fn key(&mut self, input: &mut Input<'_>) -> String {
        if input.u8().is_multiple_of(8) && !self.keys.is_empty() {
            return self.keys[input.index(self.keys.len())].clone();
        }
        let key = format!("k{}", self.keys.len());
        self.keys.push(key.clone());
        key
    }

    fn details(&mut self, input: &mut Input<'_>) -> MoveDetails {
        let amount = amount(input);
        let description = match input.u8() % 8 {
            0 => Some(input.text(40)),
            _ => None,
        };
        MoveDetails {
            amount,
            description,
            metadata: None,
            idempotency_key: self.key(input),
        }
    }

    /// Records the outcome of one call: an error must be typed.
    fn seen<T>(&mut self, what: &str, result: wallet_core::Result<T>) -> Option<T> {
        self.calls += 1;
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                assert_typed(what, &e);
                self.refusals += 1;
                None
            }
        }
    }

    fn receipt(&mut self, what: &str, result: wallet_core::Result<Receipt>) {
        if let Some(r) = self.seen(what, result) {
            self.transactions.push(r.transaction.reference);
        }
    }
}

/// An amount: mostly a few units with up to 3 decimals, sometimes zero, negative, or any
/// mantissa at any scale (too many decimals, too large).
fn amount(input: &mut Input<'_>) -> Decimal {
    match input.u8() % 10 {
        0 => Decimal::ZERO,
        1 => -Decimal::new(i64::from(input.u16()), 2),
        2 => Decimal::try_new(input.i64(), u32::from(input.u8() % 29)).unwrap_or(Decimal::MAX),
        _ => Decimal::new(i64::from(input.u16()), u32::from(input.u8() % 4)),
    }
}

/// Runs a sequence of up to 48 service calls decoded from the input on a fresh
/// in-memory SQLite store: opening wallets, top-ups (immediate and pending, with gateway
/// callbacks), withdrawals, transfers, holds with captures and voids, refunds, merchants and
/// their payments, exchanges, batches, limits, payment links, wallet statuses, user
/// activation and KYC, payment methods, notifications, expiry, and the clock moving on. Callers
/// are any of a SUPERUSER, an ADMIN and customers (verified or not), on their own or other
/// people's wallets, with amounts that are often invalid and keys that are sometimes reused.
///
/// Checks: every refusal is a typed error; afterwards `verify()` is clean, and no customer
/// wallet has a negative balance or more held than its balance.
pub fn commands(data: &[u8]) {
    let mut input = Input::new(data);
    let choice = input.u8();
    runtime().block_on(run(config(choice), input));
}

async fn run(config: Config, mut input: Input<'_>) {
    let store =
        SqliteStore::open_in_memory(Options::default()).unwrap_or_else(|e| panic!("store: {e:?}"));
    let f = Fixture::with_config(store, config).await;
    let verified = f.user().await;
    let other = f.user().await;
    let pending = f.unverified_user().await;
    let mut w = World {
        actors: vec![f.root, f.admin, verified, other, pending],
        f,
        wallets: Vec::new(),
        transactions: Vec::new(),
        merchants: Vec::new(),
        links: Vec::new(),
        gateway_refs: Vec::new(),
        keys: Vec::new(),
        methods: Vec::new(),
        calls: 0,
        refusals: 0,
    };
    // Two customer wallets to start with, so short inputs move money.
    for who in [verified, other] {
        let wallet = w.f.funded(&who, "USD", "100").await;
        w.wallets.push(wallet);
    }
    let mut steps = 0;
    while !input.is_empty() && steps < STEPS_MAX {
        steps += 1;
        step(&mut w, &mut input).await;
    }
    check(&w).await;
}

async fn step(w: &mut World, input: &mut Input<'_>) {
    let actor = w.actor(input);
    let l = w.f.ledger.clone();
    match input.u8() % 27 {
        0 => {
            let owner = if input.bool() {
                actor.user
            } else {
                w.actor(input).user
            };
            let kind = input.pick(&[
                WalletKind::Personal,
                WalletKind::Business,
                WalletKind::Savings,
            ]);
            let currency = input.pick(&["USD", "JPY", "usd", "BHD", "XXX1", ""]);
            let req = wallet_core::OpenWalletRequest::new(owner, kind, currency);
            if let Some(wallet) = w.seen("open_wallet", l.open_wallet(&actor, req).await) {
                w.wallets.push(wallet);
            }
        }
        1 => {
            let req = DepositRequest {
                wallet: w.wallet(input),
                details: w.details(input),
            };
            let r = l.deposit(&actor, req).await;
            w.receipt("deposit", r);
        }
        2 => {
            let req = WithdrawRequest {
                wallet: w.wallet(input),
                details: w.details(input),
            };
            let r = l.withdraw(&actor, req).await;
            w.receipt("withdraw", r);
        }
        3 => {
            let req = TransferRequest {
                from: w.wallet(input),
                to: w.wallet(input),
                details: w.details(input),
            };
            let r = l.transfer(&actor, req).await;
            w.receipt("transfer", r);
        }
        4 => {
            let req = DepositRequest {
                wallet: w.wallet(input),
                details: w.details(input),
            };
            let reference = if input.bool() || w.gateway_refs.is_empty() {
                let r = format!("gw-{}", w.gateway_refs.len());
                w.gateway_refs.push(r.clone());
                r
            } else {
                w.gateway_refs[input.index(w.gateway_refs.len())].clone()
            };
            let r = l.top_up_pending(&actor, req, &reference).await;
            w.receipt("top_up_pending", r);
        }
        5 => {
            let reference = match w.gateway_refs.len() {
                0 => "gw-none".to_owned(),
                n => w.gateway_refs[input.index(n)].clone(),
            };
            let r = l.gateway_callback(&actor, &reference, input.bool()).await;
            w.receipt("gateway_callback", r);
        }
        6 => {
            let wallet = w.wallet(input);
            let target = match input.u8() % 3 {
                0 => HoldTarget::Outside,
                1 => HoldTarget::Wallet(w.wallet(input)),
                _ => HoldTarget::Merchant {
                    merchant: match w.merchants.len() {
                        0 => MerchantId::new(1).unwrap_or_else(|e| panic!("{e:?}")),
                        n => w.merchants[input.index(n)],
                    },
                    order: format!("order-{}", input.u8() % 4),
                },
            };
            let ttl_micros = match input.u8() % 4 {
                0 => Some(input.i64()),
                1 => Some(i64::from(input.u32())),
                _ => None,
            };
            let req = HoldRequest {
                wallet,
                target,
                details: w.details(input),
                ttl_micros,
            };
            let r = l.hold(&actor, req).await;
            w.receipt("hold", r);
        }
        7 => {
            if let Some(t) = w.transaction(input) {
                let part = input.bool().then(|| amount(input));
                let r = l.capture(&actor, t, part).await;
                w.receipt("capture", r);
            }
        }
        8 => {
            if let Some(t) = w.transaction(input) {
                let r = l.cancel(&actor, t).await;
                w.receipt("cancel", r);
            }
        }
        9 => {
            if let Some(t) = w.transaction(input) {
                let req = RefundRequest {
                    transaction: t,
                    amount: input.bool().then(|| amount(input)),
                    description: None,
                    idempotency_key: w.key(input),
                };
                let r = l.refund(&actor, req).await;
                w.receipt("refund", r);
            }
        }
        10 => {
            let wallet = w.wallet(input);
            let name = format!("shop {}", input.u8());
            if let Some(m) = w.seen(
                "register_merchant",
                l.register_merchant(&actor, wallet, &name).await,
            ) {
                w.merchants.push(m.id);
            }
        }
        11 => {
            let merchant = match w.merchants.len() {
                0 => MerchantId::new(1).unwrap_or_else(|e| panic!("{e:?}")),
                n => w.merchants[input.index(n)],
            };
            let req = PaymentRequest {
                from: w.wallet(input),
                merchant,
                order: format!("order-{}", input.u8() % 4),
                details: w.details(input),
            };
            let r = l.pay_merchant(&actor, req).await;
            w.receipt("pay_merchant", r);
        }
        12 => {
            let req = ExchangeRequest {
                from: w.wallet(input),
                to: w.wallet(input),
                rate: input.pick(&[d("150"), d("0.0066666667"), d("151"), d("1"), Decimal::ZERO]),
                rounding: input.pick(&[
                    Rounding::HalfUp,
                    Rounding::HalfEven,
                    Rounding::Down,
                    Rounding::Up,
                ]),
                details: w.details(input),
            };
            let r = l.exchange(&actor, req).await;
            w.receipt("exchange", r);
        }
        13 => {
            let n = input.u8() % 5;
            let mut ops = Vec::new();
            for _ in 0..n {
                let op = match input.u8() % 5 {
                    0 => BatchOp::Deposit(DepositRequest {
                        wallet: w.wallet(input),
                        details: w.details(input),
                    }),
                    1 => BatchOp::Withdraw(WithdrawRequest {
                        wallet: w.wallet(input),
                        details: w.details(input),
                    }),
                    2 => BatchOp::Transfer(TransferRequest {
                        from: w.wallet(input),
                        to: w.wallet(input),
                        details: w.details(input),
                    }),
                    3 => match w.transaction(input) {
                        Some(t) => BatchOp::Capture(t, None),
                        None => continue,
                    },
                    _ => match w.transaction(input) {
                        Some(t) => BatchOp::Refund(RefundRequest {
                            transaction: t,
                            amount: None,
                            description: None,
                            idempotency_key: w.key(input),
                        }),
                        None => continue,
                    },
                };
                ops.push(op);
            }
            if let Some(receipts) = w.seen("batch", l.batch(&actor, ops).await) {
                w.transactions
                    .extend(receipts.iter().map(|r| r.transaction.reference));
            }
        }
        14 => {
            let wallet = w.wallet(input);
            let limits = input
                .bool()
                .then(|| (amount(input), amount(input), amount(input)));
            w.seen("set_limits", l.set_limits(&actor, wallet, limits).await);
        }
        15 => {
            let req = LinkRequest {
                wallet: w.wallet(input),
                amount: amount(input),
                description: None,
                ttl_micros: match input.u8() % 3 {
                    0 => input.i64(),
                    _ => i64::from(input.u32()) * 1_000,
                },
                idempotency_key: w.key(input),
            };
            if let Some(link) = w.seen("create_link", l.create_link(&actor, req).await) {
                w.links.push(link.code.to_string());
            }
        }
        16 => {
            let code = match w.links.len() {
                0 => input.text(30),
                n => w.links[input.index(n)].clone(),
            };
            let from = w.wallet(input);
            let key = w.key(input);
            let r = l.pay_link(&actor, from, &code, &key).await;
            w.receipt("pay_link", r);
        }
        17 => {
            if !w.links.is_empty() {
                let code = w.links[input.index(w.links.len())].clone();
                w.seen("cancel_link", l.cancel_link(&actor, &code).await);
            }
        }
        18 => {
            let wallet = w.wallet(input);
            let status = input.pick(WalletStatus::ALL);
            w.seen(
                "set_wallet_status",
                l.set_wallet_status(&actor, wallet, status).await,
            );
        }
        19 => {
            let target = w.actor(input).user;
            w.seen(
                "set_active",
                l.set_active(&actor, target, input.bool()).await,
            );
        }
        20 => {
            let target = w.actor(input).user;
            let status = input.pick(KycStatus::ALL);
            w.seen(
                "review_kyc",
                l.review_kyc(&actor, target, status, "fuzz").await,
            );
        }
        21 => {
            let micros = i64::from(input.u32()) * i64::from(input.u8() % 64 + 1);
            w.f.clock.advance_micros(micros);
        }
        22 => {
            w.seen(
                "expire_due",
                l.expire_due(&actor, u32::from(input.u8())).await,
            );
        }
        23 => {
            let target = w.actor(input).user;
            w.seen("mark_read", l.mark_read(&actor, target, None).await);
            w.seen(
                "notifications",
                l.notifications(&actor, target, input.bool(), None, 10)
                    .await,
            );
        }
        24 => {
            let owner = w.actor(input).user;
            let month = input.u8() % 14;
            let method = wallet_core::NewPaymentMethod {
                kind: wallet_core::payment_method::PaymentMethodKind::CreditCard,
                provider: "stripe".into(),
                provider_token: format!("pm_{}", input.u16()),
                display: match wallet_core::payment_method::CardExpiry::new(month, 2030) {
                    Ok(expiry) => wallet_core::payment_method::MethodDisplay::Card {
                        brand: wallet_core::payment_method::CardBrand::Visa,
                        last4: "4242".into(),
                        expiry,
                        holder: None,
                    },
                    Err(e) => {
                        assert_typed("CardExpiry", &e);
                        return;
                    }
                },
                nickname: None,
                make_default: input.bool(),
            };
            if let Some(m) = w.seen(
                "add_payment_method",
                l.add_payment_method(&actor, owner, method).await,
            ) {
                w.methods.push(m.id);
            }
            if !w.methods.is_empty() {
                let id = w.methods[input.index(w.methods.len())];
                let status = input.pick(PaymentMethodStatus::ALL);
                w.seen(
                    "set_payment_method_status",
                    l.set_payment_method_status(&actor, id, status).await,
                );
            }
        }
        25 => {
            // Rare: deleting a user closes their wallets.
            if input.u8().is_multiple_of(4) {
                let target = w.actor(input).user;
                w.seen("delete_user", l.delete_user(&actor, target).await);
            }
        }
        _ => {
            if w.actors.len() < 5 + USERS_MAX {
                let name = format!("extra{}", w.actors.len());
                let mut req = wallet_core::testkit::registration(&name);
                if input.u8().is_multiple_of(4) {
                    req.phone = input.text(20);
                }
                if let Some(user) = w.seen("register", l.register(req).await) {
                    w.actors.push(Actor::new(user.id, Role::User));
                }
            }
        }
    }
}

/// The ledger verifies and every customer wallet is sound.
async fn check(w: &World) {
    let report =
        w.f.ledger
            .verify(&w.f.admin)
            .await
            .unwrap_or_else(|e| panic!("verify: {e:?}"));
    assert!(report.is_ok(), "ledger inconsistent: {report:#?}");
    for wallet in &w.wallets {
        let now =
            w.f.ledger
                .wallet(&w.f.admin, wallet.id)
                .await
                .unwrap_or_else(|e| panic!("wallet: {e:?}"));
        assert!(now.balance.minor() >= 0, "negative balance: {now:?}");
        assert!(now.held.minor() >= 0, "negative hold: {now:?}");
        assert!(
            now.held.minor() <= now.balance.minor(),
            "held beyond balance: {now:?}"
        );
        assert_eq!(
            now.available.minor(),
            now.balance.minor() - now.held.minor(),
            "{now:?}"
        );
    }
    assert!(w.refusals <= w.calls);
}
