//! Session tokens: JWTs signed with HMAC-SHA-256 (HS256).
//!
//! A token carries the user's id, role and per-user token version, and lives for a fixed time.
//! Verification is strict: the algorithm is pinned to HS256 (so `none`, other HMAC sizes and
//! public-key algorithms are refused whatever the header says), the signature, issuer and
//! audience must match, every claim must be present and well-formed, and the time claims are
//! checked against the `now` the caller passes in, never against the system clock.
//!
//! Revocation is the host's job: store a token version per user, compare it with
//! [`VerifiedToken::version`], and bump it to log a user out everywhere.

use std::collections::HashSet;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::password::hex;
use super::secret::{JwtSecret, SessionToken};
use crate::actor::Role;
use crate::error::{Error, Result};
use crate::ids::UserId;
use crate::time::Timestamp;

/// Longest token accepted, in bytes. Real tokens are about 350 bytes; the bound stops a
/// client from making the server decode and parse megabytes.
pub const TOKEN_LEN_MAX: usize = 8 * 1024;
/// Shortest token lifetime, in seconds (1 minute).
const TTL_SECS_MIN: u64 = 60;
/// Longest token lifetime, in seconds (30 days).
const TTL_SECS_MAX: u64 = 30 * 24 * 60 * 60;
/// Largest clock-skew allowance, in seconds (5 minutes).
const LEEWAY_SECS_MAX: u64 = 300;
/// Longest issuer or audience, in characters.
const NAME_CHARS_MAX: usize = 200;
/// Random bytes in a token id (128 bits).
const TOKEN_ID_BYTES: usize = 16;
const MICROS_PER_SEC: i64 = 1_000_000;

/// Settings for issuing and verifying tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenConfig {
    /// The `iss` claim written and required (default `"wallet"`; 1 to 200 characters).
    pub issuer: String,
    /// The `aud` claim written and required (default `"wallet"`; 1 to 200 characters).
    pub audience: String,
    /// How long a token is valid, in seconds (default 86 400 = 1 day; 60 to 30 days).
    pub ttl_secs: u64,
    /// Clock skew tolerated when checking `exp`, `nbf` and `iat`, in seconds (default 30,
    /// at most 300).
    pub leeway_secs: u64,
}

impl Default for TokenConfig {
    fn default() -> Self {
        TokenConfig {
            issuer: "wallet".to_owned(),
            audience: "wallet".to_owned(),
            ttl_secs: 86_400,
            leeway_secs: 30,
        }
    }
}

impl TokenConfig {
    /// Checks the ranges documented on each field.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the field out of range.
    pub fn validate(&self) -> Result<()> {
        for (field, value) in [("issuer", &self.issuer), ("audience", &self.audience)] {
            let chars = value.chars().count();
            if chars == 0 || chars > NAME_CHARS_MAX {
                return Err(Error::InvalidConfig {
                    reason: format!("token {field} must have 1 to {NAME_CHARS_MAX} characters"),
                });
            }
        }
        if !(TTL_SECS_MIN..=TTL_SECS_MAX).contains(&self.ttl_secs) {
            return Err(Error::InvalidConfig {
                reason: format!(
                    "token ttl_secs must be between {TTL_SECS_MIN} and {TTL_SECS_MAX} (30 days)"
                ),
            });
        }
        if self.leeway_secs > LEEWAY_SECS_MAX {
            return Err(Error::InvalidConfig {
                reason: format!("token leeway_secs must be at most {LEEWAY_SECS_MAX}"),
            });
        }
        Ok(())
    }
}

/// The claims inside a session token, as serialized. Times are whole seconds since the Unix
/// epoch (JWT `NumericDate`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id, in decimal.
    pub sub: String,
    /// The user's role when the token was issued (`"USER"`, `"ADMIN"`, `"SUPERUSER"`).
    pub role: String,
    /// The user's token version when the token was issued.
    pub ver: u32,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Issued at.
    pub iat: i64,
    /// Not valid before.
    pub nbf: i64,
    /// Expires at.
    pub exp: i64,
    /// Token id: 128 random bits in lower-case hexadecimal.
    pub jti: String,
}

