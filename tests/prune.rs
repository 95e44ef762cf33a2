//! History retention (issue 9, item 5): `rt.prune(older_than)` deletes ended runs older than
//! that with their stage runs, task runs and errors, never a run that has not ended;
//! `Config::retention` makes the scheduler leader prune once an hour.

mod support;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cog::entity::pipeline_run;
use cog::scheduler::ManualClock;
use cog::{CogRuntime, Error, PipelineSpec, PruneReport, RunStatus, StageSpec, TaskSpec, cog};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use support::{TestDb, assert_no_orphans, scalar, test_config, wait};

#[cog]
fn pr_ok() -> i64 {
    1
}

#[cog]
fn pr_fail() -> Result<(), std::io::Error> {
    Err(std::io::Error::other("planned"))
}

/// Moves the end of run `id` back by `days` (through the entity, so the value is encoded
/// as cog writes it on every backend).
async fn age(rt: &CogRuntime, id: i64, days: i64) {
    let when = Utc::now() - chrono::Duration::days(days);
    pipeline_run::Entity::update_many()
        .col_expr(pipeline_run::Column::CompletedAt, Expr::value(when))
        .filter(pipeline_run::Column::Id.eq(id))
        .exec(rt.connection())
        .await
        .unwrap();
}

async fn under(rt: &CogRuntime, run: i64) -> (i64, i64, i64) {
    let stage_runs = scalar(rt, &format!("SELECT COUNT(*) FROM cog_stage_run WHERE pipeline_run_id = {run}")).await;
    let task_runs =
        scalar(rt, &format!("SELECT COUNT(*) FROM cog_task_run t JOIN cog_stage_run s ON s.id = t.stage_run_id WHERE s.pipeline_run_id = {run}")).await;
    let errors = scalar(
        rt,
        &format!("SELECT COUNT(*) FROM cog_error e JOIN cog_task_run t ON t.id = e.task_run_id JOIN cog_stage_run s ON s.id = t.stage_run_id WHERE s.pipeline_run_id = {run}"),
    )
    .await;
    (stage_runs, task_runs, errors)
}

fn wide(n: usize) -> PipelineSpec {
    let stage = (0..n).fold(StageSpec::new("s"), |s, i| s.task(TaskSpec::new("pr_ok").name(format!("t{i}"))));
    PipelineSpec::new("wide").prevent_overlap(false).stage(stage)
}

async fn prune_deletes_old_ended_runs_and_nothing_else(db: TestDb) {
    let rt = db.runtime().await;
    rt.define(wide(1500)).await.unwrap();
    rt.define(PipelineSpec::new("failing").prevent_overlap(false).stage(StageSpec::new("s").task(TaskSpec::new("pr_fail")).task(TaskSpec::new("pr_ok"))))
        .await
        .unwrap();
    rt.define(PipelineSpec::new("waiting").stage(StageSpec::new("s").task(TaskSpec::new("pr_ok").queue("nobody")))).await.unwrap();
    rt.start();
    let old_wide = rt.launch("wide").await.unwrap();
    let old_failed = rt.launch("failing").await.unwrap();
    let recent = rt.launch("failing").await.unwrap();
    assert_eq!(wait(&old_wide).await, RunStatus::Completed);
    assert_eq!(wait(&old_failed).await, RunStatus::Failed);
    assert_eq!(wait(&recent).await, RunStatus::Failed);
    let unended = rt.launch("waiting").await.unwrap();
    age(&rt, old_wide.id(), 10).await;
    age(&rt, old_failed.id(), 10).await;
    age(&rt, recent.id(), 1).await;
    let before_recent = under(&rt, recent.id()).await;
    let before_unended = under(&rt, unended.id()).await;

    let report = rt.prune(chrono::Duration::days(7)).await.unwrap();
    let mut expected = PruneReport::default();
    expected.pipeline_runs = 2;
    expected.stage_runs = 2;
    expected.task_runs = 1502;
    expected.errors = 1;
    assert_eq!(report, expected);
    for gone in [old_wide.id(), old_failed.id()] {
        assert_eq!(scalar(&rt, &format!("SELECT COUNT(*) FROM cog_pipeline_run WHERE id = {gone}")).await, 0);
        assert_eq!(under(&rt, gone).await, (0, 0, 0));
    }
    assert_eq!(under(&rt, recent.id()).await, before_recent, "a run younger than the cut-off stays");
    assert_eq!(under(&rt, unended.id()).await, before_unended, "a run that has not ended stays");
    assert_eq!(unended.status().await.unwrap(), RunStatus::Running);
    assert_eq!(rt.prune(chrono::Duration::days(7)).await.unwrap(), PruneReport::default(), "nothing left to prune");
    assert!(matches!(rt.prune(chrono::Duration::days(-1)).await, Err(Error::InvalidSetting(_))));
    assert_no_orphans(&rt).await;
    // Learned weights stay on the tasks.
    assert!(scalar(&rt, "SELECT COUNT(*) FROM cog_task").await > 0);
    rt.shutdown().await;
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

async fn the_scheduler_leader_prunes_once_an_hour_with_retention(db: TestDb) {
    let clock = Arc::new(ManualClock::new(at("2030-01-01T00:00:00Z")));
    let scheduler_clock = Arc::clone(&clock);
    let config = test_config().retention(Some(Duration::from_secs(24 * 3600)));
    let rt = db.runtime_with(move |b| b.clock(scheduler_clock).scheduler(false).config(config)).await;
    rt.define(PipelineSpec::new("p").prevent_overlap(false).stage(StageSpec::new("s").task(TaskSpec::new("pr_ok")))).await.unwrap();
    rt.start();
    let old = rt.launch("p").await.unwrap();
    assert_eq!(wait(&old).await, RunStatus::Completed);
    age(&rt, old.id(), 2).await;
    let first = rt.run_scheduler_once().await.unwrap();
    assert_eq!(first.pruned.map(|r| r.pipeline_runs), Some(1), "the first pass prunes");
    let young = rt.launch("p").await.unwrap();
    assert_eq!(wait(&young).await, RunStatus::Completed);
    age(&rt, young.id(), 2).await;
    assert_eq!(rt.run_scheduler_once().await.unwrap().pruned, None, "not again within the hour");
    clock.advance(chrono::Duration::minutes(61));
    assert_eq!(rt.run_scheduler_once().await.unwrap().pruned.map(|r| r.pipeline_runs), Some(1), "an hour later");
    rt.shutdown().await;

    let keep_all = db.runtime_with(|b| b.scheduler(false)).await;
    assert_eq!(keep_all.run_scheduler_once().await.unwrap().pruned, None, "without retention nothing is pruned");
}

on_all_backends!(prune_deletes_old_ended_runs_and_nothing_else, the_scheduler_leader_prunes_once_an_hour_with_retention);
