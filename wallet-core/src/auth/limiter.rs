//! Rate limiting: a keyed token bucket for requests and a per-account backoff for failed
//! logins.
//!
//! Both take the current time as an argument, keep their state in memory behind a mutex, and
//! hold at most a configured number of keys.
//!
//! # Memory bound
//!
//! Each structure keeps at most `max_keys` entries. When a new key arrives and the table is
//! full, one entry is dropped:
//!
//! 1. preferably an *idle* one: a bucket that has refilled completely, or a backoff record
//!    that has been quiet long enough to be forgotten. Dropping it loses nothing, because a
//!    new entry for that key would start in exactly the same state;
//! 2. otherwise the least recently used entry. That key then starts afresh, which is the
//!    price of bounded memory; size `max_keys` above the number of keys active at once.
//!
//! Keys longer than 256 bytes are stored as their SHA-256 digest, so no key costs more than
//! 256 bytes. Both choices cost `O(log n)` per call. Even below the bound, every call also
//! drops up to two idle entries, so memory shrinks again after a burst.
//!
//! A poisoned mutex (a panic in another thread while it held the lock) is recovered rather
//! than propagated: the tables stay consistent between statements, and a limiter that
//! panicked forever after would turn one bug into an outage.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::time::Timestamp;

/// Keys longer than this many bytes are stored as their SHA-256 digest.
pub const KEY_BYTES_MAX: usize = 256;
/// Largest `max_keys` accepted.
const MAX_KEYS_LIMIT: usize = 10_000_000;
/// Largest bucket capacity accepted.
const CAPACITY_MAX: u32 = 1_000_000;
/// Longest refill period accepted, in seconds (one day).
const PER_SECS_MAX: u64 = 86_400;
/// Longest backoff accepted, in milliseconds (one day).
const BACKOFF_MS_MAX: u64 = 86_400_000;
/// Idle entries dropped opportunistically per call.
const IDLE_SWEEP_PER_CALL: usize = 2;
const MICROS_PER_SEC: u64 = 1_000_000;
const MICROS_PER_MS: u64 = 1_000;

/// How a stored key is identified.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum KeyId {
    /// Keys of at most [`KEY_BYTES_MAX`] bytes, as given.
    Raw(Box<str>),
    /// Longer keys, by digest.
    Digest([u8; 32]),
}

impl KeyId {
    fn of(key: &str) -> Self {
        if key.len() > KEY_BYTES_MAX {
            KeyId::Digest(Sha256::digest(key.as_bytes()).into())
        } else {
            KeyId::Raw(key.into())
        }
    }
}

struct Slot<V> {
    value: V,
    /// Position in the use order (higher is more recent).
    seq: u64,
    /// From this time on (microseconds) the entry is idle and can be dropped at no loss.
    idle_at: i64,
}

/// A map with at most `max` entries, indexed by recency of use and by the time each entry
/// becomes idle, so that both kinds of eviction are cheap.
struct Table<V> {
    entries: HashMap<Arc<KeyId>, Slot<V>>,
    by_use: BTreeMap<u64, Arc<KeyId>>,
    by_idle: BTreeSet<(i64, u64)>,
    next_seq: u64,
    max: usize,
}

