//! The pure decision function: every business rule, once.
//!
//! A store loads the [`State`] a command [`Needs`](crate::command::Needs), calls [`decide`], and
//! applies the returned [`Effects`] atomically. The same state and command always give the same
//! decision, so both backends enforce exactly the same rules.

mod identity;
mod payment_methods;

use crate::actor::{Action, Actor, authorize};
use crate::command::{Command, Fingerprint, Flow, Move, Op, OpenWallet, SetWalletStatus};
use crate::currency::Currency;
use crate::error::{Error, Result};
use crate::identity::{KycStatus, UserRecord};
use crate::ids::{TransactionId, TransactionRef, UserId, WalletId, WalletNumber};
use crate::money::{Money, to_minor};
use crate::text::{Description, IdempotencyKey, Metadata};
use crate::time::Timestamp;
use crate::transaction::{Leg, Transaction, TransactionKind, TransactionStatus};
use crate::wallet::{AccountKind, Head, WalletKind, WalletRecord, WalletState, WalletStatus};

/// An earlier transaction found under the command's idempotency key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Existing {
    /// Its id.
    pub id: TransactionId,
    /// The fingerprint of the request that created it.
    pub fingerprint: Fingerprint,
}

/// What the store loaded for a command, in the shape of its [`Needs`](crate::command::Needs).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct State {
    /// One slot per needed wallet, in order; `None` when no such wallet exists.
    pub wallets: Vec<Option<WalletState>>,
    /// The needed system account, if one was needed and exists.
    pub system: Option<WalletState>,
    /// The earlier transaction with the same (actor, key), if any.
    pub existing: Option<Existing>,
    /// The owner's existing wallet of the requested kind and currency, if any.
    pub slot: Option<WalletId>,
    /// The exponent the store recorded for the requested currency, if it has one.
    pub stored_exponent: Option<u8>,
    /// The acting user's record.
    pub actor: Option<UserRecord>,
    /// The record of the user the command is about.
    pub user: Option<UserRecord>,
    /// The user holding the requested username, if any.
    pub username_owner: Option<UserId>,
    /// The user holding the requested e-mail address, if any.
    pub email_owner: Option<UserId>,
    /// How many active SUPERUSERs exist.
    pub active_superusers: u64,
    /// The wallets of the owner being deleted.
    pub owner_wallets: Vec<WalletState>,
    /// The payment method the command names.
    pub payment_method: Option<crate::payment_method::PaymentMethod>,
    /// The owner's payment methods (when adding one).
    pub methods: Vec<crate::payment_method::PaymentMethod>,
}

/// A new wallet to insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWallet {
    /// Owner.
    pub owner: UserId,
    /// Kind.
    pub kind: WalletKind,
    /// Currency.
    pub currency: Currency,
    /// Initial status (ACTIVE).
    pub status: WalletStatus,
    /// Creation time.
    pub created_at: Timestamp,
    /// True when the store has never seen this currency: it must record it and create its
    /// system accounts (one of each [`SystemAccount`](crate::wallet::SystemAccount)) first.
    pub register_currency: bool,
}

impl NewWallet {
    /// The stored record, once the store has assigned `id`.
    pub fn record(&self, id: WalletId) -> WalletRecord {
        WalletRecord {
            id,
            owner: Some(self.owner),
            kind: AccountKind::Wallet(self.kind),
            currency: self.currency,
            status: self.status,
            held_minor: 0,
            created_at: self.created_at,
            updated_at: self.created_at,
        }
    }
}

/// One entry to append to an account's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostedLeg {
    /// The account as it was when decided (its record does not change by posting).
    pub record: WalletRecord,
    /// Signed amount in minor units.
    pub amount_minor: i64,
    /// The account's head after this entry: `seq`, `balance_minor` and `debits_minor` are what
    /// the entry stores.
    pub head: Head,
}

