//! [`CogRuntime`]: defines pipelines, launches and cancels runs, and works task runs in the
//! background.
//!
//! ```no_run
//! # async fn f() -> Result<(), cog::Error> {
//! let rt = cog::CogRuntime::builder().database_url("sqlite://cog.db?mode=rwc").build().await?;
//! rt.start();
//! let status = rt.launch("nightly").await?.wait().await?;
//! rt.shutdown().await;
//! # Ok(()) }
//! ```

mod builder;
mod run_handle;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sea_orm::DatabaseConnection;
use serde_json::Value;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use builder::CogRuntimeBuilder;
pub use run_handle::RunHandle;

use crate::config::Config;
use crate::engine::claim::Claimed;
use crate::engine::launch::LaunchRequest;
use crate::engine::{self, Effects};
use crate::entity::status::Trigger;
use crate::error::Error;
use crate::scheduler::{Clock, SchedulerPass};
use crate::spec::PipelineSpec;

/// The embedded engine. Cheap to clone: clones share one runtime.
#[derive(Clone)]
pub struct CogRuntime {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for CogRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CogRuntime").field("worker", &self.inner.worker_id).field("queues", &self.inner.queues).finish_non_exhaustive()
    }
}

/// A task run this process is executing.
pub(crate) struct RunningTask {
    pub(crate) claimed: Claimed,
    pub(crate) cancel: CancellationToken,
    pub(crate) abort: Option<tokio::task::AbortHandle>,
}

/// State shared by the runtime's clones and its background tasks.
pub(crate) struct Inner {
    pub(crate) db: DatabaseConnection,
    pub(crate) config: Config,
    pub(crate) queues: Vec<String>,
    pub(crate) concurrency: usize,
    pub(crate) worker_id: String,
    /// Woken when task runs are queued by this process.
    pub(crate) wake: Notify,
    /// Woken when a run of this process ends.
    pub(crate) run_ended: Notify,
    /// Task runs executing in this process, by task run id.
    pub(crate) running: Mutex<HashMap<i64, RunningTask>>,
    /// Runs recently canceled: a cog that registers after the cancel reached this process
    /// (claimed just before it) is told at once. Bounded; oldest forgotten first.
    pub(crate) canceled_runs: Mutex<std::collections::VecDeque<i64>>,
    /// The claim loop, joined first on shutdown so no claim slips past it.
    pub(crate) claim_loop: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Cancelled by `shutdown`: stop claiming work.
    pub(crate) stop_claiming: CancellationToken,
    /// Cancelled once running work has drained: stop renewing leases.
    pub(crate) stopped: CancellationToken,
    /// The executing task runs.
    pub(crate) tracker: TaskTracker,
    /// The background loops (`None` until `start`).
    pub(crate) loops: Mutex<Option<JoinSet<()>>>,
    /// Whether `start` runs the scheduler.
    pub(crate) scheduler: bool,
    /// The time schedules follow.
    pub(crate) clock: Arc<dyn Clock>,
    /// Woken when this process changes a schedule.
    pub(crate) schedules_changed: Notify,
    /// Task outcomes to write (see `worker::completions`).
    pub(crate) completions: tokio::sync::mpsc::UnboundedSender<crate::worker::completions::Completion>,
    /// This worker's `cog_worker` row once `start` registered it.
    pub(crate) worker_row: Mutex<Option<i64>>,
    /// The receiving end, taken by `start`.
    pub(crate) completions_rx: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<crate::worker::completions::Completion>>>,
}

impl Inner {
    /// Acts on what a transition did: wakes workers and waiters, learns weights.
    pub(crate) fn apply(self: &Arc<Self>, run_id: i64, effects: Effects) {
        if let Some(ended) = &effects.ended {
            crate::metrics::run_ended(ended);
        }
        if effects.queued_work {
            self.wake.notify_waiters();
        }
        if effects.run_ended {
            self.run_ended.notify_waiters();
            if self.config.auto_weight {
                let inner = Arc::clone(self);
                tokio::spawn(async move {
                    if let Err(e) = crate::definitions::weights::update_weights_alone(&inner.db, run_id, inner.config.weight_sample_size).await {
                        tracing::error!(pipeline.run = run_id, error = %e, "could not update task weights; the run's status is not affected");
                    }
                });
            }
        }
    }

