//! Leases (DESIGN invariant 7): a task run whose worker died is reclaimed and retried or
//! failed, a live worker keeps its lease through a long cog, and a stale worker's late result
//! is refused (completion is fenced by attempt number).

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use cog::entity::task_run;
use cog::{CogRuntime, PipelineSpec, RunStatus, StageSpec, TaskSpec, cog};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;
use support::{TestDb, eventually, probe, rows, scalar, task_statuses, test_config, wait};

/// Counts its calls; returns its attempt number.
#[cog]
fn ls_count(key: String, ctx: cog::TaskContext) -> i32 {
    probe(&key).calls.fetch_add(1, Ordering::SeqCst);
    ctx.attempt()
}

/// Counts its calls, then sleeps `ms` milliseconds.
#[cog]
async fn ls_sleep(key: String, ms: u64) -> &'static str {
    probe(&key).calls.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    "slept"
}

/// Holds until the test opens the gate, then succeeds (or fails when `fail`).
#[cog]
async fn ls_hold(key: String, fail: bool) -> Result<&'static str, std::io::Error> {
    let probe = probe(&key);
    probe.arrived.fetch_add(1, Ordering::SeqCst);
    probe.calls.fetch_add(1, Ordering::SeqCst);
    probe.pass().await;
    if fail { Err(std::io::Error::other("late failure")) } else { Ok("late result") }
}

/// Runs `sql` (with `$1`, `$2`.. placeholders) with bound `values`; returns the rows changed.
/// Runs an update of `cog_task_run` built through its entity (portable to every backend);
/// returns the rows it changed.
async fn exec(rt: &CogRuntime, update: sea_orm::UpdateMany<task_run::Entity>) -> u64 {
    update.exec(rt.connection()).await.expect("update cog_task_run").rows_affected
}

/// An hour ago, as cog writes timestamps (UTC, microseconds).
fn an_hour_ago() -> DateTime<Utc> {
    (Utc::now() - chrono::Duration::hours(1)).trunc_subsecs(6)
}

/// The id of the task run of task `task` in pipeline run `run_id`.
async fn task_run_id(rt: &CogRuntime, run_id: i64, task: &str) -> i64 {
    scalar(
        rt,
        &format!(
            "SELECT tr.id FROM cog_task_run tr JOIN cog_task t ON t.id = tr.task_id JOIN cog_stage_run sr ON sr.id = tr.stage_run_id \
             WHERE sr.pipeline_run_id = {run_id} AND t.name = '{task}'"
        ),
    )
    .await
}

/// `(status, attempt, worker, result)` of task run `id`.
async fn task_run(rt: &CogRuntime, id: i64) -> (String, i64, Option<String>, Option<String>) {
    let rows = rows(rt, &format!("SELECT status, attempt, worker, result FROM cog_task_run WHERE id = {id}")).await;
    let r = &rows[0];
    (r.try_get_by_index(0).unwrap(), i64::from(r.try_get_by_index::<i32>(1).unwrap()), r.try_get_by_index(2).unwrap(), r.try_get_by_index(3).unwrap())
}

/// `(attempt, error_type, message)` of the `cog_error` rows of task run `id`.
async fn errors_of(rt: &CogRuntime, id: i64) -> Vec<(i64, String, String)> {
    let sql = format!("SELECT attempt, error_type, message FROM cog_error WHERE task_run_id = {id} ORDER BY attempt, id");
    rows(rt, &sql)
        .await
        .iter()
        .map(|r| (i64::from(r.try_get_by_index::<i32>(0).unwrap()), r.try_get_by_index(1).unwrap(), r.try_get_by_index(2).unwrap()))
        .collect()
}

