//! The rules a ledger enforces that a host may tune.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use crate::calendar::TimeZone;
use crate::currency::{Currency, CurrencyCode, CurrencyRegistry};
use crate::error::{Error, Result};
use crate::fees::{FeeSchedule, RefundFeePolicy};
use crate::identity::KycPolicy;
use crate::limits::DefaultLimits;
use crate::money::Money;

/// Most currencies with their own amount bounds.
pub const BOUNDS_OVERRIDES_MAX: usize = 1024;

/// The smallest and largest amount one operation may move, in whole currency units.
///
/// Applied in the currency's minor units: a minimum finer than the currency allows rounds up to
/// one minor unit (0.01 becomes 1 for JPY), a maximum beyond 64-bit minor units is capped there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmountBounds {
    /// Smallest amount (inclusive), greater than zero.
    pub min: Decimal,
    /// Largest amount (inclusive), at least `min`.
    pub max: Decimal,
}

impl Default for AmountBounds {
    /// 0.01 to 1,000,000.00.
    fn default() -> Self {
        AmountBounds {
            min: Decimal::new(1, 2),
            max: Decimal::new(1_000_000, 0),
        }
    }
}

impl AmountBounds {
    /// Bounds from `min` to `max` inclusive.
    pub fn new(min: Decimal, max: Decimal) -> Result<Self> {
        let bounds = AmountBounds { min, max };
        bounds.validate()?;
        Ok(bounds)
    }

    fn validate(&self) -> Result<()> {
        if self.min <= Decimal::ZERO {
            return Err(Error::InvalidConfig {
                reason: "amount minimum must be greater than zero".into(),
            });
        }
        if self.max < self.min {
            return Err(Error::InvalidConfig {
                reason: "amount maximum must be at least the minimum".into(),
            });
        }
        Ok(())
    }

    /// The bounds in minor units of `currency`: `(min, max)`, both at least 1.
    pub fn in_minor(&self, currency: Currency) -> (Money, Money) {
        // The exponent is at most 18, and 10^18 fits in a u64.
        let scale = Decimal::from(10u64.pow(u32::from(currency.exponent())));
        let to_minor = |d: Decimal, round_up: bool| -> i64 {
            d.checked_mul(scale)
                .map(|s| if round_up { s.ceil() } else { s.floor() })
                .and_then(|s| s.to_i64())
                .unwrap_or(i64::MAX)
        };
        let min = to_minor(self.min, true).max(1);
        let max = to_minor(self.max, false).max(min);
        (
            Money::from_minor(min, currency),
            Money::from_minor(max, currency),
        )
    }
}

/// Configuration of a ledger: currencies and amount rules.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    currencies: CurrencyRegistry,
    amount_bounds: AmountBounds,
    amount_bounds_by_currency: BTreeMap<CurrencyCode, AmountBounds>,
    kyc: KycPolicy,
    fees: FeeSchedule,
    refund_fees: RefundFeePolicy,
    time_zone: TimeZone,
    timeouts: Timeouts,
    default_limits: DefaultLimits,
    exchange: ExchangeRates,
    /// Stored negated so the derived default (false) means "notifications on".
    quiet_transactions: bool,
}

const HOUR_MICROS: i64 = 3_600_000_000;

/// Most currency pairs with a reference rate.
pub const REFERENCE_RATES_MAX: usize = 4096;

/// Reference exchange rates that bound what callers may ask for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct ExchangeRates {
    rates: BTreeMap<(CurrencyCode, CurrencyCode), Decimal>,
    /// Largest relative deviation allowed, as a fraction (0.01 = 1%); `None`: 1%.
    tolerance: Option<Decimal>,
}

/// How long pending things wait, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Timeouts {
    hold_default: i64,
    hold_max: i64,
    pending_top_up: i64,
}

impl Default for Timeouts {
    /// Holds last 7 days unless asked otherwise, 30 at most; a pending top-up fails after 24 h.
    fn default() -> Self {
        Timeouts {
            hold_default: 7 * 24 * HOUR_MICROS,
            hold_max: 30 * 24 * HOUR_MICROS,
            pending_top_up: 24 * HOUR_MICROS,
        }
    }
}

/// The longest any configurable timeout may be: 366 days.
pub const TIMEOUT_MAX_MICROS: i64 = 366 * 24 * HOUR_MICROS;

fn check_timeout(micros: i64, what: &str) -> Result<i64> {
    if micros <= 0 || micros > TIMEOUT_MAX_MICROS {
        return Err(Error::InvalidConfig {
            reason: format!("{what} must be between 1 microsecond and 366 days"),
        });
    }
    Ok(micros)
}

