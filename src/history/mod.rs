//! Reading the run history and the state of workers and queues: what the admin shows, as
//! public `CogRuntime` methods (listing runs with filters and keyset paging, one run in
//! detail, errors, cogs, queues, throughput, next schedule ticks).
//!
//! Reading never writes: a runtime that only reads (a dashboard) leaves no trace.
//!
//! ```no_run
//! # async fn f(rt: cog::CogRuntime) -> Result<(), cog::Error> {
//! use cog::history::RunFilter;
//! use cog::RunStatus;
//! let failed = rt.runs(&RunFilter::new().status(RunStatus::Failed).limit(20)).await?;
//! if let Some(oldest) = failed.last() {
//!     let next_page = rt.runs(&RunFilter::new().status(RunStatus::Failed).before(oldest.id).limit(20)).await?;
//! #   let _ = next_page;
//! }
//! # Ok(()) }
//! ```

mod catalog;
mod detail;
mod errors;
mod filter;
mod health;
mod pipelines;
mod runs;
mod throughput;
mod types;

pub use filter::{ErrorFilter, RunFilter};
pub use types::{
    CogHealth, ErrorRow, MinuteCount, PipelineDetail, PipelineSummary, QueueHealth, RunDetail, RunSummary, StageInfo, StageRunRow, TaskInfo, TaskRef,
    TaskRunRow, WorkerInfo,
};

use chrono::{DateTime, Utc};

use crate::error::Error;
use crate::runtime::CogRuntime;

/// The most rows one listing returns.
pub const MAX_LIMIT: u64 = 500;

impl CogRuntime {
    /// Every pipeline by name, with its last run and its next three schedule ticks.
    pub async fn pipelines(&self) -> Result<Vec<PipelineSummary>, Error> {
        pipelines::list(self.connection(), Utc::now()).await
    }

    /// Pipeline `name` with its stages (dependency depth, prerequisites) and tasks.
    pub async fn pipeline_detail(&self, name: &str) -> Result<PipelineDetail, Error> {
        pipelines::detail(self.connection(), name, Utc::now()).await
    }

    /// Pipeline runs matching `filter`, newest first (by id); page with
    /// [`RunFilter::before`] set to the last id of the previous page.
    pub async fn runs(&self, filter: &RunFilter) -> Result<Vec<RunSummary>, Error> {
        runs::list(self.connection(), filter).await
    }

    /// Run `id` with every stage of its pipeline (and the stage run, if it started), its task
    /// runs and its errors. `Error::UnknownRun` if there is no such run.
    pub async fn run_detail(&self, id: i64) -> Result<RunDetail, Error> {
        detail::load(self.connection(), id).await
    }

    /// `cog_error` rows matching `filter`, newest first.
    pub async fn errors(&self, filter: &ErrorFilter) -> Result<Vec<ErrorRow>, Error> {
        errors::list(self.connection(), filter).await
    }

    /// Every cog recorded in the database: present means carried by a live worker.
    pub async fn cogs_overview(&self) -> Result<Vec<CogHealth>, Error> {
        health::cogs(self.connection(), Utc::now()).await
    }

    /// Every error handler recorded in the database, as [`cogs_overview`](Self::cogs_overview).
    pub async fn error_handlers_overview(&self) -> Result<Vec<CogHealth>, Error> {
        health::error_handlers(self.connection(), Utc::now()).await
    }

    /// Every queue with its queued and running task runs, its oldest queued task run and the
    /// live workers serving it.
    pub async fn queues_overview(&self) -> Result<Vec<QueueHealth>, Error> {
        health::queues(self.connection(), Utc::now()).await
    }

    /// The live workers (heartbeat not expired), by name.
    pub async fn workers(&self) -> Result<Vec<WorkerInfo>, Error> {
        health::workers(self.connection(), Utc::now()).await
    }

    /// Task runs that ended per minute since `since` (completed and failed), oldest first,
    /// one entry per minute including empty ones.
    pub async fn throughput(&self, since: DateTime<Utc>) -> Result<Vec<MinuteCount>, Error> {
        throughput::throughput(self.connection(), since, Utc::now()).await
    }

    /// The next `n` schedule ticks of pipeline `name` after `after` (none if unscheduled).
    pub async fn next_ticks(&self, name: &str, after: DateTime<Utc>, n: usize) -> Result<Vec<DateTime<Utc>>, Error> {
        let pipeline = pipelines::find(self.connection(), name).await?;
        Ok(pipelines::ticks(&pipeline, after, n))
    }
}

/// Reads stored JSON text; text that is not JSON (written by hand) is kept as a string.
fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_owned()))
}
