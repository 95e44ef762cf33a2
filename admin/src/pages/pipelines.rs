//! Pipelines: name, enabled, schedule in words with the raw expression and time zone, the
//! next 3 ticks in the pipeline's time zone, last run, Launch Now and enable/disable.

use chrono::{DateTime, Utc};
use cog::history::PipelineSummary;
use maud::{Markup, html};

use super::{PageResult, empty, enc, fail, layout};
use crate::ctx::Ctx;
use crate::views::{cron, fmt};

/// The pipelines page.
pub(crate) async fn page(ctx: Ctx) -> PageResult {
    let pipelines = ctx.state.rt.pipelines().await.map_err(fail(&ctx))?;
    let now = Utc::now();
    let body = html! {
        div.page-head { h1 { "Pipelines" } span.muted { (pipelines.len()) " defined" } }
        @if pipelines.is_empty() {
            div.card { (empty("No pipeline is defined yet: call rt.define(PipelineSpec::new(\"…\")…) in your application.")) }
        } @else {
            div.card.flush {
                div.table-wrap { table.data.pipelines {
                    thead { tr { th { "Pipeline" } th { "Schedule" } th { "Next ticks" } th { "Last run" } th { "Enabled" } @if !ctx.state.read_only { th { "Launch" } } } }
                    tbody { @for p in &pipelines { (row(&ctx, p, now)) } }
                } }
            }
        }
    };
    Ok(layout(&ctx, "pipelines", "Pipelines", body))
}

/// One pipeline's row.
fn row(ctx: &Ctx, p: &PipelineSummary, now: DateTime<Utc>) -> Markup {
    html! {
        tr id={ "pipeline-" (p.name) } {
            td {
                a.strong href=(ctx.url(&format!("pipelines/{}", enc(&p.name)))) { (p.name) }
                div.muted.small { (plural(p.stages, "stage")) " · " (plural(p.tasks, "task")) @if !p.prevent_overlap { " · overlap allowed" } }
            }
            td data-label="Schedule" { (schedule(p)) }
            td data-label="Next ticks" { (ticks(p)) }
            td data-label="Last run" {
                @if let Some(r) = &p.last_run {
                    a href=(ctx.url(&format!("runs/{}", r.id))) { (fmt::status(r.status)) }
                    div.muted.small { (fmt::elapsed(r.started_at, r.completed_at, now)) " · " (fmt::time(r.created_at)) }
                } @else { span.muted { "never run" } }
            }
            td data-label="Enabled" { (enable_toggle(ctx, p, "pipelines")) }
            @if !ctx.state.read_only { td data-label="Launch" { (launch_form(ctx, &p.name)) } }
        }
    }
}

/// `n thing(s)`.
fn plural(n: usize, thing: &str) -> String {
    if n == 1 { format!("1 {thing}") } else { format!("{n} {thing}s") }
}

/// The schedule in words, the raw expression and the time zone.
pub(crate) fn schedule(p: &PipelineSummary) -> Markup {
    html! {
        @if let Some(expr) = &p.schedule {
            div { (cron::describe(expr)) }
            div.muted.small { code { (expr) } " · " (p.timezone) }
        } @else { span.muted { "manual only" } }
    }
}

/// The next ticks, in the pipeline's time zone.
pub(crate) fn ticks(p: &PipelineSummary) -> Markup {
    let tz: Option<chrono_tz::Tz> = p.timezone.parse().ok();
    html! {
        @if p.next_ticks.is_empty() { span.muted { "—" } } @else {
            ul.ticks { @for t in &p.next_ticks {
                li title={ (t.format("%Y-%m-%d %H:%M:%S UTC")) } {
                    @match tz { Some(tz) => (t.with_timezone(&tz).format("%a %d %b %H:%M:%S %Z")), None => (t.format("%a %d %b %H:%M:%S UTC")) }
                }
            } }
            @if !p.enabled { div.muted.small { "(disabled: ticks launch nothing)" } }
        }
    }
}

/// The enabled badge with its toggle form (`back` = the page to return to).
pub(crate) fn enable_toggle(ctx: &Ctx, p: &PipelineSummary, back: &str) -> Markup {
    let action = if p.enabled { "disable" } else { "enable" };
    html! {
        div.toggle {
            @if p.enabled { span.badge.status-completed { "enabled" } } @else { span.badge.status-none { "disabled" } }
            @if !ctx.state.read_only {
                form.inline method="post" action=(ctx.url(&format!("pipelines/{}/{action}", enc(&p.name)))) {
                    input type="hidden" name="csrf" value=(ctx.csrf);
                    input type="hidden" name="back" value=(back);
                    button.btn.btn-small.btn-ghost type="submit" { (if p.enabled { "Disable" } else { "Enable" }) }
                }
            }
        }
    }
}

/// Launch Now, with optional JSON launch arguments (checked in the browser and again on the server).
pub(crate) fn launch_form(ctx: &Ctx, name: &str) -> Markup {
    html! {
        form.launch method="post" action=(ctx.url(&format!("pipelines/{}/launch", enc(name)))) data-json-form {
            input type="hidden" name="csrf" value=(ctx.csrf);
            details.args {
                summary { "arguments" }
                textarea name="arguments" rows="3" spellcheck="false" placeholder="{\"date\": \"2026-11-24\"}" data-json { "{}" }
            }
            div.field-error role="alert" {}
            button.btn.btn-primary type="submit" data-launch=(name) { "Launch now" }
        }
    }
}
