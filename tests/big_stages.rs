//! Big stages, whose first task runs are queued by the stage start (16 at a launch, 500 at a
//! hand-off) and the rest after it in chunks growing fourfold from 128 to 5,000 (issue 11):
//! every task runs exactly once, a launch returns once its stages are fully queued,
//! a launch in the host's transaction queues everything in it, a fill left half done by a
//! process that stopped is taken over, and a cancel in the middle of a fill queues nothing more;
//! prunes racing stage starts, fills and cancels leave no task run without its parents.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use cog::{PipelineSpec, RunStatus, StageSpec, TaskSpec, cog};
use sea_orm::TransactionTrait;
use serde_json::json;
use support::{TestDb, assert_no_orphans, orphan_stage_runs, orphan_task_runs, probe, scalar, wait, wait_within};

/// The number of task runs a hand-off's stage start queues before the rest is queued after
/// commit.
const CHUNK: usize = 500;

/// The most tasks of a stage a launch's stage start queues whole (of a bigger one, the first
/// 16, the rest after commit).
const SMALL_STAGE: usize = 64;

/// Counts its calls in `key`'s probe.
#[cog]
fn big_count(key: String) {
    probe(&key).calls.fetch_add(1, Ordering::SeqCst);
}

/// A stage of `tasks` counting tasks.
fn stage(name: &str, key: &str, tasks: usize) -> StageSpec {
    (0..tasks).fold(StageSpec::new(name), |s, i| s.task(TaskSpec::new("big_count").name(format!("t{i}")).args(json!({"key": key}))))
}

/// Task runs of stage `stage` in run `run_id`, and how many of them have `status`.
async fn task_runs(rt: &cog::CogRuntime, run_id: i64, stage: &str, status: Option<&str>) -> i64 {
    let status = status.map(|s| format!(" AND tr.status = '{s}'")).unwrap_or_default();
    scalar(
        rt,
        &format!(
            "SELECT COUNT(*) FROM cog_task_run tr JOIN cog_stage_run sr ON sr.id = tr.stage_run_id JOIN cog_stage s ON s.id = sr.stage_id \
             WHERE sr.pipeline_run_id = {run_id} AND s.name = '{stage}'{status}"
        ),
    )
    .await
}

/// Stage runs of run `run_id` still marked as filling.
async fn filling(rt: &cog::CogRuntime, run_id: i64) -> i64 {
    scalar(rt, &format!("SELECT COUNT(*) FROM cog_stage_run WHERE pipeline_run_id = {run_id} AND fill_after IS NOT NULL")).await
}

/// Leaves run `run_id`'s stage `stage` as a process that stopped after the stage start
/// committed leaves it: only the first chunk of task runs queued, the stage run marked as
/// filling after the chunk's last task, and the job held by nobody (`lease`: `NULL`) or by a
/// lease that has run out (`started_at`, in the past).
async fn leave_half_filled(rt: &cog::CogRuntime, run_id: i64, stage: &str, lease: &str) {
    let stage_run = scalar(
        rt,
        &format!("SELECT sr.id FROM cog_stage_run sr JOIN cog_stage s ON s.id = sr.stage_id WHERE sr.pipeline_run_id = {run_id} AND s.name = '{stage}'"),
    )
    .await;
    let tasks = support::rows(rt, &format!("SELECT task_id FROM cog_task_run WHERE stage_run_id = {stage_run} ORDER BY task_id")).await;
    let last_of_chunk: i64 = tasks[CHUNK - 1].try_get_by_index(0).unwrap();
    let db = rt.connection();
    let exec = |sql: String| async move { sea_orm::ConnectionTrait::execute_unprepared(db, &sql).await.unwrap() };
    exec(format!("DELETE FROM cog_task_run WHERE stage_run_id = {stage_run} AND task_id > {last_of_chunk}")).await;
    exec(format!("UPDATE cog_stage_run SET fill_after = {last_of_chunk}, fill_lease_until = {lease} WHERE id = {stage_run}")).await;
    assert_eq!(task_runs(rt, run_id, stage, None).await, CHUNK as i64);
}

