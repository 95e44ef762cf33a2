//! Times (UTC in the markup, the viewer's local time once the script runs, UTC on hover),
//! human durations, status badges and JSON.

use chrono::{DateTime, Utc};
use cog::RunStatus;
use maud::{Markup, html};

/// A UTC instant: shown in the viewer's local time by the script, UTC on hover.
pub(crate) fn time(t: DateTime<Utc>) -> Markup {
    let utc = t.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    html! { time datetime=(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)) title=(utc) { (utc) } }
}

/// An optional instant, `—` when absent.
pub(crate) fn time_opt(t: Option<DateTime<Utc>>) -> Markup {
    match t {
        Some(t) => time(t),
        None => html! { span.muted { "—" } },
    }
}

/// A duration in words: `850 ms`, `12.3 s`, `4 min 05 s`, `2 h 03 min`, `3 d 4 h`.
pub(crate) fn duration_ms(ms: i64) -> String {
    let ms = ms.max(0);
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{} min {:02} s", ms / 60_000, (ms / 1000) % 60),
        3_600_000..86_400_000 => format!("{} h {:02} min", ms / 3_600_000, (ms / 60_000) % 60),
        _ => format!("{} d {} h", ms / 86_400_000, (ms / 3_600_000) % 24),
    }
}

/// How long something took, or has been running (`… so far`), or `—`.
pub(crate) fn elapsed(started: Option<DateTime<Utc>>, ended: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Markup {
    match (started, ended) {
        (Some(s), Some(e)) => html! { (duration_ms((e - s).num_milliseconds())) },
        (Some(s), None) => html! { span.running-time { (duration_ms((now - s).num_milliseconds())) " so far" } },
        _ => html! { span.muted { "—" } },
    }
}

/// An age in words (`5 min ago`), for an instant in the past.
pub(crate) fn age(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    format!("{} ago", duration_ms((now - t).num_milliseconds()))
}

/// A status badge; the same colours everywhere.
pub(crate) fn status(s: RunStatus) -> Markup {
    html! { span class={ "badge status-" (s.as_str()) } { (s.as_str()) } }
}

/// A badge for a stage that never started.
pub(crate) fn not_started() -> Markup {
    html! { span.badge.status-none { "not started" } }
}

/// JSON, pretty-printed and escaped.
pub(crate) fn json(v: &serde_json::Value) -> Markup {
    let text = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    html! { pre.json { (text) } }
}

/// JSON on one line, shortened to `max` characters (the full text on hover).
pub(crate) fn json_short(v: &serde_json::Value, max: usize) -> Markup {
    let text = v.to_string();
    html! { code.json-inline title=(text) { (shorten(&text, max)) } }
}

/// `text` cut to `max` characters with an ellipsis.
pub(crate) fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// The first line of a message.
pub(crate) fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_words() {
        assert_eq!(duration_ms(0), "0 ms");
        assert_eq!(duration_ms(850), "850 ms");
        assert_eq!(duration_ms(12_345), "12.3 s");
        assert_eq!(duration_ms(245_000), "4 min 05 s");
        assert_eq!(duration_ms(7_380_000), "2 h 03 min");
        assert_eq!(duration_ms(273_600_000), "3 d 4 h");
        assert_eq!(duration_ms(-5), "0 ms");
    }

    #[test]
    fn shorten_cuts_on_characters() {
        assert_eq!(shorten("héllo", 10), "héllo");
        assert_eq!(shorten("héllo world", 5), "héll…");
    }
}
