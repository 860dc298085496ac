//! Password rules and password hashing (Argon2id, PHC strings).

use argon2::password_hash::phc;
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use zeroize::Zeroizing;

use super::secret::{Password, PasswordHash};
use crate::error::{Error, Result};

/// Shortest minimum length a policy may set.
const POLICY_MIN_LEN_FLOOR: usize = 8;
/// Longest maximum length a policy may set. Long passphrases are welcome, but hashing a
/// megabyte per login attempt is not.
pub const PASSWORD_LEN_HARD_MAX: usize = 1024;
/// Longest password, in bytes, that [`PasswordHasher`] hashes or verifies: the hard maximum
/// length in the widest UTF-8 characters. Anything longer cannot have passed a policy, and
/// refusing it up front keeps a megabyte "password" from costing a megabyte of hashing.
const PASSWORD_BYTES_MAX: usize = PASSWORD_LEN_HARD_MAX * 4;
/// Username and e-mail local parts shorter than this are not searched for in passwords:
/// forbidding every password that contains `"jo"` would reject good passwords for nothing.
const IDENTITY_MIN_CHARS: usize = 3;

/// Rules a new password must follow.
///
/// Lengths count Unicode scalar values (`char`s), not bytes, so a passphrase in any script is
/// measured the same way a user counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Fewest characters (default 10, at least 8).
    pub min_len: usize,
    /// Most characters (default 128, at most 1024).
    pub max_len: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy {
            min_len: 10,
            max_len: 128,
        }
    }
}

impl PasswordPolicy {
    /// Checks the policy itself: `8 <= min_len <= max_len <= 1024`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the bound that is broken.
    pub fn validate(&self) -> Result<()> {
        if self.min_len < POLICY_MIN_LEN_FLOOR {
            return Err(config_error(format!(
                "password min_len must be at least {POLICY_MIN_LEN_FLOOR}"
            )));
        }
        if self.max_len < self.min_len {
            return Err(config_error("password max_len must be at least min_len"));
        }
        if self.max_len > PASSWORD_LEN_HARD_MAX {
            return Err(config_error(format!(
                "password max_len must be at most {PASSWORD_LEN_HARD_MAX}"
            )));
        }
        Ok(())
    }

    /// Checks a new password for the account `username` / `email`.
    ///
    /// Rejects, in this order: fewer than `min_len` characters, more than `max_len`
    /// characters, any control character (including tab and newline, which are almost always
    /// paste accidents), the username inside the password, and the e-mail's local part (before
    /// the `@`) inside the password. The last two compare case-insensitively and apply only to
    /// names of at least 3 characters.
    ///
    /// # Errors
    ///
    /// [`Error::WeakPassword`] with a reason that says which rule was broken. The reason never
    /// includes the password.
    pub fn check(&self, password: &Password, username: &str, email: &str) -> Result<()> {
        let text = password.expose();
        let len = text.chars().count();
        if len < self.min_len {
            return Err(Error::WeakPassword {
                reason: "too short",
            });
        }
        if len > self.max_len {
            return Err(Error::WeakPassword { reason: "too long" });
        }
        if text.chars().any(char::is_control) {
            return Err(Error::WeakPassword {
                reason: "contains a control character",
            });
        }
        // A lower-cased copy of the password is itself a secret: wipe it when done.
        let lowered = Zeroizing::new(text.to_lowercase());
        if contains_identity(&lowered, username) {
            return Err(Error::WeakPassword {
                reason: "contains the username",
            });
        }
        let local_part = email.rsplit_once('@').map_or(email, |(local, _)| local);
        if contains_identity(&lowered, local_part) {
            return Err(Error::WeakPassword {
                reason: "contains the e-mail address",
            });
        }
        Ok(())
    }
}

