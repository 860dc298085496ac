//! Exact money: `Decimal` at the API, `i64` minor units in storage and arithmetic.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::currency::Currency;
use crate::error::{Error, Result};

/// Longest amount text [`parse_amount`] reads.
pub const AMOUNT_TEXT_LEN_MAX: usize = 64;

/// An amount of a currency, held exactly as a signed count of minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    minor: i64,
    currency: Currency,
}

impl Money {
    /// `minor` minor units of `currency` (cents for USD).
    pub fn from_minor(minor: i64, currency: Currency) -> Self {
        Money { minor, currency }
    }

    /// Zero of `currency`.
    pub fn zero(currency: Currency) -> Self {
        Money { minor: 0, currency }
    }

    /// Converts a decimal amount exactly: more decimal places than the currency allows is
    /// [`Error::AmountPrecision`], too large is [`Error::AmountOverflow`]. Never rounds.
    pub fn from_decimal(amount: Decimal, currency: Currency) -> Result<Self> {
        Ok(Money {
            minor: to_minor(amount, currency)?,
            currency,
        })
    }

    /// The amount in minor units.
    pub fn minor(&self) -> i64 {
        self.minor
    }

    /// The currency.
    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// The amount as a decimal with exactly the currency's number of decimal places.
    pub fn amount(&self) -> Decimal {
        Decimal::from_i128_with_scale(i128::from(self.minor), u32::from(self.currency.exponent()))
    }

    /// Whether the amount is zero.
    pub fn is_zero(&self) -> bool {
        self.minor == 0
    }

    /// The negated amount; `None` for `i64::MIN` minor units.
    pub fn checked_neg(self) -> Option<Self> {
        Some(Money {
            minor: self.minor.checked_neg()?,
            currency: self.currency,
        })
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount(), self.currency)
    }
}

/// Converts `amount` to minor units of `currency`, exactly.
pub(crate) fn to_minor(amount: Decimal, currency: Currency) -> Result<i64> {
    let normalized = amount.normalize();
    let exponent = u32::from(currency.exponent());
    if normalized.scale() > exponent {
        return Err(Error::AmountPrecision {
            currency: currency.code(),
            max_decimals: currency.exponent(),
        });
    }
    let factor = 10i128
        .checked_pow(exponent - normalized.scale())
        .ok_or(Error::AmountOverflow)?;
    let minor = normalized
        .mantissa()
        .checked_mul(factor)
        .ok_or(Error::AmountOverflow)?;
    i64::try_from(minor).map_err(|_| Error::AmountOverflow)
}

/// Parses amount text as a caller would type it: optional leading `-`, digits, optional `.`
/// and more digits. No exponent notation, no grouping separators, no whitespace, no `+`.
///
/// Rejects rather than rounds: text with more digits than a `Decimal` holds exactly is
/// [`Error::AmountOverflow`] (too large) or [`Error::InvalidAmount`] (too many decimals).
pub fn parse_amount(text: &str) -> Result<Decimal> {
    let invalid = |reason| Err(Error::InvalidAmount { reason });
    if text.is_empty() {
        return invalid("empty");
    }
    if text.len() > AMOUNT_TEXT_LEN_MAX {
        return invalid("too long");
    }
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (int_part, frac_part) = match unsigned.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (unsigned, None),
    };
    let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int_part.is_empty() || !digits_ok(int_part) {
        return invalid("expected digits before the decimal point");
    }
    if let Some(f) = frac_part {
        if f.is_empty() || !digits_ok(f) {
            return invalid("expected digits after the decimal point");
        }
        if f.len() > 28 {
            return invalid("too many decimal places");
        }
    }
    // A Decimal holds 28-29 significant digits; beyond that from_str would round.
    let significant = int_part.trim_start_matches('0').len() + frac_part.map_or(0, str::len);
    if significant > 28 {
        return Err(Error::AmountOverflow);
    }
    Decimal::from_str_exact(text).map_err(|_| Error::AmountOverflow)
}