impl<V> Table<V> {
    fn new(max: usize) -> Self {
        Table {
            entries: HashMap::new(),
            by_use: BTreeMap::new(),
            by_idle: BTreeSet::new(),
            next_seq: 0,
            max,
        }
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn get(&self, key: &KeyId) -> Option<&V> {
        self.entries.get(key).map(|slot| &slot.value)
    }

    fn remove(&mut self, key: &KeyId) {
        if let Some(slot) = self.entries.remove(key) {
            self.by_use.remove(&slot.seq);
            self.by_idle.remove(&(slot.idle_at, slot.seq));
        }
    }

    /// Removes the entry at position `seq` of the use order.
    fn remove_seq(&mut self, seq: u64) {
        if let Some(key) = self.by_use.remove(&seq)
            && let Some(slot) = self.entries.remove(&*key)
        {
            self.by_idle.remove(&(slot.idle_at, slot.seq));
        }
    }

    /// Drops up to `limit` entries that are idle at `now`; returns how many it dropped.
    fn drop_idle(&mut self, now: i64, limit: usize) -> usize {
        let mut dropped = 0;
        while dropped < limit {
            let Some(&(idle_at, seq)) = self.by_idle.first() else {
                break;
            };
            if idle_at > now {
                break;
            }
            self.by_idle.remove(&(idle_at, seq));
            self.remove_seq(seq);
            dropped += 1;
        }
        dropped
    }

    /// Makes room for one new entry: idle entries first, then the least recently used.
    fn make_room(&mut self, now: i64) {
        while self.entries.len() >= self.max {
            if self.drop_idle(now, 1) > 0 {
                continue;
            }
            match self.by_use.first_key_value().map(|(&seq, _)| seq) {
                Some(seq) => self.remove_seq(seq),
                None => {
                    // Unreachable while the indexes agree; start over rather than loop.
                    self.entries.clear();
                    self.by_idle.clear();
                }
            }
        }
    }

    /// Runs `update` on the entry for `key` (created with `fresh` if absent, evicting if
    /// full) and marks it most recently used. `update` returns its result and the time the
    /// entry becomes idle.
    fn upsert<R>(
        &mut self,
        key: KeyId,
        now: i64,
        fresh: impl FnOnce() -> V,
        update: impl FnOnce(&mut V) -> (R, i64),
    ) -> R {
        let seq = self.next_seq;
        // 2^64 calls would take centuries; wrapping just keeps this from ever panicking.
        self.next_seq = self.next_seq.wrapping_add(1);
        if let Some(slot) = self.entries.get_mut(&key) {
            let (result, idle_at) = update(&mut slot.value);
            let (old_seq, old_idle_at) = (slot.seq, slot.idle_at);
            slot.seq = seq;
            slot.idle_at = idle_at;
            self.by_idle.remove(&(old_idle_at, old_seq));
            self.by_idle.insert((idle_at, seq));
            let stored = self
                .by_use
                .remove(&old_seq)
                .unwrap_or_else(|| Arc::new(key));
            self.by_use.insert(seq, stored);
            return result;
        }
        self.make_room(now);
        let mut value = fresh();
        let (result, idle_at) = update(&mut value);
        let key = Arc::new(key);
        self.by_use.insert(seq, Arc::clone(&key));
        self.by_idle.insert((idle_at, seq));
        self.entries.insert(
            key,
            Slot {
                value,
                seq,
                idle_at,
            },
        );
        result
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn config_error(reason: String) -> Error {
    Error::InvalidConfig { reason }
}

fn check_max_keys(max_keys: usize) -> Result<()> {
    if (1..=MAX_KEYS_LIMIT).contains(&max_keys) {
        Ok(())
    } else {
        Err(config_error(format!(
            "max_keys must be between 1 and {MAX_KEYS_LIMIT}"
        )))
    }
}

/// `a / b` rounded up (`b > 0`).
fn div_ceil(a: u64, b: u64) -> u64 {
    a.div_ceil(b.max(1))
}

/// Microseconds from `from` to `to`, zero if `to` is not later.
fn micros_between(from: i64, to: i64) -> u64 {
    u64::try_from(i128::from(to) - i128::from(from)).unwrap_or(0)
}

/// `t + micros`, saturating.
fn plus_micros(t: i64, micros: u64) -> i64 {
    t.saturating_add(i64::try_from(micros).unwrap_or(i64::MAX))
}

/// Settings of a [`RateLimiter`]: `capacity` requests per `per_secs` seconds per key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitConfig {
    /// Requests allowed in a burst, and per period (default 100; 1 to 1 000 000).
    pub capacity: u32,
    /// The period over which `capacity` requests are refilled, in seconds (default 60; 1 to
    /// 86 400).
    pub per_secs: u64,
    /// Most keys tracked at once (default 100 000; 1 to 10 000 000).
    pub max_keys: usize,
}

impl Default for LimitConfig {
    fn default() -> Self {
        LimitConfig {
            capacity: 100,
            per_secs: 60,
            max_keys: 100_000,
        }
    }
}

impl LimitConfig {
    /// Checks the ranges documented on each field.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the field out of range.
    pub fn validate(&self) -> Result<()> {
        if !(1..=CAPACITY_MAX).contains(&self.capacity) {
            return Err(config_error(format!(
                "rate limit capacity must be between 1 and {CAPACITY_MAX}"
            )));
        }
        if !(1..=PER_SECS_MAX).contains(&self.per_secs) {
            return Err(config_error(format!(
                "rate limit per_secs must be between 1 and {PER_SECS_MAX}"
            )));
        }
        check_max_keys(self.max_keys)
    }
}

/// One key's bucket. Tokens are counted in "units": a token is `per_secs × 10⁶` units and
/// the bucket gains `capacity` units per microsecond, so refills are exact integer sums and
/// never drift, however the calls are spaced.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    units: u64,
    /// Time of the last refill, in microseconds.
    last: i64,
}

/// A token-bucket rate limiter keyed by strings (client address, user id, API key).
///
/// Each key may make `capacity` requests at once, and regains one request every
/// `per_secs / capacity` seconds. See the [module documentation](self) for the memory bound.
pub struct RateLimiter {
    config: LimitConfig,
    /// Units per token: the period in microseconds.
    token_units: u64,
    /// Units in a full bucket.
    full_units: u64,
    /// Units regained per microsecond.
    refill_per_micro: u64,
    table: Mutex<Table<Bucket>>,
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("config", &self.config)
            .field("keys", &self.len())
            .finish()
    }
}

