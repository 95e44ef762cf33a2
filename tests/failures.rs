//! Task failures (DESIGN invariants 3 and 4): a critical failure fails its stage and the run at
//! once, cancels what is still queued, lets running siblings finish and starts no new stage;
//! a non-critical failure lets the stage complete; retries, timeouts and panics.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cog::{CogRuntime, PipelineSpec, RunStatus, StageSpec, TaskSpec, cog};
use serde_json::json;
use support::{TestDb, eventually, probe, rows, scalar, stage_statuses, task_statuses, wait};

/// Holds until the test opens `key`'s gate.
#[cog]
async fn fl_hold(key: String) -> Result<String, std::io::Error> {
    probe(&key).arrive_and_pass().await;
    Ok("held".to_owned())
}

/// Fails, after `wait_for`'s gate has a cog waiting at it when given.
#[cog]
async fn fl_fail(wait_for: Option<String>) -> Result<(), std::io::Error> {
    if let Some(other) = wait_for {
        let other = probe(&other);
        while other.arrived.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    Err(std::io::Error::other("fl_fail failed on purpose"))
}

/// Counts its calls.
#[cog]
fn fl_count(key: String) -> usize {
    probe(&key).calls.fetch_add(1, Ordering::SeqCst) + 1
}

/// Fails its first `failures` calls, then returns the call number.
#[cog]
async fn fl_flaky(key: String, failures: usize, ctx: cog::TaskContext) -> Result<usize, std::io::Error> {
    let probe = probe(&key);
    probe.attempts.lock().unwrap().push(ctx.attempt());
    let call = probe.calls.fetch_add(1, Ordering::SeqCst) + 1;
    if call <= failures { Err(std::io::Error::other(format!("flaky call {call} failed"))) } else { Ok(call) }
}

/// Sleeps `ms` milliseconds.
#[cog]
async fn fl_sleep(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// Panics.
#[cog]
fn fl_panic(key: String) -> usize {
    probe(&key).calls.fetch_add(1, Ordering::SeqCst);
    panic!("deliberate kaboom in fl_panic");
}

/// The SQL selecting task run `column` of the task named `task` in pipeline run `run_id`.
fn task_run_sql(run_id: i64, task: &str, column: &str) -> String {
    format!(
        "SELECT {column} FROM cog_task_run tr JOIN cog_task t ON t.id = tr.task_id JOIN cog_stage_run sr ON sr.id = tr.stage_run_id \
         WHERE sr.pipeline_run_id = {run_id} AND t.name = '{task}'"
    )
}

async fn task_status(rt: &CogRuntime, run_id: i64, task: &str) -> String {
    let rows = rows(rt, &task_run_sql(run_id, task, "tr.status")).await;
    rows.first().map(|r| r.try_get_by_index::<String>(0).unwrap()).unwrap_or_else(|| format!("<no task run for {task}>"))
}

async fn task_text(rt: &CogRuntime, run_id: i64, task: &str, column: &str) -> Option<String> {
    rows(rt, &task_run_sql(run_id, task, column)).await[0].try_get_by_index::<Option<String>>(0).unwrap()
}

async fn task_time(rt: &CogRuntime, run_id: i64, task: &str, column: &str) -> Option<DateTime<Utc>> {
    rows(rt, &task_run_sql(run_id, task, column)).await[0].try_get_by_index::<Option<DateTime<Utc>>>(0).unwrap()
}

async fn run_completed_at(rt: &CogRuntime, run_id: i64) -> Option<DateTime<Utc>> {
    rows(rt, &format!("SELECT completed_at FROM cog_pipeline_run WHERE id = {run_id}")).await[0].try_get_by_index(0).unwrap()
}

/// `(attempt, error_type, message)` of every `cog_error` row of the task named `task`, by attempt.
async fn errors_of(rt: &CogRuntime, run_id: i64, task: &str) -> Vec<(i32, String, String)> {
    let sql = format!(
        "SELECT e.attempt, e.error_type, e.message FROM cog_error e JOIN cog_task_run tr ON tr.id = e.task_run_id \
         JOIN cog_task t ON t.id = tr.task_id JOIN cog_stage_run sr ON sr.id = tr.stage_run_id \
         WHERE sr.pipeline_run_id = {run_id} AND t.name = '{task}' ORDER BY e.attempt, e.id"
    );
    rows(rt, &sql).await.iter().map(|r| (r.try_get_by_index(0).unwrap(), r.try_get_by_index(1).unwrap(), r.try_get_by_index(2).unwrap())).collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
}

/// (a) A critical task fails while a sibling runs and two more wait in the queue.
async fn critical_failure_fails_the_run_at_once_and_lets_the_running_sibling_finish(db: TestDb) {
    let key = format!("{}-critical", db.url);
    let rt = db.runtime_with(|b| b.concurrency(2)).await;
    rt.define(
        PipelineSpec::new("critical")
            .stage(
                StageSpec::new("work")
                    // Heaviest first: with two slots, `slow` and `boom` are taken, the others wait.
                    .task(TaskSpec::new("fl_hold").name("slow").args(json!({ "key": key })).weight(10.0))
                    .task(TaskSpec::new("fl_fail").name("boom").args(json!({ "wait_for": key })).weight(5.0))
                    .task(TaskSpec::new("fl_count").name("queued_1").args(json!({ "key": key })).weight(1.0))
                    .task(TaskSpec::new("fl_count").name("queued_2").args(json!({ "key": key })).weight(1.0)),
            )
            .stage(StageSpec::new("next").after(["work"]).task(TaskSpec::new("fl_count").name("after").args(json!({ "key": key })))),
    )
    .await
    .unwrap();
    let run = rt.launch("critical").await.unwrap();
    let id = run.id();
    rt.start();

    eventually("task `boom` to fail", || async { task_status(&rt, id, "boom").await == "failed" }).await;
    // The failure's transaction has committed: everything it decided is visible now.
    assert_eq!(run.status().await.unwrap(), RunStatus::Failed, "the pipeline run fails at once");
    assert_eq!(stage_statuses(&rt, id).await, pairs(&[("work", "failed")]), "the stage fails at once; `next` never starts");
    assert_eq!(
        task_statuses(&rt, id).await,
        pairs(&[("boom", "failed"), ("queued_1", "canceled"), ("queued_2", "canceled"), ("slow", "running")]),
        "queued task runs are canceled, the running sibling keeps running"
    );
    assert_eq!(run_completed_at(&rt, id).await, None, "completed_at must wait for the running sibling");
    let stage_open = format!("SELECT COUNT(*) FROM cog_stage_run WHERE pipeline_run_id = {id} AND completed_at IS NULL");
    assert_eq!(scalar(&rt, &stage_open).await, 1, "the failed stage's completed_at must wait for the running sibling");
    assert_eq!(errors_of(&rt, id, "boom").await.len(), 1);

    probe(&key).open();
    assert_eq!(wait(&run).await, RunStatus::Failed);
    assert_eq!(
        task_statuses(&rt, id).await,
        pairs(&[("boom", "failed"), ("queued_1", "canceled"), ("queued_2", "canceled"), ("slow", "completed")]),
        "the running sibling finishes `completed`; nothing else changes"
    );
    assert_eq!(task_text(&rt, id, "slow", "tr.result").await.as_deref(), Some("\"held\""));
    assert_eq!(probe(&key).calls.load(Ordering::SeqCst), 0, "neither the canceled task runs nor the successor stage ran");
    assert_eq!(stage_statuses(&rt, id).await, pairs(&[("work", "failed")]), "no successor stage run, ever");
    let never_claimed = task_run_sql(id, "queued_1", &support::as_int(&rt, "tr.attempt"));
    assert_eq!(scalar(&rt, &never_claimed).await, 0);

    let sibling_done = task_time(&rt, id, "slow", "tr.completed_at").await.expect("the sibling's completed_at");
    let run_done = run_completed_at(&rt, id).await.expect("the run's completed_at");
    assert!(run_done >= sibling_done, "run completed_at {run_done} is before the sibling ended at {sibling_done}");
    let stage_done: DateTime<Utc> =
        rows(&rt, &format!("SELECT completed_at FROM cog_stage_run WHERE pipeline_run_id = {id}")).await[0].try_get_by_index(0).unwrap();
    assert!(stage_done >= sibling_done, "stage completed_at {stage_done} is before the sibling ended at {sibling_done}");
    rt.shutdown().await;
}

/// (b) django-cog's bug: C waits for A and B; A fails critically, then B completes. C must never start.
async fn critical_failure_is_not_bypassed_by_a_later_prerequisite(db: TestDb) {
    let key = format!("{}-bypass", db.url);
    let rt = db.runtime().await;
    rt.define(
        PipelineSpec::new("bypass")
            .stage(StageSpec::new("a").task(TaskSpec::new("fl_fail").name("a_fails").args(json!({ "wait_for": key }))))
            .stage(StageSpec::new("b").task(TaskSpec::new("fl_hold").name("b_later").args(json!({ "key": key }))))
            .stage(StageSpec::new("c").after(["a", "b"]).task(TaskSpec::new("fl_count").name("c_task").args(json!({ "key": key })))),
    )
    .await
    .unwrap();
    let run = rt.launch("bypass").await.unwrap();
    let id = run.id();
    rt.start();

    eventually("task `a_fails` to fail", || async { task_status(&rt, id, "a_fails").await == "failed" }).await;
    assert_eq!(run.status().await.unwrap(), RunStatus::Failed);
    assert_eq!(task_status(&rt, id, "b_later").await, "running");

    // B completes after A failed.
    probe(&key).open();
    assert_eq!(wait(&run).await, RunStatus::Failed);
    assert_eq!(task_status(&rt, id, "b_later").await, "completed");
    let stages = stage_statuses(&rt, id).await;
    assert_eq!(stages.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>(), ["a", "b"], "stage c must never get a stage run: {stages:?}");
    assert_eq!(stages[0].1, "failed");
    assert!(["completed", "canceled", "failed"].contains(&stages[1].1.as_str()), "stage b must have ended: {stages:?}");
    assert_eq!(probe(&key).calls.load(Ordering::SeqCst), 0, "the cog of stage c must never run");
    assert_eq!(run.status().await.unwrap(), RunStatus::Failed, "the run stays failed");
    rt.shutdown().await;
}

/// (c) Non-critical failures: the task run fails, its stage still completes, successors run.
async fn non_critical_failure_lets_the_stage_complete_and_successors_run(db: TestDb) {
    let key = format!("{}-optional", db.url);
    let rt = db.runtime().await;
    rt.define(
        PipelineSpec::new("optional")
            .stage(
                StageSpec::new("first")
                    .task(TaskSpec::new("fl_fail").name("optional").critical(false))
                    .task(TaskSpec::new("fl_count").name("ok").args(json!({ "key": key }))),
            )
            // A stage whose only task fails non-critically completes too.
            .stage(StageSpec::new("lonely").task(TaskSpec::new("fl_fail").name("lonely_fail").critical(false)))
            .stage(StageSpec::new("second").after(["first", "lonely"]).task(TaskSpec::new("fl_count").name("then").args(json!({ "key": key })))),
    )
    .await
    .unwrap();
    rt.start();
    let run = rt.launch("optional").await.unwrap();
    let id = run.id();
    assert_eq!(wait(&run).await, RunStatus::Completed);
    assert_eq!(task_statuses(&rt, id).await, pairs(&[("lonely_fail", "failed"), ("ok", "completed"), ("optional", "failed"), ("then", "completed")]));
    assert_eq!(stage_statuses(&rt, id).await, pairs(&[("first", "completed"), ("lonely", "completed"), ("second", "completed")]));
    assert_eq!(probe(&key).calls.load(Ordering::SeqCst), 2, "`ok` and the successor's `then` ran");
    let errors = errors_of(&rt, id, "optional").await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].2.contains("failed on purpose"), "{errors:?}");
    assert!(task_text(&rt, id, "optional", "tr.error").await.unwrap_or_default().contains("failed on purpose"));
    rt.shutdown().await;
}

