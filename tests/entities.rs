//! The SeaORM entities of `cog::entity` match the real schema: after a run that touches every
//! table, one row of each table is read through its entity (every column decoded), on every
//! backend.

mod support;

use cog::entity::{
    cog as cog_row, error, error_handler, lock, pipeline, pipeline_run, queue, stage, stage_prerequisite, stage_run, task, task_run, worker, worker_cog,
    worker_error_handler,
};
use cog::{Overlap, PipelineSpec, RunStatus, StageSpec, TaskError, TaskSpec, Trigger, cog, cog_error_handler};
use sea_orm::{EntityTrait, PaginatorTrait};
use support::{TestDb, wait};

#[cog]
async fn entity_ok(n: i64) -> Result<i64, std::io::Error> {
    Ok(n + 1)
}

#[cog]
async fn entity_fails() -> Result<(), std::io::Error> {
    Err(std::io::Error::other("planned failure"))
}

#[cog_error_handler]
async fn entity_handler(_error: &TaskError) -> Result<(), std::io::Error> {
    Ok(())
}

/// Reads the first row of `E` through its model; fails the test if there is none or a column
/// does not decode.
async fn first<E: EntityTrait>(db: &sea_orm::DatabaseConnection, table: &str) -> E::Model {
    E::find().one(db).await.unwrap_or_else(|e| panic!("{table}: the entity does not read the table: {e}")).unwrap_or_else(|| panic!("{table}: no row"))
}

async fn every_table_reads_through_its_entity(db: TestDb) {
    let rt = db.runtime().await;
    rt.define(
        PipelineSpec::new("entities")
            .stage(StageSpec::new("first").task(TaskSpec::new("entity_ok").args(serde_json::json!({"n": 1}))))
            .stage(StageSpec::new("second").after(["first"]).task(TaskSpec::new("entity_fails").critical(false).error_handler("entity_handler"))),
    )
    .await
    .unwrap();
    rt.start();
    let run = rt.launch("entities").await.unwrap();
    assert_eq!(wait(&run).await, RunStatus::Completed);
    assert!(rt.run_scheduler_once().await.unwrap().leader, "the only runtime leads");
    let conn = rt.connection();
    rt.ready().await;
    assert!(worker::Entity::find().count(conn).await.unwrap() > 0, "ready() returns once the worker is recorded");

    let p = first::<pipeline::Entity>(conn, "cog_pipeline").await;
    assert_eq!(p.name, "entities");
    assert_eq!((p.overlap, p.prevent_overlap), (Overlap::Skip, true));
    assert!(first::<stage::Entity>(conn, "cog_stage").await.pipeline_id == p.id);
    first::<stage_prerequisite::Entity>(conn, "cog_stage_prerequisite").await;
    first::<task::Entity>(conn, "cog_task").await;
    first::<cog_row::Entity>(conn, "cog_cog").await;
    first::<error_handler::Entity>(conn, "cog_error_handler").await;
    rt.pause_queue("default").await.unwrap();
    let queues = queue::Entity::find().all(conn).await.unwrap();
    let default = queues.iter().find(|q| q.name == "default").expect("queue default");
    assert!(default.paused && default.version > 0, "{default:?}");
    rt.resume_queue("default").await.unwrap();
    let r = first::<pipeline_run::Entity>(conn, "cog_pipeline_run").await;
    assert_eq!((r.id, r.status, r.trigger), (run.id(), RunStatus::Completed, Trigger::Manual));
    assert!(r.completed_at.is_some());
    assert_eq!(r.retry_of, None);
    assert_eq!(stage_run::Entity::find().all(conn).await.unwrap().len(), 2);
    let runs = task_run::Entity::find().all(conn).await.unwrap();
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().any(|t| t.status == RunStatus::Completed && t.result.as_deref() == Some("2")));
    assert!(runs.iter().any(|t| t.status == RunStatus::Failed));
    let e = first::<error::Entity>(conn, "cog_error").await;
    assert!(e.message.contains("planned failure"), "{}", e.message);
    first::<lock::Entity>(conn, "cog_lock").await;
    // A retried run: `retry_of` and trigger `retry` read back through the entity.
    rt.define(PipelineSpec::new("entities_fail").stage(StageSpec::new("only").task(TaskSpec::new("entity_fails")))).await.unwrap();
    let failed = rt.launch("entities_fail").await.unwrap();
    assert_eq!(wait(&failed).await, RunStatus::Failed);
    let retry = rt.retry(failed.id()).await.unwrap();
    assert_eq!(wait(&retry).await, RunStatus::Failed);
    let r = pipeline_run::Entity::find_by_id(retry.id()).one(conn).await.unwrap().expect("the retry's row");
    assert_eq!((r.trigger, r.retry_of), (Trigger::Retry, Some(failed.id())));
    first::<worker::Entity>(conn, "cog_worker").await;
    first::<worker_cog::Entity>(conn, "cog_worker_cog").await;
    first::<worker_error_handler::Entity>(conn, "cog_worker_error_handler").await;
    rt.shutdown().await;
}

on_all_backends!(every_table_reads_through_its_entity);
