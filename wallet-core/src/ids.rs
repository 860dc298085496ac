//! Typed identifiers and the human-readable numbers derived from them.
//!
//! Internal ids are positive 64-bit integers assigned by the store. Humans see wallet numbers
//! (`WLT-…`) and transaction references (`TXN-…`): the id in decimal, zero-padded, followed by
//! two ISO 7064 MOD 97-10 check digits (the scheme IBAN uses). The check digits catch every
//! single mistyped digit and every swap of two adjacent digits, so a typo in a destination
//! wallet number is rejected instead of sending money to a stranger. Because a number is a
//! pure function of the id, it is unique by construction and needs no index of its own.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "i64", into = "i64")]
        pub struct $name(i64);

        impl $name {
            /// Wraps a raw id; it must be positive.
            pub fn new(raw: i64) -> Result<Self> {
                if raw > 0 { Ok(Self(raw)) } else { Err(Error::InvalidId) }
            }

            /// The raw integer, as stored.
            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl TryFrom<i64> for $name {
            type Error = Error;
            fn try_from(raw: i64) -> Result<Self> {
                Self::new(raw)
            }
        }

        impl From<$name> for i64 {
            fn from(id: $name) -> i64 {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// Identifies a user (a wallet owner or an actor).
    UserId
);
id_type!(
    /// Identifies a wallet or a system account.
    WalletId
);
id_type!(
    /// Identifies a ledger transaction.
    TransactionId
);
id_type!(
    /// Identifies a merchant (a BUSINESS wallet registered to receive payments by order).
    MerchantId
);
id_type!(
    /// Identifies a notification.
    NotificationId
);

/// Digits of the id part of a wallet number (zero-padded; longer ids use more digits).
const WALLET_NUMBER_DIGITS: usize = 10;
/// Digits of the id part of a transaction reference.
const REFERENCE_DIGITS: usize = 12;
/// Longest accepted input for a number or reference: prefix, 19 id digits, 2 check digits.
const HUMAN_CODE_LEN_MAX: usize = 4 + 19 + 2;

/// ISO 7064 MOD 97-10 remainder of the decimal digits of `id` followed by `suffix`.
fn mod97(id: i64, suffix: u32) -> u32 {
    // `id` is positive (checked by the id types), so its decimal digits are plain ASCII digits.
    let mut rem: u32 = 0;
    for b in id.to_string().bytes() {
        rem = (rem * 10 + u32::from(b - b'0')) % 97;
    }
    (rem * 100 + suffix) % 97
}

fn check_digits(id: i64) -> u32 {
    98 - mod97(id, 0)
}

fn format_code(f: &mut fmt::Formatter<'_>, prefix: &str, width: usize, id: i64) -> fmt::Result {
    write!(f, "{prefix}{id:0width$}{:02}", check_digits(id))
}

/// Parses `PREFIX` + zero-padded digits + two check digits. Only the canonical form is
/// accepted (prefix case-insensitive), so each id has exactly one spelling.
fn parse_code(s: &str, prefix: &str, width: usize) -> Option<i64> {
    if s.len() > HUMAN_CODE_LEN_MAX || !s.is_ascii() {
        return None;
    }
    let (head, digits) = s.split_at_checked(prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) || digits.len() < width + 2 {
        return None;
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (id_part, check_part) = digits.split_at(digits.len() - 2);
    let id: i64 = id_part.parse().ok()?;
    let check: u32 = check_part.parse().ok()?;
    if id <= 0 || mod97(id, check) != 1 {
        return None;
    }
    // Reject non-canonical padding such as extra leading zeros.
    let canonical_len = id.to_string().len().max(width);
    (id_part.len() == canonical_len).then_some(id)
}

macro_rules! human_code {
    (
        $(#[$doc:meta])* $name:ident($id:ident), prefix $prefix:literal, digits $digits:expr,
        invalid $invalid:expr, $ctor_doc:literal, $id_doc:literal
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name($id);

        impl $name {
            #[doc = $ctor_doc]
            pub fn of(id: $id) -> Self {
                $name(id)
            }

            #[doc = $id_doc]
            pub fn id(self) -> $id {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                format_code(f, $prefix, $digits, self.0.get())
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                parse_code(s, $prefix, $digits)
                    .map(|id| $name($id(id)))
                    .ok_or($invalid)
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

human_code!(
    /// The human-facing number of a wallet, e.g. `WLT-000000004269`.
    WalletNumber(WalletId), prefix "WLT-", digits WALLET_NUMBER_DIGITS,
    invalid Error::InvalidWalletNumber,
    "The number of the wallet with this id.", "The wallet id this number stands for."
);
human_code!(
    /// The human-facing reference of a transaction, e.g. `TXN-00000000000777`.
    TransactionRef(TransactionId), prefix "TXN-", digits REFERENCE_DIGITS,
    invalid Error::InvalidReference,
    "The reference of the transaction with this id.",
    "The transaction id this reference stands for."
);

/// A wallet addressed either by internal id or by its human number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WalletRef {
    /// By internal id.
    Id(WalletId),
    /// By wallet number.
    Number(WalletNumber),
}

impl WalletRef {
    /// The wallet id (numbers encode their id, so this needs no lookup).
    pub fn id(self) -> WalletId {
        match self {
            WalletRef::Id(id) => id,
            WalletRef::Number(n) => n.id(),
        }
    }
}

impl From<WalletId> for WalletRef {
    fn from(id: WalletId) -> Self {
        WalletRef::Id(id)
    }
}

impl From<WalletNumber> for WalletRef {
    fn from(n: WalletNumber) -> Self {
        WalletRef::Number(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wallet_number_format() {
        let n = WalletNumber::of(WalletId::new(42).unwrap());
        let s = n.to_string();
        assert_eq!(s, "WLT-000000004269");
        assert_eq!(s.len(), 4 + 10 + 2);
        assert_eq!(s.parse::<WalletNumber>().unwrap(), n);
        assert_eq!(s.to_lowercase().parse::<WalletNumber>().unwrap(), n);
    }

    #[test]
    fn reference_format() {
        let r = TransactionRef::of(TransactionId::new(742).unwrap());
        let s = r.to_string();
        assert_eq!(s, "TXN-00000000074206");
        assert_eq!(s.parse::<TransactionRef>().unwrap(), r);
        // A reference is not a wallet number and vice versa.
        assert_eq!(
            s.replace("TXN", "WLT").parse::<WalletNumber>(),
            Err(Error::InvalidWalletNumber)
        );
    }

    #[test]
    fn rejects_malformed_numbers() {
        for bad in [
            "",
            "WLT-",
            "WLT-00000000421",
            "WLT-000000004200",
            "XYZ-000000004217",
            "WLT-0000000042 17",
            "WLT-+00000004217",
            "WLT-00000000000000000000000000000000001",
            "WLT-0000000000000",
            "WLT-٠٠٠٠٠٠٠٠٤٢١٧",
        ] {
            assert_eq!(
                bad.parse::<WalletNumber>(),
                Err(Error::InvalidWalletNumber),
                "{bad:?}"
            );
        }
        // Extra leading zero: not canonical.
        let good = WalletNumber::of(WalletId::new(42).unwrap()).to_string();
        let padded = format!("WLT-0{}", &good[4..]);
        assert_eq!(
            padded.parse::<WalletNumber>(),
            Err(Error::InvalidWalletNumber)
        );
    }

    #[test]
    fn ids_must_be_positive() {
        assert_eq!(WalletId::new(0), Err(Error::InvalidId));
        assert_eq!(UserId::new(-5), Err(Error::InvalidId));
        assert!(TransactionId::new(i64::MAX).is_ok());
    }

    proptest! {
        #[test]
        fn numbers_round_trip(id in 1..=i64::MAX) {
            let n = WalletNumber::of(WalletId::new(id).unwrap());
            prop_assert_eq!(n.to_string().parse::<WalletNumber>().unwrap(), n);
            let r = TransactionRef::of(TransactionId::new(id).unwrap());
            prop_assert_eq!(r.to_string().parse::<TransactionRef>().unwrap(), r);
        }

        #[test]
        fn single_digit_typos_are_caught(id in 1..=999_999_999_999i64, pos in 0usize..16, digit in 0u8..10) {
            let s = WalletNumber::of(WalletId::new(id).unwrap()).to_string();
            let mut bytes = s.into_bytes();
            let i = 4 + pos % (bytes.len() - 4);
            let replacement = b'0' + digit;
            prop_assume!(bytes[i] != replacement);
            bytes[i] = replacement;
            let typo = String::from_utf8(bytes).unwrap();
            prop_assert!(typo.parse::<WalletNumber>().is_err(), "{} accepted", typo);
        }

        #[test]
        fn adjacent_swaps_are_caught(id in 1..=999_999_999_999i64, pos in 0usize..16) {
            let s = WalletNumber::of(WalletId::new(id).unwrap()).to_string();
            let mut bytes = s.into_bytes();
            let i = 4 + pos % (bytes.len() - 5);
            prop_assume!(bytes[i] != bytes[i + 1]);
            bytes.swap(i, i + 1);
            let typo = String::from_utf8(bytes).unwrap();
            prop_assert!(typo.parse::<WalletNumber>().is_err(), "{} accepted", typo);
        }

        #[test]
        fn parse_never_panics(s in ".{0,40}") {
            let _ = s.parse::<WalletNumber>();
            let _ = s.parse::<TransactionRef>();
        }
    }
}
