//! Authentication: passwords, session tokens and rate limiting. Pure computation, no I/O
//! (apart from the operating system's random generator, for salts, keys and token ids).
//!
//! - [`secret`]: wrappers that keep passwords, hashes, tokens and keys out of logs and wipe
//!   them from memory when dropped.
//! - [`password`]: the password policy and Argon2id hashing ([`PasswordHasher`]), including a
//!   dummy verification so that unknown users cost as much as wrong passwords.
//! - [`token`]: HS256 session tokens ([`TokenIssuer`]), verified strictly against the time the
//!   caller passes in.
//! - [`limiter`]: a keyed token-bucket [`RateLimiter`] and a per-account [`LoginBackoff`],
//!   both with bounded memory.
//!
//! Like the rest of the core, nothing here reads the clock: every function that needs the
//! time takes `now`.
//!
//! A login, put together by a host:
//!
//! 1. [`LoginBackoff::check`] for the account (and [`RateLimiter::check`] for the client);
//! 2. look the user up; if unknown, [`PasswordHasher::verify_dummy`] and answer
//!    [`Error::InvalidCredentials`](crate::Error::InvalidCredentials);
//! 3. [`PasswordHasher::verify`]; on failure [`LoginBackoff::record_failure`] and the same
//!    error; on success [`LoginBackoff::record_success`], re-hash if
//!    [`PasswordHasher::needs_rehash`], and [`TokenIssuer::issue`].

pub mod limiter;
pub mod password;
pub mod secret;
pub mod token;

pub use limiter::{BackoffConfig, LimitConfig, LoginBackoff, RateLimiter};
pub use password::{HashParams, PasswordHasher, PasswordPolicy};
pub use secret::{JwtSecret, Password, PasswordHash, SessionToken};
pub use token::{Claims, TokenConfig, TokenIssuer, VerifiedToken};