impl Config {
    /// ISO 4217 currencies, amounts from 0.01 to 1,000,000.00 per operation.
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses `registry` for currencies (to add custom assets).
    pub fn with_currencies(mut self, registry: CurrencyRegistry) -> Self {
        self.currencies = registry;
        self
    }

    /// Sets the default per-operation amount bounds.
    pub fn with_amount_bounds(mut self, bounds: AmountBounds) -> Result<Self> {
        bounds.validate()?;
        self.amount_bounds = bounds;
        Ok(self)
    }

    /// Sets per-operation amount bounds for one currency.
    pub fn with_currency_amount_bounds(mut self, code: &str, bounds: AmountBounds) -> Result<Self> {
        bounds.validate()?;
        let currency = self.currencies.get(code)?;
        if self.amount_bounds_by_currency.len() >= BOUNDS_OVERRIDES_MAX
            && !self
                .amount_bounds_by_currency
                .contains_key(&currency.code())
        {
            return Err(Error::InvalidConfig {
                reason: "too many per-currency bounds".into(),
            });
        }
        self.amount_bounds_by_currency
            .insert(currency.code(), bounds);
        Ok(self)
    }

    /// Sets what users whose KYC status is not VERIFIED may do.
    pub fn with_kyc_policy(mut self, policy: KycPolicy) -> Self {
        self.kyc = policy;
        self
    }

    /// What users whose KYC status is not VERIFIED may do.
    pub fn kyc_policy(&self) -> KycPolicy {
        self.kyc
    }

    /// Sets the fee schedule (fees are collected into each currency's FEE_REVENUE account).
    pub fn with_fees(mut self, fees: FeeSchedule) -> Self {
        self.fees = fees;
        self
    }

    /// The fee schedule.
    pub fn fees(&self) -> &FeeSchedule {
        &self.fees
    }

    /// Sets what happens to the fee of a refunded transaction.
    pub fn with_refund_fee_policy(mut self, policy: RefundFeePolicy) -> Self {
        self.refund_fees = policy;
        self
    }

    /// What happens to the fee of a refunded transaction (default: retained).
    pub fn refund_fee_policy(&self) -> RefundFeePolicy {
        self.refund_fees
    }

    /// Sets the time zone whose calendar days and months limit windows and reports follow.
    pub fn with_time_zone(mut self, zone: TimeZone) -> Self {
        self.time_zone = zone;
        self
    }

    /// The time zone of limit windows and reports (default UTC).
    pub fn time_zone(&self) -> &TimeZone {
        &self.time_zone
    }

    /// Sets the limits of wallets that have none of their own (whole units of each wallet's
    /// currency; default 25,000 / 50,000 / 500,000).
    pub fn with_default_limits(mut self, limits: DefaultLimits) -> Result<Self> {
        limits.validate()?;
        self.default_limits = limits;
        Ok(self)
    }

    /// The limits of wallets that have none of their own.
    pub fn default_limits(&self) -> &DefaultLimits {
        &self.default_limits
    }

    /// Sets the reference rate of `from` → `to` (units of `to` per unit of `from`). An
    /// exchange is refused unless its pair has a reference rate and the caller's rate is within
    /// the tolerance of it: a caller's rate alone must never be able to mint money.
    pub fn with_reference_rate(mut self, from: &str, to: &str, rate: Decimal) -> Result<Self> {
        let (from, to) = (self.currencies.get(from)?, self.currencies.get(to)?);
        if rate <= Decimal::ZERO || from.code() == to.code() {
            return Err(Error::InvalidConfig {
                reason: "a reference rate is positive and between two currencies".into(),
            });
        }
        if self.exchange.rates.len() >= REFERENCE_RATES_MAX {
            return Err(Error::InvalidConfig {
                reason: "too many reference rates".into(),
            });
        }
        self.exchange.rates.insert((from.code(), to.code()), rate);
        Ok(self)
    }

    /// Sets how far (a fraction: 0.01 is 1%, the default) a caller's rate may stray from the
    /// reference rate.
    pub fn with_rate_tolerance(mut self, tolerance: Decimal) -> Result<Self> {
        if tolerance < Decimal::ZERO || tolerance > Decimal::ONE {
            return Err(Error::InvalidConfig {
                reason: "a rate tolerance is between 0 and 1".into(),
            });
        }
        self.exchange.tolerance = Some(tolerance);
        Ok(self)
    }

