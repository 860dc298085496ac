//! Users: validated identity fields, KYC status, the stored record and its public view.
//!
//! Every field type can only hold a valid, normalized value: usernames and e-mail addresses
//! are lower-cased (they are unique case-insensitively), phone numbers are reduced to E.164.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::actor::Role;
use crate::auth::PasswordHash;
use crate::error::{Error, Result};
use crate::ids::UserId;
use crate::time::Timestamp;
use crate::wallet::code_enum;

/// Shortest username, in characters.
pub const USERNAME_LEN_MIN: usize = 3;
/// Longest username, in characters.
pub const USERNAME_LEN_MAX: usize = 32;
/// Longest e-mail address, in characters (RFC 5321's path limit).
pub const EMAIL_LEN_MAX: usize = 254;
/// Longest local part of an e-mail address.
pub const EMAIL_LOCAL_LEN_MAX: usize = 64;
/// Longest full name, in characters.
pub const FULL_NAME_CHARS_MAX: usize = 100;
/// Longest national id, in characters.
pub const NATIONAL_ID_LEN_MAX: usize = 32;
/// Longest KYC decision reason, in characters.
pub const KYC_REASON_CHARS_MAX: usize = 500;

code_enum!(
    /// Where a user's identity verification stands.
    KycStatus {
        /// Not reviewed yet.
        Pending = ("PENDING", 1),
        /// Verified by an admin.
        Verified = ("VERIFIED", 2),
        /// Rejected by an admin.
        Rejected = ("REJECTED", 3),
    }
);

/// `TryFrom<String>` through the type's validating `new`, and back to `String`: what serde's
/// `try_from`/`into` attributes use, so deserialized values are validated too.
macro_rules! string_conversions {
    ($name:ident) => {
        impl TryFrom<String> for $name {
            type Error = Error;
            fn try_from(s: String) -> Result<Self> {
                $name::new(&s)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }
    };
}

/// Conversions, `as_str`, and `Display`/`Debug` showing the text.
macro_rules! plain_string_type {
    ($name:ident) => {
        string_conversions!($name);

        impl $name {
            /// The normalized text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }
    };
}

/// A username: 3 to 32 characters from `a-z`, `0-9`, `.`, `_` and `-`, starting with a letter
/// or digit. Upper-case input is lower-cased; other characters (including every non-ASCII
/// letter, which could imitate an ASCII one) are rejected.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Username(String);

impl Username {
    /// Validates and normalizes a username.
    pub fn new(text: &str) -> Result<Self> {
        let invalid = |reason| Err(Error::InvalidUsername { reason });
        let len = text.chars().count();
        if len < USERNAME_LEN_MIN {
            return invalid("shorter than 3 characters");
        }
        if len > USERNAME_LEN_MAX {
            return invalid("longer than 32 characters");
        }
        let lower = text.to_ascii_lowercase();
        if !lower
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        {
            return invalid("only letters a-z, digits and . _ - are allowed");
        }
        if !lower
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        {
            return invalid("must start with a letter or digit");
        }
        Ok(Username(lower))
    }
}

plain_string_type!(Username);

/// An e-mail address, validated to the common subset of RFC 5321 that mail systems accept:
/// a dot-atom local part (letters, digits and ``!#$%&'*+/=?^_`{|}~-``, dots not leading,
/// trailing or doubled) and a domain of at least two DNS labels with an alphabetic top-level
/// label. Internationalized domains are accepted in their ASCII (`xn--`) form. The whole
/// address is lower-cased: it identifies a user case-insensitively.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    /// Validates and normalizes an e-mail address (surrounding spaces are trimmed).
    pub fn new(text: &str) -> Result<Self> {
        let invalid = |reason| Err(Error::InvalidEmail { reason });
        let text = text.trim();
        if text.is_empty() {
            return invalid("empty");
        }
        if text.len() > EMAIL_LEN_MAX {
            return invalid("longer than 254 characters");
        }
        let Some((local, domain)) = text.rsplit_once('@') else {
            return invalid("missing @");
        };
        if local.is_empty() || local.len() > EMAIL_LOCAL_LEN_MAX {
            return invalid("the part before @ must have 1 to 64 characters");
        }
        let atext = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~-".contains(&b);
        if !local.bytes().all(|b| atext(b) || b == b'.') {
            return invalid("the part before @ has a character that is not allowed");
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return invalid("misplaced dot before @");
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2 {
            return invalid("the domain needs at least two labels");
        }
        for label in &labels {
            let ok = (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-');
            if !ok {
                return invalid("malformed domain");
            }
        }
        let tld = labels.last().copied().unwrap_or_default();
        if tld.len() < 2 || !tld.bytes().all(|b| b.is_ascii_alphabetic()) {
            return invalid("malformed top-level domain");
        }
        Ok(Email(text.to_ascii_lowercase()))
    }

    /// The part before `@`.
    pub fn local_part(&self) -> &str {
        self.0.rsplit_once('@').map_or(&self.0, |(local, _)| local)
    }
}

plain_string_type!(Email);

/// A phone number in E.164 form: `+`, then 8 to 15 digits, the first not zero. Spaces, dashes,
/// dots and parentheses in the input are removed.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Validates and normalizes a phone number.
    pub fn new(text: &str) -> Result<Self> {
        let invalid = |reason| Err(Error::InvalidPhone { reason });
        if text.len() > 64 {
            return invalid("too long");
        }
        let compact: String = text
            .trim()
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
            .collect();
        let Some(digits) = compact.strip_prefix('+') else {
            return invalid("must start with + and the country code");
        };
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return invalid("only digits may follow +");
        }
        if !(8..=15).contains(&digits.len()) {
            return invalid("must have 8 to 15 digits");
        }
        if digits.starts_with('0') {
            return invalid("country code cannot start with 0");
        }
        Ok(PhoneNumber(compact))
    }
}

plain_string_type!(PhoneNumber);

fn personal_text(field: &'static str, text: &str, max: usize) -> Result<String> {
    let invalid = |reason| Err(Error::InvalidPersonalData { field, reason });
    let text = text.trim();
    if text.is_empty() {
        return invalid("empty");
    }
    if text.len() > max * 4 || text.chars().count() > max {
        return invalid("too long");
    }
    if text
        .chars()
        .any(|c| c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'))
    {
        return invalid("contains control characters");
    }
    Ok(text.to_owned())
}

/// A person's full name: 1 to 100 characters, no control characters; any script.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FullName(String);

impl FullName {
    /// Validates a full name (surrounding spaces are trimmed).
    pub fn new(text: &str) -> Result<Self> {
        personal_text("full name", text, FULL_NAME_CHARS_MAX).map(FullName)
    }
}

plain_string_type!(FullName);

/// A national identity number: 1 to 32 letters, digits or dashes, upper-cased. Personal data:
/// `Debug` shows only its last two characters.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NationalId(String);

impl NationalId {
    /// Validates and normalizes a national id (spaces are removed).
    pub fn new(text: &str) -> Result<Self> {
        let invalid = |reason| {
            Err(Error::InvalidPersonalData {
                field: "national id",
                reason,
            })
        };
        if text.len() > NATIONAL_ID_LEN_MAX * 4 {
            return invalid("too long");
        }
        let compact: String = text.chars().filter(|c| *c != ' ').collect();
        if compact.is_empty() {
            return invalid("empty");
        }
        if compact.len() > NATIONAL_ID_LEN_MAX {
            return invalid("too long");
        }
        if !compact
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return invalid("only letters, digits and - are allowed");
        }
        Ok(NationalId(compact.to_ascii_uppercase()))
    }

    /// The normalized id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

string_conversions!(NationalId);

impl fmt::Debug for NationalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tail: String = self
            .0
            .chars()
            .rev()
            .take(2)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        write!(f, "NationalId(…{tail})")
    }
}

