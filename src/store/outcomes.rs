//! Writing how attempts ended: completed (many at once), queued again for a retry, failed,
//! given back; and `cog_error` rows. Every write is fenced by attempt number and status, so a
//! stale worker's late result changes nothing.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::ArrayType;
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, Value};

use super::{Backend, Sql};
use crate::entity::status::RunStatus;

/// One successful attempt to record.
#[derive(Debug, Clone)]
pub(crate) struct Success {
    pub(crate) task_run_id: i64,
    pub(crate) attempt: i32,
    pub(crate) duration_ms: i64,
    /// JSON text of the cog's result.
    pub(crate) result: String,
}

/// Marks the running task runs of `successes` (whose attempt still matches) `completed` with
/// their results, in one statement; returns the ids it completed.
pub(crate) async fn complete_many(conn: &impl ConnectionTrait, successes: &[Success], now: DateTime<Utc>) -> Result<Vec<i64>, DbErr> {
    if successes.is_empty() {
        return Ok(Vec::new());
    }
    let b = Backend::of(conn)?;
    // `target` qualifies the updated table's columns where the derived table has the same names.
    let set = |sql: Sql, target: &str| {
        sql.bind(RunStatus::Completed)
            .push(&format!(", {target}completed_at = "))
            .bind(now)
            .push(&format!(", {target}duration_ms = v.duration_ms, {target}result = v.result, {target}error = NULL, {target}lease_until = NULL"))
    };
    let update = |sql: Sql| {
        set(sql.push(" UPDATE cog_task_run SET status = "), "")
            .push(" FROM v WHERE cog_task_run.id = v.id AND cog_task_run.attempt = v.attempt AND cog_task_run.status = ")
            .bind(RunStatus::Running)
            .push(" RETURNING cog_task_run.id")
    };
    match b {
        // The results as four arrays: one statement text whatever their number, planned once
        // per connection (see `Sql::in_ids`).
        Backend::Postgres => {
            let column = |f: &dyn Fn(&Success) -> Value| Value::Array(ArrayType::BigInt, Some(Box::new(successes.iter().map(f).collect())));
            let sql = Sql::new(b, "WITH v (id, attempt, duration_ms, result) AS (SELECT * FROM unnest(")
                .bind(column(&|s| s.task_run_id.into()))
                .push("::bigint[], ")
                .bind(Value::Array(ArrayType::Int, Some(Box::new(successes.iter().map(|s| s.attempt.into()).collect()))))
                .push("::int[], ")
                .bind(column(&|s| s.duration_ms.into()))
                .push("::bigint[], ")
                .bind(Value::Array(ArrayType::String, Some(Box::new(successes.iter().map(|s| s.result.as_str().into()).collect()))))
                .push("::text[]))");
            update(sql).ids(conn).await
        }
        Backend::Sqlite => {
            let mut sql = Sql::new(b, "WITH v (id, attempt, duration_ms, result) AS (VALUES ");
            for (i, s) in successes.iter().enumerate() {
                sql = sql
                    .push(if i == 0 { "(" } else { ", (" })
                    .bind_list([Value::from(s.task_run_id), s.attempt.into(), s.duration_ms.into(), s.result.as_str().into()])
                    .push(")");
            }
            update(sql.push(")")).ids(conn).await
        }
        // No `UPDATE ... RETURNING`: the rows this attempt still owns are locked and read first,
        // then updated from a derived table of the results.
        Backend::MySql => {
            #[derive(FromQueryResult)]
            struct Owned {
                id: i64,
                attempt: i32,
            }
            let owned = Sql::new(b, "SELECT id, attempt FROM cog_task_run WHERE status = ")
                .bind(RunStatus::Running)
                .push(" AND id IN (")
                .bind_list(successes.iter().map(|s| s.task_run_id))
                .push(") FOR UPDATE")
                .all::<Owned>(conn)
                .await?;
            let mine: Vec<&Success> = successes.iter().filter(|s| owned.iter().any(|o| o.id == s.task_run_id && o.attempt == s.attempt)).collect();
            if mine.is_empty() {
                return Ok(Vec::new());
            }
            let mut sql = Sql::new(b, "UPDATE cog_task_run t JOIN (");
            for (i, s) in mine.iter().enumerate() {
                sql = sql
                    .push(if i == 0 { "SELECT " } else { " UNION ALL SELECT " })
                    .bind(s.task_run_id)
                    .push(" AS id, ")
                    .bind(s.duration_ms)
                    .push(" AS duration_ms, ")
                    .bind(s.result.as_str())
                    .push(" AS result");
            }
            set(sql.push(") v ON t.id = v.id SET t.status = "), "t.").push(" WHERE t.status = ").bind(RunStatus::Running).execute(conn).await?;
            Ok(mine.iter().map(|s| s.task_run_id).collect())
        }
    }
}

