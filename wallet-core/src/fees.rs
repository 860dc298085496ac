//! Fees, refunds of fees, and currency conversion: exact arithmetic, rounded once.
//!
//! Every amount here is `i64` minor units. Intermediate values are computed exactly (as
//! fractions of integers up to 256 bits wide), so the only rounding that ever happens is the
//! single, explicit [`Rounding`] step at the end; a result that does not fit in `i64` is
//! [`Error::AmountOverflow`], never a wrapped or approximated value.

use std::collections::BTreeMap;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::currency::{Currency, EXPONENT_MAX};
use crate::error::{Error, Result};
use crate::money::to_minor;
use crate::transaction::TransactionKind;

/// How a value that falls between two whole minor units is rounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Rounding {
    /// To the nearest; a value exactly halfway goes away from zero (2.5 → 3, −2.5 → −3).
    HalfUp,
    /// To the nearest; a value exactly halfway goes to the even neighbour (2.5 → 2, 3.5 → 4).
    HalfEven,
    /// Toward zero (2.9 → 2, −2.9 → −2).
    Down,
    /// Away from zero (2.1 → 3, −2.1 → −3).
    Up,
}

impl Rounding {
    /// Rounds `d` to an integer with this rule.
    pub fn round(self, d: Decimal) -> Decimal {
        d.round_dp_with_strategy(0, self.strategy())
    }

    fn strategy(self) -> RoundingStrategy {
        match self {
            Rounding::HalfUp => RoundingStrategy::MidpointAwayFromZero,
            Rounding::HalfEven => RoundingStrategy::MidpointNearestEven,
            Rounding::Down => RoundingStrategy::ToZero,
            Rounding::Up => RoundingStrategy::AwayFromZero,
        }
    }

    /// Rounds the non-negative fraction `quotient + remainder / divisor` to an integer, as
    /// the magnitude of a value of either sign (every rule here is symmetric about zero).
    /// `None` when the result does not fit in `u128`.
    fn round_magnitude(self, quotient: u128, remainder: u128, divisor: u128) -> Option<u128> {
        if remainder == 0 {
            return Some(quotient);
        }
        // remainder < divisor, so `divisor - remainder` is positive and compares the remainder
        // with half the divisor without overflowing.
        let rest = divisor.checked_sub(remainder)?;
        let up = match self {
            Rounding::Down => false,
            Rounding::Up => true,
            Rounding::HalfUp => remainder >= rest,
            Rounding::HalfEven => remainder > rest || (remainder == rest && quotient % 2 == 1),
        };
        if up {
            quotient.checked_add(1)
        } else {
            Some(quotient)
        }
    }
}

/// `a × b` as a 256-bit value `(high, low)`, where `a` is at most 64 bits wide.
fn widening_mul(a: u64, b: u128) -> (u128, u128) {
    let a = u128::from(a);
    let b_low = b & u128::from(u64::MAX);
    let b_high = b >> 64;
    // Each factor pair is at most 64 × 64 bits, so neither product overflows.
    let low_part = a * b_low;
    let high_part = a * b_high;
    let (low, carry) = low_part.overflowing_add(high_part << 64);
    // high_part >> 64 < 2^64, so adding a carry of 0 or 1 cannot overflow.
    let high = (high_part >> 64) + u128::from(carry);
    (high, low)
}

/// Exact `a × b / divisor`, as `(quotient, remainder)`. `None` when the divisor is zero or
/// 2^127 or more, or when the quotient does not fit in `u128`.
fn mul_div(a: u64, b: u128, divisor: u128) -> Option<(u128, u128)> {
    if divisor == 0 || divisor > u128::MAX >> 1 {
        return None;
    }
    let (high, low) = widening_mul(a, b);
    if high >= divisor {
        // The quotient would need more than 128 bits.
        return None;
    }
    // Binary long division of the low half, carrying the high half as the running remainder.
    // The remainder stays below the divisor (< 2^127), so shifting it left never overflows.
    let mut remainder = high;
    let mut quotient = 0u128;
    for bit in (0..128u32).rev() {
        remainder = (remainder << 1) | ((low >> bit) & 1);
        if remainder >= divisor {
            remainder -= divisor;
            quotient |= 1u128 << bit;
        }
    }
    Some((quotient, remainder))
}

/// `10^exp` as `u128`, if it fits.
fn pow10(exp: u32) -> Option<u128> {
    10u128.checked_pow(exp)
}

/// Rounds `magnitude × b / divisor` once and gives it the sign `negative`, as `i64`.
fn scaled(
    magnitude: u64,
    negative: bool,
    b: u128,
    divisor: u128,
    rounding: Rounding,
) -> Result<i64> {
    let (quotient, remainder) = mul_div(magnitude, b, divisor).ok_or(Error::AmountOverflow)?;
    let rounded = rounding
        .round_magnitude(quotient, remainder, divisor)
        .ok_or(Error::AmountOverflow)?;
    let signed = i128::try_from(rounded).map_err(|_| Error::AmountOverflow)?;
    let signed = if negative { -signed } else { signed };
    i64::try_from(signed).map_err(|_| Error::AmountOverflow)
}

/// The non-negative mantissa and the scale of `d`, which must not be negative.
fn unsigned_parts(d: Decimal) -> Option<(u128, u32)> {
    let mantissa = u128::try_from(d.mantissa()).ok()?;
    Some((mantissa, d.scale()))
}

