//! The JSON API beside the pages (a contract for scripts): `GET api/pipelines`,
//! `GET api/runs?pipeline=&status=&before=&limit=`, `GET api/runs/{id}` (top-level `status`,
//! with stages, task runs and errors), `POST api/pipelines/{name}/launch` (body: the launch
//! arguments object; 201 `{"id": ..}`, 409 on a refused launch), `POST api/runs/{id}/cancel`,
//! `GET api/queues`; also `api/pipelines/{name}`, `api/errors`, `api/cogs`, `api/workers`,
//! `api/health`.
//!
//! POSTs require `Content-Type: application/json` (which a cross-site form cannot send) and
//! are refused with 403 in read-only mode. Every error is JSON: `{"error": "...", "status": n}`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cog::history::{ErrorRow, RunDetail, RunSummary, StageRunRow, TaskRunRow};
use serde::Serialize;

use crate::Shared;
use crate::failure::{ApiFailure, Failure};
use crate::pages::errors::ErrorsQuery;
use crate::pages::runs::RunsQuery;

/// A handler's JSON answer.
type ApiResult<T> = Result<Json<T>, ApiFailure>;

/// `GET api/health`: the background loops of the runtime serving the admin (empty when it
/// does not run workers), with `healthy`.
pub(crate) async fn health(State(s): State<Shared>) -> Json<serde_json::Value> {
    let health = s.rt.health();
    Json(serde_json::json!({ "healthy": health.is_healthy(), "loops": health.loops }))
}

/// `GET api/pipelines`.
pub(crate) async fn pipelines(State(s): State<Shared>) -> ApiResult<Vec<cog::history::PipelineSummary>> {
    Ok(Json(s.rt.pipelines().await?))
}

/// `GET api/pipelines/{name}`.
pub(crate) async fn pipeline(State(s): State<Shared>, Path(name): Path<String>) -> ApiResult<cog::history::PipelineDetail> {
    Ok(Json(s.rt.pipeline_detail(&name).await?))
}

/// `GET api/runs`.
pub(crate) async fn runs(State(s): State<Shared>, Query(q): Query<RunsQuery>) -> ApiResult<Vec<RunSummary>> {
    Ok(Json(s.rt.runs(&q.filter()?).await?))
}

/// A run in detail with its fields at the top level (`status` among them).
#[derive(Serialize)]
struct RunBody {
    #[serde(flatten)]
    run: RunSummary,
    stages: Vec<StageRunRow>,
    task_runs: Vec<TaskRunRow>,
    errors: Vec<ErrorRow>,
}

impl From<RunDetail> for RunBody {
    fn from(d: RunDetail) -> Self {
        Self { run: d.run, stages: d.stages, task_runs: d.task_runs, errors: d.errors }
    }
}

/// `GET api/runs/{id}`.
pub(crate) async fn run(State(s): State<Shared>, Path(id): Path<String>) -> Result<Response, ApiFailure> {
    let id = run_id(&id)?;
    let body = RunBody::from(s.rt.run_detail(id).await?);
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response())
}

/// `GET api/errors`.
pub(crate) async fn errors(State(s): State<Shared>, Query(q): Query<ErrorsQuery>) -> ApiResult<Vec<ErrorRow>> {
    Ok(Json(s.rt.errors(&q.filter()?).await?))
}

/// `GET api/cogs`: cogs and error handlers. Each cog has `parameter_details` (and, under its
/// earlier name, `signature`): its parameters (`name`, `type_name`, `optional`) as the workers
/// that carry it recorded them, or `null` while none has.
pub(crate) async fn cogs(State(s): State<Shared>) -> Result<Json<serde_json::Value>, ApiFailure> {
    let cogs = s.rt.cogs_overview().await?;
    let handlers = s.rt.error_handlers_overview().await?;
    let cogs: Vec<CogBody> = cogs.into_iter().map(|c| CogBody { signature: c.parameter_details.clone(), cog: c }).collect();
    Ok(Json(serde_json::json!({ "cogs": cogs, "error_handlers": handlers })))
}

