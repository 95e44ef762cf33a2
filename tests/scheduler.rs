//! Cron schedules: firing on time, exactly once per tick across runtimes, overlap-refused
//! ticks, catch-up after downtime, schedule changes and removal. Time is driven by a
//! `ManualClock`; runtimes run workers with `scheduler(false)` and the tests drive passes.

mod support;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cog::scheduler::SchedulerPass;
use cog::{CogRuntime, LaunchRefusal, ManualClock, MissedTicks, PipelineSpec, RunStatus, StageSpec, TaskSpec, cog};
use serde_json::json;
use support::{TestDb, eventually, probe, rows, scalar, test_config};

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

#[cog]
async fn tick_noop() {}

/// Held until the test opens `key`'s gate.
#[cog]
async fn tick_hold(key: String) {
    probe(&key).pass().await;
}

async fn runtime(db: &TestDb, clock: &Arc<ManualClock>, config: cog::Config) -> CogRuntime {
    let clock = Arc::clone(clock);
    db.runtime_with(move |b| b.clock(clock).scheduler(false).config(config)).await
}

fn daily(name: &str) -> PipelineSpec {
    PipelineSpec::new(name).schedule("0 3 * * *").stage(StageSpec::new("s").task(TaskSpec::new("tick_noop")))
}

async fn scheduled_runs(rt: &CogRuntime, pipeline: &str) -> Vec<(String, DateTime<Utc>)> {
    let sql = format!(
        "SELECT r.{}, r.scheduled_for FROM cog_pipeline_run r JOIN cog_pipeline p ON p.id = r.pipeline_id WHERE p.name = '{pipeline}' ORDER BY r.id",
        support::trigger_column(rt)
    );
    rows(rt, &sql).await.iter().map(|r| (r.try_get_by_index(0).unwrap(), r.try_get_by_index::<Option<DateTime<Utc>>>(1).unwrap().unwrap_or_default())).collect()
}

fn fired(pass: &SchedulerPass) -> Vec<(String, DateTime<Utc>)> {
    pass.fired.iter().map(|(p, t, _)| (p.clone(), *t)).collect()
}

async fn fires_once_at_the_tick(db: TestDb) {
    let clock = Arc::new(ManualClock::new(at("2030-01-01T02:59:30Z")));
    let rt = runtime(&db, &clock, test_config()).await;
    rt.start();
    rt.define(daily("daily")).await.unwrap();
    let pass = rt.run_scheduler_once().await.unwrap();
    assert!(pass.leader);
    assert!(pass.fired.is_empty(), "nothing is due before 03:00");
    assert_eq!(pass.next_tick, Some(at("2030-01-01T03:00:00Z")));

    clock.set(at("2030-01-01T03:00:00Z"));
    let pass = rt.run_scheduler_once().await.unwrap();
    assert_eq!(fired(&pass), [("daily".to_owned(), at("2030-01-01T03:00:00Z"))]);
    for _ in 0..3 {
        assert!(rt.run_scheduler_once().await.unwrap().fired.is_empty(), "a tick fires once");
    }
    assert_eq!(scheduled_runs(&rt, "daily").await, [("schedule".to_owned(), at("2030-01-01T03:00:00Z"))]);
    let run = rt.handle(pass.fired[0].2);
    assert_eq!(support::wait(&run).await, RunStatus::Completed);
    rt.shutdown().await;
}

async fn two_runtimes_fire_each_tick_once(db: TestDb) {
    let clock = Arc::new(ManualClock::new(at("2030-01-01T02:00:00Z")));
    let a = runtime(&db, &clock, test_config()).await;
    let b = runtime(&db, &clock, test_config()).await;
    a.define(PipelineSpec::new("every_minute").schedule("* * * * *").prevent_overlap(false).stage(StageSpec::new("s").task(TaskSpec::new("tick_noop"))))
        .await
        .unwrap();
    for minute in 1..=5 {
        clock.set(at("2030-01-01T02:00:00Z") + chrono::Duration::minutes(minute));
        // Both runtimes pass at once, and leadership is dropped between passes so that both
        // get to fire: the tick is still launched once.
        let (pa, pb) = tokio::join!(a.run_scheduler_once(), b.run_scheduler_once());
        let (pa, pb) = (pa.unwrap(), pb.unwrap());
        assert!(!(pa.leader && pb.leader), "only one runtime leads at a time");
        support::rows(&a, "DELETE FROM cog_lock").await;
        let pb2 = b.run_scheduler_once().await.unwrap();
        assert!(pb2.leader);
        assert_eq!(pa.fired.len() + pb.fired.len() + pb2.fired.len(), 1, "minute {minute}");
    }
    let runs = scheduled_runs(&a, "every_minute").await;
    assert_eq!(runs.len(), 5);
    let ticks: std::collections::HashSet<_> = runs.iter().map(|(_, t)| *t).collect();
    assert_eq!(ticks.len(), 5, "one run per tick");
}

