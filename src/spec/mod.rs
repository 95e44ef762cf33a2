//! Pipeline definitions: [`PipelineSpec`], [`StageSpec`] and [`TaskSpec`], saved with `CogRuntime::define`.
//!
//! ```
//! use cog::{PipelineSpec, StageSpec, TaskSpec};
//! use serde_json::json;
//!
//! let spec = PipelineSpec::new("nightly")
//!     .schedule("0 3 * * *")
//!     .timezone("Europe/Paris")
//!     .stage(StageSpec::new("extract").task(TaskSpec::new("add").name("add_1").args(json!({"a": 1, "b": 2}))))
//!     .stage(StageSpec::new("load").after(["extract"]).task(TaskSpec::new("add").critical(false)));
//! ```

mod overlap;
mod validate;

use std::time::Duration;

use serde_json::Value;

pub use overlap::Overlap;
pub(crate) use validate::validate;

/// A pipeline: named, optionally scheduled, made of stages.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineSpec {
    pub(crate) name: String,
    pub(crate) enabled: bool,
    pub(crate) schedule: Option<String>,
    pub(crate) timezone: String,
    pub(crate) overlap: Overlap,
    pub(crate) stages: Vec<StageSpec>,
}

impl PipelineSpec {
    /// A new enabled pipeline without schedule, in time zone UTC, with overlap policy
    /// [`Overlap::Skip`] (`prevent_overlap` on).
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), enabled: true, schedule: None, timezone: "UTC".to_owned(), overlap: Overlap::Skip, stages: Vec::new() }
    }

    /// Launches the pipeline on this cron schedule: 5-field crontab
    /// (`minute hour day-of-month month day-of-week`), or 6/7 fields with seconds first.
    /// Without a call to `schedule`, `define` takes the pipeline off the schedule.
    pub fn schedule(mut self, cron: impl Into<String>) -> Self {
        self.schedule = Some(cron.into());
        self
    }

    /// The IANA time zone the schedule is read in (default `UTC`).
    pub fn timezone(mut self, tz: impl Into<String>) -> Self {
        self.timezone = tz.into();
        self
    }

    /// Whether a launch is refused while a run of this pipeline has not ended (default true):
    /// `true` is [`Overlap::Skip`], `false` is [`Overlap::Allow`].
    pub fn prevent_overlap(mut self, prevent: bool) -> Self {
        self.overlap = if prevent { Overlap::Skip } else { Overlap::Allow };
        self
    }

    /// What a launch does while a run of this pipeline is active (default [`Overlap::Skip`]);
    /// see [`Overlap`]. Scheduled launches and retries follow it too.
    pub fn overlap(mut self, policy: Overlap) -> Self {
        self.overlap = policy;
        self
    }

    /// A disabled pipeline is never launched by its schedule; manual launches still work.
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// Adds a stage.
    pub fn stage(mut self, stage: StageSpec) -> Self {
        self.stages.push(stage);
        self
    }

    /// The pipeline's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A stage: a set of tasks run in parallel, started once every prerequisite stage completed.
#[derive(Debug, Clone, PartialEq)]
pub struct StageSpec {
    pub(crate) name: String,
    pub(crate) after: Vec<String>,
    pub(crate) tasks: Vec<TaskSpec>,
    pub(crate) enabled: bool,
}

impl StageSpec {
    /// A new enabled stage with no prerequisites (it starts when the pipeline starts).
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), after: Vec::new(), tasks: Vec::new(), enabled: true }
    }

    /// Stages of the same pipeline that must complete before this one starts.
    pub fn after<I, S>(mut self, stages: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.after.extend(stages.into_iter().map(Into::into));
        self
    }

    /// Adds a task.
    pub fn task(mut self, task: TaskSpec) -> Self {
        self.tasks.push(task);
        self
    }

    /// A disabled stage runs none of its tasks and completes at once, so its successors still run.
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }
}

/// A task: one call of a cog with JSON arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSpec {
    pub(crate) cog: String,
    pub(crate) name: Option<String>,
    pub(crate) args: Value,
    pub(crate) queue: String,
    pub(crate) weight: Option<f64>,
    pub(crate) critical: bool,
    pub(crate) error_handler: Option<String>,
    pub(crate) enabled: bool,
    pub(crate) max_retries: u32,
    pub(crate) timeout: Option<Duration>,
}

impl TaskSpec {
    /// A task calling cog `cog`, named after it, with no arguments, on queue `default`,
    /// weight 1.0, critical, no retries, no timeout.
    pub fn new(cog: impl Into<String>) -> Self {
        Self {
            cog: cog.into(),
            name: None,
            args: Value::Object(Default::default()),
            queue: "default".to_owned(),
            weight: None,
            critical: true,
            error_handler: None,
            enabled: true,
            max_retries: 0,
            timeout: None,
        }
    }

    /// The task's name, unique within its stage (default: the cog's name).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Arguments: a JSON object whose keys are the cog's parameter names.
    pub fn args(mut self, args: Value) -> Self {
        self.args = args;
        self
    }

    /// The queue the task waits on; a queue named for the first time is created.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// Expected duration in seconds (default 1.0); heavier task runs are taken first.
    /// Left unset, a redefinition keeps the weight learned from past runs.
    pub fn weight(mut self, weight: f64) -> Self {
        self.weight = Some(weight);
        self
    }

    /// Whether a failure of this task fails the pipeline run (default true).
    pub fn critical(mut self, critical: bool) -> Self {
        self.critical = critical;
        self
    }

    /// The `#[cog_error_handler]` called when an attempt fails, by name.
    pub fn error_handler(mut self, handler: impl Into<String>) -> Self {
        self.error_handler = Some(handler.into());
        self
    }

    /// A disabled task is left out of new runs.
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// Attempts after the first one when an attempt fails (default 0).
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// Fails an attempt that runs longer than this.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The task's name: the one given, or the cog's.
    pub fn task_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.cog)
    }
}
