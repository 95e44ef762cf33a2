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
mod control;
mod history;
mod run_handle;

use std::sync::{Arc, Mutex};

use sea_orm::DatabaseConnection;
use serde_json::Value;

pub use builder::CogRuntimeBuilder;
pub use run_handle::RunHandle;

use crate::config::Config;
use crate::engine;
use crate::engine::launch::LaunchRequest;
use crate::entity::status::Trigger;
use crate::error::Error;
use crate::health::{Health, HealthBoard};
use crate::scheduler::{Scheduler, SchedulerPass};
use crate::signals::Signals;
use crate::spec::PipelineSpec;
use crate::worker::Worker;

/// The embedded engine. Cheap to clone: clones share one runtime.
#[derive(Clone)]
pub struct CogRuntime {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for CogRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CogRuntime").field("worker", &self.inner.worker.worker_id).field("queues", &self.inner.worker.queues).finish_non_exhaustive()
    }
}

/// What the runtime's clones share: its parts, each with its own state.
pub(crate) struct Inner {
    /// The host's pool ([`CogRuntime::connection`]), for the runtime's reads and writes outside
    /// its transitions.
    pub(crate) db: DatabaseConnection,
    /// The pool of the runtime's transitions (`store::connect::Pools::work`): `launch` runs
    /// there, as the worker does, and `RunHandle::wait` reads there.
    pub(crate) work: DatabaseConnection,
    pub(crate) config: Config,
    pub(crate) signals: Arc<Signals>,
    pub(crate) health: Arc<HealthBoard>,
    pub(crate) worker: Arc<Worker>,
    pub(crate) scheduler: Arc<Scheduler>,
    /// Whether `start` runs the scheduler.
    pub(crate) run_scheduler: bool,
    /// Set by `start` (once) and by `shutdown` (so a later `start` does nothing).
    pub(crate) started: Mutex<bool>,
}

impl Inner {
    /// A manual launch of pipeline `name` with `arguments`, which must be a JSON object.
    pub(crate) fn manual_launch<'a>(&self, name: &'a str, arguments: &'a Value) -> Result<LaunchRequest<'a>, Error> {
        if !arguments.is_object() {
            return Err(Error::LaunchArgumentsNotObject { pipeline: name.to_owned() });
        }
        Ok(LaunchRequest {
            pipeline: name,
            arguments,
            trigger: Trigger::Manual,
            scheduled_for: None,
            overlap_failed: self.config.overlap_failed,
            retry_of: None,
            learn_weights: self.learn_weights(),
        })
    }

    /// The sample size weights are learned with when a run ends, or `None` if learning is off.
    pub(crate) fn learn_weights(&self) -> Option<u32> {
        self.config.auto_weight.then_some(self.config.weight_sample_size)
    }

    /// How this process fills big stages (`engine::fill`).
    pub(crate) fn fill_policy(&self) -> crate::engine::fill::FillPolicy {
        crate::engine::fill::FillPolicy { lease: self.config.lease_duration, learn_weights: self.learn_weights() }
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
        let mut started = self.inner.started.lock().unwrap_or_else(|e| e.into_inner());
        if *started {
            return;
        }
        *started = true;
        crate::worker::start(&self.inner.worker);
        if self.inner.run_scheduler {
            crate::scheduler::start(&self.inner.scheduler);
        }
        let worker = &self.inner.worker;
        tracing::info!(worker = %worker.worker_id, queues = ?worker.queues, concurrency = worker.concurrency, "cog runtime started");
    }

    /// Stops taking work, lets running cogs finish within `Config::shutdown_timeout`, then
    /// gives the task runs still running back to the queue and stops. The scheduler stops
    /// first (and hands its lease over), so nothing is launched by this process meanwhile.
    pub async fn shutdown(&self) {
        *self.inner.started.lock().unwrap_or_else(|e| e.into_inner()) = true;
        crate::scheduler::stop(&self.inner.scheduler).await;
        crate::worker::shutdown(&self.inner.worker).await;
        tracing::info!(worker = %self.inner.worker.worker_id, "cog runtime stopped");
    }

