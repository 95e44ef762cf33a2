//! Queueing the rest of a big stage's task runs after it started, a chunk per transaction.
//!
//! A stage start queues the task runs of its first [`FILL_CHUNK`] tasks only (in task id order)
//! and, when there may be more, marks its stage run as filling (`fill_after`: the last task
//! queued). Once that start has committed, workers already run the first chunk while the
//! process that started it (the launch, or the worker whose outcome started the stage)
//! queues the rest here: each chunk one transaction that locks the run, like every
//! transition, so a cancel or a failure in between is seen and nothing more is queued for an
//! ended run. The stage run cannot complete while it is filling; the last chunk completes it
//! if its task runs are all done by then.
//!
//! Whoever fills holds a lease on the job (`fill_lease_until`), renewed by each chunk. A
//! process that dies mid-fill leaves the lease to expire, and any worker's fill loop takes
//! the job over where the last committed chunk left it.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};

use super::{Effects, advance};
use crate::entity::status::RunStatus;
use crate::store::transitions::{self, FILL_CHUNK};
use crate::store::{self, fills, lock_run, notify, now};

/// How a fill holds its job, and whether a run it ends learns weights.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FillPolicy {
    /// How long a chunk's commit holds the job for the next one.
    pub(crate) lease: Duration,
    /// Learn task weights (with this sample size) when a chunk ends the run; `None`: don't.
    pub(crate) learn_weights: Option<u32>,
}

/// Stage runs looked at per round of [`fill_unheld`].
const ROUND: usize = 16;

/// A chunk the database rolled back (deadlock victim, serialization failure) is run again
/// up to this many times in all.
const CHUNK_TRIES: u32 = 10;

/// Takes and fills every stage run still filling that nobody holds (of run `run_id` only, if
/// given), until none is left; `applied` is told the effects of each committed chunk. Returns
/// how many stage runs it filled.
pub(crate) async fn fill_unheld(db: &DatabaseConnection, run_id: Option<i64>, policy: FillPolicy, applied: &(dyn Fn(Effects) + Sync)) -> Result<usize, DbErr> {
    let mut filled = 0;
    loop {
        let unheld = fills::unheld(db, run_id, ROUND).await?;
        if unheld.is_empty() {
            return Ok(filled);
        }
        for stage_run_id in unheld {
            // Somebody else may have taken it since it was read: theirs, then.
            if fills::take(db, stage_run_id, policy.lease).await? {
                fill_stage_run(db, stage_run_id, policy, applied).await?;
                filled += 1;
            }
        }
    }
}

/// Queues the rest of stage run `stage_run_id` (whose fill this caller holds), a chunk per
/// transaction, until it is full or its run ended.
async fn fill_stage_run(db: &DatabaseConnection, stage_run_id: i64, policy: FillPolicy, applied: &(dyn Fn(Effects) + Sync)) -> Result<(), DbErr> {
    let Some(run_id) = fills::run_of(db, stage_run_id).await? else { return Ok(()) };
    let mut tries = 1;
    loop {
        match fill_one_chunk(db, run_id, stage_run_id, policy).await {
            Ok((full, effects)) => {
                applied(effects);
                if full {
                    return Ok(());
                }
                tries = 1;
            }
            Err(e) if tries < CHUNK_TRIES && store::errors::is_rolled_back(&e) => {
                tracing::debug!(stage.run = stage_run_id, error = %e, "queueing a chunk of task runs was rolled back by the database; trying again");
                tokio::time::sleep(Duration::from_millis(5 << tries.min(5))).await;
                tries += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// One chunk of stage run `stage_run_id` of run `run_id`, in its own transaction.
async fn fill_one_chunk(db: &DatabaseConnection, run_id: i64, stage_run_id: i64, policy: FillPolicy) -> Result<(bool, Effects), DbErr> {
    let txn = store::begin(db).await?;
    let (full, effects) = match lock_run(&txn, run_id).await? {
        Some(RunStatus::Running) => fill_chunk(&txn, run_id, stage_run_id, policy.lease).await?,
        // The run ended: ending it cleared the stage run's fill mark.
        _ => (true, Effects::default()),
    };
    super::learn_if_ended(&txn, run_id, effects, policy.learn_weights).await?;
    super::commit(txn, run_id, effects).await?;
    Ok((full, effects))
}

/// Queues the next chunk of stage run `stage_run_id` of run `run_id` (whose lock the caller
/// holds); when it was the last, completes the stage run if its task runs are all done and
/// goes on with fan-in. Returns whether the stage run is full (or no longer filling), and
/// what the chunk did.
async fn fill_chunk(conn: &impl ConnectionTrait, run_id: i64, stage_run_id: i64, lease: Duration) -> Result<(bool, Effects), DbErr> {
    let Some(state) = fills::filling(conn, stage_run_id).await? else { return Ok((true, Effects::default())) };
    let (Some(after), RunStatus::Running) = (state.fill_after, state.status) else { return Ok((true, Effects::default())) };
    let (queued, full) = fills::queue_chunk(conn, stage_run_id, state.stage_id, after, FILL_CHUNK, lease).await?;
    let mut effects = Effects::default();
    if queued > 0 {
        notify(conn, "work").await?;
        effects.queued_work = true;
    }
    if full && let Some(stage_id) = transitions::complete_stage_run_if_done(conn, stage_run_id, now()).await? {
        effects = effects.merge(advance::stages_completed(conn, run_id, vec![stage_id], now()).await?);
    }
    Ok((full, effects))
}

/// Queues every task run still to queue of the stages run `run_id` started inside `txn`, in
/// `txn` itself (a launch inside the host's transaction, which commits it all or nothing and
/// after which cog runs nothing). The run's lock is held. Returns what that did.
pub(crate) async fn fill_in(txn: &impl ConnectionTrait, run_id: i64, lease: Duration) -> Result<Effects, DbErr> {
    let mut effects = Effects::default();
    for stage_run_id in fills::unheld(txn, Some(run_id), usize::MAX >> 1).await? {
        loop {
            let (full, chunk) = fill_chunk(txn, run_id, stage_run_id, lease).await?;
            effects = effects.merge(chunk);
            if full {
                break;
            }
        }
    }
    effects.filling = false;
    Ok(effects)
}
