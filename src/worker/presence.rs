//! The worker's presence: registered in `cog_worker` (with the cogs it carries) when the
//! runtime starts, renewed every heartbeat, removed on shutdown.

use std::sync::Arc;

use crate::runtime::Inner;
use crate::store::now;
use crate::store::presence::{self as sync, WorkerRecord};

/// This runtime's registration record.
fn record(inner: &Inner) -> WorkerRecord<'_> {
    WorkerRecord {
        name: &inner.worker_id,
        queues: &inner.queues,
        alive_for: chrono::TimeDelta::from_std(inner.config.lease_duration).unwrap_or(chrono::TimeDelta::days(365)),
    }
}

/// Registers this worker, then renews it every heartbeat interval until the runtime stops.
pub(crate) async fn presence_loop(inner: Arc<Inner>) {
    let mut id: Option<i64> = None;
    loop {
        let result = match id {
            None => sync::register(&inner.db, &record(&inner), now()).await.map(|new| {
                tracing::debug!(worker = %inner.worker_id, "registered the worker and its cogs");
                id = Some(new);
            }),
            Some(current) => sync::heartbeat(&inner.db, current, record(&inner).alive_for, now()).await.map(|renewed| {
                if !renewed {
                    tracing::warn!(worker = %inner.worker_id, "the worker's registration was gone (a long stall?); registering again");
                    id = None;
                }
            }),
        };
        *inner.worker_row.lock().unwrap_or_else(|e| e.into_inner()) = id;
        // Registered (or failed): next beat in a heartbeat; a registration found gone is redone at once.
        let pause = match result {
            Err(e) => {
                tracing::warn!(worker = %inner.worker_id, error = %e, "could not record the worker's presence; retrying at the next heartbeat");
                inner.config.heartbeat_interval
            }
            Ok(()) if id.is_none() => std::time::Duration::ZERO,
            Ok(()) => inner.config.heartbeat_interval,
        };
        tokio::select! {
            _ = inner.stopped.cancelled() => break,
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

/// Removes this worker's registration (after its loops stopped).
pub(crate) async fn deregister(inner: &Inner) {
    let id = inner.worker_row.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(id) = id
        && let Err(e) = sync::deregister(&inner.db, id, now()).await
    {
        tracing::error!(worker = %inner.worker_id, error = %e, "could not remove the worker's registration; it expires after its lease");
    }
}
