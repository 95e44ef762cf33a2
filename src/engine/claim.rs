//! Claiming queued task runs for a worker, and reading what it needs to run them.

use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr};

use super::Effects;

pub(crate) use crate::store::claims::Claimed;
use crate::store::claims::Planner;
use crate::store::{self, claims};

/// Marks up to `limit` queued task runs of `queues` whose `run_after` has passed as running
/// for `worker`, heaviest first; returns them with their definitions, in claim order.
/// Their `started_at` is the time the claim runs (taken once its transaction has begun, not
/// before waiting for a connection).
/// The claim and the read of the definitions are one transaction: if the read fails, the
/// claim is undone rather than left `running` with nobody to run it.
pub(crate) async fn claim(
    db: &sea_orm::DatabaseConnection,
    worker: &str,
    queues: &[String],
    limit: usize,
    lease: std::time::Duration,
) -> Result<Vec<Claimed>, DbErr> {
    if queues.is_empty() || limit == 0 {
        return Ok(Vec::new());
    }
    let txn = store::begin(db).await?;
    let claimed = claim_in(&txn, &Claimant { worker, queues, lease }, limit, Planner::Set).await?;
    txn.commit().await?;
    crate::metrics::claimed(&claimed);
    Ok(claimed)
}

/// Who claims: a worker's name, its queues and the lease it takes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Claimant<'a> {
    pub(crate) worker: &'a str,
    pub(crate) queues: &'a [String],
    pub(crate) lease: std::time::Duration,
}

/// [`claim`] inside the caller's transaction `conn` (not counted in the metrics until the
/// caller has committed), which has the claim's planner settings already or not (`planner`).
pub(crate) async fn claim_in(conn: &impl ConnectionTrait, claimant: &Claimant<'_>, limit: usize, planner: Planner) -> Result<Vec<Claimed>, DbErr> {
    if claimant.queues.is_empty() || limit == 0 {
        return Ok(Vec::new());
    }
    let mut claimed = claims::claim_and_load(conn, claimant.worker, claimant.queues, limit, store::now(), claimant.lease, planner).await?;
    if claimed.len() > limit {
        // Never leave a claimed row with nobody to run it: hand the extras back untouched.
        let extras: Vec<i64> = claimed.split_off(limit).iter().map(|c| c.task_run_id).collect();
        OVERCLAIMS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::error!(claimed = limit + extras.len(), limit, "a claim returned more task runs than asked for; handing the extras back");
        claims::unclaim(conn, &extras).await?;
    }
    Ok(claimed)
}

/// A claim chained to a transition's transaction when that transaction queued work (a
/// launch, or an outcome that started a stage's successor): the worker takes the new task
/// runs in the same transaction instead of being woken after commit to claim them in one of
/// its own — a launch's first task, or a stage hand-off, saves a wake-up and a transaction.
/// Only a worker that has started and is claiming chains (see
/// `worker::room_for_chained_claim`); a launch from a process that does not work leaves its
/// task runs to the claim loops of the processes that do.
/// Not on MySQL, whose claim takes share locks that a transition holding a run's lock should
/// not wait for.
pub(crate) struct Chain<'a> {
    pub(crate) claimant: Claimant<'a>,
    /// Called once work was queued: reserves room for task runs in the worker and says how
    /// much (0: claim nothing).
    pub(crate) reserve: &'a mut (dyn FnMut() -> usize + Send),
    /// What the chained claim took, once committed.
    pub(crate) claimed: Vec<Claimed>,
}

/// Claims for `chain`, if any, inside transaction `txn` whose transition had `effects` (and
/// which has the claim's planner settings or not, `planner`: see [`claims::set_planner`]).
pub(crate) async fn chained(txn: &DatabaseTransaction, chain: Option<&mut Chain<'_>>, effects: Effects, planner: Planner) -> Result<Vec<Claimed>, DbErr> {
    let Some(chain) = chain else { return Ok(Vec::new()) };
    if !effects.queued_work || store::Backend::of(txn)? == store::Backend::MySql {
        return Ok(Vec::new());
    }
    let room = (chain.reserve)();
    claim_in(txn, &chain.claimant, room, planner).await
}

/// Whether the task runs that a transaction's stage starts queued without announcing them
/// (from id `first` on; `None`: none) are not all taken by its chained claim `chained`: then
/// the other processes are to be told (`work`). Read in the transaction, before its commit.
pub(crate) async fn left_unclaimed(txn: &DatabaseTransaction, first: Option<i64>, chained: &[Claimed]) -> Result<bool, DbErr> {
    let Some(first) = first else { return Ok(false) };
    Ok(chained.is_empty() || store::transitions::queued_from(txn, first).await?)
}

/// Hands `claimed`, committed, to `chain` (and counts it in the metrics).
pub(crate) fn committed(chain: Option<&mut Chain<'_>>, claimed: Vec<Claimed>) {
    if let Some(chain) = chain {
        crate::metrics::claimed(&claimed);
        chain.claimed = claimed;
    }
}

/// How many claims in this process returned more rows than asked for (each one logged at
/// error level and its extras handed back); stays 0 unless a claim statement misbehaves.
pub(crate) static OVERCLAIMS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Running task runs whose lease has expired (their worker died or hung), at most `limit`.
pub(crate) async fn expired(conn: &impl ConnectionTrait, limit: usize) -> Result<Vec<Claimed>, DbErr> {
    let ids = claims::expired(conn, limit).await?;
    claims::load(conn, &ids).await
}
