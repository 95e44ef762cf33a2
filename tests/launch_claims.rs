//! Who claims a launch's first task runs (issue 11): a started runtime whose worker is idle
//! claims them in the launch's own transaction (PostgreSQL and SQLite), so they are running
//! when `launch()` returns; a runtime that does not work claims nothing and leaves them
//! queued for the workers.

mod support;

use std::time::Duration;

use cog::{PipelineSpec, RunStatus, StageSpec, TaskSpec, cog};
use support::{TestDb, scalar, wait};

#[cog]
async fn lc_nap() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

fn pipeline() -> PipelineSpec {
    PipelineSpec::new("p").stage(StageSpec::new("s").task(TaskSpec::new("lc_nap").name("a")).task(TaskSpec::new("lc_nap").name("b")))
}

async fn count(rt: &cog::CogRuntime, status: &str) -> i64 {
    scalar(rt, &format!("SELECT COUNT(*) FROM cog_task_run WHERE status = '{status}'")).await
}

async fn an_idle_worker_runs_its_launch_from_the_launch_transaction(db: TestDb) {
    let rt = db.runtime().await;
    rt.define(pipeline()).await.unwrap();
    rt.start();
    rt.ready().await;
    if db.url.starts_with("mysql") {
        let run = rt.launch("p").await.unwrap();
        // MySQL claims after commit (a claim's share locks stay out of a transition).
        let open = scalar(&rt, "SELECT COUNT(*) FROM cog_task_run WHERE status IN ('queued', 'running')").await;
        assert_eq!(open, 2, "read in one statement: a task run may move from queued to running meanwhile");
        assert_eq!(wait(&run).await, RunStatus::Completed);
    } else {
        // An idle worker's claim loop looks for work every poll interval (20 ms here), and
        // holds its claim room while it does (a millisecond or so, longer on a loaded
        // machine): a launch made in that moment finds no room and leaves its task runs to
        // that loop, which the launch wakes. That is by design (the room is what bounds the
        // task runs a worker holds). So up to three launches, each after the last one ended:
        // when none of them is claimed in its own transaction, idle workers do not claim
        // their launches.
        //
        // On PostgreSQL the launch's stage start claims them as it inserts them, due and
        // started at the same instant (`started_at = run_after`), which tells them from task
        // runs the claim loop takes once the launch's `NOTIFY` woke it (often before the next
        // statement here). On SQLite nothing in the rows tells the two apart (the launch's
        // transaction claims after the start, as the loop does): there the check is only that
        // they are running when `launch()` returns, which the loop may also bring about.
        let claimed_at_launch = if db.url.starts_with("postgres") {
            "SELECT COUNT(*) FROM cog_task_run WHERE status = 'running' AND started_at = run_after"
        } else {
            "SELECT COUNT(*) FROM cog_task_run WHERE status = 'running'"
        };
        let mut missed = Vec::new();
        for _ in 0..3 {
            let run = rt.launch("p").await.unwrap();
            // The earlier runs' task runs are completed: the counts are this run's.
            let (claimed, queued) = (scalar(&rt, claimed_at_launch).await, count(&rt, "queued").await);
            assert_eq!(wait(&run).await, RunStatus::Completed);
            if (claimed, queued) == (2, 0) {
                break;
            }
            missed.push((claimed, queued));
        }
        assert!(missed.len() < 3, "claimed in the launch's transaction: (claimed at launch, queued) after each launch {missed:?}");
    }
    rt.shutdown().await;
}

async fn a_launch_from_a_runtime_that_does_not_work_leaves_its_task_runs_queued(db: TestDb) {
    let rt = db.runtime().await;
    rt.define(pipeline()).await.unwrap();
    let run = rt.launch("p").await.unwrap();
    assert_eq!(count(&rt, "queued").await, 2, "nobody claimed them");
    let worker = db.runtime().await;
    worker.start();
    assert_eq!(wait(&run).await, RunStatus::Completed);
    worker.shutdown().await;
}

on_all_backends!(an_idle_worker_runs_its_launch_from_the_launch_transaction, a_launch_from_a_runtime_that_does_not_work_leaves_its_task_runs_queued);
