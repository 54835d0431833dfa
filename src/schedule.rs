//! When polls run: a cron expression (5 or 6 fields) read in a time zone (UTC by default), plus
//! an optional random jitter.
//!
//! Why not a scheduler crate: the daemon runs one job per workspace, and the reliability rules
//! are ours to prove in tests: the next tick is always computed from *now* after a poll, so
//! polls never overlap (ticks that pass during a poll are skipped and logged), and a machine
//! that slept or a long outage yields one catch-up poll, not a burst. `croner` only parses the
//! expression and finds the next occurrence.

use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};

/// A parsed schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    jitter: Duration,
    zone: Tz,
}

/// A cron expression segwatch cannot use.
#[derive(Debug, thiserror::Error)]
#[error(
    "`{expression}` is not a cron expression: {reason} (use 5 fields `min hour dom mon dow`, or 6 with seconds first)"
)]
pub struct ScheduleError {
    expression: String,
    reason: String,
}

impl Schedule {
    /// Parses a 5- or 6-field cron expression read in `zone` (so `0 9 * * 1-5` is 9:00 local
    /// time on both sides of a daylight-saving change); `jitter` delays each tick by a random
    /// amount up to that long (spreads many daemons' load on the API).
    pub fn parse(expression: &str, jitter: Duration, zone: Tz) -> Result<Schedule, ScheduleError> {
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(expression)
            .map_err(|e| ScheduleError {
                expression: expression.to_string(),
                reason: e.to_string(),
            })?;
        Ok(Schedule { cron, jitter, zone })
    }

    /// The first tick strictly after `after`, jitter included.
    pub fn next_after(&self, after: DateTime<Utc>) -> DateTime<Utc> {
        let base = self
            .cron
            .find_next_occurrence(&after.with_timezone(&self.zone), false)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(after + chrono::Duration::days(366));
        let jitter = if self.jitter.is_zero() {
            Duration::ZERO
        } else {
            Duration::from_millis(fastrand::u64(0..=self.jitter.as_millis() as u64))
        };
        base + chrono::Duration::from_std(jitter).unwrap_or_default()
    }

    /// How many ticks fell in `(from, to]` (without jitter): the ticks skipped while a poll ran
    /// or the machine slept.
    pub fn ticks_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> usize {
        self.cron
            .iter_after(from.with_timezone(&self.zone))
            .take_while(|t| t.with_timezone(&Utc) <= to)
            .take(10_000)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, h, m, s).unwrap()
    }

    #[test]
    fn five_and_six_fields() {
        let five = Schedule::parse("*/15 * * * *", Duration::ZERO, Tz::UTC).unwrap();
        assert_eq!(five.next_after(at(10, 7, 30)), at(10, 15, 0));
        let six = Schedule::parse("*/10 * * * * *", Duration::ZERO, Tz::UTC).unwrap();
        assert_eq!(six.next_after(at(10, 7, 31)), at(10, 7, 40));
    }

    #[test]
    fn bad_expressions_say_what_is_allowed() {
        let err = Schedule::parse("every five minutes", Duration::ZERO, Tz::UTC)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("every five minutes") && err.contains("5 fields"),
            "{err}"
        );
    }

    #[test]
    fn missed_ticks_are_counted_not_replayed() {
        let s = Schedule::parse("* * * * *", Duration::ZERO, Tz::UTC).unwrap();
        // A machine asleep for an hour: 60 ticks missed, and the next one is after now.
        assert_eq!(s.ticks_between(at(10, 0, 0), at(11, 0, 0)), 60);
        assert_eq!(s.next_after(at(11, 0, 5)), at(11, 1, 0));
    }

    #[test]
    fn jitter_stays_within_its_bound() {
        let s = Schedule::parse("0 * * * *", Duration::from_secs(30), Tz::UTC).unwrap();
        for _ in 0..50 {
            let t = s.next_after(at(10, 0, 0));
            assert!(t >= at(11, 0, 0) && t <= at(11, 0, 30));
        }
    }

    #[test]
    fn local_time_follows_daylight_saving() {
        // 09:00 in Paris is 08:00 UTC in winter and 07:00 UTC in summer (change on 29 March).
        let s = Schedule::parse("0 9 * * *", Duration::ZERO, Tz::Europe__Paris).unwrap();
        let winter = Utc.with_ymd_and_hms(2026, 3, 27, 12, 0, 0).unwrap();
        assert_eq!(
            s.next_after(winter),
            Utc.with_ymd_and_hms(2026, 3, 28, 8, 0, 0).unwrap()
        );
        let summer = Utc.with_ymd_and_hms(2026, 3, 28, 12, 0, 0).unwrap();
        assert_eq!(
            s.next_after(summer),
            Utc.with_ymd_and_hms(2026, 3, 29, 7, 0, 0).unwrap()
        );
        // A whole day in local time still has exactly one 09:00 tick.
        assert_eq!(
            s.ticks_between(winter, winter + chrono::Duration::days(2)),
            2
        );
    }

    #[test]
    fn a_time_skipped_by_daylight_saving_still_ticks_once_that_day() {
        // 02:30 does not exist in Paris on 29 March 2026 (clocks jump 02:00 → 03:00).
        let s = Schedule::parse("30 2 * * *", Duration::ZERO, Tz::Europe__Paris).unwrap();
        let before = Utc.with_ymd_and_hms(2026, 3, 28, 12, 0, 0).unwrap();
        let next = s.next_after(before);
        assert!(
            next > before && next < Utc.with_ymd_and_hms(2026, 3, 30, 0, 0, 0).unwrap(),
            "{next}"
        );
    }
}
