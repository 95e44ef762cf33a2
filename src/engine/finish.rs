//! Ending one attempt of a task run: completed, queued again for a retry, or failed, and
//! whatever that means for its stage and pipeline run. Fenced by attempt number.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, DbErr, TransactionTrait};
use serde_json::Value;

use super::claim::Claimed;
use super::{Effects, advance};
use crate::db::{execute, lock_run, notify, now, query_all, query_one};
use crate::error::TaskError;

/// How an attempt ended.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    /// The cog returned this value.
    Success(Value),
    /// The attempt failed.
    Failure(TaskError),
}

/// What [`finish`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Finished {
    /// The task run is `completed`.
    Completed,
    /// The attempt failed and another one is queued.
    Retrying,
    /// The task run is `failed`.
    Failed,
    /// The attempt no longer owned the task run (its lease was taken over, or it was released):
    /// nothing was written.
    Stale,
}

/// Retry back-off: `base * 2^(attempt-1)`, at most `cap`.
pub(crate) fn backoff(base: Duration, cap: Duration, attempt: i32) -> Duration {
    let exponent = attempt.saturating_sub(1).clamp(0, 30) as u32;
    base.saturating_mul(1u32 << exponent).min(cap)
}

/// Retry settings for [`finish`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryPolicy {
    pub(crate) base: Duration,
    pub(crate) cap: Duration,
}

/// Records how attempt `task.attempt` of `task` ended and moves its run forward.
pub(crate) async fn finish(db: &DatabaseConnection, task: &Claimed, outcome: &Outcome, retry: RetryPolicy) -> Result<(Finished, Effects), DbErr> {
    let (finished, effects) = finish_batch(db, &[(task, outcome)], retry).await?;
    Ok((finished[0], effects))
}

/// Records the ends of several attempts of task runs of **one** pipeline run in one
/// transaction (one lock, one commit), then moves the run forward once. Returns what happened
/// to each, in order.
pub(crate) async fn finish_batch(db: &DatabaseConnection, items: &[(&Claimed, &Outcome)], retry: RetryPolicy) -> Result<(Vec<Finished>, Effects), DbErr> {
    let Some((first, _)) = items.first() else { return Ok((Vec::new(), Effects::default())) };
    let run_id = first.pipeline_run_id;
    debug_assert!(items.iter().all(|(t, _)| t.pipeline_run_id == run_id), "a batch holds task runs of one pipeline run");
    let txn = db.begin().await?;
    let Some(run_status) = lock_run(&txn, run_id).await? else {
        return Ok((vec![Finished::Stale; items.len()], Effects::default()));
    };
    let now = now();
    let mut run_going = run_status == "running";
    let mut effects = Effects::default();
    let mut finished = Vec::with_capacity(items.len());
    let mut touched_stage_runs: Vec<i64> = Vec::new();
    // Successes first, all in one statement; then failures one by one (they are rare).
    let completed = record_successes(&txn, items, now).await?;
    for (task, outcome) in items {
        let result = match outcome {
            Outcome::Success(_) if completed.contains(&task.task_run_id) => Finished::Completed,
            Outcome::Success(_) => Finished::Stale,
            Outcome::Failure(_) => record_attempt(&txn, task, outcome, run_going, retry, now).await?,
        };
        match result {
            Finished::Stale => {}
            Finished::Retrying => effects.queued_work = true,
            Finished::Failed if task.critical && run_going => {
                effects = effects.merge(advance::end_run(&txn, run_id, "failed", Some(task.stage_run_id), now).await?);
                run_going = false;
            }
            _ => {
                if !touched_stage_runs.contains(&task.stage_run_id) {
                    touched_stage_runs.push(task.stage_run_id);
                }
            }
        }
        finished.push(result);
    }
    if run_going {
        for stage_run_id in touched_stage_runs {
            effects = effects.merge(stage_may_be_done(&txn, run_id, stage_run_id, now).await?);
        }
    } else {
        effects = effects.merge(advance::settle(&txn, run_id, now).await?);
    }
    txn.commit().await?;
    Ok((finished, effects))
}

