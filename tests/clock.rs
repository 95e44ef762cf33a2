//! Leases and `run_after` follow the database's clock on PostgreSQL and MySQL, so the machines
//! of a cluster need not agree on the time (SQLite, one machine, keeps the process clock); and
//! a host pool whose sessions are not in UTC shifts nothing.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use cog::entity::{error, task_run};
use cog::{CogRuntime, PipelineSpec, RunStatus, StageSpec, TaskSpec, cog};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, EntityTrait, PaginatorTrait};
use serde_json::json;
use support::{TestDb, eventually, probe, test_config, wait};

/// Waits at its gate.
#[cog]
async fn clock_gate(key: String) -> Result<(), std::io::Error> {
    probe(&key).arrive_and_pass().await;
    Ok(())
}

/// A host's own pool on `db`, its sessions five and a half hours ahead of UTC.
async fn pool_not_in_utc(db: &TestDb) -> DatabaseConnection {
    let mut options = ConnectOptions::new(db.url.clone());
    options.sqlx_logging(false);
    match db.backend {
        "mysql" => {
            options.map_sqlx_mysql_opts(|o| o.timezone(Some("+05:30".to_owned())));
        }
        "postgres" => {
            options.map_sqlx_postgres_opts(|o| o.options([("TimeZone", "Asia/Kolkata")]));
        }
        _ => {}
    }
    Database::connect(options).await.expect("connect")
}

async fn a_lease_is_its_length_from_the_claim_whatever_the_session_time_zone(db: TestDb) {
    const LEASE: Duration = Duration::from_secs(60);
    let key = format!("clock-{}", db.url);
    let conn = pool_not_in_utc(&db).await;
    let rt = CogRuntime::builder().connection(conn).concurrency(2).config(test_config().lease_duration(LEASE)).build().await.expect("build");
    rt.define(PipelineSpec::new("clocked").stage(StageSpec::new("only").task(TaskSpec::new("clock_gate").args(json!({ "key": key }))))).await.unwrap();
    rt.start();
    let run = rt.launch("clocked").await.unwrap();
    let p = probe(&key);
    eventually("the cog to run", || async { p.arrived.load(Ordering::SeqCst) == 1 }).await;

    let claimed = task_run::Entity::find().one(rt.connection()).await.unwrap().expect("the task run");
    assert_eq!(claimed.status, RunStatus::Running);
    let started = claimed.started_at.expect("started_at");
    let lease_until = claimed.lease_until.expect("lease_until");
    let lease = (lease_until - started).to_std().unwrap_or_else(|_| panic!("lease_until {lease_until} is before the claim at {started}"));
    // started_at is this process's clock, lease_until the database's: on one machine they agree
    // to well within a minute; a session time zone leaking in would add hours.
    assert!(
        lease > LEASE - Duration::from_secs(30) && lease < LEASE + Duration::from_secs(30),
        "lease_until {lease_until} is {lease:?} after the claim at {started}, not about {LEASE:?}"
    );

    p.open();
    assert_eq!(wait(&run).await, RunStatus::Completed);
    assert_eq!(error::Entity::find().count(rt.connection()).await.unwrap(), 0, "no lease was taken over");
    rt.shutdown().await;
}

on_all_backends!(a_lease_is_its_length_from_the_claim_whatever_the_session_time_zone);
