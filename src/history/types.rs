//! What the history listings return (serializable, for JSON APIs).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::entity::status::{RunStatus, Trigger};

/// One pipeline run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct RunSummary {
    /// Run id.
    pub id: i64,
    /// The pipeline's name.
    pub pipeline: String,
    /// Its status.
    pub status: RunStatus,
    /// What launched it.
    pub trigger: Trigger,
    /// The schedule tick it was fired for.
    pub scheduled_for: Option<DateTime<Utc>>,
    /// Its launch arguments (a JSON object).
    pub arguments: Value,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub completed_at: Option<DateTime<Utc>>,
    /// `completed_at - started_at` in milliseconds, once ended.
    pub duration_ms: Option<i64>,
    /// The run this one retries (`rt.retry`), if any.
    pub retry_of: Option<i64>,
}

/// One pipeline with its last run and next ticks.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct PipelineSummary {
    /// Pipeline id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Whether it runs (disabled ones are not launched by the schedule).
    pub enabled: bool,
    /// Cron expression, if scheduled.
    pub schedule: Option<String>,
    /// IANA time zone of the schedule.
    pub timezone: String,
    /// Whether a launch is refused while a run is going.
    pub prevent_overlap: bool,
    /// What a launch does while a run is going.
    pub overlap: crate::spec::Overlap,
    /// Its newest run.
    pub last_run: Option<RunSummary>,
    /// The next three schedule ticks (UTC instants; empty if unscheduled).
    pub next_ticks: Vec<DateTime<Utc>>,
    /// Stages in the current definition.
    pub stages: usize,
    /// Tasks in the current definition.
    pub tasks: usize,
}

/// A pipeline with its stage graph and tasks.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct PipelineDetail {
    /// The pipeline.
    pub pipeline: PipelineSummary,
    /// Its stages (not archived), by dependency depth then definition order.
    pub stages: Vec<StageInfo>,
}

/// A stage of a pipeline definition.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct StageInfo {
    /// Stage id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Whether it runs.
    pub enabled: bool,
    /// The stages it waits for, by name.
    pub prerequisites: Vec<String>,
    /// 0 for a stage without prerequisites, else one more than its deepest prerequisite.
    pub depth: usize,
    /// Its tasks (not archived), in definition order.
    pub tasks: Vec<TaskInfo>,
}

/// A task of a stage.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct TaskInfo {
    /// Task id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// The cog it calls.
    pub cog: String,
    /// Its arguments (a JSON object).
    pub arguments: Value,
    /// Its queue.
    pub queue: String,
    /// Expected seconds.
    pub weight: f64,
    /// Whether its failure fails the run.
    pub critical: bool,
    /// Its own error handler.
    pub error_handler: Option<String>,
    /// Whether it runs.
    pub enabled: bool,
    /// Attempts after the first.
    pub max_retries: i32,
    /// Longest an attempt may run.
    pub timeout_ms: Option<i64>,
}

/// A run in detail.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct RunDetail {
    /// The run.
    pub run: RunSummary,
    /// Every stage of the pipeline, with its stage run in this run if it started.
    pub stages: Vec<StageRunRow>,
    /// Its task runs, by start time.
    pub task_runs: Vec<TaskRunRow>,
    /// Its errors, oldest first.
    pub errors: Vec<ErrorRow>,
}

/// A stage of a run's pipeline and its stage run in the run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct StageRunRow {
    /// Stage name.
    pub stage: String,
    /// The stages it waits for.
    pub prerequisites: Vec<String>,
    /// Dependency depth (see [`StageInfo::depth`]).
    pub depth: usize,
    /// Stage run id, if it started.
    pub id: Option<i64>,
    /// Stage run status; `None` when it never started.
    pub status: Option<RunStatus>,
    /// When it started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub completed_at: Option<DateTime<Utc>>,
}

