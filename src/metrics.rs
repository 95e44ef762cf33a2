//! Metrics and traces, through the [`metrics`](https://docs.rs/metrics) facade and `tracing`:
//! cog records, the host's recorder (Prometheus, StatsD, OpenTelemetry, ...) exports. With no
//! recorder installed every call is a no-op.
//!
//! | metric | kind | labels | when |
//! |---|---|---|---|
//! | `cog_task_runs_total` | counter | `pipeline`, `cog`, `status` | an attempt's outcome is committed: `completed`, `failed`, or `retrying` (failed, another attempt queued) |
//! | `cog_pipeline_runs_total` | counter | `pipeline`, `status`, `trigger` | a run has ended (`completed_at` committed): `completed`, `failed` or `canceled`; `manual`, `schedule` or `retry` |
//! | `cog_task_duration_seconds` | histogram | `cog` | with `cog_task_runs_total`: from the attempt's start to its outcome |
//! | `cog_task_queue_lag_seconds` | histogram | `queue` | a task run is claimed: from when it could run (queued, or its retry became due) to its start |
//! | `cog_queue_depth` | gauge | `queue` | each scheduler pass of the leader: queued task runs per queue |
//!
//! Each process counts what it commits (a worker its task runs' outcomes, any process the task runs
//! it reclaims from a dead worker), so summing over processes counts every outcome once.
//!
//! Every attempt of a task run runs in a `tracing` span named `cog.task` with the fields
//! `pipeline`, `pipeline.run`, `stage`, `stage.run`, `task`, `task.run`, `cog` and `attempt`.
//! A task run executes in whichever process claims it, so its span has no parent there: with
//! an OpenTelemetry subscriber each attempt is its own root span, and one pipeline run's spans
//! are found together by their `pipeline.run` attribute.
//!
//! ```no_run
//! // In the host, before building the runtime (see examples/metrics.rs):
//! // metrics_exporter_prometheus::PrometheusBuilder::new().with_http_listener(([0, 0, 0, 0], 9000)).install()?;
//! assert_eq!(cog::metrics::TASK_RUNS, "cog_task_runs_total");
//! ```

use std::sync::Once;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};

use crate::engine::claim::Claimed;
use crate::engine::finish::Finished;
use crate::signals::Effects;
use crate::store::reports::{self, RunRow};

/// Counter of task run attempts by outcome: labels `pipeline`, `cog`, `status`.
pub const TASK_RUNS: &str = "cog_task_runs_total";
/// Counter of ended pipeline runs: labels `pipeline`, `status`, `trigger`.
pub const PIPELINE_RUNS: &str = "cog_pipeline_runs_total";
/// Histogram of attempt durations in seconds: label `cog`.
pub const TASK_DURATION: &str = "cog_task_duration_seconds";
/// Histogram of the seconds task runs waited between being due and starting: label `queue`.
pub const QUEUE_LAG: &str = "cog_task_queue_lag_seconds";
/// Gauge of queued task runs: label `queue`.
pub const QUEUE_DEPTH: &str = "cog_queue_depth";
/// The name of the `tracing` span each task run attempt runs in.
pub const TASK_SPAN: &str = "cog.task";

/// Describes the metrics to the recorder once (help texts and units).
fn describe() {
    static DESCRIBED: Once = Once::new();
    DESCRIBED.call_once(|| {
        ::metrics::describe_counter!(TASK_RUNS, "Task run attempts by outcome: completed, failed, or retrying (failed, another attempt queued).");
        ::metrics::describe_counter!(PIPELINE_RUNS, "Pipeline runs ended, by final status and trigger.");
        ::metrics::describe_histogram!(TASK_DURATION, ::metrics::Unit::Seconds, "Duration of task run attempts, from start to outcome.");
        ::metrics::describe_histogram!(QUEUE_LAG, ::metrics::Unit::Seconds, "Time task runs waited between being due and starting.");
        ::metrics::describe_gauge!(QUEUE_DEPTH, "Queued task runs per queue, refreshed by the scheduler leader.");
    });
}