fn invalid_config(reason: &str) -> Error {
    Error::InvalidConfig {
        reason: reason.to_owned(),
    }
}

/// How much a transaction of one kind costs: a fixed part plus a percentage of the principal,
/// rounded once and kept between a minimum and an optional maximum.
///
/// Amounts are in whole units of the transaction's currency (`2.50` is two dollars fifty for
/// USD); `percent` is a percentage (`1.5` is 1.5 %). See [`FeeRule::fee_minor`] for the formula.
///
/// The fields are public for convenience; [`FeeRule::fee_minor`] checks them again, so a rule
/// built or deserialized without [`FeeRule::new`] is refused rather than misapplied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FeeRule {
    /// Charged on every transaction, in whole currency units; at least zero.
    pub fixed: Decimal,
    /// Percentage of the principal, from 0 to 100 inclusive.
    pub percent: Decimal,
    /// The least fee charged, in whole currency units; at least zero.
    pub min: Decimal,
    /// The most fee charged, in whole currency units; at least `min` when set.
    pub max: Option<Decimal>,
    /// How the exact fee is rounded to a whole minor unit.
    pub rounding: Rounding,
}

impl FeeRule {
    /// A checked rule: `fixed ≥ 0`, `0 ≤ percent ≤ 100`, `min ≥ 0` and `max ≥ min` when set.
    /// Anything else is [`Error::InvalidConfig`].
    pub fn new(
        fixed: Decimal,
        percent: Decimal,
        min: Decimal,
        max: Option<Decimal>,
        rounding: Rounding,
    ) -> Result<Self> {
        let rule = FeeRule {
            fixed,
            percent,
            min,
            max,
            rounding,
        };
        rule.validate()?;
        Ok(rule)
    }

    fn validate(&self) -> Result<()> {
        if self.fixed.is_sign_negative() && !self.fixed.is_zero() {
            return Err(invalid_config("the fixed fee must not be negative"));
        }
        if self.percent.is_sign_negative() && !self.percent.is_zero() {
            return Err(invalid_config("the fee percentage must not be negative"));
        }
        if self.percent > Decimal::ONE_HUNDRED {
            return Err(invalid_config("the fee percentage must be at most 100"));
        }
        if self.min.is_sign_negative() && !self.min.is_zero() {
            return Err(invalid_config("the minimum fee must not be negative"));
        }
        if let Some(max) = self.max
            && max < self.min
        {
            return Err(invalid_config(
                "the maximum fee must not be below the minimum fee",
            ));
        }
        Ok(())
    }

    /// The fee, in minor units of `currency`, on a principal of `amount_minor` minor units.
    ///
    /// With `a` the principal and every amount in minor units:
    ///
    /// ```text
    /// fee = clamp(fixed + round(a × percent / 100), min, max)
    /// ```
    ///
    /// `a × percent / 100` is computed exactly and rounded once, with the rule's
    /// [`Rounding`], to a whole minor unit; since `fixed` is a whole number of minor units this
    /// is the same as rounding `fixed + a × percent / 100` once. The result is then raised to
    /// `min` and lowered to `max` (when set), so it is never negative.
    ///
    /// Errors: [`Error::AmountNotPositive`] unless `amount_minor > 0`;
    /// [`Error::InvalidConfig`] for a rule [`FeeRule::new`] would refuse;
    /// [`Error::AmountPrecision`] when `fixed`, `min` or `max` is finer than the currency's
    /// minor unit; [`Error::AmountOverflow`] when a value does not fit in `i64` minor units.
    pub fn fee_minor(&self, amount_minor: i64, currency: Currency) -> Result<i64> {
        if amount_minor <= 0 {
            return Err(Error::AmountNotPositive);
        }
        self.validate()?;
        let fixed = to_minor(self.fixed, currency)?;
        let min = to_minor(self.min, currency)?;
        let max = self.max.map(|m| to_minor(m, currency)).transpose()?;

        // percent / 100 = mantissa / 10^(scale + 2); the scale of a Decimal is at most 28, so
        // the divisor is at most 10^30 < 2^100.
        let (mantissa, scale) = unsigned_parts(self.percent)
            .ok_or_else(|| invalid_config("the fee percentage must not be negative"))?;
        let divisor = scale
            .checked_add(2)
            .and_then(pow10)
            .ok_or(Error::AmountOverflow)?;
        let variable = scaled(
            amount_minor.unsigned_abs(),
            false,
            mantissa,
            divisor,
            self.rounding,
        )?;

        // Both parts fit in i64, so their sum fits in i128; only the clamped fee must fit i64.
        let mut fee = i128::from(fixed) + i128::from(variable);
        fee = fee.max(i128::from(min));
        if let Some(max) = max {
            fee = fee.min(i128::from(max));
        }
        i64::try_from(fee).map_err(|_| Error::AmountOverflow)
    }
}

/// The fee rule of each transaction kind; a kind without a rule is free.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FeeSchedule {
    rules: BTreeMap<TransactionKind, FeeRule>,
}

impl FeeSchedule {
    /// A schedule with no fees.
    pub fn new() -> Self {
        Self::default()
    }

    /// This schedule with `rule` for `kind` (replacing any earlier rule for it).
    pub fn with(mut self, kind: TransactionKind, rule: FeeRule) -> Self {
        self.rules.insert(kind, rule);
        self
    }

    /// The rule for `kind`, if it has one.
    pub fn rule(&self, kind: TransactionKind) -> Option<&FeeRule> {
        self.rules.get(&kind)
    }

