//! Wrappers for secret values: passwords, password hashes, session tokens and the token
//! signing key.
//!
//! Each wrapper keeps its content out of logs: `Debug` and `Display` print only the type's
//! name and `***`, so a secret that ends up in a `tracing` field or an error message does not
//! leak. Each one also overwrites its memory with zeros when dropped (`zeroize`), which narrows
//! the window in which a secret lingers in freed memory. Reading the content takes an explicit
//! call (`expose`, `as_phc`), which is easy to spot in review.

use std::fmt;

use argon2::password_hash::phc;
use zeroize::Zeroize;

use crate::error::{Error, Result};

/// What every secret prints instead of its content.
const REDACTED: &str = "***";

/// Longest PHC string accepted. Argon2 strings are about 100 characters; the bound keeps a
/// corrupt or hostile value from costing anything to parse.
const PHC_LEN_MAX: usize = 512;

/// Shortest accepted token signing key, in bytes (256 bits, the HS256 output size).
pub(crate) const JWT_SECRET_MIN_LEN: usize = 32;
/// Fewest distinct byte values a signing key must contain.
const JWT_SECRET_MIN_DISTINCT: usize = 8;
/// Longest repeating pattern that marks a key as trivial (`"abab…"`, `"abcdabcd…"`).
const JWT_SECRET_MAX_TRIVIAL_PERIOD: usize = 4;
/// Length of a generated signing key, in bytes (512 bits, the HMAC-SHA-256 block size).
const JWT_SECRET_GENERATED_LEN: usize = 64;

/// Implements redacted `Debug` and `Display` for a secret wrapper.
macro_rules! redacted_fmt {
    ($name:ident) => {
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), REDACTED)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), REDACTED)
            }
        }
    };
}

/// A plaintext password, as typed by a user.
///
/// Check it with [`PasswordPolicy::check`](super::PasswordPolicy::check) before hashing it for
/// storage; never store or log it.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    pub fn new(password: impl Into<String>) -> Self {
        Password(password.into())
    }

    /// The password itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Drop for Password {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

redacted_fmt!(Password);

/// A password hash in the PHC string format (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
///
/// Not a plaintext secret, but still material for an offline guessing attack, so it is
/// treated like one: it never appears in `Debug` or `Display`. Equality compares the PHC
/// strings (for records in tests and state comparisons; password checks go through
/// [`PasswordHasher::verify`](crate::auth::PasswordHasher::verify)).
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Wraps a stored PHC string. It must parse as PHC and carry both a salt and a hash.
    ///
    /// # Errors
    ///
    /// [`Error::StorageCorrupt`] if it does not: hashes come from the store, and a value that
    /// is not a PHC string means the stored data is damaged.
    pub fn from_phc(phc: String) -> Result<Self> {
        let hash = PasswordHash(phc);
        if hash.0.len() > PHC_LEN_MAX {
            return Err(Error::corrupt("password hash is too long"));
        }
        let complete = hash
            .parse()
            .is_some_and(|parsed| parsed.salt.is_some() && parsed.hash.is_some());
        if complete {
            Ok(hash)
        } else {
            Err(Error::corrupt("password hash is not a PHC string"))
        }
    }

    /// The PHC string, for storage.
    pub fn as_phc(&self) -> &str {
        &self.0
    }

    /// The parsed PHC structure (`None` if the string is not PHC, which [`Self::from_phc`]
    /// rules out for values from outside this module).
    pub(crate) fn parse(&self) -> Option<phc::PasswordHash> {
        phc::PasswordHash::new(&self.0).ok()
    }

    /// Wraps a PHC string this crate just produced (no validation needed).
    pub(crate) fn from_trusted(phc: String) -> Self {
        PasswordHash(phc)
    }
}

impl Drop for PasswordHash {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

redacted_fmt!(PasswordHash);

/// A session token (a signed JWT), as handed to a client after login.
#[derive(Clone)]
pub struct SessionToken(String);

impl SessionToken {
    /// Wraps a token, for example one read from an `Authorization` header.
    pub fn new(token: impl Into<String>) -> Self {
        SessionToken(token.into())
    }