/// A new transaction and its entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    /// Kind.
    pub kind: TransactionKind,
    /// Status.
    pub status: TransactionStatus,
    /// Amount moved, positive, minor units.
    pub amount_minor: i64,
    /// Currency.
    pub currency: Currency,
    /// Description.
    pub description: Option<Description>,
    /// Metadata.
    pub metadata: Option<Metadata>,
    /// Who initiated it.
    pub initiated_by: UserId,
    /// Its idempotency key (scoped to `initiated_by`).
    pub idempotency_key: IdempotencyKey,
    /// Fingerprint of the request.
    pub fingerprint: Fingerprint,
    /// Creation time (never earlier than any earlier entry of the accounts it touches).
    pub created_at: Timestamp,
    /// Completion time.
    pub completed_at: Option<Timestamp>,
    /// Entries; they sum to zero.
    pub legs: Vec<PostedLeg>,
}

impl Posting {
    /// The transaction as callers see it, once the store has assigned `id`.
    pub fn to_transaction(&self, id: TransactionId) -> Transaction {
        let currency = self.currency;
        let legs = self
            .legs
            .iter()
            .map(|l| Leg {
                wallet: l.record.id,
                wallet_number: WalletNumber::of(l.record.id),
                system: match l.record.kind {
                    AccountKind::System(s) => Some(s),
                    AccountKind::Wallet(_) => None,
                },
                owner: l.record.owner,
                amount: Money::from_minor(l.amount_minor, currency),
                seq: l.head.seq,
                balance_before: Some(Money::from_minor(
                    l.head.balance_minor.wrapping_sub(l.amount_minor),
                    currency,
                )),
                balance_after: Some(Money::from_minor(l.head.balance_minor, currency)),
            })
            .collect();
        Transaction {
            id,
            reference: TransactionRef::of(id),
            kind: self.kind,
            status: self.status,
            amount: Money::from_minor(self.amount_minor, currency),
            description: self.description.clone(),
            metadata: self.metadata.clone(),
            initiated_by: self.initiated_by,
            idempotency_key: self.idempotency_key.clone(),
            created_at: self.created_at,
            completed_at: self.completed_at,
            legs,
        }
    }
}

/// A user to insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    /// The record, with a placeholder id the store replaces.
    pub record: UserRecord,
}

/// What to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effects {
    /// Insert a user.
    InsertUser(NewUser),
    /// Store a user record (every column but the id).
    UpdateUser(UserRecord),
    /// Store a deleted user's erased record and close their wallets.
    DeleteUser {
        /// The erased record.
        user: UserRecord,
        /// Their wallets, now CLOSED.
        wallets: Vec<WalletState>,
    },
    /// Nothing but the command's audit record.
    Nothing,
    /// Insert a payment method (placeholder id); if it is the default, the owner's other
    /// methods stop being default.
    InsertPaymentMethod(crate::payment_method::PaymentMethod),
    /// Store a payment method; if it is the default, the owner's others stop being default.
    UpdatePaymentMethod(crate::payment_method::PaymentMethod),
    /// Delete a payment method.
    DeletePaymentMethod(crate::payment_method::PaymentMethodId),
    /// Insert a wallet (and register its currency first if needed).
    OpenWallet(NewWallet),
    /// Store the wallet's new status (`updated_at` included).
    SetStatus(WalletState),
    /// Insert a transaction with its entries.
    Post(Posting),
}

/// The outcome of deciding a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Apply these effects.
    Apply(Effects),
    /// The command repeats an earlier one: return that transaction, write nothing.
    Replay(TransactionId),
    /// Nothing to change (for example, a wallet already in the requested status).
    Unchanged(WalletState),
}

/// Decides a command against the state loaded for it.
pub fn decide(cmd: &Command, state: &State) -> Result<Decision> {
    match &cmd.op {
        Op::OpenWallet(o) => decide_open(cmd, o, state),
        Op::SetWalletStatus(s) => decide_status(cmd, s, state),
        Op::Move(m) => decide_move(cmd, m, state),
        Op::Register(r) => identity::register(cmd, r, state),
        Op::UpdateUser(u) => identity::update(cmd, u, state),
        Op::Audit(_) => Ok(Decision::Apply(Effects::Nothing)),
        Op::PaymentMethod(op) => payment_methods::decide(cmd, op, state),
    }
}