/// A cog in `api/cogs`.
#[derive(Serialize)]
struct CogBody {
    #[serde(flatten)]
    cog: cog::history::CogHealth,
    signature: Option<Vec<cog::history::ParameterInfo>>,
}

/// `GET api/queues`.
pub(crate) async fn queues(State(s): State<Shared>) -> ApiResult<Vec<cog::history::QueueHealth>> {
    Ok(Json(s.rt.queues_overview().await?))
}

/// `GET api/workers`.
pub(crate) async fn workers(State(s): State<Shared>) -> ApiResult<Vec<cog::history::WorkerInfo>> {
    Ok(Json(s.rt.workers().await?))
}

/// The checks of every JSON POST: writable admin, JSON content type.
fn json_post(s: &Shared, headers: &HeaderMap) -> Result<(), Failure> {
    if s.read_only {
        return Err(Failure::read_only());
    }
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/json") {
        return Err(Failure::unsupported(format!(
            "this endpoint takes Content-Type: application/json (got `{}`)",
            if content_type.is_empty() { "none" } else { content_type }
        )));
    }
    Ok(())
}

/// A run id from the path.
fn run_id(text: &str) -> Result<i64, Failure> {
    text.parse().map_err(|_| Failure::bad_request(format!("`{text}` is not a run id (an integer)")))
}

/// `POST api/pipelines/{name}/launch` with the launch arguments object as body (empty = `{}`).
pub(crate) async fn launch(State(s): State<Shared>, Path(name): Path<String>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiFailure> {
    json_post(&s, &headers)?;
    let text = std::str::from_utf8(&body).map_err(|_| Failure::bad_request("the body is not UTF-8 text"))?;
    let arguments = crate::pages::actions::parse_arguments(&name, text)?;
    let run = s.rt.launch_with(&name, arguments).await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "id": run.id() }))).into_response())
}

/// `POST api/runs/{id}/cancel`: answers with the run's status after the cancel.
pub(crate) async fn cancel(State(s): State<Shared>, Path(id): Path<String>, headers: HeaderMap) -> Result<Json<serde_json::Value>, ApiFailure> {
    json_post(&s, &headers)?;
    let id = run_id(&id)?;
    s.rt.cancel(id).await?;
    let status = s.rt.run_detail(id).await?.run.status;
    Ok(Json(serde_json::json!({ "id": id, "status": status })))
}

/// `POST api/runs/{id}/retry`: retries a failed or canceled run; answers 201 with the new run's id.
pub(crate) async fn retry(State(s): State<Shared>, Path(id): Path<String>, headers: HeaderMap) -> Result<Response, ApiFailure> {
    json_post(&s, &headers)?;
    let run = s.rt.retry(run_id(&id)?).await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "id": run.id() }))).into_response())
}

/// `POST api/queues/{name}/pause`: answers with the queue's name and paused flag.
pub(crate) async fn pause_queue(State(s): State<Shared>, Path(name): Path<String>, headers: HeaderMap) -> Result<Json<serde_json::Value>, ApiFailure> {
    json_post(&s, &headers)?;
    s.rt.pause_queue(&name).await?;
    Ok(Json(serde_json::json!({ "name": name, "paused": true })))
}

/// `POST api/queues/{name}/resume`: answers with the queue's name and paused flag.
pub(crate) async fn resume_queue(State(s): State<Shared>, Path(name): Path<String>, headers: HeaderMap) -> Result<Json<serde_json::Value>, ApiFailure> {
    json_post(&s, &headers)?;
    s.rt.resume_queue(&name).await?;
    Ok(Json(serde_json::json!({ "name": name, "paused": false })))
}

/// Any other `api/` path.
pub(crate) async fn not_found() -> ApiFailure {
    ApiFailure(Failure::not_found("no such API endpoint: see the cog-admin docs for api/pipelines, api/runs, api/queues, ..."))
}
