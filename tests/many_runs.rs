//! Many runs of one pipeline at once (issue 11, workload F's shape): launches of an `allow`
//! pipeline go side by side, a process writes the outcomes of many runs through a few
//! writers, runs of one pipeline end together and learn weights one after the other, and a
//! stage started by an outcome claims its task runs in that outcome's transaction — never
//! from a paused queue.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use cog::{PipelineSpec, RunStatus, StageSpec, TaskSpec, cog};
use sea_orm::{ConnectionTrait, TransactionTrait};
use serde_json::json;
use support::{TestDb, assert_no_orphans, eventually, probe, rows, scalar, task_statuses, test_config, wait};

const RUNS: usize = 30;
const STAGES: usize = 3;
const TASKS: usize = 4;

/// Sleeps `ms` milliseconds (a launch argument: each run's durations differ).
#[cog]
async fn mr_sleep(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

#[cog]
fn mr_noop() -> i64 {
    1
}

/// Arrives at the test's probe `key` and waits for the test to open it.
#[cog]
async fn mr_gated(key: String) {
    probe(&key).arrive_and_pass().await;
}

fn many_stages() -> PipelineSpec {
    (0..STAGES).fold(PipelineSpec::new("many").prevent_overlap(false), |p, s| {
        let stage =
            (0..TASKS).fold(StageSpec::new(format!("s{s}")), |st, t| st.task(TaskSpec::new("mr_sleep").name(format!("t{s}_{t}")).args(json!({"ms": 1}))));
        let stage = if s == 0 { stage } else { stage.after([format!("s{}", s - 1)]) };
        p.stage(stage)
    })
}

/// Each task's weight next to the mean, in seconds, of the durations of its `sample` last
/// completed task runs (by id, as learned).
async fn weights_and_means(rt: &cog::CogRuntime, sample: usize) -> Vec<(String, f64, f64)> {
    let mut out = Vec::new();
    for task in rows(rt, "SELECT name, weight FROM cog_task ORDER BY name").await {
        let name: String = task.try_get_by_index(0).unwrap();
        let weight: f64 = task.try_get_by_index(1).unwrap();
        let sql = format!(
            "SELECT tr.duration_ms FROM cog_task_run tr JOIN cog_task t ON t.id = tr.task_id \
             WHERE t.name = '{name}' AND tr.status = 'completed' ORDER BY tr.id DESC LIMIT {sample}"
        );
        let durations: Vec<i64> = rows(rt, &sql).await.iter().map(|r| r.try_get_by_index::<i64>(0).unwrap()).collect();
        let mean = durations.iter().sum::<i64>() as f64 / durations.len() as f64 / 1000.0;
        out.push((name, weight, mean));
    }
    out
}

async fn many_runs_launched_at_once_all_complete_and_learn_every_weight(db: TestDb) {
    let a = db.runtime_with(|b| b.config(test_config().weight_sample_size(5))).await;
    let b = db.runtime_with(|b| b.config(test_config().weight_sample_size(5)).scheduler(false)).await;
    a.define(many_stages()).await.unwrap();
    a.start();
    if db.backend != "sqlite" {
        b.start();
    }
    let launches = (0..RUNS).map(|i| a.launch_with("many", json!({"ms": 1 + i % 4})));
    let runs = futures::future::try_join_all(launches).await.expect("every launch of an `allow` pipeline is accepted");
    for run in &runs {
        assert_eq!(wait(run).await, RunStatus::Completed, "{:?}", task_statuses(&a, run.id()).await);
    }
    let total = (RUNS * STAGES * TASKS) as i64;
    assert_eq!(scalar(&a, "SELECT COUNT(*) FROM cog_task_run WHERE status = 'completed' AND attempt = 1").await, total, "every task run ran once");
    assert_eq!(scalar(&a, "SELECT COUNT(*) FROM cog_task_run").await, total);
    assert_no_orphans(&a).await;
    // The runs ended together; the last one to learn read every duration committed before it.
    for (task, weight, mean) in weights_and_means(&a, 5).await {
        assert!((weight - mean).abs() < 1e-9, "task {task}: weight {weight}, mean of its last 5 durations {mean}");
    }
    a.shutdown().await;
    b.shutdown().await;
}

/// The second stage is started by the first one's outcome, in a transaction that claims what
/// it queued: its queue being paused, nothing of it is claimed until the resume.
async fn a_stage_started_by_an_outcome_waits_while_its_queue_is_paused(db: TestDb) {
    let rt = db.runtime_with(|b| b.queues(["default", "slow"])).await;
    rt.define(
        PipelineSpec::new("paused_next")
            .stage(StageSpec::new("first").task(TaskSpec::new("mr_noop").name("a")))
            .stage(StageSpec::new("second").after(["first"]).task(TaskSpec::new("mr_noop").name("b").queue("slow"))),
    )
    .await
    .unwrap();
    rt.pause_queue("slow").await.unwrap();
    rt.start();
    let run = rt.launch("paused_next").await.unwrap();
    // The first stage's outcome starts the second stage and (in the same transaction) claims.
    eventually("the second stage started", || async {
        scalar(&rt, "SELECT COUNT(*) FROM cog_task_run tr JOIN cog_task t ON t.id = tr.task_id WHERE t.name = 'b'").await == 1
    })
    .await;
    assert_eq!(task_statuses(&rt, run.id()).await, [("a".to_owned(), "completed".to_owned()), ("b".to_owned(), "queued".to_owned())]);
    rt.resume_queue("slow").await.unwrap();
    assert_eq!(wait(&run).await, RunStatus::Completed);
    rt.shutdown().await;
}

/// Runs of [`runs_ending_together_are_written_together_and_each_moves_on`].
const TOGETHER: usize = 8;

/// The first stages of several runs end together in one process (their cogs held at a gate
/// and let go at once): each run moves on to its second stage and completes, and learns its
/// weights before its `wait()` returns. On PostgreSQL the successes of several of those runs
/// are written by one transaction (one `completed_at` for all of them): the test holds the
/// runs' locks while the cogs end, so that the outcomes gather behind the first writes.
async fn runs_ending_together_are_written_together_and_each_moves_on(db: TestDb) {
    let rt = db.runtime_with(|b| b.concurrency(32).config(test_config().weight_sample_size(3))).await;
    let key = format!("together_{}", db.backend);
    let gated = |name: &str| TaskSpec::new("mr_gated").name(name).args(json!({ "key": key }));
    rt.define(
        PipelineSpec::new("together")
            .prevent_overlap(false)
            .stage(StageSpec::new("first").task(gated("a")).task(gated("b")).task(gated("c")))
            .stage(StageSpec::new("second").after(["first"]).task(TaskSpec::new("mr_noop").name("d"))),
    )
    .await
    .unwrap();
    rt.start();
    let runs = futures::future::try_join_all((0..TOGETHER).map(|_| rt.launch("together"))).await.unwrap();
    eventually("every first-stage cog is at the gate", || async { probe(&key).arrived.load(Ordering::SeqCst) == TOGETHER * 3 }).await;
    let locker = if db.backend == "postgres" {
        let txn = rt.connection().begin().await.unwrap();
        txn.execute_unprepared("SELECT id FROM cog_pipeline_run ORDER BY id FOR UPDATE").await.unwrap();
        Some(txn)
    } else {
        None
    };
    probe(&key).open();
    if let Some(txn) = locker {
        // The first writes wait for the runs' locks; the other runs' outcomes gather meanwhile.
        // Held for less than the 250 ms a transaction writing several runs waits for a lock
        // before it gives up and each run is written on its own (`finish::JOINT_LOCK_WAIT`):
        // held for 300 ms, a joint write that began at once gave up, and under load all eight
        // runs were sometimes written each on its own.
        tokio::time::sleep(Duration::from_millis(150)).await;
        txn.commit().await.unwrap();
    }
    for run in &runs {
        assert_eq!(wait(run).await, RunStatus::Completed, "{:?}", task_statuses(&rt, run.id()).await);
        let statuses = task_statuses(&rt, run.id()).await;
        assert_eq!(statuses.len(), 4, "{statuses:?}");
        assert!(statuses.iter().all(|(_, s)| s == "completed"), "{statuses:?}");
    }
    assert_no_orphans(&rt).await;
    for (task, weight, mean) in weights_and_means(&rt, 3).await {
        assert!((weight - mean).abs() < 1e-9, "task {task}: weight {weight}, mean of its last 3 durations {mean}");
    }
    if db.backend == "postgres" {
        let transactions =
            scalar(&rt, "SELECT COUNT(DISTINCT tr.completed_at) FROM cog_task_run tr JOIN cog_task t ON t.id = tr.task_id WHERE t.name IN ('a', 'b', 'c')")
                .await;
        assert!(transactions < TOGETHER as i64, "the {TOGETHER} runs' first stages were written by {transactions} transactions: none wrote several runs");
    }
    rt.shutdown().await;
}

on_all_backends!(
    many_runs_launched_at_once_all_complete_and_learn_every_weight,
    a_stage_started_by_an_outcome_waits_while_its_queue_is_paused,
    runs_ending_together_are_written_together_and_each_moves_on,
);
