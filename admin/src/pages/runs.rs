//! Runs: every pipeline run, active ones first, filtered by pipeline, status, trigger and
//! date range, in keyset pages (`before` = the last id shown).

use axum::extract::Query;
use chrono::{DateTime, NaiveDate, Utc};
use cog::history::{RunFilter, RunSummary};
use cog::{RunStatus, Trigger};
use maud::{Markup, html};
use serde::Deserialize;

use super::{PageResult, empty, enc, error_page, fail, layout, live_layout, section};
use crate::ctx::Ctx;
use crate::failure::Failure;
use crate::views::fmt;

/// The query string of the runs page and of `api/runs` (empty values mean "any").
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RunsQuery {
    pipeline: Option<String>,
    status: Option<String>,
    trigger: Option<String>,
    from: Option<String>,
    to: Option<String>,
    before: Option<String>,
    limit: Option<String>,
}

/// A non-empty value.
fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl RunsQuery {
    /// The filter this query asks for; a value that does not parse is a 400 naming it.
    pub(crate) fn filter(&self) -> Result<RunFilter, Failure> {
        let mut f = RunFilter::new();
        if let Some(p) = given(&self.pipeline) {
            f = f.pipeline(p);
        }
        if let Some(s) = given(&self.status) {
            f = f.status(
                RunStatus::parse(s).ok_or_else(|| Failure::bad_request(format!("unknown status `{s}`: use queued, running, completed, failed or canceled")))?,
            );
        }
        if let Some(t) = given(&self.trigger) {
            f = f.trigger(match t {
                "manual" => Trigger::Manual,
                "schedule" => Trigger::Schedule,
                "retry" => Trigger::Retry,
                other => return Err(Failure::bad_request(format!("unknown trigger `{other}`: use manual, schedule or retry"))),
            });
        }
        if let Some(from) = given(&self.from) {
            f = f.from(instant("from", from, false)?);
        }
        if let Some(to) = given(&self.to) {
            f = f.to(instant("to", to, true)?);
        }
        if let Some(b) = given(&self.before) {
            f = f.before(b.parse().map_err(|_| Failure::bad_request(format!("`before` must be a run id (an integer), not `{b}`")))?);
        }
        if let Some(l) = given(&self.limit) {
            let n: u64 = l.parse().map_err(|_| Failure::bad_request(format!("`limit` must be a positive integer, not `{l}`")))?;
            if n == 0 || n > cog::history::MAX_LIMIT {
                return Err(Failure::bad_request(format!("`limit` must be between 1 and {}, not {n}", cog::history::MAX_LIMIT)));
            }
            f = f.limit(n);
        }
        Ok(f)
    }

    /// The query string without `before` (to build page links).
    fn without_cursor(&self) -> String {
        let mut parts = Vec::new();
        for (k, v) in
            [("pipeline", &self.pipeline), ("status", &self.status), ("trigger", &self.trigger), ("from", &self.from), ("to", &self.to), ("limit", &self.limit)]
        {
            if let Some(v) = given(v) {
                parts.push(format!("{k}={}", enc(v)));
            }
        }
        parts.join("&")
    }
}

/// A date (`2026-11-24`, the start of that UTC day; with `end`, the start of the next) or an
/// RFC 3339 instant.
fn instant(name: &str, text: &str, end: bool) -> Result<DateTime<Utc>, Failure> {
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let day = if end { day.succ_opt().unwrap_or(day) } else { day };
        return Ok(day.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| Failure::bad_request(format!("`{name}` must be a date (2026-11-24) or an RFC 3339 time, not `{text}`")))
}

