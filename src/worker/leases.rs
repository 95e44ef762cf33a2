//! Leases: renewing this process's claims, hearing of cancels from other processes, and
//! reclaiming task runs whose worker stopped renewing (DESIGN invariant 7).

use std::sync::Arc;

use super::Worker;
use crate::engine::claim;
use crate::engine::finish::{self, Outcome};
use crate::error::{TaskError, TaskErrorKind};
use crate::store::leases;

/// Renews the leases of this worker's running task runs every heartbeat interval, and tells
/// cogs whose run was canceled elsewhere.
pub(crate) async fn heartbeat_loop(worker: Arc<Worker>) {
    loop {
        tokio::select! {
            _ = worker.stopped.cancelled() => break,
            _ = tokio::time::sleep(worker.config.heartbeat_interval) => {}
        }
        worker.health.checkpoint("heartbeat");
        let held = worker.running_ids();
        if held.is_empty() {
            continue;
        }
        if let Err(e) = renew(&worker, &held).await {
            tracing::warn!(error = %e, "could not renew leases; retrying at the next heartbeat");
            worker.health.pass("heartbeat", Err(e));
            continue;
        }
        match leases::canceled_runs_of(&worker.db, &worker.worker_id).await {
            Ok(runs) => {
                for run_id in runs {
                    worker.cancel_running(run_id);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not look for canceled runs; retrying at the next heartbeat");
                worker.health.pass("heartbeat", Err(e));
                continue;
            }
        }
        worker.health.pass::<&str>("heartbeat", Ok(()));
    }
}

/// Renews the leases of the task runs this process is executing — only those: a row this
/// worker claimed but no longer runs must be able to expire. On PostgreSQL rows being
/// finished right now are skipped (they need no renewal, and waiting for them could deadlock).
async fn renew(worker: &Worker, held: &[i64]) -> Result<u64, sea_orm::DbErr> {
    leases::renew(&worker.db, &worker.worker_id, held, worker.config.lease_duration).await
}

/// Every half lease, fails (or queues for retry) the task runs whose lease expired.
pub(crate) async fn reclaim_loop(worker: Arc<Worker>) {
    let period = worker.config.lease_duration / 2;
    loop {
        worker.health.checkpoint("reclaim");
        let result = reclaim_expired(&worker).await.map(|_| ());
        if let Err(e) = &result {
            tracing::warn!(error = %e, "could not reclaim expired task runs; retrying");
        }
        worker.health.pass("reclaim", result);
        tokio::select! {
            _ = worker.stop_claiming.cancelled() => break,
            _ = tokio::time::sleep(period) => {}
        }
    }
}

/// One pass of [`reclaim_loop`]; returns how many task runs it took over.
pub(crate) async fn reclaim_expired(worker: &Arc<Worker>) -> Result<usize, sea_orm::DbErr> {
    let policy = worker.retry_policy();
    // A task run this process is still running is not taken from it: its lease ran out while
    // the database was unreachable, and the heartbeat renews it now that it is back.
    let expired: Vec<_> = claim::expired(&worker.db, 100).await?.into_iter().filter(|t| !worker.is_tracked(t.task_run_id, t.attempt)).collect();
    let mut taken = 0;
    // One task run that cannot be taken over holds back none of the others: each failure is
    // logged, and the first is returned once all were tried (shown in health).
    let mut first_error = None;
    for task in expired {
        let error = TaskError {
            kind: TaskErrorKind::LeaseExpired,
            error_type: "lease_expired".into(),
            message: format!(
                "worker `{}` stopped renewing its lease on attempt {} (it crashed or hung)",
                task_worker(worker, task.task_run_id).await,
                task.attempt
            ),
            backtrace: None,
        };
        let (finished, effects) = match finish::finish(&worker.db, &task, &Outcome::Failure(error), policy).await {
            Ok(written) => written,
            Err(e) => {
                tracing::warn!(task.run = task.task_run_id, attempt = task.attempt, error = %e, "could not take over a task run whose lease expired; trying again at the next pass");
                first_error.get_or_insert(e);
                continue;
            }
        };
        if finished != finish::Finished::Stale {
            taken += 1;
            tracing::warn!(task.run = task.task_run_id, attempt = task.attempt, outcome = ?finished, "reclaimed a task run whose lease expired");
        }
        worker.signals.apply(effects);
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(taken),
    }
}

/// The worker named on a task run, for messages.
async fn task_worker(worker: &Worker, task_run_id: i64) -> String {
    match leases::worker_of(&worker.db, task_run_id).await {
        Ok(worker) => worker.unwrap_or_else(|| "?".to_owned()),
        Err(e) => format!("? (could not read it: {e})"),
    }
}
