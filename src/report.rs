//! [`RunReport`]: a readable account of one pipeline run (stages, tasks, durations, statuses).
//!
//! ```no_run
//! # async fn f(rt: cog::CogRuntime, run: cog::RunHandle) -> Result<(), cog::Error> {
//! let report = rt.report(run.id()).await?;
//! println!("{report}");
//! # Ok(()) }
//! ```

use std::fmt;

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;

use crate::entity::status::RunStatus;
use crate::error::Error;
use crate::store::reports;

/// One pipeline run with its stage runs and task runs, as stored.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RunReport {
    /// `cog_pipeline_run.id`.
    pub run_id: i64,
    /// Pipeline name.
    pub pipeline: String,
    /// Run status.
    pub status: RunStatus,
    /// `manual` or `schedule`.
    pub trigger: String,
    /// When it started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub completed_at: Option<DateTime<Utc>>,
    /// Stage runs in start order.
    pub stages: Vec<StageReport>,
}

/// One stage run of a [`RunReport`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StageReport {
    /// Stage name.
    pub name: String,
    /// Stage run status.
    pub status: RunStatus,
    /// When it started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub completed_at: Option<DateTime<Utc>>,
    /// Its task runs, by task position.
    pub tasks: Vec<TaskReport>,
}

/// One task run of a [`StageReport`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TaskReport {
    /// Task name.
    pub name: String,
    /// Task run status.
    pub status: RunStatus,
    /// Attempts started.
    pub attempt: i32,
    /// Duration of the successful attempt.
    pub duration_ms: Option<i64>,
    /// JSON text the cog returned.
    pub result: Option<String>,
    /// The last error.
    pub error: Option<String>,
}

impl RunReport {
    /// How many task runs have each status: `(queued, running, completed, failed, canceled)`.
    pub fn task_counts(&self) -> [usize; 5] {
        let mut counts = [0; 5];
        for task in self.stages.iter().flat_map(|s| &s.tasks) {
            counts[task.status as usize] += 1;
        }
        counts
    }
}

/// Reads run `run_id` from the database.
pub(crate) async fn load(conn: &impl ConnectionTrait, run_id: i64) -> Result<RunReport, Error> {
    let run = reports::run(conn, run_id).await?.ok_or(Error::UnknownRun { id: run_id })?;
    let tasks = reports::task_runs(conn, run_id).await?;
    let stages = reports::stage_runs(conn, run_id).await?;
    Ok(RunReport {
        run_id,
        pipeline: run.pipeline,
        status: run.status,
        trigger: run.trigger.as_str().to_owned(),
        started_at: run.started_at,
        completed_at: run.completed_at,
        stages: stages
            .into_iter()
            .map(|stage| StageReport {
                tasks: tasks
                    .iter()
                    .filter(|t| t.stage_run_id == stage.id)
                    .map(|t| TaskReport {
                        name: t.name.clone(),
                        status: t.status,
                        attempt: t.attempt,
                        duration_ms: t.duration_ms,
                        result: t.result.clone(),
                        error: t.error.clone(),
                    })
                    .collect(),
                name: stage.name,
                status: stage.status,
                started_at: stage.started_at,
                completed_at: stage.completed_at,
            })
            .collect(),
    })
}

/// `12 ms`, `1.25 s`, or `-`.
fn duration(start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) -> String {
    match (start, end) {
        (Some(s), Some(e)) => millis((e - s).num_milliseconds()),
        _ => "-".to_owned(),
    }
}

fn millis(ms: i64) -> String {
    if ms < 1000 { format!("{ms} ms") } else { format!("{:.2} s", ms as f64 / 1000.0) }
}

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "pipeline `{}` run {} ({}): {} in {}",
            self.pipeline,
            self.run_id,
            self.trigger,
            self.status,
            duration(self.started_at, self.completed_at)
        )?;
        for stage in &self.stages {
            writeln!(f, "  stage {:<20} {:<10} {:>9}", stage.name, stage.status.as_str(), duration(stage.started_at, stage.completed_at))?;
            for task in &stage.tasks {
                let time = task.duration_ms.map_or_else(|| "-".to_owned(), millis);
                let detail = match (&task.error, &task.result) {
                    (Some(e), _) if task.status != RunStatus::Completed => format!("error: {e}"),
                    (_, Some(r)) => format!("=> {r}"),
                    _ => String::new(),
                };
                let attempts = if task.attempt > 1 { format!(" (attempt {})", task.attempt) } else { String::new() };
                writeln!(f, "    task {:<19} {:<10} {:>9}  {detail}{attempts}", task.name, task.status.as_str(), time)?;
            }
        }
        Ok(())
    }
}
