//! Cron expressions: 5-field crontab (as celery-beat's `CrontabSchedule`) or the cron crate's
//! 6/7-field syntax with seconds, and IANA time zones.

use std::str::FromStr;

use chrono_tz::Tz;

/// Parses a schedule expression.
///
/// Five fields (`minute hour day-of-month month day-of-week`, Sunday = 0 or 7) are read as
/// crontab and fire at second 0; six or seven fields (`sec min hour dom month dow [year]`,
/// Sunday = 1 or `SUN`) are the cron crate's syntax; `@daily`-style shorthands are accepted.
pub(crate) fn parse(expr: &str) -> Result<cron::Schedule, String> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    let text = match fields.len() {
        1 if fields[0].starts_with('@') => fields[0].to_owned(),
        5 => {
            let dow = crontab_days_of_week(fields[4])?;
            format!("0 {} {} {} {} {}", fields[0], fields[1], fields[2], fields[3], dow)
        }
        6 | 7 => fields.join(" "),
        n => return Err(format!("expected 5 fields (crontab) or 6/7 fields (with seconds), found {n}")),
    };
    cron::Schedule::from_str(&text).map_err(|e| e.to_string())
}

/// Parses an IANA time zone name.
pub(crate) fn parse_timezone(name: &str) -> Option<Tz> {
    name.parse::<Tz>().ok()
}

/// Rewrites a crontab day-of-week field (0-7, Sunday = 0 and 7, names allowed) as a list of
/// cron-crate ordinals (1-7, Sunday = 1).
fn crontab_days_of_week(field: &str) -> Result<String, String> {
    if field == "*" || field == "?" {
        return Ok("*".to_owned());
    }
    let mut days = [false; 7];
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, s.parse::<usize>().map_err(|_| format!("bad step `{s}` in day-of-week `{field}`"))?),
            None => (item, 1),
        };
        if step == 0 {
            return Err(format!("step 0 in day-of-week `{field}`"));
        }
        let (first, last) = match range {
            "*" => (0, 6),
            _ => match range.split_once('-') {
                Some((a, b)) => (day_number(a, field)?, day_number(b, field)?),
                None => {
                    let d = day_number(range, field)?;
                    (d, if item.contains('/') { 6 } else { d })
                }
            },
        };
        if first > last {
            return Err(format!("range `{range}` runs backwards in day-of-week `{field}`"));
        }
        for d in (first..=last).step_by(step) {
            days[d % 7] = true;
        }
    }
    Ok(days.iter().enumerate().filter(|(_, on)| **on).map(|(d, _)| (d + 1).to_string()).collect::<Vec<_>>().join(","))
}

/// A crontab day: 0-7 or a three-letter name.
fn day_number(text: &str, field: &str) -> Result<usize, String> {
    const NAMES: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    if let Ok(n) = text.parse::<usize>() {
        return if n <= 7 { Ok(n) } else { Err(format!("day {n} out of range 0-7 in day-of-week `{field}`")) };
    }
    NAMES.iter().position(|n| n.eq_ignore_ascii_case(text)).ok_or_else(|| format!("unknown day `{text}` in day-of-week `{field}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crontab_weekdays_map_to_cron_ordinals() {
        assert_eq!(crontab_days_of_week("1-5").unwrap(), "2,3,4,5,6");
        assert_eq!(crontab_days_of_week("0").unwrap(), "1");
        assert_eq!(crontab_days_of_week("7").unwrap(), "1");
        assert_eq!(crontab_days_of_week("5-7").unwrap(), "1,6,7");
        assert_eq!(crontab_days_of_week("sat,sun").unwrap(), "1,7");
        assert_eq!(crontab_days_of_week("*/2").unwrap(), "1,3,5,7");
        assert!(crontab_days_of_week("8").is_err());
        assert!(crontab_days_of_week("5-1").is_err());
    }

    #[test]
    fn five_six_and_seven_fields_parse() {
        assert!(parse("0 3 * * *").is_ok());
        assert!(parse("*/5 * * * * *").is_ok());
        assert!(parse("0 0 3 * * * 2030").is_ok());
        assert!(parse("@daily").is_ok());
        assert!(parse("0 3 * *").is_err());
        assert!(parse("61 3 * * *").is_err());
    }
}
