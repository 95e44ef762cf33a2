//! Leases: renewing this process's claims, hearing of cancels from other processes, and
//! reclaiming task runs whose worker stopped renewing (DESIGN invariant 7).

use std::sync::Arc;

use crate::engine::claim;
use crate::engine::finish::{self, Outcome, RetryPolicy};
use crate::error::{TaskError, TaskErrorKind};
use crate::runtime::Inner;
use crate::store::leases;

/// Renews the leases of this worker's running task runs every heartbeat interval, and tells
/// cogs whose run was canceled elsewhere.
pub(crate) async fn heartbeat_loop(inner: Arc<Inner>) {
    loop {
        tokio::select! {
            _ = inner.stopped.cancelled() => break,
            _ = tokio::time::sleep(inner.config.heartbeat_interval) => {}
        }
        let held: Vec<i64> = inner.running.lock().unwrap_or_else(|e| e.into_inner()).keys().copied().collect();
        if held.is_empty() {
            continue;
        }
        if let Err(e) = renew(&inner, &held).await {
            tracing::warn!(error = %e, "could not renew leases; retrying at the next heartbeat");
            continue;
        }
        match leases::canceled_runs_of(&inner.db, &inner.worker_id).await {
            Ok(runs) => {
                for run_id in runs {
                    inner.cancel_running(run_id);
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not look for canceled runs; retrying at the next heartbeat"),
        }
    }
}

/// Renews the leases of the task runs this process is executing — only those: a row this
/// worker claimed but no longer runs must be able to expire. On PostgreSQL rows being
/// finished right now are skipped (they need no renewal, and waiting for them could deadlock).
async fn renew(inner: &Inner, held: &[i64]) -> Result<u64, sea_orm::DbErr> {
    leases::renew(&inner.db, &inner.worker_id, held, inner.config.lease_duration).await
}

/// Every half lease, fails (or queues for retry) the task runs whose lease expired.
pub(crate) async fn reclaim_loop(inner: Arc<Inner>) {
    let period = inner.config.lease_duration / 2;
    loop {
        if let Err(e) = reclaim_expired(&inner).await {
            tracing::warn!(error = %e, "could not reclaim expired task runs; retrying");
        }
        tokio::select! {
            _ = inner.stop_claiming.cancelled() => break,
            _ = tokio::time::sleep(period) => {}
        }
    }
}

/// One pass of [`reclaim_loop`]; returns how many task runs it took over.
pub(crate) async fn reclaim_expired(inner: &Arc<Inner>) -> Result<usize, sea_orm::DbErr> {
    let policy = RetryPolicy { base: inner.config.retry_backoff_base, cap: inner.config.retry_backoff_cap };
    let expired = claim::expired(&inner.db, 100).await?;
    let mut taken = 0;
    for task in expired {
        let error = TaskError {
            kind: TaskErrorKind::LeaseExpired,
            error_type: "lease_expired".into(),
            message: format!(
                "worker `{}` stopped renewing its lease on attempt {} (it crashed or hung)",
                task_worker(inner, task.task_run_id).await,
                task.attempt
            ),
            backtrace: None,
        };
        let (finished, effects) = finish::finish(&inner.db, &task, &Outcome::Failure(error), policy).await?;
        if finished != finish::Finished::Stale {
            taken += 1;
            tracing::warn!(task.run = task.task_run_id, attempt = task.attempt, outcome = ?finished, "reclaimed a task run whose lease expired");
        }
        inner.apply(task.pipeline_run_id, effects);
    }
    Ok(taken)
}

/// The worker named on a task run, for messages.
async fn task_worker(inner: &Inner, task_run_id: i64) -> String {
    match leases::worker_of(&inner.db, task_run_id).await {
        Ok(worker) => worker.unwrap_or_else(|| "?".to_owned()),
        Err(e) => format!("? (could not read it: {e})"),
    }
}
