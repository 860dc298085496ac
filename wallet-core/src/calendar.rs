//! Calendar days and months in a time zone: where they start, where the next one starts, and
//! their labels.
//!
//! Daily and monthly totals (limits, statements) are counted over the *local* calendar of a
//! configured zone. A local day does not always start at 00:00 or last 24 hours: daylight
//! saving time may skip midnight (the day then starts when the clocks jump), repeat it, or a
//! zone may skip a whole day. The functions here always answer with the first instant of the
//! period, so consecutive periods tile the time line with no gap.

use std::fmt;
use std::hash::{Hash, Hasher};

use jiff::civil::{Date, Time};
use jiff::tz::AmbiguousOffset;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::time::Timestamp;

/// Longest time zone name accepted (the longest IANA name is about 30 characters).
pub const TIME_ZONE_NAME_LEN_MAX: usize = 64;

/// A calendar period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Granularity {
    /// A local calendar day.
    Day,
    /// A local calendar month.
    Month,
}

/// An IANA time zone (`America/New_York`), or UTC.
///
/// Two zones are equal when their names are equal. Time zone data comes from the system's
/// database when there is one, and otherwise from a copy built into the library.
#[derive(Clone)]
pub struct TimeZone {
    name: String,
    inner: jiff::tz::TimeZone,
}

fn out_of_range() -> Error {
    Error::InvalidQuery {
        reason: "time out of range",
    }
}

impl TimeZone {
    /// Coordinated Universal Time.
    pub fn utc() -> Self {
        TimeZone {
            name: "UTC".to_owned(),
            inner: jiff::tz::TimeZone::UTC,
        }
    }

    /// The zone with this IANA name, such as `"Europe/Paris"` (matched case-insensitively;
    /// [`TimeZone::name`] gives the database's spelling). An unknown name is
    /// [`Error::InvalidConfig`].
    pub fn named(name: &str) -> Result<Self> {
        if name.is_empty() || name.len() > TIME_ZONE_NAME_LEN_MAX {
            return Err(Error::InvalidConfig {
                reason: format!("a time zone name has 1 to {TIME_ZONE_NAME_LEN_MAX} characters"),
            });
        }
        let inner = jiff::tz::db().get(name).map_err(|_| Error::InvalidConfig {
            reason: format!("unknown time zone {name:?}"),
        })?;
        let name = inner.iana_name().unwrap_or(name).to_owned();
        Ok(TimeZone { name, inner })
    }

    /// The zone's name (`"UTC"` for [`TimeZone::utc`]).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The underlying `jiff` time zone, for formatting local times.
    pub fn as_jiff(&self) -> &jiff::tz::TimeZone {
        &self.inner
    }

    /// The first instant of the local day or month that contains `t`.
    ///
    /// When DST skips the local midnight that begins the period, the period begins at the
    /// jump (at 01:00 local time, say); when midnight happens twice, at the first one.
    /// Errors: [`Error::InvalidQuery`] for a time outside the years −9999 to 9999.
    pub fn period_start(&self, t: Timestamp, g: Granularity) -> Result<Timestamp> {
        let instant = t.to_jiff().ok_or_else(out_of_range)?;
        let day = first_day(self.inner.to_datetime(instant).date(), g);
        let start = self.first_instant_from(day, None)?;
        if start > instant {
            // Only a zone whose clocks jump over a midnight and later back across it again
            // could get here; no zone in the tz database does.
            return Err(Error::internal(
                "time zone rules put a period's start after a time in it",
            ));
        }
        Ok(Timestamp::from_jiff(start))
    }

