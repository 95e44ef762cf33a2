//! Hearing other processes on MySQL, which has no `LISTEN/NOTIFY`: a cheap change counter,
//! polled every [`WATCH_INTERVAL`].
//!
//! The counter is the newest task run id (`MAX(id)` of `cog_task_run`, read from the end of the
//! primary key without touching a row) with the queues' versions (bumped by every pause and
//! resume). It grows whenever any process starts a stage or resumes a queue, and then idle
//! workers are woken: a task queued by another process starts within about one interval. Retries and given-back task runs (no new id) are found by the idle worker's own
//! look at `run_after`; cancels made elsewhere reach running cogs at the next
//! [`CANCEL_CHECK`]; `RunHandle::wait` polls on its own. In-process events never wait for any
//! of this: they go through the runtime's own signals.

use std::sync::Arc;
use std::time::Duration;

use super::Worker;
use crate::engine::finish::backoff;
use crate::store::{leases, queues};

/// How often the counter is read.
pub(crate) const WATCH_INTERVAL: Duration = Duration::from_millis(10);

/// How often this process looks for canceled runs among the task runs it runs.
const CANCEL_CHECK: Duration = Duration::from_millis(250);

/// Watches until the runtime stops. A pass that fails (reading the counter, or looking for
/// canceled runs) shows the loop failing in health; the next pass without a failure shows it
/// running again.
pub(crate) async fn watch_loop(worker: Arc<Worker>) {
    let mut seen: Option<queues::Changes> = None;
    let mut failures = 0;
    let mut failing = false;
    let mut next_cancel_check = tokio::time::Instant::now();
    loop {
        worker.health.checkpoint("listener");
        let pause = if failures == 0 { WATCH_INTERVAL } else { backoff(Duration::from_millis(100), Duration::from_secs(10), failures) };
        tokio::select! {
            _ = worker.stopped.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
        let mut error = None;
        match queues::changes(&worker.db).await {
            Ok(changes) => {
                if failures > 0 {
                    tracing::info!("watching for cog events again");
                }
                failures = 0;
                if changes != seen {
                    seen = changes;
                    worker.signals.wake.notify_waiters();
                }
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %e, "could not watch for cog events; polling meanwhile");
                error = Some(format!("could not watch for cog events (polling meanwhile): {e}"));
            }
        }
        if error.is_none() && tokio::time::Instant::now() >= next_cancel_check {
            next_cancel_check = tokio::time::Instant::now() + CANCEL_CHECK;
            if worker.is_busy() {
                match leases::canceled_runs_of(&worker.db, &worker.worker_id).await {
                    Ok(runs) => runs.into_iter().for_each(|run_id| worker.cancel_running(run_id)),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not look for canceled runs; looking again shortly");
                        error = Some(format!("could not look for canceled runs (looking again shortly): {e}"));
                    }
                }
            }
        }
        // The counter was read once (or could not be): from here on this process hears what
        // others do, or polls.
        worker.tried_hearing();
        match error {
            Some(e) => {
                failing = true;
                worker.health.pass("listener", Err(e));
            }
            None if failing => {
                failing = false;
                worker.health.pass::<&str>("listener", Ok(()));
            }
            None => {}
        }
    }
}