/// Seconds from `from` to `to`, never negative (the two may come from different clocks).
fn seconds(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    ((to - from).num_microseconds().unwrap_or(0).max(0) as f64) / 1e6
}

/// Metric handles of one batch of task runs, each registered (its labels built, with their
/// strings copied) once per distinct key instead of once per task run: a batch's task runs
/// share a few pipelines, cogs and queues. Workload E (no-op tasks, no recorder installed)
/// had spent 3 % of a worker's CPU copying label strings per task run.
struct Handles<K, H> {
    found: Vec<(K, H)>,
}

impl<K: PartialEq, H> Handles<K, H> {
    fn new() -> Self {
        Handles { found: Vec::new() }
    }

    /// The handle of `key`, registered with `register` the first time.
    fn get(&mut self, key: K, register: impl FnOnce(&K) -> H) -> &H {
        let at = match self.found.iter().position(|(k, _)| *k == key) {
            Some(at) => at,
            None => {
                let handle = register(&key);
                self.found.push((key, handle));
                self.found.len() - 1
            }
        };
        &self.found[at].1
    }
}

/// Task runs were claimed (the claim is committed): their queue lag.
pub(crate) fn claimed(tasks: &[Claimed]) {
    describe();
    let mut lags = Handles::new();
    for task in tasks {
        if let Some(started) = task.started_at {
            lags.get(task.queue.as_str(), |queue| ::metrics::histogram!(QUEUE_LAG, "queue" => queue.to_string())).record(seconds(task.run_after, started));
        }
    }
}

/// The outcomes of attempts were committed (`finished[i]` for `tasks[i]`, each with its
/// attempt's start as in `finish::Ending::started_at`): counted by status, with their
/// durations. Stale attempts wrote nothing and are not counted.
pub(crate) fn recorded<'a>(tasks: impl IntoIterator<Item = (&'a Claimed, Option<DateTime<Utc>>)>, finished: &[Finished], now: DateTime<Utc>) {
    describe();
    let mut counters = Handles::new();
    let mut durations = Handles::new();
    for ((task, started_at), finished) in tasks.into_iter().zip(finished) {
        let status = match finished {
            Finished::Completed => "completed",
            Finished::Failed => "failed",
            Finished::Retrying => "retrying",
            Finished::Stale => continue,
        };
        counters
            .get(
                (task.pipeline_name.as_str(), task.cog.as_str(), status),
                |&(pipeline, cog, status)| ::metrics::counter!(TASK_RUNS, "pipeline" => pipeline.to_owned(), "cog" => cog.to_owned(), "status" => status),
            )
            .increment(1);
        if let Some(started) = started_at {
            durations.get(task.cog.as_str(), |cog| ::metrics::histogram!(TASK_DURATION, "cog" => cog.to_string())).record(seconds(started, now));
        }
    }
}

/// When `effects` say the transition ended run `run_id`: what the run is counted as, read in the
/// transaction that ended it (before its commit).
pub(crate) async fn ended_run(conn: &impl ConnectionTrait, run_id: i64, effects: Effects) -> Result<Option<RunRow>, DbErr> {
    if !effects.run_ended {
        return Ok(None);
    }
    reports::run(conn, run_id).await
}

/// The transaction that ended `run` (if any) has committed: counts it.
pub(crate) fn run_ended(run: Option<&RunRow>) {
    let Some(run) = run else { return };
    describe();
    ::metrics::counter!(PIPELINE_RUNS, "pipeline" => run.pipeline.clone(), "status" => run.status.as_str(), "trigger" => run.trigger.as_str()).increment(1);
}

/// Sets `cog_queue_depth` for every known queue (called by the scheduler leader).
pub(crate) async fn refresh_queue_depths(conn: &impl ConnectionTrait) -> Result<(), DbErr> {
    describe();
    for (queue, depth) in crate::store::reports::queue_depths(conn).await? {
        ::metrics::gauge!(QUEUE_DEPTH, "queue" => queue).set(depth as f64);
    }
    Ok(())
}
