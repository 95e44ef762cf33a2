//! Errors: what the runtime API returns ([`Error`]), what `define` rejects
//! ([`DefinitionError`]), and what error handlers receive ([`TaskError`]).

use std::fmt;

/// `Result` with [`Error`] as its error type.
pub type Result<T = (), E = Error> = std::result::Result<T, E>;

/// Everything a `CogRuntime` call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database refused or lost a statement; the message is the driver's.
    #[error("database error: {0}")]
    Database(#[from] sea_orm::DbErr),
    /// `build()` was called without `.database_url(..)` or `.connection(..)`.
    #[error("no database: call .database_url(\"sqlite://cog.db?mode=rwc\") or .connection(db) on the builder")]
    MissingDatabase,
    /// A builder setting is out of range; the message names it.
    #[error("invalid runtime setting: {0}")]
    InvalidSetting(String),
    /// Two `#[cog]` functions share a name; rename one or give it `#[cog(name = "..")]`.
    #[error("two cogs are named `{name}`: one in `{first_module}`, one in `{second_module}`; rename one (or use #[cog(name = \"..\")])")]
    DuplicateCog {
        /// The shared name.
        name: String,
        /// Module of the first.
        first_module: String,
        /// Module of the second.
        second_module: String,
    },
    /// Two `#[cog_error_handler]` functions share a name.
    #[error("two error handlers are named `{name}`: one in `{first_module}`, one in `{second_module}`; rename one")]
    DuplicateErrorHandler {
        /// The shared name.
        name: String,
        /// Module of the first.
        first_module: String,
        /// Module of the second.
        second_module: String,
    },
    /// A pipeline definition was rejected; nothing was saved.
    #[error(transparent)]
    Definition(#[from] DefinitionError),
    /// No pipeline has this name; `define` it first.
    #[error("no pipeline named `{name}`; define it first with rt.define(PipelineSpec::new(\"{name}\")..)")]
    UnknownPipeline {
        /// The name asked for.
        name: String,
    },
    /// No queue has this name (`pause_queue` / `resume_queue`); queues are created by the
    /// tasks that name them (`TaskSpec::queue`), and `default` always exists.
    #[error("no queue named `{name}`; a queue exists once a defined task names it with TaskSpec::queue(\"{name}\")")]
    UnknownQueue {
        /// The name asked for.
        name: String,
    },
    /// No pipeline run has this id.
    #[error("no pipeline run with id {id}")]
    UnknownRun {
        /// The id asked for.
        id: i64,
    },
    /// `launch_with` was given arguments that are not a JSON object.
    #[error("launch of pipeline `{pipeline}`: launch arguments must be a JSON object such as json!({{\"date\": \"2026-11-24\"}})")]
    LaunchArgumentsNotObject {
        /// The pipeline.
        pipeline: String,
    },
    /// A launch was refused by the overlap rules; nothing was created.
    #[error("launch of pipeline `{pipeline}` refused: {reason}")]
    LaunchRefused {
        /// The pipeline.
        pipeline: String,
        /// Why.
        reason: LaunchRefusal,
    },
    /// `rt.retry` of a run that has not ended: still queued or running, or failed/canceled
    /// with cogs still running (`completed_at` not written yet). Wait for it to end.
    #[error("run {run_id} cannot be retried yet: it is {status} and has not ended; wait for it (RunHandle::wait) first")]
    RetryOfActiveRun {
        /// The run.
        run_id: i64,
        /// Its status.
        status: crate::entity::status::RunStatus,
    },
    /// `rt.retry` of a run that completed: there is nothing to retry; launch the pipeline instead.
    #[error("run {run_id} completed; only a failed or canceled run can be retried (launch the pipeline for a new run)")]
    RetryOfCompletedRun {
        /// The run.
        run_id: i64,
    },
    /// A task of the pipeline would run without a parameter its cog requires: it is in neither the
    /// task's arguments nor the launch arguments. Nothing was created.
    #[error(
        "task `{task}`: cog `{cog}` requires argument `{parameter}`, which is in neither the task's arguments nor the launch arguments; \
         pass it with launch_with(.., json!({{\"{parameter}\": ..}})) or in the task's .args(..)"
    )]
    MissingArgument {
        /// The task.
        task: String,
        /// The cog it calls.
        cog: String,
        /// The required parameter left out.
        parameter: String,
    },
    /// A launch argument does not deserialize into the type of a task's cog parameter that takes
    /// it. Nothing was created.
    #[error("task `{task}`: launch argument `{argument}` of cog `{cog}` must be {expected}: {message}; pass a value of that type")]
    BadLaunchArgument {
        /// The task whose cog takes the argument.
        task: String,
        /// The cog.
        cog: String,
        /// The launch argument.
        argument: String,
        /// The parameter's Rust type, as written in the cog's signature (a `&'static str`, which
        /// keeps `Error` small).
        expected: &'static str,
        /// What deserializing it said.
        message: String,
    },
    /// The database holds a value cog did not write (a status it does not know, say).
    #[error("unexpected value in {table}.{column}: {value:?}")]
    Corrupt {
        /// Table.
        table: &'static str,
        /// Column.
        column: &'static str,
        /// What was found.
        value: String,
    },
}

