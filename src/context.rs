//! What a running cog can learn about its task run, and how it hears of a cancel.

use tokio_util::sync::CancellationToken;

/// Handed to a cog that declares a parameter of this type (`ctx: cog::TaskContext`).
///
/// ```
/// # use cog::cog;
/// #[cog]
/// async fn slow(ctx: cog::TaskContext) -> Result<(), std::io::Error> {
///     tokio::select! {
///         _ = ctx.cancelled() => Ok(()),                                  // the run was canceled
///         _ = tokio::time::sleep(std::time::Duration::from_secs(60)) => Ok(()),
///     }
/// }
/// ```
#[derive(Debug, Clone)]
pub struct TaskContext {
    pub(crate) pipeline_run_id: i64,
    pub(crate) stage_run_id: i64,
    pub(crate) task_run_id: i64,
    pub(crate) attempt: i32,
    pub(crate) cancel: CancellationToken,
}

impl TaskContext {
    /// The `cog_pipeline_run.id` this task run belongs to.
    pub fn pipeline_run_id(&self) -> i64 {
        self.pipeline_run_id
    }

    /// The `cog_stage_run.id` this task run belongs to.
    pub fn stage_run_id(&self) -> i64 {
        self.stage_run_id
    }

    /// The `cog_task_run.id` being executed.
    pub fn task_run_id(&self) -> i64 {
        self.task_run_id
    }

    /// Which attempt this is, starting at 1.
    pub fn attempt(&self) -> i32 {
        self.attempt
    }

    /// True once the pipeline run was canceled (or the runtime is shutting down past its deadline).
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Completes when the pipeline run is canceled.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await
    }

    /// The token itself, to hand to libraries that take a `CancellationToken`.
    pub fn cancellation_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// A context for calling a cog function outside a runtime (in unit tests, say).
    pub fn detached() -> Self {
        Self { pipeline_run_id: 0, stage_run_id: 0, task_run_id: 0, attempt: 1, cancel: CancellationToken::new() }
    }
}