/// Rows per multi-row statement (larger statements were slower on SQLite).
const ROWS_PER_STATEMENT: usize = 50;

/// Marks the successful attempts among `items` `completed` with their results, a statement
/// per 50 of them, fenced by attempt number; returns the ids of the task runs it completed.
async fn record_successes(txn: &sea_orm::DatabaseTransaction, items: &[(&Claimed, &Outcome)], now: DateTime<Utc>) -> Result<Vec<i64>, DbErr> {
    let successes: Vec<(&Claimed, &Value)> = items
        .iter()
        .filter_map(|(task, outcome)| match outcome {
            Outcome::Success(value) => Some((*task, value)),
            Outcome::Failure(_) => None,
        })
        .collect();
    let mut completed = Vec::with_capacity(successes.len());
    for chunk in successes.chunks(ROWS_PER_STATEMENT) {
        let mut values: Vec<sea_orm::Value> = vec![now.into()];
        let mut rows = Vec::with_capacity(chunk.len());
        for (task, value) in chunk {
            let n = values.len();
            rows.push(format!("(${}, ${}, ${}, ${})", n + 1, n + 2, n + 3, n + 4));
            let duration_ms = task.started_at.map(|s| (now - s).num_milliseconds().max(0)).unwrap_or(0);
            values.extend([task.task_run_id.into(), task.attempt.into(), duration_ms.into(), value.to_string().into()]);
        }
        let sql = format!(
            "WITH v (id, attempt, duration_ms, result) AS (VALUES {}) \
             UPDATE cog_task_run SET status = 'completed', completed_at = $1, duration_ms = v.duration_ms, result = v.result, error = NULL, lease_until = NULL \
             FROM v WHERE cog_task_run.id = v.id AND cog_task_run.attempt = v.attempt AND cog_task_run.status = 'running' RETURNING cog_task_run.id",
            rows.join(", ")
        );
        for row in query_all(txn, &sql, values).await? {
            completed.push(row.try_get_by_index::<i64>(0)?);
        }
    }
    Ok(completed)
}

/// Writes one attempt's end on its task run, fenced by attempt number: `completed`, queued
/// again for a retry (when retries are left and the run goes on), or `failed`.
async fn record_attempt(
    txn: &sea_orm::DatabaseTransaction,
    task: &Claimed,
    outcome: &Outcome,
    run_going: bool,
    retry: RetryPolicy,
    now: DateTime<Utc>,
) -> Result<Finished, DbErr> {
    match outcome {
        Outcome::Success(value) => {
            let duration_ms = task.started_at.map(|s| (now - s).num_milliseconds().max(0));
            let n = execute(
                txn,
                "UPDATE cog_task_run SET status = 'completed', completed_at = $1, duration_ms = $2, result = $3, lease_until = NULL \
                 WHERE id = $4 AND attempt = $5 AND status = 'running'",
                [now.into(), duration_ms.into(), value.to_string().into(), task.task_run_id.into(), task.attempt.into()],
            )
            .await?;
            Ok(if n == 0 { Finished::Stale } else { Finished::Completed })
        }
        Outcome::Failure(error) => {
            let retry_left = error.kind.retryable() && task.attempt <= task.max_retries && run_going;
            // A takeover is written only if the lease is still expired now: a worker that
            // renewed it in the meantime keeps its task run.
            let takeover = error.kind == crate::error::TaskErrorKind::LeaseExpired;
            let lease_expired = if takeover { " AND lease_until < $5" } else { "" };
            let fenced = |mut values: Vec<sea_orm::Value>| {
                if takeover {
                    values.push(now.into());
                }
                values
            };
            let n = if retry_left {
                let run_after = now + backoff(retry.base, retry.cap, task.attempt);
                execute(
                    txn,
                    &format!(
                        "UPDATE cog_task_run SET status = 'queued', worker = NULL, lease_until = NULL, run_after = $1, error = $2 \
                         WHERE id = $3 AND attempt = $4 AND status = 'running'{lease_expired}"
                    ),
                    fenced(vec![run_after.into(), error.to_string().into(), task.task_run_id.into(), task.attempt.into()]),
                )
                .await?
            } else {
                execute(
                    txn,
                    &format!(
                        "UPDATE cog_task_run SET status = 'failed', completed_at = $1, error = $2, lease_until = NULL \
                         WHERE id = $3 AND attempt = $4 AND status = 'running'{lease_expired}"
                    ),
                    fenced(vec![now.into(), error.to_string().into(), task.task_run_id.into(), task.attempt.into()]),
                )
                .await?
            };
            if n == 0 {
                return Ok(Finished::Stale);
            }
            record_error(txn, task.task_run_id, task.attempt, error, now).await?;
            if retry_left {
                notify(txn, "work").await?;
                return Ok(Finished::Retrying);
            }
            Ok(Finished::Failed)
        }
    }
}

