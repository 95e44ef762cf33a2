//! The worker: claims queued task runs (heaviest first) up to the runtime's concurrency,
//! runs them, and drains on shutdown.

pub(crate) mod completions;
mod execute;
pub(crate) mod leases;
pub(crate) mod listener;
pub(crate) mod presence;
mod watcher;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::engine::{claim, finish};
use crate::runtime::Inner;
use crate::store::{claims, now};

/// Most task runs claimed by one statement.
const MAX_BATCH: usize = 64;

/// Claims and starts task runs until shutdown.
pub(crate) async fn claim_loop(inner: Arc<Inner>) {
    let permits = Arc::new(Semaphore::new(inner.concurrency));
    let mut failures: u32 = 0;
    loop {
        let first = tokio::select! {
            biased;
            _ = inner.stop_claiming.cancelled() => break,
            p = Arc::clone(&permits).acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match Arc::clone(&permits).try_acquire_owned() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let notified = inner.wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        match claim::claim(&inner.db, &inner.worker_id, &inner.queues, batch.len(), now(), inner.config.lease_duration).await {
            Ok(claimed) if !claimed.is_empty() => {
                failures = 0;
                for (task, permit) in claimed.into_iter().zip(batch.drain(..)) {
                    let inner = Arc::clone(&inner);
                    inner.tracker.clone().spawn(async move {
                        execute::execute(&inner, task).await;
                        drop(permit);
                    });
                }
            }
            Ok(_) => {
                drop(batch);
                failures = 0;
                let pause = idle_pause(&inner).await;
                tokio::select! {
                    biased;
                    _ = inner.stop_claiming.cancelled() => break,
                    _ = &mut notified => {}
                    _ = tokio::time::sleep(pause) => {}
                }
            }
            Err(e) => {
                drop(batch);
                failures += 1;
                let pause = finish::backoff(Duration::from_millis(100), Duration::from_secs(10), failures as i32);
                tracing::warn!(error = %e, retry_in = ?pause, "could not claim task runs; retrying");
                tokio::select! {
                    biased;
                    _ = inner.stop_claiming.cancelled() => break,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
}

/// How long an idle worker sleeps: until the next retry becomes due, at most the poll interval.
async fn idle_pause(inner: &Inner) -> Duration {
    let poll = inner.config.poll_interval;
    match claims::next_due(&inner.db, &inner.queues).await {
        Ok(Some(at)) => (at - now()).to_std().unwrap_or(Duration::ZERO).clamp(Duration::from_millis(1), poll),
        Ok(None) => poll,
        Err(e) => {
            tracing::debug!(error = %e, "could not read when the next retry is due; polling");
            poll
        }
    }
}

/// Stops claiming, waits for running task runs up to the shutdown timeout, gives back the
/// ones still running, and stops the background loops.
pub(crate) async fn shutdown(inner: &Arc<Inner>) {
    inner.stop_claiming.cancel();
    // A claim in progress either finishes (and its task runs are tracked) or is dropped
    // before this returns; only then is the set of running task runs final.
    let claim_loop = inner.claim_loop.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(claim_loop) = claim_loop {
        let _ = claim_loop.await;
    }
    inner.tracker.close();
    if tokio::time::timeout(inner.config.shutdown_timeout, inner.tracker.wait()).await.is_err() {
        let left: Vec<_> = {
            let mut running = inner.running.lock().unwrap_or_else(|e| e.into_inner());
            running.drain().map(|(_, t)| t).collect()
        };
        tracing::warn!(task_runs = left.len(), "shutdown timeout reached; giving running task runs back to the queue");
        for task in left {
            // Give the task run back first, then stop the cog: once released, whatever the
            // stopped cog's attempt reports (an "aborted" failure, say) is refused as stale
            // instead of failing the task run.
            match finish::release(&inner.db, &task.claimed).await {
                Ok(effects) => inner.apply(task.claimed.pipeline_run_id, effects),
                Err(e) => tracing::error!(task.run = task.claimed.task_run_id, error = %e, "could not give task run back; its lease will expire"),
            }
            task.cancel.cancel();
            if let Some(abort) = &task.abort {
                abort.abort();
            }
        }
    }
    inner.stopped.cancel();
    let loops = inner.loops.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(mut loops) = loops {
        while loops.join_next().await.is_some() {}
    }
    presence::deregister(inner).await;
    crate::scheduler::release_leadership(inner).await;
    tracing::info!(worker = %inner.worker_id, "cog runtime stopped");
}