    /// The fee on a `kind` transaction of `amount_minor` minor units of `currency`: `0` when
    /// `kind` has no rule, otherwise [`FeeRule::fee_minor`]. The amount must be positive
    /// either way ([`Error::AmountNotPositive`]).
    pub fn fee_minor(
        &self,
        kind: TransactionKind,
        amount_minor: i64,
        currency: Currency,
    ) -> Result<i64> {
        if amount_minor <= 0 {
            return Err(Error::AmountNotPositive);
        }
        match self.rule(kind) {
            Some(rule) => rule.fee_minor(amount_minor, currency),
            None => Ok(0),
        }
    }

    /// Whether no kind has a rule.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// What happens to the fee of a transaction that is refunded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RefundFeePolicy {
    /// Fee revenue keeps the whole fee of a refunded transaction.
    #[default]
    Retain,
    /// The fee is returned in proportion to the amount refunded.
    Return,
}

/// The part of `original_fee` returned with a refund of `refund` minor units, after
/// `already_refunded` minor units of the `original_amount` principal were refunded before.
///
/// With [`RefundFeePolicy::Retain`] it is `0`. With [`RefundFeePolicy::Return`] the fee
/// returned after refunding `r` in total is `floor(fee × r / amount)`, so this refund returns
///
/// ```text
/// floor(fee × (already_refunded + refund) / amount) − floor(fee × already_refunded / amount)
/// ```
///
/// The parts returned by any sequence of refunds therefore add up to exactly the whole fee
/// once the whole amount has been refunded, and never to more.
///
/// Errors ([`Error::Internal`]: the caller must have checked these): a negative argument,
/// `refund ≤ 0`, or `already_refunded + refund > original_amount`.
pub fn refund_fee_minor(
    original_amount: i64,
    original_fee: i64,
    already_refunded: i64,
    refund: i64,
    policy: RefundFeePolicy,
) -> Result<i64> {
    if original_amount < 0 || original_fee < 0 || already_refunded < 0 {
        return Err(Error::internal(
            "refund fee: amount, fee and refunded so far must not be negative",
        ));
    }
    if refund <= 0 {
        return Err(Error::internal("refund fee: the refund must be positive"));
    }
    let amount = i128::from(original_amount);
    let before = i128::from(already_refunded);
    let after = before + i128::from(refund);
    if after > amount {
        return Err(Error::internal(
            "refund fee: refunds exceed the original amount",
        ));
    }
    match policy {
        RefundFeePolicy::Retain => Ok(0),
        RefundFeePolicy::Return => {
            // amount ≥ after ≥ refund > 0, and every product is below 2^126.
            let fee = i128::from(original_fee);
            let returned_after = fee * after / amount;
            let returned_before = fee * before / amount;
            i64::try_from(returned_after - returned_before)
                .map_err(|_| Error::internal("refund fee out of range"))
        }
    }
}

/// Largest exchange rate [`convert_minor`] accepts: 10^12 units of one currency per unit of
/// the other.
pub const RATE_MAX: Decimal = Decimal::from_parts(0xD4A5_1000, 0xE8, 0, false, 0);

/// Most decimal places an exchange rate may have.
pub const RATE_DECIMALS_MAX: u32 = 18;

