//! The form actions (POST, CSRF-checked, refused in read-only mode): Launch Now with
//! optional JSON arguments, enable/disable, Cancel Run, Retry (a failed or canceled run),
//! pause/resume a queue. Each answers with a redirect
//! (303) to the page showing the result, or an error page naming the problem.

use axum::Form;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{enc, error_page};
use crate::ctx::{Ctx, check_csrf};
use crate::failure::Failure;

/// A form with its CSRF token and optional fields.
#[derive(Debug, Deserialize)]
pub(crate) struct ActionForm {
    #[serde(default)]
    csrf: String,
    /// Launch arguments (JSON object text).
    arguments: Option<String>,
    /// Where to return: `detail` for the pipeline page, else the list.
    back: Option<String>,
}

/// Read-only and CSRF checks shared by every action.
fn allowed(ctx: &Ctx, headers: &HeaderMap, form: &ActionForm) -> Result<(), Failure> {
    if ctx.state.read_only {
        return Err(Failure::read_only());
    }
    check_csrf(headers, &form.csrf)
}

/// 303 to `path` under the mount point.
fn see_other(ctx: &Ctx, path: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, ctx.url(path))]).into_response()
}

/// Parses launch arguments: empty means `{}`; anything else must be a JSON object.
pub(crate) fn parse_arguments(pipeline: &str, text: &str) -> Result<serde_json::Value, Failure> {
    if text.trim().is_empty() {
        return Ok(serde_json::json!({}));
    }
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        Failure::bad_request(format!("the launch arguments of `{pipeline}` are not valid JSON ({e}); write an object such as {{\"date\": \"2026-11-24\"}}"))
    })?;
    if !value.is_object() {
        return Err(Failure::bad_request(format!(
            "the launch arguments of `{pipeline}` must be a JSON object such as {{\"date\": \"2026-11-24\"}}, not {value}"
        )));
    }
    Ok(value)
}

/// Launch Now: launches and shows the new run.
pub(crate) async fn launch(ctx: Ctx, Path(name): Path<String>, headers: HeaderMap, Form(form): Form<ActionForm>) -> Response {
    if let Err(refused) = allowed(&ctx, &headers, &form) {
        return error_page(&ctx, &refused);
    }
    let arguments = match parse_arguments(&name, form.arguments.as_deref().unwrap_or("")) {
        Ok(a) => a,
        Err(f) => return error_page(&ctx, &f),
    };
    match ctx.state.rt.launch_with(&name, arguments).await {
        Ok(run) => see_other(&ctx, &format!("runs/{}", run.id())),
        Err(e) => error_page(&ctx, &Failure::from(e)),
    }
}

/// Enables a pipeline.
pub(crate) async fn enable(ctx: Ctx, path: Path<String>, headers: HeaderMap, form: Form<ActionForm>) -> Response {
    set_enabled(ctx, path, headers, form, true).await
}

/// Disables a pipeline.
pub(crate) async fn disable(ctx: Ctx, path: Path<String>, headers: HeaderMap, form: Form<ActionForm>) -> Response {
    set_enabled(ctx, path, headers, form, false).await
}

/// Enables or disables, then returns to the page the form was on.
async fn set_enabled(ctx: Ctx, Path(name): Path<String>, headers: HeaderMap, Form(form): Form<ActionForm>, enabled: bool) -> Response {
    if let Err(refused) = allowed(&ctx, &headers, &form) {
        return error_page(&ctx, &refused);
    }
    match ctx.state.rt.set_enabled(&name, enabled).await {
        Ok(()) if form.back.as_deref() == Some("detail") => see_other(&ctx, &format!("pipelines/{}", enc(&name))),
        Ok(()) => see_other(&ctx, "pipelines"),
        Err(e) => error_page(&ctx, &Failure::from(e)),
    }
}

/// Cancel Run: cancels and shows the run.
pub(crate) async fn cancel(ctx: Ctx, Path(id): Path<i64>, headers: HeaderMap, Form(form): Form<ActionForm>) -> Response {
    if let Err(refused) = allowed(&ctx, &headers, &form) {
        return error_page(&ctx, &refused);
    }
    match ctx.state.rt.cancel(id).await {
        Ok(()) => see_other(&ctx, &format!("runs/{id}")),
        Err(e) => error_page(&ctx, &Failure::from(e)),
    }
}

/// Retry: retries a failed or canceled run from where it stopped and shows the new run.
pub(crate) async fn retry(ctx: Ctx, Path(id): Path<i64>, headers: HeaderMap, Form(form): Form<ActionForm>) -> Response {
    if let Err(refused) = allowed(&ctx, &headers, &form) {
        return error_page(&ctx, &refused);
    }
    match ctx.state.rt.retry(id).await {
        Ok(run) => see_other(&ctx, &format!("runs/{}", run.id())),
        Err(e) => error_page(&ctx, &Failure::from(e)),
    }
}

/// Pauses a queue and returns to the queues page.
pub(crate) async fn pause_queue(ctx: Ctx, path: Path<String>, headers: HeaderMap, form: Form<ActionForm>) -> Response {
    set_paused(ctx, path, headers, form, true).await
}

/// Resumes a queue and returns to the queues page.
pub(crate) async fn resume_queue(ctx: Ctx, path: Path<String>, headers: HeaderMap, form: Form<ActionForm>) -> Response {
    set_paused(ctx, path, headers, form, false).await
}

async fn set_paused(ctx: Ctx, Path(name): Path<String>, headers: HeaderMap, Form(form): Form<ActionForm>, paused: bool) -> Response {
    if let Err(refused) = allowed(&ctx, &headers, &form) {
        return error_page(&ctx, &refused);
    }
    let done = if paused { ctx.state.rt.pause_queue(&name).await } else { ctx.state.rt.resume_queue(&name).await };
    match done {
        Ok(()) => see_other(&ctx, "queues"),
        Err(e) => error_page(&ctx, &Failure::from(e)),
    }
}
