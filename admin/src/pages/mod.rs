//! The HTML pages: one module per page, the shared layout, and the form actions.

pub(crate) mod actions;
pub(crate) mod cogs;
pub(crate) mod errors;
pub(crate) mod overview;
pub(crate) mod pipeline;
pub(crate) mod pipelines;
pub(crate) mod queues;
pub(crate) mod run;
pub(crate) mod runs;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use crate::ctx::Ctx;
use crate::failure::Failure;

/// The navigation entries: label and path under the mount point.
const NAV: [(&str, &str); 6] = [("Overview", ""), ("Pipelines", "pipelines"), ("Runs", "runs"), ("Errors", "errors"), ("Cogs", "cogs"), ("Queues", "queues")];

/// A whole page: header, navigation (with `active` highlighted), `body`.
pub(crate) fn layout(ctx: &Ctx, active: &str, title: &str, body: Markup) -> Response {
    page(ctx, StatusCode::OK, active, title, body, None)
}

/// A whole page whose content the script refreshes every `seconds` (while the tab is
/// visible and nobody is typing in it); the refresh asks for the content alone.
pub(crate) fn live_layout(ctx: &Ctx, active: &str, title: &str, body: Markup, seconds: u32) -> Response {
    page(ctx, StatusCode::OK, active, title, body, Some(seconds))
}

/// A whole page with a status code.
pub(crate) fn page_with_status(ctx: &Ctx, status: StatusCode, active: &str, title: &str, body: Markup) -> Response {
    page(ctx, status, active, title, body, None)
}

/// The page, or only its content when the script asked for it (`X-Cog-Fragment: main`).
fn page(ctx: &Ctx, status: StatusCode, active: &str, title: &str, body: Markup, refresh: Option<u32>) -> Response {
    if ctx.fragment {
        let mut response = (status, body).into_response();
        response.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
        return response;
    }
    let state = &ctx.state;
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (state.title) }
                link rel="stylesheet" href=(ctx.url("assets/admin.css"));
                script src=(ctx.url("assets/admin.js")) defer {}
            }
            body {
                header.topbar {
                    a.brand href=(ctx.url("")) {
                        span.logo aria-hidden="true" { "⚙" }
                        span { (state.title) }
                    }
                    nav.nav {
                        @for (label, path) in NAV {
                            a href=(ctx.url(path)) class=[(active == path).then_some("active")] { (label) }
                        }
                    }
                    @if state.read_only {
                        span.badge.readonly title="Actions are disabled" { "read-only" }
                    }
                }
                main.content data-auto-refresh=[refresh] { (body) }
                footer.footer { "cog admin · times in your local time zone (hover for UTC)" }
            }
        }
    };
    let mut response = (status, markup).into_response();
    if let Some(cookie) = ctx.cookie() {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    // The action buttons must not be framed by another site (clickjacking).
    headers.insert(header::X_FRAME_OPTIONS, header::HeaderValue::from_static("SAMEORIGIN"));
    headers.insert(header::CONTENT_SECURITY_POLICY, header::HeaderValue::from_static("frame-ancestors 'self'"));
    response
}

/// A page saying what went wrong.
pub(crate) fn error_page(ctx: &Ctx, failure: &Failure) -> Response {
    let body = html! {
        div.page-head { h1 { "Something went wrong" } }
        div.card.alert {
            p.alert-title { (failure.status.as_u16()) " " (failure.status.canonical_reason().unwrap_or("")) }
            p { (failure.message) }
            p { a href=(ctx.url("")) { "Back to the overview" } }
        }
    };
    page_with_status(ctx, failure.status, "", "Error", body)
}

/// A page's handler result: the page, or the error page.
pub(crate) type PageResult = Result<Response, Response>;

/// Turns a failure into its error page.
pub(crate) fn fail(ctx: &Ctx) -> impl Fn(cog::Error) -> Response + '_ {
    move |e| error_page(ctx, &Failure::from(e))
}

/// 404 for paths the admin does not have.
pub(crate) async fn not_found(ctx: Ctx) -> Response {
    error_page(&ctx, &Failure::not_found("the admin has no page at this address"))
}

/// The `title` attribute and text of a card heading with a count.
pub(crate) fn section(title: &str, count: Option<usize>) -> Markup {
    html! { h2.section-title { (title) @if let Some(n) = count { span.count { (n) } } } }
}

/// An empty-state line.
pub(crate) fn empty(text: &str) -> Markup {
    html! { p.empty { (text) } }
}

/// Percent-encodes a path segment or query value.
pub(crate) fn enc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
