//! Pausing and resuming queues: `rt.pause_queue`, `rt.resume_queue` and `rt.queues`.

use serde::Serialize;

use crate::error::Error;
use crate::runtime::CogRuntime;
use crate::store::{self, notify, queues};

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

impl CogRuntime {
    /// Pauses queue `name`: no process claims its task runs until [`resume_queue`](Self::resume_queue);
    /// running task runs finish, queued ones wait. When this returns, every claim that could
    /// still take a task run of the queue has committed: nothing of it starts afterwards.
    /// Pausing a paused queue does nothing more. `Error::UnknownQueue` if no task ever named it.
    pub async fn pause_queue(&self, name: &str) -> Result<(), Error> {
        self.set_queue_paused(name, true).await?;
        tracing::info!(queue = name, "queue paused");
        Ok(())
    }

    /// Resumes queue `name`: its queued task runs are claimed again, and idle workers of every
    /// process are woken (this process at once, others by notification on PostgreSQL, by
    /// their change watcher on MySQL). `Error::UnknownQueue` if no task ever named it.
    pub async fn resume_queue(&self, name: &str) -> Result<(), Error> {
        self.set_queue_paused(name, false).await?;
        self.inner.signals.wake.notify_waiters();
        tracing::info!(queue = name, "queue resumed");
        Ok(())
    }

    /// Every known queue with its queued task runs and whether it is paused, by name.
    /// (`queue_depths()` gives the same depths without the paused flag.)
    pub async fn queues(&self) -> Result<Vec<QueueState>, Error> {
        let rows = queues::queues(&self.inner.db).await?;
        Ok(rows.into_iter().map(|r| QueueState { name: r.name, queued: r.queued, paused: r.paused }).collect())
    }

    async fn set_queue_paused(&self, name: &str, paused: bool) -> Result<(), Error> {
        let txn = store::begin(&self.inner.db).await?;
        if !queues::set_paused(&txn, name, paused).await? {
            return Err(Error::UnknownQueue { name: name.to_owned() });
        }
        if !paused {
            notify(&txn, "work").await?;
        }
        txn.commit().await?;
        Ok(())
    }
}