/// Launches pipeline `crashy` (one `ls_count` task with `max_retries`) without any worker, and
/// makes its task run look claimed by a worker that died an hour ago. Returns the runtime (built
/// with a short lease, not started), the run and the task run id.
async fn run_claimed_by_a_dead_worker(db: &TestDb, key: &str, max_retries: u32) -> (CogRuntime, cog::RunHandle, i64) {
    let rt = db.runtime_with(|b| b.config(test_config().lease_duration(Duration::from_millis(300)))).await;
    rt.define(
        PipelineSpec::new("crashy")
            .stage(StageSpec::new("only").task(TaskSpec::new("ls_count").name("victim").args(json!({ "key": key })).max_retries(max_retries))),
    )
    .await
    .unwrap();
    let run = rt.launch("crashy").await.unwrap();
    let id = task_run_id(&rt, run.id(), "victim").await;
    assert_eq!(task_run(&rt, id).await, ("queued".to_owned(), 0, None, None), "no worker runs yet");
    let past = an_hour_ago();
    let changed = exec(
        &rt,
        task_run::Entity::update_many()
            .col_expr(task_run::Column::Status, Expr::value(RunStatus::Running))
            .col_expr(task_run::Column::Attempt, Expr::value(1))
            .col_expr(task_run::Column::Worker, Expr::value("dead"))
            .col_expr(task_run::Column::LeaseUntil, Expr::value(past))
            .col_expr(task_run::Column::StartedAt, Expr::value(past))
            .filter(task_run::Column::Id.eq(id))
            .filter(task_run::Column::Status.eq(RunStatus::Queued)),
    )
    .await;
    assert_eq!(changed, 1);
    (rt, run, id)
}

/// A worker died holding a task run that may be retried: reclaimed, retried, completed at attempt 2.
async fn dead_workers_task_is_reclaimed_and_retried(db: TestDb) {
    let key = format!("{}-retried", db.url);
    let (rt, run, id) = run_claimed_by_a_dead_worker(&db, &key, 1).await;
    rt.start();
    assert_eq!(wait(&run).await, RunStatus::Completed);
    let (status, attempt, worker, result) = task_run(&rt, id).await;
    assert_eq!((status.as_str(), attempt, result.as_deref()), ("completed", 2, Some("2")), "completed by the retry, attempt 2");
    assert_eq!(worker.as_deref(), Some(rt.worker_id()), "the live runtime ran the retry");
    assert_eq!(probe(&key).calls.load(Ordering::SeqCst), 1);
    let errors = errors_of(&rt, id).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!((errors[0].0, errors[0].1.as_str()), (1, "lease_expired"), "{errors:?}");
    assert!(errors[0].2.contains("dead"), "the message names the dead worker: {errors:?}");
    rt.shutdown().await;
}

/// A worker died holding a task run with no retries left: the task run and the run fail.
async fn dead_workers_task_without_retries_fails(db: TestDb) {
    let key = format!("{}-failed", db.url);
    let (rt, run, id) = run_claimed_by_a_dead_worker(&db, &key, 0).await;
    rt.start();
    assert_eq!(wait(&run).await, RunStatus::Failed, "never stuck `running`");
    let (status, attempt, worker, result) = task_run(&rt, id).await;
    assert_eq!((status.as_str(), attempt, worker.as_deref(), result), ("failed", 1, Some("dead"), None));
    assert_eq!(probe(&key).calls.load(Ordering::SeqCst), 0, "the cog is never run again");
    let errors = errors_of(&rt, id).await;
    assert_eq!(errors.iter().map(|e| (e.0, e.1.as_str())).collect::<Vec<_>>(), [(1, "lease_expired")]);
    let completed_at =
        rows(&rt, &format!("SELECT completed_at FROM cog_task_run WHERE id = {id}")).await[0].try_get_by_index::<Option<DateTime<Utc>>>(0).unwrap();
    assert!(completed_at.is_some());
    rt.shutdown().await;
}

