//! Queues: depth, oldest queued task run's age, which live workers serve each queue, a
//! "paused" badge and Pause / Resume buttons.

use chrono::Utc;
use maud::html;

use super::{PageResult, empty, enc, fail, live_layout};
use crate::ctx::Ctx;
use crate::views::fmt;

/// The queues page.
pub(crate) async fn page(ctx: Ctx) -> PageResult {
    let queues = ctx.state.rt.queues_overview().await.map_err(fail(&ctx))?;
    let now = Utc::now();
    let body = html! {
        div.page-head { h1 { "Queues" } }
        div.card.flush {
            @if queues.is_empty() { (empty("No queue.")) } @else {
                div.table-wrap { table.data {
                    thead { tr { th { "Queue" } th.num { "Queued" } th.num { "Running" } th { "Oldest queued" } th { "Served by" } @if !ctx.state.read_only { th { } } } }
                    tbody { @for q in &queues { tr id={ "queue-" (q.name) } {
                        td.strong { (q.name) @if q.paused { " " span.badge.status-canceled.queue-paused title="Paused: no worker claims its task runs until it is resumed" { "paused" } } }
                        td.num { (q.queued) }
                        td.num { (q.running) }
                        td { @match q.oldest_queued_at {
                            Some(t) if t <= now => span title=(t.format("%Y-%m-%d %H:%M:%S UTC")) { (fmt::age(t, now)) },
                            Some(t) => span.muted title=(t.format("%Y-%m-%d %H:%M:%S UTC")) { "retry in " (fmt::duration_ms((t - now).num_milliseconds())) },
                            None => span.muted { "—" },
                        } }
                        td {
                            @if q.workers.is_empty() {
                                span.badge.status-failed title="No live worker works on this queue: its task runs wait" { "no live worker" }
                            } @else {
                                ul.plain { @for w in &q.workers { li.mono.small { (w) } } }
                            }
                        }
                        @if !ctx.state.read_only {
                            td {
                                form method="post" action=(ctx.url(&format!("queues/{}/{}", enc(&q.name), if q.paused { "resume" } else { "pause" }))) {
                                    input type="hidden" name="csrf" value=(ctx.csrf);
                                    @if q.paused {
                                        button.btn.btn-ghost type="submit" { "Resume" }
                                    } @else {
                                        button.btn.btn-ghost type="submit" title="Stop claiming this queue's task runs; running ones finish" { "Pause" }
                                    }
                                }
                            }
                        }
                    } } }
                } }
            }
        }
    };
    Ok(live_layout(&ctx, "queues", "Queues", body, 5))
}