/// The acting user as they are now: their current role, and an error if they are unknown,
/// deleted or inactive. The role in a session token may be stale; the stored one decides.
fn acting<'a>(cmd: &Command, state: &'a State) -> Result<(Actor, &'a UserRecord)> {
    let claimed = cmd.actor.ok_or(Error::Forbidden)?;
    let record = state
        .actor
        .as_ref()
        .filter(|r| r.id == claimed.user)
        .ok_or(Error::Forbidden)?;
    if record.is_deleted() || !record.active {
        return Err(Error::UserInactive);
    }
    Ok((Actor::new(record.id, record.role), record))
}

fn decide_open(cmd: &Command, o: &OpenWallet, state: &State) -> Result<Decision> {
    let (actor, _) = acting(cmd, state)?;
    authorize(&actor, Action::OpenWallet { owner: o.owner })?;
    match &state.user {
        Some(owner) if owner.id == o.owner && !owner.is_deleted() => {}
        _ => return Err(Error::UserNotFound),
    }
    if let Some(stored) = state.stored_exponent
        && stored != o.currency.exponent()
    {
        return Err(Error::CurrencyExponentMismatch {
            code: o.currency.code(),
            stored,
            configured: o.currency.exponent(),
        });
    }
    if let Some(existing) = state.slot {
        return Err(Error::WalletExists {
            existing: WalletNumber::of(existing),
        });
    }
    Ok(Decision::Apply(Effects::OpenWallet(NewWallet {
        owner: o.owner,
        kind: o.kind,
        currency: o.currency,
        status: WalletStatus::Active,
        created_at: cmd.now,
        register_currency: state.stored_exponent.is_none(),
    })))
}

/// The customer wallet in slot `i`, or `WalletNotFound` (system accounts are not addressable).
fn customer_wallet(state: &State, i: usize) -> Result<&WalletState> {
    match state.wallets.get(i) {
        Some(Some(w)) if matches!(w.record.kind, AccountKind::Wallet(_)) => Ok(w),
        _ => Err(Error::WalletNotFound),
    }
}

fn decide_status(cmd: &Command, s: &SetWalletStatus, state: &State) -> Result<Decision> {
    let (actor, _) = acting(cmd, state)?;
    let wallet = customer_wallet(state, 0)?;
    authorize(&actor, Action::SetWalletStatus)?;
    let from = wallet.record.status;
    if from == s.status {
        return Ok(Decision::Unchanged(wallet.clone()));
    }
    if !from.can_become(s.status) {
        return Err(Error::InvalidStatusTransition { from, to: s.status });
    }
    if s.status == WalletStatus::Closed
        && (wallet.head.balance_minor != 0 || wallet.record.held_minor != 0)
    {
        return Err(Error::WalletNotEmpty {
            balance: Money::from_minor(wallet.head.balance_minor, wallet.record.currency),
        });
    }
    let mut after = wallet.clone();
    after.record.status = s.status;
    after.record.updated_at = cmd.now.max(wallet.record.updated_at);
    Ok(Decision::Apply(Effects::SetStatus(after)))
}

