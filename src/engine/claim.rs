//! Claiming queued task runs for a worker, and reading what it needs to run them.

use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr};

use super::Effects;

pub(crate) use crate::store::claims::Claimed;
use crate::store::claims::Planner;
use crate::store::start_claims::StartClaims;
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
/// On PostgreSQL the stage starts claim as they insert ([`starts`], see
/// `store::start_claims`); what they leave is claimed after them ([`chained`]).
/// Only a worker that has started and is claiming chains (see
/// `worker::room_for_chained_claim`); a launch from a process that does not work leaves its
/// task runs to the claim loops of the processes that do.
/// Not on MySQL, whose claim takes share locks that a transition holding a run's lock should
/// not wait for.
pub(crate) struct Chain<'a> {
    pub(crate) claimant: Claimant<'a>,
    /// Called once, when work is to be claimed: reserves room for task runs in the worker and
    /// says how much (0: claim nothing).
    reserve: &'a mut (dyn FnMut() -> usize + Send),
    /// What the chained claim took, once committed.
    pub(crate) claimed: Vec<Claimed>,
    /// The room reserved, once it was.
    reserved: Option<usize>,
    /// What the current transaction's stage starts claimed: how many task runs, in which
    /// stage runs, and whether task runs of the worker's queues were queued (then some may
    /// come before what the starts left queued, in claim order).
    taken: usize,
    started: Vec<i64>,
    ahead: bool,
}

impl<'a> Chain<'a> {
    /// A chain for `claimant`, reserving its room with `reserve`.
    pub(crate) fn new(claimant: Claimant<'a>, reserve: &'a mut (dyn FnMut() -> usize + Send)) -> Chain<'a> {
        Chain { claimant, reserve, claimed: Vec::new(), reserved: None, taken: 0, started: Vec::new(), ahead: false }
    }

    /// The room not claimed yet in the current transaction, reserved at the first call.
    fn room_left(&mut self) -> usize {
        let reserved = match self.reserved {
            Some(reserved) => reserved,
            None => *self.reserved.insert((self.reserve)()),
        };
        reserved.saturating_sub(self.taken)
    }
}

/// A chain's claim at its transaction's stage starts (see `store::start_claims`).
pub(crate) struct Starts<'c, 'a> {
    claimant: Claimant<'a>,
    chain: std::sync::Mutex<&'c mut Chain<'a>>,
}

/// The claim at the stage starts of a transaction for `chain`, if any; what an earlier try of
/// the transaction (rolled back) claimed is forgotten, the room it reserved kept.
pub(crate) fn starts<'c, 'a>(chain: Option<&'c mut Chain<'a>>) -> Option<Starts<'c, 'a>> {
    let chain = chain?;
    chain.taken = 0;
    chain.started.clear();
    chain.ahead = false;
    Some(Starts { claimant: chain.claimant, chain: std::sync::Mutex::new(chain) })
}

impl<'c, 'a> Starts<'c, 'a> {
    /// As the stage starts' claim (`None` stays `None`).
    pub(crate) fn of<'s>(starts: &'s Option<Starts<'c, 'a>>) -> Option<&'s dyn StartClaims> {
        starts.as_ref().map(|s| s as &dyn StartClaims)
    }

    fn chain(&self) -> std::sync::MutexGuard<'_, &'c mut Chain<'a>> {
        self.chain.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl StartClaims for Starts<'_, '_> {
    fn worker(&self) -> &str {
        self.claimant.worker
    }

    fn queues(&self) -> &[String] {
        self.claimant.queues
    }

    fn lease(&self) -> std::time::Duration {
        self.claimant.lease
    }

    fn room(&self) -> usize {
        self.chain().room_left()
    }

    fn took(&self, stage_run_id: i64, claimed: usize, ahead: bool) {
        let mut chain = self.chain();
        chain.taken += claimed;
        if claimed > 0 {
            chain.started.push(stage_run_id);
        }
        chain.ahead |= ahead;
    }
}

/// What a chained claim took in a transaction.
#[derive(Debug, Default)]
pub(crate) struct Chained {
    /// The task runs, heaviest first.
    pub(crate) claimed: Vec<Claimed>,
    /// Whether queued task runs were claimed after the stage starts (else the starts' own
    /// claims, if any, are all: whatever they queued unclaimed is left queued).
    pub(crate) swept: bool,
}

/// Claims for `chain`, if any, inside transaction `txn` whose transition had `effects` (and
/// which has the claim's planner settings or not, `planner`: see [`claims::set_planner`]):
/// reads what its stage starts claimed and, unless they claimed while no task run of the
/// worker's queues was queued, claims queued task runs for the room left.
pub(crate) async fn chained(txn: &DatabaseTransaction, chain: Option<&mut Chain<'_>>, effects: Effects, planner: Planner) -> Result<Chained, DbErr> {
    let Some(chain) = chain else { return Ok(Chained::default()) };
    if !effects.queued_work || store::Backend::of(txn)? == store::Backend::MySql {
        return Ok(Chained::default());
    }
    let mut claimed = claims::load_started(txn, chain.claimant.worker, &chain.started).await?;
    if !claimed.is_empty() && !chain.ahead {
        return Ok(Chained { claimed, swept: false });
    }
    let room = chain.room_left();
    let more = claim_in(txn, &chain.claimant, room, planner).await?;
    if claimed.is_empty() {
        claimed = more;
    } else {
        claimed.extend(more);
        claimed.sort_by(|a, b| b.weight.total_cmp(&a.weight).then(a.task_run_id.cmp(&b.task_run_id)));
    }
    Ok(Chained { claimed, swept: true })
}

/// Whether the task runs that a transaction's stage starts queued without announcing them
/// (from id `first` on; `None`: none) are not all taken by its chained claim `chained`: then
/// the other processes are to be told (`work`). Read in the transaction, before its commit,
/// when a claim of queued task runs ran after the starts.
pub(crate) async fn left_unclaimed(txn: &DatabaseTransaction, first: Option<i64>, chained: &Chained) -> Result<bool, DbErr> {
    let Some(first) = first else { return Ok(false) };
    Ok(!chained.swept || chained.claimed.is_empty() || store::transitions::queued_from(txn, first).await?)
}

/// Hands `chained`, committed, to `chain` (and counts it in the metrics).
pub(crate) fn committed(chain: Option<&mut Chain<'_>>, chained: Chained) {
    if let Some(chain) = chain {
        crate::metrics::claimed(&chained.claimed);
        chain.claimed = chained.claimed;
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