    /// The first instant after `t` of the next local day or month: the end (exclusive) of
    /// the period containing `t`.
    ///
    /// When the clocks go back over midnight, a local day can recur: for a time in the
    /// repeated hour before midnight, the next day starts at the second midnight. A day the
    /// zone skipped entirely has no instants, so the next period is the day after it.
    /// Errors: [`Error::InvalidQuery`] for a time outside the years −9999 to 9999 or whose
    /// next period starts after 9999.
    pub fn next_period_start(&self, t: Timestamp, g: Granularity) -> Result<Timestamp> {
        let instant = t.to_jiff().ok_or_else(out_of_range)?;
        let day = first_day(self.inner.to_datetime(instant).date(), g);
        let next = match g {
            Granularity::Day => day.tomorrow(),
            Granularity::Month => day.last_of_month().tomorrow(),
        }
        .map_err(|_| out_of_range())?;
        let start = self.first_instant_from(next, Some(instant))?;
        if start <= instant {
            // As in `period_start`: not reachable with the tz database's rules.
            return Err(Error::internal(
                "time zone rules put the next period's start before a time",
            ));
        }
        Ok(Timestamp::from_jiff(start))
    }

    /// The local date (`"2026-11-24"`) or month (`"2026-11"`) of `t`.
    ///
    /// Years outside 0 to 9999 are written as jiff writes them, with a sign and six digits.
    /// Errors: [`Error::InvalidQuery`] for a time outside the years −9999 to 9999.
    pub fn period_label(&self, t: Timestamp, g: Granularity) -> Result<String> {
        let instant = t.to_jiff().ok_or_else(out_of_range)?;
        let date = self.inner.to_datetime(instant).date();
        let mut label = date.to_string();
        if g == Granularity::Month {
            // The date is written `…-MM-DD`: drop `-DD`.
            label.truncate(label.len().saturating_sub(3));
        }
        Ok(label)
    }

    /// The earliest instant whose local time is at or after midnight starting `day`, and
    /// strictly after `after` when given.
    fn first_instant_from(
        &self,
        day: Date,
        after: Option<jiff::Timestamp>,
    ) -> Result<jiff::Timestamp> {
        let midnight = day.to_datetime(Time::midnight());
        let at =
            |offset: jiff::tz::Offset| offset.to_timestamp(midnight).map_err(|_| out_of_range());
        match self.inner.to_ambiguous_timestamp(midnight).offset() {
            AmbiguousOffset::Unambiguous { offset } => at(offset),
            AmbiguousOffset::Fold {
                before,
                after: later,
            } => {
                // Midnight happens twice: the first time, unless that is not after `after`.
                let first = at(before)?;
                match after {
                    Some(t) if first <= t => at(later),
                    _ => Ok(first),
                }
            }
            AmbiguousOffset::Gap {
                before,
                after: later,
            } => {
                // The clocks jump over midnight at some transition T; T is the first instant
                // whose local time is past midnight. Read with the offset after the jump,
                // midnight is an instant before T; read with the offset before it, an instant
                // at or after T (what most libraries return, which is wrong when the jump
                // does not start exactly at midnight).
                let before_jump = at(later)?;
                let fallback = at(before)?;
                let jump = self
                    .inner
                    .following(before_jump)
                    .next()
                    .map(|transition| transition.timestamp())
                    .filter(|t| *t > before_jump && *t <= fallback);
                Ok(jump.unwrap_or(fallback))
            }
        }
    }
}

/// The first day of the period of granularity `g` that contains `date`.
fn first_day(date: Date, g: Granularity) -> Date {
    match g {
        Granularity::Day => date,
        Granularity::Month => date.first_of_month(),
    }
}

impl Default for TimeZone {
    fn default() -> Self {
        TimeZone::utc()
    }
}

impl PartialEq for TimeZone {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for TimeZone {}

impl Hash for TimeZone {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl fmt::Debug for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TimeZone({})", self.name)
    }
}

