//! Metrics and traces (issue 9, item 6): counters, histograms and the queue-depth gauge through the
//! `metrics` facade, read back with `metrics-util`'s `DebuggingRecorder`, one `cog.task`
//! span per attempt with the run's ids, and the `cog::handoff` events of a stage hand-off. The recorder and the subscriber are global to this test
//! binary, so the tests take turns ([`SERIAL`]) and compare snapshots taken before and after.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use chrono::{DateTime, SubsecRound, Utc};
use cog::entity::task_run;
use cog::{CogRuntime, ManualClock, PipelineSpec, RunStatus, StageSpec, TaskContext, TaskSpec, cog};
use metrics_util::MetricKind;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use support::{TestDb, rows, test_config, wait};
use tracing_subscriber::layer::{Context, SubscriberExt};

// ---- cogs ------------------------------------------------------------------------------------

#[cog]
fn m_ok() {}

#[cog]
fn m_flaky(ctx: TaskContext) -> Result<(), String> {
    if ctx.attempt() == 1 { Err("first attempts fail".to_owned()) } else { Ok(()) }
}

#[cog]
fn m_fail() -> Result<(), String> {
    Err("always".to_owned())
}

// ---- recorder and subscriber -----------------------------------------------------------------

/// One test at a time: the recorder and the subscriber see every test of this binary.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The global recorder's snapshotter, installed on first use.
static RECORDER: LazyLock<Snapshotter> = LazyLock::new(|| {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().expect("no other recorder in this test binary");
    snapshotter
});

/// A metric: name and labels, sorted.
type Key = (String, Vec<(String, String)>);

/// What changed since the previous snapshot: the `DebuggingRecorder` hands out counter increments
/// and histogram observations since its last snapshot, and resets gauges to 0 once read.
#[derive(Default)]
struct Snapshot {
    counters: HashMap<Key, u64>,
    gauges: HashMap<Key, f64>,
    histograms: HashMap<Key, Vec<f64>>,
}

fn key(name: &str, labels: &[(&str, &str)]) -> Key {
    let mut labels: Vec<(String, String)> = labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    labels.sort();
    (name.to_owned(), labels)
}

/// Reads (and resets) the recorder.
fn snapshot() -> Snapshot {
    let mut out = Snapshot::default();
    for (composite, _, _, value) in RECORDER.snapshot().into_vec() {
        let k = composite.key();
        let labels: Vec<(&str, &str)> = k.labels().map(|l| (l.key(), l.value())).collect();
        let key = key(k.name(), &labels);
        match (composite.kind(), value) {
            (MetricKind::Counter, DebugValue::Counter(n)) => drop(out.counters.insert(key, n)),
            (MetricKind::Gauge, DebugValue::Gauge(v)) => drop(out.gauges.insert(key, v.into_inner())),
            (MetricKind::Histogram, DebugValue::Histogram(vs)) => drop(out.histograms.insert(key, vs.into_iter().map(|v| v.into_inner()).collect())),
            (kind, value) => panic!("{kind:?} with {value:?}"),
        }
    }
    out
}

impl Snapshot {
    /// How much counter `name{labels}` grew since the previous snapshot.
    fn counted(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.counters.get(&key(name, labels)).copied().unwrap_or(0)
    }

    /// Observations of histogram `name{labels}` since the previous snapshot.
    fn observed(&self, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
        self.histograms.get(&key(name, labels)).cloned().unwrap_or_default()
    }

    /// Every counter of `name` that grew since the previous snapshot, with its labels.
    fn grown(&self, name: &str) -> Vec<(Vec<(String, String)>, u64)> {
        let mut out: Vec<_> = self.counters.iter().filter(|((n, _), v)| n == name && **v > 0).map(|((_, labels), v)| (labels.clone(), *v)).collect();
        out.sort();
        out
    }
}

/// The fields of every `cog.task` span opened, in order.
static SPANS: Mutex<Vec<HashMap<String, String>>> = Mutex::new(Vec::new());

/// The `step` of every `cog::handoff` event, in order.
static STEPS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Records the fields of `cog.task` spans into [`SPANS`], and the steps of `cog::handoff`
/// events into [`STEPS`] (a poisoned list is still written: one failed test must not take the
/// writers of the next ones down).
struct SpanCapture;

