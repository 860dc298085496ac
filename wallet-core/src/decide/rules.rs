//! Records a money decision reads, the writes it asks for, and the rules that are not money
//! movements: limits, merchants, payment links, notifications, batches.

use crate::actor::{Action, authorize};
use crate::command::{
    BATCH_OPS_MAX, Command, CreateLink, MARK_READ_MAX, MarkRead, Op, RegisterMerchant, SetLimits,
};
use crate::currency::Currency;
use crate::error::{Error, Result};
use crate::ids::{MerchantId, TransactionId, UserId, WalletId};
use crate::limits::Limits;
use crate::links::{LinkCode, LinkStatus};
use crate::money::to_minor;
use crate::store::Outcome;
use crate::text::{Description, ExternalRef};
use crate::time::Timestamp;
use crate::transaction::{TransactionKind, TransactionStatus};
use crate::wallet::{AccountKind, WalletKind, WalletRecord, WalletState};

use super::{Decision, Effects, Fingerprint, PostedLeg, Posting, State, acting, customer_wallet};

/// A hold or pending top-up as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRecord {
    /// The PENDING (or formerly PENDING) transaction.
    pub transaction: TransactionId,
    /// The wallet held (a hold) or to be credited (a top-up).
    pub wallet: WalletId,
    /// Where a captured hold goes (`None`: out of the ledger, or a top-up).
    pub counter: Option<WalletId>,
    /// The principal authorized, minor units.
    pub amount_minor: i64,
    /// Money reserved now (principal plus fee while a hold is open; zero otherwise).
    pub held_minor: i64,
    /// The gateway's reference (top-ups).
    pub gateway_ref: Option<ExternalRef>,
    /// When it lapses.
    pub expires_at: Timestamp,
    /// Whether it is still PENDING.
    pub open: bool,
}

/// An existing transaction as a decision sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTxn {
    /// Id.
    pub id: TransactionId,
    /// Kind.
    pub kind: TransactionKind,
    /// Status.
    pub status: TransactionStatus,
    /// Amount, minor units of `currency`.
    pub amount_minor: i64,
    /// Refunded so far, minor units.
    pub refunded_minor: i64,
    /// Currency of `amount_minor`.
    pub currency: Currency,
    /// Its entries: account and signed amount.
    pub legs: Vec<(WalletId, i64)>,
    /// Its hold or pending top-up, if it has one.
    pub pending: Option<PendingRecord>,
}

/// A merchant as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerchantRecord {
    /// Id (a placeholder until stored).
    pub id: MerchantId,
    /// The BUSINESS wallet paid.
    pub wallet: WalletId,
    /// Display name.
    pub name: Description,
    /// When it was registered.
    pub created_at: Timestamp,
}

/// A payment link as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRecord {
    /// Row id (a placeholder until stored).
    pub id: i64,
    /// Its code.
    pub code: LinkCode,
    /// The wallet paid.
    pub wallet: WalletId,
    /// The amount asked, minor units of `currency`.
    pub amount_minor: i64,
    /// The wallet's currency.
    pub currency: Currency,
    /// What it is for.
    pub description: Option<Description>,
    /// Status as stored.
    pub status: LinkStatus,
    /// When it stops being payable.
    pub expires_at: Timestamp,
    /// The payment, once paid.
    pub paid_by: Option<TransactionId>,
    /// Who created it.
    pub created_by: UserId,
    /// The key it was created with.
    pub idempotency_key: crate::text::IdempotencyKey,
    /// The creating request's fingerprint.
    pub fingerprint: Fingerprint,
    /// When it was created.
    pub created_at: Timestamp,
}

impl LinkRecord {
    /// The public view of this link.
    pub fn to_link(&self) -> crate::links::PaymentLink {
        crate::links::PaymentLink {
            code: self.code,
            wallet: crate::ids::WalletNumber::of(self.wallet),
            amount: crate::money::Money::from_minor(self.amount_minor, self.currency),
            description: self.description.clone(),
            status: self.status,
            expires_at: self.expires_at,
            paid_by: self.paid_by.map(crate::ids::TransactionRef::of),
            created_at: self.created_at,
        }
    }
}

/// Posted outgoing money of a wallet in the current calendar day and month (holds not
/// included: the decision adds what the wallet holds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Spend {
    /// Since the start of today.
    pub today: i64,
    /// Since the start of this month.
    pub month: i64,
}

