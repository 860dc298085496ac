//! Payment links: a wallet owner asks for an amount; anyone else pays it, once.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::{TransactionRef, WalletNumber};
use crate::money::Money;
use crate::text::Description;
use crate::time::Timestamp;
use crate::wallet::code_enum;

code_enum!(
    /// Where a payment link is in its life.
    LinkStatus {
        /// Can be paid.
        Active = ("ACTIVE", 1),
        /// Paid (once, for good).
        Paid = ("PAID", 2),
        /// Withdrawn by its owner.
        Cancelled = ("CANCELLED", 3),
        /// Past its expiry without being paid.
        Expired = ("EXPIRED", 4),
    }
);

impl LinkStatus {
    /// The status of a link stored as `self` that expires at `expires_at`, seen at `now`: an
    /// ACTIVE link past its expiry is EXPIRED.
    pub fn at(self, expires_at: Timestamp, now: Timestamp) -> LinkStatus {
        if self == LinkStatus::Active && now >= expires_at {
            LinkStatus::Expired
        } else {
            self
        }
    }
}

/// Bytes of randomness in a link code: 128 bits, so codes cannot be guessed.
pub const LINK_CODE_BYTES: usize = 16;

/// The unguessable code of a payment link: `PL-` and 32 lower-case hex digits (128 random bits).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkCode([u8; LINK_CODE_BYTES]);

impl LinkCode {
    /// A fresh code from the operating system's random source.
    pub fn random() -> Result<Self> {
        let mut bytes = [0u8; LINK_CODE_BYTES];
        getrandom::fill(&mut bytes)
            .map_err(|e| Error::internal(format!("no random source for a link code: {e}")))?;
        Ok(LinkCode(bytes))
    }

    /// The raw bytes (as stored).
    pub fn bytes(&self) -> &[u8; LINK_CODE_BYTES] {
        &self.0
    }

    /// A code from its raw bytes (tests, imports).
    pub fn from_bytes(bytes: [u8; LINK_CODE_BYTES]) -> Self {
        LinkCode(bytes)
    }
}

impl fmt::Display for LinkCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PL-")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for LinkCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LinkCode({self})")
    }
}

impl FromStr for LinkCode {
    type Err = Error;
    /// Parses `PL-` and 32 hex digits (either case); anything else is [`Error::LinkNotFound`],
    /// so a malformed code and an unknown one look the same to a prober.
    fn from_str(s: &str) -> Result<Self> {
        let hex = s
            .strip_prefix("PL-")
            .or_else(|| s.strip_prefix("pl-"))
            .ok_or(Error::LinkNotFound)?;
        if hex.len() != LINK_CODE_BYTES * 2 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::LinkNotFound);
        }
        let mut out = [0u8; LINK_CODE_BYTES];
        for (i, byte) in out.iter_mut().enumerate() {
            let pair = hex.get(i * 2..i * 2 + 2).ok_or(Error::LinkNotFound)?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| Error::LinkNotFound)?;
        }
        Ok(LinkCode(out))
    }
}

impl Serialize for LinkCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LinkCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A payment link as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentLink {
    /// Its code.
    pub code: LinkCode,
    /// The wallet paid.
    pub wallet: WalletNumber,
    /// The amount asked.
    pub amount: Money,
    /// What it is for.
    pub description: Option<Description>,
    /// Status as stored (see [`PaymentLink::status_at`]).
    pub status: LinkStatus,
    /// When it stops being payable.
    pub expires_at: Timestamp,
    /// The payment, once paid.
    pub paid_by: Option<TransactionRef>,
    /// When it was created.
    pub created_at: Timestamp,
}

impl PaymentLink {
    /// The status at `now`: an ACTIVE link past its expiry is EXPIRED.
    pub fn status_at(&self, now: Timestamp) -> LinkStatus {
        self.status.at(self.expires_at, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_reject_junk() {
        let code = LinkCode::random().unwrap();
        let text = code.to_string();
        assert_eq!(text.len(), 3 + 32);
        assert_eq!(text.parse::<LinkCode>().unwrap(), code);
        assert_eq!(
            format!("PL-{}", text.trim_start_matches("PL-").to_uppercase())
                .parse::<LinkCode>()
                .unwrap(),
            code
        );
        assert_ne!(
            LinkCode::random().unwrap(),
            code,
            "two random codes collided"
        );
        for bad in [
            "",
            "PL-",
            "PL-00",
            "XX-00000000000000000000000000000000",
            "PL-0000000000000000000000000000000g",
            "PL-000000000000000000000000000000000",
        ] {
            assert_eq!(bad.parse::<LinkCode>(), Err(Error::LinkNotFound), "{bad}");
        }
    }
}