struct Fields<'a>(&'a mut HashMap<String, String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for SpanCapture {
    fn on_new_span(&self, attrs: &tracing::span::Attributes<'_>, _: &tracing::span::Id, _: Context<'_, S>) {
        if attrs.metadata().name() == cog::metrics::TASK_SPAN {
            let mut fields = HashMap::new();
            attrs.record(&mut Fields(&mut fields));
            SPANS.lock().unwrap().push(fields);
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() == "cog::handoff" {
            let mut fields = HashMap::new();
            event.record(&mut Fields(&mut fields));
            STEPS.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(fields.remove("step").unwrap_or_default());
        }
    }
}

/// Takes this test's turn and makes sure the recorder and the subscriber are installed.
async fn turn() -> tokio::sync::MutexGuard<'static, ()> {
    static SUBSCRIBER: std::sync::Once = std::sync::Once::new();
    SUBSCRIBER.call_once(|| tracing::subscriber::set_global_default(tracing_subscriber::registry().with(SpanCapture)).expect("no other subscriber"));
    LazyLock::force(&RECORDER);
    SERIAL.lock().await
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

async fn runtime(db: &TestDb, clock: &Arc<ManualClock>) -> CogRuntime {
    let clock = Arc::clone(clock);
    db.runtime_with(move |b| b.clock(clock).scheduler(false).queues(["default", "mq"]).config(test_config())).await
}

// ---- tests -----------------------------------------------------------------------------------

async fn outcomes_are_counted_once_committed(db: TestDb) {
    let _turn = turn().await;
    let clock = Arc::new(ManualClock::new(at("2030-01-01T00:00:30Z")));
    let rt = runtime(&db, &clock).await;
    let on_mq = |cog: &str| TaskSpec::new(cog).queue("mq");
    rt.define(
        PipelineSpec::new("metered")
            .stage(StageSpec::new("s").task(on_mq("m_ok").name("ok_1")).task(on_mq("m_ok").name("ok_2")).task(on_mq("m_flaky").max_retries(1))),
    )
    .await
    .unwrap();
    rt.define(PipelineSpec::new("broken").stage(StageSpec::new("s").task(on_mq("m_fail")))).await.unwrap();
    rt.define(PipelineSpec::new("scheduled").schedule("* * * * *").stage(StageSpec::new("s").task(on_mq("m_ok")))).await.unwrap();
    rt.define(PipelineSpec::new("dropped").stage(StageSpec::new("s").task(TaskSpec::new("m_ok").queue("unserved")))).await.unwrap();
    snapshot();

    // Canceled while its only task waits on a queue nobody serves: it ends at once.
    let dropped = rt.launch("dropped").await.unwrap();
    rt.cancel(dropped.id()).await.unwrap();
    rt.start();
    assert_eq!(wait(&rt.launch("metered").await.unwrap()).await, RunStatus::Completed);
    assert_eq!(wait(&rt.launch("broken").await.unwrap()).await, RunStatus::Failed);
    clock.set(at("2030-01-01T00:01:00Z"));
    let pass = rt.run_scheduler_once().await.unwrap();
    assert_eq!(wait(&rt.handle(pass.fired[0].2)).await, RunStatus::Completed);
    // Outcomes are counted by the completion writer after its commit; shutdown waits for it.
    rt.shutdown().await;
    let after = snapshot();

    let tasks = cog::metrics::TASK_RUNS;
    let grown: Vec<(Vec<(String, String)>, u64)> = after.grown(tasks);
    let label = |pipeline: &str, cog: &str, status: &str| key(tasks, &[("pipeline", pipeline), ("cog", cog), ("status", status)]).1;
    assert_eq!(
        grown,
        {
            let mut expected = vec![
                (label("broken", "m_fail", "failed"), 1),
                (label("metered", "m_flaky", "completed"), 1),
                (label("metered", "m_flaky", "retrying"), 1),
                (label("metered", "m_ok", "completed"), 2),
                (label("scheduled", "m_ok", "completed"), 1),
            ];
            expected.sort();
            expected
        },
        "task runs counted by pipeline, cog and status"
    );

    let runs = cog::metrics::PIPELINE_RUNS;
    for (pipeline, status, trigger) in
        [("metered", "completed", "manual"), ("broken", "failed", "manual"), ("scheduled", "completed", "schedule"), ("dropped", "canceled", "manual")]
    {
        assert_eq!(after.counted(runs, &[("pipeline", pipeline), ("status", status), ("trigger", trigger)]), 1, "{pipeline} {status} {trigger}");
    }
    assert_eq!(after.grown(runs).len(), 4, "nothing else counted: {:?}", after.grown(runs));

    let durations = |cog: &str| after.observed(cog::metrics::TASK_DURATION, &[("cog", cog)]);
    assert_eq!((durations("m_ok").len(), durations("m_flaky").len(), durations("m_fail").len()), (3, 2, 1));
    assert!(durations("m_ok").iter().all(|d| *d >= 0.0 && *d < 60.0), "{:?}", durations("m_ok"));
    let lags = after.observed(cog::metrics::QUEUE_LAG, &[("queue", "mq")]);
    assert_eq!(lags.len(), 6, "one per claimed attempt: {lags:?}");
    assert!(lags.iter().all(|l| *l >= 0.0), "{lags:?}");
    assert!(after.observed(cog::metrics::QUEUE_LAG, &[("queue", "unserved")]).is_empty(), "the canceled task run never started");
}

async fn a_task_run_reclaimed_from_a_dead_worker_is_counted(db: TestDb) {
    let _turn = turn().await;
    let rt = db.runtime_with(|b| b.config(test_config().lease_duration(std::time::Duration::from_millis(300)))).await;
    rt.define(PipelineSpec::new("orphaned").stage(StageSpec::new("s").task(TaskSpec::new("m_ok").name("victim")))).await.unwrap();
    let run = rt.launch("orphaned").await.unwrap();
    // Its worker "died" an hour ago, holding it: the reclaim fails it (no retries left).
    let past = (Utc::now() - chrono::Duration::hours(1)).trunc_subsecs(6);
    let changed = task_run::Entity::update_many()
        .col_expr(task_run::Column::Status, Expr::value(RunStatus::Running))
        .col_expr(task_run::Column::Attempt, Expr::value(1))
        .col_expr(task_run::Column::Worker, Expr::value("dead"))
        .col_expr(task_run::Column::LeaseUntil, Expr::value(past))
        .col_expr(task_run::Column::StartedAt, Expr::value(past))
        .filter(task_run::Column::Status.eq(RunStatus::Queued))
        .exec(rt.connection())
        .await
        .unwrap();
    assert_eq!(changed.rows_affected, 1);
    snapshot();
    rt.start();
    assert_eq!(wait(&run).await, RunStatus::Failed);
    rt.shutdown().await;
    let after = snapshot();
    assert_eq!(after.grown(cog::metrics::TASK_RUNS), [(key("", &[("pipeline", "orphaned"), ("cog", "m_ok"), ("status", "failed")]).1, 1)]);
    assert_eq!(after.grown(cog::metrics::PIPELINE_RUNS), [(key("", &[("pipeline", "orphaned"), ("status", "failed"), ("trigger", "manual")]).1, 1)]);
    let durations = after.observed(cog::metrics::TASK_DURATION, &[("cog", "m_ok")]);
    assert!(durations.len() == 1 && durations[0] >= 3_000.0, "the attempt lasted from its start an hour ago to the reclaim: {durations:?}");
}

async fn the_scheduler_leader_refreshes_queue_depths(db: TestDb) {
    let _turn = turn().await;
    let clock = Arc::new(ManualClock::new(at("2030-01-01T00:00:30Z")));
    let rt = runtime(&db, &clock).await;
    let waiting = |name: &str| TaskSpec::new("m_ok").name(name).queue("mdepth");
    rt.define(PipelineSpec::new("deep").stage(StageSpec::new("s").task(waiting("a")).task(waiting("b")).task(waiting("c")))).await.unwrap();
    let run = rt.launch("deep").await.unwrap();
    let depth = |queue: &str| key(cog::metrics::QUEUE_DEPTH, &[("queue", queue)]);

    snapshot();
    let pass = rt.run_scheduler_once().await.unwrap();
    assert!(pass.leader);
    let now = snapshot();
    assert_eq!(now.gauges.get(&depth("mdepth")), Some(&3.0));
    assert_eq!(now.gauges.get(&depth("default")), Some(&0.0));

    // Each pass of the leader sets the depths anew.
    rt.cancel(run.id()).await.unwrap();
    rt.define(PipelineSpec::new("shallow").stage(StageSpec::new("s").task(waiting("a")))).await.unwrap();
    rt.launch("shallow").await.unwrap();
    rt.run_scheduler_once().await.unwrap();
    assert_eq!(snapshot().gauges.get(&depth("mdepth")), Some(&1.0));

    // A runtime that is not the leader does not (the recorder reset the gauge to 0 when read).
    let standby = runtime(&db, &clock).await;
    rt.launch("deep").await.unwrap();
    assert!(!standby.run_scheduler_once().await.unwrap().leader);
    assert_eq!(snapshot().gauges.get(&depth("mdepth")), Some(&0.0));
    rt.run_scheduler_once().await.unwrap();
    assert_eq!(snapshot().gauges.get(&depth("mdepth")), Some(&4.0));
}

async fn each_attempt_runs_in_a_span_with_its_run_ids(db: TestDb) {
    let _turn = turn().await;
    let clock = Arc::new(ManualClock::new(at("2030-01-01T00:00:30Z")));
    let rt = runtime(&db, &clock).await;
    rt.start();
    SPANS.lock().unwrap().clear();
    rt.define(
        PipelineSpec::new("traced")
            .stage(StageSpec::new("first").task(TaskSpec::new("m_flaky").name("flaky").max_retries(1)))
            .stage(StageSpec::new("second").after(["first"]).task(TaskSpec::new("m_ok").name("ok"))),
    )
    .await
    .unwrap();
    let run = rt.launch("traced").await.unwrap();
    assert_eq!(wait(&run).await, RunStatus::Completed);
    rt.shutdown().await;

    let run_id = run.id().to_string();
    let mut spans: Vec<HashMap<String, String>> = SPANS.lock().unwrap().iter().filter(|s| s.get("pipeline.run") == Some(&run_id)).cloned().collect();
    spans.sort_by_key(|s| (s["task"].clone(), s["attempt"].clone()));
    let ids = rows(
        &rt,
        &format!(
            "SELECT t.name, tr.id, sr.id, s.name FROM cog_task_run tr JOIN cog_task t ON t.id = tr.task_id JOIN cog_stage_run sr ON sr.id = tr.stage_run_id \
             JOIN cog_stage s ON s.id = sr.stage_id WHERE sr.pipeline_run_id = {run_id}"
        ),
    )
    .await;
    let ids: HashMap<String, (i64, i64, String)> = ids
        .iter()
        .map(|r| (r.try_get_by_index(0).unwrap(), (r.try_get_by_index(1).unwrap(), r.try_get_by_index(2).unwrap(), r.try_get_by_index(3).unwrap())))
        .collect();
    let expected: Vec<HashMap<String, String>> = [("flaky", "m_flaky", 1), ("flaky", "m_flaky", 2), ("ok", "m_ok", 1)]
        .into_iter()
        .map(|(task, cog, attempt)| {
            let (task_run, stage_run, stage) = &ids[task];
            [
                ("pipeline", "traced".to_owned()),
                ("pipeline.run", run_id.clone()),
                ("stage", stage.clone()),
                ("stage.run", stage_run.to_string()),
                ("task", task.to_owned()),
                ("task.run", task_run.to_string()),
                ("cog", cog.to_owned()),
                ("attempt", attempt.to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect()
        })
        .collect();
    assert_eq!(spans, expected);
}

/// A stage hand-off marks each of its steps with a `cog::handoff` trace event, in the order it
/// passes them (what `COG_BENCH_STEPS` times in the bench): the cog's return, the outcome's
/// write (taken up by the writer, its transaction begun, the outcome written, the stage run
/// ended, the next stage started, the commit, the claimed task run about to be handed to its
/// slot), the next cog's call.
async fn a_hand_off_marks_each_step(db: TestDb) {
    let _turn = turn().await;
    let clock = Arc::new(ManualClock::new(at("2030-01-01T00:00:30Z")));
    let rt = runtime(&db, &clock).await;
    rt.start();
    rt.define(
        PipelineSpec::new("steps")
            .stage(StageSpec::new("first").task(TaskSpec::new("m_ok").name("one")))
            .stage(StageSpec::new("second").after(["first"]).task(TaskSpec::new("m_ok").name("two"))),
    )
    .await
    .unwrap();
    STEPS.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
    let run = rt.launch("steps").await.unwrap();
    assert_eq!(wait(&run).await, RunStatus::Completed);
    rt.shutdown().await;
    let write = ["cog_returned", "write_began", "begun", "outcomes_written", "stage_ended", "stages_started", "committed", "dispatching"];
    let expected: Vec<&str> = ["cog_called"].into_iter().chain(write).chain(["cog_called"]).chain(write).collect();
    // Copied out before comparing: a failed comparison must not poison what later tests record.
    let steps = STEPS.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    assert_eq!(steps, expected);
}

on_all_backends!(
    a_hand_off_marks_each_step,
    outcomes_are_counted_once_committed,
    a_task_run_reclaimed_from_a_dead_worker_is_counted,
    the_scheduler_leader_refreshes_queue_depths,
    each_attempt_runs_in_a_span_with_its_run_ids
);