    /// The token itself, to send to the client or to verify.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Drop for SessionToken {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

redacted_fmt!(SessionToken);

/// The key that signs and verifies session tokens (HMAC-SHA-256).
///
/// A key is refused when it is obviously weak:
///
/// - shorter than 32 bytes;
/// - fewer than 8 distinct byte values;
/// - one byte value making up more than half of it;
/// - one short pattern (period of at most 4 bytes) repeated, such as `"abab…"`.
///
/// These rules only catch placeholders and typos (`"secret"`, a zero-filled buffer); they do
/// not prove a key is random. Use [`JwtSecret::generate`] to make one, and keep it in the
/// host's secret store.
pub struct JwtSecret(Vec<u8>);

impl JwtSecret {
    /// Wraps a key, checking the rules above.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if the key breaks one of the rules. The message names the
    /// rule, never the key.
    pub fn new(bytes: Vec<u8>) -> Result<Self> {
        // Wrap first so the bytes are wiped on every return path, including errors.
        let secret = JwtSecret(bytes);
        match weakness(&secret.0) {
            None => Ok(secret),
            Some(reason) => Err(Error::InvalidConfig {
                reason: format!("token signing key: {reason}"),
            }),
        }
    }

    /// A new random key of 64 bytes from the operating system's random generator.
    ///
    /// # Errors
    ///
    /// [`Error::Internal`] if the random generator fails.
    pub fn generate() -> Result<Self> {
        loop {
            let mut bytes = vec![0u8; JWT_SECRET_GENERATED_LEN];
            if let Err(e) = getrandom::fill(&mut bytes) {
                bytes.zeroize();
                return Err(Error::internal(format!("random generator failed: {e}")));
            }
            // 64 random bytes break a rule with negligible probability (all drawn from fewer
            // than 8 values, say); draw again rather than hand back a key `new` would refuse.
            if weakness(&bytes).is_none() {
                return Ok(JwtSecret(bytes));
            }
            bytes.zeroize();
        }
    }

