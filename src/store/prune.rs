//! The statements of pruning: ended runs older than a cut-off, and their errors, task runs
//! and stage runs, deleted a bounded number of rows at a time; and when the retention prune
//! is next due (row `retention` of `cog_lock`).

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};

use super::{Backend, Sql};
use crate::entity::status::RunStatus;

/// Ids of at most `limit` runs that ended (terminal status and `completed_at` written) before
/// `before`, oldest first.
pub(crate) async fn ended_runs(conn: &impl ConnectionTrait, before: DateTime<Utc>, limit: usize) -> Result<Vec<i64>, DbErr> {
    Sql::new(Backend::of(conn)?, "SELECT id FROM cog_pipeline_run WHERE completed_at < ")
        .bind(before)
        .push(" AND status IN (")
        .bind_list([RunStatus::Completed, RunStatus::Failed, RunStatus::Canceled])
        .push(") ORDER BY completed_at, id LIMIT ")
        .bind(limit as i64)
        .ids(conn)
        .await
}

/// The rows under a run, children first: what [`delete_under`] deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Child {
    /// `cog_error` rows of the runs' task runs.
    Errors,
    /// `cog_task_run` rows of the runs' stage runs.
    TaskRuns,
    /// `cog_stage_run` rows of the runs.
    StageRuns,
}

/// Deletes at most `limit` rows of `child` under runs `runs` (ended runs: nothing writes
/// them any more); returns how many it deleted. The ids are read first (MySQL has no
/// `LIMIT` in a subquery of `IN`), then deleted by primary key.
pub(crate) async fn delete_under(conn: &impl ConnectionTrait, child: Child, runs: &[i64], limit: usize) -> Result<u64, DbErr> {
    if runs.is_empty() {
        return Ok(0);
    }
    let b = Backend::of(conn)?;
    let (select, table) = match child {
        Child::Errors => (
            "SELECT e.id FROM cog_error e JOIN cog_task_run t ON t.id = e.task_run_id JOIN cog_stage_run s ON s.id = t.stage_run_id WHERE s.pipeline_run_id IN (",
            "cog_error",
        ),
        Child::TaskRuns => ("SELECT t.id FROM cog_task_run t JOIN cog_stage_run s ON s.id = t.stage_run_id WHERE s.pipeline_run_id IN (", "cog_task_run"),
        Child::StageRuns => ("SELECT s.id FROM cog_stage_run s WHERE s.pipeline_run_id IN (", "cog_stage_run"),
    };
    let ids = Sql::new(b, select).bind_list(runs.iter().copied()).push(") LIMIT ").bind(limit as i64).ids(conn).await?;
    if ids.is_empty() {
        return Ok(0);
    }
    Sql::new(b, &format!("DELETE FROM {table} WHERE id IN (")).bind_list(ids).push(")").execute(conn).await
}

/// Deletes runs `runs` that have ended (their children deleted first); returns how many.
pub(crate) async fn delete_runs(conn: &impl ConnectionTrait, runs: &[i64]) -> Result<u64, DbErr> {
    if runs.is_empty() {
        return Ok(0);
    }
    Sql::new(Backend::of(conn)?, "DELETE FROM cog_pipeline_run WHERE completed_at IS NOT NULL AND id IN (")
        .bind_list(runs.iter().copied())
        .push(")")
        .execute(conn)
        .await
}

/// The `cog_lock` row that records when the retention prune is next due.
const RETENTION: &str = "retention";

/// When the retention prune is next due, if it ever ran.
pub(crate) async fn retention_due(conn: &impl ConnectionTrait) -> Result<Option<DateTime<Utc>>, DbErr> {
    #[derive(FromQueryResult)]
    struct Due {
        lease_until: DateTime<Utc>,
    }
    let row = Sql::new(Backend::of(conn)?, "SELECT lease_until FROM cog_lock WHERE name = ").bind(RETENTION).one::<Due>(conn).await?;
    Ok(row.map(|r| r.lease_until))
}

/// Records that `holder` pruned and the next prune is due at `next`.
pub(crate) async fn set_retention_due(conn: &impl ConnectionTrait, holder: &str, next: DateTime<Utc>) -> Result<(), DbErr> {
    let b = Backend::of(conn)?;
    let insert =
        Sql::new(b, "INSERT INTO cog_lock (name, holder, lease_until) VALUES (").bind(RETENTION).push(", ").bind(holder).push(", ").bind(next).push(")");
    match b {
        Backend::Sqlite | Backend::Postgres => {
            insert.push(" ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, lease_until = excluded.lease_until").execute(conn).await?
        }
        Backend::MySql => insert.push(" ON DUPLICATE KEY UPDATE holder = VALUES(holder), lease_until = VALUES(lease_until)").execute(conn).await?,
    };
    Ok(())
}
