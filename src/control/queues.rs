//! What `rt.queues()` reports about each queue (pausing and resuming: `runtime::control`).

use serde::Serialize;

/// A queue as `rt.queues()` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct QueueState {
    /// The queue's name.
    pub name: String,
    /// Its queued task runs (waiting to be claimed).
    pub queued: i64,
    /// Whether it is paused (`rt.pause_queue`): no process claims from it.
    pub paused: bool,
}