async fn every_task_of_big_stages_runs_once(db: TestDb) {
    let rt = db.runtime().await;
    let key = db.url.as_str();
    // `big` (the start's chunk of 16, then chunks of 128, 512, 2,048 and a last one of 296:
    // every size of the ramp below its cap), `launch_exact` (the most a launch queues whole)
    // and `launch_more` (one more: 16, then the rest) are started by the launch, `exact` (exactly a hand-off's
    // chunk) and `big2` by the outcome of `between`'s task, in a worker. (5,700 tasks here
    // made the MySQL run take 55-63 s on a loaded machine. These 4,000-odd took 28 s alone on
    // MariaDB on 2026-12-05, on a machine half as fast as the day before, and over 60 s beside
    // the other tests of this file: the run may take 4 minutes before that is taken for a hang.)
    rt.define(
        PipelineSpec::new("p")
            .stage(stage("big", key, 3_000))
            .stage(stage("launch_exact", key, SMALL_STAGE))
            .stage(stage("launch_more", key, SMALL_STAGE + 1))
            .stage(stage("between", key, 1).after(["big", "launch_exact", "launch_more"]))
            .stage(stage("exact", key, CHUNK).after(["between"]))
            .stage(stage("big2", key, 700).after(["between"])),
    )
    .await
    .unwrap();
    let run = rt.launch("p").await.unwrap();
    // The launch returned once the stage it started was fully queued.
    assert_eq!(task_runs(&rt, run.id(), "big", Some("queued")).await, 3_000);
    assert_eq!(task_runs(&rt, run.id(), "launch_exact", Some("queued")).await, SMALL_STAGE as i64);
    assert_eq!(task_runs(&rt, run.id(), "launch_more", Some("queued")).await, SMALL_STAGE as i64 + 1);
    assert_eq!(filling(&rt, run.id()).await, 0);
    rt.start();
    assert_eq!(wait_within(&run, Duration::from_secs(240)).await, RunStatus::Completed);
    let stages =
        [("big", 3_000), ("launch_exact", SMALL_STAGE as i64), ("launch_more", SMALL_STAGE as i64 + 1), ("between", 1), ("exact", CHUNK as i64), ("big2", 700)];
    for (stage, tasks) in stages {
        assert_eq!(task_runs(&rt, run.id(), stage, Some("completed")).await, tasks, "stage {stage}");
        assert_eq!(task_runs(&rt, run.id(), stage, None).await, tasks, "stage {stage}");
    }
    let all: i64 = stages.iter().map(|(_, tasks)| tasks).sum();
    assert_eq!(probe(key).calls.load(Ordering::SeqCst), all as usize, "every task ran exactly once");
    assert_eq!(filling(&rt, run.id()).await, 0);
    assert_no_orphans(&rt).await;
    rt.shutdown().await;
}

async fn a_launch_in_the_hosts_transaction_queues_the_whole_stage_in_it(db: TestDb) {
    let rt = db.runtime().await;
    rt.define(PipelineSpec::new("p").stage(stage("big", db.url.as_str(), 4_500))).await.unwrap();
    let txn = rt.connection().begin().await.unwrap();
    let run = rt.launch_in(&txn, "p", json!({})).await.unwrap();
    txn.commit().await.unwrap();
    assert_eq!(task_runs(&rt, run.id(), "big", Some("queued")).await, 4_500);
    assert_eq!(filling(&rt, run.id()).await, 0, "nothing is left to queue after the host's commit");
    rt.cancel(run.id()).await.unwrap();
}

async fn a_fill_left_half_done_is_taken_over(db: TestDb) {
    let rt = db.runtime().await;
    let key = db.url.as_str();
    rt.define(PipelineSpec::new("p").prevent_overlap(false).stage(stage("big", key, 4_500))).await.unwrap();
    // One fill nobody ever took, one whose holder's lease ran out.
    let never_taken = rt.launch("p").await.unwrap();
    leave_half_filled(&rt, never_taken.id(), "big", "NULL").await;
    let expired = rt.launch("p").await.unwrap();
    leave_half_filled(&rt, expired.id(), "big", "started_at").await;
    // A worker's fill loop (at start, then every half lease) queues the rest.
    rt.start();
    for run in [&never_taken, &expired] {
        assert_eq!(wait(run).await, RunStatus::Completed);
        assert_eq!(task_runs(&rt, run.id(), "big", Some("completed")).await, 4_500);
        assert_eq!(filling(&rt, run.id()).await, 0);
    }
    assert_eq!(probe(key).calls.load(Ordering::SeqCst), 9_000, "every task ran exactly once");
    assert_no_orphans(&rt).await;
    rt.shutdown().await;
}

async fn a_cancel_in_the_middle_of_a_fill_queues_nothing_more(db: TestDb) {
    let rt = db.runtime().await;
    let key = db.url.as_str();
    rt.define(PipelineSpec::new("p").stage(stage("big", key, 4_500))).await.unwrap();
    let run = rt.launch("p").await.unwrap();
    leave_half_filled(&rt, run.id(), "big", "NULL").await;
    rt.cancel(run.id()).await.unwrap();
    assert_eq!(filling(&rt, run.id()).await, 0, "the canceled stage run is no longer filling");
    rt.start();
    assert_eq!(wait(&run).await, RunStatus::Canceled);
    assert_eq!(task_runs(&rt, run.id(), "big", Some("canceled")).await, CHUNK as i64, "the queued chunk is canceled");
    assert_eq!(task_runs(&rt, run.id(), "big", None).await, CHUNK as i64, "nothing more was queued");
    assert_eq!(probe(key).calls.load(Ordering::SeqCst), 0);
    assert_no_orphans(&rt).await;
    rt.shutdown().await;
}

