//! Claims never take more task runs than the worker has room for, whatever plan the database
//! picks for the claim statement (regression: a nested-loop semi-join rescanned a
//! `LIMIT ... FOR UPDATE SKIP LOCKED` subquery once per outer row and claimed far more rows
//! than its limit; the extras were dropped and reclaimed as `lease_expired`). And a claim that
//! takes task runs of several runs, stages and pipelines gives each its own definitions. An idle
//! worker claims a retry when its back-off ends, not at its next poll.

mod support;

use std::collections::HashMap;
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

/// The 10 first-stage task runs of two runs each of two pipelines, queued before the worker
/// starts: its first claim takes them all at once (a worker's first claim takes as many as it
/// has free slots: 10), as their one `started_at` shows (and the second stage's, queued at a
/// hand-off, are claimed in that outcome's transaction). Each task run must run with its own
/// run's launch arguments and be told its own pipeline, stage and task (PostgreSQL looks up
/// what a stage run leads to once per stage run of a claim).
async fn one_claim_of_many_runs_gives_each_its_own_definitions(db: TestDb) {
    let rt = db.runtime_with(|b| b.concurrency(10)).await;
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
    let first_claims = "SELECT COUNT(DISTINCT tr.started_at) FROM cog_task_run tr JOIN cog_stage_run sr ON sr.id = tr.stage_run_id \
         JOIN cog_stage s ON s.id = sr.stage_id WHERE s.name <> 'second'";
    assert_eq!(scalar(&rt, first_claims).await, 1, "the first stages' 10 task runs were claimed together");
    rt.shutdown().await;
}

/// Attempts of [`claim_second_time`] so far, by key.
static ATTEMPTS: Mutex<Option<HashMap<String, u32>>> = Mutex::new(None);

/// Fails its first attempt (for key `key`), succeeds after.
#[cog]
fn claim_second_time(key: String) -> Result<(), String> {
    let mut attempts = ATTEMPTS.lock().unwrap();
    let n = attempts.get_or_insert_with(HashMap::new).entry(key).or_insert(0);
    *n += 1;
    if *n == 1 { Err("first attempt".to_owned()) } else { Ok(()) }
}

/// A failed attempt is queued again with a back-off of 200 ms; the worker, idle meanwhile,
/// polls only every 10 minutes: it must learn when the retry becomes due (`next_due`, which
/// reads retries off their own index) and claim it then. Were the retry left to the poll,
/// `wait` would give up after 60 s.
async fn an_idle_worker_claims_a_retry_when_its_back_off_ends(db: TestDb) {
    let config = test_config().poll_interval(Duration::from_secs(600)).retry_backoff(Duration::from_millis(200), Duration::from_millis(200));
    let rt = db.runtime_with(|b| b.config(config)).await;
    let key = format!("{}-retry", db.url);
    let task = TaskSpec::new("claim_second_time").args(json!({ "key": key })).max_retries(1);
    rt.define(PipelineSpec::new("second_time").stage(StageSpec::new("only").task(task))).await.unwrap();
    rt.start();
    let run = rt.launch("second_time").await.unwrap();
    assert_eq!(wait(&run).await, RunStatus::Completed);
    assert_eq!(scalar(&rt, "SELECT COUNT(*) FROM cog_task_run WHERE attempt = 2 AND status = 'completed'").await, 1, "completed at its second attempt");
    rt.shutdown().await;
}

on_all_backends!(claims_respect_their_limit, one_claim_of_many_runs_gives_each_its_own_definitions, an_idle_worker_claims_a_retry_when_its_back_off_ends);
