//! Launching a pipeline run: overlap checks and the run's first stages, in one transaction.

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, TransactionTrait};
use serde_json::Value;

use super::{Effects, advance};
use crate::db::{execute, now, query_all, query_one};
use crate::entity::status::Trigger;
use crate::error::{Error, LaunchRefusal};

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
    let txn = db.begin().await?;
    let Some(row) =
        query_one(&txn, "UPDATE cog_pipeline SET updated_at = updated_at WHERE name = $1 RETURNING id, enabled, prevent_overlap", [request.pipeline.into()])
            .await?
    else {
        return Err(Error::UnknownPipeline { name: request.pipeline.to_owned() });
    };
    let pipeline_id: i64 = row.try_get_by_index(0)?;
    let enabled: bool = row.try_get_by_index(1)?;
    let prevent_overlap: bool = row.try_get_by_index(2)?;
    if request.trigger == Trigger::Schedule && !enabled {
        return Err(refuse(LaunchRefusal::Disabled));
    }
    if let Some(tick) = request.scheduled_for {
        let fired = query_one(&txn, "SELECT id FROM cog_pipeline_run WHERE pipeline_id = $1 AND scheduled_for = $2", [pipeline_id.into(), tick.into()]).await?;
        if fired.is_some() {
            return Err(refuse(LaunchRefusal::TickAlreadyFired));
        }
    }
    if prevent_overlap {
        let last = query_one(&txn, "SELECT id, status FROM cog_pipeline_run WHERE pipeline_id = $1 ORDER BY id DESC LIMIT 1", [pipeline_id.into()]).await?;
        if let Some(last) = last {
            let (run_id, status): (i64, String) = (last.try_get_by_index(0)?, last.try_get_by_index(1)?);
            if status == "failed" && !request.overlap_failed {
                return Err(refuse(LaunchRefusal::LastRunFailed { run_id }));
            }
        }
        let open = query_one(
            &txn,
            "SELECT id FROM cog_pipeline_run WHERE pipeline_id = $1 AND status IN ('queued', 'running') ORDER BY id LIMIT 1",
            [pipeline_id.into()],
        )
        .await?;
        if let Some(open) = open {
            return Err(refuse(LaunchRefusal::Overlap { run_id: open.try_get_by_index(0)? }));
        }
    }
    let now = now();
    let run = query_one(
        &txn,
        "INSERT INTO cog_pipeline_run (pipeline_id, status, \"trigger\", scheduled_for, arguments, created_at, started_at) \
         VALUES ($1, 'running', $2, $3, $4, $5, $5) RETURNING id",
        [pipeline_id.into(), request.trigger.as_str().into(), request.scheduled_for.into(), request.arguments.to_string().into(), now.into()],
    )
    .await?
    .ok_or_else(|| sea_orm::DbErr::RecordNotInserted)?;
    let run_id: i64 = run.try_get_by_index(0)?;
    if let Some(tick) = request.scheduled_for {
        execute(&txn, "UPDATE cog_pipeline SET last_tick = $1 WHERE id = $2 AND (last_tick IS NULL OR last_tick < $1)", [tick.into(), pipeline_id.into()])
            .await?;
    }
    let roots = query_all(
        &txn,
        "SELECT s.id FROM cog_stage s WHERE s.pipeline_id = $1 AND NOT s.archived \
         AND NOT EXISTS (SELECT 1 FROM cog_stage_prerequisite p WHERE p.stage_id = s.id) ORDER BY s.position",
        [pipeline_id.into()],
    )
    .await?
    .iter()
    .map(|r| r.try_get_by_index::<i64>(0))
    .collect::<Result<Vec<_>, _>>()?;
    let effects = advance::start_stages(&txn, run_id, roots, now).await?;
    txn.commit().await?;
    tracing::info!(pipeline = request.pipeline, pipeline.run = run_id, trigger = request.trigger.as_str(), "pipeline run launched");
    Ok((run_id, effects))
}
