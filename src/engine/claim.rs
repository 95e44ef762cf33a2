//! Claiming queued task runs for a worker, and reading what it needs to run them.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, QueryResult, TransactionTrait, Value};

use crate::db::{in_list, query_all};

/// A task run claimed by (or being finished for) a worker, with its definition.
#[derive(Debug, Clone)]
pub(crate) struct Claimed {
    pub(crate) task_run_id: i64,
    pub(crate) attempt: i32,
    pub(crate) stage_run_id: i64,
    pub(crate) pipeline_run_id: i64,
    pub(crate) task_id: i64,
    pub(crate) task_name: String,
    pub(crate) stage_name: String,
    pub(crate) pipeline_name: String,
    pub(crate) cog: String,
    pub(crate) error_handler: Option<String>,
    pub(crate) arguments: String,
    pub(crate) launch_arguments: String,
    pub(crate) critical: bool,
    pub(crate) max_retries: i32,
    pub(crate) timeout_ms: Option<i64>,
    pub(crate) started_at: Option<DateTime<Utc>>,
}

/// Marks up to `limit` queued task runs of `queues` whose `run_after` has passed as running
/// for `worker`, heaviest first, in one statement; returns them with their definitions.
/// The claim and the read of the definitions are one transaction: if the read fails, the
/// claim is undone rather than left `running` with nobody to run it.
pub(crate) async fn claim(
    db: &sea_orm::DatabaseConnection,
    worker: &str,
    queues: &[String],
    limit: usize,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> Result<Vec<Claimed>, DbErr> {
    if queues.is_empty() || limit == 0 {
        return Ok(Vec::new());
    }
    let txn = db.begin().await?;
    // The ids are picked exactly once: PostgreSQL may plan `id IN (SELECT ... LIMIT n FOR
    // UPDATE SKIP LOCKED)` as a nested-loop semi-join that rescans the subquery per outer row,
    // each rescan skipping rows locked meanwhile and returning new ones, so one claim took
    // many times its limit. A MATERIALIZED CTE is evaluated once, whatever the plan.
    let sql = match txn.get_database_backend() {
        DbBackend::Postgres => format!(
            "WITH picked AS MATERIALIZED (SELECT id FROM cog_task_run WHERE status = 'queued' AND run_after <= $3 AND queue IN ({}) \
             ORDER BY weight DESC, id LIMIT $4 FOR UPDATE SKIP LOCKED) \
             UPDATE cog_task_run SET status = 'running', attempt = attempt + 1, worker = $1, lease_until = $2, started_at = $3 \
             FROM picked WHERE cog_task_run.id = picked.id AND cog_task_run.status = 'queued' RETURNING cog_task_run.id",
            in_list(5, queues.len())
        ),
        // SQLite has one writer at a time and evaluates an uncorrelated IN-subquery once.
        DbBackend::Sqlite => format!(
            "UPDATE cog_task_run SET status = 'running', attempt = attempt + 1, worker = $1, lease_until = $2, started_at = $3 \
             WHERE status = 'queued' AND id IN (SELECT id FROM cog_task_run WHERE status = 'queued' AND run_after <= $3 AND queue IN ({}) \
             ORDER BY weight DESC, id LIMIT $4) RETURNING id",
            in_list(5, queues.len())
        ),
        _ => return Err(DbErr::BackendNotSupported { db: "this database", ctx: "claim" }),
    };
    let mut values: Vec<Value> = vec![worker.into(), lease_until.into(), now.into(), (limit as i64).into()];
    values.extend(queues.iter().map(|q| Value::from(q.as_str())));
    let mut ids = query_all(&txn, &sql, values).await?.iter().map(|r| r.try_get_by_index::<i64>(0)).collect::<Result<Vec<_>, _>>()?;
    if ids.len() > limit {
        // Never leave a claimed row with nobody to run it: hand the extras back untouched.
        let extras = ids.split_off(limit);
        tracing::error!(claimed = limit + extras.len(), limit, "a claim returned more task runs than asked for; handing the extras back");
        unclaim(&txn, &extras).await?;
    }
    let mut claimed = load(&txn, &ids).await?;
    txn.commit().await?;
    claimed.sort_by_key(|c| ids.iter().position(|id| *id == c.task_run_id));
    Ok(claimed)
}

/// Undoes the claim of task runs `ids` made in this transaction: queued again, attempt as before.
async fn unclaim(conn: &impl ConnectionTrait, ids: &[i64]) -> Result<(), DbErr> {
    let sql = format!(
        "UPDATE cog_task_run SET status = 'queued', attempt = attempt - 1, worker = NULL, lease_until = NULL, started_at = NULL \
         WHERE status = 'running' AND id IN ({})",
        in_list(1, ids.len())
    );
    crate::db::execute(conn, &sql, ids.iter().map(|id| Value::from(*id))).await?;
    Ok(())
}

/// Reads the running task runs `ids` with their definitions.
pub(crate) async fn load(conn: &impl ConnectionTrait, ids: &[i64]) -> Result<Vec<Claimed>, DbErr> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT tr.id, tr.attempt, tr.stage_run_id, sr.pipeline_run_id, t.id, t.name, s.name, p.name, c.name, h.name, \
                t.arguments, pr.arguments, t.critical, t.max_retries, t.timeout_ms, tr.started_at \
         FROM cog_task_run tr \
         JOIN cog_stage_run sr ON sr.id = tr.stage_run_id \
         JOIN cog_pipeline_run pr ON pr.id = sr.pipeline_run_id \
         JOIN cog_pipeline p ON p.id = pr.pipeline_id \
         JOIN cog_task t ON t.id = tr.task_id \
         JOIN cog_stage s ON s.id = t.stage_id \
         JOIN cog_cog c ON c.id = t.cog_id \
         LEFT JOIN cog_error_handler h ON h.id = t.error_handler_id \
         WHERE tr.id IN ({})",
        in_list(1, ids.len())
    );
    query_all(conn, &sql, ids.iter().map(|id| Value::from(*id))).await?.iter().map(row_to_claimed).collect()
}

