//! Overview: running runs, runs that failed in the last 24 h, queue depths, task
//! throughput over the last hour, and the next scheduled launches.

use chrono::{TimeDelta, Utc};
use cog::RunStatus;
use cog::history::RunFilter;
use maud::html;

use super::{PageResult, empty, enc, fail, live_layout, section};
use crate::ctx::Ctx;
use crate::views::{chart, fmt};

/// The overview page.
pub(crate) async fn page(ctx: Ctx) -> PageResult {
    let rt = &ctx.state.rt;
    let now = Utc::now();
    let running = rt.runs(&RunFilter::new().status(RunStatus::Running).limit(50)).await.map_err(fail(&ctx))?;
    let queued_runs = rt.runs(&RunFilter::new().status(RunStatus::Queued).limit(50)).await.map_err(fail(&ctx))?;
    let failed = rt.runs(&RunFilter::new().status(RunStatus::Failed).from(now - TimeDelta::hours(24)).limit(20)).await.map_err(fail(&ctx))?;
    let queues = rt.queues_overview().await.map_err(fail(&ctx))?;
    let workers = rt.workers().await.map_err(fail(&ctx))?;
    let minutes = rt.throughput(now - TimeDelta::minutes(59)).await.map_err(fail(&ctx))?;
    let pipelines = rt.pipelines().await.map_err(fail(&ctx))?;
    let mut upcoming: Vec<_> = pipelines.iter().filter(|p| p.enabled).filter_map(|p| p.next_ticks.first().map(|t| (*t, p))).collect();
    upcoming.sort_by_key(|(t, _)| *t);
    let mut active = running.clone();
    active.extend(queued_runs.iter().cloned());
    let health = rt.health();
    let troubled: Vec<_> = health.loops.iter().filter(|l| l.state != cog::LoopState::Running).collect();
    let queued_tasks: i64 = queues.iter().map(|q| q.queued).sum();
    let running_tasks: i64 = queues.iter().map(|q| q.running).sum();

    let body = html! {
        div.page-head { h1 { "Overview" } }
        div.stats {
            a.stat href={ (ctx.url("runs")) "?status=running" } {
                span.stat-value { (running.len()) }
                span.stat-label { "runs running" }
            }
            a.stat href={ (ctx.url("runs")) "?status=failed" } {
                span.stat-value.failed-text[!failed.is_empty()] { (failed.len()) }
                span.stat-label { "failed in 24 h" }
            }
            a.stat href=(ctx.url("queues")) {
                span.stat-value { (queued_tasks) " / " (running_tasks) }
                span.stat-label { "tasks queued / running" }
            }
            a.stat href=(ctx.url("cogs")) {
                span.stat-value { (workers.len()) }
                span.stat-label { "live workers" }
            }
        }
        @if !troubled.is_empty() {
            div.card.health-alert {
                (section("This process's background loops need attention", Some(troubled.len())))
                div.table-wrap { table.data {
                    thead { tr { th { "Loop" } th { "State" } th.num { "Restarts" } th { "Last error" } } }
                    tbody { @for l in &troubled { tr {
                        td { code { (l.name) } }
                        td { span.badge.status-failed { (l.state.as_str()) } }
                        td.num { (l.restarts) }
                        td { @match &l.last_error { Some(e) => code.wrap { (e) }, None => "—" } }
                    } } }
                } }
            }
        }
        div.grid-2 {
            div.card {
                (section("Active runs", Some(active.len())))
                @if active.is_empty() { (empty("Nothing is running right now.")) } @else { (super::runs::table(&ctx, &active, now, true)) }
            }
            div.card {
                (section("Task throughput, last hour", None))
                (chart::throughput(&minutes))
            }
        }
        div.grid-2 {
            div.card {
                (section("Failed in the last 24 h", Some(failed.len())))
                @if failed.is_empty() { (empty("No run failed in the last 24 hours.")) } @else { (super::runs::table(&ctx, &failed, now, true)) }
            }
            div.card {
                (section("Queues", Some(queues.len())))
                div.table-wrap { table.data {
                    thead { tr { th { "Queue" } th.num { "Queued" } th.num { "Running" } th { "Workers" } } }
                    tbody { @for q in &queues { tr {
                        td { a href=(ctx.url("queues")) { (q.name) } }
                        td.num { (q.queued) }
                        td.num { (q.running) }
                        td { @if q.workers.is_empty() { span.badge.status-failed title="No live worker serves this queue" { "none" } } @else { (q.workers.len()) } }
                    } } }
                } }
            }
        }
        div.card {
            (section("Next scheduled launches", Some(upcoming.len())))
            @if upcoming.is_empty() { (empty("No enabled pipeline has a schedule.")) } @else {
                div.table-wrap { table.data {
                    thead { tr { th { "Pipeline" } th { "Schedule" } th { "Next launch" } th { "In" } } }
                    tbody { @for (tick, p) in &upcoming { tr {
                        td { a href=(ctx.url(&format!("pipelines/{}", enc(&p.name)))) { (p.name) } }
                        td { (crate::views::cron::describe(p.schedule.as_deref().unwrap_or(""))) " " code.muted { (p.schedule.as_deref().unwrap_or("")) } }
                        td { (fmt::time(*tick)) }
                        td { (fmt::duration_ms((*tick - now).num_milliseconds())) }
                    } } }
                } }
            }
        }
    };
    Ok(live_layout(&ctx, "", "Overview", body, 5))
}