/// Prunes deleting each run as soon as it has ended, while stage starts, fills and cancels of
/// other runs go on, leave no task run without its stage run or its task (on PostgreSQL and
/// MariaDB no foreign key checks that: only the order of cog's own statements keeps it). Each
/// run's second stage is started by the first one's outcome and filled after it in chunks;
/// half of the runs are canceled once that has begun.
async fn prunes_racing_stage_starts_fills_and_cancels_leave_no_orphan(db: TestDb) {
    const RUNS: usize = 4;
    let rt = db.runtime().await;
    let key = db.url.as_str();
    let pipeline = PipelineSpec::new("p").prevent_overlap(false).stage(stage("first", key, 1)).stage(stage("big", key, 700).after(["first"]));
    rt.define(pipeline).await.unwrap();
    rt.start();
    let runs = futures::future::try_join_all((0..RUNS).map(|_| rt.launch("p"))).await.unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pruner = {
        let (rt, stop) = (rt.clone(), std::sync::Arc::clone(&stop));
        tokio::spawn(async move {
            let mut pruned = 0;
            while !stop.load(Ordering::SeqCst) {
                pruned += rt.prune(chrono::Duration::zero()).await.expect("prune").pipeline_runs;
                tokio::task::yield_now().await;
            }
            pruned
        })
    };
    for run in runs.iter().step_by(2) {
        // A run may have ended (and even been pruned) before its turn comes: then nothing is
        // left to cancel.
        let id = run.id();
        let running = format!("SELECT COUNT(*) FROM cog_pipeline_run WHERE id = {id} AND status = 'running'");
        support::eventually("the big stage to start, or the run to end", || async {
            task_runs(&rt, id, "big", None).await > 0 || scalar(&rt, &running).await == 0
        })
        .await;
        match rt.cancel(id).await {
            Ok(()) | Err(cog::Error::UnknownRun { .. }) => {}
            Err(e) => panic!("cancel of run {id}: {e}"),
        }
    }
    // Longer than `eventually`'s 30 s: on a loaded machine MariaDB runs these tasks slowly
    // (the 5,700 of `every_task_of_big_stages_runs_once` took 55–63 s there).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while scalar(&rt, "SELECT COUNT(*) FROM cog_pipeline_run").await > 0 {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for every run to end and be pruned");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let pruned = pruner.await.unwrap();
    assert_eq!(pruned, RUNS as u64, "each run pruned once");
    assert_no_orphans(&rt).await;
    assert_eq!(scalar(&rt, "SELECT COUNT(*) FROM cog_task_run").await, 0, "nothing left under the pruned runs");
    rt.shutdown().await;
}

/// The orphan checks find a task run whose stage run and task do not exist, and a stage run
/// whose pipeline run and stage do not exist: SQLite refuses to write them (its foreign keys
/// stay); PostgreSQL and MariaDB write them, and the checks count them.
async fn the_orphan_check_finds_an_orphan(db: TestDb) {
    let rt = db.runtime().await;
    let insert = "INSERT INTO cog_task_run (stage_run_id, task_id, status, queue, weight, attempt, run_after) \
                  VALUES (-7, -7, 'canceled', 'default', 1, 1, CURRENT_TIMESTAMP)";
    let written = sea_orm::ConnectionTrait::execute_unprepared(rt.connection(), insert).await;
    let stage_run = "INSERT INTO cog_stage_run (pipeline_run_id, stage_id, status) VALUES (-7, -7, 'canceled')";
    let stage_run_written = sea_orm::ConnectionTrait::execute_unprepared(rt.connection(), stage_run).await;
    if db.backend == "sqlite" {
        assert!(written.is_err(), "SQLite checks a task run's parents");
        assert!(stage_run_written.is_err(), "SQLite checks a stage run's parents");
        assert_eq!((orphan_task_runs(&rt).await, orphan_stage_runs(&rt).await), (0, 0));
        return;
    }
    written.unwrap();
    stage_run_written.unwrap();
    assert_eq!((orphan_task_runs(&rt).await, orphan_stage_runs(&rt).await), (1, 1));
    sea_orm::ConnectionTrait::execute_unprepared(rt.connection(), "DELETE FROM cog_task_run WHERE stage_run_id = -7").await.unwrap();
    sea_orm::ConnectionTrait::execute_unprepared(rt.connection(), "DELETE FROM cog_stage_run WHERE pipeline_run_id = -7").await.unwrap();
    assert_eq!((orphan_task_runs(&rt).await, orphan_stage_runs(&rt).await), (0, 0));
}

on_all_backends!(
    every_task_of_big_stages_runs_once,
    a_launch_in_the_hosts_transaction_queues_the_whole_stage_in_it,
    a_fill_left_half_done_is_taken_over,
    a_cancel_in_the_middle_of_a_fill_queues_nothing_more,
    prunes_racing_stage_starts_fills_and_cancels_leave_no_orphan,
    the_orphan_check_finds_an_orphan,
);