async fn a_tick_refused_by_overlap_is_counted_and_scheduling_goes_on(db: TestDb) {
    let clock = Arc::new(ManualClock::new(at("2030-01-01T00:00:30Z")));
    let rt = runtime(&db, &clock, test_config()).await;
    rt.start();
    let key = format!("overlap-{}", db.url);
    rt.define(PipelineSpec::new("slow").schedule("* * * * *").stage(StageSpec::new("s").task(TaskSpec::new("tick_hold").args(json!({ "key": key })))))
        .await
        .unwrap();
    clock.set(at("2030-01-01T00:01:00Z"));
    let first = rt.run_scheduler_once().await.unwrap();
    assert_eq!(first.fired.len(), 1);
    clock.set(at("2030-01-01T00:02:00Z"));
    let second = rt.run_scheduler_once().await.unwrap();
    assert!(second.fired.is_empty());
    assert_eq!(second.refused.len(), 1);
    assert!(matches!(second.refused[0].2, LaunchRefusal::Overlap { run_id } if run_id == first.fired[0].2));
    assert_eq!(scalar(&rt, "SELECT refused_ticks FROM cog_pipeline WHERE name = 'slow'").await, 1);
    // The refused tick is not retried later.
    assert!(rt.run_scheduler_once().await.unwrap().refused.is_empty());

    probe(&key).open();
    assert_eq!(support::wait(&rt.handle(first.fired[0].2)).await, RunStatus::Completed);
    clock.set(at("2030-01-01T00:03:00Z"));
    let third = rt.run_scheduler_once().await.unwrap();
    assert_eq!(fired(&third), [("slow".to_owned(), at("2030-01-01T00:03:00Z"))]);
    rt.shutdown().await;
}

async fn downtime_fires_one_catch_up_run(db: TestDb) {
    let clock = Arc::new(ManualClock::new(at("2030-01-01T02:00:00Z")));
    let rt = runtime(&db, &clock, test_config()).await;
    rt.start();
    rt.define(daily("daily")).await.unwrap();
    clock.set(at("2030-01-01T03:00:00Z"));
    let first = rt.run_scheduler_once().await.unwrap();
    assert_eq!(first.fired.len(), 1);
    assert_eq!(support::wait(&rt.handle(first.fired[0].2)).await, RunStatus::Completed);
    rt.shutdown().await;
    drop(rt);

    // Three days later a new process starts: ticks of Jan 2, 3 and 4 were missed.
    clock.set(at("2030-01-04T07:00:00Z"));
    let rt = runtime(&db, &clock, test_config()).await;
    let pass = rt.run_scheduler_once().await.unwrap();
    assert_eq!(fired(&pass), [("daily".to_owned(), at("2030-01-04T03:00:00Z"))], "one catch-up run for the latest missed tick");
    assert_eq!(scalar(&rt, "SELECT skipped_ticks FROM cog_pipeline WHERE name = 'daily'").await, 2);
    assert!(rt.run_scheduler_once().await.unwrap().fired.is_empty());
    assert_eq!(scheduled_runs(&rt, "daily").await.len(), 2);
}

async fn skip_policy_fires_no_missed_tick(db: TestDb) {
    let clock = Arc::new(ManualClock::new(at("2030-01-01T02:00:00Z")));
    let config = test_config().missed_ticks(MissedTicks::Skip).schedule_grace(Duration::from_secs(60));
    let rt = runtime(&db, &clock, config).await;
    rt.define(daily("daily")).await.unwrap();
    clock.set(at("2030-01-03T07:00:00Z"));
    let pass = rt.run_scheduler_once().await.unwrap();
    assert!(pass.fired.is_empty());
    assert_eq!(pass.skipped.len(), 1);
    // Jan 1, 2 and 3 at 03:00 were all missed.
    assert_eq!(scalar(&rt, "SELECT skipped_ticks FROM cog_pipeline WHERE name = 'daily'").await, 3);
    // A tick within the grace period fires.
    clock.set(at("2030-01-04T03:00:30Z"));
    assert_eq!(fired(&rt.run_scheduler_once().await.unwrap()), [("daily".to_owned(), at("2030-01-04T03:00:00Z"))]);
}

