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
    let claimed = claim_in(&txn, &Claimant { worker, queues, lease }, limit, Planner::of(db)).await?;
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
    hand_back_extras(conn, &mut claimed, limit, "a claim").await?;
    Ok(claimed)
}

/// Hands back, in transaction `conn`, the task runs of `claimed` beyond `limit` (the room
/// `what` was given), queued again as they were, and logs and counts it ([`OVERCLAIMS`]):
/// never leave a claimed row with nobody to run it. Nothing when within the limit.
async fn hand_back_extras(conn: &impl ConnectionTrait, claimed: &mut Vec<Claimed>, limit: usize, what: &str) -> Result<(), DbErr> {
    if claimed.len() <= limit {
        return Ok(());
    }
    let extras: Vec<i64> = claimed.split_off(limit).iter().map(|c| c.task_run_id).collect();
    OVERCLAIMS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracing::error!(claimed = limit + extras.len(), limit, "{what} returned more task runs than there was room for; handing the extras back");
    claims::unclaim(conn, &extras).await?;
    Ok(())
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
    /// The worker's room, and the start of what is claimed in it.
    room: &'a dyn Room,
    /// The room reserved, once it was.
    reserved: Option<usize>,
    /// What the current transaction's stage starts claimed: how many task runs, the task runs
    /// (as each start read them), and whether task runs of the worker's queues were queued
    /// (then some may come before what the starts left queued, in claim order).
    taken: usize,
    started: Vec<Claimed>,
    ahead: bool,
    /// How many stage starts of the current transaction asked for room: after the first,
    /// a later one may have queued task runs heavier than what an earlier one claimed.
    starts_seen: usize,
}

/// The worker's side of a chained claim.
pub(crate) trait Room: Send + Sync {
    /// Reserves room for task runs in the worker and says how much (0: claim nothing). Called
    /// at most once per chain: at the first stage start that may claim (PostgreSQL), or when
    /// the chained claim runs.
    fn reserve(&self) -> usize;
    /// Starts the task runs the chained claim took, each in its room (the rest of the room is
    /// given back). Called right after the commit, before anything else the transition does
    /// after it (telling other processes takes a pooled connection, which 50 launches at
    /// once had kept the first task waiting for: 46-47 ms instead of 8-10).
    fn start(&self, claimed: Vec<Claimed>);
}

impl<'a> Chain<'a> {
    /// A chain for `claimant`, in the worker's `room`.
    pub(crate) fn new(claimant: Claimant<'a>, room: &'a dyn Room) -> Chain<'a> {
        Chain { claimant, room, reserved: None, taken: 0, started: Vec::new(), ahead: false, starts_seen: 0 }
    }

    /// The room not claimed yet in the current transaction, reserved at the first call.
    fn room_left(&mut self) -> usize {
        let reserved = match self.reserved {
            Some(reserved) => reserved,
            None => *self.reserved.insert(self.room.reserve()),
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
    chain.starts_seen = 0;
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
        let mut chain = self.chain();
        chain.starts_seen += 1;
        chain.room_left()
    }

    fn took(&self, _stage_run_id: i64, claimed: Vec<Claimed>, ahead: bool) {
        let mut chain = self.chain();
        chain.taken += claimed.len();
        chain.started.extend(claimed);
        chain.ahead |= ahead;
    }
}

/// What a chained claim took in a transaction.
#[derive(Debug, Default)]
pub(crate) struct ChainedClaim {
    /// The task runs, heaviest first.
    pub(crate) claimed: Vec<Claimed>,
    /// Whether queued task runs were claimed after the stage starts (else whatever the starts
    /// queued unclaimed is left queued).
    pub(crate) swept: bool,
    /// Whether stage starts claimed task runs themselves (and kept them).
    pub(crate) started_claimed: bool,
}

