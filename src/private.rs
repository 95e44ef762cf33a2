//! Items the `#[cog]` and `#[cog_error_handler]` expansions name; not a public API.

use std::fmt::Display;

pub use futures::future::BoxFuture;
pub use linkme;
pub use serde_json;

pub use crate::registry::{COGS, CogArgs, CogDef, CogFailure, CogOutcome, ERROR_HANDLERS, ErrorHandlerDef, Parameter};

/// The checker of a parameter of type `T`: whether a JSON value deserializes into it.
pub fn check_argument<T: serde::de::DeserializeOwned>(value: &serde_json::Value) -> Result<(), String> {
    T::deserialize(value).map(drop).map_err(|e| e.to_string())
}

/// Turns a cog's plain return value into its stored result.
pub fn from_value<T: serde::Serialize>(value: T) -> CogOutcome {
    serde_json::to_value(value).map_err(|e| CogFailure::Serialize(e.to_string()))
}

/// Turns a cog's `Result` into its stored result or failure.
pub fn from_result<T: serde::Serialize, E: Display>(result: Result<T, E>) -> CogOutcome {
    match result {
        Ok(value) => from_value(value),
        Err(e) => Err(CogFailure::Returned { error_type: std::any::type_name::<E>().to_owned(), message: e.to_string() }),
    }
}

/// Turns an error handler's return value (`()` or `Result<(), E>`) into success or a message.
pub fn handler_from_unit(_: ()) -> Result<(), String> {
    Ok(())
}

/// Turns an error handler's `Result` into success or a message.
pub fn handler_from_result<T, E: Display>(result: Result<T, E>) -> Result<(), String> {
    result.map(|_| ()).map_err(|e| e.to_string())
}

/// Runs a plain (non-async) function on tokio's blocking pool.
pub async fn run_blocking<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

pub use crate::error::{TaskError, TaskRunInfo};

/// A `TaskRunInfo` with fixed, recognizable values, for tests outside the crate (it is `#[non_exhaustive]`).
pub fn sample_task_run_info() -> TaskRunInfo {
    TaskRunInfo {
        task_run_id: 7,
        task_id: 3,
        task_name: "sample_task".to_owned(),
        cog: "sample_cog".to_owned(),
        stage_run_id: 5,
        pipeline_run_id: 2,
        pipeline: "sample_pipeline".to_owned(),
        stage: "sample_stage".to_owned(),
        attempt: 1,
        will_retry: false,
        critical: true,
    }
}

/// How many claims in this process returned more task runs than asked for (tests of the
/// claim statement assert it stays 0).
pub fn overclaims() -> u64 {
    crate::engine::claim::OVERCLAIMS.load(std::sync::atomic::Ordering::Relaxed)
}