    /// The key bytes, for the host to store.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for JwtSecret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

redacted_fmt!(JwtSecret);

/// Which rule, if any, makes `key` too weak to sign tokens.
fn weakness(key: &[u8]) -> Option<&'static str> {
    if key.len() < JWT_SECRET_MIN_LEN {
        return Some("must be at least 32 bytes");
    }
    let mut counts = [0usize; 256];
    for &b in key {
        counts[usize::from(b)] += 1;
    }
    if counts.iter().filter(|&&c| c > 0).count() < JWT_SECRET_MIN_DISTINCT {
        return Some("must contain at least 8 distinct byte values");
    }
    if counts.iter().any(|&c| c * 2 > key.len()) {
        return Some("a single byte value makes up more than half of it");
    }
    let periodic = (1..=JWT_SECRET_MAX_TRIVIAL_PERIOD)
        .any(|period| key.iter().zip(&key[period..]).all(|(a, b)| a == b));
    if periodic {
        return Some("is a short repeated pattern");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const PHC: &str = "$argon2id$v=19$m=256,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$\
                       3LnIJnNQtjVE4aFuv4VsyHe5Zuk6HdbrRlzMRUQPLEA";

    fn assert_redacted(debug: String, display: String, secret: &str, name: &str) {
        for shown in [&debug, &display] {
            assert!(!shown.contains(secret), "{shown:?} shows the secret");
            assert_eq!(shown, &format!("{name}(***)"));
        }
    }

    #[test]
    fn password_is_redacted() {
        let p = Password::new("correct horse battery staple");
        assert_redacted(
            format!("{p:?}"),
            format!("{p}"),
            "correct horse",
            "Password",
        );
        // Also inside other values' Debug output.
        let nested = format!("{:?}", (Some(&p), vec![p.clone()]));
        assert!(!nested.contains("horse"));
        assert!(!format!("{p:#?}").contains("horse"));
        assert_eq!(p.expose(), "correct horse battery staple");
    }

    #[test]
    fn password_hash_is_redacted_and_validated() {
        let h = PasswordHash::from_phc(PHC.to_owned()).unwrap();
        assert_redacted(format!("{h:?}"), format!("{h}"), "argon2", "PasswordHash");
        assert!(!format!("{h:#?}").contains("c29tZXNhbHRzb21lc2FsdA"));
        assert_eq!(h.as_phc(), PHC);
        assert!(h.parse().is_some());
    }

    #[test]
    fn password_hash_rejects_non_phc() {
        let too_long = format!("{PHC}{}", "A".repeat(PHC_LEN_MAX));
        for bad in [
            "",
            "plaintext",
            "argon2id$v=19$m=256,t=1,p=1$c29tZXNhbHQ$aGFzaA",
            "$argon2id$v=19$m=256,t=1,p=1",
            "$argon2id$v=19$m=256,t=1,p=1$c29tZXNhbHRzb21lc2FsdA",
            "$argon2id$v=19$m=256,t=1,p=1$!!!$aGFzaA",
            "$argon2id$v=19$m=256,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$aGFzaA$extra",
            &too_long,
        ] {
            let err = PasswordHash::from_phc(bad.to_owned()).unwrap_err();
            assert_eq!(err.code(), "storage_corrupt", "{bad:?}");
            // The error never echoes the value.
            if !bad.is_empty() {
                assert!(!err.to_string().contains(bad), "{err}");
            }
        }
    }

    #[test]
    fn session_token_is_redacted() {
        let t = SessionToken::new("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln");
        assert_redacted(format!("{t:?}"), format!("{t}"), "eyJ", "SessionToken");
        assert_eq!(t.expose(), "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln");
    }

    #[test]
    fn jwt_secret_is_redacted() {
        let bytes: Vec<u8> = (b'a'..=b'z').chain(b'A'..=b'Z').collect();
        let s = JwtSecret::new(bytes.clone()).unwrap();
        let as_text = String::from_utf8(bytes).unwrap();
        assert_redacted(format!("{s:?}"), format!("{s}"), &as_text[..8], "JwtSecret");
        assert!(!format!("{s:?}").contains("97"), "no byte values either");
        assert_eq!(s.expose(), as_text.as_bytes());
    }

    #[test]
    fn jwt_secret_rules() {
        let reason = |bytes: Vec<u8>| match JwtSecret::new(bytes) {
            Err(Error::InvalidConfig { reason }) => reason,
            other => panic!("expected InvalidConfig, got {other:?}"),
        };
        let varied = |n: u8| (0..n).map(|i| i.wrapping_mul(37)).collect::<Vec<u8>>();
        assert!(reason(varied(31)).contains("at least 32 bytes"));
        assert!(JwtSecret::new(varied(32)).is_ok());
        assert!(reason(Vec::new()).contains("at least 32 bytes"));
        assert!(reason(vec![0; 32]).contains("distinct"));
        assert!(reason(b"abababababababababababababababab".to_vec()).contains("distinct"));
        // Seven distinct values, spread evenly: still too few.
        assert!(reason((0..64).map(|i| i % 7).collect()).contains("distinct"));
        // Enough distinct values, but one dominates.
        let mut dominated = vec![b'x'; 20];
        dominated.extend(b"0123456789ab");
        assert!(reason(dominated).contains("more than half"));
        // Exactly half is allowed.
        let mut half = vec![b'x'; 16];
        half.extend(b"0123456789abcdef");
        assert!(JwtSecret::new(half).is_ok());
        // Weakness messages never contain the key.
        assert!(!reason(b"hunter2hunter2hunter2hunter2hunt".to_vec()).contains("hunter"));
    }

    #[test]
    fn jwt_secret_rejects_short_periods() {
        // A period-4 pattern only has 4 distinct values, so the distinct-count rule fires
        // first; check the periodicity rule on its own too.
        let key: Vec<u8> = b"abcd".iter().copied().cycle().take(40).collect();
        assert!(JwtSecret::new(key.clone()).is_err());
        assert!(weakness(&key).is_some());
        for period in 1..=4 {
            let pattern: Vec<u8> = (0..period).map(|i| i * 50).collect();
            let key: Vec<u8> = pattern.iter().copied().cycle().take(48).collect();
            assert!(weakness(&key).is_some(), "period {period}");
        }
        // A period of 8 with 8 distinct values passes the periodicity rule (the other rules
        // are about entropy, not structure).
        let key: Vec<u8> = b"abcdefgh".iter().copied().cycle().take(32).collect();
        assert_eq!(weakness(&key), None);
    }

    #[test]
    fn generated_secrets_are_accepted_and_differ() {
        let a = JwtSecret::generate().unwrap();
        let b = JwtSecret::generate().unwrap();
        assert_eq!(a.expose().len(), 64);
        assert_ne!(a.expose(), b.expose());
        assert!(JwtSecret::new(a.expose().to_vec()).is_ok());
    }
}
