//! Prefetch (`Config::prefetch`): a worker claims task runs ahead of its free slots; they wait
//! in the worker for a slot (the concurrency still holds), start in claim order, and the ones
//! still waiting at shutdown are given back at once, never started.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use cog::{CogRuntime, PipelineSpec, RunStatus, StageSpec, TaskSpec, cog};
use serde_json::json;
use support::{TestDb, eventually, probe, scalar, test_config, wait};

/// What the cogs of one test saw.
#[derive(Default)]
struct Gauge {
    /// Cogs running now.
    current: AtomicUsize,
    /// Most cogs seen running at once.
    most: AtomicUsize,
    /// Most task runs seen `running` in the database by a cog.
    most_claimed: AtomicI64,
    /// The runtime, for the cogs' own look at the database.
    runtime: Mutex<Option<CogRuntime>>,
}

fn gauge(key: &str) -> Arc<Gauge> {
    static GAUGES: LazyLock<Mutex<HashMap<String, Arc<Gauge>>>> = LazyLock::new(Default::default);
    Arc::clone(GAUGES.lock().unwrap().entry(key.to_owned()).or_default())
}

/// Counts how many cogs run at once and how many task runs are claimed, for a few ms.
#[cog]
async fn pf_step(key: String) {
    let g = gauge(&key);
    let now = g.current.fetch_add(1, Ordering::SeqCst) + 1;
    g.most.fetch_max(now, Ordering::SeqCst);
    let rt = g.runtime.lock().unwrap().clone().expect("runtime registered");
    let claimed = scalar(&rt, "SELECT COUNT(*) FROM cog_task_run WHERE status = 'running'").await;
    g.most_claimed.fetch_max(claimed, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(5)).await;
    g.current.fetch_sub(1, Ordering::SeqCst);
}

/// Holds until the test opens the gate.
#[cog]
async fn pf_hold(key: String) {
    probe(&key).arrive_and_pass().await;
}

/// Fails at once.
#[cog]
fn pf_fail() -> Result<(), std::io::Error> {
    Err(std::io::Error::other("boom"))
}

/// Counts its calls.
#[cog]
fn pf_count(key: String) {
    probe(&key).calls.fetch_add(1, Ordering::SeqCst);
}