    /// Tells the cogs of run `run_id` running in this process that it was canceled.
    pub(crate) fn cancel_running(&self, run_id: i64) {
        {
            let mut canceled = self.canceled_runs.lock().unwrap_or_else(|e| e.into_inner());
            if !canceled.contains(&run_id) {
                if canceled.len() >= 1024 {
                    canceled.pop_front();
                }
                canceled.push_back(run_id);
            }
        }
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        for task in running.values().filter(|t| t.claimed.pipeline_run_id == run_id) {
            task.cancel.cancel();
        }
    }
}

impl CogRuntime {
    /// Starts configuring a runtime.
    pub fn builder() -> CogRuntimeBuilder {
        CogRuntimeBuilder::default()
    }

    /// Starts the workers (and background lease keeping) on the runtime's queues.
    /// Calling it again does nothing. Must be called within a tokio runtime.
    pub fn start(&self) {
        let mut loops = self.inner.loops.lock().unwrap_or_else(|e| e.into_inner());
        if loops.is_some() || self.inner.stop_claiming.is_cancelled() {
            return;
        }
        let mut set = JoinSet::new();
        if let Some(rx) = self.inner.completions_rx.lock().unwrap_or_else(|e| e.into_inner()).take() {
            set.spawn(crate::worker::completions::completion_loop(Arc::clone(&self.inner), rx));
        }
        *self.inner.claim_loop.lock().unwrap_or_else(|e| e.into_inner()) = Some(tokio::spawn(crate::worker::claim_loop(Arc::clone(&self.inner))));
        set.spawn(crate::worker::leases::heartbeat_loop(Arc::clone(&self.inner)));
        set.spawn(crate::worker::presence::presence_loop(Arc::clone(&self.inner)));
        set.spawn(crate::worker::leases::reclaim_loop(Arc::clone(&self.inner)));
        set.spawn(crate::worker::listener::listen_loop(Arc::clone(&self.inner)));
        if self.inner.scheduler {
            set.spawn(crate::scheduler::scheduler_loop(Arc::clone(&self.inner)));
        }
        *loops = Some(set);
        tracing::info!(worker = %self.inner.worker_id, queues = ?self.inner.queues, concurrency = self.inner.concurrency, "cog runtime started");
    }

    /// Stops taking work, lets running cogs finish within `Config::shutdown_timeout`, then
    /// gives the task runs still running back to the queue and stops.
    pub async fn shutdown(&self) {
        crate::worker::shutdown(&self.inner).await;
    }

    /// Validates `spec` and saves it (insert or update by name, keeping run history).
    /// Returns the pipeline's id. Nothing is saved if the definition is invalid.
    pub async fn define(&self, spec: PipelineSpec) -> Result<i64, Error> {
        let id = crate::definitions::define::define(&self.inner.db, &spec, self.inner.clock.now()).await?;
        self.inner.schedules_changed.notify_waiters();
        Ok(id)
    }

    /// Runs one scheduler pass now: takes the scheduler lease if free, then launches every
    /// due tick. `start()` does this in the background; call it yourself to drive schedules
    /// from your own loop (with `builder().scheduler(false)`) or from tests with a `ManualClock`.
    pub async fn run_scheduler_once(&self) -> Result<SchedulerPass, Error> {
        crate::scheduler::pass(&self.inner).await
    }

    /// Launches a run of pipeline `name`.
    pub async fn launch(&self, name: &str) -> Result<RunHandle, Error> {
        self.launch_with(name, Value::Object(Default::default())).await
    }

