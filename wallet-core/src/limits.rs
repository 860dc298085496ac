//! Per-wallet spending limits.
//!
//! Spend is never counted in a counter that could drift from the ledger: the store derives it
//! from the wallet's entries (their running debit totals) over the calendar day and month of
//! the configured time zone, plus the money the wallet's open holds reserve.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::currency::Currency;
use crate::error::{Error, Result};
use crate::money::{Money, to_minor};
use crate::wallet::code_enum;

code_enum!(
    /// Which of a wallet's limits.
    LimitKind {
        /// The most one operation may take out.
        PerTransaction = ("PER_TRANSACTION", 1),
        /// The most that may go out in one calendar day.
        Daily = ("DAILY", 2),
        /// The most that may go out in one calendar month.
        Monthly = ("MONTHLY", 3),
    }
);

/// A wallet's outgoing limits, in minor units of its currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limits {
    /// The most one operation may take out.
    pub per_transaction: i64,
    /// The most that may go out in one calendar day.
    pub daily: i64,
    /// The most that may go out in one calendar month.
    pub monthly: i64,
}

/// Default limits in whole units of the wallet's currency: 25,000 per transaction, 50,000 a
/// day, 500,000 a month.
pub const DEFAULT_LIMITS: (i64, i64, i64) = (25_000, 50_000, 500_000);

/// The limits of wallets that have none of their own, in whole units of each wallet's
/// currency (a host may change them; see [`crate::Config::with_default_limits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultLimits {
    /// Per transaction.
    pub per_transaction: Decimal,
    /// Per calendar day.
    pub daily: Decimal,
    /// Per calendar month.
    pub monthly: Decimal,
}

impl Default for DefaultLimits {
    /// 25,000 / 50,000 / 500,000.
    fn default() -> Self {
        let (t, d, m) = DEFAULT_LIMITS;
        DefaultLimits {
            per_transaction: Decimal::from(t),
            daily: Decimal::from(d),
            monthly: Decimal::from(m),
        }
    }
}

impl DefaultLimits {
    /// Checks the defaults: whole units, none negative, per transaction ≤ daily ≤ monthly.
    pub fn validate(&self) -> Result<()> {
        let values = [self.per_transaction, self.daily, self.monthly];
        if values
            .iter()
            .any(|v| v.is_sign_negative() || !v.fract().is_zero())
        {
            return Err(Error::InvalidLimits {
                reason: "default limits are whole, non-negative amounts",
            });
        }
        if self.per_transaction > self.daily || self.daily > self.monthly {
            return Err(Error::InvalidLimits {
                reason: "limits must satisfy per transaction <= daily <= monthly",
            });
        }
        Ok(())
    }

    /// The defaults in `currency`'s minor units (capped at the largest representable amount).
    pub fn for_currency(&self, currency: Currency) -> Limits {
        let minor = |units: Decimal| to_minor(units, currency).unwrap_or(i64::MAX);
        Limits {
            per_transaction: minor(self.per_transaction),
            daily: minor(self.daily),
            monthly: minor(self.monthly),
        }
    }
}

impl Limits {
    /// The built-in default limits in `currency` (capped at the largest representable
    /// amount).
    pub fn default_for(currency: Currency) -> Self {
        DefaultLimits::default().for_currency(currency)
    }

    /// Limits from amounts in whole units of `currency`, checked: none negative, none finer
    /// than the currency, per transaction ≤ daily ≤ monthly.
    pub fn from_amounts(
        currency: Currency,
        per_transaction: Decimal,
        daily: Decimal,
        monthly: Decimal,
    ) -> Result<Self> {
        let minor = |d: Decimal| -> Result<i64> {
            if d.is_sign_negative() && !d.is_zero() {
                return Err(Error::InvalidLimits {
                    reason: "limits cannot be negative",
                });
            }
            to_minor(d, currency)
        };
        let limits = Limits {
            per_transaction: minor(per_transaction)?,
            daily: minor(daily)?,
            monthly: minor(monthly)?,
        };
        limits.validate()?;
        Ok(limits)
    }

    /// Checks the limits are ordered and not negative.
    pub fn validate(&self) -> Result<()> {
        if self.per_transaction < 0 || self.daily < 0 || self.monthly < 0 {
            return Err(Error::InvalidLimits {
                reason: "limits cannot be negative",
            });
        }
        if self.per_transaction > self.daily || self.daily > self.monthly {
            return Err(Error::InvalidLimits {
                reason: "limits must satisfy per transaction <= daily <= monthly",
            });
        }
        Ok(())
    }

