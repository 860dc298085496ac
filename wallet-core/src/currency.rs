//! Currencies: ISO 4217 codes and custom assets a host registers.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::iso4217;

/// Longest custom asset code.
pub const CURRENCY_CODE_LEN_MAX: usize = 12;
/// Shortest currency code.
pub const CURRENCY_CODE_LEN_MIN: usize = 3;
/// Largest minor-unit exponent a custom asset may have.
pub const EXPONENT_MAX: u8 = 18;
/// Most custom assets one registry holds.
pub const CUSTOM_ASSETS_MAX: usize = 1024;

/// A currency code: 3 to 12 characters `A`–`Z`, `0`–`9`, starting with a letter.
///
/// Stored inline, so the type is `Copy` and comparing codes never allocates.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CurrencyCode {
    len: u8,
    bytes: [u8; CURRENCY_CODE_LEN_MAX],
}

impl CurrencyCode {
    /// Parses a code. Lowercase letters are accepted and upper-cased.
    pub fn new(code: &str) -> Result<Self> {
        let invalid = |reason| Err(Error::InvalidCurrency { reason });
        if code.len() < CURRENCY_CODE_LEN_MIN || code.len() > CURRENCY_CODE_LEN_MAX {
            return invalid("a currency code has 3 to 12 characters");
        }
        let mut bytes = [0u8; CURRENCY_CODE_LEN_MAX];
        for (slot, b) in bytes.iter_mut().zip(code.bytes()) {
            if !b.is_ascii_alphanumeric() {
                return invalid("a currency code has only letters A-Z and digits");
            }
            *slot = b.to_ascii_uppercase();
        }
        if !bytes[0].is_ascii_alphabetic() {
            return invalid("a currency code starts with a letter");
        }
        // Length checked above against CURRENCY_CODE_LEN_MAX (12), which fits in u8.
        let len = u8::try_from(code.len()).map_err(|_| Error::internal("code length"))?;
        Ok(CurrencyCode { len, bytes })
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        let bytes = self.bytes.get(..usize::from(self.len)).unwrap_or_default();
        // Only ASCII alphanumerics are ever stored (checked in `new`), so this cannot fail.
        std::str::from_utf8(bytes).unwrap_or_default()
    }
}

impl fmt::Display for CurrencyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for CurrencyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CurrencyCode({})", self.as_str())
    }
}

impl FromStr for CurrencyCode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        CurrencyCode::new(s)
    }
}

impl Serialize for CurrencyCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CurrencyCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        CurrencyCode::new(&s).map_err(serde::de::Error::custom)
    }
}

/// A currency or asset: its code and its minor-unit exponent (USD 2, JPY 0, BHD 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Currency {
    code: CurrencyCode,
    exponent: u8,
}

impl Currency {
    /// Builds a currency from parts; the exponent must be at most [`EXPONENT_MAX`].
    pub fn new(code: CurrencyCode, exponent: u8) -> Result<Self> {
        if exponent > EXPONENT_MAX {
            return Err(Error::InvalidCurrency {
                reason: "an exponent is at most 18",
            });
        }
        Ok(Currency { code, exponent })
    }

    /// The ISO 4217 currency with this code, if it is one.
    pub fn iso(code: &str) -> Result<Self> {
        let code = CurrencyCode::new(code)?;
        iso4217::exponent(code.as_str())
            .map(|exponent| Currency { code, exponent })
            .ok_or_else(|| Error::UnknownCurrency {
                code: code.as_str().to_owned(),
            })
    }

    /// The code.
    pub fn code(&self) -> CurrencyCode {
        self.code
    }

    /// Number of decimal places of the minor unit.
    pub fn exponent(&self) -> u8 {
        self.exponent
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.code.fmt(f)
    }
}

/// The currencies a ledger accepts: every ISO 4217 code plus the custom assets registered here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CurrencyRegistry {
    custom: BTreeMap<CurrencyCode, u8>,
}

