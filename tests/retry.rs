//! Retrying a run from where it stopped (issue 9, item 1): a new run (`trigger = 'retry'`,
//! `retry_of`) in which completed stages are recorded at once with their results copied and
//! the rest runs; the old run never changes; typed errors for active, completed and unknown
//! runs; overlap rules as for any launch, the last failed run excepted.

mod support;

use std::sync::atomic::Ordering;

use cog::entity::{pipeline_run, task_run};
use cog::{CogRuntime, Error, LaunchRefusal, Overlap, PipelineSpec, RunStatus, StageSpec, TaskSpec, Trigger, cog};
use sea_orm::EntityTrait;
use serde_json::json;
use support::{TestDb, probe, scalar, stage_statuses, task_statuses, wait};

/// Counts its calls and returns `n * 10`.
#[cog]
fn rt_counted(key: String, n: i64) -> i64 {
    probe(&key).calls.fetch_add(1, Ordering::SeqCst);
    n * 10
}

/// Fails until the test marks it fixed (its probe's `saw_cancel` flag, used as "fixed").
#[cog]
fn rt_flaky(key: String) -> Result<String, std::io::Error> {
    let p = probe(&format!("{key}-flaky"));
    p.calls.fetch_add(1, Ordering::SeqCst);
    if p.saw_cancel.load(Ordering::SeqCst) { Ok("fixed".to_owned()) } else { Err(std::io::Error::other("not yet")) }
}

/// Three stages in a chain; the middle one fails until told to work.
fn chain(key: &str) -> PipelineSpec {
    PipelineSpec::new("chain")
        .stage(StageSpec::new("one").task(TaskSpec::new("rt_counted").args(json!({"key": key}))))
        .stage(StageSpec::new("two").after(["one"]).task(TaskSpec::new("rt_flaky").args(json!({"key": key}))))
        .stage(StageSpec::new("three").after(["two"]).task(TaskSpec::new("rt_counted").name("last").args(json!({"key": key, "n": 2}))))
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
}

async fn failed_run(rt: &CogRuntime, key: &str) -> cog::RunHandle {
    rt.define(chain(key)).await.unwrap();
    let run = rt.launch_with("chain", json!({"n": 4})).await.unwrap();
    assert_eq!(wait(&run).await, RunStatus::Failed);
    run
}

