//! [`RunHandle`]: following one pipeline run.

use std::time::Duration;

use super::CogRuntime;
use crate::entity::status::RunStatus;
use crate::error::Error;

/// How long [`RunHandle::wait`] sleeps between reads of its run while this process hears
/// every run end (`Signals::hears_others`): a safety net only, the end itself wakes it.
const HEARD_PAUSE: Duration = Duration::from_secs(2);

/// A pipeline run, as returned by `launch`.
#[derive(Debug, Clone)]
pub struct RunHandle {
    pub(crate) id: i64,
    pub(crate) rt: CogRuntime,
}

impl RunHandle {
    /// The run's `cog_pipeline_run.id`.
    pub fn id(&self) -> i64 {
        self.id
    }

    /// The run's status now.
    pub async fn status(&self) -> Result<RunStatus, Error> {
        Ok(self.read().await?.0)
    }

    /// Waits until the run has ended: a terminal status, and no task of it still running
    /// (`completed_at` written). Returns the final status.
    ///
    /// A lost database connection is retried for up to a minute before the error is returned.
    pub async fn wait(&self) -> Result<RunStatus, Error> {
        let signals = &self.rt.inner.signals;
        let mut pause = Duration::from_millis(5);
        let mut failing_since: Option<tokio::time::Instant> = None;
        loop {
            // Ends told from here on are looked at before sleeping: none is missed.
            let mark = signals.ends_mark();
            match self.read().await {
                Ok((status, true)) => return Ok(status),
                Ok(_) => failing_since = None,
                Err(Error::Database(e)) if failing_since.is_none_or(|t| t.elapsed() < Duration::from_secs(60)) => {
                    tracing::warn!(error = %e, pipeline.run = self.id, "could not read the run's status; retrying");
                    failing_since.get_or_insert_with(tokio::time::Instant::now);
                }
                Err(e) => return Err(e),
            }
            // Read again when this run may have ended, or after `pause` (an end this process
            // is not told of: another process's, on MySQL and SQLite, or while not listening
            // on PostgreSQL); after `HEARD_PAUSE` while every end is told (on PostgreSQL, 50
            // waits of 50 runs on 4 processes read their runs 599 times, 12 each).
            let deadline = tokio::time::sleep(if signals.hears_others() { HEARD_PAUSE } else { pause });
            tokio::pin!(deadline);
            loop {
                let notified = signals.run_ended.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if signals.may_have_ended(self.id, mark) {
                    break;
                }
                tokio::select! {
                    _ = notified => {}
                    _ = &mut deadline => break,
                }
            }
            pause = (pause * 2).min(Duration::from_millis(250));
        }
    }

    /// Status and whether `completed_at` is written, read through the transitions' pool (warm,
    /// and sized for the runtime's work: the host's pool keeps 2 connections open, and the
    /// `wait`s of many runs at once would open the rest of its 4 mid-run, cold backends).
    async fn read(&self) -> Result<(RunStatus, bool), Error> {
        let run = crate::store::reports::run_end(&self.rt.inner.work, self.id).await?.ok_or(Error::UnknownRun { id: self.id })?;
        Ok((run.status, run.completed_at.is_some()))
    }
}
