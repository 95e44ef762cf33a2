//! Running one claimed task run: arguments, timeout, panics, recording the outcome, and the
//! task's error handler.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use super::Worker;
use super::dispatch::Permits;
use super::untrack::UntrackOnDrop;
use crate::context::TaskContext;
use crate::engine::claim::Claimed;
use crate::engine::finish::{Finished, Outcome};
use crate::error::{TaskError, TaskErrorKind, TaskRunInfo};
use crate::registry::{self, CogArgs, CogFailure};
use crate::signals::panic_message;
use crate::worker::completions::Completion;

/// Runs `task` to its end, calls its error handler on a failure, and records the outcome.
///
/// The handler runs before the outcome is recorded, while the task run still holds its lease
/// (this process keeps renewing it): once the failure is visible — to `wait()`, say — its
/// handler has run and a handler failure is recorded with it, in the same transaction.
///
/// The task run is tracked already (see `dispatch`), with `cancel` its cog's cancellation.
/// `permits` are its slot and its room among the claimed task runs. After a success both are
/// given back once the outcome is handed to the completion writer, before it is written (a
/// failure keeps them until written: it may end the run): the write is batched with others
/// and its commit takes a round trip, and holding a slot through it would leave the worker's
/// capacity idle. The task run stays tracked (its lease renewed) until the outcome is
/// written; the completion channel is bounded, so when writes fall behind, finished cogs keep
/// their slots and no new ones start.
#[tracing::instrument(name = "cog.task", skip_all, fields(pipeline = %task.pipeline_name, pipeline.run = task.pipeline_run_id, stage = %task.stage_name, stage.run = task.stage_run_id, task = %task.task_name, task.run = task.task_run_id, cog = %task.cog, attempt = task.attempt))]
pub(super) async fn execute(worker: &Arc<Worker>, task: Arc<Claimed>, cancel: CancellationToken, permits: Permits) {
    // Should this end early (a panic of cog's own code around the cog, or its task dropped),
    // the task run is untracked: tracked, its lease would be renewed, and it would stay
    // `running`, for as long as the process lives.
    let mut executing = UntrackOnDrop::new(worker, [(task.task_run_id, task.attempt)].into(), "running a task run", "its outcome was recorded");
    // Its duration (and so its learned weight) counts from here, not from the claim.
    let started_at = crate::store::now();
    tracing::trace!(target: "cog::handoff", step = "cog_called");
    let outcome = run_cog(worker, &task, cancel).await;
    tracing::trace!(target: "cog::handoff", step = "cog_returned");
    if !worker.is_tracked(task.task_run_id, task.attempt) {
        // Given back at shutdown (past its deadline): the attempt is over; its cog was stopped,
        // not failed, so neither its handler nor an outcome is due.
        tracing::debug!("task run was given back at shutdown; its attempt's end is not recorded");
        executing.done();
        return;
    }
    let handler_error = match &outcome {
        Outcome::Failure(error) => {
            // Whether another attempt follows, as far as the task knows (a run that failed or
            // was canceled meanwhile queues none).
            let will_retry = error.kind.retryable() && task.attempt <= task.max_retries;
            run_error_handler(worker, &task, error, will_retry).await
        }
        Outcome::Success(_) => None,
    };
    // The outcome moves to the writer; a failure's error is kept for the log line after it.
    let failure = match &outcome {
        Outcome::Failure(error) => Some(error.clone()),
        Outcome::Success(_) => None,
    };
    let finished = record(worker, &task, started_at, outcome, handler_error, permits).await;
    worker.untrack(task.task_run_id, task.attempt);
    executing.done();
    match (&failure, finished) {
        (_, None) => tracing::warn!(
            "the outcome was not recorded (see the completion writer's error); the lease runs out and a worker's lease sweep retries or fails the task run"
        ),
        (Some(error), Some(Finished::Failed)) => tracing::error!(error = %error, "task run failed"),
        (Some(error), Some(Finished::Retrying)) => tracing::warn!(error = %error, "task attempt failed; retrying"),
        (_, Some(Finished::Stale)) => tracing::warn!("result refused: this attempt no longer owns the task run (lease taken over)"),
        _ => tracing::debug!("task run completed"),
    }
}

/// Calls the cog and turns whatever happens into an [`Outcome`].
async fn run_cog(worker: &Arc<Worker>, task: &Claimed, cancel: CancellationToken) -> Outcome {
    let Some(def) = registry::cog(&task.cog) else {
        return failure(
            TaskErrorKind::CogMissing,
            "cog_missing",
            format!(
                "task `{}` calls cog `{}`, which is not compiled into this binary (cog_cog.present = false); deploy a binary that has it",
                task.task_name, task.cog
            ),
        );
    };
    let args = match merge_arguments(task, def.params) {
        Ok(args) => args,
        Err(message) => return failure(TaskErrorKind::Arguments, "arguments", message),
    };
    let ctx = TaskContext {
        pipeline_run_id: task.pipeline_run_id,
        stage_run_id: task.stage_run_id,
        task_run_id: task.task_run_id,
        attempt: task.attempt,
        cancel: cancel.clone(),
    };
    let mut handle = tokio::spawn((def.invoke)(CogArgs::new(args), ctx));
    worker.set_abort(task.task_run_id, task.attempt, handle.abort_handle());
    let joined = match task.timeout_ms {
        Some(ms) => match tokio::time::timeout(Duration::from_millis(ms.max(0) as u64), &mut handle).await {
            Ok(joined) => joined,
            Err(_) => {
                handle.abort();
                return failure(TaskErrorKind::TimedOut, "timeout", format!("task `{}` ran longer than its timeout of {ms} ms", task.task_name));
            }
        },
        None => handle.await,
    };
    match joined {
        Ok(Ok(value)) => Outcome::Success(value),
        Ok(Err(CogFailure::Arguments(message))) => failure(TaskErrorKind::Arguments, "arguments", message),
        Ok(Err(CogFailure::Serialize(message))) => {
            failure(TaskErrorKind::Result, "result", format!("cog `{}` returned a value that is not JSON: {message}", task.cog))
        }
        Ok(Err(CogFailure::Returned { error_type, message })) => {
            Outcome::Failure(TaskError { kind: TaskErrorKind::Returned, error_type, message, backtrace: None })
        }
        Err(e) if e.is_panic() => {
            let payload = panic_message(e.into_panic().as_ref());
            Outcome::Failure(TaskError {
                kind: TaskErrorKind::Panicked,
                error_type: "panic".into(),
                message: format!("cog `{}` panicked: {payload}", task.cog),
                backtrace: Some(payload),
            })
        }
        Err(_) => failure(TaskErrorKind::Panicked, "aborted", format!("cog `{}` was aborted", task.cog)),
    }
}

