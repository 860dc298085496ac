//! Admin views: the dashboard and filtered, paginated lists of users, wallets and
//! transactions. Backends answer them with indexed queries and keyset pagination, never by
//! loading every row.

use serde::{Deserialize, Serialize};

use crate::actor::Role;
use crate::currency::CurrencyCode;
use crate::error::{Error, Result};
use crate::identity::{KycStatus, User};
use crate::ids::{TransactionId, UserId, WalletId};
use crate::money::Money;
use crate::time::Timestamp;
use crate::transaction::{Transaction, TransactionKind, TransactionStatus};
use crate::wallet::{Wallet, WalletKind, WalletStatus};

/// Largest page of any admin list.
pub const PAGE_MAX: u32 = 200;

/// Checks a page size and a date range.
pub fn check_page(limit: u32, since: Option<Timestamp>, until: Option<Timestamp>) -> Result<()> {
    if limit == 0 || limit > PAGE_MAX {
        return Err(Error::InvalidQuery {
            reason: "page size must be 1 to 200",
        });
    }
    if let (Some(a), Some(b)) = (since, until)
        && a >= b
    {
        return Err(Error::InvalidQuery {
            reason: "the date range is empty",
        });
    }
    Ok(())
}

/// One page of a list, newest first; `next` continues after its last item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page<T, C> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `before` to get the next page; `None` on the last page.
    pub next: Option<C>,
}

impl<T, C> Page<T, C> {
    /// Cuts a list fetched with one item more than `limit` (newest first) into a page: the
    /// extra item only tells that another page exists, and the page's last key continues it.
    /// Every backend pages this way, so each fetches `limit + 1` rows and calls this.
    pub fn from_overfetch(mut items: Vec<T>, limit: u32, key: impl Fn(&T) -> C) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(key)
        } else {
            None
        };
        Page { items, next }
    }
}

/// Filters of the user list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserQuery {
    /// Only this role.
    pub role: Option<Role>,
    /// Only this KYC status.
    pub kyc: Option<KycStatus>,
    /// Only active (`true`) or inactive (`false`) users.
    pub active: Option<bool>,
    /// Include deleted users.
    pub include_deleted: bool,
    /// Only users with a smaller id (the previous page's `next`).
    pub before: Option<UserId>,
    /// Page size, 1 to [`PAGE_MAX`].
    pub limit: u32,
}

/// Filters of the wallet list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalletQuery {
    /// Only this status.
    pub status: Option<WalletStatus>,
    /// Only this kind.
    pub kind: Option<WalletKind>,
    /// Only this currency.
    pub currency: Option<CurrencyCode>,
    /// Only wallets with a smaller id.
    pub before: Option<WalletId>,
    /// Page size, 1 to [`PAGE_MAX`].
    pub limit: u32,
}

/// Filters of the transaction list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransactionQuery {
    /// Only this kind.
    pub kind: Option<TransactionKind>,
    /// Only this status.
    pub status: Option<TransactionStatus>,
    /// Only this currency.
    pub currency: Option<CurrencyCode>,
    /// Created at or after.
    pub since: Option<Timestamp>,
    /// Created before.
    pub until: Option<Timestamp>,
    /// Only transactions with a smaller id.
    pub before: Option<TransactionId>,
    /// Page size, 1 to [`PAGE_MAX`].
    pub limit: u32,
}

/// A page of users.
pub type UserPage = Page<User, UserId>;
/// A page of wallets.
pub type WalletPage = Page<Wallet, WalletId>;
/// A page of transactions (with every leg's balances, for admins).
pub type TransactionPage = Page<Transaction, TransactionId>;

/// Volume of completed money movements of one kind in one currency over a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// Kind of movement.
    pub kind: TransactionKind,
    /// How many.
    pub count: u64,
    /// Their total amount.
    pub amount: Money,
}

/// The admin dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dashboard {
    /// Undeleted users per role.
    pub users_by_role: Vec<(Role, u64)>,
    /// Undeleted users per KYC status.
    pub users_by_kyc: Vec<(KycStatus, u64)>,
    /// Customer wallets per status.
    pub wallets_by_status: Vec<(WalletStatus, u64)>,
    /// The money customers hold, per currency (the negated sum of the system accounts,
    /// which the double-entry invariant makes exact).
    pub total_balances: Vec<Money>,
    /// Completed movements per currency and kind in the period.
    pub volume: Vec<Volume>,
    /// Fees collected in the period, per currency (fee schedules arrive with the payments
    /// features; until then nothing is collected and this is empty).
    pub fee_revenue: Vec<Money>,
}

/// The period a dashboard's volume covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    /// From (inclusive).
    pub since: Timestamp,
    /// To (exclusive).
    pub until: Timestamp,
}

impl Period {
    /// A non-empty period.
    pub fn new(since: Timestamp, until: Timestamp) -> Result<Self> {
        if since >= until {
            return Err(Error::InvalidQuery {
                reason: "the date range is empty",
            });
        }
        Ok(Period { since, until })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overfetch_makes_a_page() {
        let full = Page::from_overfetch(vec![9, 8, 7], 2, |x| *x);
        assert_eq!(full.items, vec![9, 8]);
        assert_eq!(full.next, Some(8));
        let last = Page::from_overfetch(vec![9, 8], 2, |x| *x);
        assert_eq!(last.items, vec![9, 8]);
        assert_eq!(last.next, None);
        let empty = Page::<i32, i32>::from_overfetch(Vec::new(), 5, |x| *x);
        assert!(empty.items.is_empty() && empty.next.is_none());
    }
}