async fn removing_or_changing_a_schedule_takes_effect_at_once(db: TestDb) {
    let clock = Arc::new(ManualClock::new(at("2030-01-01T02:00:00Z")));
    let rt = runtime(&db, &clock, test_config()).await;
    rt.define(daily("p")).await.unwrap();
    // Removed by a definition without `.schedule(..)`.
    rt.define(PipelineSpec::new("p").stage(StageSpec::new("s").task(TaskSpec::new("tick_noop")))).await.unwrap();
    clock.set(at("2030-01-01T03:00:00Z"));
    assert!(rt.run_scheduler_once().await.unwrap().fired.is_empty());
    // Set again: counts from now, so the 03:00 tick of today is not caught up.
    rt.set_schedule("p", Some("0 3 * * *")).await.unwrap();
    clock.set(at("2030-01-01T12:00:00Z"));
    assert!(rt.run_scheduler_once().await.unwrap().fired.is_empty());
    // Changed to a noon schedule at 12:00:00: the next tick is tomorrow noon, not a catch-up.
    rt.set_schedule("p", Some("0 12 * * *")).await.unwrap();
    assert!(rt.run_scheduler_once().await.unwrap().fired.is_empty());
    clock.set(at("2030-01-02T12:00:00Z"));
    assert_eq!(fired(&rt.run_scheduler_once().await.unwrap()), [("p".to_owned(), at("2030-01-02T12:00:00Z"))]);
    rt.set_schedule("p", None).await.unwrap();
    clock.set(at("2030-01-05T12:00:00Z"));
    assert!(rt.run_scheduler_once().await.unwrap().fired.is_empty());
    assert!(rt.set_schedule("p", Some("not cron")).await.is_err());
    assert!(matches!(rt.set_schedule("nope", None).await, Err(cog::Error::UnknownPipeline { .. })));
}

async fn disabled_pipelines_are_never_scheduled_but_launch_manually(db: TestDb) {
    let clock = Arc::new(ManualClock::new(at("2030-01-01T02:00:00Z")));
    let rt = runtime(&db, &clock, test_config()).await;
    rt.start();
    rt.define(daily("off").enabled(false)).await.unwrap();
    clock.set(at("2030-01-01T03:00:00Z"));
    assert!(rt.run_scheduler_once().await.unwrap().fired.is_empty());
    let run = rt.launch("off").await.unwrap();
    assert_eq!(support::wait(&run).await, RunStatus::Completed);
    assert_eq!(scheduled_runs(&rt, "off").await, [("manual".to_owned(), DateTime::<Utc>::default())]);
    rt.shutdown().await;
}

async fn a_standby_takes_over_when_the_leader_stops(db: TestDb) {
    let clock = Arc::new(ManualClock::new(at("2030-01-01T02:00:00Z")));
    let a = runtime(&db, &clock, test_config()).await;
    let b = runtime(&db, &clock, test_config()).await;
    assert!(a.run_scheduler_once().await.unwrap().leader);
    assert!(!b.run_scheduler_once().await.unwrap().leader, "the lease is held by a");
    // a dies without releasing: once its lease has expired, b takes over.
    rows(&a, "DELETE FROM cog_lock WHERE holder <> 'nobody'").await;
    assert!(b.run_scheduler_once().await.unwrap().leader);
    assert!(!a.run_scheduler_once().await.unwrap().leader);
}

async fn the_background_scheduler_launches_on_the_system_clock(db: TestDb) {
    let rt = db.runtime().await;
    rt.define(PipelineSpec::new("often").schedule("* * * * * *").stage(StageSpec::new("s").task(TaskSpec::new("tick_noop")))).await.unwrap();
    rt.start();
    eventually("two scheduled runs to complete", || async {
        scalar(&rt, &format!("SELECT COUNT(*) FROM cog_pipeline_run WHERE status = 'completed' AND {} = 'schedule'", support::trigger_column(&rt))).await >= 2
    })
    .await;
    rt.shutdown().await;
    let runs = scheduled_runs(&rt, "often").await;
    let ticks: std::collections::HashSet<_> = runs.iter().map(|(_, t)| *t).collect();
    assert_eq!(ticks.len(), runs.len(), "each tick fired once");
}

on_all_backends!(
    fires_once_at_the_tick,
    two_runtimes_fire_each_tick_once,
    a_tick_refused_by_overlap_is_counted_and_scheduling_goes_on,
    downtime_fires_one_catch_up_run,
    skip_policy_fires_no_missed_tick,
    removing_or_changing_a_schedule_takes_effect_at_once,
    disabled_pipelines_are_never_scheduled_but_launch_manually,
    a_standby_takes_over_when_the_leader_stops,
    the_background_scheduler_launches_on_the_system_clock,
);
