//! Ending one attempt of a task run: completed, queued again for a retry, or failed, and
//! whatever that means for its stage and pipeline run. Fenced by attempt number.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, DbErr, TransactionTrait};
use serde_json::Value;

use super::claim::Claimed;
use super::{Effects, advance};
use crate::db::{execute, lock_run, notify, now, query_one};
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
    let txn = db.begin().await?;
    let Some(run_status) = lock_run(&txn, task.pipeline_run_id).await? else {
        return Ok((Finished::Stale, Effects::default()));
    };
    let now = now();
    let run_going = run_status == "running";
    let finished = match outcome {
        Outcome::Success(value) => {
            let duration_ms = task.started_at.map(|s| (now - s).num_milliseconds().max(0));
            let n = execute(
                &txn,
                "UPDATE cog_task_run SET status = 'completed', completed_at = $1, duration_ms = $2, result = $3, lease_until = NULL \
                 WHERE id = $4 AND attempt = $5 AND status = 'running'",
                [now.into(), duration_ms.into(), value.to_string().into(), task.task_run_id.into(), task.attempt.into()],
            )
            .await?;
            if n == 0 { Finished::Stale } else { Finished::Completed }
        }
        Outcome::Failure(error) => {
            let retry_left = error.kind.retryable() && task.attempt <= task.max_retries && run_going;
            let n = if retry_left {
                let run_after = now + backoff(retry.base, retry.cap, task.attempt);
                execute(
                    &txn,
                    "UPDATE cog_task_run SET status = 'queued', worker = NULL, lease_until = NULL, run_after = $1, error = $2 \
                     WHERE id = $3 AND attempt = $4 AND status = 'running'",
                    [run_after.into(), error.to_string().into(), task.task_run_id.into(), task.attempt.into()],
                )
                .await?
            } else {
                execute(
                    &txn,
                    "UPDATE cog_task_run SET status = 'failed', completed_at = $1, error = $2, lease_until = NULL \
                     WHERE id = $3 AND attempt = $4 AND status = 'running'",
                    [now.into(), error.to_string().into(), task.task_run_id.into(), task.attempt.into()],
                )
                .await?
            };
            if n > 0 {
                record_error(&txn, task.task_run_id, task.attempt, error, now).await?;
            }
            match (n, retry_left) {
                (0, _) => Finished::Stale,
                (_, true) => Finished::Retrying,
                (_, false) => Finished::Failed,
            }
        }
    };
    let effects = match finished {
        Finished::Stale => return Ok((Finished::Stale, Effects::default())),
        Finished::Retrying => {
            notify(&txn, "work").await?;
            Effects { queued_work: true, run_ended: false }
        }
        Finished::Failed if task.critical && run_going => advance::end_run(&txn, task.pipeline_run_id, "failed", Some(task.stage_run_id), now).await?,
        _ if run_going => stage_may_be_done(&txn, task, now).await?,
        _ => advance::settle(&txn, task.pipeline_run_id, now).await?,
    };
    txn.commit().await?;
    Ok((finished, effects))
}

/// Completes the task's stage run if none of its task runs is queued or running, then fans in.
async fn stage_may_be_done(txn: &sea_orm::DatabaseTransaction, task: &Claimed, now: DateTime<Utc>) -> Result<Effects, DbErr> {
    let done = query_one(
        txn,
        "UPDATE cog_stage_run SET status = 'completed', completed_at = $1 WHERE id = $2 AND status = 'running' \
         AND NOT EXISTS (SELECT 1 FROM cog_task_run WHERE stage_run_id = $2 AND status IN ('queued', 'running')) RETURNING stage_id",
        [now.into(), task.stage_run_id.into()],
    )
    .await?;
    match done {
        Some(row) => advance::stages_completed(txn, task.pipeline_run_id, vec![row.try_get_by_index(0)?], now).await,
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
