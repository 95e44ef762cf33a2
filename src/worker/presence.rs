//! The worker's presence: registered in `cog_worker` (with the cogs it carries) when the
//! runtime starts, renewed every heartbeat, removed on shutdown.

use std::sync::Arc;

use super::Worker;
use crate::store::now;
use crate::store::presence::{self as sync, WorkerRecord};

/// This runtime's registration record.
fn record(worker: &Worker) -> WorkerRecord<'_> {
    WorkerRecord {
        name: &worker.worker_id,
        queues: &worker.queues,
        alive_for: chrono::TimeDelta::from_std(worker.config.lease_duration).unwrap_or(chrono::TimeDelta::days(365)),
    }
}

/// Registers this worker, then renews it every heartbeat interval until the runtime stops.
pub(crate) async fn presence_loop(worker: Arc<Worker>) {
    let mut id: Option<i64> = None;
    loop {
        worker.health.checkpoint("presence");
        let result = match id {
            None => sync::register(&worker.db, &record(&worker), now()).await.map(|new| {
                tracing::debug!(worker = %worker.worker_id, "registered the worker and its cogs");
                id = Some(new);
                worker.registered.send_replace(true);
            }),
            Some(current) => sync::heartbeat(&worker.db, current, record(&worker).alive_for, now()).await.map(|renewed| {
                if !renewed {
                    tracing::warn!(worker = %worker.worker_id, "the worker's registration was gone (a long stall?); registering again");
                    id = None;
                }
            }),
        };
        *worker.worker_row.lock().unwrap_or_else(|e| e.into_inner()) = id;
        // Registered (or failed): next beat in a heartbeat; a registration found gone is redone at once.
        let pause = match &result {
            Err(e) => {
                tracing::warn!(worker = %worker.worker_id, error = %e, "could not record the worker's presence; retrying at the next heartbeat");
                worker.config.heartbeat_interval
            }
            Ok(()) if id.is_none() => std::time::Duration::ZERO,
            Ok(()) => worker.config.heartbeat_interval,
        };
        worker.health.pass("presence", result);
        tokio::select! {
            _ = worker.stopped.cancelled() => break,
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

/// Removes this worker's registration (after its loops stopped).
pub(crate) async fn deregister(worker: &Worker) {
    let id = worker.worker_row.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(id) = id
        && let Err(e) = sync::deregister(&worker.db, id, now()).await
    {
        tracing::error!(worker = %worker.worker_id, error = %e, "could not remove the worker's registration; it expires after its lease");
    }
}