/// A cog running five times longer than the lease keeps it: its worker renews it, and another
/// process reclaiming expired leases leaves it alone.
async fn live_worker_keeps_its_lease(db: TestDb) {
    let key = format!("{}-live", db.url);
    let config = || test_config().lease_duration(Duration::from_millis(300));
    let rt = db.runtime_with(|b| b.config(config())).await;
    // A second process that works on another queue: it only reclaims expired leases.
    let watcher = db.runtime_with(|b| b.config(config()).queues(["elsewhere"])).await;
    rt.define(
        PipelineSpec::new("long")
            .stage(StageSpec::new("only").task(TaskSpec::new("ls_sleep").name("long").args(json!({ "key": key, "ms": 1500 })).max_retries(1))),
    )
    .await
    .unwrap();
    rt.start();
    watcher.start();
    let run = rt.launch("long").await.unwrap();
    assert_eq!(wait(&run).await, RunStatus::Completed);
    let id = task_run_id(&rt, run.id(), "long").await;
    let (status, attempt, worker, result) = task_run(&rt, id).await;
    assert_eq!((status.as_str(), attempt, result.as_deref()), ("completed", 1, Some("\"slept\"")));
    assert_eq!(worker.as_deref(), Some(rt.worker_id()));
    assert_eq!(probe(&key).calls.load(Ordering::SeqCst), 1, "the cog ran once");
    assert_eq!(errors_of(&rt, id).await, [], "no lease_expired error");
    rt.shutdown().await;
    watcher.shutdown().await;
}

/// Another process took the task runs over (a newer attempt): the first worker's late results,
/// a success and a failure, are refused.
async fn stale_results_are_refused(db: TestDb) {
    let key = format!("{}-fenced", db.url);
    let rt = db.runtime().await;
    rt.define(
        PipelineSpec::new("fenced").stage(
            StageSpec::new("only")
                .task(TaskSpec::new("ls_hold").name("good").args(json!({ "key": key, "fail": false })))
                .task(TaskSpec::new("ls_hold").name("bad").args(json!({ "key": key, "fail": true }))),
        ),
    )
    .await
    .unwrap();
    let run = rt.launch("fenced").await.unwrap();
    let run_id = run.id();
    rt.start();
    let p = probe(&key);
    eventually("both cogs to run", || async { p.arrived.load(Ordering::SeqCst) == 2 }).await;
    let ids = [task_run_id(&rt, run_id, "good").await, task_run_id(&rt, run_id, "bad").await];
    for id in ids {
        assert_eq!(task_run(&rt, id).await, ("running".to_owned(), 1, Some(rt.worker_id().to_owned()), None));
        // Another process reclaimed it and runs attempt 2.
        let changed = exec(
            &rt,
            task_run::Entity::update_many()
                .col_expr(task_run::Column::Attempt, Expr::col(task_run::Column::Attempt).add(1))
                .col_expr(task_run::Column::Worker, Expr::value("other"))
                .filter(task_run::Column::Id.eq(id))
                .filter(task_run::Column::Status.eq(RunStatus::Running)),
        )
        .await;
        assert_eq!(changed, 1);
    }

    p.open();
    // Shutdown waits for the running cogs to end and their outcomes to be recorded (or refused).
    rt.shutdown().await;
    for id in ids {
        assert_eq!(task_run(&rt, id).await, ("running".to_owned(), 2, Some("other".to_owned()), None), "the stale result of task run {id} was written");
        assert_eq!(errors_of(&rt, id).await, [], "a stale failure is not recorded either");
    }
    assert_eq!(run.status().await.unwrap(), RunStatus::Running);

    // Clean up: cancel the run, then let the `other` worker's leases expire; a live runtime
    // reclaims them and the run ends.
    rt.cancel(run_id).await.unwrap();
    assert_eq!(run.status().await.unwrap(), RunStatus::Canceled);
    let past = an_hour_ago();
    exec(&rt, task_run::Entity::update_many().col_expr(task_run::Column::LeaseUntil, Expr::value(past)).filter(task_run::Column::Worker.eq("other"))).await;
    let rescuer = db.runtime_with(|b| b.config(test_config().lease_duration(Duration::from_millis(300)))).await;
    rescuer.start();
    assert_eq!(wait(&rescuer.handle(run_id)).await, RunStatus::Canceled);
    assert_eq!(task_statuses(&rescuer, run_id).await, [("bad".to_owned(), "failed".to_owned()), ("good".to_owned(), "failed".to_owned())]);
    for id in ids {
        let errors = errors_of(&rescuer, id).await;
        assert_eq!(errors.iter().map(|e| (e.0, e.1.as_str())).collect::<Vec<_>>(), [(2, "lease_expired")], "{errors:?}");
        assert!(errors[0].2.contains("other"), "{errors:?}");
    }
    assert_eq!(p.calls.load(Ordering::SeqCst), 2, "a canceled run's task runs are not retried");
    rescuer.shutdown().await;
}