    /// Waits until `start()` has recorded this worker and the cogs it carries (`cog_worker`,
    /// `cog_cog.present`, `rt.workers()`), so that from then on other processes and the admin
    /// see it, and has begun hearing other processes: on PostgreSQL its `LISTEN` is in place
    /// (work another process queues from then on wakes it at once), on MySQL its change
    /// counter was read once; should that first try fail, the runtime polls meanwhile (see
    /// [`health`](Self::health)'s `listener`) and `ready` does not wait for it. Returns at once
    /// if it already has, or if the runtime was never started or has shut down.
    pub async fn ready(&self) {
        let worker = &self.inner.worker;
        if !*self.inner.started.lock().unwrap_or_else(|e| e.into_inner()) {
            return;
        }
        let (mut registered, mut hearing) = (worker.registered.subscribe(), worker.hearing.subscribe());
        // Each sender lives as long as the worker: neither wait ends in an error while it does.
        // The value each wait returns is a read guard of its channel: dropped at once (held
        // while waiting for the other, it would block that channel's sender).
        let both = async {
            let (_, _) = tokio::join!(async { registered.wait_for(|r| *r).await.map(drop) }, async { hearing.wait_for(|h| *h).await.map(drop) });
        };
        tokio::select! {
            _ = both => {}
            _ = worker.stopped.cancelled() => {}
        }
    }

    /// The state of each background loop (claiming, writing outcomes, leases, presence,
    /// listening, scheduling): running, failing (with its last error), restarting after a
    /// panic (with how often), or stopped. Empty before `start()`.
    pub fn health(&self) -> Health {
        self.inner.health.snapshot()
    }

    /// Makes background loop `name` (see [`Health`]) panic at its next pass: for tests of
    /// the supervision that restarts it.
    #[doc(hidden)]
    pub fn inject_loop_panic(&self, name: &'static str) {
        self.inner.health.inject_panic(name);
    }

    /// Validates `spec` and saves it (insert or update by name, keeping run history).
    /// Returns the pipeline's id. Nothing is saved if the definition is invalid.
    pub async fn define(&self, spec: PipelineSpec) -> Result<i64, Error> {
        let id = crate::definitions::define::define(&self.inner.db, &spec, self.inner.scheduler.clock.now()).await?;
        self.inner.signals.schedules_changed.notify_waiters();
        Ok(id)
    }

    /// Runs one scheduler pass now: takes the scheduler lease if free, then launches every
    /// due tick. `start()` does this in the background; call it yourself to drive schedules
    /// from your own loop (with `builder().scheduler(false)`) or from tests with a `ManualClock`.
    pub async fn run_scheduler_once(&self) -> Result<SchedulerPass, Error> {
        crate::scheduler::pass(&self.inner.scheduler).await
    }

    /// Launches a run of pipeline `name`.
    pub async fn launch(&self, name: &str) -> Result<RunHandle, Error> {
        self.launch_with(name, Value::Object(Default::default())).await
    }

    /// Launches a run with launch arguments (a JSON object): a task receives argument `k`
    /// when its cog has a parameter named `k`; launch arguments override the task's own.
    pub async fn launch_with(&self, name: &str, arguments: Value) -> Result<RunHandle, Error> {
        let request = self.inner.manual_launch(name, &arguments)?;
        let run_id = control::launch_and_apply(&self.inner, request).await?;
        Ok(self.handle(run_id))
    }

    /// Cancels run `run_id`: it is `canceled` at once, its queued task runs too; running cogs
    /// are told through `TaskContext` and finish. A run that already ended is left alone.
    pub async fn cancel(&self, run_id: i64) -> Result<(), Error> {
        let effects = engine::cancel::cancel(&self.inner.db, run_id, self.inner.learn_weights()).await?;
        self.inner.worker.cancel_running(run_id);
        self.inner.signals.apply(effects);
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
        let found = crate::store::schedules::set_schedule(&self.inner.db, name, schedule, self.inner.scheduler.clock.now(), crate::store::now()).await?;
        if !found {
            return Err(Error::UnknownPipeline { name: name.to_owned() });
        }
        self.inner.signals.schedules_changed.notify_waiters();
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
        self.inner.signals.schedules_changed.notify_waiters();
        Ok(())
    }

    /// A handle on run `run_id` (launched by any process), to wait for it or read its status.
    pub fn handle(&self, run_id: i64) -> RunHandle {
        RunHandle { id: run_id, rt: self.clone() }
    }

    /// A handle on run `run_id`: the former name of [`handle`](Self::handle).
    #[deprecated(since = "0.2.0", note = "renamed `handle`: it returns a `RunHandle`, it does not run anything")]
    pub fn run(&self, run_id: i64) -> RunHandle {
        self.handle(run_id)
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

    /// The database connection the runtime uses (to query `cog::entity` tables): the host's
    /// own when it gave one, else a pool with the server's own session settings. (On
    /// PostgreSQL, cog's transitions run on a pool of their own whose sessions start with
    /// planner settings fit only for them; see `CogRuntimeBuilder::pool_size`.)
    pub fn connection(&self) -> &DatabaseConnection {
        &self.inner.db
    }

    /// This process's worker name, as written to `cog_task_run.worker`.
    pub fn worker_id(&self) -> &str {
        &self.inner.worker.worker_id
    }
}
