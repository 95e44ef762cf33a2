//! The statements of a launch: the pipeline locked, the overlap checks, the run inserted,
//! and its first stages found.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};

use super::{Backend, Sql};
use crate::entity::status::{RunStatus, Trigger};
use crate::spec::Overlap;

/// What a launch needs of its pipeline.
#[derive(Debug, Clone, Copy, FromQueryResult)]
pub(crate) struct LaunchedPipeline {
    pub(crate) id: i64,
    pub(crate) enabled: bool,
    pub(crate) overlap: Overlap,
}

/// Locks pipeline `name` for the rest of the transaction: its definition cannot change until
/// the launch commits. PostgreSQL share-locks the row, so launches of one pipeline go on side
/// by side, and those that decide something from the pipeline's other runs then take
/// [`lock_decisions`]; MySQL locks the row exclusively, so there every launch of a pipeline
/// is decided after the one before; SQLite takes the database write lock with a no-op update.
pub(crate) async fn lock_pipeline(conn: &impl ConnectionTrait, name: &str) -> Result<Option<LaunchedPipeline>, DbErr> {
    let b = Backend::of(conn)?;
    let sql = match b {
        Backend::Postgres => Sql::new(b, "SELECT id, enabled, overlap FROM cog_pipeline WHERE name = ").bind(name).push(" FOR SHARE"),
        Backend::MySql => Sql::new(b, "SELECT id, enabled, overlap FROM cog_pipeline WHERE name = ").bind(name).push(" FOR UPDATE"),
        Backend::Sqlite => Sql::new(b, "UPDATE cog_pipeline SET updated_at = updated_at WHERE name = ").bind(name).push(" RETURNING id, enabled, overlap"),
    };
    sql.one(conn).await
}

/// Serializes, until the transaction ends, the launches of pipeline `pipeline_id` that decide
/// from its other runs (an overlap policy other than `allow`, a schedule tick): two of them
/// are decided one after the other. On PostgreSQL a transaction-scoped advisory lock on the
/// pipeline (its two-key space never meets the one-key definitions lock); MySQL and SQLite
/// already hold the pipeline exclusively ([`lock_pipeline`]).
pub(crate) async fn lock_decisions(conn: &impl ConnectionTrait, pipeline_id: i64) -> Result<(), DbErr> {
    /// An arbitrary first key: "cogL" in ASCII.
    const LAUNCHES: i32 = 0x636f_674c;
    let b = Backend::of(conn)?;
    if b == Backend::Postgres {
        // The second key is 32 bits: ids past 2^31 share a lock with a lower one, which only
        // serializes two pipelines' launches.
        Sql::new(b, "SELECT pg_advisory_xact_lock(").bind(LAUNCHES).push(", ").bind(pipeline_id as i32).push(")").execute(conn).await?;
    }
    Ok(())
}

/// Whether pipeline `pipeline_id` has a run for schedule tick `tick`.
pub(crate) async fn tick_fired(conn: &impl ConnectionTrait, pipeline_id: i64, tick: DateTime<Utc>) -> Result<bool, DbErr> {
    let ids = Sql::new(Backend::of(conn)?, "SELECT id FROM cog_pipeline_run WHERE pipeline_id = ")
        .bind(pipeline_id)
        .push(" AND scheduled_for = ")
        .bind(tick)
        .ids(conn)
        .await?;
    Ok(!ids.is_empty())
}

/// A run's id and status.
#[derive(Debug, Clone, Copy, FromQueryResult)]
pub(crate) struct RunState {
    pub(crate) id: i64,
    pub(crate) status: RunStatus,
}

/// A run to insert.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NewRun<'a> {
    pub(crate) pipeline_id: i64,
    /// `running`, or `queued` when buffered.
    pub(crate) status: RunStatus,
    pub(crate) trigger: Trigger,
    pub(crate) scheduled_for: Option<DateTime<Utc>>,
    /// JSON text of the launch arguments.
    pub(crate) arguments: &'a str,
    /// The run a retry retries.
    pub(crate) retry_of: Option<i64>,
    pub(crate) now: DateTime<Utc>,
}

/// Inserts a pipeline run, `running` (started now) or `queued` (not started); returns its id.
pub(crate) async fn insert_run(conn: &impl ConnectionTrait, run: NewRun<'_>) -> Result<i64, DbErr> {
    let b = Backend::of(conn)?;
    Sql::new(b, "INSERT INTO cog_pipeline_run (pipeline_id, status, ")
        .push(b.trigger_column())
        .push(", scheduled_for, arguments, retry_of, created_at, started_at) VALUES (")
        .bind(run.pipeline_id)
        .push(", ")
        .bind(run.status)
        .push(", ")
        .bind(run.trigger)
        .push(", ")
        .bind(run.scheduled_for)
        .push(", ")
        .bind(run.arguments)
        .push(", ")
        .bind(run.retry_of)
        .push(", ")
        .bind(run.now)
        .push(", ")
        .bind((run.status == RunStatus::Running).then_some(run.now))
        .push(")")
        .insert(conn)
        .await
}

