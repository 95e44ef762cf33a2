//! Task weights (DESIGN invariant 9): learned from the durations of the last completed runs when
//! a run ends, kept for tasks that did not run or when `auto_weight` is off, used to take the
//! heaviest task runs first, and a failure to learn them never leaves a run `running`.

mod support;

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use cog::{CogRuntime, PipelineSpec, RunStatus, StageSpec, TaskSpec, cog};
use serde_json::json;
use support::{TestDb, rows, scalar, test_config, wait};

#[cog]
async fn w_sleep(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

#[cog]
fn w_fail() -> Result<(), String> {
    Err("this task always fails".into())
}

/// The order `w_record` was called in, by test key.
static ORDER: LazyLock<Mutex<HashMap<String, Vec<String>>>> = LazyLock::new(Default::default);

#[cog]
fn w_record(key: String, label: String) {
    ORDER.lock().unwrap().entry(key).or_default().push(label);
}

#[cog]
async fn w_record_sleep(key: String, label: String, ms: u64) {
    ORDER.lock().unwrap().entry(key).or_default().push(label);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

async fn weight(rt: &CogRuntime, task: &str) -> f64 {
    let found = rows(rt, &format!("SELECT weight FROM cog_task WHERE name = '{task}'")).await;
    assert_eq!(found.len(), 1, "task {task}");
    found[0].try_get_by_index(0).unwrap()
}

/// `duration_ms` of the completed runs of task `task`, oldest first.
async fn durations(rt: &CogRuntime, task: &str) -> Vec<i64> {
    let sql = format!(
        "SELECT tr.duration_ms FROM cog_task_run tr JOIN cog_task t ON t.id = tr.task_id WHERE t.name = '{task}' AND tr.status = 'completed' ORDER BY tr.id"
    );
    rows(rt, &sql).await.iter().map(|r| r.try_get_by_index::<i64>(0).unwrap()).collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

async fn weight_is_the_mean_of_the_last_completed_runs(db: TestDb) {
    let rt = db.runtime_with(|b| b.config(test_config().weight_sample_size(2))).await;
    rt.start();
    rt.define(
        PipelineSpec::new("p").stage(
            StageSpec::new("s")
                .task(TaskSpec::new("w_sleep").name("sleepy").args(json!({"ms": 0})).weight(100.0))
                .task(TaskSpec::new("w_sleep").name("disabled").args(json!({"ms": 0})).weight(4.0).enabled(false))
                .task(TaskSpec::new("w_fail").name("failing").weight(3.0).critical(false)),
        ),
    )
    .await
    .unwrap();
    // The launch argument `ms` reaches the sleeping tasks: a known, different length each run.
    for (n, ms) in [30u64, 150, 60].into_iter().enumerate() {
        let run = rt.launch_with("p", json!({ "ms": ms })).await.unwrap();
        assert_eq!(wait(&run).await, RunStatus::Completed);
        let all = durations(&rt, "sleepy").await;
        assert_eq!(all.len(), n + 1);
        assert!(all[n] >= ms as i64, "duration_ms {} of a {ms} ms sleep", all[n]);
        let last: Vec<i64> = all.iter().rev().take(2).copied().collect();
        let expected = last.iter().sum::<i64>() as f64 / last.len() as f64 / 1000.0;
        // Learned in the run's final transaction: there when `wait()` returns.
        let learned = weight(&rt, "sleepy").await;
        assert!(close(learned, expected), "weight {learned} after run {} is the mean of {last:?} ms", n + 1);
        // The disabled task never ran and the failing one never completed: both keep theirs.
        assert_eq!(weight(&rt, "disabled").await, 4.0);
        assert_eq!(weight(&rt, "failing").await, 3.0);
    }
    let all = durations(&rt, "sleepy").await;
    let mean_of_all = all.iter().sum::<i64>() as f64 / 3000.0;
    assert!(!close(weight(&rt, "sleepy").await, mean_of_all), "only the last 2 runs count");
    rt.shutdown().await;
}

async fn auto_weight_off_keeps_weights(db: TestDb) {
    let rt = db.runtime_with(|b| b.config(test_config().auto_weight(false))).await;
    rt.start();
    rt.define(PipelineSpec::new("p").stage(StageSpec::new("s").task(TaskSpec::new("w_sleep").name("sleepy").args(json!({"ms": 20})).weight(5.0))))
        .await
        .unwrap();
    for _ in 0..2 {
        let run = rt.launch("p").await.unwrap();
        assert_eq!(wait(&run).await, RunStatus::Completed);
    }
    assert_eq!(durations(&rt, "sleepy").await.len(), 2);
    assert_eq!(weight(&rt, "sleepy").await, 5.0, "auto_weight(false) never changes weights");
    rt.shutdown().await;
}

async fn heaviest_task_runs_go_first(db: TestDb) {
    let rt = db.runtime_with(|b| b.concurrency(1).config(test_config().auto_weight(false))).await;
    let record = |label: &str, w: f64| TaskSpec::new("w_record").name(format!("w{label}")).args(json!({"key": db.url, "label": label})).weight(w);
    rt.define(PipelineSpec::new("p").stage(StageSpec::new("s").task(record("1", 1.0)).task(record("5", 5.0)).task(record("3", 3.0)).task(record("2", 2.0))))
        .await
        .unwrap();
    // Every task run is queued before the single worker starts.
    let run = rt.launch("p").await.unwrap();
    rt.start();
    assert_eq!(wait(&run).await, RunStatus::Completed);
    assert_eq!(ORDER.lock().unwrap()[&db.url], ["5", "3", "2", "1"]);
    let weights: Vec<f64> =
        rows(&rt, "SELECT tr.weight FROM cog_task_run tr ORDER BY tr.started_at, tr.id").await.iter().map(|r| r.try_get_by_index(0).unwrap()).collect();
    assert_eq!(weights, [5.0, 3.0, 2.0, 1.0], "cog_task_run.weight copies the task's weight");
    rt.shutdown().await;
}

async fn a_failed_weight_update_does_not_leave_the_run_running(db: TestDb) {
    let rt = db.runtime().await;
    rt.start();
    rt.define(
        PipelineSpec::new("p")
            .stage(StageSpec::new("s").task(TaskSpec::new("w_sleep").name("a").args(json!({"ms": 20})).weight(2.0)))
            .stage(StageSpec::new("t").after(["s"]).task(TaskSpec::new("w_sleep").name("b").args(json!({"ms": 5})).weight(6.0))),
    )
    .await
    .unwrap();
    let trigger = match db.backend {
        "sqlite" => vec!["CREATE TRIGGER no_weights BEFORE UPDATE OF weight ON cog_task BEGIN SELECT RAISE(ABORT, 'weights are broken'); END"],
        "mysql" => vec![
            "CREATE TRIGGER no_weights BEFORE UPDATE ON cog_task FOR EACH ROW BEGIN IF NEW.weight <> OLD.weight THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'weights are broken'; END IF; END",
        ],
        _ => vec![
            "CREATE FUNCTION no_weights() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'weights are broken'; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER no_weights BEFORE UPDATE OF weight ON cog_task FOR EACH ROW EXECUTE FUNCTION no_weights()",
        ],
    };
    for sql in trigger {
        rows(&rt, sql).await;
    }
    // The trigger works: a weight update fails.
    let db_conn = rt.connection();
    let refused =
        sea_orm::ConnectionTrait::execute_unprepared(db_conn, "UPDATE cog_task SET weight = 9").await.expect_err("the trigger refuses weight updates");
    assert!(refused.to_string().contains("weights are broken"), "{refused}");

    let run = rt.launch("p").await.unwrap();
    assert_eq!(wait(&run).await, RunStatus::Completed);
    let found = rows(&rt, &format!("SELECT status, completed_at FROM cog_pipeline_run WHERE id = {}", run.id())).await;
    assert_eq!(found[0].try_get_by_index::<String>(0).unwrap(), "completed");
    assert!(found[0].try_get_by_index::<Option<chrono::DateTime<chrono::Utc>>>(1).unwrap().is_some(), "completed_at is set");
    assert_eq!(support::task_statuses(&rt, run.id()).await, [("a".to_owned(), "completed".to_owned()), ("b".to_owned(), "completed".to_owned())]);
    assert_eq!(scalar(&rt, "SELECT COUNT(*) FROM cog_stage_run WHERE status <> 'completed' OR completed_at IS NULL").await, 0);

    // The next launch is not refused (the run is not left going), and weights are unchanged.
    let again = rt.launch("p").await.expect("the first run has ended");
    assert_eq!(wait(&again).await, RunStatus::Completed);
    assert_eq!((weight(&rt, "a").await, weight(&rt, "b").await), (2.0, 6.0));
    rt.shutdown().await;
}

async fn a_launch_right_after_wait_uses_the_learned_weights(db: TestDb) {
    let rt = db.runtime_with(|b| b.concurrency(1).config(test_config().weight_sample_size(1))).await;
    rt.start();
    let task = |label: &str, ms: u64, w: f64| TaskSpec::new("w_record_sleep").name(label).args(json!({"key": db.url, "label": label, "ms": ms})).weight(w);
    // Declared weights say the opposite of the real durations.
    rt.define(PipelineSpec::new("p").stage(StageSpec::new("s").task(task("short", 5, 3.0)).task(task("mid", 60, 2.0)).task(task("long", 150, 1.0))))
        .await
        .unwrap();
    assert_eq!(wait(&rt.launch("p").await.unwrap()).await, RunStatus::Completed);
    assert_eq!(ORDER.lock().unwrap()[&db.url], ["short", "mid", "long"], "the first run follows the declared weights");
    // No pause: the weights learned from the first run are written before `wait()` returned.
    assert_eq!(wait(&rt.launch("p").await.unwrap()).await, RunStatus::Completed);
    assert_eq!(ORDER.lock().unwrap()[&db.url][3..], ["long", "mid", "short"], "the second run follows the learned weights");
    rt.shutdown().await;
}

on_all_backends!(
    a_launch_right_after_wait_uses_the_learned_weights,
    weight_is_the_mean_of_the_last_completed_runs,
    auto_weight_off_keeps_weights,
    heaviest_task_runs_go_first,
    a_failed_weight_update_does_not_leave_the_run_running,
);