    /// Checks a caller's exchange rate against the reference rate of its pair.
    pub fn check_rate(&self, from: CurrencyCode, to: CurrencyCode, rate: Decimal) -> Result<()> {
        let reference = self
            .exchange
            .rates
            .get(&(from, to))
            .ok_or(Error::InvalidRate {
                reason: "no reference rate is configured for this currency pair",
            })?;
        let tolerance = self.exchange.tolerance.unwrap_or(Decimal::new(1, 2));
        let allowed = reference.checked_mul(tolerance).ok_or(Error::InvalidRate {
            reason: "rate out of range",
        })?;
        let deviation =
            rate.checked_sub(*reference)
                .map(|d| d.abs())
                .ok_or(Error::InvalidRate {
                    reason: "rate out of range",
                })?;
        if deviation > allowed {
            return Err(Error::InvalidRate {
                reason: "the rate strays from the reference rate by more than the tolerance",
            });
        }
        Ok(())
    }

    /// Sets how long holds last by default and at most, in microseconds.
    pub fn with_hold_ttl(mut self, default_micros: i64, max_micros: i64) -> Result<Self> {
        let default = check_timeout(default_micros, "the default hold time")?;
        let max = check_timeout(max_micros, "the longest hold time")?;
        if default > max {
            return Err(Error::InvalidConfig {
                reason: "the default hold time exceeds the longest".into(),
            });
        }
        self.timeouts.hold_default = default;
        self.timeouts.hold_max = max;
        Ok(self)
    }

    /// Sets how long a top-up waits for its gateway before it fails, in microseconds.
    pub fn with_pending_timeout(mut self, micros: i64) -> Result<Self> {
        self.timeouts.pending_top_up = check_timeout(micros, "the pending top-up timeout")?;
        Ok(self)
    }

    /// How long a hold lasts unless the caller says (default 7 days).
    pub fn hold_ttl_default_micros(&self) -> i64 {
        self.timeouts.hold_default
    }

    /// The longest a hold may last (default 30 days).
    pub fn hold_ttl_max_micros(&self) -> i64 {
        self.timeouts.hold_max
    }

    /// How long a top-up waits for its gateway (default 24 hours).
    pub fn pending_timeout_micros(&self) -> i64 {
        self.timeouts.pending_top_up
    }

    /// Turns in-app notifications of money movements off (`false`) or on (the default). The
    /// event feed records every movement either way; security notifications are always kept.
    pub fn with_transaction_notifications(mut self, on: bool) -> Self {
        self.quiet_transactions = !on;
        self
    }

    /// Whether money movements leave in-app notifications.
    pub fn transaction_notifications(&self) -> bool {
        !self.quiet_transactions
    }

    /// The currency registry.
    pub fn currencies(&self) -> &CurrencyRegistry {
        &self.currencies
    }

    /// The amount bounds that apply to `currency`, in its minor units.
    pub fn bounds_for(&self, currency: Currency) -> (Money, Money) {
        self.amount_bounds_by_currency
            .get(&currency.code())
            .unwrap_or(&self.amount_bounds)
            .in_minor(currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn minor(c: &Config, code: &str) -> (i64, i64) {
        let cur = c.currencies().get(code).unwrap();
        let (lo, hi) = c.bounds_for(cur);
        (lo.minor(), hi.minor())
    }

    #[test]
    fn default_bounds_per_currency() {
        let c = Config::new();
        assert_eq!(minor(&c, "USD"), (1, 100_000_000));
        assert_eq!(minor(&c, "JPY"), (1, 1_000_000), "0.01 rounds up to 1 yen");
        assert_eq!(minor(&c, "BHD"), (10, 1_000_000_000));
    }

    #[test]
    fn huge_exponent_caps_at_i64() {
        let reg = CurrencyRegistry::new().with("WEI", 18).unwrap();
        let c = Config::new().with_currencies(reg);
        assert_eq!(minor(&c, "WEI"), (10_000_000_000_000_000, i64::MAX));
    }

    #[test]
    fn overrides_and_validation() {
        let c = Config::new()
            .with_currency_amount_bounds("usd", AmountBounds::new(dec!(5), dec!(10)).unwrap())
            .unwrap();
        assert_eq!(minor(&c, "USD"), (500, 1000));
        assert_eq!(minor(&c, "EUR"), (1, 100_000_000));
        assert_eq!(
            AmountBounds::new(dec!(0), dec!(1)).unwrap_err().code(),
            "invalid_config"
        );
        assert_eq!(
            AmountBounds::new(dec!(2), dec!(1)).unwrap_err().code(),
            "invalid_config"
        );
        assert_eq!(
            Config::new()
                .with_currency_amount_bounds("NOPE", AmountBounds::default())
                .unwrap_err()
                .code(),
            "unknown_currency"
        );
    }
}
