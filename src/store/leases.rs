//! Leases of running task runs: renewed by their worker, read when a cancel must reach it.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, FromQueryResult};

use super::{Backend, Sql};
use crate::entity::status::RunStatus;

/// Renews the lease of `worker`'s running task runs among `held` for `lease` (by the
/// database's clock, see [`Sql::now_plus`]) — only those:
/// a row this worker claimed but no longer runs must be able to expire. On PostgreSQL and
/// MySQL rows being finished right now are skipped (they need no renewal, and waiting for
/// them could deadlock). Returns how many it renewed.
pub(crate) async fn renew(db: &DatabaseConnection, worker: &str, held: &[i64], lease: Duration) -> Result<u64, DbErr> {
    if held.is_empty() {
        return Ok(0);
    }
    let b = Backend::of(db)?;
    let mine = |sql: Sql| {
        sql.push("SELECT id FROM cog_task_run WHERE worker = ").bind(worker).push(" AND status = ").bind(RunStatus::Running).push(" AND ").in_ids("id", held)
    };
    let update = |sql: Sql| sql.push("UPDATE cog_task_run SET lease_until = ").now_plus(lease).push(" WHERE id IN (");
    match b {
        Backend::Postgres => mine(update(Sql::new(b, ""))).push(" FOR UPDATE SKIP LOCKED)").execute(db).await,
        Backend::Sqlite => mine(update(Sql::new(b, ""))).push(")").execute(db).await,
        // MySQL cannot update a table it selects from in a subquery: lock, then update.
        Backend::MySql => {
            let txn = super::begin(db).await?;
            let ids = mine(Sql::new(b, "")).push(" FOR UPDATE SKIP LOCKED").ids(&txn).await?;
            let n = if ids.is_empty() { 0 } else { update(Sql::new(b, "")).bind_list(ids).push(")").execute(&txn).await? };
            txn.commit().await?;
            Ok(n)
        }
    }
}

/// The canceled runs of which `worker` still runs a task run. Reads the `running` entries of
/// the open task runs' partial index (see `transitions::open_task_runs_with_status`).
pub(crate) async fn canceled_runs_of(conn: &impl ConnectionTrait, worker: &str) -> Result<Vec<i64>, DbErr> {
    #[derive(FromQueryResult)]
    struct Run {
        pipeline_run_id: i64,
    }
    let sql = Sql::new(
        Backend::of(conn)?,
        "SELECT DISTINCT s.pipeline_run_id FROM cog_task_run t JOIN cog_stage_run s ON s.id = t.stage_run_id \
         JOIN cog_pipeline_run r ON r.id = s.pipeline_run_id WHERE t.worker = ",
    )
    .bind(worker)
    .push(" AND ");
    let rows = super::transitions::open_task_runs_with_status(sql, "t.status", RunStatus::Running)
        .push(" AND r.status = ")
        .bind(RunStatus::Canceled)
        .all::<Run>(conn)
        .await?;
    Ok(rows.into_iter().map(|r| r.pipeline_run_id).collect())
}

/// The worker named on task run `task_run_id`, if any.
pub(crate) async fn worker_of(conn: &impl ConnectionTrait, task_run_id: i64) -> Result<Option<String>, DbErr> {
    #[derive(FromQueryResult)]
    struct Worker {
        worker: Option<String>,
    }
    let row = Sql::new(Backend::of(conn)?, "SELECT worker FROM cog_task_run WHERE id = ").bind(task_run_id).one::<Worker>(conn).await?;
    Ok(row.and_then(|r| r.worker))
}