fn decide_move(cmd: &Command, m: &Move, state: &State) -> Result<Decision> {
    let fingerprint = m.fingerprint();
    if let Some(existing) = state.existing {
        return if existing.fingerprint == fingerprint {
            Ok(Decision::Replay(existing.id))
        } else {
            Err(Error::IdempotencyConflict)
        };
    }
    if m.amount <= rust_decimal::Decimal::ZERO {
        return Err(Error::AmountNotPositive);
    }
    if let Flow::Transfer { from, to } = m.flow
        && from == to
    {
        return Err(Error::SameWallet);
    }

    // The wallet the money comes from (or, for a top-up, goes to) decides who may act.
    let (actor, record) = acting(cmd, state)?;
    let primary = customer_wallet(state, 0)?;
    authorize(
        &actor,
        Action::MoveMoney {
            owner: primary.record.owner,
        },
    )?;
    if record.kyc != KycStatus::Verified {
        let policy = cmd.config.kyc_policy();
        let allowed = match m.flow {
            Flow::Deposit { .. } => policy.top_up,
            Flow::Withdraw { .. } => policy.withdraw,
            Flow::Transfer { .. } => policy.send,
        };
        if !allowed {
            return Err(Error::KycRequired);
        }
    }
    let currency = primary.record.currency;
    let counterparty = match m.flow {
        Flow::Transfer { .. } => {
            let to = customer_wallet(state, 1)?;
            if to.record.currency != currency {
                return Err(Error::CurrencyMismatch {
                    expected: currency.code(),
                    found: to.record.currency.code(),
                });
            }
            to
        }
        Flow::Deposit { .. } | Flow::Withdraw { .. } => match &state.system {
            Some(s) if s.record.currency == currency => s,
            _ => {
                return Err(Error::internal(format!(
                    "system account for {currency} missing"
                )));
            }
        },
    };

    let amount_minor = to_minor(m.amount, currency)?;
    let (minimum, maximum) = cmd.config.bounds_for(currency);
    if amount_minor < minimum.minor() {
        return Err(Error::AmountBelowMinimum { minimum });
    }
    if amount_minor > maximum.minor() {
        return Err(Error::AmountAboveMaximum { maximum });
    }
    for w in [primary, counterparty] {
        if let AccountKind::Wallet(_) = w.record.kind
            && let Some(e) = w.record.status.money_error(WalletNumber::of(w.record.id))
        {
            return Err(e);
        }
    }

    let (kind, debit, credit) = match m.flow {
        Flow::Deposit { .. } => (TransactionKind::TopUp, counterparty, primary),
        Flow::Withdraw { .. } => (TransactionKind::Withdrawal, primary, counterparty),
        Flow::Transfer { .. } => (TransactionKind::Transfer, primary, counterparty),
    };
    if let AccountKind::Wallet(_) = debit.record.kind {
        let available = debit
            .head
            .balance_minor
            .saturating_sub(debit.record.held_minor);
        if available < amount_minor {
            return Err(Error::InsufficientFunds {
                available: Money::from_minor(available, currency),
                requested: Money::from_minor(amount_minor, currency),
            });
        }
    }

    // Entries of an account are ordered by time: never post before an account's latest entry,
    // even if the caller's clock stepped back.
    let created_at = cmd.now.max(debit.head.last_at).max(credit.head.last_at);
    let legs = vec![
        post(debit, -amount_minor, created_at)?,
        post(credit, amount_minor, created_at)?,
    ];
    Ok(Decision::Apply(Effects::Post(Posting {
        kind,
        status: TransactionStatus::Completed,
        amount_minor,
        currency,
        description: m.description.clone(),
        metadata: m.metadata.clone(),
        initiated_by: actor.user,
        idempotency_key: m.idempotency_key.clone(),
        fingerprint,
        created_at,
        completed_at: Some(created_at),
        legs,
    })))
}

/// The next entry of `account`: `amount_minor` (signed) applied to its head.
fn post(account: &WalletState, amount_minor: i64, at: Timestamp) -> Result<PostedLeg> {
    let head = account.head;
    let balance_minor = head
        .balance_minor
        .checked_add(amount_minor)
        .ok_or(Error::AmountOverflow)?;
    // Debits accumulate as a wrapping unsigned counter: totals over a range are differences of
    // two counters, exact whenever the range's true total fits in 64 bits.
    let debits_minor = if amount_minor < 0 {
        head.debits_minor.wrapping_add(amount_minor.wrapping_neg())
    } else {
        head.debits_minor
    };
    Ok(PostedLeg {
        record: account.record.clone(),
        amount_minor,
        head: Head {
            seq: head.seq.checked_add(1).ok_or(Error::AmountOverflow)?,
            balance_minor,
            debits_minor,
            last_at: at,
        },
    })
}