impl FromStr for Money {
    type Err = Error;
    /// Parses `"12.34 USD"` (ISO 4217 currencies only; use a registry for custom assets).
    fn from_str(s: &str) -> Result<Self> {
        let (amount, code) = s.split_once(' ').ok_or(Error::InvalidAmount {
            reason: "expected '<amount> <currency>'",
        })?;
        Money::from_decimal(parse_amount(amount)?, Currency::iso(code)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rust_decimal_macros::dec;

    fn usd() -> Currency {
        Currency::iso("USD").unwrap()
    }

    #[test]
    fn exact_conversion() {
        assert_eq!(to_minor(dec!(12.34), usd()).unwrap(), 1234);
        assert_eq!(to_minor(dec!(12.30), usd()).unwrap(), 1230);
        assert_eq!(to_minor(dec!(12), usd()).unwrap(), 1200);
        assert_eq!(to_minor(dec!(-0.01), usd()).unwrap(), -1);
        let jpy = Currency::iso("JPY").unwrap();
        assert_eq!(to_minor(dec!(100.00), jpy).unwrap(), 100);
        assert_eq!(
            to_minor(dec!(100.5), jpy).unwrap_err(),
            Error::AmountPrecision {
                currency: jpy.code(),
                max_decimals: 0
            }
        );
        assert_eq!(
            to_minor(dec!(0.001), usd()).unwrap_err().code(),
            "amount_precision"
        );
        let bhd = Currency::iso("BHD").unwrap();
        assert_eq!(to_minor(dec!(1.234), bhd).unwrap(), 1234);
    }

    #[test]
    fn overflow_is_an_error() {
        assert_eq!(
            to_minor(Decimal::MAX, usd()).unwrap_err(),
            Error::AmountOverflow
        );
        assert_eq!(
            to_minor(dec!(92233720368547758.08), usd()).unwrap_err(),
            Error::AmountOverflow
        );
        assert_eq!(
            to_minor(dec!(92233720368547758.07), usd()).unwrap(),
            i64::MAX
        );
        let wei = Currency::new(crate::currency::CurrencyCode::new("WEI").unwrap(), 18).unwrap();
        assert_eq!(to_minor(dec!(10), wei).unwrap_err(), Error::AmountOverflow);
        assert_eq!(to_minor(dec!(9), wei).unwrap(), 9_000_000_000_000_000_000);
    }

    #[test]
    fn display() {
        assert_eq!(Money::from_minor(1234, usd()).to_string(), "12.34 USD");
        assert_eq!(Money::from_minor(-5, usd()).to_string(), "-0.05 USD");
        assert_eq!(
            Money::from_minor(7, Currency::iso("JPY").unwrap()).to_string(),
            "7 JPY"
        );
        assert_eq!(
            "12.34 USD".parse::<Money>().unwrap(),
            Money::from_minor(1234, usd())
        );
    }

    #[test]
    fn parse_amount_table() {
        assert_eq!(parse_amount("12.34").unwrap(), dec!(12.34));
        assert_eq!(parse_amount("-0.5").unwrap(), dec!(-0.5));
        assert_eq!(parse_amount("0").unwrap(), dec!(0));
        assert_eq!(parse_amount("0000012").unwrap(), dec!(12));
        for (text, code) in [
            ("", "invalid_amount"),
            ("abc", "invalid_amount"),
            ("1e5", "invalid_amount"),
            ("1,000", "invalid_amount"),
            (" 1", "invalid_amount"),
            ("+1", "invalid_amount"),
            ("1.", "invalid_amount"),
            (".5", "invalid_amount"),
            ("--1", "invalid_amount"),
            ("NaN", "invalid_amount"),
            ("1.2.3", "invalid_amount"),
            ("１２", "invalid_amount"),
            ("123456789012345678901234567890", "amount_overflow"),
            ("0.123456789012345678901234567890", "invalid_amount"),
        ] {
            assert_eq!(parse_amount(text).unwrap_err().code(), code, "{text:?}");
        }
    }

    proptest! {
        #[test]
        fn minor_round_trips(minor in any::<i64>(), exp in 0u8..=18) {
            let cur = Currency::new(crate::currency::CurrencyCode::new("TST").unwrap(), exp).unwrap();
            let m = Money::from_minor(minor, cur);
            prop_assert_eq!(Money::from_decimal(m.amount(), cur).unwrap(), m);
            prop_assert_eq!(parse_amount(&m.amount().to_string()).unwrap(), m.amount());
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,80}") {
            let _ = parse_amount(&s);
        }
    }
}
