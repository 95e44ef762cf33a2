//! Empty stages and pipelines (DESIGN invariant 10), overlap rules (invariant 8) and launches:
//! unknown pipelines, launch arguments, the trigger and arguments stored on the run.

mod support;

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

use cog::{CogRuntime, Error, LaunchRefusal, PipelineSpec, RunStatus, StageSpec, TaskSpec, cog};
use serde_json::{Value, json};
use support::{TestDb, eventually, probe, rows, scalar, stage_statuses, task_statuses, test_config, wait};

/// Records `label` in `key`'s probe log.
#[cog]
fn s_record(key: String, label: String) {
    probe(&key).log.lock().unwrap().push(label);
}

/// Labels of the `s_record` calls for `key`.
fn recorded(key: &str) -> BTreeSet<String> {
    probe(key).log.lock().unwrap().iter().cloned().collect()
}

/// Holds until the test opens `gate_key`'s gate.
#[cog]
async fn s_wait(gate_key: String) {
    probe(&gate_key).arrive_and_pass().await;
}

#[cog]
fn s_fail() -> Result<(), String> {
    Err("s_fail always fails".into())
}

#[cog]
fn s_echo(value: String) -> String {
    value
}

#[cog]
fn s_other(x: i64) -> i64 {
    x
}

#[cog]
fn s_maybe(date: Option<String>) -> Option<String> {
    date
}

fn record(key: &str, label: &str) -> TaskSpec {
    TaskSpec::new("s_record").name(label).args(json!({"key": key, "label": label}))
}

fn s(a: &str, b: &str) -> (String, String) {
    (a.to_owned(), b.to_owned())
}

// ---- empty stages (invariant 10) -------------------------------------------------------------

async fn empty_stages_complete_at_once_and_their_successors_run(db: TestDb) {
    let rt = db.runtime().await;
    let key = db.url.as_str();
    rt.define(
        PipelineSpec::new("p")
            .stage(StageSpec::new("no_tasks"))
            .stage(StageSpec::new("only_disabled").task(record(key, "disabled_task").enabled(false)))
            .stage(StageSpec::new("stage_off").enabled(false).task(record(key, "task_of_disabled_stage")))
            .stage(StageSpec::new("after_no_tasks").after(["no_tasks"]).task(record(key, "after_no_tasks")))
            .stage(StageSpec::new("after_only_disabled").after(["only_disabled"]).task(record(key, "after_only_disabled")))
            .stage(StageSpec::new("after_stage_off").after(["stage_off"]).task(record(key, "after_stage_off"))),
    )
    .await
    .unwrap();
    let run = rt.launch("p").await.unwrap();
    // Before any worker runs, the empty stages have completed and their successors started.
    let stages = stage_statuses(&rt, run.id()).await;
    for empty in ["no_tasks", "only_disabled", "stage_off"] {
        assert!(stages.contains(&s(empty, "completed")), "{empty} completes at launch: {stages:?}");
    }
    for next in ["after_no_tasks", "after_only_disabled", "after_stage_off"] {
        assert!(stages.contains(&s(next, "running")), "{next} starts at launch: {stages:?}");
    }
    rt.start();
    assert_eq!(wait(&run).await, RunStatus::Completed);
    let expected: BTreeSet<String> = ["after_no_tasks", "after_only_disabled", "after_stage_off"].map(String::from).into();
    assert_eq!(recorded(key), expected, "successors ran, disabled tasks did not");
    assert_eq!(task_statuses(&rt, run.id()).await.len(), 3, "no task run for disabled tasks");
    assert!(stage_statuses(&rt, run.id()).await.iter().all(|(_, status)| status == "completed"));
    rt.shutdown().await;
}

async fn a_chain_of_empty_stages_completes_without_workers(db: TestDb) {
    // No rt.start(): nothing but the launch itself can complete the run.
    let rt = db.runtime().await;
    rt.define(
        PipelineSpec::new("p")
            .stage(StageSpec::new("a"))
            .stage(StageSpec::new("b").after(["a"]).task(TaskSpec::new("s_fail").enabled(false)))
            .stage(StageSpec::new("c").after(["a", "b"]).enabled(false).task(TaskSpec::new("s_fail"))),
    )
    .await
    .unwrap();
    let run = rt.launch("p").await.unwrap();
    assert_eq!(wait(&run).await, RunStatus::Completed);
    assert_eq!(stage_statuses(&rt, run.id()).await, [s("a", "completed"), s("b", "completed"), s("c", "completed")]);
    assert_eq!(task_statuses(&rt, run.id()).await, []);
}

