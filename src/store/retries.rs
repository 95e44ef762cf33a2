//! The statements of a retry: the run to retry, and the stages that completed in it recorded
//! in the new run.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};

use super::{Backend, Sql};
use crate::entity::status::RunStatus;

/// What a retry needs of the run it retries.
#[derive(Debug, Clone, FromQueryResult)]
pub(crate) struct RetriedRun {
    /// The pipeline's name.
    pub(crate) pipeline: String,
    pub(crate) status: RunStatus,
    /// Launch arguments (JSON text).
    pub(crate) arguments: String,
    pub(crate) completed_at: Option<DateTime<Utc>>,
}

/// Run `run_id` with its pipeline's name.
pub(crate) async fn retried_run(conn: &impl ConnectionTrait, run_id: i64) -> Result<Option<RetriedRun>, DbErr> {
    Sql::new(
        Backend::of(conn)?,
        "SELECT p.name AS pipeline, r.status, r.arguments, r.completed_at FROM cog_pipeline_run r JOIN cog_pipeline p ON p.id = r.pipeline_id WHERE r.id = ",
    )
    .bind(run_id)
    .one(conn)
    .await
}

/// Records in run `new_run` every stage that completed in run `old_run` and is still part of
/// the pipeline: a stage run `completed` at `now`, with a copy of each of its task runs
/// (status, attempt, worker, result and error kept; started and ended at `now`; no
/// `duration_ms`, so learned weights do not count the old durations twice). Returns the
/// copied stages' ids.
pub(crate) async fn copy_completed_stages(conn: &impl ConnectionTrait, old_run: i64, new_run: i64, now: DateTime<Utc>) -> Result<Vec<i64>, DbErr> {
    #[derive(FromQueryResult)]
    struct Completed {
        id: i64,
        stage_id: i64,
    }
    let b = Backend::of(conn)?;
    let completed = Sql::new(b, "SELECT sr.id, sr.stage_id FROM cog_stage_run sr JOIN cog_stage s ON s.id = sr.stage_id WHERE sr.pipeline_run_id = ")
        .bind(old_run)
        .push(" AND sr.status = ")
        .bind(RunStatus::Completed)
        .push(" AND NOT s.archived ORDER BY sr.id")
        .all::<Completed>(conn)
        .await?;
    let mut stages = Vec::with_capacity(completed.len());
    for stage_run in completed {
        let copy = Sql::new(b, "INSERT INTO cog_stage_run (pipeline_run_id, stage_id, status, started_at, completed_at) VALUES (")
            .bind(new_run)
            .push(", ")
            .bind(stage_run.stage_id)
            .push(", ")
            .bind(RunStatus::Completed)
            .push(", ")
            .bind(now)
            .push(", ")
            .bind(now)
            .push(")")
            .insert(conn)
            .await?;
        Sql::new(b, "INSERT INTO cog_task_run (stage_run_id, task_id, status, queue, weight, attempt, worker, run_after, started_at, completed_at, result, error) SELECT ")
            .bind(copy)
            .push(", task_id, status, queue, weight, attempt, worker, ")
            .bind(now)
            .push(", ")
            .bind(now)
            .push(", ")
            .bind(now)
            .push(", result, error FROM cog_task_run WHERE stage_run_id = ")
            .bind(stage_run.id)
            .execute(conn)
            .await?;
        stages.push(stage_run.stage_id);
    }
    Ok(stages)
}