/// Why a launch was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LaunchRefusal {
    /// The overlap policy is `Overlap::Skip` (`prevent_overlap` on) and run `run_id` has not ended.
    Overlap {
        /// The run still going.
        run_id: i64,
    },
    /// The overlap policy is not `Overlap::Allow`, the last run failed and
    /// `Config::overlap_failed` is false (a retry of that run is let through).
    LastRunFailed {
        /// The failed run.
        run_id: i64,
    },
    /// The policy is `Overlap::BufferOne` and run `run_id` is buffered already (queued
    /// behind the active run).
    AlreadyBuffered {
        /// The buffered run.
        run_id: i64,
    },
    /// A scheduled launch for a disabled pipeline.
    Disabled,
    /// A run for this schedule tick exists already.
    TickAlreadyFired,
    /// A scheduled launch in which task `task` would miss parameter `parameter` of cog `cog`
    /// (scheduled launches have no launch arguments): give it in the task's arguments.
    MissingArgument {
        /// The task.
        task: String,
        /// The cog it calls.
        cog: String,
        /// The required parameter left out.
        parameter: String,
    },
}

impl fmt::Display for LaunchRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Overlap { run_id } => write!(f, "run {run_id} has not ended and prevent_overlap is on"),
            Self::LastRunFailed { run_id } => {
                write!(f, "the last run ({run_id}) failed; set Config::overlap_failed = true or prevent_overlap(false) to launch anyway")
            }
            Self::AlreadyBuffered { run_id } => {
                write!(f, "run {run_id} is already buffered behind the active run (overlap policy buffer_one keeps one); cancel it or wait")
            }
            Self::Disabled => write!(f, "the pipeline is disabled"),
            Self::TickAlreadyFired => write!(f, "this schedule tick was fired already"),
            Self::MissingArgument { task, cog, parameter } => {
                write!(f, "task `{task}` would run without argument `{parameter}`, which cog `{cog}` requires; give it in the task's .args(..)")
            }
        }
    }
}

/// The longest name (pipeline, stage, task, queue) a definition may use: names are indexed, and
/// 255 characters is what every backend can index (`VARCHAR(255)` on MySQL).
pub const MAX_NAME_CHARS: usize = 255;

/// A pipeline definition that `define` rejects. Each variant names what was wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DefinitionError {
    /// A name (pipeline, stage, task or queue) is empty or only spaces.
    #[error("{what} name is empty in pipeline `{pipeline}`")]
    EmptyName {
        /// Pipeline.
        pipeline: String,
        /// "stage", "task", "queue" or "pipeline".
        what: &'static str,
    },
    /// A name is longer than the 255 characters every backend can index.
    #[error("{what} name `{name}` in pipeline `{pipeline}` is {length} characters long; names may have at most {MAX_NAME_CHARS} characters, shorten it")]
    NameTooLong {
        /// Pipeline.
        pipeline: String,
        /// "stage", "task", "queue" or "pipeline".
        what: &'static str,
        /// The name, shortened for the message.
        name: String,
        /// Its length in characters.
        length: usize,
    },
    /// Two stages of one pipeline have the same name.
    #[error("pipeline `{pipeline}` has two stages named `{stage}`")]
    DuplicateStage {
        /// Pipeline.
        pipeline: String,
        /// Stage name.
        stage: String,
    },
    /// Two tasks of one stage have the same name (a task is named after its cog unless `.name(..)` is given).
    #[error("stage `{stage}` has two tasks named `{task}`; give one a distinct .name(..)")]
    DuplicateTask {
        /// Stage.
        stage: String,
        /// Task name.
        task: String,
    },
    /// A task calls a cog this binary does not have.
    #[error("task `{task}` calls unknown cog `{cog}`; known cogs are listed by cog::registry::cogs()")]
    UnknownCog {
        /// Task.
        task: String,
        /// The cog name given.
        cog: String,
    },
    /// A task names an error handler this binary does not have.
    #[error("task `{task}` names unknown error handler `{handler}`")]
    UnknownErrorHandler {
        /// Task.
        task: String,
        /// The handler name given.
        handler: String,
    },
    /// A stage waits for a stage this pipeline does not have.
    #[error("stage `{stage}` waits for `{prerequisite}`, which is not a stage of pipeline `{pipeline}`")]
    UnknownPrerequisite {
        /// Pipeline.
        pipeline: String,
        /// Stage.
        stage: String,
        /// The prerequisite name given.
        prerequisite: String,
    },
    /// A stage waits for a stage of another pipeline; prerequisites must be in the same pipeline.
    #[error("stage `{stage}` waits for `{prerequisite}`, a stage of pipeline `{other_pipeline}`; prerequisites must be in the same pipeline")]
    PrerequisiteInOtherPipeline {
        /// Stage.
        stage: String,
        /// The prerequisite name given.
        prerequisite: String,
        /// The pipeline that has a stage of that name.
        other_pipeline: String,
    },
    /// The prerequisites form a cycle; the stages on it are listed in order.
    #[error("pipeline `{pipeline}` has a prerequisite cycle: {}", cycle.join(" -> "))]
    Cycle {
        /// Pipeline.
        pipeline: String,
        /// The stages on the cycle, first repeated at the end.
        cycle: Vec<String>,
    },
    /// The schedule is not a valid cron expression.
    #[error("pipeline `{pipeline}`: bad schedule `{schedule}`: {reason}")]
    InvalidSchedule {
        /// Pipeline.
        pipeline: String,
        /// The expression given.
        schedule: String,
        /// What the parser said.
        reason: String,
    },
    /// The time zone is not an IANA name.
    #[error("pipeline `{pipeline}`: unknown time zone `{timezone}`; use an IANA name such as \"Europe/Paris\" or \"UTC\"")]
    InvalidTimezone {
        /// Pipeline.
        pipeline: String,
        /// The zone given.
        timezone: String,
    },
    /// A task's arguments are not a JSON object.
    #[error("task `{task}`: arguments must be a JSON object, got {got}")]
    ArgumentsNotObject {
        /// Task.
        task: String,
        /// The JSON kind given.
        got: &'static str,
    },
    /// A task's arguments have a key that is not a parameter of its cog.
    #[error("task `{task}`: cog `{cog}` has no parameter `{argument}`; {}", parameter_fix(argument, parameters))]
    UnknownArgument {
        /// Task.
        task: String,
        /// The cog it calls.
        cog: String,
        /// The key given.
        argument: String,
        /// The cog's parameters, in order (the context parameter left out).
        parameters: Vec<String>,
    },
    /// A task's argument does not deserialize into the type of its cog's parameter.
    #[error("task `{task}`: argument `{argument}` of cog `{cog}` must be {expected}: {message}")]
    BadArgument {
        /// Task.
        task: String,
        /// The cog it calls.
        cog: String,
        /// The argument.
        argument: String,
        /// The parameter's Rust type, as written in the cog's signature.
        expected: String,
        /// What deserializing it said.
        message: String,
    },
    /// A task's weight is negative, NaN or infinite.
    #[error("task `{task}`: weight must be a finite number >= 0, got {weight}")]
    InvalidWeight {
        /// Task.
        task: String,
        /// The weight given.
        weight: f64,
    },
    /// A task's timeout is zero.
    #[error("task `{task}`: timeout must be longer than zero")]
    InvalidTimeout {
        /// Task.
        task: String,
    },
}

