//! Canceling runs (DESIGN invariants 5 and 6): the run is `canceled` at once, queued task runs
//! too, running cogs are told and finish, no new stage starts, `completed_at` is written once
//! when the last running cog ends, and an ended run never changes.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use cog::entity::task_run;
use cog::{CogRuntime, PipelineSpec, RunStatus, StageSpec, TaskSpec, cog};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;
use support::{TestDb, eventually, probe, rows, scalar, stage_statuses, task_statuses, test_config, wait};

/// Waits for the cancel, records that it saw it, then holds until the test opens the gate.
#[cog]
async fn cn_wait(key: String, ctx: cog::TaskContext) -> Result<(), std::io::Error> {
    let probe = probe(&key);
    probe.arrived.fetch_add(1, Ordering::SeqCst);
    ctx.cancelled().await;
    probe.saw_cancel.store(true, Ordering::SeqCst);
    probe.pass().await;
    Ok(())
}

/// Ignores the cancel: holds until gate `gate` opens, then returns whether it was told.
#[cog]
async fn cn_ignore(key: String, gate: String, ctx: cog::TaskContext) -> bool {
    probe(&key).arrived.fetch_add(1, Ordering::SeqCst);
    probe(&gate).pass().await;
    ctx.is_cancelled()
}

/// Counts its calls.
#[cog]
fn cn_count(key: String) -> usize {
    probe(&key).calls.fetch_add(1, Ordering::SeqCst) + 1
}

#[cog]
fn cn_quick() -> i64 {
    42
}

#[cog]
fn cn_fail() -> Result<(), std::io::Error> {
    Err(std::io::Error::other("cn_fail failed on purpose"))
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
}

/// `(status, completed_at)` of pipeline run `id`.
async fn run_row(rt: &CogRuntime, id: i64) -> (String, Option<DateTime<Utc>>) {
    let rows = rows(rt, &format!("SELECT status, completed_at FROM cog_pipeline_run WHERE id = {id}")).await;
    (rows[0].try_get_by_index(0).unwrap(), rows[0].try_get_by_index(1).unwrap())
}