impl fmt::Display for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::DateTime;
    use proptest::prelude::*;

    const HOUR: i64 = 3_600_000_000;

    fn ts(text: &str) -> Timestamp {
        Timestamp::from_jiff(text.parse::<jiff::Timestamp>().unwrap())
    }

    /// Local civil time of `t` in `tz`.
    fn local(tz: &TimeZone, t: Timestamp) -> DateTime {
        tz.inner.to_datetime(t.to_jiff().unwrap())
    }

    fn zone(name: &str) -> TimeZone {
        TimeZone::named(name).unwrap()
    }

    /// A zone from POSIX rules, for shapes no IANA zone has.
    fn posix(rule: &str) -> TimeZone {
        TimeZone {
            name: rule.to_owned(),
            inner: jiff::tz::TimeZone::posix(rule).unwrap(),
        }
    }

    fn day_length_hours(tz: &TimeZone, t: Timestamp) -> i64 {
        let start = tz.period_start(t, Granularity::Day).unwrap();
        let end = tz.next_period_start(t, Granularity::Day).unwrap();
        (end.as_micros() - start.as_micros()) / HOUR
    }

    #[test]
    fn names() {
        assert_eq!(TimeZone::utc().name(), "UTC");
        assert_eq!(TimeZone::default(), TimeZone::utc());
        assert_eq!(zone("UTC"), TimeZone::utc());
        assert_eq!(zone("America/New_York").name(), "America/New_York");
        assert_eq!(zone("america/new_york").name(), "America/New_York");
        assert_eq!(zone("Asia/Kolkata"), zone("Asia/Kolkata"));
        assert_ne!(zone("Asia/Kolkata"), TimeZone::utc());
        assert_eq!(
            format!("{:?}", zone("Asia/Kolkata")),
            "TimeZone(Asia/Kolkata)"
        );
        for bad in [
            "",
            "Mars/Olympus_Mons",
            "../../etc/passwd",
            "America/",
            &"A".repeat(65),
        ] {
            match TimeZone::named(bad) {
                Err(Error::InvalidConfig { reason }) => assert!(!reason.is_empty()),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_database_is_built_in() {
        // Hosts without /usr/share/zoneinfo fall back to the copy compiled into the library.
        let bundled = jiff::tz::TimeZoneDatabase::bundled();
        let ny = TimeZone {
            name: "America/New_York".to_owned(),
            inner: bundled.get("America/New_York").unwrap(),
        };
        assert_eq!(day_length_hours(&ny, ts("2026-03-08T12:00:00Z")), 23);
        assert_eq!(day_length_hours(&ny, ts("2026-11-01T12:00:00Z")), 25);
        for name in ["Asia/Kolkata", "America/Santiago", "Pacific/Apia", "UTC"] {
            assert!(bundled.get(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn utc_days_and_months() {
        let utc = TimeZone::utc();
        let t = ts("2026-11-24T10:15:00.123456Z");
        assert_eq!(
            utc.period_start(t, Granularity::Day).unwrap(),
            ts("2026-11-24T00:00:00Z")
        );
        assert_eq!(
            utc.next_period_start(t, Granularity::Day).unwrap(),
            ts("2026-11-25T00:00:00Z")
        );
        assert_eq!(
            utc.period_start(t, Granularity::Month).unwrap(),
            ts("2026-11-01T00:00:00Z")
        );
        assert_eq!(
            utc.next_period_start(t, Granularity::Month).unwrap(),
            ts("2026-12-01T00:00:00Z")
        );
        assert_eq!(utc.period_label(t, Granularity::Day).unwrap(), "2026-11-24");
        assert_eq!(utc.period_label(t, Granularity::Month).unwrap(), "2026-11");
        // A period's start is in the period; the instant before it is not.
        let start = ts("2026-11-24T00:00:00Z");
        assert_eq!(utc.period_start(start, Granularity::Day).unwrap(), start);
        assert_eq!(
            utc.period_label(start.plus_micros(-1), Granularity::Day)
                .unwrap(),
            "2026-11-23"
        );
    }

    #[test]
    fn month_boundaries() {
        let utc = TimeZone::utc();
        let jan31 = ts("2026-01-31T23:59:59.999999Z");
        assert_eq!(
            utc.next_period_start(jan31, Granularity::Day).unwrap(),
            ts("2026-02-01T00:00:00Z")
        );
        assert_eq!(
            utc.next_period_start(jan31, Granularity::Month).unwrap(),
            ts("2026-02-01T00:00:00Z")
        );
        let dec = ts("2026-12-15T12:00:00Z");
        assert_eq!(
            utc.next_period_start(dec, Granularity::Month).unwrap(),
            ts("2027-01-01T00:00:00Z")
        );
        assert_eq!(
            utc.next_period_start(ts("2026-12-31T05:00:00Z"), Granularity::Day)
                .unwrap(),
            ts("2027-01-01T00:00:00Z")
        );
        // Leap years.
        assert_eq!(
            utc.next_period_start(ts("2028-02-28T05:00:00Z"), Granularity::Day)
                .unwrap(),
            ts("2028-02-29T00:00:00Z")
        );
        assert_eq!(
            utc.next_period_start(ts("2028-02-10T05:00:00Z"), Granularity::Month)
                .unwrap(),
            ts("2028-03-01T00:00:00Z")
        );
    }

    #[test]
    fn half_hour_offset() {
        let kolkata = zone("Asia/Kolkata");
        // 20:00 UTC is 01:30 the next day in India (+05:30).
        let t = ts("2026-01-31T20:00:00Z");
        assert_eq!(
            kolkata.period_label(t, Granularity::Day).unwrap(),
            "2026-02-01"
        );
        assert_eq!(
            kolkata.period_label(t, Granularity::Month).unwrap(),
            "2026-02"
        );
        assert_eq!(
            kolkata.period_start(t, Granularity::Day).unwrap(),
            ts("2026-01-31T18:30:00Z")
        );
        assert_eq!(
            kolkata.period_start(t, Granularity::Month).unwrap(),
            ts("2026-01-31T18:30:00Z")
        );
        assert_eq!(
            kolkata.next_period_start(t, Granularity::Month).unwrap(),
            ts("2026-02-28T18:30:00Z")
        );
        // The same instant is still January in UTC.
        assert_eq!(
            TimeZone::utc().period_label(t, Granularity::Month).unwrap(),
            "2026-01"
        );
    }

    #[test]
    fn daylight_saving_days_in_new_york() {
        let ny = zone("America/New_York");
        // 2026-03-08: clocks go from 02:00 to 03:00; the day has 23 hours.
        let spring = ts("2026-03-08T12:00:00Z");
        assert_eq!(
            ny.period_start(spring, Granularity::Day).unwrap(),
            ts("2026-03-08T05:00:00Z")
        );
        assert_eq!(
            ny.next_period_start(spring, Granularity::Day).unwrap(),
            ts("2026-03-09T04:00:00Z")
        );
        assert_eq!(day_length_hours(&ny, spring), 23);
        // 2026-11-01: clocks go from 02:00 back to 01:00; the day has 25 hours.
        let fall = ts("2026-11-01T12:00:00Z");
        assert_eq!(
            ny.period_start(fall, Granularity::Day).unwrap(),
            ts("2026-11-01T04:00:00Z")
        );
        assert_eq!(day_length_hours(&ny, fall), 25);
        // November in New York starts at 04:00 UTC and ends at 05:00 UTC.
        assert_eq!(
            ny.period_start(fall, Granularity::Month).unwrap(),
            ts("2026-11-01T04:00:00Z")
        );
        assert_eq!(
            ny.next_period_start(fall, Granularity::Month).unwrap(),
            ts("2026-12-01T05:00:00Z")
        );
        // An ordinary day has 24.
        assert_eq!(day_length_hours(&ny, ts("2026-07-01T12:00:00Z")), 24);
    }

    #[test]
    fn days_that_start_at_one_in_the_morning() {
        // Santiago, 2026-09-06: midnight -04 becomes 01:00 -03, so the day starts at 01:00.
        let santiago = zone("America/Santiago");
        let t = ts("2026-09-06T12:00:00Z");
        let start = santiago.period_start(t, Granularity::Day).unwrap();
        assert_eq!(start, ts("2026-09-06T04:00:00Z"));
        assert_eq!(
            local(&santiago, start),
            "2026-09-06T01:00".parse::<DateTime>().unwrap()
        );
        assert_eq!(day_length_hours(&santiago, t), 23);
        // The day before ends exactly where that one starts.
        assert_eq!(
            santiago
                .next_period_start(ts("2026-09-05T12:00:00Z"), Granularity::Day)
                .unwrap(),
            start
        );
        // Havana, 2026-03-08: the same jump at midnight.
        let havana = zone("America/Havana");
        let t = ts("2026-03-08T12:00:00Z");
        let start = havana.period_start(t, Granularity::Day).unwrap();
        assert_eq!(
            local(&havana, start),
            "2026-03-08T01:00".parse::<DateTime>().unwrap()
        );
        assert_eq!(day_length_hours(&havana, t), 23);
    }

    #[test]
    fn an_hour_before_midnight_that_happens_twice() {
        // Santiago, 2026-04-05: at 24:00 -03 on the 4th the clocks go back to 23:00 -04, so the
        // 4th has 25 hours and the 5th starts at the one midnight.
        let santiago = zone("America/Santiago");
        let midnight = ts("2026-04-05T04:00:00Z");
        let repeated = ts("2026-04-05T03:30:00Z");
        assert_eq!(
            local(&santiago, repeated),
            "2026-04-04T23:30".parse::<DateTime>().unwrap()
        );
        assert_eq!(
            santiago
                .next_period_start(repeated, Granularity::Day)
                .unwrap(),
            midnight
        );
        assert_eq!(day_length_hours(&santiago, repeated), 25);
        assert_eq!(
            santiago
                .period_start(ts("2026-04-05T12:00:00Z"), Granularity::Day)
                .unwrap(),
            midnight
        );
    }

    #[test]
    fn midnight_that_happens_twice() {
        // St. John's, 2006-10-29: at 00:01 NDT (-02:30) the clocks went back to 23:01 NST
        // (-03:30) on the 28th, so midnight came twice.
        let st_johns = zone("America/St_Johns");
        let first_midnight = ts("2006-10-29T02:30:00Z");
        let second_midnight = ts("2006-10-29T03:30:00Z");
        assert_eq!(
            local(&st_johns, first_midnight),
            "2006-10-29T00:00".parse::<DateTime>().unwrap()
        );
        assert_eq!(
            local(&st_johns, second_midnight),
            "2006-10-29T00:00".parse::<DateTime>().unwrap()
        );
        // The 29th starts at the first midnight…
        let sunday = ts("2006-10-29T12:00:00Z");
        assert_eq!(
            st_johns.period_start(sunday, Granularity::Day).unwrap(),
            first_midnight
        );
        assert_eq!(
            st_johns
                .next_period_start(ts("2006-10-28T12:00:00Z"), Granularity::Day)
                .unwrap(),
            first_midnight
        );
        // …but in the repeated hour it is the 28th again, and the next day starts at the
        // second midnight.
        let repeated = ts("2006-10-29T03:00:00Z");
        assert_eq!(
            st_johns.period_label(repeated, Granularity::Day).unwrap(),
            "2006-10-28"
        );
        assert_eq!(
            st_johns
                .next_period_start(repeated, Granularity::Day)
                .unwrap(),
            second_midnight
        );
        assert_eq!(
            st_johns.period_start(repeated, Granularity::Day).unwrap(),
            ts("2006-10-28T02:30:00Z")
        );
    }

    #[test]
    fn a_skipped_day() {
        // Samoa skipped 2011-12-30: 23:59:59 on the 29th (-10) was followed by the 31st (+14).
        let apia = zone("Pacific/Apia");
        let jump = ts("2011-12-30T10:00:00Z");
        let t = ts("2011-12-30T09:00:00Z");
        assert_eq!(
            apia.period_label(t, Granularity::Day).unwrap(),
            "2011-12-29"
        );
        assert_eq!(apia.next_period_start(t, Granularity::Day).unwrap(), jump);
        assert_eq!(
            apia.period_label(jump, Granularity::Day).unwrap(),
            "2011-12-31"
        );
        assert_eq!(apia.period_start(jump, Granularity::Day).unwrap(), jump);
        assert_eq!(
            apia.period_start(jump, Granularity::Month).unwrap(),
            ts("2011-12-01T10:00:00Z")
        );
    }

    #[test]
    fn a_jump_that_straddles_midnight() {
        // Clocks jump from 23:30 standard time to 00:30 summer time on the second Sunday of
        // March, so the Monday starts at 00:30, not at 01:00 (where midnight read with the
        // old offset would put it).
        let tz = posix("STD5DST,M3.2.0/23:30,M11.1.0/0:30");
        // 2026-03-08 is the second Sunday: 23:30 -05 is 04:30 UTC on the 9th.
        let jump = ts("2026-03-09T04:30:00Z");
        assert_eq!(
            local(&tz, jump),
            "2026-03-09T00:30".parse::<DateTime>().unwrap()
        );
        let monday = ts("2026-03-09T12:00:00Z");
        assert_eq!(tz.period_start(monday, Granularity::Day).unwrap(), jump);
        assert_eq!(
            tz.next_period_start(ts("2026-03-08T12:00:00Z"), Granularity::Day)
                .unwrap(),
            jump
        );
        // In November, 00:30 summer time goes back to 23:30 on the Saturday: midnight twice.
        let repeated = ts("2026-11-01T04:45:00Z"); // 23:45 -05 on the 31st, the second time
        assert_eq!(
            tz.period_label(repeated, Granularity::Day).unwrap(),
            "2026-10-31"
        );
        assert_eq!(
            tz.period_label(repeated, Granularity::Month).unwrap(),
            "2026-10"
        );
        assert_eq!(
            tz.next_period_start(repeated, Granularity::Month).unwrap(),
            ts("2026-11-01T05:00:00Z")
        );
        assert_eq!(
            tz.period_start(repeated, Granularity::Month).unwrap(),
            ts("2026-10-01T04:00:00Z")
        );
    }

    #[test]
    fn times_jiff_cannot_represent() {
        let utc = TimeZone::utc();
        for t in [
            Timestamp::from_micros(i64::MAX),
            Timestamp::from_micros(i64::MIN),
        ] {
            for g in [Granularity::Day, Granularity::Month] {
                for result in [
                    utc.period_start(t, g).map(|_| ()),
                    utc.next_period_start(t, g).map(|_| ()),
                    utc.period_label(t, g).map(|_| ()),
                ] {
                    assert_eq!(
                        result.unwrap_err(),
                        Error::InvalidQuery {
                            reason: "time out of range"
                        }
                    );
                }
            }
        }
        // Near the end of jiff's range (9999-12-30 22:00 UTC) there is no next period.
        let last = ts("9999-12-30T12:00:00Z");
        assert!(utc.period_start(last, Granularity::Day).is_ok());
        assert_eq!(
            utc.next_period_start(last, Granularity::Month)
                .unwrap_err()
                .code(),
            "invalid_query"
        );
        assert_eq!(
            utc.next_period_start(last, Granularity::Day)
                .unwrap_err()
                .code(),
            "invalid_query"
        );
        // Far from the epoch, labels keep jiff's extended years.
        let ancient = ts("-000100-03-04T00:00:00Z");
        assert_eq!(
            utc.period_label(ancient, Granularity::Month).unwrap(),
            "-000100-03"
        );
    }

    #[test]
    fn granularity_serializes_in_screaming_snake_case() {
        assert_eq!(
            serde_json::to_string(&Granularity::Month).unwrap(),
            "\"MONTH\""
        );
    }

    fn zones() -> Vec<TimeZone> {
        let mut zones: Vec<TimeZone> = [
            "UTC",
            "Asia/Kolkata",
            "America/New_York",
            "America/Santiago",
            "America/Havana",
            "America/Sao_Paulo",
            "America/St_Johns",
            "Pacific/Apia",
            "Pacific/Chatham",
            "Australia/Lord_Howe",
            "Europe/London",
        ]
        .into_iter()
        .map(zone)
        .collect();
        zones.push(posix("STD5DST,M3.2.0/23:30,M11.1.0/0:30"));
        zones
    }

    proptest! {
        #[test]
        fn periods_tile_the_time_line(
            // 1970-01-01 to 2100-01-01.
            micros in 0i64..4_102_444_800_000_000,
            which in 0usize..12,
            month in any::<bool>(),
        ) {
            let zones = zones();
            let tz = &zones[which % zones.len()];
            let g = if month { Granularity::Month } else { Granularity::Day };
            let t = Timestamp::from_micros(micros);
            let start = tz.period_start(t, g).unwrap();
            let next = tz.next_period_start(t, g).unwrap();
            let label = tz.period_label(t, g).unwrap();
            prop_assert!(start <= t && t < next, "{} {:?}: {:?} {:?} {:?}", tz, g, start, t, next);
            prop_assert_eq!(tz.period_start(start, g).unwrap(), start);
            prop_assert_eq!(&tz.period_label(start, g).unwrap(), &label);
            // The boundaries are the first instants of their periods.
            prop_assert_ne!(&tz.period_label(start.plus_micros(-1), g).unwrap(), &label);
            prop_assert_eq!(&tz.period_label(next.plus_micros(-1), g).unwrap(), &label);
            prop_assert!(tz.period_label(next, g).unwrap() > label);
        }

        /// The same, for times within a day and a bit of a change of offset, where the
        /// interesting cases are.
        #[test]
        fn periods_tile_around_transitions(
            micros in 0i64..4_102_444_800_000_000,
            delta_secs in -100_000i64..100_000,
            which in 0usize..12,
            month in any::<bool>(),
        ) {
            let zones = zones();
            let tz = &zones[which % zones.len()];
            let g = if month { Granularity::Month } else { Granularity::Day };
            let base = Timestamp::from_micros(micros).to_jiff().unwrap();
            let Some(transition) = tz.inner.following(base).next() else {
                return Ok(());
            };
            let t = Timestamp::from_jiff(transition.timestamp()).plus_micros(delta_secs * 1_000_000);
            let start = tz.period_start(t, g).unwrap();
            let next = tz.next_period_start(t, g).unwrap();
            let label = tz.period_label(t, g).unwrap();
            prop_assert!(start <= t && t < next, "{} {:?}: {:?} {:?} {:?}", tz, g, start, t, next);
            prop_assert_eq!(tz.period_start(start, g).unwrap(), start);
            prop_assert_eq!(&tz.period_label(start, g).unwrap(), &label);
            prop_assert_ne!(&tz.period_label(start.plus_micros(-1), g).unwrap(), &label);
            prop_assert_eq!(&tz.period_label(next.plus_micros(-1), g).unwrap(), &label);
            prop_assert!(tz.period_label(next, g).unwrap() > label);
        }

        #[test]
        fn never_panics(micros in any::<i64>(), month in any::<bool>()) {
            let g = if month { Granularity::Month } else { Granularity::Day };
            let t = Timestamp::from_micros(micros);
            for tz in zones() {
                let _ = tz.period_start(t, g);
                let _ = tz.next_period_start(t, g);
                let _ = tz.period_label(t, g);
            }
        }
    }
}
