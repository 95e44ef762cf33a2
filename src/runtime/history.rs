//! The `CogRuntime` methods that read history (see [`crate::history`]).

use chrono::{DateTime, Utc};

use super::CogRuntime;
use crate::error::Error;
use crate::history::{
    CogHealth, ErrorFilter, ErrorRow, MinuteCount, PipelineDetail, PipelineSummary, QueueHealth, RunDetail, RunFilter, RunSummary, WorkerInfo,
};

impl CogRuntime {
    /// Every pipeline by name, with its last run and its next three schedule ticks.
    pub async fn pipelines(&self) -> Result<Vec<PipelineSummary>, Error> {
        crate::history::pipelines::list(self.connection(), Utc::now()).await
    }

    /// Pipeline `name` with its stages (dependency depth, prerequisites) and tasks.
    pub async fn pipeline_detail(&self, name: &str) -> Result<PipelineDetail, Error> {
        crate::history::pipelines::detail(self.connection(), name, Utc::now()).await
    }

    /// Pipeline runs matching `filter`, newest first (by id); page with
    /// [`RunFilter::before`] set to the last id of the previous page.
    pub async fn runs(&self, filter: &RunFilter) -> Result<Vec<RunSummary>, Error> {
        crate::history::runs::list(self.connection(), filter).await
    }

    /// Run `id` with every stage of its pipeline (and the stage run, if it started), its task
    /// runs and its errors. `Error::UnknownRun` if there is no such run.
    pub async fn run_detail(&self, id: i64) -> Result<RunDetail, Error> {
        crate::history::detail::load(self.connection(), id).await
    }

    /// `cog_error` rows matching `filter`, newest first.
    pub async fn errors(&self, filter: &ErrorFilter) -> Result<Vec<ErrorRow>, Error> {
        crate::history::errors::list(self.connection(), filter).await
    }

    /// Every cog recorded in the database: present means carried by a live worker.
    pub async fn cogs_overview(&self) -> Result<Vec<CogHealth>, Error> {
        crate::history::health::cogs(self.connection(), Utc::now()).await
    }

    /// Every error handler recorded in the database, as [`cogs_overview`](Self::cogs_overview).
    pub async fn error_handlers_overview(&self) -> Result<Vec<CogHealth>, Error> {
        crate::history::health::error_handlers(self.connection(), Utc::now()).await
    }

    /// Every queue with its queued and running task runs, its oldest queued task run and the
    /// live workers serving it.
    pub async fn queues_overview(&self) -> Result<Vec<QueueHealth>, Error> {
        crate::history::health::queues(self.connection(), Utc::now()).await
    }

    /// The live workers (heartbeat not expired), by name.
    pub async fn workers(&self) -> Result<Vec<WorkerInfo>, Error> {
        crate::history::health::workers(self.connection(), Utc::now()).await
    }

    /// Task runs that ended per minute since `since` (completed and failed), oldest first,
    /// one entry per minute including empty ones.
    pub async fn throughput(&self, since: DateTime<Utc>) -> Result<Vec<MinuteCount>, Error> {
        crate::history::throughput::throughput(self.connection(), since, Utc::now()).await
    }

    /// The next `n` schedule ticks of pipeline `name` after `after` (none if unscheduled).
    pub async fn next_ticks(&self, name: &str, after: DateTime<Utc>, n: usize) -> Result<Vec<DateTime<Utc>>, Error> {
        let pipeline = crate::history::pipelines::find(self.connection(), name).await?;
        Ok(crate::history::pipelines::ticks(&pipeline, after, n))
    }
}