/// The runs page.
pub(crate) async fn page(ctx: Ctx, Query(q): Query<RunsQuery>) -> PageResult {
    let filter = q.filter().map_err(|f| error_page(&ctx, &f))?;
    let rt = &ctx.state.rt;
    let now = Utc::now();
    let runs = rt.runs(&filter).await.map_err(fail(&ctx))?;
    let first_page = filter.before.is_none();
    // Active runs first (on the first page, when the filter lets them in).
    let mut active = Vec::new();
    if first_page && filter.status.is_none() {
        for status in [RunStatus::Running, RunStatus::Queued] {
            let mut f = filter.clone();
            f.status = Some(status);
            active.extend(rt.runs(&f.limit(cog::history::MAX_LIMIT)).await.map_err(fail(&ctx))?);
        }
    }
    let pipelines = rt.pipelines().await.map_err(fail(&ctx))?;
    let base_query = q.without_cursor();
    let next = (runs.len() as u64 == filter.page_size()).then(|| runs.last().map(|r| r.id)).flatten();
    let body = html! {
        div.page-head { h1 { "Runs" } }
        form.filters method="get" action=(ctx.url("runs")) {
            label { "Pipeline"
                select name="pipeline" {
                    option value="" { "any" }
                    @for p in &pipelines {
                        option value=(p.name) selected[filter.pipeline.as_deref() == Some(p.name.as_str())] { (p.name) }
                    }
                }
            }
            label { "Status"
                select name="status" {
                    option value="" { "any" }
                    @for s in ["queued", "running", "completed", "failed", "canceled"] {
                        option value=(s) selected[filter.status.map(|x| x.as_str()) == Some(s)] { (s) }
                    }
                }
            }
            label { "Trigger"
                select name="trigger" {
                    option value="" { "any" }
                    @for t in ["manual", "schedule", "retry"] {
                        option value=(t) selected[filter.trigger.map(|x| x.as_str()) == Some(t)] { (t) }
                    }
                }
            }
            label { "From (UTC)" input type="date" name="from" value=[given(&q.from)]; }
            label { "To (UTC)" input type="date" name="to" value=[given(&q.to)]; }
            div.filter-actions {
                button.btn type="submit" { "Filter" }
                a.btn.btn-ghost href=(ctx.url("runs")) { "Reset" }
            }
        }
        @if !active.is_empty() {
            div.card {
                (section("Active", Some(active.len())))
                (table(&ctx, &active, now, true))
            }
        }
        div.card {
            (section(if first_page { "All runs, newest first" } else { "Older runs" }, None))
            @if runs.is_empty() { (empty("No run matches these filters.")) } @else { (table(&ctx, &runs, now, true)) }
            div.pager {
                @if !first_page {
                    a.btn.btn-ghost href={ (ctx.url("runs")) "?" (base_query) } { "« Newest" }
                }
                @if let Some(id) = next {
                    a.btn.btn-ghost rel="next" href={ (ctx.url("runs")) "?" (base_query) @if !base_query.is_empty() { "&" } "before=" (id) } { "Older »" }
                }
            }
        }
    };
    // The first page follows new runs; older pages stay put.
    Ok(if first_page { live_layout(&ctx, "runs", "Runs", body, 5) } else { layout(&ctx, "runs", "Runs", body) })
}

/// A table of runs.
pub(crate) fn table(ctx: &Ctx, runs: &[RunSummary], now: DateTime<Utc>, show_pipeline: bool) -> Markup {
    html! {
        div.table-wrap {
            table.data {
                thead { tr {
                    th { "Run" }
                    @if show_pipeline { th { "Pipeline" } }
                    th { "Status" } th { "Trigger" } th { "Created" } th { "Duration" } th { "Arguments" }
                } }
                tbody {
                    @for r in runs {
                        tr {
                            td { a.mono href=(ctx.url(&format!("runs/{}", r.id))) { "#" (r.id) } }
                            @if show_pipeline { td { a href=(ctx.url(&format!("pipelines/{}", enc(&r.pipeline)))) { (r.pipeline) } } }
                            td { (fmt::status(r.status)) }
                            td { span.tag { (r.trigger.as_str()) } }
                            td { (fmt::time(r.created_at)) }
                            td { (fmt::elapsed(r.started_at, r.completed_at, now)) }
                            td { @if r.arguments.as_object().is_some_and(|o| o.is_empty()) { span.muted { "—" } } @else { (fmt::json_short(&r.arguments, 48)) } }
                        }
                    }
                }
            }
        }
    }
}