/// Changes to an existing transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnUpdate {
    /// Which.
    pub id: TransactionId,
    /// New status.
    pub status: TransactionStatus,
    /// New amount (a partial capture), minor units.
    pub amount_minor: i64,
    /// New refunded total, minor units.
    pub refunded_minor: i64,
    /// When its entries were posted (set when it completes).
    pub completed_at: Option<Timestamp>,
    /// Entries to post under it (a capture, a completed top-up).
    pub legs: Vec<PostedLeg>,
    /// Close its pending record (held becomes zero).
    pub close_pending: bool,
    /// For a PAYMENT that did not complete: free its order id for another payment.
    pub release_order: bool,
}

/// The pending record of a new transaction (its id comes from the insert).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPending {
    /// The wallet held or to be credited.
    pub wallet: WalletId,
    /// Destination of a hold.
    pub counter: Option<WalletId>,
    /// The principal, minor units.
    pub amount_minor: i64,
    /// Reserved now.
    pub held_minor: i64,
    /// The gateway's reference.
    pub gateway_ref: Option<ExternalRef>,
    /// When it lapses.
    pub expires_at: Timestamp,
}

/// Which transaction a command's receipt shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    /// The new one.
    New,
    /// An existing one.
    Existing(TransactionId),
    /// No transaction: how many were changed (expiry sweeps).
    Count(u64),
}

/// The writes of a money decision, applied together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerWrites {
    /// A new transaction (with its entries unless PENDING).
    pub new: Option<Posting>,
    /// Its pending record (holds and pending top-ups).
    pub new_pending: Option<NewPending>,
    /// The merchant order it pays.
    pub new_order: Option<(MerchantId, ExternalRef)>,
    /// The payment link it pays (row id).
    pub link_paid: Option<i64>,
    /// The original a new refund reverses.
    pub refund_of: Option<TransactionId>,
    /// Changes to existing transactions.
    pub updates: Vec<TxnUpdate>,
    /// Wallet records whose holds changed (held and `updated_at` are written).
    pub records: Vec<WalletRecord>,
    /// The final state of every account touched, for caches.
    pub touched: Vec<WalletState>,
    /// What the receipt shows.
    pub shown: Shown,
}

impl LedgerWrites {
    /// Writes that show `shown` and change nothing yet.
    pub(crate) fn new(shown: Shown) -> Self {
        LedgerWrites {
            new: None,
            new_pending: None,
            new_order: None,
            link_paid: None,
            refund_of: None,
            updates: Vec::new(),
            records: Vec::new(),
            touched: Vec::new(),
            shown,
        }
    }
}

/// Checks a batch's shape: 1 to [`BATCH_OPS_MAX`] money operations (movements, captures and
/// cancellations, refunds), no nested batch.
pub fn check_batch(ops: &[Op]) -> Result<()> {
    if ops.is_empty() {
        return Err(Error::InvalidBatch {
            reason: "a batch needs at least one operation",
        });
    }
    if ops.len() > BATCH_OPS_MAX {
        return Err(Error::InvalidBatch {
            reason: "a batch holds at most 100 operations",
        });
    }
    if ops
        .iter()
        .any(|op| !matches!(op, Op::Move(_) | Op::Settle(_) | Op::Refund(_)))
    {
        return Err(Error::InvalidBatch {
            reason: "a batch holds only transfers, top-ups, withdrawals, payments, exchanges, captures, cancellations and refunds",
        });
    }
    Ok(())
}

/// The limits in force for a wallet.
pub(crate) fn limits_of(cmd: &Command, wallet: &WalletState, stored: Option<Limits>) -> Limits {
    stored.unwrap_or_else(|| {
        cmd.config
            .default_limits()
            .for_currency(wallet.record.currency)
    })
}

pub(super) fn set_limits(cmd: &Command, s: &SetLimits, state: &State) -> Result<Decision> {
    let (actor, _) = acting(cmd, state)?;
    let wallet = customer_wallet(state, 0)?;
    let currency = wallet.record.currency;
    let current = limits_of(cmd, wallet, state.limits);
    let defaults = cmd.config.default_limits().for_currency(currency);
    let new = match s.limits {
        Some((t, d, m)) => Limits::from_amounts(currency, t, d, m)?,
        None => defaults,
    };
    authorize(
        &actor,
        Action::SetLimits {
            owner: wallet.record.owner,
            raise: !new.within(&current),
        },
    )?;
    let stored = (new != defaults).then_some(new);
    Ok(Decision::Apply(Effects::SetLimits(
        wallet.record.id,
        stored,
    )))
}