/// (d) `wait()` reports a failed run as `Failed`.
async fn wait_returns_failed_for_a_critical_failure(db: TestDb) {
    let rt = db.runtime().await;
    rt.define(PipelineSpec::new("doomed").stage(StageSpec::new("only").task(TaskSpec::new("fl_fail").name("fails")))).await.unwrap();
    rt.start();
    let run = rt.launch("doomed").await.unwrap();
    assert_eq!(wait(&run).await, RunStatus::Failed);
    assert_eq!(run.status().await.unwrap(), RunStatus::Failed);
    assert!(run_completed_at(&rt, run.id()).await.is_some());
    assert_eq!(task_status(&rt, run.id(), "fails").await, "failed");
    assert!(task_text(&rt, run.id(), "fails", "tr.error").await.unwrap_or_default().contains("failed on purpose"));
    rt.shutdown().await;
}

/// (e) A task that fails twice, then succeeds, with two retries allowed.
async fn retries_until_the_cog_succeeds(db: TestDb) {
    let key = format!("{}-flaky", db.url);
    let rt = db.runtime().await;
    rt.define(
        PipelineSpec::new("flaky")
            .stage(StageSpec::new("only").task(TaskSpec::new("fl_flaky").name("flaky").args(json!({ "key": key, "failures": 2 })).max_retries(2))),
    )
    .await
    .unwrap();
    rt.start();
    let run = rt.launch("flaky").await.unwrap();
    let id = run.id();
    assert_eq!(wait(&run).await, RunStatus::Completed);
    assert_eq!(task_status(&rt, id, "flaky").await, "completed");
    assert_eq!(scalar(&rt, &task_run_sql(id, "flaky", &support::as_int(&rt, "tr.attempt"))).await, 3);
    assert_eq!(task_text(&rt, id, "flaky", "tr.result").await.as_deref(), Some("3"));
    assert_eq!(*probe(&key).attempts.lock().unwrap(), [1, 2, 3], "the cog sees the attempt number");
    let errors = errors_of(&rt, id, "flaky").await;
    assert_eq!(errors.iter().map(|e| e.0).collect::<Vec<_>>(), [1, 2], "one cog_error row per failed attempt: {errors:?}");
    assert!(errors[0].2.contains("flaky call 1 failed") && errors[1].2.contains("flaky call 2 failed"), "{errors:?}");
    rt.shutdown().await;
}

