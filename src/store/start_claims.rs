//! Claiming a stage's task runs as its start inserts them (PostgreSQL): the worker whose
//! transaction starts the stage takes what it has room for, written `running` at once.
//!
//! A stage hand-off (an outcome's transaction that starts the next stage) and a launch by an
//! idle worker chain a claim to their transaction (`engine::claim::Chain`), which then took
//! the task runs the stage start had just queued: each task run was written twice in the
//! transaction, queued and then running, a row version and its index entries each (28 µs a
//! task run in the claim's update on a busy 2-core machine). Workload F on PostgreSQL (50
//! runs of 5 stages of 40 tasks) claimed 79 % (one process) to 94 % (four) of its task runs
//! that way, 2026-12-05. Written `running` by the start itself, they are written once.
//!
//! The claim at start takes only what the chained claim would have taken first: task runs
//! of the worker's queues that are not paused (their `cog_queue` rows held in share mode until
//! commit, as a claim holds them), heavier than every due queued task run of those queues,
//! heaviest first, as many as there is room for. Those come first in claim order (weight,
//! then id: a queued task run of the same weight is older): DESIGN invariant 9, workers take
//! queued task runs heaviest first. When task runs were queued, the chained claim still runs
//! after the starts, for the room left; it takes the next in claim order, among them and what
//! the starts left queued. And when more was queued after a start that claimed (a later
//! stage start of the same transaction, a retry, a run buffered behind one that ended), the
//! chained claim checks that none of it comes first, else gives the starts' claims back and
//! claims in claim order (`engine::claim::chained`).
//!
//! A task run claimed at its stage's start is due and claimed at the same instant
//! (`run_after` = `started_at`, this process's clock, as a claim's `started_at` is): it
//! spent no time queued.

use std::time::Duration;

use super::claims::Claimed;

/// A worker's claim at the stage starts of one transaction: who claims, and room to claim
/// in. Shared by the transaction's stage starts, which run one after the other.
pub(crate) trait StartClaims: Sync {
    /// The claiming worker's name.
    fn worker(&self) -> &str;
    /// The queues it serves.
    fn queues(&self) -> &[String];
    /// The lease it takes.
    fn lease(&self) -> Duration;
    /// How many task runs the next stage start may claim; asked once by each stage start (the
    /// worker's room is reserved at the first call: a transaction that starts no stage
    /// reserves none).
    fn room(&self) -> usize;
    /// Records that the start of stage run `stage_run_id` claimed `claimed` (returned with
    /// their definitions by the start's statement, in no particular order), and whether task
    /// runs of the worker's queues were queued (`ahead`: then what the starts did not claim may
    /// still come before them in claim order).
    fn took(&self, stage_run_id: i64, claimed: Vec<Claimed>, ahead: bool);
}

/// A claim at start with a fixed room, recording what it took: for the warm-up, which plans
/// a claiming stage start with it, and for tests.
#[derive(Debug)]
pub(crate) struct FixedRoom {
    pub(crate) worker: String,
    pub(crate) queues: Vec<String>,
    /// Room left.
    pub(crate) room: std::sync::Mutex<usize>,
    /// `(stage_run_id, how many claimed, ahead)` of each start that reported.
    pub(crate) took: std::sync::Mutex<Vec<(i64, usize, bool)>>,
    /// What the starts claimed, as they read it, in the order they reported.
    pub(crate) claimed: std::sync::Mutex<Vec<Claimed>>,
}

impl FixedRoom {
    /// Room for `room` task runs of `queues`, for worker `worker`.
    pub(crate) fn new(worker: &str, queues: &[String], room: usize) -> FixedRoom {
        FixedRoom {
            worker: worker.to_owned(),
            queues: queues.to_vec(),
            room: std::sync::Mutex::new(room),
            took: std::sync::Mutex::new(Vec::new()),
            claimed: std::sync::Mutex::new(Vec::new()),
        }
    }
}

impl StartClaims for FixedRoom {
    fn worker(&self) -> &str {
        &self.worker
    }

    fn queues(&self) -> &[String] {
        &self.queues
    }

    fn lease(&self) -> Duration {
        Duration::from_secs(30)
    }

