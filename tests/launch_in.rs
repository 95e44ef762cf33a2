//! Launching inside the host's transaction (issue 9, item 4): the run exists if and only if
//! the host commits; workers take it after the commit; a refused launch leaves the host's
//! transaction usable.

mod support;

use cog::{Error, PipelineSpec, RunStatus, StageSpec, TaskSpec, cog};
use sea_orm::{ConnectionTrait, Statement, TransactionTrait};
use serde_json::json;
use support::{TestDb, rows, scalar, wait};

#[cog]
fn li_echo(order: i64) -> i64 {
    order
}

async fn host_table(rt: &cog::CogRuntime) {
    rows(rt, "CREATE TABLE host_order (id BIGINT NOT NULL PRIMARY KEY)").await;
}

async fn exec(txn: &sea_orm::DatabaseTransaction, sql: &str) {
    txn.execute_raw(Statement::from_string(txn.get_database_backend(), sql.to_owned())).await.unwrap();
}

async fn the_run_exists_if_and_only_if_the_host_commits(db: TestDb) {
    let rt = db.runtime().await;
    host_table(&rt).await;
    rt.define(PipelineSpec::new("invoice").stage(StageSpec::new("s").task(TaskSpec::new("li_echo")))).await.unwrap();
    rt.start();

    let txn = rt.connection().begin().await.unwrap();
    exec(&txn, "INSERT INTO host_order (id) VALUES (1)").await;
    let rolled_back = rt.launch_in(&txn, "invoice", json!({"order": 1})).await.unwrap();
    txn.rollback().await.unwrap();
    assert_eq!(scalar(&rt, "SELECT COUNT(*) FROM cog_pipeline_run").await, 0, "no run without the commit");
    assert!(matches!(rolled_back.status().await, Err(Error::UnknownRun { .. })));

    let txn = rt.connection().begin().await.unwrap();
    exec(&txn, "INSERT INTO host_order (id) VALUES (2)").await;
    let run = rt.launch_in(&txn, "invoice", json!({"order": 2})).await.unwrap();
    txn.commit().await.unwrap();
    assert_eq!(wait(&run).await, RunStatus::Completed, "workers found the committed run");
    assert_eq!(scalar(&rt, "SELECT COUNT(*) FROM host_order").await, 1);
    let result =
        rows(&rt, &format!("SELECT t.result FROM cog_task_run t JOIN cog_stage_run s ON s.id = t.stage_run_id WHERE s.pipeline_run_id = {}", run.id())).await;
    assert_eq!(result[0].try_get_by_index::<Option<String>>(0).unwrap().as_deref(), Some("2"));
    rt.shutdown().await;
}

async fn a_refused_launch_leaves_the_host_transaction_usable(db: TestDb) {
    let rt = db.runtime().await;
    host_table(&rt).await;
    rt.define(PipelineSpec::new("invoice").stage(StageSpec::new("s").task(TaskSpec::new("li_echo")))).await.unwrap();
    let first = rt.launch_with("invoice", json!({"order": 0})).await.unwrap();

    let txn = rt.connection().begin().await.unwrap();
    exec(&txn, "INSERT INTO host_order (id) VALUES (1)").await;
    assert!(matches!(rt.launch_in(&txn, "invoice", json!({"order": 1})).await, Err(Error::LaunchRefused { .. })), "overlap rules apply");
    assert!(matches!(rt.launch_in(&txn, "nope", json!({})).await, Err(Error::UnknownPipeline { .. })));
    assert!(matches!(rt.launch_in(&txn, "invoice", json!([1])).await, Err(Error::LaunchArgumentsNotObject { .. })));
    exec(&txn, "INSERT INTO host_order (id) VALUES (2)").await;
    txn.commit().await.unwrap();
    assert_eq!(scalar(&rt, "SELECT COUNT(*) FROM host_order").await, 2);
    assert_eq!(scalar(&rt, "SELECT COUNT(*) FROM cog_pipeline_run").await, 1);
    rt.start();
    assert_eq!(wait(&first).await, RunStatus::Completed);
    rt.shutdown().await;
}

on_all_backends!(the_run_exists_if_and_only_if_the_host_commits, a_refused_launch_leaves_the_host_transaction_usable);
