//! Cogs and error handlers: module, present (carried by a live worker) or missing, parameters
//! (name, type and whether optional, from this binary's registry),
//! which tasks use each; and the live workers.

use chrono::Utc;
use cog::history::CogHealth;
use maud::{Markup, html};

use super::{PageResult, empty, enc, fail, live_layout, section};
use crate::ctx::Ctx;
use crate::views::fmt;

/// The cogs page.
pub(crate) async fn page(ctx: Ctx) -> PageResult {
    let rt = &ctx.state.rt;
    let cogs = rt.cogs_overview().await.map_err(fail(&ctx))?;
    let handlers = rt.error_handlers_overview().await.map_err(fail(&ctx))?;
    let workers = rt.workers().await.map_err(fail(&ctx))?;
    let now = Utc::now();
    let body = html! {
        div.page-head { h1 { "Cogs and handlers" } span.muted { "present = carried by a live worker" } }
        div.card {
            (section("Cogs", Some(cogs.len())))
            @if cogs.is_empty() { (empty("No cog is recorded yet: cogs are recorded when a worker starts or a pipeline using them is defined.")) } @else { (table(&ctx, &cogs, "cog", true)) }
        }
        div.card {
            (section("Error handlers", Some(handlers.len())))
            @if handlers.is_empty() { (empty("No custom error handler is recorded; tasks use the default handler.")) } @else { (table(&ctx, &handlers, "handler", false)) }
        }
        div.card {
            (section("Live workers", Some(workers.len())))
            @if workers.is_empty() { (empty("No live worker: nothing will run until a process calls rt.start().")) } @else {
                div.table-wrap { table.data {
                    thead { tr { th { "Worker" } th { "Queues" } th.num { "Cogs" } th { "Started" } th { "Last heartbeat" } } }
                    tbody { @for w in &workers { tr {
                        td.mono { (w.name) }
                        td { @for q in &w.queues { span.tag { (q) } " " } }
                        td.num { (w.cogs) }
                        td { (fmt::time(w.started_at)) }
                        td { (fmt::age(w.heartbeat_at, now)) }
                    } } }
                } }
            }
        }
    };
    Ok(live_layout(&ctx, "cogs", "Cogs", body, 10))
}

/// A table of cogs or handlers.
fn table(ctx: &Ctx, items: &[CogHealth], kind: &str, parameters: bool) -> Markup {
    html! {
        div.table-wrap { table.data {
            thead { tr { th { "Name" } th { "Module" } th { "Present" } @if parameters { th { "Parameters" } } th { "Used by" } } }
            tbody { @for c in items { tr id={ (kind) "-" (c.name) } {
                td { code.strong { (c.name) } }
                td.small.mono { (c.module) }
                td {
                    @if c.present { span.badge.status-completed title={ "Carried by " (c.workers.join(", ")) } { "present" } div.muted.small { (c.workers.len()) " worker" @if c.workers.len() != 1 { "s" } } }
                    @else { span.badge.status-failed title="No live worker carries it: its tasks wait or fail" { "missing" } }
                }
                @if parameters {
                    td { @match &c.parameter_details {
                        Some(list) if list.is_empty() => span.muted { "none" },
                        Some(list) => { ul.plain { @for p in list { li {
                            code { (p.name) ": " (p.type_name) }
                            @if p.optional { " " span.tag title="May be left out of the arguments" { "optional" } }
                        } } } },
                        None => span.muted title="Recorded once a worker that carries this cog has started" { "unknown until a worker carries it" },
                    } }
                }
                td { @if c.used_by.is_empty() { span.muted { "unused" } } @else {
                    ul.plain { @for t in &c.used_by { li { a href=(ctx.url(&format!("pipelines/{}", enc(&t.pipeline)))) { (t.pipeline) } " / " (t.stage) " / " (t.task) } } }
                } }
            } } }
        } }
    }
}
