//! Pipeline detail: the stage graph (SVG DAG by dependency depth), each stage's tasks, and the
//! pipeline's run history with durations.

use axum::extract::Path;
use chrono::Utc;
use cog::Overlap;
use cog::history::RunFilter;
use maud::html;

use super::pipelines::{enable_toggle, launch_form, schedule, ticks};
use super::{PageResult, empty, enc, fail, layout, section};
use crate::ctx::Ctx;
use crate::views::{dag, fmt};

/// Runs shown on the page (older ones on the runs page).
const HISTORY: u64 = 25;

/// The pipeline detail page.
pub(crate) async fn page(ctx: Ctx, Path(name): Path<String>) -> PageResult {
    let rt = &ctx.state.rt;
    let detail = rt.pipeline_detail(&name).await.map_err(fail(&ctx))?;
    let runs = rt.runs(&RunFilter::new().pipeline(name.as_str()).limit(HISTORY)).await.map_err(fail(&ctx))?;
    let now = Utc::now();
    let p = &detail.pipeline;
    let nodes: Vec<dag::Node<'_>> = detail
        .stages
        .iter()
        .map(|s| dag::Node { name: &s.name, depth: s.depth, prerequisites: &s.prerequisites, status: None, disabled: !s.enabled })
        .collect();
    let body = html! {
        div.page-head {
            div {
                div.crumbs { a href=(ctx.url("pipelines")) { "Pipelines" } " / " }
                h1 { (p.name) }
            }
            div.head-actions {
                (enable_toggle(&ctx, p, "detail"))
                @if !ctx.state.read_only { (launch_form(&ctx, &p.name)) }
            }
        }
        div.facts {
            div { span.fact-label { "Schedule" } (schedule(p)) }
            div { span.fact-label { "Next ticks" } (ticks(p)) }
            div { span.fact-label { "Overlap" } span.tag #overlap-policy { (p.overlap.as_str()) } " " span.muted.small { (overlap_text(p.overlap)) } }
        }
        div.card {
            (section("Stage graph", Some(detail.stages.len())))
            (dag::graph(&nodes))
        }
        @for s in &detail.stages {
            div.card.stage-card id={ "stage-" (s.name) } {
                h3.stage-title {
                    (s.name)
                    @if !s.enabled { " " span.badge.status-none { "disabled" } }
                    @if !s.prerequisites.is_empty() { span.muted.small { " after " (s.prerequisites.join(", ")) } }
                }
                @if s.tasks.is_empty() { (empty("No task: this stage completes at once.")) } @else {
                    div.table-wrap { table.data {
                        thead { tr { th { "Task" } th { "Cog" } th { "Arguments" } th { "Queue" } th.num { "Weight" } th { "Critical" } th { "Error handler" } th.num { "Retries" } th { "Timeout" } } }
                        tbody { @for t in &s.tasks { tr.disabled-row[!t.enabled] {
                            td.strong { (t.name) @if !t.enabled { " " span.badge.status-none { "disabled" } } }
                            td { a href={ (ctx.url("cogs")) "#cog-" (t.cog) } { code { (t.cog) } } }
                            td { (fmt::json_short(&t.arguments, 60)) }
                            td { (t.queue) }
                            td.num { (format!("{:.2} s", t.weight)) }
                            td { @if t.critical { "yes" } @else { span.muted { "no" } } }
                            td { @if let Some(h) = &t.error_handler { code { (h) } } @else { span.muted { "default" } } }
                            td.num { (t.max_retries) }
                            td { @if let Some(ms) = t.timeout_ms { (fmt::duration_ms(ms)) } @else { span.muted { "none" } } }
                        } } }
                    } }
                }
            }
        }
        div.card {
            (section("Run history", Some(runs.len())))
            @if runs.is_empty() { (empty("This pipeline has never run.")) } @else {
                (super::runs::table(&ctx, &runs, now, false))
                div.pager { a.btn.btn-ghost href={ (ctx.url("runs")) "?pipeline=" (enc(&p.name)) } { "All runs of " (p.name) " »" } }
            }
        }
    };
    Ok(layout(&ctx, "pipelines", &p.name, body))
}

/// What a launch does while a run is going, under `policy`.
fn overlap_text(policy: Overlap) -> &'static str {
    match policy {
        Overlap::Skip => "a launch is refused while a run is going",
        Overlap::BufferOne => "one launch waits for the run going, further ones are refused",
        Overlap::CancelRunning => "a launch cancels the run going",
        Overlap::Allow => "runs may overlap",
    }
}
