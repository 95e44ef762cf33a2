//! Stage runs still filling: big stages whose task runs are queued a chunk at a time after
//! the stage started (see `engine::fill`), the lease of the process queueing them, and the
//! statements of one chunk.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};

use super::transitions::{self, TaskRange};
use super::{Backend, Sql};
use crate::entity::status::RunStatus;

/// Stage runs still filling that nobody holds (never taken, or their holder's lease ran out),
/// of run `run_id` only if given; at most `limit`, oldest first.
pub(crate) async fn unheld(conn: &impl ConnectionTrait, run_id: Option<i64>, limit: usize) -> Result<Vec<i64>, DbErr> {
    let sql = Sql::new(Backend::of(conn)?, "SELECT id FROM cog_stage_run WHERE fill_after IS NOT NULL AND (fill_lease_until IS NULL OR fill_lease_until < ")
        .now()
        .push(")");
    let sql = match run_id {
        Some(run_id) => sql.push(" AND pipeline_run_id = ").bind(run_id),
        None => sql,
    };
    sql.push(" ORDER BY id LIMIT ").bind(limit as i64).ids(conn).await
}

/// Takes the job of filling stage run `stage_run_id` for `lease` if nobody holds it; returns
/// whether this caller got it.
pub(crate) async fn take(conn: &impl ConnectionTrait, stage_run_id: i64, lease: Duration) -> Result<bool, DbErr> {
    let n = Sql::new(Backend::of(conn)?, "UPDATE cog_stage_run SET fill_lease_until = ")
        .now_plus(lease)
        .push(" WHERE id = ")
        .bind(stage_run_id)
        .push(" AND fill_after IS NOT NULL AND (fill_lease_until IS NULL OR fill_lease_until < ")
        .now()
        .push(")")
        .execute(conn)
        .await?;
    Ok(n > 0)
}

/// The pipeline run of stage run `stage_run_id` (which never changes: read before its lock).
pub(crate) async fn run_of(conn: &impl ConnectionTrait, stage_run_id: i64) -> Result<Option<i64>, DbErr> {
    #[derive(FromQueryResult)]
    struct Run {
        pipeline_run_id: i64,
    }
    let row = Sql::new(Backend::of(conn)?, "SELECT pipeline_run_id FROM cog_stage_run WHERE id = ").bind(stage_run_id).one::<Run>(conn).await?;
    Ok(row.map(|r| r.pipeline_run_id))
}

/// Where a filling stage run stands.
#[derive(Debug, Clone, Copy, FromQueryResult)]
pub(crate) struct Filling {
    /// Its stage.
    pub(crate) stage_id: i64,
    /// Its status.
    pub(crate) status: RunStatus,
    /// The last task whose task run is queued; `None`: every task run exists.
    pub(crate) fill_after: Option<i64>,
}

/// Where stage run `stage_run_id` stands; read under its run's lock.
pub(crate) async fn filling(conn: &impl ConnectionTrait, stage_run_id: i64) -> Result<Option<Filling>, DbErr> {
    Sql::new(Backend::of(conn)?, "SELECT stage_id, status, fill_after FROM cog_stage_run WHERE id = ").bind(stage_run_id).one(conn).await
}

/// Queues the task runs of the next chunk (at most `chunk` tasks after task `after`) of
/// stage run `stage_run_id` of stage `stage_id`; returns how many it queued and the chunk's
/// last task (`None`: they were the last). Needs no lock: the caller moves the fill mark with
/// [`move_mark`] under the run's lock afterwards, and rolls back if it could not.
pub(crate) async fn queue_chunk(conn: &impl ConnectionTrait, stage_run_id: i64, stage_id: i64, after: i64, chunk: usize) -> Result<(u64, Option<i64>), DbErr> {
    // The chunk's last task: the `chunk`-th enabled, current task after `after`, if there is one.
    let through = Sql::new(
        Backend::of(conn)?,
        "SELECT t.id FROM cog_task t JOIN cog_stage s ON s.id = t.stage_id \
         WHERE t.enabled AND NOT t.archived AND s.enabled AND t.stage_id = ",
    )
    .bind(stage_id)
    .push(" AND t.id > ")
    .bind(after)
    .push(" ORDER BY t.id LIMIT 1 OFFSET ")
    .bind(chunk.saturating_sub(1) as i64)
    .ids(conn)
    .await?
    .first()
    .copied();
    let queued =
        transitions::queue_task_runs(conn, stage_run_id, stage_id, TaskRange { after: Some(after), through, limit: None, through_mark: false }).await?;
    Ok((queued, through))
}

/// Moves the fill mark of running stage run `stage_run_id` from task `after` to `through`,
/// holding the job for `lease` more, or clears it (`through` = `None`: the stage run is full).
/// Returns whether it moved: not if the stage run ended or another filler moved the mark.
/// Callers hold the run's lock.
pub(crate) async fn move_mark(conn: &impl ConnectionTrait, stage_run_id: i64, after: i64, through: Option<i64>, lease: Duration) -> Result<bool, DbErr> {
    let sql = Sql::new(Backend::of(conn)?, "UPDATE cog_stage_run SET fill_after = ");
    let sql = match through {
        Some(through) => sql.bind(through).push(", fill_lease_until = ").now_plus(lease),
        None => sql.push("NULL, fill_lease_until = NULL"),
    };
    let moved = sql
        .push(" WHERE id = ")
        .bind(stage_run_id)
        .push(" AND fill_after = ")
        .bind(after)
        .push(" AND status = ")
        .bind(RunStatus::Running)
        .execute(conn)
        .await?;
    Ok(moved > 0)
}
