//! Time, injected: the core never reads the clock itself.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use serde::{Deserialize, Serialize};

/// A point in time: microseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// From microseconds since the Unix epoch.
    pub const fn from_micros(micros: i64) -> Self {
        Timestamp(micros)
    }

    /// From whole seconds since the Unix epoch (saturating).
    pub fn from_secs(secs: i64) -> Self {
        Timestamp(secs.saturating_mul(1_000_000))
    }

    /// Microseconds since the Unix epoch.
    pub fn as_micros(self) -> i64 {
        self.0
    }

    /// This time plus `micros` microseconds (saturating).
    pub fn plus_micros(self, micros: i64) -> Self {
        Timestamp(self.0.saturating_add(micros))
    }

    /// As a `jiff` timestamp, for calendar arithmetic and formatting. `None` outside the range
    /// `jiff` supports (years -9999 to 9999).
    pub fn to_jiff(self) -> Option<jiff::Timestamp> {
        jiff::Timestamp::from_microsecond(self.0).ok()
    }

    /// From a `jiff` timestamp (sub-microsecond precision is truncated).
    pub fn from_jiff(t: jiff::Timestamp) -> Self {
        // jiff's range (±9999 years) in microseconds is about ±3.2e17, well inside i64.
        let micros = t.as_microsecond();
        Timestamp(micros)
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC, e.g. `2026-11-24T10:15:00.123456Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_jiff() {
            Some(t) => t.fmt(f),
            None => write!(f, "@{}us", self.0),
        }
    }
}

/// A source of the current time. The ledger asks it once per operation.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_jiff(jiff::Timestamp::now())
    }
}

/// A clock that only moves when told to: for tests and simulations.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Timestamp) -> Self {
        ManualClock(Arc::new(AtomicI64::new(start.as_micros())))
    }

    /// Moves the clock to `t` (backwards too: the ledger copes with clocks that step back).
    pub fn set(&self, t: Timestamp) {
        self.0.store(t.as_micros(), Ordering::SeqCst);
    }

    /// Moves the clock forward by `micros`.
    pub fn advance_micros(&self, micros: i64) {
        self.0.fetch_add(micros, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_rfc3339_utc() {
        assert_eq!(Timestamp::from_secs(0).to_string(), "1970-01-01T00:00:00Z");
        assert_eq!(
            Timestamp::from_micros(1_700_000_000_123_456).to_string(),
            "2023-11-14T22:13:20.123456Z"
        );
        assert_eq!(
            Timestamp::from_micros(i64::MAX).to_string(),
            format!("@{}us", i64::MAX)
        );
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(Timestamp::from_secs(10));
        assert_eq!(c.now(), Timestamp::from_secs(10));
        c.advance_micros(5);
        assert_eq!(c.now().as_micros(), 10_000_005);
        c.set(Timestamp::from_secs(1));
        assert_eq!(c.now(), Timestamp::from_secs(1));
    }
}
