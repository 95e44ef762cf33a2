//! Signals shared by the runtime's parts (work queued, a run ended, schedules changed) and the
//! effects of a transition that fire them. Imports nothing of cog's: every other module may use it.

use tokio::sync::Notify;

/// What a transition did to its pipeline run, for the caller to act on after commit.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Effects {
    /// New task runs were queued (wake the workers).
    pub(crate) queued_work: bool,
    /// The pipeline run has ended: its `completed_at` was written.
    pub(crate) run_ended: bool,
    /// A big stage started with only its first chunk of task runs queued: the rest is to be
    /// queued after commit (`engine::fill`).
    pub(crate) filling: bool,
}

impl Effects {
    /// Both effects combined.
    pub(crate) fn merge(self, other: Effects) -> Effects {
        Effects { queued_work: self.queued_work || other.queued_work, run_ended: self.run_ended || other.run_ended, filling: self.filling || other.filling }
    }
}

/// The in-process wake-ups. Cross-process ones arrive through the database (NOTIFY or a
/// change counter) and are turned into these by the worker's listener.
#[derive(Debug, Default)]
pub(crate) struct Signals {
    /// Task runs were queued.
    pub(crate) wake: Notify,
    /// A pipeline run ended.
    pub(crate) run_ended: Notify,
    /// A schedule, or whether a pipeline is enabled, changed.
    pub(crate) schedules_changed: Notify,
    /// A big stage's task runs are to be queued (wakes the worker's fill loop).
    pub(crate) fill: Notify,
}

impl Signals {
    /// Wakes whoever a committed transition concerns. Everything the transition did is
    /// already in the database (weights included), so waiters see it all.
    pub(crate) fn apply(&self, effects: Effects) {
        if effects.queued_work {
            self.wake.notify_waiters();
        }
        if effects.run_ended {
            self.run_ended.notify_waiters();
        }
        if effects.filling {
            self.fill.notify_one();
        }
    }
}

/// The text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned())
}
