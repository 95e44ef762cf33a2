//! Handing claimed task runs to slots, in claim order (heaviest first): at once while slots
//! are free, else (prefetched, see `Config::prefetch`) as slots free up; giving back the ones
//! that never start.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

use super::Worker;
use super::execute::execute;
use super::state::RunningTask;
use super::untrack::UntrackOnDrop;
use crate::engine::claim::Claimed;
use crate::entity::status::RunStatus;

/// What a started task run holds: its slot (a cog running) and its room among the task runs
/// this worker holds claimed.
pub(crate) type Permits = (OwnedSemaphorePermit, OwnedSemaphorePermit);

/// Spawns the [`dispatch`] of one claim's task runs, with the slots free now for its first ones:
/// taken here, in the order the claims were made, so a task run claimed after a heavier one
/// never takes the slot before it however late the first claim's dispatch runs (the rest wait
/// for slots in the dispatch, behind those already waiting).
pub(super) fn spawn_dispatch(worker: &Arc<Worker>, claimed: Vec<(Claimed, OwnedSemaphorePermit)>) {
    let mut slots = Vec::new();
    if !worker.stop_claiming.is_cancelled() {
        while slots.len() < claimed.len() {
            match Arc::clone(&worker.permits).try_acquire_owned() {
                Ok(slot) => slots.push(slot),
                Err(_) => break,
            }
        }
    }
    worker.tracker.spawn(dispatch(Arc::clone(worker), claimed, slots, Instant::now()));
}

/// Tracks every task run of one claim (made at `claimed_at`) at once (their leases are renewed
/// from now on, and a cancel reaches them), then starts them in order: the first ones in
/// `slots`, the others each when a slot is free. Task runs still waiting when the runtime
/// begins to shut down are given back at once; a task run whose run ended while it waited is
/// given back too (it ends `canceled`, as if still queued).
async fn dispatch(worker: Arc<Worker>, claimed: Vec<(Claimed, OwnedSemaphorePermit)>, slots: Vec<OwnedSemaphorePermit>, claimed_at: Instant) {
    let tracked: Vec<(Arc<Claimed>, CancellationToken, OwnedSemaphorePermit)> = claimed
        .into_iter()
        .map(|(task, room)| {
            let task = Arc::new(task);
            let cancel = CancellationToken::new();
            worker.track(RunningTask { claimed: Arc::clone(&task), cancel: cancel.clone(), abort: None, handed: false });
            (task, cancel, room)
        })
        .collect();
    let mut undispatched = undispatched(&worker, tracked.iter().map(|(task, _, _)| (task.task_run_id, task.attempt)).collect());
    let mut tracked = tracked.into_iter();
    let mut slots = slots.into_iter();
    // Once one had to wait for a slot, or this dispatch itself ran late (a busy machine), time
    // has passed since the claim: each one from then on checks its run.
    let mut waited = false;
    // When each run was last read as still running; read again once that is older than
    // `RECHECK` (a task run claimed a moment before its run ended starts as well).
    let mut going: HashMap<i64, Instant> = HashMap::new();
    while let Some((task, cancel, room)) = tracked.next() {
        // Once shutdown began, nothing more starts.
        let free = if worker.stop_claiming.is_cancelled() {
            Err(())
        } else {
            slots.next().map_or_else(|| Arc::clone(&worker.permits).try_acquire_owned().map_err(drop), Ok)
        };
        let slot = match free {
            Ok(slot) => slot,
            Err(()) => match wait_for_slot(&worker).await {
                Some(slot) => {
                    waited = true;
                    slot
                }
                None => {
                    // Shutting down: this one and every one after it go back.
                    give_back_unstarted(&worker, &task).await;
                    undispatched.done();
                    for (task, _, _) in tracked.by_ref() {
                        give_back_unstarted(&worker, &task).await;
                        undispatched.done();
                    }
                    return;
                }
            },
        };
        // Its run may have ended while it waited (a critical sibling failed, say).
        waited |= claimed_at.elapsed() >= RECHECK;
        if worker.saw_end(task.pipeline_run_id) || (waited && !still_going(&worker, &task, &mut going).await) {
            drop(slot);
            give_back_unstarted(&worker, &task).await;
            undispatched.done();
            continue;
        }
        let w = Arc::clone(&worker);
        worker.tracker.spawn(async move { execute(&w, task, cancel, (slot, room)).await });
        undispatched.done();
    }
}