impl RateLimiter {
    /// A limiter with `config`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if `config` is out of range.
    pub fn new(config: LimitConfig) -> Result<Self> {
        config.validate()?;
        // Within the validated ranges: at most 8.64e10 units per token and 8.64e16 units per
        // bucket, far below u64::MAX.
        let token_units = config.per_secs * MICROS_PER_SEC;
        let refill_per_micro = u64::from(config.capacity);
        Ok(RateLimiter {
            config,
            token_units,
            full_units: token_units * refill_per_micro,
            refill_per_micro,
            table: Mutex::new(Table::new(config.max_keys)),
        })
    }

    /// The configuration.
    pub fn config(&self) -> LimitConfig {
        self.config
    }

    /// Takes one request from `key`'s allowance at time `now`.
    ///
    /// # Errors
    ///
    /// [`Error::RateLimited`] if the allowance is used up; `retry_after_ms` is the time until
    /// one request is available again, rounded up to the millisecond. A refused request
    /// consumes nothing.
    pub fn check(&self, key: &str, now: Timestamp) -> Result<()> {
        let now = now.as_micros();
        let key = KeyId::of(key);
        let mut table = lock(&self.table);
        table.drop_idle(now, IDLE_SWEEP_PER_CALL);
        let full = self.full_units;
        table.upsert(
            key,
            now,
            || Bucket {
                units: full,
                last: now,
            },
            |bucket| {
                self.refill(bucket, now);
                let result = if bucket.units >= self.token_units {
                    bucket.units -= self.token_units;
                    Ok(())
                } else {
                    let missing = self.token_units - bucket.units;
                    // If the clock stepped back, the bucket only refills from `last` on.
                    let wait = micros_between(now, bucket.last)
                        .saturating_add(div_ceil(missing, self.refill_per_micro));
                    Err(Error::RateLimited {
                        retry_after_ms: div_ceil(wait, MICROS_PER_MS),
                    })
                };
                (result, self.idle_at(bucket))
            },
        )
    }

    /// How many keys are tracked now (at most `max_keys`).
    pub fn len(&self) -> usize {
        lock(&self.table).len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn refill(&self, bucket: &mut Bucket, now: i64) {
        if now > bucket.last {
            let gained = micros_between(bucket.last, now).saturating_mul(self.refill_per_micro);
            bucket.units = bucket.units.saturating_add(gained).min(self.full_units);
            bucket.last = now;
        }
    }

    /// When `bucket` will be full again.
    fn idle_at(&self, bucket: &Bucket) -> i64 {
        let missing = self.full_units.saturating_sub(bucket.units);
        plus_micros(bucket.last, div_ceil(missing, self.refill_per_micro))
    }
}

/// Settings of a [`LoginBackoff`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffConfig {
    /// Failed logins allowed before any waiting (default 5).
    pub free_failures: u32,
    /// Wait after the first failure beyond the free ones, in milliseconds (default 1000; at
    /// least 1).
    pub base_ms: u64,
    /// Longest wait, in milliseconds (default 900 000 = 15 minutes; from `base_ms` to one
    /// day). A key is forgotten when this much time passes without a failure after its
    /// lockout ends.
    pub max_ms: u64,
    /// Most keys tracked at once (default 100 000; 1 to 10 000 000).
    pub max_keys: usize,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            free_failures: 5,
            base_ms: 1000,
            max_ms: 15 * 60 * 1000,
            max_keys: 100_000,
        }
    }
}

impl BackoffConfig {
    /// Checks the ranges documented on each field.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the field out of range.
    pub fn validate(&self) -> Result<()> {
        if self.base_ms == 0 {
            return Err(config_error("backoff base_ms must be at least 1".into()));
        }
        if self.max_ms < self.base_ms || self.max_ms > BACKOFF_MS_MAX {
            return Err(config_error(format!(
                "backoff max_ms must be between base_ms and {BACKOFF_MS_MAX}"
            )));
        }
        check_max_keys(self.max_keys)
    }

    /// The lockout after the `failures`-th consecutive failure, in milliseconds.
    fn wait_ms(&self, failures: u32) -> u64 {
        if failures <= self.free_failures {
            return 0;
        }
        let beyond = failures - self.free_failures - 1;
        1u64.checked_shl(beyond)
            .and_then(|factor| self.base_ms.checked_mul(factor))
            .map_or(self.max_ms, |wait| wait.min(self.max_ms))
    }
}

/// One key's failure record.
#[derive(Debug, Clone, Copy)]
struct Strikes {
    /// Consecutive failures.
    failures: u32,
    /// Time of the latest failure, in microseconds.
    last_failure: i64,
    /// No attempt is allowed before this time, in microseconds.
    locked_until: i64,
}

/// Slows down password guessing against one account (or any other key).
///
/// The first `free_failures` consecutive failures cost nothing. The next one locks the key
/// for `base_ms`, and each failure after that doubles the lockout, up to `max_ms`: with the
/// defaults, failures 6, 7, 8, … lock for 1 s, 2 s, 4 s, … 15 min. A success clears the
/// record; so do `max_ms` without any failure once the lockout is over. (Counting the quiet
/// time from the end of the lockout keeps the cap in force: a guesser who retries each time
/// the lockout ends stays at the longest wait instead of starting over.)
///
/// Call [`LoginBackoff::check`] before verifying a password (and do not verify while it
/// refuses), then [`LoginBackoff::record_failure`] or [`LoginBackoff::record_success`]. See
/// the [module documentation](self) for the memory bound.
pub struct LoginBackoff {
    config: BackoffConfig,
    /// `max_ms` in microseconds: the quiet time after which a record is forgotten.
    forget_after: u64,
    table: Mutex<Table<Strikes>>,
}