/// The task's own arguments, overridden by launch arguments named like a cog parameter.
fn merge_arguments(task: &Claimed, params: &[&str]) -> Result<Map<String, Value>, String> {
    let mut args = match serde_json::from_str::<Value>(&task.arguments) {
        Ok(Value::Object(map)) => map,
        _ => return Err(format!("task `{}`: stored arguments are not a JSON object", task.task_name)),
    };
    let launch = match serde_json::from_str::<Value>(&task.launch_arguments) {
        Ok(Value::Object(launch)) => launch,
        Ok(other) => return Err(format!("task `{}`: the run's launch arguments are not a JSON object but {other}", task.task_name)),
        Err(e) => return Err(format!("task `{}`: the run's stored launch arguments are not JSON ({e})", task.task_name)),
    };
    for (key, value) in launch {
        if params.contains(&key.as_str()) {
            args.insert(key, value);
        }
    }
    Ok(args)
}

/// Hands the outcome of the attempt started at `started_at` to the completion loop, gives a
/// success's permits back, and waits until the outcome is written.
async fn record(
    worker: &Arc<Worker>,
    task: &Arc<Claimed>,
    started_at: DateTime<Utc>,
    outcome: Outcome,
    handler_error: Option<TaskError>,
    permits: Permits,
) -> Option<Finished> {
    let (reply, written) = tokio::sync::oneshot::channel();
    let success = matches!(outcome, Outcome::Success(_));
    let completion = Completion { task: Arc::clone(task), started_at, outcome, handler_error, reply };
    // Counted as handed before the writer can see it: the writer holds a run's outcomes while
    // others of their stage runs are still to come here (see `completions`).
    worker.handed(task.task_run_id, task.attempt);
    if worker.completions.send(completion).await.is_err() {
        tracing::error!("the completion loop has stopped; the lease will expire and the task run be retried or failed");
        return None;
    }
    // A success frees its slot now. A failure keeps it until it is written: it may fail the
    // run and cancel its queued task runs, which must not start in the slot meanwhile.
    let _kept = (!success).then_some(permits);
    written.await.ok().flatten()
}

/// Calls the task's own error handler, if it has one. A handler that fails, panics or times
/// out never takes the worker down; what went wrong is returned, to be recorded in `cog_error`
/// with the failure.
async fn run_error_handler(worker: &Arc<Worker>, task: &Claimed, error: &TaskError, will_retry: bool) -> Option<TaskError> {
    let Some(name) = &task.error_handler else { return None };
    let problem = match registry::error_handler(name) {
        None => Some(("error_handler_missing", format!("error handler `{name}` is not compiled into this binary"))),
        Some(def) => {
            let info = TaskRunInfo {
                task_run_id: task.task_run_id,
                task_id: task.task_id,
                task_name: task.task_name.clone(),
                cog: task.cog.clone(),
                stage_run_id: task.stage_run_id,
                pipeline_run_id: task.pipeline_run_id,
                pipeline: task.pipeline_name.clone(),
                stage: task.stage_name.clone(),
                attempt: task.attempt,
                will_retry,
                critical: task.critical,
            };
            let mut handle = tokio::spawn((def.invoke)(Arc::new(error.clone()), Arc::new(info)));
            match tokio::time::timeout(worker.config.error_handler_timeout, &mut handle).await {
                Ok(Ok(Ok(()))) => None,
                Ok(Ok(Err(message))) => Some(("error_handler_failed", format!("error handler `{name}` failed: {message}"))),
                Ok(Err(e)) if e.is_panic() => {
                    Some(("error_handler_panic", format!("error handler `{name}` panicked: {}", panic_message(e.into_panic().as_ref()))))
                }
                Ok(Err(_)) => Some(("error_handler_panic", format!("error handler `{name}` was aborted"))),
                Err(_) => {
                    handle.abort();
                    Some((
                        "error_handler_timeout",
                        format!("error handler `{name}` ran longer than {:?} and was abandoned", worker.config.error_handler_timeout),
                    ))
                }
            }
        }
    };
    let (error_type, message) = problem?;
    tracing::error!(handler = name.as_str(), "{message}");
    Some(TaskError { kind: error.kind, error_type: error_type.to_owned(), message, backtrace: None })
}

/// A failure outcome.
fn failure(kind: TaskErrorKind, error_type: &str, message: String) -> Outcome {
    Outcome::Failure(TaskError { kind, error_type: error_type.to_owned(), message, backtrace: None })
}
