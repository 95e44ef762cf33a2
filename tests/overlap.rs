//! Overlap policies (issue 9, item 2): `Skip` refuses, `BufferOne` queues one run that starts
//! in the transaction that ends the active one, `CancelRunning` cancels the active run and
//! starts, `Allow` overlaps. Many concurrent launches are decided one at a time; scheduled
//! launches follow the same policy; `prevent_overlap(..)` maps onto `Skip` / `Allow`.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use cog::entity::pipeline;
use cog::scheduler::ManualClock;
use cog::{CogRuntime, Error, LaunchRefusal, Overlap, PipelineSpec, RunStatus, StageSpec, TaskSpec, cog};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;
use support::{TestDb, eventually, probe, scalar, wait};

/// Holds until its probe opens, or until its run is canceled (then records that it saw it).
#[cog]
async fn ov_hold(key: String, ctx: cog::TaskContext) {
    let probe = probe(&key);
    probe.arrived.fetch_add(1, Ordering::SeqCst);
    tokio::select! {
        _ = ctx.cancelled() => probe.saw_cancel.store(true, Ordering::SeqCst),
        _ = probe.pass() => {}
    }
}

#[cog]
fn ov_quick() -> i64 {
    1
}

fn held(name: &str, key: &str, policy: Overlap) -> PipelineSpec {
    PipelineSpec::new(name).overlap(policy).stage(StageSpec::new("s").task(TaskSpec::new("ov_hold").args(json!({ "key": key }))))
}

fn refusal(result: Result<cog::RunHandle, Error>) -> LaunchRefusal {
    match result {
        Err(Error::LaunchRefused { reason, .. }) => reason,
        Err(e) => panic!("expected LaunchRefused, got {e:?}"),
        Ok(run) => panic!("expected LaunchRefused, got run {}", run.id()),
    }
}

async fn status_count(rt: &CogRuntime, pipeline: &str, status: &str) -> i64 {
    scalar(
        rt,
        &format!("SELECT COUNT(*) FROM cog_pipeline_run r JOIN cog_pipeline p ON p.id = r.pipeline_id WHERE p.name = '{pipeline}' AND r.status = '{status}'"),
    )
    .await
}

async fn buffer_one_queues_one_run_that_starts_when_the_active_one_ends(db: TestDb) {
    let key = format!("{}-buffer", db.url);
    let rt = db.runtime().await;
    rt.define(held("p", &key, Overlap::BufferOne)).await.unwrap();
    rt.start();
    let active = rt.launch("p").await.unwrap();
    let buffered = rt.launch("p").await.unwrap();
    assert_eq!(buffered.status().await.unwrap(), RunStatus::Queued);
    assert_eq!(scalar(&rt, &format!("SELECT COUNT(*) FROM cog_stage_run WHERE pipeline_run_id = {}", buffered.id())).await, 0, "nothing of it started");
    assert_eq!(refusal(rt.launch("p").await), LaunchRefusal::AlreadyBuffered { run_id: buffered.id() });

    probe(&key).open();
    assert_eq!(wait(&active).await, RunStatus::Completed);
    assert_ne!(buffered.status().await.unwrap(), RunStatus::Queued, "the transaction that ended the active run started the buffered one");
    assert_eq!(wait(&buffered).await, RunStatus::Completed);
    assert_eq!(probe(&key).arrived.load(Ordering::SeqCst), 2);
    rt.shutdown().await;
}

async fn canceling_the_active_run_starts_the_buffered_one_at_once(db: TestDb) {
    let key = format!("{}-cancel-buffer", db.url);
    let rt = db.runtime().await;
    rt.define(held("p", &key, Overlap::BufferOne)).await.unwrap();
    let active = rt.launch("p").await.unwrap();
    let buffered = rt.launch("p").await.unwrap();
    rt.cancel(buffered.id()).await.unwrap();
    assert_eq!(buffered.status().await.unwrap(), RunStatus::Canceled, "a buffered run can be canceled");
    let buffered = rt.launch("p").await.unwrap();
    rt.cancel(active.id()).await.unwrap();
    assert_eq!(buffered.status().await.unwrap(), RunStatus::Running, "started by the cancel's transaction");
    assert_eq!(
        scalar(
            &rt,
            &format!(
                "SELECT COUNT(*) FROM cog_task_run t JOIN cog_stage_run s ON s.id = t.stage_run_id WHERE s.pipeline_run_id = {} AND t.status = 'queued'",
                buffered.id()
            )
        )
        .await,
        1
    );
    rt.start();
    probe(&key).open();
    assert_eq!(wait(&buffered).await, RunStatus::Completed);
    rt.shutdown().await;
}

