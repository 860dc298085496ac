//! Wallets and system accounts.

use serde::{Deserialize, Serialize};

use crate::currency::Currency;
use crate::error::{Error, Result};
use crate::ids::{UserId, WalletId, WalletNumber};
use crate::money::Money;
use crate::time::Timestamp;

macro_rules! code_enum {
    (
        $(#[$doc:meta])* $name:ident { $( $(#[$vdoc:meta])* $variant:ident = ($code:literal, $db:literal) ),+ $(,)? }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        pub enum $name { $( $(#[$vdoc])* $variant ),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stable upper-case name (`"ACTIVE"`).
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $code),+ }
            }

            /// The stable small integer stored by backends.
            pub fn to_db(self) -> i64 {
                match self { $($name::$variant => $db),+ }
            }

            /// Reads a stored integer; anything else is corrupt data.
            pub fn from_db(value: i64) -> $crate::error::Result<Self> {
                match value {
                    $($db => Ok($name::$variant),)+
                    other => Err($crate::error::Error::corrupt(format!(concat!("unknown ", stringify!($name), " {}"), other))),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::error::Error;
            fn from_str(s: &str) -> $crate::error::Result<Self> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str().eq_ignore_ascii_case(s))

                    .ok_or($crate::error::Error::InvalidQuery { reason: concat!("unknown ", stringify!($name)) })
            }
        }
    };
}
pub(crate) use code_enum;

code_enum!(
    /// What a customer wallet is for. A user has at most one wallet per kind and currency.
    WalletKind {
        /// Everyday personal money.
        Personal = ("PERSONAL", 1),
        /// A business's money; merchants receive payments here.
        Business = ("BUSINESS", 2),
        /// Savings.
        Savings = ("SAVINGS", 3),
    }
);

code_enum!(
    /// Lifecycle status of a wallet. Only ACTIVE wallets move money.
    WalletStatus {
        /// Usable.
        Active = ("ACTIVE", 1),
        /// Switched off, for example by its owner's request.
        Inactive = ("INACTIVE", 2),
        /// Temporarily stopped, for example during an investigation.
        Frozen = ("FROZEN", 3),
        /// Stopped for a compliance or fraud reason.
        Blocked = ("BLOCKED", 4),
        /// Closed for good (only when empty). Terminal.
        Closed = ("CLOSED", 5),
    }
);

code_enum!(
    /// The ledger's own accounts, one of each per currency. Money enters and leaves the
    /// ledger through them, so every currency's balances always sum to exactly zero.
    SystemAccount {
        /// The outside world: top-ups are debited here, withdrawals credited.
        External = ("EXTERNAL", 101),
        /// Where fees are collected.
        FeeRevenue = ("FEE_REVENUE", 102),
        /// The other side of currency exchanges: money of one currency leaves through it and
        /// money of another enters through it, so each currency's ledger stays balanced.
        Exchange = ("EXCHANGE", 103),
    }
);

impl WalletStatus {
    /// Whether a wallet may go from `self` to `to`. Any open status may change to any other;
    /// CLOSED is terminal. Staying in the same status is allowed (a no-op).
    pub fn can_become(self, to: WalletStatus) -> bool {
        self == to || self != WalletStatus::Closed
    }

    /// The error for trying to move money through a wallet in this status, if it is not ACTIVE.
    pub fn money_error(self, wallet: WalletNumber) -> Option<Error> {
        match self {
            WalletStatus::Active => None,
            WalletStatus::Inactive => Some(Error::WalletInactive { wallet }),
            WalletStatus::Frozen => Some(Error::WalletFrozen { wallet }),
            WalletStatus::Blocked => Some(Error::WalletBlocked { wallet }),
            WalletStatus::Closed => Some(Error::WalletClosed { wallet }),
        }
    }
}

/// Whether an account is a customer wallet or one of the ledger's system accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    /// A customer wallet.
    Wallet(WalletKind),
    /// A system account.
    System(SystemAccount),
}

impl AccountKind {
    /// The stable integer stored by backends.
    pub fn to_db(self) -> i64 {
        match self {
            AccountKind::Wallet(k) => k.to_db(),
            AccountKind::System(s) => s.to_db(),
        }
    }

    /// Reads a stored integer.
    pub fn from_db(value: i64) -> Result<Self> {
        WalletKind::from_db(value)
            .map(AccountKind::Wallet)
            .or_else(|_| SystemAccount::from_db(value).map(AccountKind::System))
    }
}

