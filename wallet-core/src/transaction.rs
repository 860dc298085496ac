//! Ledger transactions and their entries.

use serde::{Deserialize, Serialize};

use crate::actor::Actor;
use crate::ids::{TransactionId, TransactionRef, UserId, WalletId, WalletNumber};
use crate::money::Money;
use crate::text::{Description, IdempotencyKey, Metadata};
use crate::time::Timestamp;
use crate::wallet::{SystemAccount, code_enum};

code_enum!(
    /// What a transaction does.
    TransactionKind {
        /// Money added to a wallet from outside.
        TopUp = ("TOP_UP", 1),
        /// Money taken out of a wallet to outside.
        Withdrawal = ("WITHDRAWAL", 2),
        /// Money moved between two wallets.
        Transfer = ("TRANSFER", 3),
        /// A payment to a merchant (by order) or of a payment link.
        Payment = ("PAYMENT", 4),
        /// Money returned from a completed transaction.
        Refund = ("REFUND", 5),
        /// Money converted between two wallets of one owner in different currencies.
        Exchange = ("EXCHANGE", 6),
    }
);

code_enum!(
    /// Where a transaction is in its life.
    TransactionStatus {
        /// Accepted, waiting for confirmation; no money has moved.
        Pending = ("PENDING", 1),
        /// Posted: its entries are in the ledger.
        Completed = ("COMPLETED", 2),
        /// Did not happen.
        Failed = ("FAILED", 3),
        /// Withdrawn before it completed.
        Cancelled = ("CANCELLED", 4),
        /// Wholly reversed by refunds.
        Refunded = ("REFUNDED", 5),
        /// Partly reversed by refunds.
        PartiallyRefunded = ("PARTIALLY_REFUNDED", 6),
        /// A hold or pending top-up that passed its expiry without completing.
        Expired = ("EXPIRED", 7),
    }
);

/// One leg of a transaction: what it did to one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leg {
    /// The account.
    pub wallet: WalletId,
    /// Its number.
    pub wallet_number: WalletNumber,
    /// Set when the account is a system account rather than a customer wallet.
    pub system: Option<SystemAccount>,
    /// Owner of the account (`None` for system accounts).
    pub owner: Option<UserId>,
    /// Signed amount: positive credits the account, negative debits it.
    pub amount: Money,
    /// Position of this entry in the account's chain (1, 2, 3, …).
    pub seq: i64,
    /// Balance before this leg; `None` when hidden from the caller.
    pub balance_before: Option<Money>,
    /// Balance after this leg; `None` when hidden from the caller.
    pub balance_after: Option<Money>,
}

/// A ledger transaction with all its legs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    /// Internal id.
    pub id: TransactionId,
    /// Human reference (`TXN-…`).
    pub reference: TransactionRef,
    /// Kind.
    pub kind: TransactionKind,
    /// Status.
    pub status: TransactionStatus,
    /// The amount moved (positive).
    pub amount: Money,
    /// Caller's description.
    pub description: Option<Description>,
    /// Caller's metadata.
    pub metadata: Option<Metadata>,
    /// The user who initiated it.
    pub initiated_by: UserId,
    /// The idempotency key it was submitted with.
    pub idempotency_key: IdempotencyKey,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it completed, if it has: when its entries were posted.
    pub completed_at: Option<Timestamp>,
    /// How much of it has been refunded so far.
    pub refunded: Money,
    /// For a refund: the transaction it reverses.
    pub original: Option<TransactionRef>,
    /// For a hold or a pending top-up: what is reserved, until when, and the gateway reference.
    pub pending: Option<PendingDetails>,
    /// Its entries, in posting order. They sum to zero in each currency.
    pub legs: Vec<Leg>,
}

/// What a transaction that is, or was, PENDING carries besides its entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingDetails {
    /// The wallet whose money is held (a hold) or that will be credited (a pending top-up).
    pub wallet: WalletNumber,
    /// Money reserved now (amount plus fee while a hold is open; zero once it is resolved and
    /// for top-ups).
    pub held: Money,
    /// When it expires if still pending.
    pub expires_at: Timestamp,
    /// The payment gateway's reference (pending top-ups).
    pub gateway_ref: Option<crate::text::ExternalRef>,
}

impl TransactionStatus {
    /// Whether a transaction in this status has its entries in the ledger.
    pub fn is_posted(self) -> bool {
        matches!(
            self,
            TransactionStatus::Completed
                | TransactionStatus::Refunded
                | TransactionStatus::PartiallyRefunded
        )
    }
}

impl Transaction {
    /// Hides what `actor` may not see: balances of accounts it does not own. Admins see all.
    pub fn redacted_for(mut self, actor: &Actor) -> Self {
        if !actor.is_admin() {
            for leg in &mut self.legs {
                if leg.owner != Some(actor.user) {
                    leg.balance_before = None;
                    leg.balance_after = None;
                }
            }
        }
        self
    }

    /// Whether `user` started this transaction or owns an account it touched.
    pub fn involves(&self, user: UserId) -> bool {
        self.initiated_by == user || self.legs.iter().any(|l| l.owner == Some(user))
    }
}

impl Receipt {
    /// The receipt as `actor` may see it (see [`Transaction::redacted_for`]).
    pub fn redacted_for(self, actor: &Actor) -> Self {
        Receipt {
            transaction: self.transaction.redacted_for(actor),
            replayed: self.replayed,
        }
    }
}

/// The result of a money movement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The transaction.
    pub transaction: Transaction,
    /// True when this call replayed an earlier one with the same idempotency key: nothing new
    /// was posted and the transaction is the one the first call created.
    pub replayed: bool,
}
