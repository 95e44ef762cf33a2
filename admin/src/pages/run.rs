//! Run detail: the stage graph coloured by stage status, the Gantt timeline of task runs
//! (when and on which worker), stage runs and task runs with attempts, results, errors and
//! durations, Cancel Run (confirmed), Retry (a failed or canceled run that ended), launch arguments. While the run is active the script
//! polls `api/runs/{id}` every second and swaps in a fresh `?fragment=live` on any change.

use axum::extract::{Path, Query};
use axum::http::header;
use axum::response::IntoResponse;
use chrono::Utc;
use cog::RunStatus;
use cog::history::RunDetail;
use maud::{Markup, html};
use serde::Deserialize;

use super::{PageResult, empty, enc, fail, layout, section};
use crate::ctx::Ctx;
use crate::views::{dag, fmt, gantt};

/// `?fragment=live` asks for the live part only.
#[derive(Debug, Deserialize)]
pub(crate) struct RunQuery {
    fragment: Option<String>,
}

/// The run page (or its live fragment).
pub(crate) async fn page(ctx: Ctx, Path(id): Path<i64>, Query(q): Query<RunQuery>) -> PageResult {
    let detail = ctx.state.rt.run_detail(id).await.map_err(fail(&ctx))?;
    let live = live(&ctx, &detail);
    if q.fragment.as_deref() == Some("live") {
        return Ok(([(header::CACHE_CONTROL, "no-store")], live).into_response());
    }
    let active = !detail.run.status.is_terminal();
    let body = html! {
        div #live data-live-run=(id) data-active=(active) data-api=(ctx.url(&format!("api/runs/{id}"))) data-fragment={ (ctx.url(&format!("runs/{id}"))) "?fragment=live" } {
            (live)
        }
    };
    Ok(layout(&ctx, "runs", &format!("Run #{id} of {}", detail.run.pipeline), body))
}

/// Everything that changes while the run goes on.
fn live(ctx: &Ctx, d: &RunDetail) -> Markup {
    let now = Utc::now();
    let r = &d.run;
    let nodes: Vec<dag::Node<'_>> = d
        .stages
        .iter()
        .map(|s| dag::Node {
            name: &s.stage,
            depth: s.depth,
            prerequisites: &s.prerequisites,
            status: Some(s.status.map_or("not started", |s| s.as_str())),
            disabled: false,
        })
        .collect();
    html! {
        div.page-head {
            div {
                div.crumbs { a href=(ctx.url("runs")) { "Runs" } " / " a href=(ctx.url(&format!("pipelines/{}", enc(&r.pipeline)))) { (r.pipeline) } " / " }
                h1 { "Run #" (r.id) " " span #run-status data-status=(r.status.as_str()) { (fmt::status(r.status)) } }
            }
            div.head-actions {
                @if r.completed_at.is_some() && matches!(r.status, RunStatus::Failed | RunStatus::Canceled) && !ctx.state.read_only {
                    form method="post" action=(ctx.url(&format!("runs/{}/retry", r.id))) {
                        input type="hidden" name="csrf" value=(ctx.csrf);
                        button.btn type="submit" #retry-run title="A new run in which the stages that completed here are not run again" { "Retry" }
                    }
                }
                @if !r.status.is_terminal() && !ctx.state.read_only {
                    form method="post" action=(ctx.url(&format!("runs/{}/cancel", r.id))) data-confirm={ "Cancel run #" (r.id) " of " (r.pipeline) "? Queued tasks are canceled and running cogs are told to stop." } {
                        input type="hidden" name="csrf" value=(ctx.csrf);
                        button.btn.btn-danger type="submit" #cancel-run { "Cancel run" }
                    }
                }
            }
        }
        div.facts {
            div { span.fact-label { "Pipeline" } a href=(ctx.url(&format!("pipelines/{}", enc(&r.pipeline)))) { (r.pipeline) } }
            div { span.fact-label { "Trigger" } span.tag { (r.trigger.as_str()) } @if let Some(t) = r.scheduled_for { " for " (fmt::time(t)) } }
            @if let Some(old) = r.retry_of { div { span.fact-label { "Retry of" } a #retry-of href=(ctx.url(&format!("runs/{old}"))) { "run #" (old) } } }
            div { span.fact-label { "Created" } (fmt::time(r.created_at)) }
            div { span.fact-label { "Started" } (fmt::time_opt(r.started_at)) }
            div { span.fact-label { "Ended" } (fmt::time_opt(r.completed_at)) }
            div { span.fact-label { "Duration" } (fmt::elapsed(r.started_at, r.completed_at, now)) }
        }
        div.card {
            (section("Stage graph", Some(d.stages.len())))
            (dag::graph(&nodes))
        }
        div.card {
            (section("Timeline", Some(d.task_runs.iter().filter(|t| t.started_at.is_some()).count())))
            (gantt::timeline(&d.task_runs, now))
        }
        div.card {
            (section("Stage runs", Some(d.stages.len())))
            div.table-wrap { table.data {
                thead { tr { th { "Stage" } th { "Status" } th { "After" } th { "Started" } th { "Duration" } } }
                tbody { @for s in &d.stages { tr {
                    td.strong { (s.stage) }
                    td { @match s.status { Some(st) => (fmt::status(st)), None => (fmt::not_started()) } }
                    td { @if s.prerequisites.is_empty() { span.muted { "—" } } @else { (s.prerequisites.join(", ")) } }
                    td { (fmt::time_opt(s.started_at)) }
                    td { (fmt::elapsed(s.started_at, s.completed_at, now)) }
                } } }
            } }
        }
        div.card {
            (section("Task runs", Some(d.task_runs.len())))
            @if d.task_runs.is_empty() { (empty("No task run yet.")) } @else {
                div.table-wrap { table.data.task-runs {
                    thead { tr { th { "Task" } th { "Cog" } th { "Status" } th.num { "Attempt" } th { "Worker" } th { "Started" } th { "Duration" } th { "Result / error" } } }
                    tbody { @for t in &d.task_runs { tr id={ "task-run-" (t.id) } {
                        td { span.muted { (t.stage) " / " } span.strong { (t.task) } }
                        td { code { (t.cog) } }
                        td { (fmt::status(t.status)) }
                        td.num { (t.attempt) " / " (t.max_retries + 1) }
                        td.small { (t.worker.as_deref().unwrap_or("—")) }
                        td { (fmt::time_opt(t.started_at)) }
                        td { @match t.duration_ms { Some(ms) => (fmt::duration_ms(ms)), None => (fmt::elapsed(t.started_at, t.completed_at, now)) } }
                        td.result {
                            @if let Some(e) = &t.error { div.error-text { (fmt::shorten(fmt::first_line(e), 160)) } }
                            @else if let Some(v) = &t.result { (fmt::json_short(v, 80)) }
                            @else { span.muted { "—" } }
                        }
                    } } }
                } }
            }
        }
        div.card {
            (section("Launch arguments", None))
            (fmt::json(&r.arguments))
        }
        div.card {
            (section("Errors", Some(d.errors.len())))
            @if d.errors.is_empty() { (empty("No error was recorded for this run.")) } @else {
                @for e in &d.errors { (super::errors::entry(ctx, e, false)) }
                div.pager { a.btn.btn-ghost href={ (ctx.url("errors")) "?run=" (r.id) } { "On the errors page »" } }
            }
        }
    }
}
