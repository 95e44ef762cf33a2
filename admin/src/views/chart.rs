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
                    @let (ok, bad) = heights(m.completed, m.failed, max);
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

/// Bar heights `(completed, failed)` for a minute, scaled to the peak `max`; together never
/// taller than the chart (each is rounded on its own).
fn heights(completed: i64, failed: i64, max: i64) -> (usize, usize) {
    let scale = |n: i64| ((n.max(0) as f64 / max.max(1) as f64) * HEIGHT as f64).round() as usize;
    let total = scale(completed + failed).min(HEIGHT);
    let ok = scale(completed).min(total);
    (ok, total - ok)
}

#[cfg(test)]
mod tests {
    use super::{HEIGHT, heights};

    #[test]
    fn stacked_bars_never_exceed_the_chart() {
        for max in 1..40 {
            for completed in 0..=max {
                let (ok, bad) = heights(completed, max - completed, max);
                assert_eq!(ok + bad, HEIGHT, "{completed} + {} of {max}", max - completed);
            }
        }
        assert_eq!(heights(0, 0, 5), (0, 0));
        assert_eq!(heights(1, 0, 2), (45, 0));
    }
}