/// The buffered run is started by whichever process ends the active run: here a second
/// runtime runs the work, and the first one's handle sees the buffered run through.
async fn another_process_ending_the_active_run_starts_the_buffered_one(db: TestDb) {
    let key = format!("{}-other-process", db.url);
    let launcher = db.runtime_with(|b| b.scheduler(false)).await;
    launcher.define(held("p", &key, Overlap::BufferOne)).await.unwrap();
    let active = launcher.launch("p").await.unwrap();
    let buffered = launcher.launch("p").await.unwrap();
    let worker = db.runtime_with(|b| b.scheduler(false)).await;
    worker.start();
    probe(&key).open();
    assert_eq!(wait(&buffered).await, RunStatus::Completed);
    assert_eq!(wait(&active).await, RunStatus::Completed);
    worker.shutdown().await;
}

async fn cancel_running_cancels_the_active_run_and_starts_the_new_one(db: TestDb) {
    let key = format!("{}-cancel-running", db.url);
    let rt = db.runtime().await;
    rt.define(held("p", &key, Overlap::CancelRunning)).await.unwrap();
    rt.start();
    let first = rt.launch("p").await.unwrap();
    eventually("the first run's cog is running", || async { probe(&key).arrived.load(Ordering::SeqCst) == 1 }).await;
    let second = rt.launch("p").await.unwrap();
    assert_eq!(first.status().await.unwrap(), RunStatus::Canceled, "canceled by the launch");
    assert_eq!(second.status().await.unwrap(), RunStatus::Running);
    assert_eq!(wait(&first).await, RunStatus::Canceled);
    assert!(probe(&key).saw_cancel.load(Ordering::SeqCst), "the running cog was told");
    probe(&key).open();
    assert_eq!(wait(&second).await, RunStatus::Completed);
    rt.shutdown().await;
}

/// Many launches at once, from two runtimes, on one pipeline per policy: decided one at a time.
async fn concurrent_launches_are_decided_one_at_a_time(db: TestDb) {
    const LAUNCHES: usize = 24;
    let a = db.runtime_with(|b| b.scheduler(false)).await;
    let b = db.runtime_with(|b| b.scheduler(false)).await;
    let key = format!("{}-hammer", db.url);
    for policy in [Overlap::Skip, Overlap::BufferOne, Overlap::CancelRunning, Overlap::Allow] {
        a.define(held(policy.as_str(), &key, policy)).await.unwrap();
    }
    for policy in [Overlap::Skip, Overlap::BufferOne, Overlap::CancelRunning, Overlap::Allow] {
        let name = policy.as_str();
        let mut launches = tokio::task::JoinSet::new();
        for i in 0..LAUNCHES {
            let rt = if i % 2 == 0 { a.clone() } else { b.clone() };
            launches.spawn(async move { rt.launch(name).await });
        }
        let (mut ok, mut refused) = (0, Vec::new());
        while let Some(result) = launches.join_next().await {
            match result.unwrap() {
                Ok(_) => ok += 1,
                Err(Error::LaunchRefused { reason, .. }) => refused.push(reason),
                Err(e) => panic!("{name}: launch failed: {e}"),
            }
        }
        let (running, queued, canceled) =
            (status_count(&a, name, "running").await, status_count(&a, name, "queued").await, status_count(&a, name, "canceled").await);
        match policy {
            Overlap::Skip => {
                assert_eq!((ok, running, queued), (1, 1, 0), "{name}");
                assert!(refused.iter().all(|r| matches!(r, LaunchRefusal::Overlap { .. })), "{name}: {refused:?}");
            }
            Overlap::BufferOne => {
                assert_eq!((ok, running, queued), (2, 1, 1), "{name}");
                assert!(refused.iter().all(|r| matches!(r, LaunchRefusal::AlreadyBuffered { .. })), "{name}: {refused:?}");
            }
            Overlap::CancelRunning => assert_eq!((ok, running, queued, canceled), (LAUNCHES, 1, 0, LAUNCHES as i64 - 1), "{name}"),
            Overlap::Allow => assert_eq!((ok, running), (LAUNCHES, LAUNCHES as i64), "{name}"),
        }
        assert_eq!(ok + refused.len(), LAUNCHES);
    }
}