    fn room(&self) -> usize {
        *self.room.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn took(&self, stage_run_id: i64, claimed: Vec<Claimed>, ahead: bool) {
        let mut room = self.room.lock().unwrap_or_else(|e| e.into_inner());
        *room = room.saturating_sub(claimed.len());
        self.took.lock().unwrap_or_else(|e| e.into_inner()).push((stage_run_id, claimed.len(), ahead));
        self.claimed.lock().unwrap_or_else(|e| e.into_inner()).extend(claimed);
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, Statement, TransactionTrait};

    use super::FixedRoom;
    use crate::store::test_database::{self, define_weighed};
    use crate::store::transitions::{self, Announce, Starting};
    use crate::store::{claims, now};

    /// `(task_id, status, attempt, worker, lease set)` of the task runs of stage run `stage_run`, by id.
    async fn task_runs(txn: &DatabaseTransaction, stage_run: i64) -> Vec<(i64, String, i32, Option<String>, bool)> {
        let sql = format!(
            "SELECT task_id, status, attempt, worker, lease_until IS NOT NULL AS leased FROM cog_task_run WHERE stage_run_id = {stage_run} ORDER BY id"
        );
        let rows = txn.query_all_raw(Statement::from_string(txn.get_database_backend(), sql)).await.unwrap();
        rows.iter()
            .map(|r| {
                (
                    r.try_get_by_index(0).unwrap(),
                    r.try_get_by_index(1).unwrap(),
                    r.try_get_by_index(2).unwrap(),
                    r.try_get_by_index(3).unwrap(),
                    r.try_get_by_index(4).unwrap(),
                )
            })
            .collect()
    }

    /// Starts stage `stage` of run 1 as a hand-off claiming for `room`; returns its stage run
    /// and where its unannounced task runs begin.
    async fn start(txn: &DatabaseTransaction, stage: i64, room: Option<&FixedRoom>) -> (i64, Option<i64>) {
        let starting = Starting::hand_off(Announce::Later).claiming(room.map(|r| r as &dyn super::StartClaims));
        let started = transitions::start_stage_run(txn, 1, stage, now(), starting).await.unwrap().expect("a new stage run");
        (started.stage_run_id, started.unannounced_from)
    }

    /// A PostgreSQL test database (`suffix`) with [`define_weighed`]'s definitions; `None`
    /// when skipped.
    async fn weighed_postgres(suffix: &str) -> Option<(DatabaseConnection, String)> {
        let (db, url) = test_database::postgres(suffix, "claim-at-start test").await?;
        define_weighed(&db).await;
        Some((db, url))
    }

    /// Closes `db` and drops its database `url`.
    async fn close(db: DatabaseConnection, url: &str) {
        db.close().await.unwrap();
        test_database::drop(url).await;
    }

    /// What the starts claimed for `room`, heaviest first, then by id.
    fn claimed_in_claim_order(room: &FixedRoom) -> Vec<claims::Claimed> {
        let mut claimed = room.claimed.lock().unwrap().clone();
        claims::in_claim_order(&mut claimed);
        claimed
    }

    fn default_queue() -> Vec<String> {
        vec!["default".to_owned()]
    }

    #[tokio::test]
    async fn a_stage_start_claims_the_heaviest_it_has_room_for_on_postgres() {
        let Some((db, url)) = weighed_postgres("start_claims").await else { return };
        let txn = db.begin().await.unwrap();
        let room = FixedRoom::new("w", &default_queue(), 3);
        let (stage_run, first_queued) = start(&txn, 1, Some(&room)).await;
        let w = Some("w".to_owned());
        assert_eq!(
            task_runs(&txn, stage_run).await,
            [
                (1000, "queued".into(), 0, None, false),
                (1001, "running".into(), 1, w.clone(), true),
                (1002, "queued".into(), 0, None, false),
                (1003, "running".into(), 1, w.clone(), true),
                (1004, "running".into(), 1, w.clone(), true),
            ],
            "the three heaviest are claimed, as a claim after the insert would take them"
        );
        assert_eq!(*room.took.lock().unwrap(), [(stage_run, 3, false)]);
        assert_eq!(*room.room.lock().unwrap(), 0, "the room is used up");
        let queued_ids: Vec<i64> = txn
            .query_all_raw(Statement::from_string(
                txn.get_database_backend(),
                format!("SELECT id FROM cog_task_run WHERE stage_run_id = {stage_run} AND status = 'queued' ORDER BY id"),
            ))
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get_by_index(0).unwrap())
            .collect();
        assert_eq!(first_queued, queued_ids.first().copied(), "only what is left queued is to be announced");
        let lagless = txn
            .query_one_raw(Statement::from_string(
                txn.get_database_backend(),
                format!("SELECT COUNT(*) FROM cog_task_run WHERE stage_run_id = {stage_run} AND status = 'running' AND started_at = run_after"),
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(lagless.try_get_by_index::<i64>(0).unwrap(), 3, "claimed as they were queued: started_at is run_after");
        let loaded = claimed_in_claim_order(&room);
        assert_eq!(
            loaded.iter().map(|c| (c.task_id, c.weight, c.attempt, c.stage_run_id)).collect::<Vec<_>>(),
            [(1001, 3.0, 1, stage_run), (1003, 3.0, 1, stage_run), (1004, 2.0, 1, stage_run)],
            "read by the start itself"
        );
        let mut read = claims::load(&txn, &loaded.iter().map(|c| c.task_run_id).collect::<Vec<_>>()).await.unwrap();
        read.sort_by_key(|r| loaded.iter().position(|l| l.task_run_id == r.task_run_id));
        assert_eq!(format!("{loaded:?}"), format!("{read:?}"), "what the start read is what its rows and their definitions say");
        txn.rollback().await.unwrap();
        close(db, &url).await;
    }

    #[tokio::test]
    async fn queued_task_runs_of_at_least_the_weight_go_first_on_postgres() {
        let Some((db, url)) = weighed_postgres("start_claims_ahead").await else { return };
        let txn = db.begin().await.unwrap();
        // Stage 1's five task runs queued, unclaimed (weights 1, 3, 1, 3, 2).
        start(&txn, 1, None).await;
        // Stage 2 weighs 3 each: the two queued ones of weight 3 are older, so first.
        let room = FixedRoom::new("w", &default_queue(), 4);
        let (second, first_queued) = start(&txn, 2, Some(&room)).await;
        assert!(task_runs(&txn, second).await.iter().all(|t| t.1 == "queued"), "nothing claimed behind heavier or older queued runs");
        assert!(first_queued.is_some());
        assert_eq!(*room.took.lock().unwrap(), [(second, 0, true)]);
        // Stage 3 weighs 4, 5, 4: heavier than any queued, all three claimed, heaviest first;
        // the room left (1) is for the chained claim, which takes the next in claim order.
        let (third, first_queued) = start(&txn, 3, Some(&room)).await;
        let statuses: Vec<String> = task_runs(&txn, third).await.into_iter().map(|t| t.1).collect();
        assert_eq!(statuses, ["running", "running", "running"]);
        assert_eq!(first_queued, None, "nothing of it left to announce");
        assert_eq!(room.took.lock().unwrap()[1], (third, 3, true), "task runs were queued: the chained claim still runs for the room left");
        let loaded = claimed_in_claim_order(&room).iter().map(|c| c.task_id).collect::<Vec<_>>();
        assert_eq!(loaded, [3001, 3000, 3002], "heaviest first, then by id");
        txn.rollback().await.unwrap();
        close(db, &url).await;
    }

    /// A later start of the same transaction may queue task runs heavier than what an earlier
    /// one claimed: `claims::outranked` tells (and `engine::claim::chained` then claims again
    /// in claim order).
    #[tokio::test]
    async fn a_later_start_can_outrank_an_earlier_claim_on_postgres() {
        let Some((db, url)) = weighed_postgres("start_claims_later").await else { return };
        let txn = db.begin().await.unwrap();
        let room = FixedRoom::new("w", &default_queue(), 3);
        let (second, _) = start(&txn, 2, Some(&room)).await;
        let (third, _) = start(&txn, 3, Some(&room)).await;
        assert_eq!(*room.took.lock().unwrap(), [(second, 3, false)], "the room went to the first start; the second had none");
        assert!(task_runs(&txn, third).await.iter().all(|t| t.1 == "queued"));
        let last = claimed_in_claim_order(&room).last().map(|c| (c.weight, c.task_run_id)).unwrap();
        assert!(claims::outranked(&txn, &default_queue(), last).await.unwrap(), "stage 3's queued task runs (4, 5, 4) outrank stage 2's (3)");
        assert!(!claims::outranked(&txn, &default_queue(), (5.0, 0)).await.unwrap(), "nothing queued is heavier than 5");
        assert!(!claims::outranked(&txn, &["other".to_owned()], last).await.unwrap(), "nothing is queued on another queue");
        txn.rollback().await.unwrap();
        close(db, &url).await;
    }

    #[tokio::test]
    async fn a_paused_or_unserved_queue_is_not_claimed_at_start_on_postgres() {
        let Some((db, url)) = weighed_postgres("start_claims_paused").await else { return };
        let txn = db.begin().await.unwrap();
        let elsewhere = FixedRoom::new("w", &["other".to_owned()], 8);
        let (stage_run, _) = start(&txn, 1, Some(&elsewhere)).await;
        assert!(task_runs(&txn, stage_run).await.iter().all(|t| t.1 == "queued"), "a queue the worker does not serve");
        assert_eq!(*elsewhere.took.lock().unwrap(), [(stage_run, 0, false)]);
        txn.execute_unprepared("UPDATE cog_queue SET paused = true WHERE name = 'default'").await.unwrap();
        let room = FixedRoom::new("w", &default_queue(), 8);
        let (stage_run, _) = start(&txn, 2, Some(&room)).await;
        assert!(task_runs(&txn, stage_run).await.iter().all(|t| t.1 == "queued"), "a paused queue");
        assert_eq!(*room.took.lock().unwrap(), [(stage_run, 0, false)]);
        txn.rollback().await.unwrap();
        close(db, &url).await;
    }

    /// SQLite's stage starts queue only; the chained claim takes them after.
    #[tokio::test]
    async fn sqlite_stage_starts_only_queue() {
        let db = test_database::sqlite().await;
        define_weighed(&db).await;
        let txn = db.begin().await.unwrap();
        let room = FixedRoom::new("w", &default_queue(), 8);
        let (stage_run, _) = start(&txn, 1, Some(&room)).await;
        assert!(task_runs(&txn, stage_run).await.iter().all(|t| t.1 == "queued"));
        assert!(room.took.lock().unwrap().is_empty());
        txn.rollback().await.unwrap();
    }
}
