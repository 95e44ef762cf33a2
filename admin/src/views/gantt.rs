//! The timeline (Gantt chart) of a run's task runs: one row per task run, a bar from its
//! start to its end (or now), coloured by status, with its worker.

use chrono::{DateTime, Utc};
use cog::history::TaskRunRow;
use maud::{Markup, html};

use super::fmt::duration_ms;

/// The timeline of `task_runs`, as of `now`.
pub(crate) fn timeline(task_runs: &[TaskRunRow], now: DateTime<Utc>) -> Markup {
    let started: Vec<&TaskRunRow> = task_runs.iter().filter(|t| t.started_at.is_some()).collect();
    let Some(first) = started.iter().filter_map(|t| t.started_at).min() else {
        return html! { p.muted { "No task run has started yet." } };
    };
    let last = started.iter().map(|t| t.completed_at.unwrap_or(now)).max().unwrap_or(now).max(first + chrono::TimeDelta::milliseconds(1));
    let span = (last - first).num_milliseconds().max(1) as f64;
    let percent = |t: DateTime<Utc>| ((t - first).num_milliseconds() as f64 / span * 100.0).clamp(0.0, 100.0);
    html! {
        div.gantt {
            div.gantt-axis {
                span { "0" }
                span { (duration_ms((span / 2.0) as i64)) }
                span { (duration_ms(span as i64)) }
            }
            @for t in &started {
                @let start = t.started_at.unwrap_or(first);
                @let end = t.completed_at.unwrap_or(now);
                @let left = percent(start);
                @let width = (percent(end) - left).max(0.6);
                @let took = (end - start).num_milliseconds();
                div.gantt-row {
                    div.gantt-label title={ (t.stage) " / " (t.task) } {
                        span.gantt-stage { (t.stage) } " / " (t.task)
                    }
                    div.gantt-track {
                        div class={ "gantt-bar status-" (t.status.as_str()) }
                            style={ "left:" (format!("{left:.2}")) "%;width:" (format!("{width:.2}")) "%" }
                            title={ (t.task) ": " (t.status.as_str()) ", " (duration_ms(took)) " on " (t.worker.as_deref().unwrap_or("?")) } {}
                    }
                    div.gantt-worker title=(t.worker.as_deref().unwrap_or("")) { (t.worker.as_deref().map(short_worker).unwrap_or_default()) }
                }
            }
        }
    }
}

/// A worker name without its random suffix (`host:pid:n:abcd1234` → `host:pid:n`).
fn short_worker(name: &str) -> String {
    let parts: Vec<&str> = name.split(':').collect();
    if parts.len() == 4 && parts[3].len() == 8 { parts[..3].join(":") } else { name.to_owned() }
}
