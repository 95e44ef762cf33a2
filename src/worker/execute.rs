//! Running one claimed task run: arguments, timeout, panics, recording the outcome, and the
//! task's error handler.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::context::TaskContext;
use crate::engine::claim::Claimed;
use crate::engine::finish::{self, Finished, Outcome};
use crate::error::{TaskError, TaskErrorKind, TaskRunInfo};
use crate::registry::{self, CogArgs, CogFailure};
use crate::runtime::{Inner, RunningTask};
use crate::store::now;
use crate::worker::completions::Completion;

/// Runs `task` to its end and records the outcome.
#[tracing::instrument(name = "cog.task", skip_all, fields(pipeline = %task.pipeline_name, pipeline.run = task.pipeline_run_id, stage = %task.stage_name, stage.run = task.stage_run_id, task = %task.task_name, task.run = task.task_run_id, cog = %task.cog, attempt = task.attempt))]
pub(super) async fn execute(inner: &Arc<Inner>, task: Claimed) {
    let outcome = run_cog(inner, &task).await;
    inner.running.lock().unwrap_or_else(|e| e.into_inner()).remove(&task.task_run_id);
    let Some(finished) = record(inner, &task, &outcome).await else { return };
    match (&outcome, finished) {
        (Outcome::Failure(error), Finished::Failed | Finished::Retrying) => {
            let level_error = finished == Finished::Failed;
            if level_error {
                tracing::error!(error = %error, "task run failed");
            } else {
                tracing::warn!(error = %error, "task attempt failed; retrying");
            }
            run_error_handler(inner, &task, error, finished == Finished::Retrying).await;
        }
        (_, Finished::Stale) => tracing::warn!("result refused: this attempt no longer owns the task run (lease taken over)"),
        _ => tracing::debug!("task run completed"),
    }
}

/// Calls the cog and turns whatever happens into an [`Outcome`].
async fn run_cog(inner: &Arc<Inner>, task: &Claimed) -> Outcome {
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
    let cancel = CancellationToken::new();
    let ctx = TaskContext {
        pipeline_run_id: task.pipeline_run_id,
        stage_run_id: task.stage_run_id,
        task_run_id: task.task_run_id,
        attempt: task.attempt,
        cancel: cancel.clone(),
    };
    let mut handle = tokio::spawn((def.invoke)(CogArgs::new(args), ctx));
    {
        let mut running = inner.running.lock().unwrap_or_else(|e| e.into_inner());
        // A cancel that reached this process between the claim and now.
        if inner.canceled_runs.lock().unwrap_or_else(|e| e.into_inner()).contains(&task.pipeline_run_id) {
            cancel.cancel();
        }
        running.insert(task.task_run_id, RunningTask { claimed: task.clone(), cancel, abort: Some(handle.abort_handle()) });
    }
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
    if let Ok(Value::Object(launch)) = serde_json::from_str::<Value>(&task.launch_arguments) {
        for (key, value) in launch {
            if params.contains(&key.as_str()) {
                args.insert(key, value);
            }
        }
    }
    Ok(args)
}

/// Hands the outcome to the completion loop and waits until it is written.
async fn record(inner: &Arc<Inner>, task: &Claimed, outcome: &Outcome) -> Option<Finished> {
    let (reply, written) = tokio::sync::oneshot::channel();
    let completion = Completion { task: task.clone(), outcome: outcome.clone(), reply };
    if inner.completions.send(completion).is_err() {
        tracing::error!("the completion loop has stopped; the lease will expire and the task run be retried or failed");
        return None;
    }
    written.await.ok().flatten()
}

/// Calls the task's own error handler, if it has one; a handler that fails or panics is
/// recorded in `cog_error` and never takes the worker down.
async fn run_error_handler(inner: &Arc<Inner>, task: &Claimed, error: &TaskError, will_retry: bool) {
    let Some(name) = &task.error_handler else { return };
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
            match tokio::time::timeout(inner.config.error_handler_timeout, &mut handle).await {
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
                        format!("error handler `{name}` ran longer than {:?} and was abandoned", inner.config.error_handler_timeout),
                    ))
                }
            }
        }
    };
    if let Some((error_type, message)) = problem {
        tracing::error!(handler = name.as_str(), "{message}");
        let recorded = TaskError { kind: error.kind, error_type: error_type.to_owned(), message, backtrace: None };
        if let Err(e) = finish::record_error(&inner.db, task.task_run_id, task.attempt, &recorded, now()).await {
            tracing::error!(error = %e, "could not record the error handler's failure");
        }
    }
}

/// A failure outcome.
fn failure(kind: TaskErrorKind, error_type: &str, message: String) -> Outcome {
    Outcome::Failure(TaskError { kind, error_type: error_type.to_owned(), message, backtrace: None })
}

/// The text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned())
}