impl fmt::Debug for LoginBackoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginBackoff")
            .field("config", &self.config)
            .field("keys", &self.len())
            .finish()
    }
}

impl LoginBackoff {
    /// A backoff with `config`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if `config` is out of range.
    pub fn new(config: BackoffConfig) -> Result<Self> {
        config.validate()?;
        Ok(LoginBackoff {
            config,
            // At most one day in microseconds: no overflow.
            forget_after: config.max_ms * MICROS_PER_MS,
            table: Mutex::new(Table::new(config.max_keys)),
        })
    }

    /// The configuration.
    pub fn config(&self) -> BackoffConfig {
        self.config
    }

    /// Whether `key` may attempt a login at `now`.
    ///
    /// # Errors
    ///
    /// [`Error::RateLimited`] while the key is locked out, with the time left rounded up to
    /// the millisecond.
    pub fn check(&self, key: &str, now: Timestamp) -> Result<()> {
        let now = now.as_micros();
        let key = KeyId::of(key);
        let mut table = lock(&self.table);
        table.drop_idle(now, IDLE_SWEEP_PER_CALL);
        match table.get(&key) {
            Some(strikes) if strikes.locked_until > now => Err(Error::RateLimited {
                retry_after_ms: div_ceil(micros_between(now, strikes.locked_until), MICROS_PER_MS),
            }),
            _ => Ok(()),
        }
    }

    /// Records a failed login for `key` at `now`.
    pub fn record_failure(&self, key: &str, now: Timestamp) {
        let now = now.as_micros();
        let key = KeyId::of(key);
        let mut table = lock(&self.table);
        table.drop_idle(now, IDLE_SWEEP_PER_CALL);
        table.upsert(
            key,
            now,
            || Strikes {
                failures: 0,
                last_failure: now,
                locked_until: i64::MIN,
            },
            |strikes| {
                if now >= self.forget_at(strikes) {
                    *strikes = Strikes {
                        failures: 0,
                        last_failure: now,
                        locked_until: i64::MIN,
                    };
                }
                strikes.failures = strikes.failures.saturating_add(1);
                strikes.last_failure = strikes.last_failure.max(now);
                let wait = self.config.wait_ms(strikes.failures);
                if wait > 0 {
                    let until = plus_micros(now, wait * MICROS_PER_MS);
                    strikes.locked_until = strikes.locked_until.max(until);
                }
                // Forgotten only after the lockout, so an idle record never locks anything.
                ((), self.forget_at(strikes))
            },
        );
    }

    /// When a record is forgotten: `max_ms` after its last failure or the end of its lockout,
    /// whichever is later.
    fn forget_at(&self, strikes: &Strikes) -> i64 {
        plus_micros(
            strikes.last_failure.max(strikes.locked_until),
            self.forget_after,
        )
    }

    /// Records a successful login for `key`: its failures are forgotten.
    pub fn record_success(&self, key: &str) {
        lock(&self.table).remove(&KeyId::of(key));
    }

