//! Launches through the overlap policy: acting on what a launch did (`launched`), a launch
//! inside the host's transaction (`rt.launch_in`), and retrying a run from where it stopped
//! (`rt.retry`).

use sea_orm::{DatabaseTransaction, TransactionTrait};
use serde_json::Value;

use crate::engine::launch::{self, LaunchRequest};
use crate::entity::status::{RunStatus, Trigger};
use crate::error::Error;
use crate::runtime::{CogRuntime, Inner, RunHandle};
use crate::store::retries;

/// Launches by `request` and acts on it after commit: the cogs of runs canceled to make room
/// (`Overlap::CancelRunning`) that run in this process are told, workers and waiters woken.
/// Returns the new run's id.
pub(crate) async fn launch_and_apply(inner: &Inner, request: LaunchRequest<'_>) -> Result<i64, Error> {
    let launched = launch::launch(&inner.db, request).await?;
    for (canceled_run, _) in &launched.canceled {
        inner.worker.cancel_running(*canceled_run);
    }
    inner.signals.apply(launched.all_effects());
    Ok(launched.run_id)
}

/// The sample size weights are learned with when a run ends, if learning is on.
fn learn_weights(inner: &Inner) -> Option<u32> {
    inner.config.auto_weight.then_some(inner.config.weight_sample_size)
}

impl CogRuntime {
    /// Launches a run of pipeline `name` inside the host's own transaction `txn` (on the
    /// runtime's database): the run exists if and only if the host commits `txn`, like any
    /// other row the host writes in it. The overlap policy applies as for `launch_with`.
    ///
    /// The runtime cannot see the commit: workers find the run's task runs by the wake-up
    /// the commit itself sends — PostgreSQL's `NOTIFY` (delivered at commit, dropped on
    /// rollback), MySQL's change counter (within about 10 ms) — or, on SQLite, at their
    /// next poll (`Config::poll_interval`, 500 ms by default). `RunHandle::wait` works as
    /// for any run once the host committed.
    ///
    /// ```no_run
    /// # async fn f(rt: cog::CogRuntime) -> Result<(), cog::Error> {
    /// use sea_orm::TransactionTrait;
    /// let txn = rt.connection().begin().await?;
    /// // ... the host's own writes ...
    /// let run = rt.launch_in(&txn, "invoice", serde_json::json!({"order": 42})).await?;
    /// txn.commit().await?;                    // now the run exists and workers take it
    /// run.wait().await?;
    /// # Ok(()) }
    /// ```
    pub async fn launch_in(&self, txn: &DatabaseTransaction, name: &str, arguments: Value) -> Result<RunHandle, Error> {
        if !arguments.is_object() {
            return Err(Error::LaunchArgumentsNotObject { pipeline: name.to_owned() });
        }
        let request = LaunchRequest {
            pipeline: name,
            arguments: &arguments,
            trigger: Trigger::Manual,
            scheduled_for: None,
            overlap_failed: self.inner.config.overlap_failed,
            retry_of: None,
            learn_weights: learn_weights(&self.inner),
        };
        // A savepoint: a refused launch leaves the host's transaction as it was.
        let savepoint = txn.begin().await?;
        let launched = match launch::launch_in(&savepoint, &request).await {
            Ok(launched) => launched,
            Err(e) => {
                savepoint.rollback().await?;
                return Err(e);
            }
        };
        savepoint.commit().await?;
        tracing::info!(pipeline = name, pipeline.run = launched.run_id, "pipeline run launched in the host's transaction");
        Ok(self.handle(launched.run_id))
    }

    /// Retries run `run_id`, which ended `failed` or `canceled`, from where it stopped: a new
    /// run (`trigger = 'retry'`, `retry_of = run_id`, the same launch arguments) in which the
    /// stages that completed in the old run are recorded `completed` at once (their task runs
    /// copied with their results, not run again) and every other stage runs as usual. The old
    /// run is not changed.
    ///
    /// The pipeline's overlap policy applies as for any launch, except that retrying the
    /// pipeline's last run when it failed is allowed without `Config::overlap_failed`.
    /// `Error::RetryOfActiveRun` while the run has not ended (cogs of a failed run still
    /// running included), `Error::RetryOfCompletedRun` for a completed one,
    /// `Error::UnknownRun` if there is no such run.
    pub async fn retry(&self, run_id: i64) -> Result<RunHandle, Error> {
        let old = retries::retried_run(&self.inner.db, run_id).await?.ok_or(Error::UnknownRun { id: run_id })?;
        match old.status {
            RunStatus::Completed => return Err(Error::RetryOfCompletedRun { run_id }),
            RunStatus::Queued | RunStatus::Running => return Err(Error::RetryOfActiveRun { run_id, status: old.status }),
            RunStatus::Failed | RunStatus::Canceled if old.completed_at.is_none() => {
                return Err(Error::RetryOfActiveRun { run_id, status: old.status });
            }
            RunStatus::Failed | RunStatus::Canceled => {}
        }
        let arguments: Value = serde_json::from_str(&old.arguments).map_err(|_| Error::Corrupt {
            table: "cog_pipeline_run",
            column: "arguments",
            value: old.arguments.clone(),
        })?;
        let request = LaunchRequest {
            pipeline: &old.pipeline,
            arguments: &arguments,
            trigger: Trigger::Retry,
            scheduled_for: None,
            overlap_failed: self.inner.config.overlap_failed,
            retry_of: Some(run_id),
            learn_weights: learn_weights(&self.inner),
        };
        let new_run = launch_and_apply(&self.inner, request).await?;
        tracing::info!(pipeline.run = new_run, retry_of = run_id, "pipeline run retried");
        Ok(self.handle(new_run))
    }
}