/// The task runs a dispatch tracked and has neither started nor given back yet, in claim
/// order (see [`UntrackOnDrop`]).
fn undispatched(worker: &Worker, left: VecDeque<(i64, i32)>) -> UntrackOnDrop<'_> {
    UntrackOnDrop::new(worker, left, "the dispatch of claimed task runs", "starting them all")
}

/// Waits for a slot; `None` if the runtime began to shut down first.
async fn wait_for_slot(worker: &Worker) -> Option<OwnedSemaphorePermit> {
    if worker.stop_claiming.is_cancelled() {
        return None;
    }
    tokio::select! {
        biased;
        slot = Arc::clone(&worker.permits).acquire_owned() => slot.ok(),
        _ = worker.stop_claiming.cancelled() => None,
    }
}

/// How long a run read as running is taken to be still running.
const RECHECK: Duration = Duration::from_millis(5);

/// Whether the run of a prefetched `task` is still going before it starts: not if this
/// process saw it end or be canceled; else as read at most [`RECHECK`] ago.
async fn still_going(worker: &Worker, task: &Claimed, going: &mut HashMap<i64, Instant>) -> bool {
    let run = task.pipeline_run_id;
    if worker.saw_end(run) {
        return false;
    }
    if going.get(&run).is_some_and(|at| at.elapsed() < RECHECK) {
        return true;
    }
    let yes = run_still_going(worker, task).await;
    if yes {
        going.insert(run, Instant::now());
    } else {
        worker.note_ended(run);
    }
    yes
}

/// Whether the run of a prefetched `task` is still running, as the database says now. If the
/// read fails it starts anyway, as a task run claimed a moment earlier would have.
async fn run_still_going(worker: &Worker, task: &Claimed) -> bool {
    match crate::store::reports::run_end(&worker.work, task.pipeline_run_id).await {
        Ok(Some(run)) => run.status == RunStatus::Running,
        Ok(None) => false,
        Err(e) => {
            tracing::warn!(error = %e, "could not read whether the run of a prefetched task run is still going; starting it");
            true
        }
    }
}

/// Gives back a prefetched task run that never started (shutdown, or its run ended while it
/// waited): queued again, or `canceled` if its run has ended; its attempt counts no failure.
async fn give_back_unstarted(worker: &Arc<Worker>, task: &Claimed) {
    if worker.is_tracked(task.task_run_id, task.attempt) {
        match crate::engine::finish::release(&worker.db, task, worker.learn_weights()).await {
            Ok(effects) => worker.signals.apply(effects),
            Err(e) => tracing::error!(error = %e, "could not give back a prefetched task run that did not start; its lease will expire"),
        }
    }
    worker.untrack(task.task_run_id, task.attempt);
    tracing::debug!("prefetched task run given back without starting");
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::worker::state::RunningTask;

    async fn worker() -> Worker {
        let pools = crate::store::connect("sqlite::memory:", None).await.unwrap();
        Worker::new(pools, crate::Config::default(), vec!["default".to_owned()], 2, "w".to_owned(), Arc::default(), Arc::default())
    }

    fn track(worker: &Worker, task_run_id: i64) {
        worker.track(RunningTask { claimed: Arc::new(Claimed::for_test(task_run_id, 7, 1)), cancel: CancellationToken::new(), abort: None, handed: false });
    }

    #[tokio::test]
    async fn a_dispatch_that_panics_untracks_what_it_had_not_started() {
        let worker = worker().await;
        for id in [1, 2, 3] {
            track(&worker, id);
        }
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut undispatched = undispatched(&worker, [(1, 1), (2, 1), (3, 1)].into());
            undispatched.done();
            panic!("a bug in the dispatch");
        }));
        assert!(unwound.is_err());
        assert!(worker.is_tracked(1, 1), "the one started stays tracked (its execution untracks it)");
        assert!(!worker.is_tracked(2, 1) && !worker.is_tracked(3, 1), "the ones not started are untracked: their leases run out");
        worker.untrack(1, 1);
        assert!(!worker.others_unhanded(7), "no sibling is counted as still to come");
    }

    #[tokio::test]
    async fn a_dispatch_that_started_everything_untracks_nothing() {
        let worker = worker().await;
        for id in [1, 2] {
            track(&worker, id);
        }
        let mut undispatched = undispatched(&worker, [(1, 1), (2, 1)].into());
        undispatched.done();
        undispatched.done();
        drop(undispatched);
        assert!(worker.is_tracked(1, 1) && worker.is_tracked(2, 1));
        assert!(worker.others_unhanded(7));
    }
}