    /// Launches a run with launch arguments (a JSON object): a task receives argument `k`
    /// when its cog has a parameter named `k`; launch arguments override the task's own.
    pub async fn launch_with(&self, name: &str, arguments: Value) -> Result<RunHandle, Error> {
        if !arguments.is_object() {
            return Err(Error::LaunchArgumentsNotObject { pipeline: name.to_owned() });
        }
        let request = LaunchRequest {
            pipeline: name,
            arguments: &arguments,
            trigger: Trigger::Manual,
            scheduled_for: None,
            overlap_failed: self.inner.config.overlap_failed,
        };
        let (run_id, effects) = engine::launch::launch(&self.inner.db, request).await?;
        self.inner.apply(run_id, effects);
        Ok(self.run(run_id))
    }

    /// Cancels run `run_id`: it is `canceled` at once, its queued task runs too; running cogs
    /// are told through `TaskContext` and finish. A run that already ended is left alone.
    pub async fn cancel(&self, run_id: i64) -> Result<(), Error> {
        let effects = engine::cancel::cancel(&self.inner.db, run_id).await?;
        self.inner.cancel_running(run_id);
        self.inner.apply(run_id, effects);
        Ok(())
    }

    /// Sets or removes (`None`) the schedule of pipeline `name` without redefining it.
    pub async fn set_schedule(&self, name: &str, schedule: Option<&str>) -> Result<(), Error> {
        if let Some(expr) = schedule {
            crate::scheduler::expression::parse(expr).map_err(|reason| crate::error::DefinitionError::InvalidSchedule {
                pipeline: name.to_owned(),
                schedule: expr.to_owned(),
                reason,
            })?;
        }
        // A new schedule counts ticks from now; an unchanged one keeps its last tick.
        let found = crate::store::schedules::set_schedule(&self.inner.db, name, schedule, self.inner.clock.now(), crate::store::now()).await?;
        if !found {
            return Err(Error::UnknownPipeline { name: name.to_owned() });
        }
        self.inner.schedules_changed.notify_waiters();
        Ok(())
    }

    /// Enables or disables pipeline `name`: a disabled pipeline's schedule launches nothing.
    /// `Error::UnknownPipeline` if there is no such pipeline.
    pub async fn set_enabled(&self, name: &str, enabled: bool) -> Result<(), Error> {
        use crate::entity::pipeline;
        use sea_orm::sea_query::Expr;
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        let changed = pipeline::Entity::update_many()
            .col_expr(pipeline::Column::Enabled, Expr::value(enabled))
            .col_expr(pipeline::Column::UpdatedAt, Expr::value(crate::store::now()))
            .filter(pipeline::Column::Name.eq(name))
            .exec(&self.inner.db)
            .await?;
        if changed.rows_affected == 0 {
            return Err(Error::UnknownPipeline { name: name.to_owned() });
        }
        self.inner.schedules_changed.notify_waiters();
        Ok(())
    }

    /// A handle on run `run_id` (launched by any process).
    pub fn run(&self, run_id: i64) -> RunHandle {
        RunHandle { id: run_id, rt: self.clone() }
    }

    /// A readable account of run `run_id`: its stage runs and task runs with statuses and durations.
    pub async fn report(&self, run_id: i64) -> Result<crate::report::RunReport, Error> {
        crate::report::load(&self.inner.db, run_id).await
    }

    /// Queued task runs per queue, for every known queue (zero included) — work waits on a
    /// queue no process serves, and this shows it.
    pub async fn queue_depths(&self) -> Result<Vec<(String, i64)>, Error> {
        Ok(crate::store::reports::queue_depths(&self.inner.db).await?)
    }

    /// The database connection the runtime uses (to query `cog::entity` tables).
    pub fn connection(&self) -> &DatabaseConnection {
        &self.inner.db
    }

    /// This process's worker name, as written to `cog_task_run.worker`.
    pub fn worker_id(&self) -> &str {
        &self.inner.worker_id
    }
}