/// A task run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct TaskRunRow {
    /// Task run id.
    pub id: i64,
    /// Stage name.
    pub stage: String,
    /// Task name.
    pub task: String,
    /// The cog it calls.
    pub cog: String,
    /// Status.
    pub status: RunStatus,
    /// Queue.
    pub queue: String,
    /// Attempts started.
    pub attempt: i32,
    /// Attempts allowed after the first.
    pub max_retries: i32,
    /// The worker that ran (or runs) it.
    pub worker: Option<String>,
    /// When it started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub completed_at: Option<DateTime<Utc>>,
    /// Run time of the successful attempt, else `completed_at - started_at`.
    pub duration_ms: Option<i64>,
    /// What the cog returned.
    pub result: Option<Value>,
    /// The last error message.
    pub error: Option<String>,
}

/// An error of a task run, with where it happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ErrorRow {
    /// Error id.
    pub id: i64,
    /// The task run.
    pub task_run_id: i64,
    /// The attempt it ended.
    pub attempt: i32,
    /// Type or category.
    pub error_type: String,
    /// Message.
    pub message: String,
    /// Backtrace or panic payload.
    pub backtrace: Option<String>,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
    /// The pipeline run.
    pub run_id: i64,
    /// The pipeline.
    pub pipeline: String,
    /// The stage.
    pub stage: String,
    /// The task.
    pub task: String,
    /// The cog the task calls.
    pub cog: String,
}

/// Where a task is: pipeline, stage and task names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TaskRef {
    /// Pipeline name.
    pub pipeline: String,
    /// Stage name.
    pub stage: String,
    /// Task name.
    pub task: String,
}

/// A cog or error handler and who carries and uses it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct CogHealth {
    /// Name.
    pub name: String,
    /// Defining module.
    pub module: String,
    /// Carried by at least one live worker.
    pub present: bool,
    /// The live workers that carry it.
    pub workers: Vec<String>,
    /// Its parameters' names, when known (recorded by a worker that carries it, or compiled
    /// into this binary).
    pub parameters: Option<Vec<String>>,
    /// Its parameters with their types, when known (as `parameters`).
    pub parameter_details: Option<Vec<ParameterInfo>>,
    /// The tasks (not archived) that use it.
    pub used_by: Vec<TaskRef>,
}

/// One parameter of a cog, as recorded in `cog_cog.parameters`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct ParameterInfo {
    /// The JSON key its value is taken from.
    pub name: String,
    /// Its Rust type as written in the cog's signature.
    pub type_name: String,
    /// Whether it may be left out (`Option<T>`).
    pub optional: bool,
}

impl ParameterInfo {
    /// The parameters of a cog compiled into this binary.
    pub(crate) fn of(def: &crate::registry::CogDef) -> Vec<ParameterInfo> {
        def.parameters.iter().map(|p| ParameterInfo { name: p.name.to_owned(), type_name: p.type_name.to_owned(), optional: p.optional }).collect()
    }
}

/// A queue's depth and servers.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct QueueHealth {
    /// Name.
    pub name: String,
    /// Queued task runs.
    pub queued: i64,
    /// Running task runs.
    pub running: i64,
    /// Since when the oldest queued task run may run (its `run_after`).
    pub oldest_queued_at: Option<DateTime<Utc>>,
    /// The live workers that work on it.
    pub workers: Vec<String>,
    /// Whether it is paused (`rt.pause_queue`): no process claims from it.
    pub paused: bool,
}

/// A live worker.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct WorkerInfo {
    /// Its name (as in `cog_task_run.worker`).
    pub name: String,
    /// The queues it works on.
    pub queues: Vec<String>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat.
    pub heartbeat_at: DateTime<Utc>,
    /// Live until then unless renewed.
    pub alive_until: DateTime<Utc>,
    /// How many cogs it carries.
    pub cogs: usize,
}

/// Task runs that ended in one minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct MinuteCount {
    /// The minute (UTC, seconds zero).
    pub minute: DateTime<Utc>,
    /// Task runs completed.
    pub completed: i64,
    /// Task runs failed.
    pub failed: i64,
}
