//! Claims never take more task runs than the worker has room for, whatever plan the database
//! picks for the claim statement (regression: a nested-loop semi-join rescanned a
//! `LIMIT ... FOR UPDATE SKIP LOCKED` subquery once per outer row and claimed far more rows
//! than its limit; the extras were dropped and reclaimed as `lease_expired`). And a claim that
//! takes task runs of several runs, stages and pipelines gives each its own definitions.

mod support;

use std::sync::Mutex;
use std::time::Duration;

use cog::{PipelineSpec, RunStatus, StageSpec, TaskError, TaskRunInfo, TaskSpec, cog, cog_error_handler};
use sea_orm::{ConnectionTrait, Database};
use serde_json::json;
use support::{TestDb, scalar, test_config, wait};

/// Takes a little time, so claims of several workers overlap.
#[cog]
async fn claim_nap() -> Result<(), std::io::Error> {
    tokio::time::sleep(Duration::from_millis(2)).await;
    Ok(())
}

const TASKS: usize = 400;
const WORKERS: usize = 3;
const SLOTS: usize = 4;

/// Makes every later connection to `db` plan joins as nested loops without materializing
/// the inner side, the plan PostgreSQL picks after `ANALYZE` on an idle table: any
/// `IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)` is then rescanned per outer row.
async fn force_nested_loops(db: &TestDb) {
    let conn = Database::connect(db.url.as_str()).await.expect("connect");
    let name = db.url.rsplit('/').next().expect("database name").to_owned();
    for setting in ["enable_hashjoin", "enable_mergejoin", "enable_material"] {
        conn.execute_unprepared(&format!("ALTER DATABASE {name} SET {setting} = off")).await.expect("set planner option");
    }
    conn.close().await.ok();
}

async fn claims_respect_their_limit(db: TestDb) {
    if db.backend == "postgres" {
        force_nested_loops(&db).await;
    }
    // A short lease: a claimed task run that nobody runs would be reclaimed (and, without
    // retries, failed) within the test.
    let config = test_config().lease_duration(Duration::from_secs(2));
    let mut rts = Vec::new();
    for _ in 0..WORKERS {
        rts.push(db.runtime_with(|b| b.concurrency(SLOTS).config(config.clone())).await);
    }
    let rt = rts[0].clone();
    let mut stage = StageSpec::new("many");
    for t in 0..TASKS {
        stage = stage.task(TaskSpec::new("claim_nap").name(format!("nap_{t}")));
    }
    rt.define(PipelineSpec::new("claims").stage(stage)).await.unwrap();
    if db.backend == "postgres" {
        rt.connection().execute_unprepared("ANALYZE").await.unwrap();
    }
    let run = rt.launch("claims").await.unwrap();
    for r in &rts {
        r.start();
    }
    assert_eq!(wait(&run).await, RunStatus::Completed);
    assert_eq!(scalar(&rt, "SELECT COUNT(*) FROM cog_task_run WHERE attempt <> 1").await, 0, "a task run was claimed and not run");
    assert_eq!(scalar(&rt, "SELECT COUNT(*) FROM cog_error").await, 0, "no attempt may fail");
    // Extras would be handed back (and the run still complete): the statement itself must
    // never return more rows than asked for.
    assert_eq!(cog::__private::overclaims(), 0, "a claim returned more task runs than its limit");
    for r in &rts {
        r.shutdown().await;
    }
}

/// Fails with its launch's `payload`, so that the error handler sees which run it ran for.
#[cog]
fn claim_report(payload: String) -> Result<(), String> {
    Err(payload)
}

/// What [`claim_seen`] was told of one failure: pipeline, stage, task, cog, the failure's message.
type Seen = (String, String, String, String, String);

/// Every failure [`claim_seen`] was told of, in every backend's test.
static SEEN: Mutex<Vec<Seen>> = Mutex::new(Vec::new());

#[cog_error_handler]
fn claim_seen(error: &TaskError, task_run: &TaskRunInfo) {
    let seen = (task_run.pipeline.clone(), task_run.stage.clone(), task_run.task_name.clone(), task_run.cog.clone(), error.message.clone());
    SEEN.lock().unwrap().push(seen);
}

/// Task runs of two runs each of two pipelines, queued before the worker starts: its first
/// claim takes them all at once (and the second stage's, queued at a hand-off, are claimed in
/// that outcome's transaction). Each task run must run with its own run's launch arguments
/// and be told its own pipeline, stage and task (PostgreSQL looks up what a stage run leads
/// to once per stage run of a claim).
async fn one_claim_of_many_runs_gives_each_its_own_definitions(db: TestDb) {
    let rt = db.runtime_with(|b| b.concurrency(4).config(test_config().prefetch(60))).await;
    let task = |name: &str| TaskSpec::new("claim_report").name(name).critical(false).error_handler("claim_seen");
    let left = PipelineSpec::new("left")
        .prevent_overlap(false)
        .stage(StageSpec::new("first").task(task("l1")).task(task("l2")))
        .stage(StageSpec::new("second").after(["first"]).task(task("l3")));
    let right = PipelineSpec::new("right").prevent_overlap(false).stage(StageSpec::new("only").task(task("r1")).task(task("r2")).task(task("r3")));
    rt.define(left).await.unwrap();
    rt.define(right).await.unwrap();
    let mut runs = Vec::new();
    let mut expected = Vec::new();
    for n in 0..2 {
        for (pipeline, tasks) in [("left", [("first", "l1"), ("first", "l2"), ("second", "l3")]), ("right", [("only", "r1"), ("only", "r2"), ("only", "r3")])] {
            let payload = format!("{}:{pipeline}:{n}", db.backend);
            runs.push(rt.launch_with(pipeline, json!({ "payload": payload })).await.unwrap());
            for (stage, task) in tasks {
                expected.push((pipeline.to_owned(), stage.to_owned(), task.to_owned(), "claim_report".to_owned(), payload.clone()));
            }
        }
    }
    rt.start();
    for run in &runs {
        assert_eq!(wait(run).await, RunStatus::Completed, "non-critical failures only");
    }
    let mine = format!("{}:", db.backend);
    let mut seen: Vec<_> = SEEN.lock().unwrap().iter().filter(|s| s.4.starts_with(&mine)).cloned().collect();
    seen.sort();
    expected.sort();
    assert_eq!(seen, expected);
    rt.shutdown().await;
}

on_all_backends!(claims_respect_their_limit, one_claim_of_many_runs_gives_each_its_own_definitions);
