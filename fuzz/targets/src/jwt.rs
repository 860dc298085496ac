//! Session-token verification.

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use wallet_core::auth::{TokenConfig, TokenIssuer};
use wallet_core::testkit::test_secret;
use wallet_core::{Role, Timestamp, UserId};

use crate::input::Input;

const LEEWAY_SECS: i64 = 30;
const TTL_SECS_MAX: i64 = 30 * 24 * 60 * 60;
const MICROS_PER_SEC: i128 = 1_000_000;

fn issuer() -> &'static TokenIssuer {
    static ISSUER: OnceLock<TokenIssuer> = OnceLock::new();
    ISSUER.get_or_init(|| {
        let config = TokenConfig {
            leeway_secs: LEEWAY_SECS.unsigned_abs(),
            ..TokenConfig::default()
        };
        match TokenIssuer::new(test_secret(), config) {
            Ok(issuer) => issuer,
            Err(e) => panic!("fixture issuer: {e:?}"),
        }
    })
}

/// HMAC-SHA256 (RFC 2104) of `message` under the test key, written out here so the target
/// does not trust the code it checks.
fn hmac(message: &[u8]) -> Vec<u8> {
    const BLOCK: usize = 64;
    let secret = test_secret();
    let mut key = secret.expose().to_vec();
    if key.len() > BLOCK {
        key = Sha256::digest(&key).to_vec();
    }
    key.resize(BLOCK, 0);
    let pad = |byte: u8| key.iter().map(|k| k ^ byte).collect::<Vec<u8>>();
    let mut inner = Sha256::new();
    inner.update(pad(0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(pad(0x5c));
    outer.update(inner.finalize());
    outer.finalize().to_vec()
}

/// `header.payload.signature`, signed with the test key.
fn sign(header: &[u8], payload: &[u8]) -> String {
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let signature = URL_SAFE_NO_PAD.encode(hmac(signed.as_bytes()));
    format!("{signed}.{signature}")
}

/// Whether `token` carries a genuine HS256 signature by the test key over its first two parts.
fn genuinely_signed(token: &str) -> bool {
    let Some((signed, signature)) = token.rsplit_once('.') else {
        return false;
    };
    URL_SAFE_NO_PAD
        .decode(signature)
        .is_ok_and(|s| s == hmac(signed.as_bytes()))
}

/// Verifies tokens the fuzzer shapes in four ways, at a time it picks:
///
/// 0. any text: accepted only if it carries a genuine signature by the key;
/// 1. a token the issuer made, with bytes overwritten, inserted or removed: accepted only with
///    the claims it was issued with;
/// 2. any header and payload bytes, genuinely signed: accepted only with `alg` HS256 and with
///    the `sub` the verifier returns;
/// 3. well-formed claims with any numbers, genuinely signed: accepted exactly when the times
///    are inside the window (`nbf` − leeway ≤ now < `exp` + leeway, 0 < `exp` − `iat` ≤ 30 days).
///
/// A refusal is always `invalid_token`.
pub fn jwt(data: &[u8]) {
    let mut input = Input::new(data);
    let mode = input.u8() % 4;
    let now = match input.u8() % 4 {
        // Around the issuing time, most often.
        0 | 1 => Timestamp::from_micros(
            wallet_core::testkit::START
                .as_micros()
                .saturating_add(i64::from(input.u32()) * 1_000),
        ),
        2 => Timestamp::from_micros(input.i64()),
        _ => Timestamp::from_secs(input.i64()),
    };
    match mode {
        0 => {
            let token = String::from_utf8_lossy(input.rest()).into_owned();
            let _ = check(&token, now, None);
        }
        1 => tampered(&mut input, now),
        2 => {
            let header = input.bytes(200).to_vec();
            let payload = input.rest();
            let token = sign(&header, payload);
            if let Ok(v) = check(&token, now, None) {
                let header: serde_json::Value = serde_json::from_slice(&header)
                    .unwrap_or_else(|e| panic!("accepted a header that is not JSON: {e}"));
                assert_eq!(header["alg"], "HS256", "accepted another algorithm");
                let claims: serde_json::Value = serde_json::from_slice(payload)
                    .unwrap_or_else(|e| panic!("accepted claims that are not JSON: {e}"));
                assert_eq!(claims["sub"], v.user.get().to_string(), "user changed");
            }
        }
        _ => claims(&mut input, now),
    }
}

/// Verifies `token`; a refusal must be `invalid_token`, an acceptance must be genuinely
/// signed (and equal `expected`, when given).
fn check(
    token: &str,
    now: Timestamp,
    expected: Option<(UserId, Role, u32)>,
) -> Result<wallet_core::auth::VerifiedToken, ()> {
    match issuer().verify(token, now) {
        Ok(v) => {
            assert!(genuinely_signed(token), "accepted a forged token {token:?}");
            if let Some((user, role, version)) = expected {
                assert_eq!((v.user, v.role, v.version), (user, role, version));
            }
            Ok(v)
        }
        Err(e) => {
            assert_eq!(e.code(), "invalid_token", "{token:?}: {e:?}");
            Err(())
        }
    }
}

fn tampered(input: &mut Input<'_>, now: Timestamp) {
    let user = UserId::new(i64::from(input.u16()) + 1).unwrap_or_else(|e| panic!("{e:?}"));
    let role = input.pick(Role::ALL);
    let version = input.u32();
    let issued_at = wallet_core::testkit::START;
    let (token, _) = issuer()
        .issue(user, role, version, issued_at)
        .unwrap_or_else(|e| panic!("issue: {e:?}"));
    let mut bytes = token.expose().as_bytes().to_vec();
    let edits = input.u8() % 8;
    for _ in 0..edits {
        let at = usize::from(input.u16()) % (bytes.len() + 1);
        let byte = input.u8();
        match input.u8() % 3 {
            0 if at < bytes.len() => bytes[at] = byte,
            1 => bytes.insert(at, byte),
            _ if at < bytes.len() => {
                bytes.remove(at);
            }
            _ => {}
        }
    }
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let _ = check(&text, now, Some((user, role, version)));
}

fn claims(input: &mut Input<'_>, now: Timestamp) {
    let sub = match input.u8() % 4 {
        0 => input.text(24),
        _ => (i64::from(input.u16()) + 1).to_string(),
    };
    let role = match input.u8() % 5 {
        4 => input.text(12),
        i => Role::ALL[usize::from(i) % Role::ALL.len()]
            .as_str()
            .to_owned(),
    };
    let base = now.as_micros().div_euclid(1_000_000);
    let time = |input: &mut Input<'_>| match input.u8() % 3 {
        0 => input.i64(),
        _ => base.saturating_add(i64::from(input.u32()) - i64::from(u32::MAX / 2)),
    };
    let (iat, nbf, exp) = (time(input), time(input), time(input));
    let claims = serde_json::json!({
        "sub": sub,
        "role": role,
        "ver": input.u32(),
        "iss": "wallet",
        "aud": "wallet",
        "iat": iat,
        "nbf": nbf,
        "exp": exp,
        "jti": "00112233445566778899aabbccddeeff",
    });
    let token = sign(
        br#"{"alg":"HS256","typ":"JWT"}"#,
        claims.to_string().as_bytes(),
    );
    let now_micros = i128::from(now.as_micros());
    let leeway = i128::from(LEEWAY_SECS) * MICROS_PER_SEC;
    let micros = |s: i64| i128::from(s) * MICROS_PER_SEC;
    let lifetime = i128::from(exp) - i128::from(iat);
    let in_window = exp > nbf
        && lifetime > 0
        && lifetime <= i128::from(TTL_SECS_MAX)
        && now_micros < micros(exp) + leeway
        && now_micros + leeway >= micros(nbf)
        && now_micros + leeway >= micros(iat);
    // JWT NumericDates the verifier reads are seconds since 1970, so a date before it is
    // ill-formed (the issuer never writes one).
    let well_typed = sub
        .parse::<i64>()
        .is_ok_and(|n| n > 0 && n.to_string() == sub)
        && Role::ALL.iter().any(|r| r.as_str() == role)
        && iat >= 0
        && nbf >= 0
        && exp >= 0;
    match check(&token, now, None) {
        Ok(v) => {
            assert!(in_window, "accepted outside its window: {claims}");
            assert_eq!(v.user.get().to_string(), sub);
            assert_eq!(v.expires_at, Timestamp::from_secs(exp));
        }
        Err(()) => assert!(
            !(in_window && well_typed),
            "refused a valid token at {now:?}: {claims}"
        ),
    }
}