async fn a_pipeline_without_stages_completes_at_once(db: TestDb) {
    let rt = db.runtime().await;
    rt.define(PipelineSpec::new("nothing")).await.unwrap();
    let run = rt.launch("nothing").await.unwrap();
    assert_eq!(run.status().await.unwrap(), RunStatus::Completed, "completed by the launch itself");
    assert_eq!(wait(&run).await, RunStatus::Completed);
    let found = rows(&rt, &format!("SELECT completed_at FROM cog_pipeline_run WHERE id = {}", run.id())).await;
    assert!(found[0].try_get_by_index::<Option<chrono::DateTime<chrono::Utc>>>(0).unwrap().is_some());
    assert_eq!(scalar(&rt, "SELECT COUNT(*) FROM cog_stage_run").await, 0);
    // It can be launched again at once.
    assert_eq!(wait(&rt.launch("nothing").await.unwrap()).await, RunStatus::Completed);
}

// ---- overlap (invariant 8) -------------------------------------------------------------------

fn refusal(result: Result<cog::RunHandle, Error>) -> LaunchRefusal {
    match result {
        Err(Error::LaunchRefused { pipeline, reason }) => {
            assert_eq!(pipeline, "p");
            reason
        }
        Err(e) => panic!("expected LaunchRefused, got {e:?}"),
        Ok(run) => panic!("expected LaunchRefused, got run {}", run.id()),
    }
}

async fn a_launch_while_a_run_is_going_is_refused(db: TestDb) {
    let rt = db.runtime().await;
    let key = db.url.clone();
    rt.define(PipelineSpec::new("p").stage(StageSpec::new("s").task(TaskSpec::new("s_wait").args(json!({"gate_key": key}))))).await.unwrap();
    let first = rt.launch("p").await.unwrap();
    // Queued work, no worker yet.
    assert_eq!(refusal(rt.launch("p").await), LaunchRefusal::Overlap { run_id: first.id() });
    rt.start();
    let g = probe(&key);
    eventually("the cog to be running", || async { g.arrived.load(Ordering::SeqCst) == 1 }).await;
    let err = rt.launch_with("p", json!({"x": 1})).await.unwrap_err();
    assert!(err.to_string().contains(&first.id().to_string()), "the message names the run: {err}");
    assert_eq!(refusal(Err(err)), LaunchRefusal::Overlap { run_id: first.id() });
    assert_eq!(scalar(&rt, "SELECT COUNT(*) FROM cog_pipeline_run").await, 1, "a refused launch creates nothing");
    g.open();
    assert_eq!(wait(&first).await, RunStatus::Completed);
    let second = rt.launch("p").await.expect("the first run has ended");
    assert_eq!(wait(&second).await, RunStatus::Completed);
    rt.shutdown().await;
}

async fn after_a_failed_run_launches_are_refused_unless_overlap_failed(db: TestDb) {
    let rt = db.runtime().await;
    rt.start();
    rt.define(PipelineSpec::new("p").stage(StageSpec::new("s").task(TaskSpec::new("s_fail")))).await.unwrap();
    let failed = rt.launch("p").await.unwrap();
    assert_eq!(wait(&failed).await, RunStatus::Failed);
    assert_eq!(refusal(rt.launch("p").await), LaunchRefusal::LastRunFailed { run_id: failed.id() });
    assert_eq!(scalar(&rt, "SELECT COUNT(*) FROM cog_pipeline_run").await, 1);

    // A runtime with overlap_failed launches anyway.
    let lenient = db.runtime_with(|b| b.config(test_config().overlap_failed(true))).await;
    let next = lenient.launch("p").await.expect("overlap_failed allows a launch after a failed run");
    assert_ne!(next.id(), failed.id());
    assert_eq!(wait(&next).await, RunStatus::Failed);

    // So does a pipeline without prevent_overlap.
    rt.define(PipelineSpec::new("p").prevent_overlap(false).stage(StageSpec::new("s").task(TaskSpec::new("s_fail")))).await.unwrap();
    let third = rt.launch("p").await.expect("prevent_overlap(false) allows a launch after a failed run");
    assert_eq!(wait(&third).await, RunStatus::Failed);
    rt.shutdown().await;
}

async fn without_prevent_overlap_two_runs_go_at_once(db: TestDb) {
    let rt = db.runtime().await;
    let key = db.url.clone();
    rt.define(PipelineSpec::new("p").prevent_overlap(false).stage(StageSpec::new("s").task(TaskSpec::new("s_wait").args(json!({"gate_key": key})))))
        .await
        .unwrap();
    let first = rt.launch("p").await.unwrap();
    let second = rt.launch("p").await.expect("prevent_overlap(false) allows a second run");
    rt.start();
    let g = probe(&key);
    eventually("both runs' cogs to be running at once", || async { g.arrived.load(Ordering::SeqCst) == 2 }).await;
    g.open();
    assert_eq!(wait(&first).await, RunStatus::Completed);
    assert_eq!(wait(&second).await, RunStatus::Completed);
    rt.shutdown().await;
}

// ---- launching -------------------------------------------------------------------------------

