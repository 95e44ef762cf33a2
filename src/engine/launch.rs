//! Launching a pipeline run: overlap checks and the run's first stages, in one transaction.

use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;
use serde_json::Value;

use super::{Effects, advance};
use crate::entity::status::{RunStatus, Trigger};
use crate::error::{Error, LaunchRefusal};
use crate::store::launches::{self, NewRun};
use crate::store::{self, now};

/// What asks for a launch.
#[derive(Debug, Clone)]
pub(crate) struct LaunchRequest<'a> {
    /// Pipeline name.
    pub(crate) pipeline: &'a str,
    /// Launch arguments (a JSON object).
    pub(crate) arguments: &'a Value,
    /// Manual or schedule.
    pub(crate) trigger: Trigger,
    /// The schedule tick, for scheduled launches.
    pub(crate) scheduled_for: Option<DateTime<Utc>>,
    /// `Config::overlap_failed`.
    pub(crate) overlap_failed: bool,
}

/// Creates a pipeline run and starts its stages without prerequisites.
///
/// The pipeline row is locked first (an update of it), so two launches of one pipeline are
/// decided one after the other and at most one passes the overlap checks.
pub(crate) async fn launch(db: &DatabaseConnection, request: LaunchRequest<'_>) -> Result<(i64, Effects), Error> {
    let refuse = |reason| Error::LaunchRefused { pipeline: request.pipeline.to_owned(), reason };
    let txn = store::begin(db).await?;
    let Some(pipeline) = launches::lock_pipeline(&txn, request.pipeline).await? else {
        return Err(Error::UnknownPipeline { name: request.pipeline.to_owned() });
    };
    if request.trigger == Trigger::Schedule && !pipeline.enabled {
        return Err(refuse(LaunchRefusal::Disabled));
    }
    if let Some(tick) = request.scheduled_for
        && launches::tick_fired(&txn, pipeline.id, tick).await?
    {
        return Err(refuse(LaunchRefusal::TickAlreadyFired));
    }
    crate::arguments::check_launch(&txn, pipeline.id, request.arguments).await?;
    if pipeline.prevent_overlap {
        if let Some(last) = launches::last_run(&txn, pipeline.id).await?
            && last.status == RunStatus::Failed
            && !request.overlap_failed
        {
            return Err(refuse(LaunchRefusal::LastRunFailed { run_id: last.id }));
        }
        if let Some(run_id) = launches::open_run(&txn, pipeline.id).await? {
            return Err(refuse(LaunchRefusal::Overlap { run_id }));
        }
    }
    let now = now();
    let arguments = request.arguments.to_string();
    let run = NewRun { pipeline_id: pipeline.id, trigger: request.trigger, scheduled_for: request.scheduled_for, arguments: &arguments, now };
    let run_id = launches::insert_run(&txn, run).await?;
    if let Some(tick) = request.scheduled_for {
        launches::record_tick(&txn, pipeline.id, tick).await?;
    }
    let roots = launches::root_stages(&txn, pipeline.id).await?;
    let effects = advance::start_stages(&txn, run_id, roots, now).await?;
    super::commit(txn, run_id, effects).await?;
    tracing::info!(pipeline = request.pipeline, pipeline.run = run_id, trigger = request.trigger.as_str(), "pipeline run launched");
    Ok((run_id, effects))
}
