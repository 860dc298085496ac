//! The pure decision function: every business rule, once.
//!
//! A store loads the [`State`] a command [`Needs`](crate::command::Needs), calls [`decide`], and
//! applies the returned [`Effects`] atomically. The same state and command always give the same
//! decision, so both backends enforce exactly the same rules.

mod identity;
mod money;
mod payment_methods;
mod rules;

pub use rules::{
    LINK_TTL_MAX_MICROS, LedgerWrites, LinkRecord, MerchantRecord, NewPending, PendingRecord,
    Shown, Spend, StoredTxn, TxnUpdate, check_batch,
};

use crate::actor::{Action, Actor, authorize};
use crate::command::{Command, Fingerprint, Op, OpenWallet, SetWalletStatus};
use crate::currency::Currency;
use crate::error::{Error, Result};
use crate::identity::UserRecord;
use crate::ids::{TransactionId, TransactionRef, UserId, WalletId, WalletNumber};
use crate::money::Money;
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
    /// The needed system accounts, one slot per `Needs::systems` entry.
    pub systems: Vec<Option<WalletState>>,
    /// The merchant named by a payment.
    pub merchant: Option<MerchantRecord>,
    /// The payment that already paid the order, if any.
    pub order_paid: Option<TransactionId>,
    /// The payment link named by the command.
    pub link: Option<LinkRecord>,
    /// The existing transaction the command is about.
    pub transaction: Option<StoredTxn>,
    /// Lapsed open holds of the debited wallet.
    pub expired: Vec<PendingRecord>,
    /// Posted outgoing money of the debited wallet in the current day and month.
    pub spend: Option<Spend>,
    /// The wallet's stored limits (`None`: the defaults).
    pub limits: Option<crate::limits::Limits>,
    /// Overdue open holds and pending top-ups.
    pub due: Vec<PendingRecord>,
    /// The merchant already registered on the wallet.
    pub merchant_of: Option<MerchantRecord>,
    /// The link created earlier under the same (user, key).
    pub link_existing: Option<LinkRecord>,
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
                amount: Money::from_minor(l.amount_minor, l.record.currency),
                seq: l.head.seq,
                balance_before: Some(Money::from_minor(
                    l.head.balance_minor.wrapping_sub(l.amount_minor),
                    l.record.currency,
                )),
                balance_after: Some(Money::from_minor(l.head.balance_minor, l.record.currency)),
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
            refunded: Money::zero(currency),
            original: None,
            pending: None,
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
    /// Money-side writes: new and changed transactions, holds, orders, links.
    Ledger(Box<rules::LedgerWrites>),
    /// Store a wallet's limits (`None`: back to the defaults).
    SetLimits(WalletId, Option<crate::limits::Limits>),
    /// Insert a merchant (placeholder id).
    InsertMerchant(MerchantRecord),
    /// Insert a payment link (placeholder id).
    InsertLink(LinkRecord),
    /// Store a link's status.
    UpdateLink(LinkRecord),
    /// Mark notifications read.
    MarkRead(crate::command::MarkRead),
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
    /// Nothing to change; return this outcome (an idempotent repeat).
    Done(crate::store::Outcome),
    /// Apply these effects (a lapsed hold released, a late top-up failed), then answer with
    /// the error.
    Refuse(Effects, Error),
}

/// Decides a command against the state loaded for it.
pub fn decide(cmd: &Command, state: &State) -> Result<Decision> {
    match &cmd.op {
        Op::OpenWallet(o) => decide_open(cmd, o, state),
        Op::SetWalletStatus(s) => decide_status(cmd, s, state),
        Op::Move(m) => money::decide_move(cmd, m, state),
        Op::Settle(s) => money::settle(cmd, s, state),
        Op::Gateway(g) => money::gateway(cmd, g, state),
        Op::Refund(r) => money::refund(cmd, r, state),
        Op::SetLimits(s) => rules::set_limits(cmd, s, state),
        Op::RegisterMerchant(r) => rules::register_merchant(cmd, r, state),
        Op::CreateLink(c) => rules::create_link(cmd, c, state),
        Op::CancelLink(_) => rules::cancel_link(cmd, state),
        Op::MarkRead(m) => rules::mark_read(cmd, m, state),
        Op::ExpireDue(_) => money::expire_due(cmd, state),
        Op::Batch(ops) => {
            // A store applies a batch operation by operation; it reaches `decide` only to
            // be checked.
            rules::check_batch(ops)?;
            Err(Error::internal(
                "a batch is applied by the store, one operation at a time",
            ))
        }
        Op::Register(r) => identity::register(cmd, r, state),
        Op::UpdateUser(u) => identity::update(cmd, u, state),
        Op::Audit(_) => Ok(Decision::Apply(Effects::Nothing)),
        Op::PaymentMethod(op) => payment_methods::decide(cmd, op, state),
    }
}

/// The acting user as they are now: their current role, and an error if they are unknown,
/// deleted or inactive. The role in a session token may be stale; the stored one decides.
pub(super) fn acting<'a>(cmd: &Command, state: &'a State) -> Result<(Actor, &'a UserRecord)> {
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
pub(super) fn customer_wallet(state: &State, i: usize) -> Result<&WalletState> {
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

/// The next entry of `account`: `amount_minor` (signed) applied to its head.
pub(super) fn post(account: &WalletState, amount_minor: i64, at: Timestamp) -> Result<PostedLeg> {
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
