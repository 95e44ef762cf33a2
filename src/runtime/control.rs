//! The run-control methods of `CogRuntime`: launching through the overlap policy inside the
//! host's transaction (`launch_in`), retrying a run (`retry`), pruning history (`prune`),
//! pausing and resuming queues. What they share with the scheduler (the types, the prune
//! passes) lives in [`crate::control`].

use sea_orm::{DatabaseTransaction, TransactionTrait};
use serde_json::Value;

use super::{CogRuntime, Inner, RunHandle};
use crate::control::prune::{PruneReport, prune_before};
use crate::control::queues::QueueState;
use crate::engine::Effects;
use crate::engine::claim::Chain;
use crate::engine::fill;
use crate::engine::launch::{self, LaunchRequest};
use crate::entity::status::{RunStatus, Trigger};
use crate::error::Error;
use crate::store::{self, notify, now, queues, retries};

/// Launches by `request` (this process's worker, if started and idle, claiming the first task
/// runs in the launch's transaction) and acts on it after commit: the cogs of runs canceled to make room
/// (`Overlap::CancelRunning`) that run in this process are told, workers and waiters woken;
/// then, while workers run the first chunk of a big stage, the rest of its task runs is
/// queued (`engine::fill`) before this returns. Returns the new run's id.
pub(crate) async fn launch_and_apply(inner: &Inner, request: LaunchRequest<'_>) -> Result<i64, Error> {
    // A started, idle worker takes the run's first task runs in the launch's own transaction
    // (`worker::Chained::Launch`).
    // What it takes starts right at the commit.
    let room = crate::worker::ChainRoom::new(&inner.worker, crate::worker::Chained::Launch);
    let mut chain = Chain::new(inner.worker.claimant(), &room);
    let launched = launch::launch(&inner.work, request, Some(&mut chain)).await?;
    for (canceled_run, _) in &launched.canceled {
        inner.worker.cancel_running(*canceled_run);
    }
    let effects = launched.all_effects();
    inner.signals.apply(Effects { filling: false, ..effects });
    if effects.filling {
        let applied = |effects| inner.signals.apply(effects);
        // The run exists and runs whatever happens here: a failure is logged, and the fill
        // loop of a worker (this process's or another's) takes the rest over.
        if let Err(e) = fill::fill_unheld(&inner.work, Some(launched.run_id), inner.fill_policy(), &applied).await {
            tracing::error!(pipeline.run = launched.run_id, error = %e, "could not queue the rest of a big stage's task runs; a worker's fill loop takes it over once the lease expires");
        }
        // Stages started by runs this launch ended (a buffered run started) are the fill loop's.
        inner.signals.fill.notify_one();
    }
    Ok(launched.run_id)
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
        let request = self.inner.manual_launch(name, &arguments)?;
        // A savepoint: a refused launch leaves the host's transaction as it was.
        let savepoint = txn.begin().await?;
        let launched = match launch::launch_in(&savepoint, &request, crate::store::transitions::Starting::LAUNCH).await {
            Ok(launched) => launched,
            Err(e) => return Err(abandon(savepoint, e).await),
        };
        // Nothing of cog runs after the host commits: every task run is queued in its
        // transaction, however big the stage.
        if let Err(e) = fill::fill_in(&savepoint, launched.run_id, self.inner.config.lease_duration).await {
            return Err(abandon(savepoint, e.into()).await);
        }
        if let Err(e) = launch::learn_canceled(&savepoint, &launched, request.learn_weights).await {
            return Err(abandon(savepoint, e.into()).await);
        }
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
            learn_weights: self.inner.learn_weights(),
        };
        let new_run = launch_and_apply(&self.inner, request).await?;
        tracing::info!(pipeline.run = new_run, retry_of = run_id, "pipeline run retried");
        Ok(self.handle(new_run))
    }
}

/// Rolls back `savepoint` (a launch in a host's transaction that failed with `error`) and
/// returns `error`: a rollback that fails too is logged, not returned in its place (the host
/// learns why the launch failed, and that its transaction is to be rolled back).
async fn abandon(savepoint: DatabaseTransaction, error: Error) -> Error {
    if let Err(e) = savepoint.rollback().await {
        tracing::error!(error = %e, launch_error = %error, "could not roll back a failed launch's savepoint in the host's transaction; roll the transaction back");
    }
    error
}

impl CogRuntime {
    /// Deletes the pipeline runs that ended (`completed_at` written) more than `older_than`
    /// ago, with their stage runs, task runs and `cog_error` rows, in transactions of at most
    /// 1,000 rows each (children first), so it never holds long locks. A run that has not
    /// ended is never touched. Weights already learned stay on `cog_task`; later weights
    /// average the history that remains.
    ///
    /// ```no_run
    /// # async fn f(rt: cog::CogRuntime) -> Result<(), cog::Error> {
    /// let report = rt.prune(chrono::Duration::days(30)).await?;
    /// println!("deleted {} runs ({} task runs)", report.pipeline_runs, report.task_runs);
    /// # Ok(()) }
    /// ```
    ///
    /// `Error::InvalidSetting` if `older_than` is negative.
    pub async fn prune(&self, older_than: chrono::Duration) -> Result<PruneReport, Error> {
        if older_than < chrono::Duration::zero() {
            return Err(Error::InvalidSetting(format!("prune: older_than must not be negative, got {older_than}")));
        }
        let (report, _) = prune_before(&self.inner.db, now() - older_than, usize::MAX).await?;
        tracing::info!(?report, "history pruned");
        Ok(report)
    }
}

impl CogRuntime {
    /// Pauses queue `name`: no process claims its task runs until [`resume_queue`](Self::resume_queue);
    /// running task runs finish, queued ones wait. When this returns, every claim that could
    /// still take a task run of the queue has committed: nothing of it starts afterwards.
    /// Pausing a paused queue does nothing more. `Error::UnknownQueue` if no task ever named it.
    pub async fn pause_queue(&self, name: &str) -> Result<(), Error> {
        self.set_queue_paused(name, true).await?;
        tracing::info!(queue = name, "queue paused");
        Ok(())
    }

    /// Resumes queue `name`: its queued task runs are claimed again, and idle workers of every
    /// process are woken (this process at once, others by notification on PostgreSQL, by
    /// their change watcher on MySQL). `Error::UnknownQueue` if no task ever named it.
    pub async fn resume_queue(&self, name: &str) -> Result<(), Error> {
        self.set_queue_paused(name, false).await?;
        self.inner.signals.wake.notify_waiters();
        tracing::info!(queue = name, "queue resumed");
        Ok(())
    }

    /// Every known queue with its queued task runs and whether it is paused, by name.
    /// (`queue_depths()` gives the same depths without the paused flag.)
    pub async fn queues(&self) -> Result<Vec<QueueState>, Error> {
        let rows = queues::queues(&self.inner.db).await?;
        Ok(rows.into_iter().map(|r| QueueState { name: r.name, queued: r.queued, paused: r.paused }).collect())
    }

    async fn set_queue_paused(&self, name: &str, paused: bool) -> Result<(), Error> {
        let txn = store::begin(&self.inner.db).await?;
        if !queues::set_paused(&txn, name, paused).await? {
            return Err(Error::UnknownQueue { name: name.to_owned() });
        }
        if !paused {
            notify(&txn, "work").await?;
        }
        txn.commit().await?;
        Ok(())
    }
}