/// Launches race with runs ending (workers running quick tasks): whichever commits first, a
/// buffered run is never left queued with nothing active to end.
async fn buffered_runs_never_get_stuck_while_runs_end(db: TestDb) {
    let a = db.runtime().await;
    let b = db.runtime_with(|b| b.scheduler(false)).await;
    a.define(PipelineSpec::new("quick").overlap(Overlap::BufferOne).stage(StageSpec::new("s").task(TaskSpec::new("ov_quick")))).await.unwrap();
    a.start();
    b.start();
    let mut accepted = Vec::new();
    for _ in 0..30 {
        let mut launches = tokio::task::JoinSet::new();
        for i in 0..4 {
            let rt = if i % 2 == 0 { a.clone() } else { b.clone() };
            launches.spawn(async move { rt.launch("quick").await });
        }
        while let Some(result) = launches.join_next().await {
            match result.unwrap() {
                Ok(run) => accepted.push(run),
                Err(Error::LaunchRefused { reason: LaunchRefusal::AlreadyBuffered { .. }, .. }) => {}
                Err(e) => panic!("launch failed: {e}"),
            }
        }
    }
    assert!(accepted.len() >= 2);
    for run in &accepted {
        assert_eq!(wait(run).await, RunStatus::Completed, "run {} ended", run.id());
    }
    a.shutdown().await;
    b.shutdown().await;
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

async fn scheduled_launches_follow_the_policy(db: TestDb) {
    let clock = Arc::new(ManualClock::new(at("2030-01-01T00:00:30Z")));
    let scheduler_clock = Arc::clone(&clock);
    let rt = db.runtime_with(move |b| b.clock(scheduler_clock).scheduler(false)).await;
    let key = format!("{}-scheduled", db.url);
    rt.define(held("p", &key, Overlap::BufferOne).schedule("* * * * *")).await.unwrap();
    clock.set(at("2030-01-01T00:01:00Z"));
    let first = rt.run_scheduler_once().await.unwrap();
    assert_eq!(first.fired.len(), 1);
    clock.set(at("2030-01-01T00:02:00Z"));
    let second = rt.run_scheduler_once().await.unwrap();
    assert_eq!(second.fired.len(), 1, "the second tick is buffered");
    assert_eq!(rt.handle(second.fired[0].2).status().await.unwrap(), RunStatus::Queued);
    clock.set(at("2030-01-01T00:03:00Z"));
    let third = rt.run_scheduler_once().await.unwrap();
    assert!(third.fired.is_empty());
    assert_eq!(third.refused[0].2, LaunchRefusal::AlreadyBuffered { run_id: second.fired[0].2 });
    rt.start();
    probe(&key).open();
    assert_eq!(wait(&rt.handle(second.fired[0].2)).await, RunStatus::Completed);
    rt.shutdown().await;
}

async fn prevent_overlap_maps_onto_skip_and_allow(db: TestDb) {
    let rt = db.runtime().await;
    let key = format!("{}-map", db.url);
    rt.define(held("skip", &key, Overlap::BufferOne).prevent_overlap(true)).await.unwrap();
    rt.define(held("allow", &key, Overlap::Skip).prevent_overlap(false)).await.unwrap();
    rt.define(held("buffer", &key, Overlap::BufferOne)).await.unwrap();
    rt.define(PipelineSpec::new("default")).await.unwrap();
    for (name, policy, prevent) in
        [("skip", Overlap::Skip, true), ("allow", Overlap::Allow, false), ("buffer", Overlap::BufferOne, true), ("default", Overlap::Skip, true)]
    {
        let row = pipeline::Entity::find().filter(pipeline::Column::Name.eq(name)).one(rt.connection()).await.unwrap().unwrap();
        assert_eq!((row.overlap, row.prevent_overlap), (policy, prevent), "{name}");
    }
    rt.launch("allow").await.unwrap();
    rt.launch("allow").await.unwrap();
    let first = rt.launch("skip").await.unwrap();
    assert_eq!(refusal(rt.launch("skip").await), LaunchRefusal::Overlap { run_id: first.id() });
}

on_all_backends!(
    buffer_one_queues_one_run_that_starts_when_the_active_one_ends,
    canceling_the_active_run_starts_the_buffered_one_at_once,
    another_process_ending_the_active_run_starts_the_buffered_one,
    cancel_running_cancels_the_active_run_and_starts_the_new_one,
    concurrent_launches_are_decided_one_at_a_time,
    buffered_runs_never_get_stuck_while_runs_end,
    scheduled_launches_follow_the_policy,
    prevent_overlap_maps_onto_skip_and_allow,
);
