//! Amount text, currency codes and the conversion between decimals and minor units.

use rust_decimal::Decimal;
use wallet_core::currency::{CurrencyCode, CurrencyRegistry};
use wallet_core::{Currency, Money, parse_amount};

use crate::assert_typed;

/// Whether `text` has the grammar `parse_amount` documents: `-?[0-9]+(\.[0-9]+)?`.
fn well_formed(text: &str) -> bool {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (int, frac) = match unsigned.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (unsigned, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(int) && frac.is_none_or(digits)
}

/// The currencies every amount is converted to: the ISO exponents 0, 2, 3 and 4 and custom
/// assets at the extremes 0 and 18.
fn currencies() -> Vec<Currency> {
    let mut registry = CurrencyRegistry::new();
    let mut all: Vec<Currency> = ["JPY", "USD", "BHD", "CLF"]
        .iter()
        .filter_map(|c| Currency::iso(c).ok())
        .collect();
    all.extend(registry.register("POINTS", 0));
    all.extend(registry.register("WEI18", 18));
    assert_eq!(all.len(), 6, "fixture currencies");
    all
}

/// Parses the input as amount text and as currency codes; converts every amount it accepts to
/// each currency and back.
///
/// Checks: text outside the documented grammar is refused with `invalid_amount`; text inside
/// it is refused only when it has more digits than a `Decimal` holds exactly; an accepted
/// amount equals its text's value; a conversion to minor units is refused exactly when the
/// amount has more decimals than the currency or does not fit in 64 bits, and otherwise
/// converts back to the same value; `Money`'s text form reads back; accepted currency codes
/// read back.
pub fn amount(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let text = text.as_ref();
    amount_text(text);
    currency_text(text);
    if let Ok(m) = text.parse::<Money>() {
        assert_eq!(m.to_string().parse::<Money>(), Ok(m), "{text:?}");
    }
    // The first line as an amount, the rest as a currency: the fuzzer finds both halves.
    if let Some((a, c)) = text.split_once('\n')
        && let (Ok(amount), Ok(currency)) = (parse_amount(a), Currency::iso(c))
    {
        convert(amount, currency);
    }
}

fn amount_text(text: &str) {
    match parse_amount(text) {
        Ok(value) => {
            assert!(well_formed(text), "accepted {text:?}");
            // Its own text form reads back as the same value.
            assert_eq!(parse_amount(&value.to_string()), Ok(value), "{text:?}");
            for currency in currencies() {
                convert(value, currency);
            }
        }
        Err(e) => {
            assert_typed("parse_amount", &e);
            match e.code() {
                "invalid_amount" => {}
                "amount_overflow" => assert!(well_formed(text), "{text:?}: {e:?}"),
                other => panic!("parse_amount({text:?}) failed with {other}"),
            }
            if well_formed(text) && text.len() <= wallet_core::money::AMOUNT_TEXT_LEN_MAX {
                // Well-formed text is refused only for more digits than a Decimal holds.
                let unsigned = text.trim_start_matches('-');
                let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
                let significant = int.trim_start_matches('0').len() + frac.len();
                assert!(
                    significant > 28 || frac.len() > 28,
                    "refused well-formed {text:?}: {e:?}"
                );
            }
        }
    }
}

/// Converts `value` to minor units of `currency` and back.
fn convert(value: Decimal, currency: Currency) {
    let exponent = u32::from(currency.exponent());
    let normalized = value.normalize();
    match Money::from_decimal(value, currency) {
        Ok(m) => {
            assert!(normalized.scale() <= exponent, "{value} {currency}");
            assert_eq!(m.amount(), value, "{value} {currency} read back");
            assert_eq!(m.amount().scale(), exponent, "{value} {currency} scale");
            assert_eq!(m.currency(), currency);
        }
        Err(e) => {
            assert_typed("Money::from_decimal", &e);
            match e.code() {
                "amount_precision" => assert!(normalized.scale() > exponent, "{value} {currency}"),
                "amount_overflow" => {
                    // Refused for size: the value in minor units really is outside i64.
                    let minor = exponent
                        .checked_sub(normalized.scale())
                        .and_then(|e| 10i128.checked_pow(e))
                        .and_then(|f| normalized.mantissa().checked_mul(f));
                    assert!(
                        minor.is_none_or(|m| i64::try_from(m).is_err()),
                        "{value} {currency} refused as overflow"
                    );
                }
                other => panic!("Money::from_decimal({value}, {currency}) failed with {other}"),
            }
        }
    }
}

fn currency_text(text: &str) {
    if let Ok(code) = CurrencyCode::new(text) {
        assert!(code.as_str().eq_ignore_ascii_case(text), "{text:?}");
        assert_eq!(CurrencyCode::new(code.as_str()), Ok(code));
    }
    match Currency::iso(text) {
        Ok(c) => assert!(c.code().as_str().eq_ignore_ascii_case(text)),
        Err(e) => assert_typed("Currency::iso", &e),
    }
    let mut registry = CurrencyRegistry::new();
    let exponent = text.len().min(255).try_into().unwrap_or(0u8) % 20;
    match registry.register(text, exponent) {
        Ok(c) => {
            assert_eq!(registry.get(text), Ok(c), "registered {text:?}");
            assert_eq!(c.exponent(), exponent);
        }
        Err(e) => assert_typed("CurrencyRegistry::register", &e),
    }
}
