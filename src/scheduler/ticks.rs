//! Schedule ticks in a pipeline's time zone, with a fixed rule for daylight-saving changes.
//!
//! Ticks are computed on the local wall clock, then placed in time:
//! - a local time that does not exist (the spring-forward gap) fires **once, at the end of the
//!   gap** (a daily 02:30 job runs at 03:00 on the day Europe/Paris springs forward; several
//!   ticks inside the gap collapse into that one run);
//! - a local time that occurs twice (fall-back) fires **once, at its first occurrence**.

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

/// The first tick of `schedule` strictly after `after`, read in time zone `tz`.
pub(crate) fn next_tick(schedule: &cron::Schedule, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let mut cursor = after.with_timezone(&tz).naive_local();
    // Bounded: each step moves the wall-clock cursor forward; a few steps cover any DST quirk.
    for _ in 0..16 {
        let local = schedule.after(&cursor.and_utc()).next()?.naive_utc();
        let instant = place(tz, local)?;
        if instant > after {
            return Some(instant);
        }
        cursor = local;
    }
    None
}

/// The instant of wall-clock time `local` in `tz`, by the rule of this module.
fn place(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
        LocalResult::None => {
            // Inside a gap: the first minute after it.
            let start = local.with_second(0)?;
            (1..=24 * 60).find_map(|m| tz.from_local_datetime(&(start + Duration::minutes(m))).earliest()).map(|t| t.with_timezone(&Utc))
        }
    }
}

/// The ticks in `(after, until]`: how many there are and the latest.
///
/// At most `limit` ticks are counted from `after`; past that (a dense schedule after long
/// downtime) the count stops and the latest tick is found from the last hour before `until`.
pub(crate) fn latest_due(schedule: &cron::Schedule, tz: Tz, after: DateTime<Utc>, until: DateTime<Utc>, limit: usize) -> (usize, Option<DateTime<Utc>>) {
    let (mut count, mut latest, mut cursor) = (0, None, after);
    while let Some(tick) = next_tick(schedule, tz, cursor) {
        if tick > until {
            return (count, latest);
        }
        if count == limit {
            let recent = latest_due(schedule, tz, cursor.max(until - Duration::hours(1)), until, limit).1;
            return (count, recent.or(latest));
        }
        count += 1;
        latest = Some(tick);
        cursor = tick;
    }
    (count, latest)
}

/// Every tick in `(after, until]` (for tests and small windows).
#[cfg(test)]
fn due_ticks(schedule: &cron::Schedule, tz: Tz, after: DateTime<Utc>, until: DateTime<Utc>, limit: usize) -> Vec<DateTime<Utc>> {
    let mut ticks = Vec::new();
    let mut cursor = after;
    while let Some(tick) = next_tick(schedule, tz, cursor) {
        if tick > until || ticks.len() >= limit {
            break;
        }
        ticks.push(tick);
        cursor = tick;
    }
    ticks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::expression::parse;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn ticks(expr: &str, tz: &str, from: &str, to: &str) -> Vec<String> {
        let schedule = parse(expr).unwrap();
        due_ticks(&schedule, tz.parse().unwrap(), utc(from), utc(to), 1000).iter().map(|t| t.with_timezone(&tz.parse::<Tz>().unwrap()).to_rfc3339()).collect()
    }

    #[test]
    fn daily_job_in_the_spring_forward_gap_runs_once_at_the_end_of_the_gap() {
        // Europe/Paris springs forward on 2026-03-29: 02:00 CET -> 03:00 CEST.
        let t = ticks("30 2 * * *", "Europe/Paris", "2026-03-27T12:00:00Z", "2026-03-30T12:00:00Z");
        assert_eq!(t, ["2026-03-28T02:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"]);
        // America/New_York springs forward on 2026-03-08: 02:00 EST -> 03:00 EDT.
        let t = ticks("30 2 * * *", "America/New_York", "2026-03-07T00:00:00Z", "2026-03-10T00:00:00Z");
        assert_eq!(t, ["2026-03-07T02:30:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"]);
    }

    #[test]
    fn ticks_inside_the_gap_collapse_into_one() {
        let t = ticks("*/30 * * * *", "Europe/Paris", "2026-03-29T00:10:00Z", "2026-03-29T01:40:00Z");
        // 01:30 CET, then 02:00 and 02:30 (missing) collapse into 03:00 CEST, then 03:30 CEST.
        assert_eq!(t, ["2026-03-29T01:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T03:30:00+02:00"]);
    }

    #[test]
    fn a_repeated_local_time_fires_once_at_its_first_occurrence() {
        // Europe/Paris falls back on 2026-10-25: 03:00 CEST -> 02:00 CET; 02:30 happens twice.
        let t = ticks("30 2 * * *", "Europe/Paris", "2026-10-24T12:00:00Z", "2026-10-26T12:00:00Z");
        assert_eq!(t, ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]);
        // America/New_York falls back on 2026-11-01: 01:30 happens twice.
        let t = ticks("30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z", "2026-11-02T12:00:00Z");
        assert_eq!(t, ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"]);
    }

    #[test]
    fn hourly_ticks_across_fall_back_do_not_repeat_the_hour() {
        let t = ticks("0 * * * *", "Europe/Paris", "2026-10-24T23:30:00Z", "2026-10-25T02:30:00Z");
        // 02:00 CEST fires; the repeated 02:00 (CET) does not fire again; then 03:00 CET.
        assert_eq!(t, ["2026-10-25T02:00:00+02:00", "2026-10-25T03:00:00+01:00"]);
    }

    #[test]
    fn latest_due_counts_ticks_and_finds_the_latest_even_past_the_limit() {
        let schedule = parse("* * * * * *").unwrap();
        let (count, latest) = latest_due(&schedule, Tz::UTC, utc("2026-01-01T00:00:00Z"), utc("2026-01-01T00:00:10Z"), 1000);
        assert_eq!((count, latest), (10, Some(utc("2026-01-01T00:00:10Z"))));
        let (count, latest) = latest_due(&schedule, Tz::UTC, utc("2026-01-01T00:00:00Z"), utc("2026-01-03T00:00:00Z"), 1000);
        assert_eq!((count, latest), (1000, Some(utc("2026-01-03T00:00:00Z"))));
        let monthly = parse("0 0 1 * *").unwrap();
        let (count, latest) = latest_due(&monthly, Tz::UTC, utc("2026-01-01T00:00:00Z"), utc("2026-04-15T00:00:00Z"), 1000);
        assert_eq!((count, latest), (3, Some(utc("2026-04-01T00:00:00Z"))));
    }

    #[test]
    fn seconds_schedules_tick_every_few_seconds() {
        let t = ticks("*/5 * * * * *", "UTC", "2026-01-01T00:00:00Z", "2026-01-01T00:00:20Z");
        assert_eq!(t.len(), 4);
    }
}