/// Completes stage run `stage_run_id` if none of its task runs is queued or running, then fans in.
async fn stage_may_be_done(txn: &sea_orm::DatabaseTransaction, run_id: i64, stage_run_id: i64, now: DateTime<Utc>) -> Result<Effects, DbErr> {
    let done = query_one(
        txn,
        "UPDATE cog_stage_run SET status = 'completed', completed_at = $1 WHERE id = $2 AND status = 'running' \
         AND NOT EXISTS (SELECT 1 FROM cog_task_run WHERE stage_run_id = $2 AND status IN ('queued', 'running')) RETURNING stage_id",
        [now.into(), stage_run_id.into()],
    )
    .await?;
    match done {
        Some(row) => advance::stages_completed(txn, run_id, vec![row.try_get_by_index(0)?], now).await,
        None => Ok(Effects::default()),
    }
}

/// Writes a `cog_error` row for one failed attempt.
pub(crate) async fn record_error(
    conn: &impl sea_orm::ConnectionTrait,
    task_run_id: i64,
    attempt: i32,
    error: &TaskError,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    execute(
        conn,
        "INSERT INTO cog_error (task_run_id, attempt, error_type, message, backtrace, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        [task_run_id.into(), attempt.into(), error.error_type.as_str().into(), error.message.as_str().into(), error.backtrace.clone().into(), now.into()],
    )
    .await?;
    Ok(())
}

/// Gives a claimed task run back without counting it as a failure (graceful shutdown past
/// its deadline): queued again if its run goes on, `canceled` otherwise.
pub(crate) async fn release(db: &DatabaseConnection, task: &Claimed) -> Result<Effects, DbErr> {
    let txn = db.begin().await?;
    let Some(run_status) = lock_run(&txn, task.pipeline_run_id).await? else { return Ok(Effects::default()) };
    let now = now();
    let effects = if run_status == "running" {
        execute(
            &txn,
            "UPDATE cog_task_run SET status = 'queued', worker = NULL, lease_until = NULL, run_after = $1 WHERE id = $2 AND attempt = $3 AND status = 'running'",
            [now.into(), task.task_run_id.into(), task.attempt.into()],
        )
        .await?;
        notify(&txn, "work").await?;
        Effects { queued_work: true, run_ended: false }
    } else {
        execute(
            &txn,
            "UPDATE cog_task_run SET status = 'canceled', completed_at = $1, lease_until = NULL WHERE id = $2 AND attempt = $3 AND status = 'running'",
            [now.into(), task.task_run_id.into(), task.attempt.into()],
        )
        .await?;
        advance::settle(&txn, task.pipeline_run_id, now).await?
    };
    txn.commit().await?;
    Ok(effects)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let (base, cap) = (Duration::from_secs(1), Duration::from_secs(10));
        assert_eq!(backoff(base, cap, 1), Duration::from_secs(1));
        assert_eq!(backoff(base, cap, 2), Duration::from_secs(2));
        assert_eq!(backoff(base, cap, 4), Duration::from_secs(8));
        assert_eq!(backoff(base, cap, 5), Duration::from_secs(10));
        assert_eq!(backoff(base, cap, 500), Duration::from_secs(10));
    }
}
