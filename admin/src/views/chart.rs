//! The throughput chart: task runs ended per minute over the last hour, completed (green)
//! with failed (red) stacked on top.

use cog::history::MinuteCount;
use maud::{Markup, html};

const BAR: usize = 10;
const GAP: usize = 2;
const HEIGHT: usize = 90;

/// A bar chart of `minutes`.
pub(crate) fn throughput(minutes: &[MinuteCount]) -> Markup {
    let max = minutes.iter().map(|m| m.completed + m.failed).max().unwrap_or(0).max(1);
    let width = minutes.len() * (BAR + GAP);
    let total_completed: i64 = minutes.iter().map(|m| m.completed).sum();
    let total_failed: i64 = minutes.iter().map(|m| m.failed).sum();
    let scale = |n: i64| (n as f64 / max as f64 * HEIGHT as f64).round() as usize;
    html! {
        div.chart {
            div.chart-legend {
                span.legend-completed { (total_completed) " completed" }
                span.legend-failed { (total_failed) " failed" }
                span.muted { "peak " (max) "/min" }
            }
            svg.throughput xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (width) " " (HEIGHT) } preserveAspectRatio="none" role="img" aria-label="Task runs per minute, last hour" {
                @for (i, m) in minutes.iter().enumerate() {
                    @let x = i * (BAR + GAP);
                    @let ok = scale(m.completed);
                    @let bad = scale(m.failed);
                    g {
                        title { (m.minute.format("%H:%M UTC")) ": " (m.completed) " completed, " (m.failed) " failed" }
                        rect.bar-track x=(x) y="0" width=(BAR) height=(HEIGHT) {}
                        @if ok > 0 { rect.bar-completed x=(x) y=(HEIGHT - ok) width=(BAR) height=(ok) {} }
                        @if bad > 0 { rect.bar-failed x=(x) y=(HEIGHT - ok - bad) width=(BAR) height=(bad) {} }
                    }
                }
            }
            div.chart-axis { span { "60 min ago" } span { "now" } }
        }
    }
}
