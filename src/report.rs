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

use crate::db::{query_all, query_one};
use crate::entity::status::RunStatus;
use crate::error::Error;

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

fn parse_status(text: &str, table: &'static str) -> Result<RunStatus, Error> {
    RunStatus::parse(text).ok_or_else(|| Error::Corrupt { table, column: "status", value: text.to_owned() })
}

/// Reads run `run_id` from the database.
pub(crate) async fn load(conn: &impl ConnectionTrait, run_id: i64) -> Result<RunReport, Error> {
    let run = query_one(
        conn,
        "SELECT p.name, r.status, r.\"trigger\", r.started_at, r.completed_at FROM cog_pipeline_run r JOIN cog_pipeline p ON p.id = r.pipeline_id WHERE r.id = $1",
        [run_id.into()],
    )
    .await?
    .ok_or(Error::UnknownRun { id: run_id })?;
    let mut report = RunReport {
        run_id,
        pipeline: run.try_get_by_index(0)?,
        status: parse_status(&run.try_get_by_index::<String>(1)?, "cog_pipeline_run")?,
        trigger: run.try_get_by_index(2)?,
        started_at: run.try_get_by_index(3)?,
        completed_at: run.try_get_by_index(4)?,
        stages: Vec::new(),
    };
    let stages = query_all(
        conn,
        "SELECT sr.id, s.name, sr.status, sr.started_at, sr.completed_at FROM cog_stage_run sr JOIN cog_stage s ON s.id = sr.stage_id \
         WHERE sr.pipeline_run_id = $1 ORDER BY sr.id",
        [run_id.into()],
    )
    .await?;
    let tasks = query_all(
        conn,
        "SELECT tr.stage_run_id, t.name, tr.status, tr.attempt, tr.duration_ms, tr.result, tr.error FROM cog_task_run tr \
         JOIN cog_task t ON t.id = tr.task_id JOIN cog_stage_run sr ON sr.id = tr.stage_run_id WHERE sr.pipeline_run_id = $1 ORDER BY t.position, tr.id",
        [run_id.into()],
    )
    .await?;
    for stage in stages {
        let stage_run_id: i64 = stage.try_get_by_index(0)?;
        let mut stage_tasks = Vec::new();
        for task in tasks.iter().filter(|t| t.try_get_by_index::<i64>(0).ok() == Some(stage_run_id)) {
            stage_tasks.push(TaskReport {
                name: task.try_get_by_index(1)?,
                status: parse_status(&task.try_get_by_index::<String>(2)?, "cog_task_run")?,
                attempt: task.try_get_by_index(3)?,
                duration_ms: task.try_get_by_index(4)?,
                result: task.try_get_by_index(5)?,
                error: task.try_get_by_index(6)?,
            });
        }
        report.stages.push(StageReport {
            name: stage.try_get_by_index(1)?,
            status: parse_status(&stage.try_get_by_index::<String>(2)?, "cog_stage_run")?,
            started_at: stage.try_get_by_index(3)?,
            completed_at: stage.try_get_by_index(4)?,
            tasks: stage_tasks,
        });
    }
    Ok(report)
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
