//! The state machine of runs. Every transition runs in one transaction that first locks the
//! pipeline run row ([`crate::store::lock_run`]) and then makes conditional updates
//! (`... WHERE status = 'running'`), so transitions of one run never interleave and a terminal
//! status is never overwritten.

pub(crate) mod advance;
pub(crate) mod cancel;
pub(crate) mod claim;
pub(crate) mod finish;
pub(crate) mod launch;

/// What a transition did to its pipeline run, for the caller to act on after commit.
#[derive(Debug, Default, Clone)]
pub(crate) struct Effects {
    /// New task runs were queued (wake the workers).
    pub(crate) queued_work: bool,
    /// The pipeline run has ended: its `completed_at` was written.
    pub(crate) run_ended: bool,
    /// The run that ended (pipeline, status, trigger), for `cog_pipeline_runs_total`.
    pub(crate) ended: Option<crate::store::reports::RunRow>,
}

impl Effects {
    /// Both effects combined.
    pub(crate) fn merge(self, other: Effects) -> Effects {
        Effects { queued_work: self.queued_work || other.queued_work, run_ended: self.run_ended || other.run_ended, ended: self.ended.or(other.ended) }
    }
}