/// The fix for an argument no parameter takes: the parameters to choose from.
fn parameter_fix(argument: &str, parameters: &[String]) -> String {
    if parameters.is_empty() {
        return format!("it takes no arguments: remove `{argument}` from the task's .args(..)");
    }
    let names: Vec<String> = parameters.iter().map(|p| format!("`{p}`")).collect();
    format!("its parameters are {}: remove `{argument}` from the task's .args(..) or rename it to one of them", names.join(", "))
}

/// What went wrong in a task run: handed to error handlers and written to `cog_error`.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskError {
    /// What kind of failure it was.
    pub kind: TaskErrorKind,
    /// `cog_error.error_type`: the Rust type of the error, or a cog category such as `panic`.
    pub error_type: String,
    /// Human-readable message.
    pub message: String,
    /// A backtrace or panic payload, when there is one.
    pub backtrace: Option<String>,
}

/// The kinds of task failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskErrorKind {
    /// The cog returned `Err`.
    Returned,
    /// The cog panicked.
    Panicked,
    /// The task arguments did not fit the cog's parameters.
    Arguments,
    /// The cog's return value could not be serialized to JSON.
    Result,
    /// The attempt ran longer than the task's timeout.
    TimedOut,
    /// The worker running it stopped renewing its lease (it crashed or hung).
    LeaseExpired,
    /// The task's cog is not compiled into the binary that took the task.
    CogMissing,
}

impl TaskErrorKind {
    /// Whether a failure of this kind may be retried (`max_retries`).
    pub fn retryable(self) -> bool {
        !matches!(self, Self::Arguments | Self::CogMissing | Self::Result)
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error_type, self.message)
    }
}

impl std::error::Error for TaskError {}

/// The task run an error belongs to: handed to two-argument error handlers.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TaskRunInfo {
    /// `cog_task_run.id`.
    pub task_run_id: i64,
    /// `cog_task.id`.
    pub task_id: i64,
    /// The task's name.
    pub task_name: String,
    /// The cog the task calls.
    pub cog: String,
    /// `cog_stage_run.id`.
    pub stage_run_id: i64,
    /// `cog_pipeline_run.id`.
    pub pipeline_run_id: i64,
    /// The pipeline's name.
    pub pipeline: String,
    /// The stage's name.
    pub stage: String,
    /// The failed attempt (1 = first).
    pub attempt: i32,
    /// Whether another attempt is queued.
    pub will_retry: bool,
    /// Whether the task is critical (its failure fails the pipeline run).
    pub critical: bool,
}