/// Whether `lowered_password` contains `name` (case-insensitively), for names long enough to
/// matter.
fn contains_identity(lowered_password: &str, name: &str) -> bool {
    let name = name.trim();
    name.chars().count() >= IDENTITY_MIN_CHARS && lowered_password.contains(&name.to_lowercase())
}

/// Smallest Argon2 memory cost per lane, in KiB (the algorithm's own minimum).
const MEMORY_KIB_PER_LANE_MIN: u32 = 8;
/// Largest accepted memory cost, in KiB (1 GiB).
const MEMORY_KIB_MAX: u32 = 1024 * 1024;
/// Largest accepted number of passes.
const ITERATIONS_MAX: u32 = 64;
/// Largest accepted number of lanes.
const PARALLELISM_MAX: u32 = 64;
/// Bytes of random salt per hash.
const SALT_LEN: usize = 16;
/// Bytes of hash output.
const OUTPUT_LEN: usize = Params::DEFAULT_OUTPUT_LEN;

/// Argon2id cost parameters.
///
/// The default is OWASP's recommended Argon2id configuration: 19 MiB of memory, 2 passes,
/// 1 lane. Accepted ranges: `memory_kib` from `8 × parallelism` to 1 GiB, `iterations` 1 to
/// 64, `parallelism` 1 to 64. The lower ends are far too cheap for production and exist for
/// tests; hosts should keep the default or go higher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashParams {
    /// Memory cost in KiB (default 19456).
    pub memory_kib: u32,
    /// Number of passes over the memory (default 2).
    pub iterations: u32,
    /// Number of lanes (default 1).
    pub parallelism: u32,
}