/// How a failed attempt is written.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FailedAttempt {
    /// Queued again, claimable `after` from now (by the database's clock).
    Retry { after: std::time::Duration },
    /// `failed` for good, ended `now`.
    Fail { now: DateTime<Utc> },
}

/// Writes a failed attempt on task run `task_run_id`, fenced by attempt number and status;
/// for a lease `takeover`, only while its lease is still expired (by the database's clock),
/// so a worker that renewed it meanwhile keeps it. Returns whether it was written.
pub(crate) async fn fail_attempt(
    conn: &impl ConnectionTrait,
    task_run_id: i64,
    attempt: i32,
    how: FailedAttempt,
    error: &str,
    takeover: bool,
) -> Result<bool, DbErr> {
    let b = Backend::of(conn)?;
    let sql = match how {
        FailedAttempt::Retry { after } => {
            Sql::new(b, "UPDATE cog_task_run SET status = ").bind(RunStatus::Queued).push(", worker = NULL, lease_until = NULL, run_after = ").now_plus(after)
        }
        FailedAttempt::Fail { now } => {
            Sql::new(b, "UPDATE cog_task_run SET status = ").bind(RunStatus::Failed).push(", completed_at = ").bind(now).push(", lease_until = NULL")
        }
    };
    let mut sql = sql
        .push(", error = ")
        .bind(error)
        .push(" WHERE id = ")
        .bind(task_run_id)
        .push(" AND attempt = ")
        .bind(attempt)
        .push(" AND status = ")
        .bind(RunStatus::Running);
    if takeover {
        sql = sql.push(" AND lease_until < ").now();
    }
    Ok(sql.execute(conn).await? > 0)
}

/// Gives task run `task_run_id` (attempt `attempt`, still running) back without counting a
/// failure: queued again at once (`requeue`) or `canceled` (its run has ended).
pub(crate) async fn give_back(conn: &impl ConnectionTrait, task_run_id: i64, attempt: i32, requeue: bool, now: DateTime<Utc>) -> Result<bool, DbErr> {
    let b = Backend::of(conn)?;
    let sql = if requeue {
        Sql::new(b, "UPDATE cog_task_run SET status = ").bind(RunStatus::Queued).push(", worker = NULL, lease_until = NULL, run_after = ").now()
    } else {
        Sql::new(b, "UPDATE cog_task_run SET status = ").bind(RunStatus::Canceled).push(", completed_at = ").bind(now).push(", lease_until = NULL")
    };
    let n =
        sql.push(" WHERE id = ").bind(task_run_id).push(" AND attempt = ").bind(attempt).push(" AND status = ").bind(RunStatus::Running).execute(conn).await?;
    Ok(n > 0)
}

/// A `cog_error` row to write.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ErrorRow<'a> {
    pub(crate) task_run_id: i64,
    pub(crate) attempt: i32,
    pub(crate) error_type: &'a str,
    pub(crate) message: &'a str,
    pub(crate) backtrace: Option<&'a str>,
    pub(crate) created_at: DateTime<Utc>,
}

/// Writes one `cog_error` row.
pub(crate) async fn insert_error(conn: &impl ConnectionTrait, row: ErrorRow<'_>) -> Result<(), DbErr> {
    Sql::new(Backend::of(conn)?, "INSERT INTO cog_error (task_run_id, attempt, error_type, message, backtrace, created_at) VALUES (")
        .bind_list([
            Value::from(row.task_run_id),
            row.attempt.into(),
            row.error_type.into(),
            row.message.into(),
            row.backtrace.map(str::to_owned).into(),
            row.created_at.into(),
        ])
        .push(")")
        .execute(conn)
        .await?;
    Ok(())
}
