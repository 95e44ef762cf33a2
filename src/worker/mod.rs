//! The worker: claims queued task runs (heaviest first) up to the runtime's concurrency,
//! runs them, records their outcomes, keeps their leases, and drains on shutdown. [`Worker`]
//! holds its state; the runtime owns one.

pub(crate) mod completions;
mod dispatch;
mod execute;
mod fill;
pub(crate) mod leases;
pub(crate) mod listener;
pub(crate) mod presence;
mod state;
mod untrack;
mod watcher;

use std::sync::Arc;
use std::time::Duration;

pub(crate) use state::Worker;

use crate::engine::{claim, finish};
use crate::store::{claims, now};

/// Most task runs claimed by one statement.
const MAX_BATCH: usize = 256;

/// Claims task runs until shutdown, as many at a time as there is room for (free slots plus
/// the prefetch), and starts each (it waits for a slot if prefetched).
pub(crate) async fn claim_loop(worker: Arc<Worker>) {
    // The permits outlive a restart of this loop: task runs started before a panic still hold theirs.
    let permits = Arc::clone(&worker.claim_room);
    let mut failures: u32 = 0;
    // After a claim that found nothing, the next one takes no more than the free slots: work
    // arriving at an idle worker starts after a small claim (a claim's cost grows with its
    // rows), and the prefetch fills up with the claims that follow at once.
    let mut idle = true;
    loop {
        worker.health.checkpoint("claim");
        let first = tokio::select! {
            biased;
            _ = worker.stop_claiming.cancelled() => break,
            p = Arc::clone(&permits).acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let most = if idle { worker.permits.available_permits().clamp(1, MAX_BATCH) } else { MAX_BATCH };
        let mut batch = vec![first];
        while batch.len() < most {
            match Arc::clone(&permits).try_acquire_owned() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let notified = worker.signals.wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        match claim::claim(&worker.work, &worker.worker_id, &worker.queues, batch.len(), worker.config.lease_duration).await {
            Ok(claimed) if !claimed.is_empty() => {
                failures = 0;
                idle = false;
                worker.health.pass::<&str>("claim", Ok(()));
                let claimed: Vec<_> = claimed.into_iter().zip(batch.drain(..)).collect();
                dispatch::spawn_dispatch(&worker, claimed);
            }
            Ok(_) => {
                drop(batch);
                failures = 0;
                idle = true;
                worker.health.pass::<&str>("claim", Ok(()));
                let pause = idle_pause(&worker).await;
                tokio::select! {
                    biased;
                    _ = worker.stop_claiming.cancelled() => break,
                    _ = &mut notified => {}
                    _ = tokio::time::sleep(pause) => {}
                }
            }
            Err(e) => {
                drop(batch);
                failures += 1;
                let pause = finish::backoff(Duration::from_millis(100), Duration::from_secs(10), failures as i32);
                tracing::warn!(error = %e, retry_in = ?pause, "could not claim task runs; retrying");
                worker.health.pass("claim", Err(e));
                tokio::select! {
                    biased;
                    _ = worker.stop_claiming.cancelled() => break,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
}

/// Room for a claim chained to a launch's or an outcome's transaction (`engine::claim::Chain`);
/// none unless the worker has started and is still claiming.
///
/// `Chained::Outcome`: all the claim room free now (free slots and prefetch, at most a
/// claim's), as the claim loop of a busy worker takes, so a run's next stage goes on where
/// its last one ended, whole: with room for the free slots only, a stage wider than them
/// was split across processes, each part its own claim and outcome transactions (workload C,
/// stages of 100 on 4 processes with a prefetch of 224: 5,300–5,500 → 7,700–8,600 tasks/s,
/// PostgreSQL CPU 170–180 → 90–100 µs per task). `Chained::Launch`: free slots, and only when no task runs here
/// ([`Worker::is_idle`]) — a busy process leaves a new run to the claim loops of all
/// (measured with 50 runs launched at once by a process working with 3 others: launches
/// that chained whenever a slot was free made it take most first stages while the others
/// idled, 10 % fewer tasks per second).
pub(crate) fn room_for_chained_claim(worker: &Worker, chained: Chained) -> Vec<tokio::sync::OwnedSemaphorePermit> {
    if !worker.is_claiming() {
        return Vec::new();
    }
    let free = worker.permits.available_permits();
    let most = match chained {
        Chained::Outcome => MAX_BATCH,
        Chained::Launch if worker.is_idle() => free.min(MAX_BATCH),
        Chained::Launch => 0,
    };
    std::iter::from_fn(|| Arc::clone(&worker.claim_room).try_acquire_owned().ok()).take(most).collect()
}

/// What a claim is chained to (see [`room_for_chained_claim`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chained {
    /// A launch's transaction.
    Launch,
    /// An outcome's transaction that started a stage.
    Outcome,
}

/// A worker's room for one chained claim (`engine::claim::Room`): reserved by
/// [`room_for_chained_claim`], and given to the task runs the claim took when they start
/// (what is left over is given back then, or when this is dropped or [`give_back`] called).
///
/// [`give_back`]: ChainRoom::give_back
pub(crate) struct ChainRoom<'w> {
    worker: &'w Arc<Worker>,
    chained: Chained,
    permits: std::sync::Mutex<Vec<tokio::sync::OwnedSemaphorePermit>>,
}

impl<'w> ChainRoom<'w> {
    /// Room in `worker` for a claim chained to `chained`, none reserved yet.
    pub(crate) fn new(worker: &'w Arc<Worker>, chained: Chained) -> ChainRoom<'w> {
        ChainRoom { worker, chained, permits: std::sync::Mutex::new(Vec::new()) }
    }

    /// Gives the reserved room back (the claim loop and other writers may use it meanwhile).
    pub(crate) fn give_back(&self) {
        self.permits().clear();
    }

    fn permits(&self) -> std::sync::MutexGuard<'_, Vec<tokio::sync::OwnedSemaphorePermit>> {
        self.permits.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl claim::Room for ChainRoom<'_> {
    fn reserve(&self) -> usize {
        let permits = room_for_chained_claim(self.worker, self.chained);
        let room = permits.len();
        *self.permits() = permits;
        room
    }

    fn start(&self, claimed: Vec<claim::Claimed>) {
        let mut room = std::mem::take(&mut *self.permits());
        if claimed.is_empty() {
            return;
        }
        let claimed = claimed.into_iter().zip(room.drain(..)).collect();
        dispatch::spawn_dispatch(self.worker, claimed);
    }
}

/// How long an idle worker sleeps: until the next retry becomes due, at most the poll interval.
async fn idle_pause(worker: &Worker) -> Duration {
    let poll = worker.config.poll_interval;
    match claims::next_due_planned(&worker.work, &worker.queues).await {
        Ok(Some(at)) => (at - now()).to_std().unwrap_or(Duration::ZERO).clamp(Duration::from_millis(1), poll),
        Ok(None) => poll,
        Err(e) => {
            tracing::debug!(error = %e, "could not read when the next retry is due; polling");
            poll
        }
    }
}

/// Starts the worker's loops, each supervised (restarted after a panic): claiming, writing
/// outcomes, renewing leases, reclaiming expired ones, presence, and hearing other processes.
pub(crate) fn start(worker: &Arc<Worker>) {
    let mut loops = Vec::new();
    let spawn = |name: &'static str, stop: &tokio_util::sync::CancellationToken, f: fn(Arc<Worker>) -> futures::future::BoxFuture<'static, ()>| {
        let w = Arc::clone(worker);
        crate::supervisor::supervise(name, Arc::clone(&worker.health), stop.clone(), move || f(Arc::clone(&w)))
    };
    if let Some(rx) = worker.take_completions_rx() {
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let w = Arc::clone(worker);
        loops.push(crate::supervisor::supervise("completions", Arc::clone(&worker.health), worker.stopped.clone(), move || {
            completions::completion_loop(Arc::clone(&w), Arc::clone(&rx))
        }));
    }
    let claim = spawn("claim", &worker.stop_claiming, |w| Box::pin(claim_loop(w)));
    loops.push(spawn("heartbeat", &worker.stopped, |w| Box::pin(leases::heartbeat_loop(w))));
    loops.push(spawn("presence", &worker.stopped, |w| Box::pin(presence::presence_loop(w))));
    loops.push(spawn("reclaim", &worker.stop_claiming, |w| Box::pin(leases::reclaim_loop(w))));
    loops.push(spawn("fill", &worker.stop_claiming, |w| Box::pin(fill::fill_loop(w))));
    loops.push(spawn("listener", &worker.stopped, |w| Box::pin(listener::listen_loop(w))));
    worker.set_loops(claim, loops);
}

/// Stops claiming, waits for running task runs up to the shutdown timeout, gives back the
/// ones still running, and stops the background loops.
pub(crate) async fn shutdown(worker: &Arc<Worker>) {
    worker.stop_claiming.cancel();
    // A claim in progress either finishes (and its task runs are tracked) or is dropped
    // before this returns; only then is the set of running task runs final.
    let (claim_loop, loops) = worker.take_loops();
    if let Some(claim_loop) = claim_loop
        && let Err(e) = claim_loop.await
    {
        tracing::error!(error = %e, "the claim loop's supervisor ended abnormally");
    }
    worker.tracker.close();
    if tokio::time::timeout(worker.config.shutdown_timeout, worker.tracker.wait()).await.is_err() {
        let left = worker.drain_running();
        tracing::warn!(task_runs = left.len(), "shutdown timeout reached; giving running task runs back to the queue");
        for task in left {
            // Give the task run back first, then stop the cog: once released, whatever the
            // stopped cog's attempt reports (an "aborted" failure, say) is refused as stale
            // instead of failing the task run.
            match finish::release(&worker.db, &task.claimed, worker.learn_weights()).await {
                Ok(effects) => worker.signals.apply(effects),
                Err(e) => tracing::error!(task.run = task.claimed.task_run_id, error = %e, "could not give task run back; its lease will expire"),
            }
            task.cancel.cancel();
            if let Some(abort) = &task.abort {
                abort.abort();
            }
        }
    }
    worker.stopped.cancel();
    for handle in loops {
        if let Err(e) = handle.await {
            tracing::error!(error = %e, "a background loop's supervisor ended abnormally");
        }
    }
    // Once no write is left (the completion loop is done): what the writes carried over their
    // commits is rolled back, and nothing more is carried.
    worker.carried.clear().await;
    presence::deregister(worker).await;
    tracing::info!(worker = %worker.worker_id, "cog worker stopped");
}