impl Default for HashParams {
    fn default() -> Self {
        HashParams {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl HashParams {
    /// Checks the ranges above.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the parameter out of range.
    pub fn validate(&self) -> Result<()> {
        if !(1..=PARALLELISM_MAX).contains(&self.parallelism) {
            return Err(config_error(format!(
                "argon2 parallelism must be between 1 and {PARALLELISM_MAX}"
            )));
        }
        if !(1..=ITERATIONS_MAX).contains(&self.iterations) {
            return Err(config_error(format!(
                "argon2 iterations must be between 1 and {ITERATIONS_MAX}"
            )));
        }
        let memory_min = MEMORY_KIB_PER_LANE_MIN * self.parallelism;
        if !(memory_min..=MEMORY_KIB_MAX).contains(&self.memory_kib) {
            return Err(config_error(format!(
                "argon2 memory_kib must be between 8 x parallelism ({memory_min}) and {MEMORY_KIB_MAX}"
            )));
        }
        Ok(())
    }

    fn to_argon2(self) -> Result<Params> {
        Params::new(
            self.memory_kib,
            self.iterations,
            self.parallelism,
            Some(OUTPUT_LEN),
        )
        .map_err(|e| config_error(format!("argon2 parameters: {e}")))
    }
}

/// Hashes and verifies passwords with Argon2id.
///
/// Cheap to clone and safe to share between threads. Construction computes one hash (the
/// dummy used by [`PasswordHasher::verify_dummy`]), so it costs as much as one login: build it
/// once at startup.
#[derive(Debug, Clone)]
pub struct PasswordHasher {
    params: HashParams,
    argon2: Argon2<'static>,
    /// A hash of a random, forgotten password, made with the configured parameters.
    dummy: PasswordHash,
}

impl PasswordHasher {
    /// A hasher for `params`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if the parameters are out of range; [`Error::Internal`] if the
    /// random generator fails.
    pub fn new(params: HashParams) -> Result<Self> {
        params.validate()?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.to_argon2()?);
        let mut hasher = PasswordHasher {
            params,
            argon2,
            dummy: PasswordHash::from_trusted(String::new()),
        };
        let mut seed = Zeroizing::new([0u8; 32]);
        fill_random(seed.as_mut_slice())?;
        let dummy_password = Password::new(hex(seed.as_slice()));
        hasher.dummy = hasher.hash(&dummy_password)?;
        Ok(hasher)
    }

    /// The configured parameters.
    pub fn params(&self) -> HashParams {
        self.params
    }

    /// Hashes `password` with Argon2id, the configured parameters and a fresh random 16-byte
    /// salt. The password policy is not applied here; check it first.
    ///
    /// # Errors
    ///
    /// [`Error::WeakPassword`] (`"too long"`) for a password over 4096 bytes, which no policy
    /// allows; [`Error::Internal`] if the random generator or the hash computation fails.
    pub fn hash(&self, password: &Password) -> Result<PasswordHash> {
        if password.expose().len() > PASSWORD_BYTES_MAX {
            return Err(Error::WeakPassword { reason: "too long" });
        }
        let mut salt = [0u8; SALT_LEN];
        fill_random(&mut salt)?;
        let hash = self
            .argon2
            .hash_password_with_salt(password.expose().as_bytes(), &salt)
            .map_err(|e| Error::internal(format!("password hashing failed: {e}")))?;
        Ok(PasswordHash::from_trusted(hash.to_string()))
    }

    /// Whether `password` matches `hash`, compared in constant time.
    ///
    /// The hash is recomputed with the algorithm, version and parameters written in its own
    /// PHC string, so hashes made under older settings (or with Argon2i or Argon2d) still
    /// verify; see [`PasswordHasher::needs_rehash`] to upgrade them. A hash whose parameters
    /// exceed the accepted ranges of [`HashParams`] never verifies: a damaged or planted
    /// record must not make one login cost gigabytes. Nor does a password over 4096 bytes,
    /// which no policy allows.
    pub fn verify(&self, password: &Password, hash: &PasswordHash) -> bool {
        if password.expose().len() > PASSWORD_BYTES_MAX {
            return false;
        }
        let Some(parsed) = hash.parse() else {
            return false;
        };
        if !within_limits(&parsed) {
            return false;
        }
        self.argon2
            .verify_password(password.expose().as_bytes(), &parsed)
            .is_ok()
    }

    /// Verifies `password` against a built-in dummy hash and discards the result.
    ///
    /// Call it when the user is unknown, in place of [`PasswordHasher::verify`], so that a
    /// login for an unknown user takes as long as one with a wrong password and response
    /// times do not reveal which accounts exist.
    pub fn verify_dummy(&self, password: &Password) {
        let matched = self.verify(password, &self.dummy);
        std::hint::black_box(matched);
    }

    /// Whether `hash` was made with another algorithm or version, a lower cost (memory,
    /// passes or lanes) than this hasher uses now, another output length or a shorter salt.
    /// Re-hash the password at the next successful login when it was. A hash that is costlier
    /// than the current settings is kept: a node running cheaper settings (a rollback, a
    /// second service) must never downgrade hashes.
    pub fn needs_rehash(&self, hash: &PasswordHash) -> bool {
        let Some(parsed) = hash.parse() else {
            return true;
        };
        let Ok(params) = Params::try_from(&parsed) else {
            return true;
        };
        parsed.algorithm.as_str() != Algorithm::Argon2id.as_str()
            || parsed.version != Some(u32::from(Version::V0x13))
            || params.m_cost() < self.params.memory_kib
            || params.t_cost() < self.params.iterations
            || params.p_cost() < self.params.parallelism
            || !params.keyid().is_empty()
            || !params.data().is_empty()
            || parsed.hash.as_ref().map(phc::Output::len) != Some(OUTPUT_LEN)
            || parsed
                .salt
                .as_ref()
                .is_none_or(|salt| salt.len() < SALT_LEN)
    }
}

/// Whether a stored hash's costs are within the ranges a hasher may be configured with.
fn within_limits(parsed: &phc::PasswordHash) -> bool {
    let Ok(params) = Params::try_from(parsed) else {
        return false;
    };
    HashParams {
        memory_kib: params.m_cost(),
        iterations: params.t_cost(),
        parallelism: params.p_cost(),
    }
    .validate()
    .is_ok()
}

fn fill_random(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|e| Error::internal(format!("random generator failed: {e}")))
}

/// Lower-case hexadecimal.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

fn config_error(reason: impl Into<String>) -> Error {
    Error::InvalidConfig {
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// Cheap parameters: these tests are about behaviour, not cost.
    const FAST: HashParams = HashParams {
        memory_kib: 256,
        iterations: 1,
        parallelism: 1,
    };

    fn fast() -> PasswordHasher {
        PasswordHasher::new(FAST).unwrap()
    }

    fn pw(s: &str) -> Password {
        Password::new(s)
    }

    fn weak_reason(policy: &PasswordPolicy, p: &str, user: &str, email: &str) -> &'static str {
        match policy.check(&pw(p), user, email) {
            Err(Error::WeakPassword { reason }) => reason,
            other => panic!("{p:?}: expected WeakPassword, got {other:?}"),
        }
    }

    #[test]
    fn policy_defaults_and_validation() {
        let p = PasswordPolicy::default();
        assert_eq!((p.min_len, p.max_len), (10, 128));
        assert!(p.validate().is_ok());
        let ok = |min_len, max_len| PasswordPolicy { min_len, max_len }.validate().is_ok();
        assert!(ok(8, 8));
        assert!(ok(8, 1024));
        assert!(!ok(7, 100));
        assert!(!ok(0, 100));
        assert!(!ok(20, 19));
        assert!(!ok(10, 1025));
        assert!(matches!(
            PasswordPolicy {
                min_len: 7,
                max_len: 10
            }
            .validate(),
            Err(Error::InvalidConfig { .. })
        ));
    }

    #[test]
    fn policy_lengths_count_chars() {
        let p = PasswordPolicy::default();
        assert_eq!(weak_reason(&p, "short", "", ""), "too short");
        assert_eq!(weak_reason(&p, "123456789", "", ""), "too short");
        assert!(p.check(&pw("1234567890"), "", "").is_ok());
        assert!(p.check(&pw(&"x".repeat(128)), "", "").is_ok());
        assert_eq!(weak_reason(&p, &"x".repeat(129), "", ""), "too long");
        // Nine two-byte characters are 18 bytes but only nine characters.
        assert_eq!(weak_reason(&p, "ééééééééé", "", ""), "too short");
        assert!(p.check(&pw("éééééééééé"), "", "").is_ok());
        // 128 four-byte characters: 512 bytes, still allowed.
        assert!(p.check(&pw(&"🔑".repeat(128)), "", "").is_ok());
        assert_eq!(weak_reason(&p, &"🔑".repeat(129), "", ""), "too long");
    }

    #[test]
    fn policy_rejects_control_characters() {
        let p = PasswordPolicy::default();
        for bad in [
            "correct\nhorse",
            "correct\thorse",
            "correct\0horse",
            "correct\u{7f}horse",
            "correct\u{85}horse",
        ] {
            assert_eq!(
                weak_reason(&p, bad, "", ""),
                "contains a control character",
                "{bad:?}"
            );
        }
        // Ordinary spaces and non-ASCII letters are fine.
        assert!(p.check(&pw("correct horse ünïcödé"), "", "").is_ok());
    }

    #[test]
    fn policy_rejects_username_and_email() {
        let p = PasswordPolicy::default();
        assert_eq!(
            weak_reason(&p, "xxAliceSmith99", "alicesmith", "a@x.io"),
            "contains the username"
        );
        assert_eq!(
            weak_reason(&p, "my-BOB-password", "Bob", ""),
            "contains the username"
        );
        assert_eq!(
            weak_reason(&p, "ÉLODIE-password", "élodie", ""),
            "contains the username"
        );
        // Usernames shorter than three characters are not searched for.
        assert!(p.check(&pw("my-jo-password"), "jo", "").is_ok());
        assert_eq!(
            weak_reason(&p, "Carol.Jones#2024", "cjones", "carol.jones@example.com"),
            "contains the e-mail address"
        );
        // Only the local part counts, not the domain.
        assert!(
            p.check(&pw("example.com-lover"), "zed", "zed@example.com")
                .is_ok()
        );
        assert!(
            p.check(&pw("ed-is-my-password"), "x", "ed@example.com")
                .is_ok()
        );
        // The distinct reasons let a form point at the right problem.
        assert_ne!(
            weak_reason(&p, "bobbobbobbob", "bob", ""),
            weak_reason(&p, "bobbobbobbob", "x", "bob@x.io")
        );
        assert!(
            p.check(&pw("unrelated passphrase"), "alice", "alice@x.io")
                .is_ok()
        );
    }

    #[test]
    fn hash_params_validation() {
        assert_eq!(
            HashParams::default(),
            HashParams {
                memory_kib: 19_456,
                iterations: 2,
                parallelism: 1
            }
        );
        assert!(HashParams::default().validate().is_ok());
        assert!(FAST.validate().is_ok());
        let ok = |memory_kib, iterations, parallelism| {
            HashParams {
                memory_kib,
                iterations,
                parallelism,
            }
            .validate()
            .is_ok()
        };
        assert!(ok(8, 1, 1));
        assert!(!ok(7, 1, 1));
        assert!(!ok(31, 1, 4));
        assert!(ok(32, 1, 4));
        assert!(ok(1024 * 1024, 64, 64));
        assert!(!ok(1024 * 1024 + 1, 1, 1));
        assert!(!ok(256, 0, 1));
        assert!(!ok(256, 65, 1));
        assert!(!ok(256, 1, 0));
        assert!(!ok(4096, 1, 65));
        assert!(matches!(
            PasswordHasher::new(HashParams {
                memory_kib: 1,
                iterations: 1,
                parallelism: 1
            }),
            Err(Error::InvalidConfig { .. })
        ));
    }

    #[test]
    fn hash_and_verify_round_trip() {
        let h = fast();
        let hash = h.hash(&pw("correct horse battery staple")).unwrap();
        assert!(h.verify(&pw("correct horse battery staple"), &hash));
        assert!(!h.verify(&pw("correct horse battery stapler"), &hash));
        assert!(!h.verify(&pw("Correct horse battery staple"), &hash));
        assert!(!h.verify(&pw(""), &hash));
        // A stored hash read back through from_phc verifies the same way.
        let stored = PasswordHash::from_phc(hash.as_phc().to_owned()).unwrap();
        assert!(h.verify(&pw("correct horse battery staple"), &stored));
        // Another hasher with other parameters verifies by the hash's own parameters.
        let other = PasswordHasher::new(HashParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap();
        assert!(other.verify(&pw("correct horse battery staple"), &stored));
    }

    #[test]
    fn salts_differ() {
        let h = fast();
        let a = h.hash(&pw("same password")).unwrap();
        let b = h.hash(&pw("same password")).unwrap();
        assert_ne!(a.as_phc(), b.as_phc());
        let salt = |hash: &PasswordHash| hash.parse().unwrap().salt.unwrap().to_vec();
        assert_ne!(salt(&a), salt(&b));
        assert_eq!(salt(&a).len(), 16);
        assert!(h.verify(&pw("same password"), &a));
        assert!(h.verify(&pw("same password"), &b));
    }

    #[test]
    fn default_params_phc_format() {
        let h = PasswordHasher::new(HashParams::default()).unwrap();
        let hash = h.hash(&pw("correct horse battery staple")).unwrap();
        assert!(
            hash.as_phc().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{}",
            hash.as_phc()
        );
        assert!(!h.needs_rehash(&hash));
        assert!(h.verify(&pw("correct horse battery staple"), &hash));
    }

    #[test]
    fn phc_format_follows_params() {
        let h = fast();
        let hash = h.hash(&pw("whatever")).unwrap();
        assert!(hash.as_phc().starts_with("$argon2id$v=19$m=256,t=1,p=1$"));
        // $argon2id$v=19$params$salt$hash: a 16-byte salt and a 32-byte hash in unpadded B64.
        let fields: Vec<&str> = hash.as_phc().split('$').collect();
        assert_eq!(fields.len(), 6);
        assert_eq!(fields[4].len(), 22);
        assert_eq!(fields[5].len(), 43);
    }

    #[test]
    fn needs_rehash_detects_other_settings() {
        let h = fast();
        let current = h.hash(&pw("password one")).unwrap();
        assert!(!h.needs_rehash(&current));

        let weaker = PasswordHasher::new(HashParams {
            memory_kib: 128,
            ..FAST
        })
        .unwrap();
        let old = weaker.hash(&pw("password one")).unwrap();
        assert!(h.needs_rehash(&old));
        assert!(!weaker.needs_rehash(&old));
        assert!(
            !weaker.needs_rehash(&current),
            "never downgrade a costlier hash"
        );
        // Still verifies, so the login succeeds and the upgrade can happen.
        assert!(h.verify(&pw("password one"), &old));

        let more_passes = PasswordHasher::new(HashParams {
            iterations: 2,
            ..FAST
        })
        .unwrap();
        assert!(more_passes.needs_rehash(&current));
        let more_lanes = PasswordHasher::new(HashParams {
            parallelism: 2,
            ..FAST
        })
        .unwrap();
        assert!(more_lanes.needs_rehash(&current));
    }

    #[test]
    fn needs_rehash_and_verify_other_algorithms() {
        let h = fast();
        let salt = b"0123456789abcdef";
        let params = Params::new(256, 1, 1, None).unwrap();
        for (algorithm, version) in [
            (Algorithm::Argon2i, Version::V0x13),
            (Algorithm::Argon2d, Version::V0x13),
            (Algorithm::Argon2id, Version::V0x10),
        ] {
            let phc = Argon2::new(algorithm, version, params.clone())
                .hash_password_with_salt(b"legacy password", salt)
                .unwrap()
                .to_string();
            let hash = PasswordHash::from_phc(phc.clone()).unwrap();
            assert!(h.needs_rehash(&hash), "{phc}");
            assert!(h.verify(&pw("legacy password"), &hash), "{phc}");
            assert!(!h.verify(&pw("legacy passwort"), &hash), "{phc}");
        }
        // A short salt (8 bytes) or a short output is upgraded too.
        let short_salt = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
            .hash_password_with_salt(b"pw", b"8bytes!!")
            .unwrap()
            .to_string();
        assert!(h.needs_rehash(&PasswordHash::from_phc(short_salt).unwrap()));
        let short_output = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(256, 1, 1, Some(16)).unwrap(),
        )
        .hash_password_with_salt(b"pw", salt)
        .unwrap()
        .to_string();
        let short_output = PasswordHash::from_phc(short_output).unwrap();
        assert!(h.needs_rehash(&short_output));
        assert!(h.verify(&pw("pw"), &short_output));
    }

    #[test]
    fn foreign_and_oversized_hashes_never_verify() {
        let h = fast();
        // Not Argon2 at all.
        let scrypt = PasswordHash::from_phc(
            "$scrypt$ln=4,r=8,p=1$c29tZXNhbHRzb21lc2FsdA$3LnIJnNQtjVE4aFuv4VsyHe5Zuk6HdbrRlzMRUQPLEA"
                .to_owned(),
        )
        .unwrap();
        assert!(!h.verify(&pw("anything"), &scrypt));
        assert!(h.needs_rehash(&scrypt));
        // Argon2 with a 4 GiB memory cost: refused before any work is done.
        let huge = PasswordHash::from_phc(
            "$argon2id$v=19$m=4194304,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$3LnIJnNQtjVE4aFuv4VsyHe5Zuk6HdbrRlzMRUQPLEA"
                .to_owned(),
        )
        .unwrap();
        let started = Instant::now();
        assert!(!h.verify(&pw("anything"), &huge));
        assert!(started.elapsed() < Duration::from_secs(1));
        // A PHC-shaped string whose hash is wrong.
        let wrong = h.hash(&pw("right")).unwrap();
        let mut tampered = wrong.as_phc().to_owned();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        if let Ok(tampered) = PasswordHash::from_phc(tampered) {
            assert!(!h.verify(&pw("right"), &tampered));
        }
    }

    #[test]
    fn oversized_passwords_are_refused_cheaply() {
        let h = fast();
        let longest = "🔑".repeat(PASSWORD_LEN_HARD_MAX);
        assert_eq!(longest.len(), PASSWORD_BYTES_MAX);
        let hash = h.hash(&pw(&longest)).unwrap();
        assert!(h.verify(&pw(&longest), &hash));
        let too_long = format!("{longest}x");
        assert_eq!(
            h.hash(&pw(&too_long)).unwrap_err(),
            Error::WeakPassword { reason: "too long" }
        );
        assert!(!h.verify(&pw(&too_long), &hash));
        // A megabyte is refused without hashing it.
        let huge = pw(&"x".repeat(1 << 20));
        let started = Instant::now();
        assert!(!h.verify(&huge, &hash));
        h.verify_dummy(&huge);
        assert!(started.elapsed() < Duration::from_millis(200));
    }

    #[test]
    fn hasher_is_clone_send_sync() {
        fn assert_traits<T: Clone + Send + Sync + 'static>() {}
        assert_traits::<PasswordHasher>();
        let h = fast();
        let cloned = h.clone();
        let hash = h.hash(&pw("shared")).unwrap();
        let verified = std::thread::spawn(move || cloned.verify(&pw("shared"), &hash))
            .join()
            .unwrap();
        assert!(verified);
        // Debug shows the parameters but not the dummy hash.
        let shown = format!("{h:?}");
        assert!(shown.contains("PasswordHash(***)"), "{shown}");
        assert!(!shown.contains("$argon2"), "{shown}");
    }

    #[test]
    fn dummy_verification_costs_like_a_real_one() {
        // Big enough that hashing dominates the measurement, small enough to stay quick
        // (Argon2 is optimized even in test builds, where 2 MiB took about 2 ms: too little to
        // stand out from the noise of a loaded machine).
        let h = PasswordHasher::new(HashParams {
            memory_kib: 16 * 1024,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap();
        let hash = h.hash(&pw("the real password")).unwrap();
        let attempt = pw("a wrong guess");
        // Warm up, then interleave the two so that machine load affects both alike.
        assert!(!h.verify(&attempt, &hash));
        h.verify_dummy(&attempt);
        let (mut real, mut dummy) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..5 {
            let t = Instant::now();
            assert!(!h.verify(&attempt, &hash));
            real += t.elapsed();
            let t = Instant::now();
            h.verify_dummy(&attempt);
            dummy += t.elapsed();
        }
        let ratio = dummy.as_secs_f64() / real.as_secs_f64();
        assert!(
            (0.33..3.0).contains(&ratio),
            "dummy {dummy:?} vs real {real:?} (ratio {ratio:.2})"
        );
    }

    #[test]
    fn dummy_hash_uses_configured_params() {
        let h = fast();
        assert!(!h.needs_rehash(&h.dummy));
        assert!(
            h.dummy
                .as_phc()
                .starts_with("$argon2id$v=19$m=256,t=1,p=1$")
        );
        // Two hashers get different dummy passwords and salts.
        assert_ne!(h.dummy.as_phc(), fast().dummy.as_phc());
    }

    #[test]
    fn hex_encodes() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(hex(&[]), "");
    }
}
