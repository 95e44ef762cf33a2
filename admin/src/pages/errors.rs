//! Errors: `cog_error` rows newest first, filtered by pipeline, cog or type, each with its
//! message, an expandable backtrace and a link to its task run.

use axum::extract::Query;
use cog::history::{ErrorFilter, ErrorRow};
use maud::{Markup, html};
use serde::Deserialize;

use super::{PageResult, empty, enc, error_page, fail, layout};
use crate::ctx::Ctx;
use crate::failure::Failure;
use crate::views::fmt;

/// The query string of the errors page and of `api/errors`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ErrorsQuery {
    pipeline: Option<String>,
    cog: Option<String>,
    #[serde(rename = "type")]
    error_type: Option<String>,
    run: Option<String>,
    before: Option<String>,
    limit: Option<String>,
}

/// A non-empty value.
fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl ErrorsQuery {
    /// The filter asked for; a value that does not parse is a 400 naming it.
    pub(crate) fn filter(&self) -> Result<ErrorFilter, Failure> {
        let mut f = ErrorFilter::new();
        if let Some(p) = given(&self.pipeline) {
            f = f.pipeline(p);
        }
        if let Some(c) = given(&self.cog) {
            f = f.cog(c);
        }
        if let Some(t) = given(&self.error_type) {
            f = f.error_type(t);
        }
        let int = |name: &str, v: &str| v.parse::<i64>().map_err(|_| Failure::bad_request(format!("`{name}` must be an integer, not `{v}`")));
        if let Some(r) = given(&self.run) {
            f = f.run(int("run", r)?);
        }
        if let Some(b) = given(&self.before) {
            f = f.before(int("before", b)?);
        }
        if let Some(l) = given(&self.limit) {
            let n = int("limit", l)?;
            if n < 1 || n as u64 > cog::history::MAX_LIMIT {
                return Err(Failure::bad_request(format!("`limit` must be between 1 and {}, not {n}", cog::history::MAX_LIMIT)));
            }
            f = f.limit(n as u64);
        }
        Ok(f)
    }
}

/// The errors page.
pub(crate) async fn page(ctx: Ctx, Query(q): Query<ErrorsQuery>) -> PageResult {
    let filter = q.filter().map_err(|f| error_page(&ctx, &f))?;
    let rt = &ctx.state.rt;
    let errors = rt.errors(&filter).await.map_err(fail(&ctx))?;
    let pipelines = rt.pipelines().await.map_err(fail(&ctx))?;
    let cogs = rt.cogs_overview().await.map_err(fail(&ctx))?;
    let mut query = Vec::new();
    for (k, v) in [("pipeline", &q.pipeline), ("cog", &q.cog), ("type", &q.error_type), ("run", &q.run), ("limit", &q.limit)] {
        if let Some(v) = given(v) {
            query.push(format!("{k}={}", enc(v)));
        }
    }
    let query = query.join("&");
    let next = (errors.len() as u64 == filter.page_size()).then(|| errors.last().map(|e| e.id)).flatten();
    let body = html! {
        div.page-head { h1 { "Errors" } @if let Some(run) = filter.run { span.muted { "of run #" (run) } } }
        form.filters method="get" action=(ctx.url("errors")) {
            label { "Pipeline"
                select name="pipeline" {
                    option value="" { "any" }
                    @for p in &pipelines { option value=(p.name) selected[filter.pipeline.as_deref() == Some(p.name.as_str())] { (p.name) } }
                }
            }
            label { "Cog"
                select name="cog" {
                    option value="" { "any" }
                    @for c in &cogs { option value=(c.name) selected[filter.cog.as_deref() == Some(c.name.as_str())] { (c.name) } }
                }
            }
            label { "Type" input type="text" name="type" placeholder="e.g. panic" value=[given(&q.error_type)]; }
            @if let Some(run) = given(&q.run) { input type="hidden" name="run" value=(run); }
            div.filter-actions {
                button.btn type="submit" { "Filter" }
                a.btn.btn-ghost href=(ctx.url("errors")) { "Reset" }
            }
        }
        div.card {
            @if errors.is_empty() { (empty("No error matches these filters.")) } @else {
                @for e in &errors { (entry(&ctx, e, true)) }
            }
            div.pager {
                @if filter.before.is_some() { a.btn.btn-ghost href={ (ctx.url("errors")) "?" (query) } { "« Newest" } }
                @if let Some(id) = next {
                    a.btn.btn-ghost rel="next" href={ (ctx.url("errors")) "?" (query) @if !query.is_empty() { "&" } "before=" (id) } { "Older »" }
                }
            }
        }
    };
    Ok(layout(&ctx, "errors", "Errors", body))
}

/// One error: where, when, type, message, expandable backtrace; `with_run` adds the run link.
pub(crate) fn entry(ctx: &Ctx, e: &ErrorRow, with_run: bool) -> Markup {
    html! {
        article.error-entry id={ "error-" (e.id) } {
            div.error-head {
                span.badge.status-failed { (e.error_type) }
                span.strong { (e.pipeline) " / " (e.stage) " / " (e.task) }
                span.muted { "cog " code { (e.cog) } " · attempt " (e.attempt) }
                span.spacer {}
                (fmt::time(e.created_at))
            }
            pre.error-message { (e.message) }
            @if let Some(bt) = e.backtrace.as_deref().filter(|b| !b.trim().is_empty()) {
                details.backtrace { summary { "Backtrace" } pre { (bt) } }
            }
            div.error-links {
                @if with_run { a href=(ctx.url(&format!("runs/{}", e.run_id))) { "Run #" (e.run_id) } " · " }
                a href={ (ctx.url(&format!("runs/{}", e.run_id))) "#task-run-" (e.task_run_id) } { "Task run #" (e.task_run_id) }
            }
        }
    }
}
