//! Queueing the rest of a big stage's task runs after it started, a chunk per transaction.
//!
//! A stage start queues the task runs of its first tasks only (in task id order:
//! [`LAUNCH_CHUNK`](transitions::LAUNCH_CHUNK) of them at a launch of a stage of more than
//! [`SMALL_STAGE`](transitions::SMALL_STAGE) tasks,
//! [`START_CHUNK`](transitions::START_CHUNK) at a hand-off) and, when there may be more, marks
//! its stage run as filling (`fill_after`: the last task queued); the rest is queued in chunks
//! growing from [`FIRST_FILL_CHUNK`] fourfold up to [`FILL_CHUNK`]. Once that start has
//! committed, workers already run the first chunk while the
//! process that started it (the launch, or the worker whose outcome started the stage)
//! queues the rest here: each chunk one transaction that inserts its task runs, then locks the
//! run like every transition and moves the fill mark, or rolls back when the run or stage run
//! ended meanwhile (a cancel or a failure): nothing is ever queued for an ended run. The stage run cannot complete while it is filling; the last chunk completes it
//! if its task runs are all done by then.
//!
//! Whoever fills holds a lease on the job (`fill_lease_until`), renewed by each chunk. A
//! process that dies mid-fill leaves the lease to expire, and any worker's fill loop takes
//! the job over where the last committed chunk left it.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};

use super::{Effects, advance};
use crate::entity::status::RunStatus;
use crate::store::transitions::{self, FILL_CHUNK, FIRST_FILL_CHUNK};
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
    let mut chunk = FIRST_FILL_CHUNK;
    loop {
        match fill_one_chunk(db, run_id, stage_run_id, policy, chunk).await {
            Ok((full, effects)) => {
                applied(effects);
                if full {
                    return Ok(());
                }
                chunk = (chunk * 4).min(FILL_CHUNK);
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
async fn fill_one_chunk(db: &DatabaseConnection, run_id: i64, stage_run_id: i64, policy: FillPolicy, chunk: usize) -> Result<(bool, Effects), DbErr> {
    let txn = store::begin(db).await?;
    // Index walks only (as a launch): a chunk walks the stage's tasks after the fill mark in
    // id order and stops at its size, instead of reading and sorting all the rest.
    store::claims::custom_plans(&txn).await?;
    let Chunk::Queued { full, effects } = fill_chunk(&txn, run_id, stage_run_id, policy.lease, chunk).await? else {
        // The run or the stage run ended, or another filler got there first: nothing of this
        // chunk is kept.
        txn.rollback().await?;
        return Ok((true, Effects::default()));
    };
    super::learn_if_ended(&txn, run_id, effects, policy.learn_weights).await?;
    super::commit(txn, run_id, effects).await?;
    Ok((full, effects))
}

/// What [`fill_chunk`] did.
enum Chunk {
    /// Stop filling and roll back: the run or the stage run ended, or the fill mark was
    /// moved by another filler.
    Stop,
    /// A chunk was queued (`full`: the last one) with these effects.
    Queued { full: bool, effects: Effects },
}

/// Queues the next chunk of stage run `stage_run_id` of run `run_id`, then takes the run's
/// lock and moves the fill mark (the insert, the longest part, runs before the lock, so
/// outcomes of the run's task runs are not held up by it; what is decided is decided under
/// the lock); when it was the last chunk, completes the stage run if its task runs are all
/// done and goes on with fan-in.
async fn fill_chunk(conn: &impl ConnectionTrait, run_id: i64, stage_run_id: i64, lease: Duration, chunk: usize) -> Result<Chunk, DbErr> {
    let Some(state) = fills::filling(conn, stage_run_id).await? else { return Ok(Chunk::Stop) };
    let (Some(after), RunStatus::Running) = (state.fill_after, state.status) else { return Ok(Chunk::Stop) };
    let (queued, through) = fills::queue_chunk(conn, stage_run_id, state.stage_id, after, chunk).await?;
    if lock_run(conn, run_id).await? != Some(RunStatus::Running) || !fills::move_mark(conn, stage_run_id, after, through, lease).await? {
        return Ok(Chunk::Stop);
    }
    let mut effects = Effects::default();
    if queued > 0 {
        notify(conn, "work").await?;
        effects.queued_work = true;
    }
    let full = through.is_none();
    if full && let Some(successors) = transitions::complete_stage_run_and_successors(conn, run_id, stage_run_id, now()).await? {
        effects = effects.merge(
            advance::start_stages_after(conn, run_id, successors, Vec::new(), now(), transitions::Starting::hand_off(transitions::Announce::Now)).await?,
        );
    }
    Ok(Chunk::Queued { full, effects })
}

/// Queues every task run still to queue of the stages run `run_id` started inside `txn`, in
/// `txn` itself (a launch inside the host's transaction, which commits it all or nothing and
/// after which cog runs nothing). The run's lock is held. Returns what that did.
pub(crate) async fn fill_in(txn: &impl ConnectionTrait, run_id: i64, lease: Duration) -> Result<Effects, DbErr> {
    let mut effects = Effects::default();
    for stage_run_id in fills::unheld(txn, Some(run_id), usize::MAX >> 1).await? {
        loop {
            match fill_chunk(txn, run_id, stage_run_id, lease, FILL_CHUNK).await? {
                Chunk::Queued { full, effects: chunk } => {
                    effects = effects.merge(chunk);
                    if full {
                        break;
                    }
                }
                // The run is this transaction's, locked and running: nobody else moves its marks.
                Chunk::Stop => return Err(DbErr::Custom(format!("stage run {stage_run_id} stopped filling inside the transaction that started it"))),
            }
        }
    }
    effects.filling = false;
    Ok(effects)
}
