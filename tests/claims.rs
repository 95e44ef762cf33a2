//! Claims never take more task runs than the worker has room for, whatever plan the database
//! picks for the claim statement (regression: a nested-loop semi-join rescanned a
//! `LIMIT ... FOR UPDATE SKIP LOCKED` subquery once per outer row and claimed far more rows
//! than its limit; the extras were dropped and reclaimed as `lease_expired`).

mod support;

use std::time::Duration;

use cog::{PipelineSpec, RunStatus, StageSpec, TaskSpec, cog};
use sea_orm::{ConnectionTrait, Database};
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

on_all_backends!(claims_respect_their_limit);