/// A task run left `running` under this worker's name but not executed by it (a claim whose
/// process lost track of it) is not kept alive by the heartbeat, which renews only the task
/// runs the process really runs: it expires and is reclaimed while a live cog keeps its lease.
async fn heartbeat_renews_only_task_runs_it_runs(db: TestDb) {
    let key = format!("orphan-{}", db.url);
    let config = test_config().lease_duration(Duration::from_millis(300));
    let rt = db.runtime_with(|b| b.worker_name("w-orphan").config(config)).await;
    rt.define(
        PipelineSpec::new("orphan")
            .prevent_overlap(false)
            .stage(StageSpec::new("s").task(TaskSpec::new("ls_hold").name("live").args(json!({ "key": key, "fail": false })).weight(9.0))),
    )
    .await
    .unwrap();
    rt.define(
        PipelineSpec::new("orphan2").stage(StageSpec::new("s").task(TaskSpec::new("ls_count").name("orphan").args(json!({ "key": key })).max_retries(1))),
    )
    .await
    .unwrap();
    let live = rt.launch("orphan").await.unwrap();
    let orphan_run = rt.launch("orphan2").await.unwrap();
    let orphan = task_run_id(&rt, orphan_run.id(), "orphan").await;
    // Claimed under this worker's name, never executed here.
    let soon = (Utc::now() + chrono::Duration::seconds(1)).trunc_subsecs(6);
    exec(
        &rt,
        task_run::Entity::update_many()
            .col_expr(task_run::Column::Status, Expr::value(RunStatus::Running))
            .col_expr(task_run::Column::Attempt, Expr::value(1))
            .col_expr(task_run::Column::Worker, Expr::value("w-orphan"))
            .col_expr(task_run::Column::LeaseUntil, Expr::value(soon))
            .col_expr(task_run::Column::StartedAt, Expr::value(an_hour_ago()))
            .filter(task_run::Column::Id.eq(orphan)),
    )
    .await;
    rt.start();
    let p = probe(&key);
    eventually("the live cog to run", || async { p.arrived.load(Ordering::SeqCst) == 1 }).await;
    // The orphan expires although the worker keeps renewing the live cog's lease.
    assert_eq!(wait(&orphan_run).await, RunStatus::Completed);
    let errors = errors_of(&rt, orphan).await;
    assert_eq!(errors.len(), 1);
    assert_eq!((errors[0].0, errors[0].1.as_str()), (1, "lease_expired"));
    assert_eq!(task_run(&rt, orphan).await.1, 2, "retried once after the takeover");
    let live_task = task_run_id(&rt, live.id(), "live").await;
    assert_eq!(task_run(&rt, live_task).await.0, "running", "the live cog keeps its task run");
    p.open();
    assert_eq!(wait(&live).await, RunStatus::Completed);
    assert_eq!(task_run(&rt, live_task).await.1, 1);
    rt.shutdown().await;
}

on_all_backends!(
    dead_workers_task_is_reclaimed_and_retried,
    dead_workers_task_without_retries_fails,
    live_worker_keeps_its_lease,
    stale_results_are_refused,
    heartbeat_renews_only_task_runs_it_runs,
);