/// Column `column` of the task run of task `task` in pipeline run `run_id`.
async fn task_column<T: sea_orm::TryGetable>(rt: &CogRuntime, run_id: i64, task: &str, column: &str) -> T {
    let sql = format!(
        "SELECT {column} FROM cog_task_run tr JOIN cog_task t ON t.id = tr.task_id JOIN cog_stage_run sr ON sr.id = tr.stage_run_id \
         WHERE sr.pipeline_run_id = {run_id} AND t.name = '{task}'"
    );
    rows(rt, &sql).await[0].try_get_by_index(0).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Cancel while one cog runs and others wait in the queue.
async fn cancel_stops_the_run_at_once_and_tells_the_running_cog(db: TestDb) {
    let key = format!("{}-cancel", db.url);
    let rt = db.runtime_with(|b| b.concurrency(1)).await;
    rt.define(
        PipelineSpec::new("to_cancel")
            .stage(
                StageSpec::new("first")
                    .task(TaskSpec::new("cn_wait").name("waiter").args(json!({ "key": key })).weight(10.0))
                    .task(TaskSpec::new("cn_count").name("queued_a").args(json!({ "key": key })).weight(1.0))
                    .task(TaskSpec::new("cn_count").name("queued_b").args(json!({ "key": key })).weight(1.0)),
            )
            .stage(StageSpec::new("second").after(["first"]).task(TaskSpec::new("cn_count").name("later").args(json!({ "key": key })))),
    )
    .await
    .unwrap();
    let run = rt.launch("to_cancel").await.unwrap();
    let id = run.id();
    rt.start();
    let p = probe(&key);
    eventually("the waiter cog to run", || async { p.arrived.load(Ordering::SeqCst) == 1 }).await;
    assert!(!p.saw_cancel.load(Ordering::SeqCst));

    rt.cancel(id).await.unwrap();
    // Right after `cancel` returns, before any cog reacted.
    assert_eq!(run.status().await.unwrap(), RunStatus::Canceled, "the run is canceled at once");
    assert_eq!(
        task_statuses(&rt, id).await,
        pairs(&[("queued_a", "canceled"), ("queued_b", "canceled"), ("waiter", "running")]),
        "queued task runs are canceled, the running one goes on"
    );
    assert_eq!(stage_statuses(&rt, id).await, pairs(&[("first", "canceled")]));
    eventually("the running cog to hear of the cancel", || async { p.saw_cancel.load(Ordering::SeqCst) }).await;
    // The cog noticed but has not returned yet (it waits on its gate): the run is not over.
    assert_eq!(run_row(&rt, id).await, ("canceled".to_owned(), None), "completed_at is written when the last running cog ends");

    p.open();
    assert_eq!(wait(&run).await, RunStatus::Canceled);
    assert_eq!(
        task_statuses(&rt, id).await,
        pairs(&[("queued_a", "canceled"), ("queued_b", "canceled"), ("waiter", "completed")]),
        "the running cog returned Ok after noticing the cancel: its task run is completed"
    );
    assert_eq!(stage_statuses(&rt, id).await, pairs(&[("first", "canceled")]), "no new stage starts after a cancel");
    assert_eq!(p.calls.load(Ordering::SeqCst), 0, "no canceled task run and no later stage ran");
    let (status, completed_at) = run_row(&rt, id).await;
    assert_eq!(status, "canceled");
    let waiter_done: DateTime<Utc> = task_column(&rt, id, "waiter", "tr.completed_at").await;
    let completed_at = completed_at.expect("completed_at written once the waiter ended");
    assert!(completed_at >= waiter_done, "run completed_at {completed_at} is before the last running cog ended at {waiter_done}");
    rt.shutdown().await;
}

/// `cancel` on a completed or failed run is `Ok(())` and changes nothing.
async fn cancel_of_an_ended_run_changes_nothing(db: TestDb) {
    let rt = db.runtime().await;
    rt.define(PipelineSpec::new("fine").stage(StageSpec::new("only").task(TaskSpec::new("cn_quick")))).await.unwrap();
    rt.define(PipelineSpec::new("broken").stage(StageSpec::new("only").task(TaskSpec::new("cn_fail")))).await.unwrap();
    rt.start();
    for (pipeline, expected) in [("fine", RunStatus::Completed), ("broken", RunStatus::Failed)] {
        let run = rt.launch(pipeline).await.unwrap();
        assert_eq!(wait(&run).await, expected);
        let before = run_row(&rt, run.id()).await;
        let tasks_before = task_statuses(&rt, run.id()).await;
        assert!(before.1.is_some());
        rt.cancel(run.id()).await.expect("cancel of an ended run is Ok");
        rt.cancel(run.id()).await.expect("and again");
        assert_eq!(run_row(&rt, run.id()).await, before, "status and completed_at of the {pipeline} run must not change");
        assert_eq!(task_statuses(&rt, run.id()).await, tasks_before);
        assert_eq!(run.status().await.unwrap(), expected);
    }
    rt.shutdown().await;
}

/// `cancel` of a run that does not exist is a typed error.
async fn cancel_of_an_unknown_run_is_an_error(db: TestDb) {
    let rt = db.runtime().await;
    match rt.cancel(999_999).await {
        Err(cog::Error::UnknownRun { id: 999_999 }) => {}
        other => panic!("expected Err(UnknownRun {{ id: 999_999 }}), got {other:?}"),
    }
    assert_eq!(scalar(&rt, "SELECT COUNT(*) FROM cog_pipeline_run").await, 0);
}

/// Cogs that ignore the cancel complete afterwards: their task runs are `completed`, the run
/// stays `canceled`, and `completed_at` is written once, when the last one ends.
async fn cogs_finishing_after_a_cancel_leave_the_run_canceled(db: TestDb) {
    let key = format!("{}-ignore", db.url);
    let (gate_1, gate_2) = (format!("{key}-1"), format!("{key}-2"));
    let rt = db.runtime_with(|b| b.concurrency(2)).await;
    rt.define(
        PipelineSpec::new("stubborn")
            .stage(
                StageSpec::new("first")
                    .task(TaskSpec::new("cn_ignore").name("one").args(json!({ "key": key, "gate": gate_1 })))
                    .task(TaskSpec::new("cn_ignore").name("two").args(json!({ "key": key, "gate": gate_2 }))),
            )
            .stage(StageSpec::new("second").after(["first"]).task(TaskSpec::new("cn_count").name("later").args(json!({ "key": key })))),
    )
    .await
    .unwrap();
    let run = rt.launch("stubborn").await.unwrap();
    let id = run.id();
    rt.start();
    let p = probe(&key);
    eventually("both cogs to run", || async { p.arrived.load(Ordering::SeqCst) == 2 }).await;

    rt.cancel(id).await.unwrap();
    assert_eq!(run.status().await.unwrap(), RunStatus::Canceled);

    // The first one completes; the second still runs, so the run has not ended.
    probe(&gate_1).open();
    eventually("task `one` to complete", || async { task_column::<String>(&rt, id, "one", "tr.status").await == "completed" }).await;
    assert_eq!(run_row(&rt, id).await, ("canceled".to_owned(), None), "a completed task run must not revive a canceled run");
    assert_eq!(task_column::<String>(&rt, id, "two", "tr.status").await, "running");

    probe(&gate_2).open();
    assert_eq!(wait(&run).await, RunStatus::Canceled);
    assert_eq!(task_statuses(&rt, id).await, pairs(&[("one", "completed"), ("two", "completed")]));
    for task in ["one", "two"] {
        let result: Option<String> = task_column(&rt, id, task, "tr.result").await;
        assert_eq!(result.as_deref(), Some("true"), "task `{task}` must have been told of the cancel through its context");
    }
    assert_eq!(stage_statuses(&rt, id).await, pairs(&[("first", "canceled")]), "no new stage starts after a cancel");
    let first_read = run_row(&rt, id).await;
    assert!(first_read.1.is_some());

    // More events: cancel again, and a whole new run of the pipeline.
    rt.cancel(id).await.unwrap();
    let next = rt.launch("stubborn").await.expect("a canceled last run does not block a launch");
    assert_eq!(wait(&next).await, RunStatus::Completed);
    assert_eq!(p.calls.load(Ordering::SeqCst), 1, "only the second run's `later` ran");
    assert_eq!(run_row(&rt, id).await, first_read, "status and completed_at of the canceled run are written once");
    assert_eq!(task_statuses(&rt, id).await, pairs(&[("one", "completed"), ("two", "completed")]));
    rt.shutdown().await;
}

/// A canceled run ends when another process reclaims its last task run (the worker running it
/// stopped renewing its lease); when that worker later shuts down and gives the task run back,
/// nothing of the ended run changes: its `completed_at` is written once.
async fn completed_at_is_written_once_when_a_stale_worker_gives_its_task_back(db: TestDb) {
    let key = format!("{}-stale-release", db.url);
    let gate = format!("{key}-gate");
    let rt = db.runtime_with(|b| b.config(test_config().shutdown_timeout(Duration::from_millis(200)))).await;
    rt.define(
        PipelineSpec::new("stale").stage(StageSpec::new("only").task(TaskSpec::new("cn_ignore").name("stuck").args(json!({ "key": key, "gate": gate })))),
    )
    .await
    .unwrap();
    let run = rt.launch("stale").await.unwrap();
    let id = run.id();
    rt.start();
    let p = probe(&key);
    eventually("the cog to run", || async { p.arrived.load(Ordering::SeqCst) == 1 }).await;
    rt.cancel(id).await.unwrap();
    assert_eq!(run_row(&rt, id).await, ("canceled".to_owned(), None));

    // The worker looks dead to the others: its lease is long expired and no longer its own to renew.
    let past = (Utc::now() - chrono::Duration::hours(1)).trunc_subsecs(6);
    task_run::Entity::update_many()
        .col_expr(task_run::Column::Worker, Expr::value("zombie"))
        .col_expr(task_run::Column::LeaseUntil, Expr::value(past))
        .filter(task_run::Column::Status.eq(RunStatus::Running))
        .exec(rt.connection())
        .await
        .unwrap();
    let reaper = db.runtime_with(|b| b.config(test_config().lease_duration(Duration::from_millis(300)))).await;
    reaper.start();
    assert_eq!(wait(&reaper.handle(id)).await, RunStatus::Canceled);
    let first_read = run_row(&rt, id).await;
    assert!(first_read.1.is_some());
    assert_eq!(task_column::<String>(&rt, id, "stuck", "tr.status").await, "failed", "reclaimed without retry: the run was canceled");

    // The first runtime still runs the cog; its shutdown deadline passes and it gives the task run back.
    rt.shutdown().await;
    assert_eq!(task_column::<String>(&rt, id, "stuck", "tr.status").await, "failed", "a terminal task run never changes");
    assert_eq!(run_row(&rt, id).await, first_read, "status and completed_at of the ended run are written once");
    reaper.shutdown().await;
    assert_eq!(run_row(&reaper, id).await, first_read);
}

on_all_backends!(
    cancel_stops_the_run_at_once_and_tells_the_running_cog,
    cancel_of_an_ended_run_changes_nothing,
    cancel_of_an_unknown_run_is_an_error,
    cogs_finishing_after_a_cancel_leave_the_run_canceled,
    completed_at_is_written_once_when_a_stale_worker_gives_its_task_back,
);