/// A KYC decision's reason: 1 to 500 characters, no control characters.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KycReason(String);

impl KycReason {
    /// Validates a reason.
    pub fn new(text: &str) -> Result<Self> {
        personal_text("KYC reason", text, KYC_REASON_CHARS_MAX).map(KycReason)
    }
}

plain_string_type!(KycReason);

/// The personal data of a user, all validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// Unique, lower-case.
    pub username: Username,
    /// Unique, lower-case.
    pub email: Email,
    /// Full name.
    pub full_name: FullName,
    /// E.164 phone number.
    pub phone: PhoneNumber,
    /// National id, if given.
    pub national_id: Option<NationalId>,
}

/// A stored user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Id.
    pub id: UserId,
    /// Personal data; `None` once the user is deleted (erased).
    pub profile: Option<Profile>,
    /// Role.
    pub role: Role,
    /// Whether the user may log in and act.
    pub active: bool,
    /// KYC status.
    pub kyc: KycStatus,
    /// The reason given with the last KYC decision.
    pub kyc_reason: Option<KycReason>,
    /// The password hash (PHC string); `None` once deleted.
    pub password: Option<PasswordHash>,
    /// Bumped whenever outstanding sessions must die (password change, deactivation, role
    /// change, deletion): tokens carry the version they were issued under.
    pub token_version: u32,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
    /// When the user was deleted, if they were.
    pub deleted_at: Option<Timestamp>,
}

impl UserRecord {
    /// Whether the user is deleted.
    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }

    /// Whether the user is an active, undeleted SUPERUSER.
    pub fn is_active_superuser(&self) -> bool {
        self.role == Role::Superuser && self.active && !self.is_deleted()
    }

    /// The public view (no password hash, no token version).
    pub fn to_user(&self) -> User {
        User {
            id: self.id,
            profile: self.profile.clone(),
            role: self.role,
            active: self.active,
            kyc: self.kyc,
            kyc_reason: self.kyc_reason.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
            deleted_at: self.deleted_at,
        }
    }
}