/// Moves `last_tick` of pipeline `pipeline_id` forward to `tick` (never back).
pub(crate) async fn record_tick(conn: &impl ConnectionTrait, pipeline_id: i64, tick: DateTime<Utc>) -> Result<u64, DbErr> {
    Sql::new(Backend::of(conn)?, "UPDATE cog_pipeline SET last_tick = ")
        .bind(tick)
        .push(" WHERE id = ")
        .bind(pipeline_id)
        .push(" AND (last_tick IS NULL OR last_tick < ")
        .bind(tick)
        .push(")")
        .execute(conn)
        .await
}

/// The current stages of pipeline `pipeline_id` without prerequisites, in definition order.
pub(crate) async fn root_stages(conn: &impl ConnectionTrait, pipeline_id: i64) -> Result<Vec<i64>, DbErr> {
    Sql::new(Backend::of(conn)?, "SELECT s.id FROM cog_stage s WHERE s.pipeline_id = ")
        .bind(pipeline_id)
        .push(" AND NOT s.archived AND NOT EXISTS (SELECT 1 FROM cog_stage_prerequisite p WHERE p.stage_id = s.id) ORDER BY s.position")
        .ids(conn)
        .await
}

/// What an overlap policy decides on: the latest run of a pipeline and its runs still
/// queued or running (oldest first).
#[derive(Debug, Clone, Default)]
pub(crate) struct OverlapState {
    pub(crate) last: Option<RunState>,
    pub(crate) open: Vec<RunState>,
}

/// The latest run of pipeline `pipeline_id` and its open runs, read by **one** statement, so
/// both come from one snapshot: read apart, a run ending between the two reads looked still
/// running to the first and ended to the second, and a launch slipped past both checks.
pub(crate) async fn overlap_state(conn: &impl ConnectionTrait, pipeline_id: i64) -> Result<OverlapState, DbErr> {
    let rows: Vec<RunState> = Sql::new(Backend::of(conn)?, "SELECT id, status FROM (SELECT id, status FROM cog_pipeline_run WHERE pipeline_id = ")
        .bind(pipeline_id)
        .push(" ORDER BY id DESC LIMIT 1) latest UNION SELECT id, status FROM cog_pipeline_run WHERE pipeline_id = ")
        .bind(pipeline_id)
        .push(" AND status IN (")
        .bind_list([RunStatus::Queued, RunStatus::Running])
        .push(") ORDER BY id")
        .all(conn)
        .await?;
    let last = rows.iter().copied().max_by_key(|r| r.id);
    let mut open: Vec<RunState> = rows.into_iter().filter(|r| matches!(r.status, RunStatus::Queued | RunStatus::Running)).collect();
    open.dedup_by_key(|r| r.id);
    Ok(OverlapState { last, open })
}

/// A queued (buffered) run to start.
#[derive(Debug, Clone, Copy, FromQueryResult)]
pub(crate) struct QueuedRun {
    pub(crate) id: i64,
    pub(crate) pipeline_id: i64,
    pub(crate) retry_of: Option<i64>,
}

/// The oldest `queued` run of the pipeline of run `run_id`.
pub(crate) async fn next_queued_run(conn: &impl ConnectionTrait, run_id: i64) -> Result<Option<QueuedRun>, DbErr> {
    Sql::new(Backend::of(conn)?, "SELECT id, pipeline_id, retry_of FROM cog_pipeline_run WHERE status = ")
        .bind(RunStatus::Queued)
        .push(" AND pipeline_id = (SELECT pipeline_id FROM cog_pipeline_run WHERE id = ")
        .bind(run_id)
        .push(") ORDER BY id LIMIT 1")
        .one(conn)
        .await
}

/// Moves queued run `id` to `running` (`started_at` written); returns whether it did.
pub(crate) async fn start_queued_run(conn: &impl ConnectionTrait, id: i64, now: DateTime<Utc>) -> Result<bool, DbErr> {
    let n = Sql::new(Backend::of(conn)?, "UPDATE cog_pipeline_run SET status = ")
        .bind(RunStatus::Running)
        .push(", started_at = ")
        .bind(now)
        .push(" WHERE id = ")
        .bind(id)
        .push(" AND status = ")
        .bind(RunStatus::Queued)
        .execute(conn)
        .await?;
    Ok(n > 0)
}
