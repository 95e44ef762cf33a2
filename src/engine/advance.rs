//! Moving a running pipeline run forward inside a locked transaction: starting stages,
//! fan-in to successors, completing the run, and writing `completed_at` once nothing runs.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};

use super::{Effects, start};
use crate::entity::status::RunStatus;
use crate::store::transitions::{Announce, StartedStage, Starting};
use crate::store::{notify, transitions};

/// What [`start_stage`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// The run already had the stage run.
    Already,
    /// The stage has no enabled task: its stage run completed at once.
    Done,
    /// Task runs were queued; `filling`: only the first chunk of a big stage, the rest to
    /// queue after commit (`engine::fill`); `unannounced_from`: see [`StartedStage`].
    Queued { filling: bool, unannounced_from: Option<i64> },
}

/// Starts stage `stage_id` in run `run_id`: one stage run (never two: the unique index on
/// `(pipeline_run_id, stage_id)` turns a second start into a no-op) and a task run for each
/// enabled task (for the first `starting.first_chunk` of them when the stage has more than
/// `starting.whole_up_to`, the stage run marked as filling, when there may be more), queued or,
/// on PostgreSQL, claimed at once for `starting.claim` (see `store::start_claims`).
async fn start_stage(conn: &impl ConnectionTrait, run_id: i64, stage_id: i64, now: DateTime<Utc>, starting: Starting<'_>) -> Result<Start, DbErr> {
    let Some(StartedStage { stage_run_id, queued, filling, unannounced_from }) = transitions::start_stage_run(conn, run_id, stage_id, now, starting).await?
    else {
        return Ok(Start::Already);
    };
    if queued > 0 {
        return Ok(Start::Queued { filling, unannounced_from });
    }
    transitions::complete_stage_run(conn, stage_run_id, now).await?;
    Ok(Start::Done)
}

impl Effects {
    /// These effects, and those of stage start `start`.
    fn and_start(mut self, start: Start) -> Effects {
        if let Start::Queued { filling, unannounced_from } = start {
            self.queued_work = true;
            self.filling |= filling;
            self = self.merge(Effects { unannounced_from, ..Effects::default() });
        }
        self
    }
}

/// Starts every stage of `stages` not started yet in the run (and, through fan-in, whatever
/// their completion or that of the stages `completed` already unblocks), then completes the
/// run if nothing is left running. The stages' task runs are queued and announced as
/// `starting` says (a buffered run started because the run ended announces its own at once).
pub(crate) async fn start_stages_after(
    conn: &impl ConnectionTrait,
    run_id: i64,
    stages: Vec<i64>,
    mut completed: Vec<i64>,
    now: DateTime<Utc>,
    starting: Starting<'_>,
) -> Result<Effects, DbErr> {
    let mut effects = Effects::default();
    for stage_id in stages {
        let start = start_stage(conn, run_id, stage_id, now, starting).await?;
        effects = effects.and_start(start);
        if start == Start::Done {
            completed.push(stage_id);
        }
    }
    fan_in(conn, run_id, completed, effects, now, starting).await
}

/// Called after the stage runs of `completed` (stage ids) became `completed`, after starts
/// that had `effects`: starts each successor whose prerequisites have all completed,
/// repeatedly, then completes the run if no stage run is left running. A stage run that
/// queued task runs is open, so the run cannot be complete and is not looked at (one
/// statement fewer per hand-off).
async fn fan_in(
    conn: &impl ConnectionTrait,
    run_id: i64,
    mut completed: Vec<i64>,
    mut effects: Effects,
    now: DateTime<Utc>,
    starting: Starting<'_>,
) -> Result<Effects, DbErr> {
    while let Some(stage_id) = completed.pop() {
        for successor in transitions::ready_successors(conn, run_id, stage_id).await? {
            let start = start_stage(conn, run_id, successor, now, starting).await?;
            effects = effects.and_start(start);
            if start == Start::Done {
                completed.push(successor);
            }
        }
    }
    if !effects.queued_work && !transitions::has_open_stage_runs(conn, run_id).await? && transitions::complete_run(conn, run_id, now).await? {
        // A transaction that announces later tells other processes of the end after its
        // commit (`engine::finish`, `engine::launch`), not at it: a PostgreSQL transaction
        // that notifies commits under a lock that every notifying transaction of the server
        // takes in turn, WAL flush included, and a run's end holds its run's lock and its
        // pipeline's weights lock.
        if starting.announce == Announce::Now {
            notify(conn, &format!("ended:{run_id}")).await?;
        }
        effects.run_ended = true;
        effects = effects.merge(start::start_buffered(conn, run_id, now, starting.claim).await?);
    }
    Ok(effects)
}

/// Ends a run that can no longer succeed (`status` = `failed` or `canceled`): its queued task
/// runs become `canceled`, its open stage runs `canceled` (except `failed_stage_run`, which
/// becomes `failed`), then [`settle`] writes `completed_at` where nothing runs any more, and
/// a run buffered behind it starts.
pub(crate) async fn end_run(
    conn: &impl ConnectionTrait,
    run_id: i64,
    status: RunStatus,
    failed_stage_run: Option<i64>,
    now: DateTime<Utc>,
) -> Result<Effects, DbErr> {
    let ended = transitions::end_run(conn, run_id, status, failed_stage_run, now).await?;
    let effects = settle(conn, run_id, now).await?;
    if ended {
        return Ok(effects.merge(start::start_buffered(conn, run_id, now, None).await?));
    }
    Ok(effects)
}

/// Writes `completed_at` (once) on the ended stage runs and the ended pipeline run that no
/// longer have a running task run.
pub(crate) async fn settle(conn: &impl ConnectionTrait, run_id: i64, now: DateTime<Utc>) -> Result<Effects, DbErr> {
    let ended = transitions::settle(conn, run_id, now).await?;
    if ended {
        notify(conn, &format!("ended:{run_id}")).await?;
    }
    Ok(Effects { run_ended: ended, ..Effects::default() })
}