/// (e) A task that always fails, with one retry allowed: failed at attempt 2.
async fn retries_exhausted_fail_the_task(db: TestDb) {
    let key = format!("{}-hopeless", db.url);
    let rt = db.runtime().await;
    rt.define(
        PipelineSpec::new("hopeless")
            .stage(StageSpec::new("only").task(TaskSpec::new("fl_flaky").name("hopeless").args(json!({ "key": key, "failures": 1000 })).max_retries(1))),
    )
    .await
    .unwrap();
    rt.start();
    let run = rt.launch("hopeless").await.unwrap();
    let id = run.id();
    assert_eq!(wait(&run).await, RunStatus::Failed);
    assert_eq!(task_status(&rt, id, "hopeless").await, "failed");
    assert_eq!(scalar(&rt, &task_run_sql(id, "hopeless", &support::as_int(&rt, "tr.attempt"))).await, 2);
    assert_eq!(probe(&key).calls.load(Ordering::SeqCst), 2, "one first attempt and one retry");
    let errors = errors_of(&rt, id, "hopeless").await;
    assert_eq!(errors.iter().map(|e| e.0).collect::<Vec<_>>(), [1, 2], "{errors:?}");
    assert!(task_text(&rt, id, "hopeless", "tr.error").await.unwrap_or_default().contains("flaky call 2 failed"));
    rt.shutdown().await;
}