/// What a valid token says, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// Who the token was issued to.
    pub user: UserId,
    /// Their role when it was issued. Hosts that change roles should also bump the version.
    pub role: Role,
    /// The user's token version when it was issued; compare it with the stored one.
    pub version: u32,
    /// The token's unique id (`jti`), for logs and deny-lists.
    pub token_id: String,
    /// When the token expires (whole seconds).
    pub expires_at: Timestamp,
}

/// Issues and verifies session tokens with one signing key.
///
/// `Debug` shows the configuration, never the key.
#[derive(Clone)]
pub struct TokenIssuer {
    config: TokenConfig,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("config", &self.config)
            .field("secret", &"***")
            .finish()
    }
}

/// Shorthand for a refused token.
fn invalid(reason: &'static str) -> Error {
    Error::InvalidToken { reason }
}

impl TokenIssuer {
    /// An issuer signing with `secret` under `config`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if `config` is out of range.
    pub fn new(secret: JwtSecret, config: TokenConfig) -> Result<Self> {
        config.validate()?;
        let encoding = EncodingKey::from_secret(secret.expose());
        let decoding = DecodingKey::from_secret(secret.expose());
        drop(secret);

        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        // Time is checked in `verify` against the caller's `now`; the library would read the
        // system clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        validation.required_spec_claims = ["exp", "nbf", "iss", "aud", "sub"]
            .into_iter()
            .map(str::to_owned)
            .collect::<HashSet<_>>();
        validation.validate_aud = true;
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);

        Ok(TokenIssuer {
            config,
            encoding,
            decoding,
            validation,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &TokenConfig {
        &self.config
    }

    /// Issues a token for `user` with `role` and token `version`, valid from `now` (rounded
    /// down to the second) for the configured lifetime.
    ///
    /// # Errors
    ///
    /// [`Error::Internal`] if `now` is before 1970, or the random generator or signing fails.
    pub fn issue(
        &self,
        user: UserId,
        role: Role,
        version: u32,
        now: Timestamp,
    ) -> Result<(SessionToken, VerifiedToken)> {
        let iat = now.as_micros().div_euclid(MICROS_PER_SEC);
        if iat < 0 {
            return Err(Error::internal("cannot issue a token dated before 1970"));
        }
        let ttl = i64::try_from(self.config.ttl_secs)
            .map_err(|_| Error::internal("token lifetime out of range"))?;
        let exp = iat
            .checked_add(ttl)
            .ok_or_else(|| Error::internal("token expiry out of range"))?;
        let mut id = [0u8; TOKEN_ID_BYTES];
        getrandom::fill(&mut id)
            .map_err(|e| Error::internal(format!("random generator failed: {e}")))?;
        let claims = Claims {
            sub: user.get().to_string(),
            role: role.as_str().to_owned(),
            ver: version,
            iss: self.config.issuer.clone(),
            aud: self.config.audience.clone(),
            iat,
            nbf: iat,
            exp,
            jti: hex(&id),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| Error::internal(format!("token signing failed: {e}")))?;
        let verified = VerifiedToken {
            user,
            role,
            version,
            token_id: claims.jti,
            expires_at: Timestamp::from_secs(exp),
        };
        Ok((SessionToken::new(token), verified))
    }

    /// Verifies `token` at time `now`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidToken`] with one of these reasons: `"malformed"` (not a JWT, too long,
    /// a claim missing or ill-formed), `"algorithm not allowed"` (anything but HS256),
    /// `"bad signature"`, `"wrong issuer"`, `"wrong audience"`, `"expired"` (at or after `exp`
    /// plus the leeway), `"not yet valid"` (before `nbf` or `iat` minus the leeway).
    pub fn verify(&self, token: &str, now: Timestamp) -> Result<VerifiedToken> {
        if token.is_empty() || token.len() > TOKEN_LEN_MAX {
            return Err(invalid("malformed"));
        }
        check_header(token)?;
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| {
                invalid(match e.kind() {
                    ErrorKind::InvalidSignature => "bad signature",
                    ErrorKind::InvalidAlgorithm
                    | ErrorKind::InvalidAlgorithmName
                    | ErrorKind::MissingAlgorithm
                    | ErrorKind::UnsupportedAlgorithm => "algorithm not allowed",
                    ErrorKind::InvalidIssuer => "wrong issuer",
                    ErrorKind::InvalidAudience => "wrong audience",
                    ErrorKind::ExpiredSignature => "expired",
                    ErrorKind::ImmatureSignature => "not yet valid",
                    _ => "malformed",
                })
            })?
            .claims;
        self.check_times(&claims, now)?;
        typed(claims)
    }

    /// Checks `iat`, `nbf` and `exp` against `now`, allowing the configured leeway.
    fn check_times(&self, claims: &Claims, now: Timestamp) -> Result<()> {
        let Claims { iat, nbf, exp, .. } = *claims;
        // A token we issued has iat = nbf < exp and a lifetime within the allowed maximum.
        let lifetime = i128::from(exp) - i128::from(iat);
        if exp <= nbf || lifetime <= 0 || lifetime > i128::from(TTL_SECS_MAX) {
            return Err(invalid("malformed"));
        }
        // In i128 microseconds, so no claim value can overflow.
        let micros = |secs: i64| i128::from(secs) * i128::from(MICROS_PER_SEC);
        let now = i128::from(now.as_micros());
        let leeway = i128::from(self.config.leeway_secs) * i128::from(MICROS_PER_SEC);
        if now >= micros(exp) + leeway {
            return Err(invalid("expired"));
        }
        if now + leeway < micros(nbf) || now + leeway < micros(iat) {
            return Err(invalid("not yet valid"));
        }
        Ok(())
    }
}

/// Refuses any header whose `alg` is not exactly `"HS256"` before the token goes further, and
/// headers that demand extensions (`crit`) this code does not implement.
fn check_header(token: &str) -> Result<()> {
    let mut parts = token.split('.');
    let (Some(header), Some(_payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("malformed"));
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| invalid("malformed"))?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes).map_err(|_| invalid("malformed"))?;
    if header.get("alg").and_then(serde_json::Value::as_str) != Some("HS256") {
        return Err(invalid("algorithm not allowed"));
    }
    if header.contains_key("crit") {
        return Err(invalid("malformed"));
    }
    Ok(())
}