async fn a_retry_runs_only_what_did_not_complete(db: TestDb) {
    let key = format!("{}-retry", db.url);
    let rt = db.runtime().await;
    rt.start();
    let old = failed_run(&rt, &key).await;
    let old_stages = stage_statuses(&rt, old.id()).await;
    assert_eq!(old_stages, pairs(&[("one", "completed"), ("two", "failed")]));
    let old_tasks = task_statuses(&rt, old.id()).await;
    probe(&format!("{key}-flaky")).saw_cancel.store(true, Ordering::SeqCst);

    let new = rt.retry(old.id()).await.unwrap();
    assert_eq!(wait(&new).await, RunStatus::Completed);
    assert_eq!(probe(&key).calls.load(Ordering::SeqCst), 2, "stage one ran once (old run), stage three once (new run)");
    assert_eq!(stage_statuses(&rt, new.id()).await, pairs(&[("one", "completed"), ("three", "completed"), ("two", "completed")]));
    let row = pipeline_run::Entity::find_by_id(new.id()).one(rt.connection()).await.unwrap().unwrap();
    assert_eq!((row.trigger, row.retry_of, row.arguments.as_str()), (Trigger::Retry, Some(old.id()), r#"{"n":4}"#));
    // The copied task run carries the old result.
    let results = scalar(
        &rt,
        &format!(
            "SELECT COUNT(*) FROM cog_task_run t JOIN cog_stage_run s ON s.id = t.stage_run_id JOIN cog_task k ON k.id = t.task_id \
             WHERE s.pipeline_run_id = {} AND k.name = 'rt_counted' AND t.status = 'completed' AND t.result = '40'",
            new.id()
        ),
    )
    .await;
    assert_eq!(results, 1);
    // The old run is as it was.
    assert_eq!(old.status().await.unwrap(), RunStatus::Failed);
    assert_eq!(stage_statuses(&rt, old.id()).await, old_stages);
    assert_eq!(task_statuses(&rt, old.id()).await, old_tasks);
    assert_eq!(task_run::Entity::find().all(rt.connection()).await.unwrap().len(), 5, "2 old + 1 copied + 2 run again");
    rt.shutdown().await;
}

async fn only_ended_failed_or_canceled_runs_can_be_retried(db: TestDb) {
    let key = format!("{}-errors", db.url);
    let rt = db.runtime().await;
    rt.define(PipelineSpec::new("ok").stage(StageSpec::new("s").task(TaskSpec::new("rt_counted").args(json!({"key": key, "n": 1}))))).await.unwrap();
    let waiting = rt.launch("ok").await.unwrap();
    assert!(matches!(rt.retry(waiting.id()).await, Err(Error::RetryOfActiveRun { run_id, status: RunStatus::Running }) if run_id == waiting.id()));
    rt.start();
    assert_eq!(wait(&waiting).await, RunStatus::Completed);
    assert!(matches!(rt.retry(waiting.id()).await, Err(Error::RetryOfCompletedRun { run_id }) if run_id == waiting.id()));
    assert!(matches!(rt.retry(999_999).await, Err(Error::UnknownRun { id: 999_999 })));
    rt.shutdown().await;
}

async fn retrying_the_last_failed_run_needs_no_overlap_failed(db: TestDb) {
    let key = format!("{}-overlap", db.url);
    let rt = db.runtime().await;
    rt.start();
    let old = failed_run(&rt, &key).await;
    assert!(matches!(rt.launch_with("chain", json!({"n": 4})).await, Err(Error::LaunchRefused { reason: LaunchRefusal::LastRunFailed { .. }, .. })));
    // Many retries at once: the overlap rule lets exactly one through while it runs.
    let mut retries = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let rt = rt.clone();
        let old = old.id();
        retries.spawn(async move { rt.retry(old).await });
    }
    let mut ok = Vec::new();
    while let Some(result) = retries.join_next().await {
        match result.unwrap() {
            Ok(run) => ok.push(run),
            Err(Error::LaunchRefused { reason: LaunchRefusal::Overlap { .. } | LaunchRefusal::LastRunFailed { .. }, .. }) => {}
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    assert_eq!(ok.len(), 1, "one retry passes the overlap rule");
    assert_eq!(wait(&ok[0]).await, RunStatus::Failed, "stage two still fails");
    rt.shutdown().await;
}

/// A retry under `Overlap::BufferOne` while another run is active waits as the buffered run,
/// and copies the completed stages when it starts.
async fn a_buffered_retry_copies_when_it_starts(db: TestDb) {
    let key = format!("{}-buffered", db.url);
    let rt = db.runtime().await;
    rt.start();
    let old = failed_run(&rt, &key).await;
    rt.define(chain(&key).overlap(Overlap::BufferOne)).await.unwrap();
    rt.pause_queue("default").await.unwrap();
    let active = rt.retry(old.id()).await.unwrap();
    let buffered = rt.retry(old.id()).await.unwrap();
    assert_eq!(buffered.status().await.unwrap(), RunStatus::Queued);
    assert!(stage_statuses(&rt, buffered.id()).await.is_empty(), "nothing recorded before it starts");
    probe(&format!("{key}-flaky")).saw_cancel.store(true, Ordering::SeqCst);
    rt.resume_queue("default").await.unwrap();
    assert_eq!(wait(&active).await, RunStatus::Completed);
    assert_eq!(wait(&buffered).await, RunStatus::Completed);
    assert_eq!(stage_statuses(&rt, buffered.id()).await, pairs(&[("one", "completed"), ("three", "completed"), ("two", "completed")]));
    assert_eq!(probe(&key).calls.load(Ordering::SeqCst), 3, "stage one ran once in all; stage three once per retry");
    rt.shutdown().await;
}

on_all_backends!(
    a_buffered_retry_copies_when_it_starts,
    a_retry_runs_only_what_did_not_complete,
    only_ended_failed_or_canceled_runs_can_be_retried,
    retrying_the_last_failed_run_needs_no_overlap_failed
);
