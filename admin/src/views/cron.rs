//! Schedules in words: the common cron shapes read as English ("every 10 seconds",
//! "daily at 03:00", "on Mon–Fri at 09:30"); anything else is "custom schedule" and the raw
//! expression is always shown beside it.

/// `expr` in words.
pub(crate) fn describe(expr: &str) -> String {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    match fields.as_slice() {
        [shorthand] => match *shorthand {
            "@yearly" | "@annually" => "yearly, on Jan 1 at 00:00".into(),
            "@monthly" => "monthly, on day 1 at 00:00".into(),
            "@weekly" => "weekly, on Sunday at 00:00".into(),
            "@daily" | "@midnight" => "daily at 00:00".into(),
            "@hourly" => "hourly, at :00".into(),
            _ => custom(),
        },
        [sec, rest @ ..] if rest.len() == 5 || rest.len() == 6 => {
            if rest.len() == 6 && rest[5] != "*" {
                return custom();
            }
            match (*sec, &rest[..5]) {
                ("*", ["*", "*", "*", "*", "*"]) => "every second".into(),
                (s, ["*", "*", "*", "*", "*"]) if every(s).is_some() => plural(every(s).unwrap_or(1), "second"),
                ("0", five) => crontab(five, true),
                _ => custom(),
            }
        }
        five if five.len() == 5 => crontab(five, false),
        _ => custom(),
    }
}

/// The fallback.
fn custom() -> String {
    "custom schedule".into()
}

/// `*/N` → N.
fn every(field: &str) -> Option<u32> {
    field.strip_prefix("*/")?.parse().ok().filter(|n| *n > 0)
}

/// `every N unit(s)`.
fn plural(n: u32, unit: &str) -> String {
    if n == 1 { format!("every {unit}") } else { format!("every {n} {unit}s") }
}

/// A 5-field crontab (`min hour dom month dow`); `cron_dow` when the day-of-week field uses
/// the cron crate's numbering (Sunday = 1) instead of crontab's (Sunday = 0).
fn crontab(f: &[&str], cron_dow: bool) -> String {
    let (min, hour, dom, month, dow) = (f[0], f[1], f[2], f[3], f[4]);
    let number = |s: &str| s.parse::<u32>().ok();
    if month != "*" {
        return custom();
    }
    match (min, hour, dom, dow) {
        ("*", "*", "*", "*") => "every minute".into(),
        (m, "*", "*", "*") if every(m).is_some() => plural(every(m).unwrap_or(1), "minute"),
        (m, "*", "*", "*") if number(m).is_some() => format!("hourly, at :{:02}", number(m).unwrap_or(0)),
        (m, h, "*", "*") if number(m).is_some() && every(h).is_some() => {
            format!("{}, at :{:02}", plural(every(h).unwrap_or(1), "hour"), number(m).unwrap_or(0))
        }
        (m, h, d, w) if number(m).is_some() && number(h).is_some() => {
            let at = format!("{:02}:{:02}", number(h).unwrap_or(0), number(m).unwrap_or(0));
            match (d, w) {
                ("*", "*") => format!("daily at {at}"),
                ("*", w) => match days(w, cron_dow) {
                    Some(days) => format!("on {days} at {at}"),
                    None => custom(),
                },
                (d, "*") if number(d).is_some() => format!("monthly, on day {} at {at}", number(d).unwrap_or(1)),
                _ => custom(),
            }
        }
        _ => custom(),
    }
}

/// A day-of-week field in words (`Mon–Fri`, `Sat, Sun`).
fn days(field: &str, cron_dow: bool) -> Option<String> {
    const NAMES: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    let day = |s: &str| -> Option<&'static str> {
        if let Some(i) = NAMES.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            return Some(NAMES[i]);
        }
        let n: usize = s.parse().ok()?;
        let index = if cron_dow { n.checked_sub(1)? } else { n % 7 };
        NAMES.get(index).copied()
    };
    let parts: Option<Vec<String>> = field
        .split(',')
        .map(|part| match part.split_once('-') {
            Some((a, b)) => Some(format!("{}–{}", day(a)?, day(b)?)),
            None => day(part).map(str::to_owned),
        })
        .collect();
    parts.map(|p| p.join(", "))
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn common_schedules_read_as_words() {
        assert_eq!(describe("*/10 * * * * *"), "every 10 seconds");
        assert_eq!(describe("* * * * *"), "every minute");
        assert_eq!(describe("*/5 * * * *"), "every 5 minutes");
        assert_eq!(describe("15 * * * *"), "hourly, at :15");
        assert_eq!(describe("0 */2 * * *"), "every 2 hours, at :00");
        assert_eq!(describe("0 3 * * *"), "daily at 03:00");
        assert_eq!(describe("30 9 * * 1-5"), "on Mon–Fri at 09:30");
        assert_eq!(describe("0 0 9 * * Sat,Sun"), "on Sat, Sun at 09:00");
        assert_eq!(describe("0 0 12 1 * *"), "monthly, on day 1 at 12:00");
        assert_eq!(describe("@daily"), "daily at 00:00");
        assert_eq!(describe("0 0 1 1 *"), "custom schedule");
        assert_eq!(describe("1-5/2 * * * *"), "custom schedule");
    }
}