    /// Whether every limit of `self` is at most the same limit of `other` (a lowering, or no
    /// change, which an owner may make alone).
    pub fn within(&self, other: &Limits) -> bool {
        self.per_transaction <= other.per_transaction
            && self.daily <= other.daily
            && self.monthly <= other.monthly
    }

    /// The limit of one kind.
    pub fn get(&self, kind: LimitKind) -> i64 {
        match kind {
            LimitKind::PerTransaction => self.per_transaction,
            LimitKind::Daily => self.daily,
            LimitKind::Monthly => self.monthly,
        }
    }

    /// Checks taking out `amount` more, when `spent_today` and `spent_this_month` already went
    /// out (holds included). The error names the limit and what remains under it.
    pub fn check(
        &self,
        currency: Currency,
        amount: i64,
        spent_today: i64,
        spent_this_month: i64,
    ) -> Result<()> {
        let checks = [
            (LimitKind::PerTransaction, 0),
            (LimitKind::Daily, spent_today),
            (LimitKind::Monthly, spent_this_month),
        ];
        for (kind, spent) in checks {
            let limit = self.get(kind);
            let remaining = limit.saturating_sub(spent).max(0);
            if amount > remaining {
                return Err(Error::LimitExceeded {
                    limit: kind,
                    remaining: Money::from_minor(remaining, currency),
                });
            }
        }
        Ok(())
    }
}

/// A wallet's limits as callers see them, with what has been spent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalletLimits {
    /// The most one operation may take out.
    pub per_transaction: Money,
    /// The most that may go out in one calendar day.
    pub daily: Money,
    /// The most that may go out in one calendar month.
    pub monthly: Money,
    /// What went out today (open holds included).
    pub spent_today: Money,
    /// What went out this month (open holds included).
    pub spent_this_month: Money,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn defaults_follow_the_currency() {
        let usd = Currency::iso("USD").unwrap();
        let jpy = Currency::iso("JPY").unwrap();
        assert_eq!(
            Limits::default_for(usd),
            Limits {
                per_transaction: 2_500_000,
                daily: 5_000_000,
                monthly: 50_000_000
            }
        );
        assert_eq!(Limits::default_for(jpy).daily, 50_000);
    }

    #[test]
    fn validation() {
        let usd = Currency::iso("USD").unwrap();
        assert!(Limits::from_amounts(usd, dec!(10), dec!(20), dec!(30)).is_ok());
        assert!(Limits::from_amounts(usd, dec!(0), dec!(0), dec!(0)).is_ok());
        for (t, d, m) in [
            (dec!(-1), dec!(20), dec!(30)),
            (dec!(30), dec!(20), dec!(30)),
            (dec!(10), dec!(40), dec!(30)),
        ] {
            assert_eq!(
                Limits::from_amounts(usd, t, d, m).unwrap_err().code(),
                "invalid_limits"
            );
        }
        assert_eq!(
            Limits::from_amounts(usd, dec!(0.001), dec!(1), dec!(1))
                .unwrap_err()
                .code(),
            "amount_precision"
        );
    }

    #[test]
    fn check_names_the_limit_and_what_remains() {
        let usd = Currency::iso("USD").unwrap();
        let l = Limits {
            per_transaction: 100,
            daily: 150,
            monthly: 1000,
        };
        assert!(l.check(usd, 100, 50, 50).is_ok());
        assert_eq!(
            l.check(usd, 101, 0, 0),
            Err(Error::LimitExceeded {
                limit: LimitKind::PerTransaction,
                remaining: Money::from_minor(100, usd)
            })
        );
        assert_eq!(
            l.check(usd, 60, 100, 100),
            Err(Error::LimitExceeded {
                limit: LimitKind::Daily,
                remaining: Money::from_minor(50, usd)
            })
        );
        assert_eq!(
            l.check(usd, 10, 0, 995),
            Err(Error::LimitExceeded {
                limit: LimitKind::Monthly,
                remaining: Money::from_minor(5, usd)
            })
        );
        // Spend above the limit (the limit was lowered later): nothing remains, not a negative.
        assert_eq!(
            l.check(usd, 1, 200, 200),
            Err(Error::LimitExceeded {
                limit: LimitKind::Daily,
                remaining: Money::from_minor(0, usd)
            })
        );
        assert!(l.within(&Limits::default_for(usd)));
        assert!(!Limits::default_for(usd).within(&l));
    }
}
