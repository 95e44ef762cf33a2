//! [`UntrackOnDrop`]: task runs this process tracks, untracked (and logged) should what holds
//! them end before handing each of them on.

use std::collections::VecDeque;

use super::Worker;

/// Task runs `worker` tracks that a piece of work (a dispatch, an execution) has yet to hand
/// on, in order. Should that work end otherwise (a panic, or its task dropped), they are
/// untracked when this is dropped, and it is logged: their leases are no longer renewed and
/// run out, and a worker's lease sweep takes them over (DESIGN invariant 7); nothing stays
/// `running` here with nobody to run it, nor counts as a sibling whose outcome is still to
/// come (see `Worker::others_unhanded`).
pub(super) struct UntrackOnDrop<'a> {
    worker: &'a Worker,
    left: VecDeque<(i64, i32)>,
    /// What holds them, for the log: "the dispatch of claimed task runs", say.
    holder: &'static str,
    /// What it had still to do when it ended early: "starting them all", say.
    undone: &'static str,
}

impl<'a> UntrackOnDrop<'a> {
    /// For task runs `left` (id, attempt), tracked by `worker`, held by `holder` until it has
    /// done `undone` (both for the log).
    pub(super) fn new(worker: &'a Worker, left: VecDeque<(i64, i32)>, holder: &'static str, undone: &'static str) -> Self {
        UntrackOnDrop { worker, left, holder, undone }
    }

    /// The first one left was handed on (started, given back, its outcome recorded).
    pub(super) fn done(&mut self) {
        self.left.pop_front();
    }
}

impl Drop for UntrackOnDrop<'_> {
    fn drop(&mut self) {
        if self.left.is_empty() {
            return;
        }
        let (holder, undone) = (self.holder, self.undone);
        let how = if std::thread::panicking() { "panicked" } else { "was stopped" };
        tracing::error!(
            task_runs = ?self.left,
            "{holder} {how} before {undone}; the task runs left are left to their leases, which run out, and a worker's lease sweep takes them over"
        );
        for (task_run_id, attempt) in self.left.drain(..) {
            self.worker.untrack(task_run_id, attempt);
        }
    }
}
