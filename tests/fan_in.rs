//! Fan-in under load (DESIGN invariants 1 and 8): hundreds of task runs across several
//! prerequisite stages finish at the same moment, and the downstream stage starts once.

mod support;

use std::sync::atomic::Ordering;

use cog::{Error, LaunchRefusal, PipelineSpec, RunStatus, StageSpec, TaskSpec, cog};
use serde_json::json;
use support::{TestDb, assert_no_orphans, eventually, probe, scalar, wait};

/// Holds until the test opens `gate_key`'s gate.
#[cog]
async fn fan_wait(gate_key: String) -> Result<(), std::io::Error> {
    probe(&gate_key).arrive_and_pass().await;
    Ok(())
}

/// Counts its calls (the probe's `calls`: how often the join ran).
#[cog]
fn fan_join(gate_key: String) -> usize {
    probe(&gate_key).calls.fetch_add(1, Ordering::SeqCst) + 1
}

const STAGES: usize = 3;
const TASKS_PER_STAGE: usize = 100;

fn pipeline(name: &str, gate_key: &str) -> PipelineSpec {
    let mut spec = PipelineSpec::new(name);
    let mut parts = Vec::new();
    for s in 0..STAGES {
        let mut stage = StageSpec::new(format!("part_{s}"));
        for t in 0..TASKS_PER_STAGE {
            stage = stage.task(TaskSpec::new("fan_wait").name(format!("wait_{t}")).args(json!({ "gate_key": gate_key })));
        }
        parts.push(format!("part_{s}"));
        spec = spec.stage(stage);
    }
    spec.stage(StageSpec::new("join").after(parts).task(TaskSpec::new("fan_join").args(json!({ "gate_key": gate_key }))))
}

/// Runs the fan-in pipeline on `runtimes` (sharing one database) and checks the join ran once.
async fn fan_in_on(db: &TestDb, runtimes: usize) {
    let gate_key = format!("{}-{}", db.url, runtimes);
    let slots = STAGES * TASKS_PER_STAGE / runtimes + 1;
    let mut rts = Vec::new();
    for _ in 0..runtimes {
        rts.push(db.runtime_with(|b| b.concurrency(slots)).await);
    }
    let rt = rts[0].clone();
    rt.define(pipeline("fan_in", &gate_key)).await.unwrap();
    let run = rt.launch("fan_in").await.unwrap();
    for r in &rts {
        r.start();
    }
    let g = probe(&gate_key);
    eventually("every prerequisite task to be running", || async { g.arrived.load(Ordering::SeqCst) == STAGES * TASKS_PER_STAGE }).await;
    assert_eq!(scalar(&rt, &format!("SELECT COUNT(*) FROM cog_stage_run WHERE pipeline_run_id = {}", run.id())).await, STAGES as i64, "join started too early");
    // Every prerequisite task finishes at the same moment.
    g.open();

    assert_eq!(wait(&run).await, RunStatus::Completed);
    let id = run.id();
    assert_eq!(g.calls.load(Ordering::SeqCst), 1, "the join cog must run exactly once");
    assert_eq!(scalar(&rt, &format!("SELECT COUNT(*) FROM cog_stage_run WHERE pipeline_run_id = {id}")).await, STAGES as i64 + 1);
    let join_runs = format!("SELECT COUNT(*) FROM cog_stage_run sr JOIN cog_stage s ON s.id = sr.stage_id WHERE sr.pipeline_run_id = {id} AND s.name = 'join'");
    assert_eq!(scalar(&rt, &join_runs).await, 1);
    let completed = format!(
        "SELECT COUNT(*) FROM cog_task_run tr JOIN cog_stage_run sr ON sr.id = tr.stage_run_id WHERE sr.pipeline_run_id = {id} AND tr.status = 'completed' AND tr.attempt = 1"
    );
    assert_eq!(scalar(&rt, &completed).await, (STAGES * TASKS_PER_STAGE + 1) as i64);
    assert_no_orphans(&rt).await;
    for r in rts {
        r.shutdown().await;
    }
}

async fn hundreds_of_tasks_finishing_at_once_start_the_join_once(db: TestDb) {
    fan_in_on(&db, 1).await;
}

async fn fan_in_across_two_runtimes_starts_the_join_once(db: TestDb) {
    fan_in_on(&db, 2).await;
}

#[cog]
async fn fan_noop() {}

async fn concurrent_launches_let_exactly_one_through(db: TestDb) {
    let rt = db.runtime().await;
    rt.define(PipelineSpec::new("single").stage(StageSpec::new("only").task(TaskSpec::new("fan_noop")))).await.unwrap();
    let other = db.runtime().await;
    let mut launches = Vec::new();
    for i in 0..20 {
        let r = if i % 2 == 0 { rt.clone() } else { other.clone() };
        launches.push(tokio::spawn(async move { r.launch("single").await }));
    }
    let mut passed = 0;
    for launch in launches {
        match launch.await.unwrap() {
            Ok(_) => passed += 1,
            Err(Error::LaunchRefused { pipeline, reason: LaunchRefusal::Overlap { .. } }) => assert_eq!(pipeline, "single"),
            Err(e) => panic!("unexpected launch error: {e}"),
        }
    }
    assert_eq!(passed, 1, "exactly one of the concurrent launches must pass");
    assert_eq!(scalar(&rt, "SELECT COUNT(*) FROM cog_pipeline_run").await, 1);
}

on_all_backends!(
    hundreds_of_tasks_finishing_at_once_start_the_join_once,
    fan_in_across_two_runtimes_starts_the_join_once,
    concurrent_launches_let_exactly_one_through,
);