async fn launching_an_unknown_pipeline_fails(db: TestDb) {
    let rt = db.runtime().await;
    let err = rt.launch("nope").await.unwrap_err();
    assert!(matches!(&err, Error::UnknownPipeline { name } if name == "nope"), "{err:?}");
    assert!(err.to_string().contains("nope"));
    assert!(matches!(rt.launch_with("nope", json!({})).await, Err(Error::UnknownPipeline { .. })));
    assert_eq!(scalar(&rt, "SELECT COUNT(*) FROM cog_pipeline_run").await, 0);
}

/// `(task name, result)` of the task runs of `run_id`.
async fn results(rt: &CogRuntime, run_id: i64) -> Vec<(String, Value)> {
    let sql = format!(
        "SELECT t.name, tr.result FROM cog_task_run tr JOIN cog_task t ON t.id = tr.task_id \
         JOIN cog_stage_run sr ON sr.id = tr.stage_run_id WHERE sr.pipeline_run_id = {run_id} ORDER BY t.name"
    );
    rows(rt, &sql)
        .await
        .iter()
        .map(|r| (r.try_get_by_index(0).unwrap(), r.try_get_by_index::<Option<String>>(1).unwrap().map_or(Value::Null, |t| serde_json::from_str(&t).unwrap())))
        .collect()
}

async fn launch_arguments_override_task_arguments_by_parameter_name(db: TestDb) {
    let rt = db.runtime().await;
    rt.start();
    rt.define(
        PipelineSpec::new("p").prevent_overlap(false).stage(
            StageSpec::new("s")
                .task(TaskSpec::new("s_echo").args(json!({"value": "own"})))
                .task(TaskSpec::new("s_other").args(json!({"x": 1})))
                .task(TaskSpec::new("s_maybe")),
        ),
    )
    .await
    .unwrap();
    let plain = rt.launch("p").await.unwrap();
    assert_eq!(wait(&plain).await, RunStatus::Completed);
    assert_eq!(results(&rt, plain.id()).await, [("s_echo".to_owned(), json!("own")), ("s_maybe".to_owned(), Value::Null), ("s_other".to_owned(), json!(1))]);

    let launched = rt.launch_with("p", json!({"value": "launched", "date": "2026-11-24", "unrelated": [1, 2]})).await.unwrap();
    assert_eq!(wait(&launched).await, RunStatus::Completed, "{:?}", task_statuses(&rt, launched.id()).await);
    assert_eq!(
        results(&rt, launched.id()).await,
        [("s_echo".to_owned(), json!("launched")), ("s_maybe".to_owned(), json!("2026-11-24")), ("s_other".to_owned(), json!(1))],
        "a launch argument replaces the task's own for a cog with that parameter and is ignored by the others"
    );
    rt.shutdown().await;
}

async fn launch_arguments_must_be_an_object(db: TestDb) {
    let rt = db.runtime().await;
    rt.define(PipelineSpec::new("p").stage(StageSpec::new("s").task(TaskSpec::new("s_other")))).await.unwrap();
    for bad in [json!([1]), json!("2026-11-24"), json!(null), json!(3)] {
        let err = rt.launch_with("p", bad.clone()).await.unwrap_err();
        assert!(matches!(&err, Error::LaunchArgumentsNotObject { pipeline } if pipeline == "p"), "{bad}: {err:?}");
    }
    assert_eq!(scalar(&rt, "SELECT COUNT(*) FROM cog_pipeline_run").await, 0);
}

async fn runs_record_trigger_and_launch_arguments(db: TestDb) {
    let rt = db.runtime().await;
    rt.define(PipelineSpec::new("p").prevent_overlap(false)).await.unwrap();
    let plain = rt.launch("p").await.unwrap();
    let args = json!({"date": "2026-11-24", "n": 3, "nested": {"ok": true}});
    let with = rt.launch_with("p", args.clone()).await.unwrap();
    for (run, expected) in [(&plain, json!({})), (&with, args)] {
        let found =
            rows(&rt, &format!("SELECT {}, arguments, scheduled_for FROM cog_pipeline_run WHERE id = {}", support::trigger_column(&rt), run.id())).await;
        assert_eq!(found[0].try_get_by_index::<String>(0).unwrap(), "manual");
        assert_eq!(serde_json::from_str::<Value>(&found[0].try_get_by_index::<String>(1).unwrap()).unwrap(), expected);
        assert!(found[0].try_get_by_index::<Option<chrono::DateTime<chrono::Utc>>>(2).unwrap().is_none(), "a manual run has no schedule tick");
    }
}

on_all_backends!(
    empty_stages_complete_at_once_and_their_successors_run,
    a_chain_of_empty_stages_completes_without_workers,
    a_pipeline_without_stages_completes_at_once,
    a_launch_while_a_run_is_going_is_refused,
    after_a_failed_run_launches_are_refused_unless_overlap_failed,
    without_prevent_overlap_two_runs_go_at_once,
    launching_an_unknown_pipeline_fails,
    launch_arguments_override_task_arguments_by_parameter_name,
    launch_arguments_must_be_an_object,
    runs_record_trigger_and_launch_arguments,
);