/// One row of [`load`].
fn row_to_claimed(row: &QueryResult) -> Result<Claimed, DbErr> {
    Ok(Claimed {
        task_run_id: row.try_get_by_index(0)?,
        attempt: row.try_get_by_index(1)?,
        stage_run_id: row.try_get_by_index(2)?,
        pipeline_run_id: row.try_get_by_index(3)?,
        task_id: row.try_get_by_index(4)?,
        task_name: row.try_get_by_index(5)?,
        stage_name: row.try_get_by_index(6)?,
        pipeline_name: row.try_get_by_index(7)?,
        cog: row.try_get_by_index(8)?,
        error_handler: row.try_get_by_index(9)?,
        arguments: row.try_get_by_index(10)?,
        launch_arguments: row.try_get_by_index(11)?,
        critical: row.try_get_by_index(12)?,
        max_retries: row.try_get_by_index(13)?,
        timeout_ms: row.try_get_by_index(14)?,
        started_at: row.try_get_by_index(15)?,
    })
}

/// Task runs whose lease expired before `now` (their worker died or hung), at most `limit`.
pub(crate) async fn expired(conn: &impl ConnectionTrait, now: DateTime<Utc>, limit: usize) -> Result<Vec<Claimed>, DbErr> {
    let ids = query_all(
        conn,
        "SELECT id FROM cog_task_run WHERE status = 'running' AND lease_until < $1 ORDER BY lease_until LIMIT $2",
        [now.into(), (limit as i64).into()],
    )
    .await?
    .iter()
    .map(|r| r.try_get_by_index::<i64>(0))
    .collect::<Result<Vec<_>, _>>()?;
    load(conn, &ids).await
}