/// Converts `amount_minor` minor units of `from` into minor units of `to` at `rate`, the
/// number of units of `to` one unit of `from` buys:
///
/// ```text
/// result = round(amount_minor / 10^from.exponent × rate × 10^to.exponent)
/// ```
///
/// computed exactly and rounded once with `rounding` (symmetrically about zero for negative
/// amounts).
///
/// Errors: [`Error::InvalidRate`] unless `0 < rate ≤ 10^12` with at most 18 decimal places
/// (trailing zeros do not count); [`Error::InvalidCurrency`] for a currency whose exponent
/// is above 18; [`Error::AmountOverflow`] when the result does not fit in `i64`.
pub fn convert_minor(
    amount_minor: i64,
    from: Currency,
    to: Currency,
    rate: Decimal,
    rounding: Rounding,
) -> Result<i64> {
    if rate.is_sign_negative() || rate.is_zero() {
        return Err(Error::InvalidRate {
            reason: "a rate must be greater than zero",
        });
    }
    if rate > RATE_MAX {
        return Err(Error::InvalidRate {
            reason: "a rate must be at most 1000000000000",
        });
    }
    let rate = rate.normalize();
    if rate.scale() > RATE_DECIMALS_MAX {
        return Err(Error::InvalidRate {
            reason: "a rate has at most 18 decimal places",
        });
    }
    if from.exponent() > EXPONENT_MAX || to.exponent() > EXPONENT_MAX {
        return Err(Error::InvalidCurrency {
            reason: "an exponent is at most 18",
        });
    }
    let (mantissa, scale) = unsigned_parts(rate).ok_or(Error::InvalidRate {
        reason: "a rate must be greater than zero",
    })?;
    if amount_minor == 0 {
        return Ok(0);
    }
    // result = amount × mantissa × 10^(to − scale − from): a multiplier when the exponent is
    // positive, a divisor (at most 10^36 < 2^120) otherwise.
    let up = u32::from(to.exponent());
    let down = scale + u32::from(from.exponent());
    let (multiplier, divisor) = if up >= down {
        let factor = pow10(up - down).ok_or(Error::AmountOverflow)?;
        (
            mantissa.checked_mul(factor).ok_or(Error::AmountOverflow)?,
            1,
        )
    } else {
        (mantissa, pow10(down - up).ok_or(Error::AmountOverflow)?)
    };
    scaled(
        amount_minor.unsigned_abs(),
        amount_minor < 0,
        multiplier,
        divisor,
        rounding,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::currency::CurrencyCode;
    use proptest::prelude::*;
    use rust_decimal_macros::dec;

    fn usd() -> Currency {
        Currency::iso("USD").unwrap()
    }

    fn with_exponent(exponent: u8) -> Currency {
        Currency::new(CurrencyCode::new("TST").unwrap(), exponent).unwrap()
    }

    const ALL_ROUNDINGS: [Rounding; 4] = [
        Rounding::HalfUp,
        Rounding::HalfEven,
        Rounding::Down,
        Rounding::Up,
    ];

    #[test]
    fn rounding_rules() {
        let cases = [
            // value, half up, half even, down, up
            (dec!(2.5), dec!(3), dec!(2), dec!(2), dec!(3)),
            (dec!(3.5), dec!(4), dec!(4), dec!(3), dec!(4)),
            (dec!(-2.5), dec!(-3), dec!(-2), dec!(-2), dec!(-3)),
            (dec!(2.1), dec!(2), dec!(2), dec!(2), dec!(3)),
            (dec!(2.9), dec!(3), dec!(3), dec!(2), dec!(3)),
            (dec!(-2.1), dec!(-2), dec!(-2), dec!(-2), dec!(-3)),
            (dec!(7), dec!(7), dec!(7), dec!(7), dec!(7)),
        ];
        for (value, half_up, half_even, down, up) in cases {
            assert_eq!(Rounding::HalfUp.round(value), half_up, "{value}");
            assert_eq!(Rounding::HalfEven.round(value), half_even, "{value}");
            assert_eq!(Rounding::Down.round(value), down, "{value}");
            assert_eq!(Rounding::Up.round(value), up, "{value}");
        }
    }

    #[test]
    fn rounding_serializes_in_screaming_snake_case() {
        assert_eq!(
            serde_json::to_string(&Rounding::HalfEven).unwrap(),
            "\"HALF_EVEN\""
        );
        assert_eq!(
            serde_json::from_str::<Rounding>("\"HALF_UP\"").unwrap(),
            Rounding::HalfUp
        );
    }

    #[test]
    fn wide_division_is_exact() {
        // (2^64 − 1) × (2^100 + 3) / (2^101 + 12345): a 164-bit product, a 62-bit quotient.
        let a = u64::MAX;
        let b = (1u128 << 100) + 3;
        let d = (1u128 << 101) + 12_345;
        let (q, r) = mul_div(a, b, d).unwrap();
        assert!(r < d);
        // q × d + r must rebuild the 256-bit product.
        let (high, low) = widening_mul(a, b);
        let (ph, pl) = widening_mul(u64::try_from(q).unwrap(), d);
        let (pl, carry) = pl.overflowing_add(r);
        assert_eq!((ph + u128::from(carry), pl), (high, low));
        // Small cases against plain arithmetic.
        assert_eq!(mul_div(7, 6, 4), Some((10, 2)));
        assert_eq!(mul_div(u64::MAX, 1, 1), Some((u128::from(u64::MAX), 0)));
        // A quotient wider than 128 bits is refused, as is a zero or huge divisor.
        assert_eq!(mul_div(u64::MAX, u128::MAX, 1), None);
        assert_eq!(mul_div(1, 1, 0), None);
        assert_eq!(mul_div(1, 1, u128::MAX), None);
    }

    #[test]
    fn rule_validation() {
        let ok = FeeRule::new(
            dec!(0.30),
            dec!(2.9),
            dec!(0),
            Some(dec!(10)),
            Rounding::HalfUp,
        );
        assert!(ok.is_ok());
        assert!(FeeRule::new(dec!(0), dec!(100), dec!(0), None, Rounding::Down).is_ok());
        assert!(FeeRule::new(dec!(0), dec!(0), dec!(1), Some(dec!(1)), Rounding::Down).is_ok());
        for (fixed, percent, min, max, needle) in [
            (dec!(-0.01), dec!(1), dec!(0), None, "fixed"),
            (dec!(0), dec!(-1), dec!(0), None, "percentage"),
            (dec!(0), dec!(100.0001), dec!(0), None, "at most 100"),
            (dec!(0), dec!(1), dec!(-1), None, "minimum"),
            (dec!(0), dec!(1), dec!(5), Some(dec!(4.99)), "maximum"),
        ] {
            match FeeRule::new(fixed, percent, min, max, Rounding::HalfUp) {
                Err(Error::InvalidConfig { reason }) => {
                    assert!(reason.contains(needle), "{reason:?} lacks {needle:?}")
                }
                other => panic!("expected InvalidConfig, got {other:?}"),
            }
        }
        // Negative zero is zero, not negative.
        assert!(FeeRule::new(-Decimal::ZERO, dec!(1), dec!(0), None, Rounding::Down).is_ok());
    }

    #[test]
    fn fee_formula() {
        // 30 cents + 2.9 % of $100.00 = 30 + 290 cents.
        let card = FeeRule::new(dec!(0.30), dec!(2.9), dec!(0), None, Rounding::HalfUp).unwrap();
        assert_eq!(card.fee_minor(10_000, usd()).unwrap(), 320);
        // 2.9 % of $0.17 = 0.493 cents: rounds to 0, plus 30.
        assert_eq!(card.fee_minor(17, usd()).unwrap(), 30);

        // 1.5 % of 1 cent = 0.015 cents; of 100 cents = 1.5 cents (a tie).
        let tie = |rounding| FeeRule::new(dec!(0), dec!(1.5), dec!(0), None, rounding).unwrap();
        assert_eq!(tie(Rounding::HalfUp).fee_minor(100, usd()).unwrap(), 2);
        assert_eq!(tie(Rounding::HalfEven).fee_minor(100, usd()).unwrap(), 2);
        assert_eq!(tie(Rounding::HalfEven).fee_minor(300, usd()).unwrap(), 4); // 4.5 → 4
        assert_eq!(tie(Rounding::HalfUp).fee_minor(300, usd()).unwrap(), 5);
        assert_eq!(tie(Rounding::Down).fee_minor(199, usd()).unwrap(), 2); // 2.985
        assert_eq!(tie(Rounding::Up).fee_minor(1, usd()).unwrap(), 1); // 0.015
        assert_eq!(tie(Rounding::Down).fee_minor(1, usd()).unwrap(), 0);

        // Rounded once: 0.4 + 0.4 would round to 0 + 0 if each part were rounded; the fixed
        // part is whole, so only the percentage is ever fractional.
        let once = FeeRule::new(dec!(0.01), dec!(0.4), dec!(0), None, Rounding::HalfUp).unwrap();
        assert_eq!(once.fee_minor(100, usd()).unwrap(), 1);
    }

    #[test]
    fn fee_is_clamped() {
        let rule = FeeRule::new(
            dec!(0),
            dec!(1),
            dec!(0.50),
            Some(dec!(5)),
            Rounding::HalfUp,
        )
        .unwrap();
        assert_eq!(rule.fee_minor(100, usd()).unwrap(), 50); // 1 cent → min 50
        assert_eq!(rule.fee_minor(10_000, usd()).unwrap(), 100);
        assert_eq!(rule.fee_minor(10_000_000, usd()).unwrap(), 500); // 1000 dollars → max 5
        // The clamp also keeps a fee whose unclamped value would overflow inside i64.
        let capped = FeeRule::new(
            i64::MAX.into(),
            dec!(100),
            dec!(0),
            Some(dec!(1)),
            Rounding::Up,
        )
        .unwrap();
        let jpy = Currency::iso("JPY").unwrap();
        assert_eq!(capped.fee_minor(i64::MAX, jpy).unwrap(), 1);
    }

    #[test]
    fn fee_errors() {
        let rule = FeeRule::new(dec!(0.005), dec!(1), dec!(0), None, Rounding::HalfUp).unwrap();
        assert_eq!(
            rule.fee_minor(100, usd()).unwrap_err().code(),
            "amount_precision"
        );
        let rule =
            FeeRule::new(dec!(0), dec!(1), dec!(0), Some(dec!(0.001)), Rounding::Down).unwrap();
        assert_eq!(
            rule.fee_minor(100, usd()).unwrap_err().code(),
            "amount_precision"
        );
        let rule = FeeRule::new(dec!(0), dec!(1), dec!(0), None, Rounding::Down).unwrap();
        for bad in [0, -1, i64::MIN] {
            assert_eq!(
                rule.fee_minor(bad, usd()).unwrap_err(),
                Error::AmountNotPositive
            );
        }
        // A whole fee plus the percentage that no longer fits in i64.
        let huge = FeeRule::new(
            dec!(90000000000000000),
            dec!(100),
            dec!(0),
            None,
            Rounding::Up,
        )
        .unwrap();
        assert_eq!(
            huge.fee_minor(i64::MAX, usd()).unwrap_err(),
            Error::AmountOverflow
        );
        // A rule that bypassed `new` is still refused.
        let forged = FeeRule {
            fixed: dec!(0),
            percent: dec!(-5),
            min: dec!(0),
            max: None,
            rounding: Rounding::Down,
        };
        assert_eq!(
            forged.fee_minor(100, usd()).unwrap_err().code(),
            "invalid_config"
        );
    }

    #[test]
    fn fee_with_the_finest_percentage_is_exact() {
        let jpy = Currency::iso("JPY").unwrap();
        // 28 digits, 26 of them decimals: 99.999…9 %.
        let percent = Decimal::from_i128_with_scale(10i128.pow(28) - 1, 26);
        let rule = FeeRule::new(dec!(0), percent, dec!(0), None, Rounding::Down).unwrap();
        // Just under 100 % of i64::MAX: one less than the whole amount when rounded down…
        assert_eq!(rule.fee_minor(i64::MAX, jpy).unwrap(), i64::MAX - 1);
        // …and the whole amount rounded up.
        let up = FeeRule {
            rounding: Rounding::Up,
            ..rule
        };
        assert_eq!(up.fee_minor(i64::MAX, jpy).unwrap(), i64::MAX);
        // 10^-28 %, the smallest percentage: the divisor is 10^30.
        let tiny = Decimal::from_i128_with_scale(1, 28);
        let rule = FeeRule::new(dec!(0), tiny, dec!(0), None, Rounding::Up).unwrap();
        assert_eq!(rule.fee_minor(i64::MAX, jpy).unwrap(), 1);
        let rule = FeeRule::new(dec!(0), tiny, dec!(0), None, Rounding::HalfUp).unwrap();
        assert_eq!(rule.fee_minor(i64::MAX, jpy).unwrap(), 0);
    }

    #[test]
    fn schedule() {
        let schedule = FeeSchedule::new();
        assert!(schedule.is_empty());
        let rule = FeeRule::new(dec!(1), dec!(0), dec!(0), None, Rounding::HalfUp).unwrap();
        let schedule = schedule.with(TransactionKind::Withdrawal, rule);
        assert!(!schedule.is_empty());
        assert_eq!(schedule.rule(TransactionKind::Withdrawal), Some(&rule));
        assert_eq!(schedule.rule(TransactionKind::TopUp), None);
        assert_eq!(
            schedule
                .fee_minor(TransactionKind::Withdrawal, 5_000, usd())
                .unwrap(),
            100
        );
        assert_eq!(
            schedule
                .fee_minor(TransactionKind::TopUp, 5_000, usd())
                .unwrap(),
            0
        );
        assert_eq!(
            schedule
                .fee_minor(TransactionKind::TopUp, 0, usd())
                .unwrap_err(),
            Error::AmountNotPositive
        );
        // A later rule replaces an earlier one.
        let cheaper = FeeRule::new(dec!(0.5), dec!(0), dec!(0), None, Rounding::HalfUp).unwrap();
        let schedule = schedule.with(TransactionKind::Withdrawal, cheaper);
        assert_eq!(
            schedule
                .fee_minor(TransactionKind::Withdrawal, 5_000, usd())
                .unwrap(),
            50
        );
        assert_eq!(FeeSchedule::default(), FeeSchedule::new());
    }

    #[test]
    fn refund_fees() {
        assert_eq!(RefundFeePolicy::default(), RefundFeePolicy::Retain);
        assert_eq!(
            refund_fee_minor(1_000, 30, 0, 1_000, RefundFeePolicy::Retain).unwrap(),
            0
        );
        assert_eq!(
            refund_fee_minor(1_000, 30, 0, 1_000, RefundFeePolicy::Return).unwrap(),
            30
        );
        // Three refunds of a third each: 10 + 10 + 10.
        let r = RefundFeePolicy::Return;
        assert_eq!(refund_fee_minor(300, 31, 0, 100, r).unwrap(), 10);
        assert_eq!(refund_fee_minor(300, 31, 100, 100, r).unwrap(), 10);
        // The last one picks up the remainder.
        assert_eq!(refund_fee_minor(300, 31, 200, 100, r).unwrap(), 11);
        // Extreme values do not overflow.
        assert_eq!(
            refund_fee_minor(i64::MAX, i64::MAX, 0, i64::MAX, r).unwrap(),
            i64::MAX
        );
        assert_eq!(refund_fee_minor(i64::MAX, i64::MAX, 0, 1, r).unwrap(), 1);

        for (amount, fee, before, refund) in [
            (-1, 0, 0, 1),
            (100, -1, 0, 1),
            (100, 1, -1, 1),
            (100, 1, 0, 0),
            (100, 1, 0, -5),
            (100, 1, 50, 51),
            (0, 0, 0, 1),
            (i64::MAX, 1, i64::MAX, i64::MAX),
        ] {
            for policy in [RefundFeePolicy::Retain, RefundFeePolicy::Return] {
                assert_eq!(
                    refund_fee_minor(amount, fee, before, refund, policy)
                        .unwrap_err()
                        .code(),
                    "internal",
                    "{amount} {fee} {before} {refund}"
                );
            }
        }
    }

    #[test]
    fn conversion() {
        let eur = Currency::iso("EUR").unwrap();
        let jpy = Currency::iso("JPY").unwrap();
        let bhd = Currency::iso("BHD").unwrap();
        // $12.34 at 0.9 EUR/USD = €11.106 → €11.11 (half up) or €11.10 (down).
        assert_eq!(
            convert_minor(1_234, usd(), eur, dec!(0.9), Rounding::HalfUp).unwrap(),
            1_111
        );
        assert_eq!(
            convert_minor(1_234, usd(), eur, dec!(0.9), Rounding::Down).unwrap(),
            1_110
        );
        // Negative amounts round symmetrically.
        assert_eq!(
            convert_minor(-1_234, usd(), eur, dec!(0.9), Rounding::HalfUp).unwrap(),
            -1_111
        );
        assert_eq!(
            convert_minor(-1_234, usd(), eur, dec!(0.9), Rounding::Down).unwrap(),
            -1_110
        );
        // Different exponents: $1.00 at 151.25 JPY/USD is ¥151.25 → ¥151; ¥100 → 0.66 USD.
        assert_eq!(
            convert_minor(100, usd(), jpy, dec!(151.25), Rounding::HalfEven).unwrap(),
            151
        );
        assert_eq!(
            convert_minor(100, jpy, usd(), dec!(0.0066), Rounding::HalfEven).unwrap(),
            66
        );
        // ¥1 at 0.0025 BHD/JPY = 2.5 fils: a tie.
        assert_eq!(
            convert_minor(1, jpy, bhd, dec!(0.0025), Rounding::HalfEven).unwrap(),
            2
        );
        assert_eq!(
            convert_minor(1, jpy, bhd, dec!(0.0025), Rounding::HalfUp).unwrap(),
            3
        );
        assert_eq!(
            convert_minor(0, jpy, bhd, dec!(0.0025), Rounding::Up).unwrap(),
            0
        );
        // Trailing zeros beyond 18 places are not decimals.
        let padded = Decimal::from_i128_with_scale(15 * 10i128.pow(20), 21);
        assert_eq!(
            convert_minor(100, usd(), eur, padded, Rounding::Down).unwrap(),
            150
        );
    }

    #[test]
    fn conversion_errors() {
        let eur = Currency::iso("EUR").unwrap();
        for (rate, needle) in [
            (dec!(0), "greater than zero"),
            (dec!(-1.5), "greater than zero"),
            (-Decimal::ZERO, "greater than zero"),
            (dec!(1000000000000.0001), "at most"),
            (dec!(1000000000001), "at most"),
            (dec!(0.0000000000000000001), "decimal places"),
        ] {
            match convert_minor(100, usd(), eur, rate, Rounding::HalfUp) {
                Err(Error::InvalidRate { reason }) => {
                    assert!(reason.contains(needle), "{rate}: {reason}")
                }
                other => panic!("{rate}: expected InvalidRate, got {other:?}"),
            }
        }
        assert!(convert_minor(1, usd(), eur, RATE_MAX, Rounding::HalfUp).is_ok());
        assert_eq!(RATE_MAX, dec!(1000000000000));
        // Overflow is an error, never a wrong value.
        assert_eq!(
            convert_minor(i64::MAX, usd(), eur, dec!(2), Rounding::Down).unwrap_err(),
            Error::AmountOverflow
        );
        assert_eq!(
            convert_minor(
                i64::MAX,
                with_exponent(0),
                with_exponent(18),
                RATE_MAX,
                Rounding::Down
            )
            .unwrap_err(),
            Error::AmountOverflow
        );
        assert_eq!(
            convert_minor(i64::MIN, usd(), eur, dec!(1), Rounding::Down).unwrap(),
            i64::MIN
        );
        // Tiny results from the widest divisor (10^36) are still exact.
        let tiny = Decimal::from_i128_with_scale(1, 18);
        assert_eq!(
            convert_minor(
                i64::MAX,
                with_exponent(18),
                with_exponent(0),
                tiny,
                Rounding::Up
            )
            .unwrap(),
            1
        );
        // A currency deserialized with an impossible exponent is refused.
        let broken: Currency = serde_json::from_str(r#"{"code":"ZZZ","exponent":200}"#).unwrap();
        assert_eq!(
            convert_minor(1, broken, eur, dec!(1), Rounding::Down)
                .unwrap_err()
                .code(),
            "invalid_currency"
        );
    }

    /// A percentage from 0 to 100 with up to four decimal places.
    fn percent() -> impl Strategy<Value = Decimal> {
        (0i64..=1_000_000).prop_map(|m| Decimal::new(m, 4))
    }

    fn rounding() -> impl Strategy<Value = Rounding> {
        prop::sample::select(ALL_ROUNDINGS.to_vec())
    }

    /// Amounts of every size, most small enough to convert without overflow.
    fn amount() -> impl Strategy<Value = i64> {
        prop_oneof![
            -1_000i64..=1_000,
            -1_000_000_000_000i64..=1_000_000_000_000,
            any::<i64>(),
        ]
    }

    /// Any valid rate: 1 to 19 significant digits, 0 to 18 decimal places, capped at 10^12.
    fn any_rate() -> impl Strategy<Value = Decimal> {
        (
            prop_oneof![1i64..=1_000, 1i64..=1_000_000_000, 1i64..=i64::MAX],
            0u32..=18,
        )
            .prop_map(|(mantissa, scale)| Decimal::new(mantissa, scale).min(RATE_MAX))
    }

    /// A rate between 0.000001 and 1000 with up to six decimal places.
    fn small_rate() -> impl Strategy<Value = Decimal> {
        (1i64..=1_000_000_000).prop_map(|m| Decimal::new(m, 6))
    }

    proptest! {
        #[test]
        fn fee_stays_within_bounds(
            amount in 1i64..=i64::MAX,
            fixed_cents in 0i64..=1_000_000,
            percent in percent(),
            min_cents in 0i64..=100_000,
            extra in proptest::option::of(0i64..=1_000_000),
            rounding in rounding(),
        ) {
            let max = extra.map(|e| Decimal::new(min_cents + e, 2));
            let rule =
                FeeRule::new(Decimal::new(fixed_cents, 2), percent, Decimal::new(min_cents, 2), max, rounding)
                    .unwrap();
            match rule.fee_minor(amount, usd()) {
                Ok(fee) => {
                    prop_assert!(fee >= 0);
                    prop_assert!(fee >= min_cents);
                    if let Some(e) = extra {
                        prop_assert!(fee <= min_cents + e);
                    }
                }
                // Only possible without a maximum: fixed + percentage beyond i64.
                Err(e) => {
                    prop_assert_eq!(e, Error::AmountOverflow);
                    prop_assert!(extra.is_none());
                }
            }
        }

        /// Without a clamp, the fee is within one minor unit of the exact real value, on the
        /// side the rounding rule says: Down never charges more than the exact value, Up never
        /// less, and the half rules are off by at most half a unit. It also equals rounding the
        /// exact Decimal value (exact here: the operands are small) with `Rounding::round`.
        #[test]
        fn fee_rounding_matches_the_exact_value(
            amount in 1i64..=1_000_000_000_000,
            fixed_cents in 0i64..=1_000_000,
            percent in percent(),
            rounding in rounding(),
        ) {
            let fixed = Decimal::new(fixed_cents, 2);
            let rule = FeeRule::new(fixed, percent, Decimal::ZERO, None, rounding).unwrap();
            let fee = Decimal::from(rule.fee_minor(amount, usd()).unwrap());
            let exact = Decimal::from(fixed_cents) + Decimal::from(amount) * percent / Decimal::ONE_HUNDRED;
            let error = fee - exact;
            match rounding {
                Rounding::Down => prop_assert!(error <= Decimal::ZERO && error > -Decimal::ONE),
                Rounding::Up => prop_assert!(error >= Decimal::ZERO && error < Decimal::ONE),
                Rounding::HalfUp | Rounding::HalfEven => prop_assert!(error.abs() <= dec!(0.5)),
            }
            prop_assert_eq!(fee, rounding.round(exact));
        }

        #[test]
        fn returned_fees_sum_to_the_fee(
            amount in 1i64..=i64::MAX,
            fee in 0i64..=i64::MAX,
            cuts in proptest::collection::vec(any::<u64>(), 0..8),
        ) {
            // Split the amount into refunds at sorted cut points.
            let mut points: Vec<i64> = cuts
                .iter()
                .map(|c| i64::try_from(c % amount.unsigned_abs()).unwrap())
                .collect();
            points.push(0);
            points.push(amount);
            points.sort_unstable();
            points.dedup();
            let mut returned: i128 = 0;
            for pair in points.windows(2) {
                let (before, after) = (pair[0], pair[1]);
                let part = refund_fee_minor(amount, fee, before, after - before, RefundFeePolicy::Return)
                    .unwrap();
                prop_assert!(part >= 0);
                returned += i128::from(part);
                // Never more than the proportional share returned so far.
                prop_assert!(returned <= i128::from(fee) * i128::from(after) / i128::from(amount));
                prop_assert_eq!(
                    refund_fee_minor(amount, fee, before, after - before, RefundFeePolicy::Retain).unwrap(),
                    0
                );
            }
            prop_assert_eq!(returned, i128::from(fee));
        }

        #[test]
        fn conversion_is_monotonic(
            a in amount(),
            b in amount(),
            from_exp in 0u8..=18,
            to_exp in 0u8..=18,
            rate in any_rate(),
            rounding in rounding(),
        ) {
            let (low, high) = if a <= b { (a, b) } else { (b, a) };
            let (from, to) = (with_exponent(from_exp), with_exponent(to_exp));
            let convert = |x| convert_minor(x, from, to, rate, rounding);
            // Overflow is the only error, and it is monotonic too: if a magnitude overflows,
            // so does every larger one of the same sign.
            for x in [low, high] {
                if let Err(e) = convert(x) {
                    prop_assert_eq!(e, Error::AmountOverflow);
                }
            }
            if let (Ok(l), Ok(h)) = (convert(low), convert(high)) {
                prop_assert!(l <= h, "{} -> {}, {} -> {}", low, l, high, h);
            }
            // Neighbours, where rounding matters most.
            if let (Ok(l), Ok(h)) = (convert(low), low.checked_add(1).map_or(Ok(i64::MAX), convert)) {
                prop_assert!(l <= h, "{} -> {}, +1 -> {}", low, l, h);
            }
        }

        #[test]
        fn conversion_matches_decimal(
            // Small enough that no result overflows: 10^11 × 1000 × 10^4 < 2^63.
            amount in -100_000_000_000i64..=100_000_000_000,
            from_exp in 0u8..=4,
            to_exp in 0u8..=4,
            rate in small_rate(),
            rounding in rounding(),
        ) {
            let (from, to) = (with_exponent(from_exp), with_exponent(to_exp));
            let exact = Decimal::from(amount) * rate * Decimal::from(10i64.pow(u32::from(to_exp)))
                / Decimal::from(10i64.pow(u32::from(from_exp)));
            let got = convert_minor(amount, from, to, rate, rounding).unwrap();
            prop_assert_eq!(Decimal::from(got), rounding.round(exact));
        }

        #[test]
        fn rate_one_between_equal_exponents_is_identity(
            amount in any::<i64>(),
            exp in 0u8..=18,
            rounding in rounding(),
        ) {
            let from = with_exponent(exp);
            let to = Currency::new(CurrencyCode::new("OTHER").unwrap(), exp).unwrap();
            prop_assert_eq!(convert_minor(amount, from, to, Decimal::ONE, rounding).unwrap(), amount);
            prop_assert_eq!(convert_minor(amount, from, to, dec!(1.000), rounding).unwrap(), amount);
        }

        #[test]
        fn conversion_never_panics(
            amount in any::<i64>(),
            from_exp in any::<u8>(),
            to_exp in any::<u8>(),
            lo in any::<u32>(),
            mid in any::<u32>(),
            hi in any::<u32>(),
            negative in any::<bool>(),
            scale in 0u32..=28,
            rounding in rounding(),
        ) {
            let rate = Decimal::from_parts(lo, mid, hi, negative, scale);
            let json = |e: u8| format!(r#"{{"code":"ZZZ","exponent":{e}}}"#);
            let from: Currency = serde_json::from_str(&json(from_exp)).unwrap();
            let to: Currency = serde_json::from_str(&json(to_exp)).unwrap();
            let _ = convert_minor(amount, from, to, rate, rounding);
        }
    }
}