    /// How many keys are tracked now (at most `max_keys`).
    pub fn len(&self) -> usize {
        lock(&self.table).len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;

    const SEC: i64 = 1_000_000;
    const MS: i64 = 1_000;

    fn at(micros: i64) -> Timestamp {
        Timestamp::from_micros(micros)
    }

    fn limiter(capacity: u32, per_secs: u64, max_keys: usize) -> RateLimiter {
        RateLimiter::new(LimitConfig {
            capacity,
            per_secs,
            max_keys,
        })
        .unwrap()
    }

    fn retry_after(result: Result<()>) -> u64 {
        match result {
            Err(Error::RateLimited { retry_after_ms }) => retry_after_ms,
            other => panic!("expected RateLimited, got {other:?}"),
        }
    }

    /// Checks that the table's three indexes describe the same entries.
    fn assert_consistent<V>(table: &Table<V>) {
        assert_eq!(table.entries.len(), table.by_use.len());
        assert_eq!(table.entries.len(), table.by_idle.len());
        for (key, slot) in &table.entries {
            assert_eq!(table.by_use.get(&slot.seq), Some(key));
            assert!(table.by_idle.contains(&(slot.idle_at, slot.seq)));
        }
        assert!(table.entries.len() <= table.max);
    }

    fn tracked(limiter: &RateLimiter, key: &str) -> bool {
        lock(&limiter.table).get(&KeyId::of(key)).is_some()
    }

    #[test]
    fn config_defaults_and_validation() {
        let c = LimitConfig::default();
        assert_eq!((c.capacity, c.per_secs, c.max_keys), (100, 60, 100_000));
        assert!(c.validate().is_ok());
        let bad = [
            LimitConfig { capacity: 0, ..c },
            LimitConfig {
                capacity: 1_000_001,
                ..c
            },
            LimitConfig { per_secs: 0, ..c },
            LimitConfig {
                per_secs: 86_401,
                ..c
            },
            LimitConfig { max_keys: 0, ..c },
            LimitConfig {
                max_keys: 10_000_001,
                ..c
            },
        ];
        for config in bad {
            assert!(
                matches!(RateLimiter::new(config), Err(Error::InvalidConfig { .. })),
                "{config:?}"
            );
        }
        // The extremes are accepted and do not overflow.
        let big = limiter(1_000_000, 86_400, 10);
        for _ in 0..1000 {
            big.check("k", at(0)).unwrap();
        }
        assert!(big.check("k", at(i64::MAX)).is_ok());
        assert!(big.check("k", at(i64::MIN)).is_ok());
    }

    #[test]
    fn hundred_per_minute() {
        let l = RateLimiter::new(LimitConfig::default()).unwrap();
        let t = 1_700_000_000 * SEC;
        for i in 0..100 {
            assert!(l.check("1.2.3.4", at(t)).is_ok(), "request {i}");
        }
        // The 101st is refused: one token comes back every 60 s / 100 = 600 ms.
        assert_eq!(retry_after(l.check("1.2.3.4", at(t))), 600);
        // Refused requests consume nothing: the answer stays the same.
        assert_eq!(retry_after(l.check("1.2.3.4", at(t))), 600);
        // 200 ms later, 400 ms remain.
        assert_eq!(retry_after(l.check("1.2.3.4", at(t + 200 * MS))), 400);
        // One microsecond short: still refused, rounded up to 1 ms.
        assert_eq!(retry_after(l.check("1.2.3.4", at(t + 600 * MS - 1))), 1);
        // Exactly on time: allowed, and the next one waits a full interval again.
        assert!(l.check("1.2.3.4", at(t + 600 * MS)).is_ok());
        assert_eq!(retry_after(l.check("1.2.3.4", at(t + 600 * MS))), 600);
    }

    #[test]
    fn refill_is_exact_and_capped() {
        let l = limiter(100, 60, 10);
        for _ in 0..100 {
            l.check("k", at(0)).unwrap();
        }
        // After 6 s, exactly 10 tokens are back.
        let t = 6 * SEC;
        for _ in 0..10 {
            l.check("k", at(t)).unwrap();
        }
        assert_eq!(retry_after(l.check("k", at(t))), 600);
        // A long pause refills to capacity, not beyond.
        let t = t + 3600 * SEC;
        for _ in 0..100 {
            l.check("k", at(t)).unwrap();
        }
        assert!(l.check("k", at(t)).is_err());
    }

    #[test]
    fn no_drift_over_many_small_steps() {
        // 7 requests per 3 s: one every 428 571.43 µs, which no integer interval matches.
        let l = limiter(7, 3, 10);
        for _ in 0..7 {
            l.check("k", at(0)).unwrap();
        }
        // Poll in steps that share no factor with the interval; by 300 s exactly 700
        // requests must have got through.
        let mut allowed = 0;
        let mut t = 0;
        loop {
            if l.check("k", at(t)).is_ok() {
                allowed += 1;
            }
            if t == 300 * SEC {
                break;
            }
            t = (t + 9_973).min(300 * SEC);
        }
        // Token k is due at k × 3/7 s: the 700th exactly at 300 s.
        assert_eq!(allowed, 700);
        // And the next token is due exactly at 300 s + 3/7 s, rounded up.
        let l = limiter(7, 3, 10);
        for _ in 0..7 {
            l.check("k", at(0)).unwrap();
        }
        assert_eq!(retry_after(l.check("k", at(0))), 429);
        assert!(l.check("k", at(428_571)).is_err());
        assert!(l.check("k", at(428_572)).is_ok());
    }

    #[test]
    fn keys_are_independent() {
        let l = limiter(3, 60, 100);
        for _ in 0..3 {
            l.check("alice", at(0)).unwrap();
        }
        assert!(l.check("alice", at(0)).is_err());
        for _ in 0..3 {
            l.check("bob", at(0)).unwrap();
        }
        assert!(l.check("bob", at(0)).is_err());
        assert!(l.check("Alice", at(0)).is_ok());
        assert!(l.check("", at(0)).is_ok());
        assert_eq!(l.len(), 4);
    }

    #[test]
    fn clock_stepping_back_does_not_refill() {
        let l = limiter(1, 10, 10);
        l.check("k", at(100 * SEC)).unwrap();
        // The clock jumps back 5 s: the wait counts from the last refill, 10 s + 5 s.
        assert_eq!(retry_after(l.check("k", at(95 * SEC))), 15_000);
        assert!(l.check("k", at(109 * SEC)).is_err());
        assert!(l.check("k", at(110 * SEC)).is_ok());
    }

    #[test]
    fn long_keys_are_hashed() {
        let l = limiter(1, 60, 100);
        let long_a = "a".repeat(300);
        let mut long_b = long_a.clone();
        long_b.push('b');
        l.check(&long_a, at(0)).unwrap();
        assert!(l.check(&long_a, at(0)).is_err());
        assert!(l.check(&long_b, at(0)).is_ok());
        let exactly = "c".repeat(KEY_BYTES_MAX);
        l.check(&exactly, at(0)).unwrap();
        let table = lock(&l.table);
        assert!(table.entries.contains_key(&KeyId::Raw(exactly.into())));
        let digests = table
            .entries
            .keys()
            .filter(|k| matches!(***k, KeyId::Digest(_)))
            .count();
        assert_eq!(digests, 2);
        // A short key never collides with a long key's digest form.
        assert_ne!(KeyId::of(&long_a), KeyId::of(&hex_of(&long_a)));
    }

    fn hex_of(s: &str) -> String {
        let digest: [u8; 32] = Sha256::digest(s.as_bytes()).into();
        crate::auth::password::hex(&digest)
    }

    #[test]
    fn memory_bound_with_a_million_keys() {
        let l = limiter(10, 1, 1000);
        let mut key = String::new();
        for i in 0..1_000_000i64 {
            key.clear();
            write!(key, "client-{i}").unwrap();
            // Time moves 1 µs per request, so some buckets become idle on the way.
            assert!(l.check(&key, at(i)).is_ok());
            if i % 100_000 == 0 {
                assert!(l.len() <= 1000);
                assert_consistent(&lock(&l.table));
            }
        }
        assert_eq!(l.len(), 1000);
        assert_consistent(&lock(&l.table));
        // The most recent keys are the ones kept.
        assert!(tracked(&l, "client-999999"));
        assert!(!tracked(&l, "client-0"));
    }

    #[test]
    fn idle_buckets_are_evicted_before_busy_ones() {
        // One token per second, capacity 10.
        let l = limiter(10, 10, 3);
        // "busy" drains 5 tokens at 0 s: full again only at 5 s.
        for _ in 0..5 {
            l.check("busy", at(0)).unwrap();
        }
        // "quick" takes one token at 1 s: full again at 2 s.
        l.check("quick", at(SEC)).unwrap();
        // "late" takes five tokens at 1.5 s: full again at 6.5 s.
        for _ in 0..5 {
            l.check("late", at(SEC + SEC / 2)).unwrap();
        }
        assert_eq!(l.len(), 3);
        // At 3 s a new key arrives. "busy" is least recently used but not idle; "quick" is
        // idle, so it goes.
        l.check("new", at(3 * SEC)).unwrap();
        assert!(tracked(&l, "busy") && tracked(&l, "late") && tracked(&l, "new"));
        assert!(!tracked(&l, "quick"));
        // "busy" kept its state: 5 + 3 = 8 tokens at 3 s.
        for _ in 0..8 {
            l.check("busy", at(3 * SEC)).unwrap();
        }
        assert!(l.check("busy", at(3 * SEC)).is_err());
        assert_consistent(&lock(&l.table));
    }

    #[test]
    fn least_recently_used_is_evicted_when_none_is_idle() {
        let l = limiter(10, 60, 3);
        for key in ["a", "b", "c"] {
            l.check(key, at(0)).unwrap();
        }
        // Touch "a" again: "b" is now least recently used.
        l.check("a", at(1)).unwrap();
        l.check("d", at(2)).unwrap();
        assert!(tracked(&l, "a") && tracked(&l, "c") && tracked(&l, "d"));
        assert!(!tracked(&l, "b"));
        // Then "c".
        l.check("e", at(3)).unwrap();
        assert!(!tracked(&l, "c"));
        assert_eq!(l.len(), 3);
        assert_consistent(&lock(&l.table));
    }

    #[test]
    fn idle_entries_are_swept_below_the_bound() {
        let l = limiter(10, 1, 1000);
        for i in 0..100 {
            l.check(&format!("k{i}"), at(0)).unwrap();
        }
        assert_eq!(l.len(), 100);
        // All are full again after 100 ms; each later call drops two of them, whether or not
        // it is itself allowed.
        for _ in 0..60 {
            let _ = l.check("other", at(SEC));
        }
        assert_eq!(l.len(), 1);
        assert!(!l.is_empty());
    }

    #[test]
    fn concurrent_checks_share_one_allowance() {
        let l = limiter(100, 60, 10);
        let allowed = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..50 {
                        if l.check("shared", at(0)).is_ok() {
                            allowed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(allowed.into_inner(), 100);
    }

    #[test]
    fn poisoned_lock_is_recovered() {
        let l = limiter(2, 60, 10);
        l.check("k", at(0)).unwrap();
        let result = std::thread::scope(|s| {
            s.spawn(|| {
                let _guard = l.table.lock();
                panic!("poison the limiter's mutex");
            })
            .join()
        });
        assert!(result.is_err());
        assert!(l.table.is_poisoned());
        assert!(l.check("k", at(0)).is_ok());
        assert!(l.check("k", at(0)).is_err());
        assert_eq!(l.len(), 1);

        let b = LoginBackoff::new(BackoffConfig::default()).unwrap();
        let _ = std::thread::scope(|s| {
            s.spawn(|| {
                let _guard = b.table.lock();
                panic!("poison the backoff's mutex");
            })
            .join()
        });
        b.record_failure("k", at(0));
        assert!(b.check("k", at(0)).is_ok());
        b.record_success("k");
        assert!(b.is_empty());
    }

    #[test]
    fn debug_does_not_list_keys() {
        let l = limiter(2, 60, 10);
        l.check("alice@example.com", at(0)).unwrap();
        let shown = format!("{l:?}");
        assert!(shown.contains("keys: 1"), "{shown}");
        assert!(!shown.contains("alice"), "{shown}");
        let b = LoginBackoff::new(BackoffConfig::default()).unwrap();
        b.record_failure("alice@example.com", at(0));
        assert!(!format!("{b:?}").contains("alice"));
    }

    fn backoff() -> LoginBackoff {
        LoginBackoff::new(BackoffConfig::default()).unwrap()
    }

    #[test]
    fn backoff_config_validation() {
        let c = BackoffConfig::default();
        assert_eq!(
            (c.free_failures, c.base_ms, c.max_ms, c.max_keys),
            (5, 1000, 900_000, 100_000)
        );
        assert!(c.validate().is_ok());
        for bad in [
            BackoffConfig { base_ms: 0, ..c },
            BackoffConfig { max_ms: 999, ..c },
            BackoffConfig {
                max_ms: 86_400_001,
                ..c
            },
            BackoffConfig { max_keys: 0, ..c },
        ] {
            assert!(
                matches!(LoginBackoff::new(bad), Err(Error::InvalidConfig { .. })),
                "{bad:?}"
            );
        }
        assert!(
            LoginBackoff::new(BackoffConfig {
                free_failures: 0,
                base_ms: 1,
                max_ms: 1,
                max_keys: 1
            })
            .is_ok()
        );
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let b = backoff();
        let mut now = 1_000 * SEC;
        for _ in 0..5 {
            assert!(b.check("alice", at(now)).is_ok());
            b.record_failure("alice", at(now));
        }
        // Five free failures: no lockout yet.
        assert!(b.check("alice", at(now)).is_ok());
        // Then 1 s, 2 s, 4 s, … capped at 15 min.
        let mut expected = 1000u64;
        for _ in 0..20 {
            b.record_failure("alice", at(now));
            assert_eq!(retry_after(b.check("alice", at(now))), expected);
            let wait = i64::try_from(expected).unwrap() * MS;
            assert_eq!(retry_after(b.check("alice", at(now + wait - 1))), 1);
            now += wait;
            assert!(b.check("alice", at(now)).is_ok());
            expected = (expected * 2).min(900_000);
        }
        assert_eq!(expected, 900_000);
        // Other keys are unaffected.
        assert!(b.check("bob", at(now)).is_ok());
    }

    #[test]
    fn backoff_wait_never_overflows() {
        let c = BackoffConfig::default();
        assert_eq!(c.wait_ms(0), 0);
        assert_eq!(c.wait_ms(5), 0);
        assert_eq!(c.wait_ms(6), 1000);
        assert_eq!(c.wait_ms(7), 2000);
        assert_eq!(c.wait_ms(15), 512_000);
        assert_eq!(c.wait_ms(16), 900_000);
        assert_eq!(c.wait_ms(70), 900_000);
        assert_eq!(c.wait_ms(u32::MAX), 900_000);
        let none_free = BackoffConfig {
            free_failures: 0,
            ..c
        };
        assert_eq!(none_free.wait_ms(1), 1000);
        let all_free = BackoffConfig {
            free_failures: u32::MAX,
            ..c
        };
        assert_eq!(all_free.wait_ms(u32::MAX), 0);
    }

    #[test]
    fn success_resets() {
        let b = backoff();
        for _ in 0..7 {
            b.record_failure("alice", at(0));
        }
        assert_eq!(retry_after(b.check("alice", at(0))), 2000);
        b.record_success("alice");
        assert!(b.check("alice", at(0)).is_ok());
        assert!(b.is_empty());
        // The count starts over: five free failures again.
        for _ in 0..5 {
            b.record_failure("alice", at(SEC));
        }
        assert!(b.check("alice", at(SEC)).is_ok());
        b.record_failure("alice", at(SEC));
        assert_eq!(retry_after(b.check("alice", at(SEC))), 1000);
    }

    #[test]
    fn quiet_keys_are_forgotten() {
        let b = backoff();
        for _ in 0..8 {
            b.record_failure("alice", at(0));
        }
        assert_eq!(retry_after(b.check("alice", at(0))), 4000);
        // Locked until 4 s; 15 minutes after that without a failure, the record is forgotten
        // and the count restarts.
        let forgotten = 904 * SEC;
        assert!(b.check("alice", at(forgotten)).is_ok());
        b.record_failure("alice", at(forgotten));
        assert!(b.check("alice", at(forgotten)).is_ok());
        // One microsecond short of the quiet time, the count continues instead.
        let b = backoff();
        for _ in 0..8 {
            b.record_failure("alice", at(0));
        }
        b.record_failure("alice", at(forgotten - 1));
        assert_eq!(retry_after(b.check("alice", at(forgotten - 1))), 8000);
        // Forgotten records are also dropped from memory by later calls.
        let b = backoff();
        b.record_failure("alice", at(0));
        b.record_failure("bob", at(0));
        assert_eq!(b.len(), 2);
        assert!(b.check("carol", at(900 * SEC - 1)).is_ok());
        assert_eq!(b.len(), 2);
        assert!(b.check("carol", at(900 * SEC)).is_ok());
        assert_eq!(b.len(), 0);
    }

    #[test]
    fn lockout_cap_is_sustained() {
        // Retrying exactly when each lockout ends never resets the count.
        let b = backoff();
        let mut now = 0;
        for _ in 0..30 {
            b.check("alice", at(now)).unwrap();
            b.record_failure("alice", at(now));
            if let Err(Error::RateLimited { retry_after_ms }) = b.check("alice", at(now)) {
                now += i64::try_from(retry_after_ms).unwrap() * MS;
            }
        }
        assert_eq!(retry_after(b.check("alice", at(now - 1))), 1);
        b.record_failure("alice", at(now));
        assert_eq!(retry_after(b.check("alice", at(now))), 900_000);
    }

    #[test]
    fn backoff_memory_bound() {
        let b = LoginBackoff::new(BackoffConfig {
            max_keys: 500,
            ..BackoffConfig::default()
        })
        .unwrap();
        // A victim locked out first; then a flood of other keys, all within 15 minutes.
        for _ in 0..10 {
            b.record_failure("victim", at(0));
        }
        let mut key = String::new();
        for i in 0..200_000i64 {
            key.clear();
            write!(key, "user-{i}").unwrap();
            b.record_failure(&key, at(i));
            if i % 20_000 == 0 {
                assert!(b.len() <= 500);
                assert_consistent(&lock(&b.table));
            }
        }
        assert_eq!(b.len(), 500);
        assert_consistent(&lock(&b.table));
        // Least recently used went first.
        assert!(b.check("victim", at(200_000)).is_ok());
        // Long keys are bounded too.
        let long = "x".repeat(10_000);
        b.record_failure(&long, at(200_001));
        assert_eq!(b.len(), 500);
    }

    #[test]
    fn backoff_prefers_dropping_forgotten_records() {
        let b = LoginBackoff::new(BackoffConfig {
            max_keys: 2,
            ..BackoffConfig::default()
        })
        .unwrap();
        // With a clock that steps back, use order and forget order differ: "older" is least
        // recently used but remembered until 1000 s; "newer" is forgotten at 900 s.
        b.record_failure("older", at(100 * SEC));
        b.record_failure("newer", at(0));
        b.record_failure("third", at(950 * SEC));
        assert_eq!(b.len(), 2);
        let table = lock(&b.table);
        assert!(table.get(&KeyId::of("older")).is_some());
        assert!(table.get(&KeyId::of("newer")).is_none());
        assert_consistent(&table);
    }

    #[test]
    fn table_evicts_idle_before_least_recently_used() {
        let mut t: Table<u8> = Table::new(3);
        let key = |s: &str| KeyId::of(s);
        // (key, idle_at), inserted in this order at time 0.
        for (k, idle_at) in [("lru", 500), ("idle", 100), ("mru", 900)] {
            t.upsert(key(k), 0, || 0, |_| ((), idle_at));
        }
        // At 200 "idle" is idle, "lru" is not: "idle" goes.
        t.upsert(key("new1"), 200, || 0, |_| ((), 1000));
        assert!(t.get(&key("idle")).is_none());
        assert!(t.get(&key("lru")).is_some());
        // At 300 nothing is idle: the least recently used goes.
        t.upsert(key("new2"), 300, || 0, |_| ((), 1000));
        assert!(t.get(&key("lru")).is_none());
        assert!(t.get(&key("mru")).is_some());
        // Updating an entry moves it to the back of the use order and re-indexes it.
        t.upsert(
            key("mru"),
            300,
            || 0,
            |v| {
                *v += 1;
                ((), 2000)
            },
        );
        t.upsert(key("new3"), 400, || 0, |_| ((), 1000));
        assert!(t.get(&key("new1")).is_none());
        assert_eq!(t.get(&key("mru")), Some(&1));
        assert_eq!(t.len(), 3);
        assert_consistent(&t);
        t.remove(&key("mru"));
        t.remove(&key("absent"));
        assert_eq!(t.len(), 2);
        assert_consistent(&t);
        assert_eq!(t.drop_idle(5000, 10), 2);
        assert_eq!(t.len(), 0);
        assert_consistent(&t);
    }
}