/// A wallet as stored, without its balance: what never changes plus its status and holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletRecord {
    /// Internal id.
    pub id: WalletId,
    /// Owner; `None` for system accounts.
    pub owner: Option<UserId>,
    /// Customer wallet kind or system account.
    pub kind: AccountKind,
    /// Currency of every amount in the wallet.
    pub currency: Currency,
    /// Lifecycle status.
    pub status: WalletStatus,
    /// Money reserved by holds, in minor units (never negative, never above the balance).
    pub held_minor: i64,
    /// When it was opened.
    pub created_at: Timestamp,
    /// When its status or holds last changed.
    pub updated_at: Timestamp,
}

/// The latest point of a wallet's entry chain: what the next entry builds on.
///
/// Entries of a wallet are numbered 1, 2, 3, … (`seq`); each records the balance after it and
/// the running total of debits, so the head is all a command needs to post the next entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Sequence number of the latest entry (0 when there is none).
    pub seq: i64,
    /// Balance after the latest entry, minor units.
    pub balance_minor: i64,
    /// Running total of debits (as a wrapping unsigned sum stored in an `i64`).
    pub debits_minor: i64,
    /// Creation time of the latest entry's transaction (the wallet's creation time if none).
    pub last_at: Timestamp,
}

/// A wallet together with its head: everything a decision needs to know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletState {
    /// The stored record.
    pub record: WalletRecord,
    /// The latest entry.
    pub head: Head,
}

impl WalletState {
    /// A wallet with no entries yet.
    pub fn new_empty(record: WalletRecord) -> Self {
        let head = Head {
            seq: 0,
            balance_minor: 0,
            debits_minor: 0,
            last_at: record.created_at,
        };
        WalletState { record, head }
    }

    /// The public view of this wallet.
    pub fn to_wallet(&self) -> Wallet {
        let currency = self.record.currency;
        let balance = self.head.balance_minor;
        let held = self.record.held_minor;
        Wallet {
            id: self.record.id,
            number: WalletNumber::of(self.record.id),
            owner: self.record.owner,
            kind: self.record.kind,
            currency,
            status: self.record.status,
            balance: Money::from_minor(balance, currency),
            held: Money::from_minor(held, currency),
            // Held never exceeds balance (verify() checks it); saturate rather than fail a read.
            available: Money::from_minor(balance.saturating_sub(held), currency),
            created_at: self.record.created_at,
            updated_at: self.record.updated_at,
        }
    }
}

/// A wallet as callers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wallet {
    /// Internal id.
    pub id: WalletId,
    /// Human number (`WLT-…`).
    pub number: WalletNumber,
    /// Owner (`None` for system accounts).
    pub owner: Option<UserId>,
    /// Kind.
    pub kind: AccountKind,
    /// Currency.
    pub currency: Currency,
    /// Lifecycle status.
    pub status: WalletStatus,
    /// Posted balance.
    pub balance: Money,
    /// Reserved by holds.
    pub held: Money,
    /// Balance minus held: what can be spent now.
    pub available: Money,
    /// When it was opened.
    pub created_at: Timestamp,
    /// When its status or holds last changed.
    pub updated_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn db_codes_round_trip_and_are_distinct() {
        let mut seen = std::collections::HashSet::new();
        for k in WalletKind::ALL {
            assert_eq!(
                AccountKind::from_db(k.to_db()).unwrap(),
                AccountKind::Wallet(*k)
            );
            assert!(seen.insert(k.to_db()));
        }
        for s in SystemAccount::ALL {
            assert_eq!(
                AccountKind::from_db(s.to_db()).unwrap(),
                AccountKind::System(*s)
            );
            assert!(seen.insert(s.to_db()));
        }
        for s in WalletStatus::ALL {
            assert_eq!(WalletStatus::from_db(s.to_db()).unwrap(), *s);
        }
        assert_eq!(
            WalletStatus::from_db(99).unwrap_err().code(),
            "storage_corrupt"
        );
        assert_eq!(
            AccountKind::from_db(0).unwrap_err().code(),
            "storage_corrupt"
        );
    }

    #[test]
    fn names_parse_case_insensitively() {
        assert_eq!(
            "frozen".parse::<WalletStatus>().unwrap(),
            WalletStatus::Frozen
        );
        assert_eq!(
            "SAVINGS".parse::<WalletKind>().unwrap(),
            WalletKind::Savings
        );
        assert!("nope".parse::<WalletKind>().is_err());
        assert_eq!(
            serde_json::to_string(&WalletStatus::Frozen).unwrap(),
            "\"FROZEN\""
        );
    }

    #[test]
    fn closed_is_terminal() {
        for s in WalletStatus::ALL {
            assert_eq!(
                WalletStatus::Closed.can_become(*s),
                *s == WalletStatus::Closed
            );
            assert!(s.can_become(*s));
        }
        assert!(WalletStatus::Frozen.can_become(WalletStatus::Active));
    }
}
