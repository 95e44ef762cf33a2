//! Reading runs back: a run's status, its report rows, queue depths, and task runs ended per minute.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};

use super::{Backend, Sql};
use crate::entity::status::{RunStatus, Trigger};

/// A run's status and whether it has ended (`completed_at` written).
#[derive(Debug, Clone, Copy, FromQueryResult)]
pub(crate) struct RunEnd {
    pub(crate) status: RunStatus,
    pub(crate) completed_at: Option<DateTime<Utc>>,
}

/// Status and `completed_at` of run `id`.
pub(crate) async fn run_end(conn: &impl ConnectionTrait, id: i64) -> Result<Option<RunEnd>, DbErr> {
    Sql::new(Backend::of(conn)?, "SELECT status, completed_at FROM cog_pipeline_run WHERE id = ").bind(id).one(conn).await
}

/// The head of a run report.
#[derive(Debug, Clone, FromQueryResult)]
pub(crate) struct RunRow {
    pub(crate) pipeline: String,
    pub(crate) status: RunStatus,
    pub(crate) trigger: Trigger,
    pub(crate) started_at: Option<DateTime<Utc>>,
    pub(crate) completed_at: Option<DateTime<Utc>>,
}

/// One stage run of a report.
#[derive(Debug, Clone, FromQueryResult)]
pub(crate) struct StageRunRow {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) status: RunStatus,
    pub(crate) started_at: Option<DateTime<Utc>>,
    pub(crate) completed_at: Option<DateTime<Utc>>,
}

/// One task run of a report.
#[derive(Debug, Clone, FromQueryResult)]
pub(crate) struct TaskRunRow {
    pub(crate) stage_run_id: i64,
    pub(crate) name: String,
    pub(crate) status: RunStatus,
    pub(crate) attempt: i32,
    pub(crate) duration_ms: Option<i64>,
    pub(crate) result: Option<String>,
    pub(crate) error: Option<String>,
}

/// Run `run_id` with its pipeline's name.
pub(crate) async fn run(conn: &impl ConnectionTrait, run_id: i64) -> Result<Option<RunRow>, DbErr> {
    let b = Backend::of(conn)?;
    Sql::new(b, "SELECT p.name AS pipeline, r.status, r.")
        .push(b.trigger_column())
        .push(" AS ")
        .push(b.trigger_column())
        .push(", r.started_at, r.completed_at FROM cog_pipeline_run r JOIN cog_pipeline p ON p.id = r.pipeline_id WHERE r.id = ")
        .bind(run_id)
        .one(conn)
        .await
}

/// The stage runs of run `run_id`, in start order.
pub(crate) async fn stage_runs(conn: &impl ConnectionTrait, run_id: i64) -> Result<Vec<StageRunRow>, DbErr> {
    Sql::new(
        Backend::of(conn)?,
        "SELECT sr.id, s.name, sr.status, sr.started_at, sr.completed_at FROM cog_stage_run sr JOIN cog_stage s ON s.id = sr.stage_id WHERE sr.pipeline_run_id = ",
    )
    .bind(run_id)
    .push(" ORDER BY sr.id")
    .all(conn)
    .await
}

/// The task runs of run `run_id`, by task position.
pub(crate) async fn task_runs(conn: &impl ConnectionTrait, run_id: i64) -> Result<Vec<TaskRunRow>, DbErr> {
    Sql::new(
        Backend::of(conn)?,
        "SELECT tr.stage_run_id, t.name, tr.status, tr.attempt, tr.duration_ms, tr.result, tr.error FROM cog_task_run tr \
         JOIN cog_task t ON t.id = tr.task_id JOIN cog_stage_run sr ON sr.id = tr.stage_run_id WHERE sr.pipeline_run_id = ",
    )
    .bind(run_id)
    .push(" ORDER BY t.position, tr.id")
    .all(conn)
    .await
}

/// Queued task runs per known queue, zero included, by queue name.
pub(crate) async fn queue_depths(conn: &impl ConnectionTrait) -> Result<Vec<(String, i64)>, DbErr> {
    #[derive(FromQueryResult)]
    struct Depth {
        name: String,
        queued: i64,
    }
    let rows = Sql::new(Backend::of(conn)?, "SELECT q.name, (SELECT COUNT(*) FROM cog_task_run t WHERE t.queue = q.name AND t.status = ")
        .status(RunStatus::Queued)
        .push(") AS queued FROM cog_queue q ORDER BY q.name")
        .all::<Depth>(conn)
        .await?;
    Ok(rows.into_iter().map(|r| (r.name, r.queued)).collect())
}

/// Active task runs of one queue with one status (`queued` or `running`).
#[derive(Debug, Clone, FromQueryResult)]
pub(crate) struct ActiveRow {
    pub(crate) queue: String,
    pub(crate) status: RunStatus,
    pub(crate) n: i64,
    /// The earliest `run_after` among them.
    pub(crate) oldest: Option<DateTime<Utc>>,
}

/// Queued and running task runs per queue and status (read through the partial indexes on
/// active task runs, so the cost follows the active rows, not the history).
pub(crate) async fn active_per_queue(conn: &impl ConnectionTrait) -> Result<Vec<ActiveRow>, DbErr> {
    Sql::new(Backend::of(conn)?, "SELECT queue, status, COUNT(*) AS n, MIN(run_after) AS oldest FROM cog_task_run WHERE status IN (")
        .statuses([RunStatus::Queued, RunStatus::Running])
        .push(") GROUP BY queue, status")
        .all(conn)
        .await
}

/// Task runs that ended with `status` in one minute.
#[derive(Debug, Clone, FromQueryResult)]
pub(crate) struct MinuteRow {
    /// `YYYY-MM-DD HH:MM` (SQLite: `YYYY-MM-DDTHH:MM`), UTC.
    pub(crate) minute: String,
    pub(crate) status: RunStatus,
    pub(crate) n: i64,
}

/// Completed and failed task runs per minute since `since` (the minute of a timestamp is a
/// per-backend expression).
pub(crate) async fn ended_per_minute(conn: &impl ConnectionTrait, since: DateTime<Utc>) -> Result<Vec<MinuteRow>, DbErr> {
    let b = Backend::of(conn)?;
    let minute = match b {
        Backend::Sqlite => "substr(completed_at, 1, 16)",
        Backend::Postgres => "to_char(date_trunc('minute', completed_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD HH24:MI')",
        Backend::MySql => "DATE_FORMAT(completed_at, '%Y-%m-%d %H:%i')",
    };
    Sql::new(b, "SELECT ")
        .push(minute)
        .push(" AS minute, status, COUNT(*) AS n FROM cog_task_run WHERE completed_at >= ")
        .bind(since)
        .push(" AND status IN (")
        .bind_list([RunStatus::Completed, RunStatus::Failed])
        .push(") GROUP BY 1, 2")
        .all(conn)
        .await
}