/// Claims for `chain`, if any, inside transaction `txn` whose transition had `effects` (and
/// which has the claim's planner settings or not, `planner`: see [`claims::set_planner`]):
/// takes what its stage starts claimed (each start's statement returned it) and, unless they
/// claimed while no task run of the worker's queues was queued, claims queued task runs for
/// the room left.
///
/// Each stage start claims what comes first in claim order when it runs. When more was
/// queued after a start that claimed (by a later stage start of the transaction, or
/// `queued_besides`: a retry, a run buffered behind one that ended), that may come first:
/// then, if a due queued task run outranks the last one claimed, the starts' claims are
/// given back and the room claimed in claim order.
pub(crate) async fn chained(
    txn: &DatabaseTransaction,
    chain: Option<&mut Chain<'_>>,
    effects: Effects,
    planner: Planner,
    queued_besides: bool,
) -> Result<ChainedClaim, DbErr> {
    let Some(chain) = chain else { return Ok(ChainedClaim::default()) };
    if !effects.queued_work || store::Backend::of(txn)? == store::Backend::MySql {
        return Ok(ChainedClaim::default());
    }
    // Each start returned its own, in no order: all of them in claim order.
    let mut claimed = std::mem::take(&mut chain.started);
    claims::in_claim_order(&mut claimed);
    hand_back_extras(txn, &mut claimed, chain.reserved.unwrap_or(0), "the stage starts' claim").await?;
    if let Some(last) = claimed.last()
        && (chain.starts_seen > 1 || queued_besides)
        && claims::outranked(txn, chain.claimant.queues, (last.weight, last.task_run_id)).await?
    {
        let ids: Vec<i64> = claimed.drain(..).map(|c| c.task_run_id).collect();
        claims::unclaim(txn, &ids).await?;
        chain.taken = 0;
    }
    let started_claimed = !claimed.is_empty();
    if started_claimed && !chain.ahead {
        return Ok(ChainedClaim { claimed, swept: false, started_claimed });
    }
    let room = chain.room_left();
    let more = claim_in(txn, &chain.claimant, room, planner).await?;
    if claimed.is_empty() {
        claimed = more;
    } else {
        claimed.extend(more);
        claims::in_claim_order(&mut claimed);
    }
    Ok(ChainedClaim { claimed, swept: true, started_claimed })
}

/// Whether the task runs that a transaction's stage starts queued without announcing them
/// (from id `first` on; `None`: none) are not all taken by its chained claim `chained`: then
/// the other processes are to be told (`work`). When queued task runs were claimed after the
/// starts, that is read in the transaction (before its commit); else they are all left.
pub(crate) async fn left_unclaimed(txn: &DatabaseTransaction, first: Option<i64>, chained: &ChainedClaim) -> Result<bool, DbErr> {
    let Some(first) = first else { return Ok(false) };
    Ok(!chained.swept || chained.claimed.is_empty() || store::transitions::queued_from(txn, first).await?)
}

/// Starts what `chained` took, committed, in `chain`'s room (and counts it in the metrics).
pub(crate) fn committed(chain: Option<&mut Chain<'_>>, chained: ChainedClaim) {
    if let Some(chain) = chain {
        crate::metrics::claimed(&chained.claimed);
        chain.room.start(chained.claimed);
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

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, Statement, TransactionTrait};

    use super::*;
    use crate::store::test_database::{self, define_weighed};
    use crate::store::transitions::{self, Announce, Starting};

    /// Room for 3, counting its reservations.
    #[derive(Default)]
    struct TestRoom {
        reserved: std::sync::atomic::AtomicUsize,
    }

    impl Room for TestRoom {
        fn reserve(&self) -> usize {
            self.reserved.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            3
        }

        fn start(&self, _claimed: Vec<Claimed>) {}
    }

    /// Two stage starts in one hand-off transaction, the first claiming all the room: the
    /// second's task runs are heavier, so the chained claim gives the first's back and takes
    /// the three heaviest, as a claim after both inserts would have.
    #[tokio::test]
    async fn claims_at_start_outranked_by_a_later_start_are_given_back_on_postgres() {
        let Some((db, url)) = test_database::postgres("chain_outranked", "chained claim test").await else { return };
        define_weighed(&db).await;
        let queues = vec!["default".to_owned()];
        let room = TestRoom::default();
        let mut chain = Chain::new(Claimant { worker: "w", queues: &queues, lease: std::time::Duration::from_secs(30) }, &room);
        let txn = db.begin().await.unwrap();
        let starts = starts(Some(&mut chain));
        let starting = Starting::hand_off(Announce::Later).claiming(Starts::of(&starts));
        let mut effects = Effects::default();
        for stage in [2, 3] {
            let started = transitions::start_stage_run(&txn, 1, stage, store::now(), starting).await.unwrap().expect("a new stage run");
            effects.queued_work |= started.queued > 0;
        }
        let chained = chained(&txn, Some(&mut chain), effects, Planner::Set, false).await.unwrap();
        assert_eq!(chained.claimed.iter().map(|c| c.task_id).collect::<Vec<_>>(), [3001, 3000, 3002], "heaviest first, in claim order");
        assert!(chained.swept && !chained.started_claimed);
        let row = txn
            .query_one_raw(Statement::from_string(
                txn.get_database_backend(),
                "SELECT COUNT(*) AS n FROM cog_task_run WHERE task_id BETWEEN 2000 AND 2002 AND status = 'queued' AND attempt = 0 AND worker IS NULL"
                    .to_owned(),
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.try_get::<i64>("", "n").unwrap(), 3, "stage 2's task runs are queued again, as before their claim");
        txn.rollback().await.unwrap();
        assert_eq!(room.reserved.load(std::sync::atomic::Ordering::Relaxed), 1, "the room is reserved once");
        db.close().await.unwrap();
        test_database::drop(&url).await;
    }
}
