//! Supervised background loops: a loop that panics is restarted and work goes on, and
//! `rt.health()` says so (restart count, last error); after shutdown every loop is stopped.

mod support;

use cog::{LoopState, PipelineSpec, RunStatus, StageSpec, TaskSpec, cog};
use support::{TestDb, wait};

#[cog]
fn s_one() -> i64 {
    1
}

fn two_stages() -> PipelineSpec {
    PipelineSpec::new("p").stage(StageSpec::new("a").task(TaskSpec::new("s_one"))).stage(StageSpec::new("b").after(["a"]).task(TaskSpec::new("s_one")))
}

async fn health_lists_every_loop_running_then_stopped(db: TestDb) {
    let rt = db.runtime().await;
    assert!(rt.health().loops.is_empty(), "nothing runs before start()");
    assert!(!rt.health().is_healthy());
    rt.start();
    let health = rt.health();
    let names: Vec<&str> = health.loops.iter().map(|l| l.name).collect();
    for name in ["claim", "completions", "fill", "heartbeat", "listener", "presence", "reclaim", "scheduler"] {
        assert!(names.contains(&name), "loop {name} in {names:?}");
    }
    assert!(health.is_healthy(), "{health:?}");
    // Still healthy once every loop had time to run (on SQLite the listener has nothing to
    // hear, and must still not count as stopped).
    rt.define(two_stages()).await.unwrap();
    assert_eq!(wait(&rt.launch("p").await.unwrap()).await, RunStatus::Completed);
    let health = rt.health();
    assert!(health.is_healthy(), "{health:?}");
    rt.shutdown().await;
    let health = rt.health();
    assert!(health.loops.iter().all(|l| l.state == LoopState::Stopped && l.restarts == 0), "{health:?}");
}

async fn a_panicking_claim_loop_is_restarted_and_work_goes_on(db: TestDb) {
    let rt = db.runtime().await;
    rt.define(two_stages()).await.unwrap();
    // Asked before the start, so the claim loop panics at its first pass (asked later, it could
    // fall after a pass had begun, which may claim the run's first task runs before the panic).
    // The run is launched by a runtime that does not work (a started, idle one claims its
    // launch's first task runs itself): it completes only if the claim loop was restarted.
    rt.inject_loop_panic("claim");
    rt.start();
    let launcher = db.runtime().await;
    assert_eq!(wait(&launcher.launch("p").await.unwrap()).await, RunStatus::Completed);
    let claim = rt.health().get("claim").cloned().expect("the claim loop is listed");
    assert_eq!(claim.restarts, 1, "{claim:?}");
    assert_eq!(claim.state, LoopState::Running);
    let error = claim.last_error.expect("the panic is recorded");
    assert!(error.contains("panic injected into the `claim` loop"), "{error}");
    assert!(claim.last_error_at.is_some());
    // And again: the restarted loop keeps working.
    assert_eq!(wait(&launcher.launch("p").await.unwrap()).await, RunStatus::Completed);
    rt.shutdown().await;
}

async fn a_panicking_completion_writer_is_restarted_and_outcomes_are_written(db: TestDb) {
    let rt = db.runtime().await;
    rt.define(two_stages()).await.unwrap();
    rt.start();
    rt.inject_loop_panic("completions");
    // The writer panics once idle after stage `a`'s outcome; stage `b`'s outcome is written by
    // the restarted writer, so the run ends only if the restart happened.
    assert_eq!(wait(&rt.launch("p").await.unwrap()).await, RunStatus::Completed);
    let writer = rt.health().get("completions").cloned().expect("the completion writer is listed");
    assert_eq!(writer.restarts, 1, "{writer:?}");
    assert!(writer.last_error.unwrap().contains("panic injected"));
    assert_eq!(support::scalar(&rt, "SELECT COUNT(*) FROM cog_task_run WHERE status <> 'completed'").await, 0);
    assert_eq!(support::scalar(&rt, "SELECT COUNT(*) FROM cog_error").await, 0, "no attempt was lost to a lease expiry");
    rt.shutdown().await;
}

on_all_backends!(
    health_lists_every_loop_running_then_stopped,
    a_panicking_claim_loop_is_restarted_and_work_goes_on,
    a_panicking_completion_writer_is_restarted_and_outcomes_are_written,
);

/// PostgreSQL: the listener's connection cut (as a server restart or a proxy would) shows in
/// `rt.health()` with the reason, and once the listener listens again the loop is running
/// again and work goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_listener_connection_shows_in_health_until_it_listens_again() {
    use sea_orm::ConnectionTrait;
    let Some(db) = TestDb::postgres().await else { return };
    let rt = db.runtime().await;
    rt.define(two_stages()).await.unwrap();
    rt.start();
    rt.ready().await;
    let name = db.url.rsplit('/').next().unwrap().to_owned();
    let admin = sea_orm::Database::connect(std::env::var("COG_TEST_POSTGRES_URL").unwrap().as_str()).await.unwrap();
    let listening = format!("FROM pg_stat_activity WHERE datname = '{name}' AND query ILIKE 'LISTEN%'");
    let listeners = || async { support::scalar(&rt, &format!("SELECT COUNT(*) {listening}")).await };
    // `ready()` returns once the listener listens.
    assert_eq!(listeners().await, 1, "the listener listens once the runtime is ready");
    assert_eq!(rt.health().get("listener").map(|l| l.state), Some(LoopState::Running));
    admin.execute_unprepared(&format!("SELECT pg_terminate_backend(pid) {listening}")).await.unwrap();
    support::eventually("the cut connection in the listener's health", || async {
        rt.health().get("listener").and_then(|l| l.last_error.clone()).is_some_and(|e| e.contains("listening for cog events"))
    })
    .await;
    support::eventually("the listener running again", || async {
        rt.health().get("listener").is_some_and(|l| l.state == LoopState::Running) && listeners().await == 1
    })
    .await;
    assert!(rt.health().is_healthy(), "{:?}", rt.health());
    assert_eq!(wait(&rt.launch("p").await.unwrap()).await, RunStatus::Completed);
    rt.shutdown().await;
    admin.close().await.unwrap();
}