/// The typed view of verified claims.
fn typed(claims: Claims) -> Result<VerifiedToken> {
    let user = claims
        .sub
        .parse::<i64>()
        .ok()
        // Only the canonical spelling: no sign, no leading zeros.
        .filter(|id| id.to_string() == claims.sub)
        .and_then(|id| UserId::new(id).ok())
        .ok_or_else(|| invalid("malformed"))?;
    let role = Role::ALL
        .iter()
        .copied()
        .find(|role| role.as_str() == claims.role)
        .ok_or_else(|| invalid("malformed"))?;
    let jti_ok = claims.jti.len() == TOKEN_ID_BYTES * 2
        && claims
            .jti
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !jti_ok {
        return Err(invalid("malformed"));
    }
    Ok(VerifiedToken {
        user,
        role,
        version: claims.ver,
        token_id: claims.jti,
        expires_at: Timestamp::from_secs(claims.exp),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// A fixed, valid key (64 distinct byte values).
    fn key_bytes() -> Vec<u8> {
        (0u8..64)
            .map(|i| i.wrapping_mul(97).wrapping_add(13))
            .collect()
    }

    fn issuer() -> TokenIssuer {
        TokenIssuer::new(JwtSecret::new(key_bytes()).unwrap(), TokenConfig::default()).unwrap()
    }

    fn uid(n: i64) -> UserId {
        UserId::new(n).unwrap()
    }

    /// 2026-01-01T00:00:00Z plus a few microseconds.
    fn t0() -> Timestamp {
        Timestamp::from_micros(1_767_225_600_000_123)
    }

    fn secs(n: i64) -> i64 {
        n * MICROS_PER_SEC
    }

    fn reason(result: Result<VerifiedToken>) -> &'static str {
        match result {
            Err(Error::InvalidToken { reason }) => reason,
            other => panic!("expected InvalidToken, got {other:?}"),
        }
    }

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn b64_json(value: &Value) -> String {
        b64(value.to_string().as_bytes())
    }

    /// Good claims for user 7 issued at `t0`.
    fn claims() -> Value {
        let iat = t0().as_micros() / MICROS_PER_SEC;
        json!({
            "sub": "7", "role": "USER", "ver": 1, "iss": "wallet", "aud": "wallet",
            "iat": iat, "nbf": iat, "exp": iat + 3600,
            "jti": "00112233445566778899aabbccddeeff",
        })
    }

    /// A token with any header and payload, HMAC-SHA-256-signed with `key`.
    fn hs256_signed(key: &[u8], header: &Value, payload: &Value) -> String {
        let message = format!("{}.{}", b64_json(header), b64_json(payload));
        let signature = jsonwebtoken::crypto::sign(
            message.as_bytes(),
            &EncodingKey::from_secret(key),
            Algorithm::HS256,
        )
        .unwrap();
        format!("{message}.{signature}")
    }

    fn hs256_header() -> Value {
        json!({"alg": "HS256", "typ": "JWT"})
    }

    #[test]
    fn config_defaults_and_validation() {
        let c = TokenConfig::default();
        assert_eq!(c.issuer, "wallet");
        assert_eq!(c.audience, "wallet");
        assert_eq!(c.ttl_secs, 86_400);
        assert_eq!(c.leeway_secs, 30);
        assert!(c.validate().is_ok());
        let check = |f: fn(&mut TokenConfig)| {
            let mut c = TokenConfig::default();
            f(&mut c);
            c.validate()
        };
        assert!(check(|c| c.ttl_secs = 60).is_ok());
        assert!(check(|c| c.ttl_secs = 59).is_err());
        assert!(check(|c| c.ttl_secs = 30 * 86_400).is_ok());
        assert!(check(|c| c.ttl_secs = 30 * 86_400 + 1).is_err());
        assert!(check(|c| c.leeway_secs = 300).is_ok());
        assert!(check(|c| c.leeway_secs = 301).is_err());
        assert!(check(|c| c.issuer = String::new()).is_err());
        assert!(check(|c| c.audience = String::new()).is_err());
        assert!(check(|c| c.issuer = "é".repeat(200)).is_ok());
        assert!(check(|c| c.issuer = "x".repeat(201)).is_err());
        assert!(check(|c| c.audience = "x".repeat(201)).is_err());
        assert!(matches!(
            check(|c| c.ttl_secs = 0),
            Err(Error::InvalidConfig { .. })
        ));
        let bad = TokenConfig {
            leeway_secs: 1000,
            ..TokenConfig::default()
        };
        assert!(matches!(
            TokenIssuer::new(JwtSecret::new(key_bytes()).unwrap(), bad),
            Err(Error::InvalidConfig { .. })
        ));
    }

    #[test]
    fn issue_and_verify_round_trip() {
        let iss = issuer();
        for role in Role::ALL {
            let (token, issued) = iss.issue(uid(42), *role, 3, t0()).unwrap();
            assert_eq!(issued.user, uid(42));
            assert_eq!(issued.role, *role);
            assert_eq!(issued.version, 3);
            // Expiry: now rounded down to the second, plus one day.
            assert_eq!(
                issued.expires_at.as_micros(),
                secs(1_767_225_600 + 86_400),
                "{}",
                issued.expires_at
            );
            let verified = iss.verify(token.expose(), t0()).unwrap();
            assert_eq!(verified, issued);
            assert!(token.expose().len() < 1024);
        }
    }

    #[test]
    fn issued_claims_are_complete() {
        let iss = issuer();
        let (token, issued) = iss.issue(uid(9), Role::Admin, 0, t0()).unwrap();
        let payload = token.expose().split('.').nth(1).unwrap();
        let claims: Claims =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        let iat = 1_767_225_600;
        assert_eq!(
            claims,
            Claims {
                sub: "9".into(),
                role: "ADMIN".into(),
                ver: 0,
                iss: "wallet".into(),
                aud: "wallet".into(),
                iat,
                nbf: iat,
                exp: iat + 86_400,
                jti: issued.token_id.clone(),
            }
        );
        let header = token.expose().split('.').next().unwrap();
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
        assert_eq!(header, json!({"alg": "HS256", "typ": "JWT"}));
    }

    #[test]
    fn token_ids_are_random_128_bit_hex() {
        let iss = issuer();
        let mut seen = HashSet::new();
        for _ in 0..100 {
            let (_, t) = iss.issue(uid(1), Role::User, 0, t0()).unwrap();
            assert_eq!(t.token_id.len(), 32);
            assert!(
                t.token_id
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            );
            assert!(seen.insert(t.token_id));
        }
    }

    #[test]
    fn hand_signed_good_token_verifies() {
        // The hand-built tokens in the attack tests below differ from this one only in the
        // part under attack.
        let token = hs256_signed(&key_bytes(), &hs256_header(), &claims());
        let v = issuer().verify(&token, t0()).unwrap();
        assert_eq!(v.user, uid(7));
        assert_eq!(v.role, Role::User);
        assert_eq!(v.version, 1);
        assert_eq!(v.token_id, "00112233445566778899aabbccddeeff");
        // The header's typ is optional.
        let token = hs256_signed(&key_bytes(), &json!({"alg": "HS256"}), &claims());
        assert!(issuer().verify(&token, t0()).is_ok());
    }

    #[test]
    fn alg_none_is_rejected() {
        let iss = issuer();
        for alg in ["none", "None", "NONE", "nOnE"] {
            let header = json!({"alg": alg, "typ": "JWT"});
            let unsigned = format!("{}.{}.", b64_json(&header), b64_json(&claims()));
            assert_eq!(
                reason(iss.verify(&unsigned, t0())),
                "algorithm not allowed",
                "{alg}"
            );
            // Same with a signature attached.
            let signed = hs256_signed(&key_bytes(), &header, &claims());
            assert_eq!(reason(iss.verify(&signed, t0())), "algorithm not allowed");
        }
        // Header without alg, alg of the wrong type, alg in another case.
        for header in [
            json!({"typ": "JWT"}),
            json!({"alg": null}),
            json!({"alg": ["HS256"]}),
            json!({"alg": "hs256"}),
        ] {
            let token = hs256_signed(&key_bytes(), &header, &claims());
            assert_eq!(
                reason(iss.verify(&token, t0())),
                "algorithm not allowed",
                "{header}"
            );
        }
    }

    #[test]
    fn other_key_is_rejected() {
        let mut other = key_bytes();
        other[0] ^= 1;
        let forged = hs256_signed(&other, &hs256_header(), &claims());
        assert_eq!(reason(issuer().verify(&forged, t0())), "bad signature");
        // A token issued by an issuer with another key, same config.
        let stranger =
            TokenIssuer::new(JwtSecret::generate().unwrap(), TokenConfig::default()).unwrap();
        let (token, _) = stranger.issue(uid(1), Role::User, 0, t0()).unwrap();
        assert_eq!(
            reason(issuer().verify(token.expose(), t0())),
            "bad signature"
        );
    }

    #[test]
    fn tampered_payload_is_rejected() {
        let iss = issuer();
        let (token, _) = iss.issue(uid(5), Role::User, 0, t0()).unwrap();
        let parts: Vec<&str> = token.expose().split('.').collect();
        let mut payload: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        for (field, value) in [
            ("role", json!("SUPERUSER")),
            ("sub", json!("1")),
            ("exp", json!(payload["exp"].as_i64().unwrap() + 86_400)),
            ("ver", json!(99)),
        ] {
            let original = payload[field].clone();
            payload[field] = value;
            let tampered = format!("{}.{}.{}", parts[0], b64_json(&payload), parts[2]);
            assert_eq!(
                reason(iss.verify(&tampered, t0())),
                "bad signature",
                "{field}"
            );
            payload[field] = original;
        }
        // A flipped bit in the signature, or no signature at all.
        let signature = parts[2];
        let mut sig_bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
        sig_bytes[0] ^= 0x80;
        let bad_sig = format!("{}.{}.{}", parts[0], parts[1], b64(&sig_bytes));
        assert_eq!(reason(iss.verify(&bad_sig, t0())), "bad signature");
        let no_sig = format!("{}.{}.", parts[0], parts[1]);
        assert_eq!(reason(iss.verify(&no_sig, t0())), "bad signature");
    }

    #[test]
    fn expiry_uses_now_and_leeway() {
        let iss = issuer();
        let (token, issued) = iss.issue(uid(5), Role::User, 0, t0()).unwrap();
        let exp = issued.expires_at.as_micros();
        let at = |micros: i64| iss.verify(token.expose(), Timestamp::from_micros(micros));
        assert!(at(exp - 1).is_ok());
        // Past exp but within the 30 s leeway: accepted.
        assert!(at(exp).is_ok());
        assert!(at(exp + secs(29)).is_ok());
        assert!(at(exp + secs(30) - 1).is_ok());
        assert_eq!(reason(at(exp + secs(30))), "expired");
        assert_eq!(reason(at(exp + secs(86_400 * 365))), "expired");
        // Without leeway, expiry is exact.
        let strict = TokenIssuer::new(
            JwtSecret::new(key_bytes()).unwrap(),
            TokenConfig {
                leeway_secs: 0,
                ..TokenConfig::default()
            },
        )
        .unwrap();
        let at = |micros: i64| strict.verify(token.expose(), Timestamp::from_micros(micros));
        assert!(at(exp - 1).is_ok());
        assert_eq!(reason(at(exp)), "expired");
    }

    #[test]
    fn expired_hand_built_token() {
        // A validly signed token that expired an hour before `now`.
        let mut c = claims();
        let iat = c["iat"].as_i64().unwrap();
        c["iat"] = json!(iat - 7200);
        c["nbf"] = json!(iat - 7200);
        c["exp"] = json!(iat - 3600);
        let token = hs256_signed(&key_bytes(), &hs256_header(), &c);
        assert_eq!(reason(issuer().verify(&token, t0())), "expired");
    }

    #[test]
    fn not_yet_valid() {
        let iss = issuer();
        let (token, _) = iss.issue(uid(5), Role::User, 0, t0()).unwrap();
        let iat = secs(1_767_225_600);
        let at = |micros: i64| iss.verify(token.expose(), Timestamp::from_micros(micros));
        // Up to the leeway before nbf is tolerated (the issuing clock may run ahead).
        assert!(at(iat - secs(30)).is_ok());
        assert_eq!(reason(at(iat - secs(30) - 1)), "not yet valid");
        assert_eq!(reason(at(iat - secs(3600))), "not yet valid");

        // nbf in the future while iat is now.
        let mut c = claims();
        c["nbf"] = json!(c["iat"].as_i64().unwrap() + 600);
        let token = hs256_signed(&key_bytes(), &hs256_header(), &c);
        assert_eq!(reason(iss.verify(&token, t0())), "not yet valid");

        // iat far in the future (nbf left in the past).
        let mut c = claims();
        let now = c["iat"].as_i64().unwrap();
        c["iat"] = json!(now + 3000);
        c["exp"] = json!(now + 3600);
        c["nbf"] = json!(now - 10);
        let token = hs256_signed(&key_bytes(), &hs256_header(), &c);
        assert_eq!(reason(iss.verify(&token, t0())), "not yet valid");
    }

    #[test]
    fn wrong_audience_and_issuer() {
        let iss = issuer();
        let other_audience = TokenIssuer::new(
            JwtSecret::new(key_bytes()).unwrap(),
            TokenConfig {
                audience: "admin-console".into(),
                ..TokenConfig::default()
            },
        )
        .unwrap();
        let (token, _) = other_audience.issue(uid(1), Role::User, 0, t0()).unwrap();
        assert_eq!(reason(iss.verify(token.expose(), t0())), "wrong audience");
        assert!(other_audience.verify(token.expose(), t0()).is_ok());

        let other_issuer = TokenIssuer::new(
            JwtSecret::new(key_bytes()).unwrap(),
            TokenConfig {
                issuer: "someone-else".into(),
                ..TokenConfig::default()
            },
        )
        .unwrap();
        let (token, _) = other_issuer.issue(uid(1), Role::User, 0, t0()).unwrap();
        assert_eq!(reason(iss.verify(token.expose(), t0())), "wrong issuer");

        // An audience list containing ours is still not our single-string audience.
        let mut c = claims();
        c["aud"] = json!(["wallet", "other"]);
        let token = hs256_signed(&key_bytes(), &hs256_header(), &c);
        assert_eq!(reason(iss.verify(&token, t0())), "malformed");
    }

    #[test]
    fn public_key_algorithms_are_rejected() {
        let iss = issuer();
        for alg in [
            "RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA", "HS384", "HS512",
        ] {
            let header = json!({"alg": alg, "typ": "JWT"});
            // Signed with HMAC over the shared key: the classic key-confusion attack.
            let hmac = hs256_signed(&key_bytes(), &header, &claims());
            assert_eq!(
                reason(iss.verify(&hmac, t0())),
                "algorithm not allowed",
                "{alg}"
            );
            // Junk signature.
            let junk = format!(
                "{}.{}.{}",
                b64_json(&header),
                b64_json(&claims()),
                b64(&[7u8; 64])
            );
            assert_eq!(
                reason(iss.verify(&junk, t0())),
                "algorithm not allowed",
                "{alg}"
            );
        }
    }

    #[test]
    fn hs512_with_the_same_secret_is_rejected() {
        let mut header = Header::new(Algorithm::HS512);
        header.typ = Some("JWT".into());
        for alg in [Algorithm::HS512, Algorithm::HS384] {
            header.alg = alg;
            let token =
                jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_secret(&key_bytes()))
                    .unwrap();
            assert_eq!(
                reason(issuer().verify(&token, t0())),
                "algorithm not allowed"
            );
        }
    }

    #[test]
    fn overlong_tokens_are_rejected_before_parsing() {
        let iss = issuer();
        // A validly signed token that is simply too big.
        let mut c = claims();
        c["pad"] = json!("x".repeat(TOKEN_LEN_MAX));
        let big = hs256_signed(&key_bytes(), &hs256_header(), &c);
        assert!(big.len() > TOKEN_LEN_MAX);
        assert_eq!(reason(iss.verify(&big, t0())), "malformed");
        // Just under the bound, the same kind of token is fine (extra claims are ignored).
        let mut c = claims();
        c["pad"] = json!("x".repeat(TOKEN_LEN_MAX / 2));
        let ok = hs256_signed(&key_bytes(), &hs256_header(), &c);
        assert!(ok.len() <= TOKEN_LEN_MAX);
        assert!(iss.verify(&ok, t0()).is_ok());
        assert_eq!(
            reason(iss.verify(&"a".repeat(1_000_000), t0())),
            "malformed"
        );
    }

    #[test]
    fn garbage_is_malformed() {
        let iss = issuer();
        let (token, _) = iss.issue(uid(1), Role::User, 0, t0()).unwrap();
        let good = token.expose();
        let header = good.split('.').next().unwrap();
        for junk in [
            "",
            ".",
            "..",
            "...",
            "abc",
            "a.b",
            "a.b.c",
            "a.b.c.d",
            "Bearer x.y.z",
            "🔑.🔑.🔑",
            "\0\0\0",
            &format!("{good}."),
            &format!("{good}.extra"),
            &format!(".{good}"),
            &format!("{header}.!!!.abc"),
            &format!("{header}..abc"),
            &format!("{}.{}.abc", b64(b"not json"), b64(b"{}")),
            &format!("{}.{}.abc", b64(b"[1,2]"), b64(b"{}")),
            &format!("{}.{}.abc", b64(b"{\"alg\":\"HS256\"}"), "e30"),
        ] {
            let r = reason(iss.verify(junk, t0()));
            assert!(
                r == "malformed" || r == "bad signature",
                "{junk:?} gave {r}"
            );
        }
        // Structurally broken ones never reach the signature check.
        for junk in ["", "abc", "a.b", "a.b.c.d", "🔑.🔑.🔑"] {
            assert_eq!(reason(iss.verify(junk, t0())), "malformed", "{junk:?}");
        }
    }

    #[test]
    fn crit_header_is_refused() {
        let header = json!({"alg": "HS256", "typ": "JWT", "crit": ["exp"]});
        let token = hs256_signed(&key_bytes(), &header, &claims());
        assert_eq!(reason(issuer().verify(&token, t0())), "malformed");
    }

    #[test]
    fn every_claim_is_required() {
        let iss = issuer();
        for field in [
            "sub", "role", "ver", "iss", "aud", "iat", "nbf", "exp", "jti",
        ] {
            let mut c = claims();
            c.as_object_mut().unwrap().remove(field);
            let token = hs256_signed(&key_bytes(), &hs256_header(), &c);
            assert_eq!(reason(iss.verify(&token, t0())), "malformed", "{field}");
        }
    }

    #[test]
    fn ill_formed_claims_are_malformed() {
        let iss = issuer();
        let cases: Vec<(&str, Value)> = vec![
            ("sub", json!("abc")),
            ("sub", json!("0")),
            ("sub", json!("-7")),
            ("sub", json!("+7")),
            ("sub", json!("07")),
            ("sub", json!(" 7")),
            ("sub", json!("99999999999999999999")),
            ("sub", json!(7)),
            ("role", json!("ROOT")),
            ("role", json!("user")),
            ("role", json!("")),
            ("ver", json!(-1)),
            ("ver", json!("1")),
            ("ver", json!(4_294_967_296u64)),
            ("jti", json!("")),
            ("jti", json!("00112233445566778899AABBCCDDEEFF")),
            ("jti", json!("00112233445566778899aabbccddeef")),
            ("jti", json!("00112233445566778899aabbccddeeffa")),
            ("jti", json!("zz112233445566778899aabbccddeeff")),
            ("exp", json!("soon")),
            ("exp", json!(-1)),
            ("iat", json!(1.5)),
        ];
        for (field, value) in cases {
            let mut c = claims();
            c[field] = value.clone();
            let token = hs256_signed(&key_bytes(), &hs256_header(), &c);
            assert_eq!(
                reason(iss.verify(&token, t0())),
                "malformed",
                "{field} = {value}"
            );
        }
    }

    #[test]
    fn inconsistent_times_are_malformed() {
        let iss = issuer();
        let now = claims()["iat"].as_i64().unwrap();
        for (iat, nbf, exp) in [
            (now, now, now),                     // zero lifetime
            (now, now + 10, now + 5),            // nbf after exp
            (now + 10, now, now + 5),            // iat after exp
            (now - 40 * 86_400, now, now + 100), // lifetime over 30 days
            (i64::MIN, i64::MIN, i64::MAX),      // extreme values
        ] {
            let mut c = claims();
            c["iat"] = json!(iat);
            c["nbf"] = json!(nbf);
            c["exp"] = json!(exp);
            let token = hs256_signed(&key_bytes(), &hs256_header(), &c);
            assert_eq!(
                reason(iss.verify(&token, t0())),
                "malformed",
                "{iat} {nbf} {exp}"
            );
        }
    }

    #[test]
    fn time_is_never_read_from_the_system_clock() {
        // Issued and verified in 2001: the system clock says otherwise, and must not matter.
        let then = Timestamp::from_secs(1_000_000_000);
        let iss = issuer();
        let (token, issued) = iss.issue(uid(3), Role::User, 0, then).unwrap();
        assert!(iss.verify(token.expose(), then).is_ok());
        assert_eq!(issued.expires_at, Timestamp::from_secs(1_000_086_400));
        // And a token from the real present is "not yet valid" in 2001.
        let (token, _) = iss.issue(uid(3), Role::User, 0, t0()).unwrap();
        assert_eq!(reason(iss.verify(token.expose(), then)), "not yet valid");
        // Before 1970 no token can be issued.
        assert!(matches!(
            iss.issue(uid(3), Role::User, 0, Timestamp::from_micros(-1)),
            Err(Error::Internal { .. })
        ));
    }

    #[test]
    fn issuer_debug_hides_the_secret() {
        let bytes = key_bytes();
        let iss = issuer();
        let shown = format!("{iss:?} {iss:#?}");
        assert!(shown.contains("***"));
        assert!(shown.contains("wallet"));
        let as_list = format!("{bytes:?}");
        assert!(!shown.contains(&as_list[1..20]), "{shown}");
        assert!(!shown.contains(&b64(&bytes)[..12]), "{shown}");
    }
}