pub(super) fn register_merchant(
    cmd: &Command,
    r: &RegisterMerchant,
    state: &State,
) -> Result<Decision> {
    let (actor, _) = acting(cmd, state)?;
    let wallet = customer_wallet(state, 0)?;
    authorize(
        &actor,
        Action::RegisterMerchant {
            owner: wallet.record.owner,
        },
    )?;
    if let Some(existing) = &state.merchant_of {
        return if existing.name == r.name {
            Ok(Decision::Done(Outcome::Merchant(existing.clone())))
        } else {
            Err(Error::MerchantRejected {
                reason: "the wallet is already a merchant",
            })
        };
    }
    if wallet.record.kind != AccountKind::Wallet(WalletKind::Business) {
        return Err(Error::MerchantRejected {
            reason: "only a BUSINESS wallet can be a merchant",
        });
    }
    super::money::usable(wallet)?;
    Ok(Decision::Apply(Effects::InsertMerchant(MerchantRecord {
        id: MerchantId::new(1)?,
        wallet: wallet.record.id,
        name: r.name.clone(),
        created_at: cmd.now,
    })))
}

/// The longest a payment link stays payable: 90 days.
pub const LINK_TTL_MAX_MICROS: i64 = 90 * 24 * 3600 * 1_000_000;

pub(super) fn create_link(cmd: &Command, c: &CreateLink, state: &State) -> Result<Decision> {
    let (actor, _) = acting(cmd, state)?;
    let fingerprint = cmd.fingerprint_or(|| c.fingerprint());
    if let Some(existing) = &state.link_existing {
        return if existing.fingerprint == fingerprint {
            Ok(Decision::Done(Outcome::Link(existing.to_link())))
        } else {
            Err(Error::IdempotencyConflict)
        };
    }
    let wallet = customer_wallet(state, 0)?;
    authorize(
        &actor,
        Action::ManageLink {
            owner: wallet.record.owner,
        },
    )?;
    super::money::usable(wallet)?;
    if c.ttl_micros <= 0 || c.ttl_micros > LINK_TTL_MAX_MICROS {
        return Err(Error::InvalidQuery {
            reason: "a link lasts from 1 microsecond to 90 days",
        });
    }
    if c.amount <= rust_decimal::Decimal::ZERO {
        return Err(Error::AmountNotPositive);
    }
    let currency = wallet.record.currency;
    let amount_minor = to_minor(c.amount, currency)?;
    super::money::check_bounds(cmd, currency, amount_minor)?;
    Ok(Decision::Apply(Effects::InsertLink(LinkRecord {
        id: 0,
        code: c.code,
        wallet: wallet.record.id,
        amount_minor,
        currency,
        description: c.description.clone(),
        status: LinkStatus::Active,
        expires_at: cmd.now.plus_micros(c.ttl_micros),
        paid_by: None,
        created_by: actor.user,
        idempotency_key: c.idempotency_key.clone(),
        fingerprint,
        created_at: cmd.now,
    })))
}

pub(super) fn cancel_link(cmd: &Command, state: &State) -> Result<Decision> {
    let (actor, _) = acting(cmd, state)?;
    let link = state.link.as_ref().ok_or(Error::LinkNotFound)?;
    let owner = state
        .wallets
        .iter()
        .flatten()
        .find(|w| w.record.id == link.wallet)
        .and_then(|w| w.record.owner);
    // A stranger learns nothing about a link they cannot manage.
    if authorize(&actor, Action::ManageLink { owner }).is_err() {
        return Err(Error::LinkNotFound);
    }
    match link.status_at(cmd.now) {
        LinkStatus::Cancelled => Ok(Decision::Done(Outcome::Link(link.to_link()))),
        LinkStatus::Active => {
            let mut after = link.clone();
            after.status = LinkStatus::Cancelled;
            Ok(Decision::Apply(Effects::UpdateLink(after)))
        }
        status => Err(Error::LinkNotPayable { status }),
    }
}

impl LinkRecord {
    /// The status at `now` (an ACTIVE link past its expiry is EXPIRED).
    pub fn status_at(&self, now: Timestamp) -> LinkStatus {
        self.status.at(self.expires_at, now)
    }
}

pub(super) fn mark_read(cmd: &Command, m: &MarkRead, state: &State) -> Result<Decision> {
    let (actor, _) = acting(cmd, state)?;
    authorize(&actor, Action::Notifications { user: m.user })?;
    if m.ids
        .as_ref()
        .is_some_and(|ids| ids.is_empty() || ids.len() > MARK_READ_MAX)
    {
        return Err(Error::InvalidQuery {
            reason: "name 1 to 200 notifications",
        });
    }
    Ok(Decision::Apply(Effects::MarkRead(m.clone())))
}
