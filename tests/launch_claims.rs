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
    let run = rt.launch("p").await.unwrap();
    if db.url.starts_with("mysql") {
        // MySQL claims after commit (a claim's share locks stay out of a transition).
        let open = scalar(&rt, "SELECT COUNT(*) FROM cog_task_run WHERE status IN ('queued', 'running')").await;
        assert_eq!(open, 2, "read in one statement: a task run may move from queued to running meanwhile");
    } else {
        assert_eq!(count(&rt, "queued").await, 0, "claimed in the launch's transaction");
        assert_eq!(count(&rt, "running").await, 2);
    }
    assert_eq!(wait(&run).await, RunStatus::Completed);
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