/// (f) An attempt longer than the task's timeout fails.
async fn timeout_fails_the_task(db: TestDb) {
    let rt = db.runtime().await;
    rt.define(
        PipelineSpec::new("slowpoke")
            .stage(StageSpec::new("only").task(TaskSpec::new("fl_sleep").name("sleepy").args(json!({ "ms": 10_000 })).timeout(Duration::from_millis(100)))),
    )
    .await
    .unwrap();
    rt.start();
    let run = rt.launch("slowpoke").await.unwrap();
    let id = run.id();
    assert_eq!(wait(&run).await, RunStatus::Failed);
    assert_eq!(task_status(&rt, id, "sleepy").await, "failed");
    let error = task_text(&rt, id, "sleepy", "tr.error").await.unwrap_or_default();
    assert!(error.contains("timeout") || error.contains("ran longer"), "{error}");
    let errors = errors_of(&rt, id, "sleepy").await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].1, "timeout");
    rt.shutdown().await;
}

/// (f) A panicking cog fails its task run with a `panic` error; the worker goes on.
async fn panicking_cog_fails_the_task(db: TestDb) {
    let key = format!("{}-panic", db.url);
    let rt = db.runtime().await;
    rt.define(
        PipelineSpec::new("panicky")
            .stage(StageSpec::new("only").task(TaskSpec::new("fl_panic").name("panics").args(json!({ "key": key })).critical(false)))
            .stage(StageSpec::new("after").after(["only"]).task(TaskSpec::new("fl_count").name("survivor").args(json!({ "key": key })))),
    )
    .await
    .unwrap();
    rt.start();
    let run = rt.launch("panicky").await.unwrap();
    let id = run.id();
    assert_eq!(wait(&run).await, RunStatus::Completed, "the panic is a non-critical failure; the worker keeps working");
    assert_eq!(task_statuses(&rt, id).await, pairs(&[("panics", "failed"), ("survivor", "completed")]));
    let errors = errors_of(&rt, id, "panics").await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].1, "panic");
    assert!(errors[0].2.contains("deliberate kaboom in fl_panic"), "{errors:?}");
    assert_eq!(probe(&key).calls.load(Ordering::SeqCst), 2, "the panicking cog ran once, the survivor once");
    rt.shutdown().await;
}

on_all_backends!(
    critical_failure_fails_the_run_at_once_and_lets_the_running_sibling_finish,
    critical_failure_is_not_bypassed_by_a_later_prerequisite,
    non_critical_failure_lets_the_stage_complete_and_successors_run,
    wait_returns_failed_for_a_critical_failure,
    retries_until_the_cog_succeeds,
    retries_exhausted_fail_the_task,
    timeout_fails_the_task,
    panicking_cog_fails_the_task,
);