/// Sleeps `ms` milliseconds.
#[cog]
async fn pf_sleep(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

fn one_stage(cog: &str, key: &str, tasks: usize) -> PipelineSpec {
    let stage = (0..tasks).fold(StageSpec::new("only"), |s, i| s.task(TaskSpec::new(cog).name(format!("t{i}")).args(json!({ "key": key }))));
    PipelineSpec::new("many").stage(stage)
}

/// With 2 slots and a prefetch of 6, the first claim takes 8 task runs, yet no more than 2
/// cogs ever run at once, and every task run completes.
async fn prefetched_task_runs_wait_for_a_slot(db: TestDb) {
    let key = format!("{}-slots", db.url);
    let rt = db.runtime_with(|b| b.concurrency(2).config(test_config().prefetch(6))).await;
    *gauge(&key).runtime.lock().unwrap() = Some(rt.clone());
    rt.define(one_stage("pf_step", &key, 20)).await.unwrap();
    let run = rt.launch("many").await.unwrap();
    rt.start();
    assert_eq!(wait(&run).await, RunStatus::Completed);
    let g = gauge(&key);
    assert!(g.most.load(Ordering::SeqCst) <= 2, "at most 2 cogs at once, saw {}", g.most.load(Ordering::SeqCst));
    assert!(g.most_claimed.load(Ordering::SeqCst) >= 8, "claimed ahead: saw {} running task runs", g.most_claimed.load(Ordering::SeqCst));
    assert_eq!(scalar(&rt, "SELECT COUNT(*) FROM cog_task_run WHERE status = 'completed'").await, 20);
    rt.shutdown().await;
    gauge(&key).runtime.lock().unwrap().take();
}

/// Prefetched task runs still waiting for a slot at shutdown go back to the queue at once and
/// never start; a later runtime runs them.
async fn prefetched_task_runs_are_given_back_at_shutdown(db: TestDb) {
    let key = format!("{}-shutdown", db.url);
    let config = test_config().prefetch(3).shutdown_timeout(Duration::from_millis(300));
    let rt = db.runtime_with(|b| b.concurrency(1).config(config)).await;
    rt.define(one_stage("pf_hold", &key, 4)).await.unwrap();
    let run = rt.launch("many").await.unwrap();
    rt.start();
    let p = probe(&key);
    eventually("the first cog to start", || async { p.arrived.load(Ordering::SeqCst) == 1 }).await;
    rt.shutdown().await;
    assert_eq!(p.arrived.load(Ordering::SeqCst), 1, "the prefetched task runs never started");
    assert_eq!(scalar(&rt, "SELECT COUNT(*) FROM cog_task_run WHERE status = 'queued' AND worker IS NULL AND lease_until IS NULL").await, 4);

    p.open();
    let second = db.runtime().await;
    second.start();
    assert_eq!(wait(&run).await, RunStatus::Completed);
    assert_eq!(p.arrived.load(Ordering::SeqCst), 5, "the one given back after the deadline ran again, the others once");
    second.shutdown().await;
}

/// A prefetched task run whose run failed while it waited for a slot never starts: it ends
/// `canceled`, as it would have if it had still been queued.
async fn prefetched_task_runs_of_a_failed_run_do_not_start(db: TestDb) {
    let key = format!("{}-failed", db.url);
    let rt = db.runtime_with(|b| b.concurrency(1).config(test_config().prefetch(3))).await;
    let stage = (0..3).fold(StageSpec::new("only").task(TaskSpec::new("pf_fail").name("boom").weight(10.0)), |s, i| {
        s.task(TaskSpec::new("pf_count").name(format!("t{i}")).args(json!({ "key": key })))
    });
    rt.define(PipelineSpec::new("failing").stage(stage)).await.unwrap();
    let run = rt.launch("failing").await.unwrap();
    rt.start();
    assert_eq!(wait(&run).await, RunStatus::Failed);
    assert_eq!(probe(&key).calls.load(Ordering::SeqCst), 0, "no prefetched task run started after the run failed");
    let statuses = support::task_statuses(&rt, run.id()).await;
    let expected: Vec<(String, String)> =
        [("boom", "failed"), ("t0", "canceled"), ("t1", "canceled"), ("t2", "canceled")].iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect();
    assert_eq!(statuses, expected);
    rt.shutdown().await;
}

/// A prefetched task run's `duration_ms` counts from its cog's start, not from its claim: with
/// one slot, a quick task run claimed while a 600 ms one runs waits for the slot, and its
/// duration leaves that wait out (it would be 600 ms or more if counted from the claim).
async fn a_prefetched_task_runs_duration_leaves_out_its_wait_for_a_slot(db: TestDb) {
    let key = format!("{}-duration", db.url);
    let rt = db.runtime_with(|b| b.concurrency(1).config(test_config().prefetch(1))).await;
    let stage = StageSpec::new("only")
        .task(TaskSpec::new("pf_sleep").name("slow").args(json!({ "ms": 600 })).weight(10.0))
        .task(TaskSpec::new("pf_count").name("quick").args(json!({ "key": key })));
    rt.define(PipelineSpec::new("waiting").stage(stage)).await.unwrap();
    let run = rt.launch("waiting").await.unwrap();
    rt.start();
    assert_eq!(wait(&run).await, RunStatus::Completed);
    let duration = |task: &str| {
        let sql = format!("SELECT tr.duration_ms FROM cog_task_run tr JOIN cog_task t ON t.id = tr.task_id WHERE t.name = '{task}'");
        let rt = rt.clone();
        async move { scalar(&rt, &sql).await }
    };
    let (slow, quick) = (duration("slow").await, duration("quick").await);
    assert!(slow >= 600, "the slow task ran {slow} ms");
    assert!(quick < 300, "the quick task's duration_ms is {quick}: it counted its wait for the slot (the slow task ran {slow} ms)");
    // It did wait: it was claimed (its `started_at`) while the slow one ran, before its slot freed.
    let claimed_during_slow = scalar(
        &rt,
        "SELECT COUNT(*) FROM cog_task_run q JOIN cog_task qt ON qt.id = q.task_id, cog_task_run s JOIN cog_task st ON st.id = s.task_id \
         WHERE qt.name = 'quick' AND st.name = 'slow' AND q.started_at < s.completed_at",
    )
    .await;
    assert_eq!(claimed_during_slow, 1, "the quick task run was claimed while the slow one ran");
    rt.shutdown().await;
}

on_all_backends!(
    prefetched_task_runs_wait_for_a_slot,
    prefetched_task_runs_are_given_back_at_shutdown,
    prefetched_task_runs_of_a_failed_run_do_not_start,
    a_prefetched_task_runs_duration_leaves_out_its_wait_for_a_slot
);