impl CurrencyRegistry {
    /// A registry with the ISO 4217 currencies only.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a custom asset (loyalty points, a stablecoin, …).
    ///
    /// The code may not be an ISO 4217 code; the exponent is 0 to 18. Balances are 64-bit minor
    /// units, so an asset with exponent 18 holds at most about 9.22 whole units per wallet.
    pub fn register(&mut self, code: &str, exponent: u8) -> Result<Currency> {
        let code = CurrencyCode::new(code)?;
        if iso4217::exponent(code.as_str()).is_some() {
            return Err(Error::InvalidCurrency {
                reason: "a custom asset may not reuse an ISO 4217 code",
            });
        }
        let currency = Currency::new(code, exponent)?;
        match self.custom.get(&code) {
            Some(existing) if *existing == exponent => return Ok(currency),
            Some(_) => {
                return Err(Error::InvalidCurrency {
                    reason: "asset already registered with another exponent",
                });
            }
            None => {}
        }
        if self.custom.len() >= CUSTOM_ASSETS_MAX {
            return Err(Error::InvalidCurrency {
                reason: "too many custom assets",
            });
        }
        self.custom.insert(code, exponent);
        Ok(currency)
    }

    /// Builder form of [`CurrencyRegistry::register`].
    pub fn with(mut self, code: &str, exponent: u8) -> Result<Self> {
        self.register(code, exponent)?;
        Ok(self)
    }

    /// Looks a code up (case-insensitive).
    pub fn get(&self, code: &str) -> Result<Currency> {
        let parsed = CurrencyCode::new(code).map_err(|_| unknown(code))?;
        self.resolve(parsed).ok_or_else(|| unknown(code))
    }

    /// Looks a parsed code up.
    pub fn resolve(&self, code: CurrencyCode) -> Option<Currency> {
        let exponent =
            iso4217::exponent(code.as_str()).or_else(|| self.custom.get(&code).copied())?;
        Some(Currency { code, exponent })
    }
}

fn unknown(code: &str) -> Error {
    // Bound what is echoed back: the input may be arbitrarily long.
    let code: String = code.chars().take(CURRENCY_CODE_LEN_MAX + 4).collect();
    Error::UnknownCurrency { code }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_lookup_is_case_insensitive() {
        let reg = CurrencyRegistry::new();
        assert_eq!(reg.get("usd").unwrap().exponent(), 2);
        assert_eq!(reg.get("JPY").unwrap().exponent(), 0);
        assert_eq!(reg.get("usd").unwrap().code().as_str(), "USD");
    }

    #[test]
    fn unknown_and_malformed_codes() {
        let reg = CurrencyRegistry::new();
        for bad in [
            "",
            "US",
            "XAU",
            "U$D",
            "ABCDEFGHIJKLMN",
            "1AB",
            "USD ",
            "ÜSD",
        ] {
            assert_eq!(
                reg.get(bad).unwrap_err().code(),
                "unknown_currency",
                "{bad:?}"
            );
        }
        let long = "A".repeat(10_000);
        match reg.get(&long) {
            Err(Error::UnknownCurrency { code }) => assert!(code.len() <= 16),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn custom_assets() {
        let mut reg = CurrencyRegistry::new();
        let pts = reg.register("points", 0).unwrap();
        assert_eq!(pts.code().as_str(), "POINTS");
        assert_eq!(reg.get("POINTS").unwrap(), pts);
        // Same definition again is fine; a different exponent is not.
        assert!(reg.register("POINTS", 0).is_ok());
        assert_eq!(
            reg.register("POINTS", 2).unwrap_err().code(),
            "invalid_currency"
        );
        // ISO codes cannot be redefined; exponents are bounded.
        assert_eq!(
            reg.register("USD", 6).unwrap_err().code(),
            "invalid_currency"
        );
        assert_eq!(
            reg.register("GAS", 19).unwrap_err().code(),
            "invalid_currency"
        );
        assert!(
            reg.register("XAU", 6).is_ok(),
            "ISO N.A. codes may be registered"
        );
        assert!(reg.register("WEI18", 18).is_ok());
    }

    #[test]
    fn registry_is_bounded() {
        let mut reg = CurrencyRegistry::new();
        for i in 0..CUSTOM_ASSETS_MAX {
            reg.register(&format!("A{i:05}"), 2).unwrap();
        }
        assert_eq!(
            reg.register("ZZZZZZ", 2).unwrap_err().code(),
            "invalid_currency"
        );
    }
}