/// A user as callers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Id.
    pub id: UserId,
    /// Personal data (`None` once deleted).
    pub profile: Option<Profile>,
    /// Role.
    pub role: Role,
    /// Whether the user may log in and act.
    pub active: bool,
    /// KYC status.
    pub kyc: KycStatus,
    /// The reason given with the last KYC decision.
    pub kyc_reason: Option<KycReason>,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
    /// When the user was deleted, if they were.
    pub deleted_at: Option<Timestamp>,
}

/// What the user may do while their KYC status is not VERIFIED.
///
/// The default lets an unverified user top up and receive money, and nothing else: no
/// withdrawals and no outgoing transfers, so unverified money cannot leave the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KycPolicy {
    /// May top up their wallets.
    pub top_up: bool,
    /// May send transfers to other wallets (receiving is always allowed).
    pub send: bool,
    /// May withdraw.
    pub withdraw: bool,
}

impl Default for KycPolicy {
    fn default() -> Self {
        KycPolicy {
            top_up: true,
            send: false,
            withdraw: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert_eq!(Username::new("Alice_01").unwrap().as_str(), "alice_01");
        assert_eq!(Username::new("a.b-c").unwrap().as_str(), "a.b-c");
        for (bad, reason) in [
            ("ab", "shorter than 3 characters"),
            (&"a".repeat(33), "longer than 32 characters"),
            ("al ice", "only letters a-z, digits and . _ - are allowed"),
            ("аlice", "only letters a-z, digits and . _ - are allowed"), // Cyrillic а
            ("alice'--", "only letters a-z, digits and . _ - are allowed"),
            ("_alice", "must start with a letter or digit"),
            ("ab\u{0}", "only letters a-z, digits and . _ - are allowed"),
        ] {
            assert_eq!(
                Username::new(bad),
                Err(Error::InvalidUsername { reason }),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn emails() {
        let e = Email::new("  Alice.Smith+tag@Example.COM ").unwrap();
        assert_eq!(e.as_str(), "alice.smith+tag@example.com");
        assert_eq!(e.local_part(), "alice.smith+tag");
        assert!(Email::new("a@xn--bcher-kva.de").is_ok());
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "alice@localhost",
            "alice@example.c",
            "alice@example.123",
            ".alice@example.com",
            "alice.@example.com",
            "al..ice@example.com",
            "al ice@example.com",
            "alice@exa mple.com",
            "alice@-example.com",
            "alice@example-.com",
            "alice@bücher.de",
            "a\"b@example.com",
            "alice@example..com",
        ] {
            assert_eq!(
                Email::new(bad).unwrap_err().code(),
                "invalid_email",
                "{bad:?}"
            );
        }
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert!(Email::new(&long_local).is_err());
        let long = format!("a@{}.com", "b".repeat(250));
        assert!(Email::new(&long).is_err());
    }

    #[test]
    fn phones() {
        assert_eq!(
            PhoneNumber::new("+1 (415) 555-0100").unwrap().as_str(),
            "+14155550100"
        );
        assert_eq!(
            PhoneNumber::new("+919876543210").unwrap().as_str(),
            "+919876543210"
        );
        for bad in [
            "4155550100",
            "+1415",
            "+1234567890123456",
            "+0123456789",
            "+1415555O100",
            "",
            "+",
        ] {
            assert_eq!(
                PhoneNumber::new(bad).unwrap_err().code(),
                "invalid_phone",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn names_and_national_ids() {
        assert_eq!(
            FullName::new("  José Ñúñez 李 ").unwrap().as_str(),
            "José Ñúñez 李"
        );
        assert!(FullName::new("   ").is_err());
        assert!(FullName::new("a\nb").is_err());
        assert!(FullName::new("a\u{202E}b").is_err());
        assert!(FullName::new(&"x".repeat(101)).is_err());
        assert!(FullName::new(&"x".repeat(100)).is_ok());
        let id = NationalId::new("ab 12-34").unwrap();
        assert_eq!(id.as_str(), "AB12-34");
        assert_eq!(format!("{id:?}"), "NationalId(…34)");
        assert!(NationalId::new("12;DROP").is_err());
        assert!(NationalId::new(&"1".repeat(33)).is_err());
        assert!(NationalId::new(" ").is_err());
    }

    #[test]
    fn serde_validates() {
        assert!(serde_json::from_str::<Username>("\"x\"").is_err());
        assert_eq!(
            serde_json::from_str::<Email>("\"A@B.co\"")
                .unwrap()
                .as_str(),
            "a@b.co"
        );
        assert_eq!(
            serde_json::to_string(&KycStatus::Verified).unwrap(),
            "\"VERIFIED\""
        );
    }
}
