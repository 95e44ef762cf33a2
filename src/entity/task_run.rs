//! Entity of table `cog_task_run`.

use sea_orm::entity::prelude::*;

use super::status::RunStatus;

/// One run of a task within a stage run, across its attempts.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "cog_task_run")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The stage run.
    pub stage_run_id: i64,
    /// The task.
    pub task_id: i64,
    /// Lifecycle status.
    pub status: RunStatus,
    /// Name of the queue it waits on.
    pub queue: String,
    /// Seconds it is expected to take; heavier task runs are taken first.
    pub weight: f64,
    /// Attempts started so far.
    pub attempt: i32,
    /// The worker running it.
    pub worker: Option<String>,
    /// When the worker's claim expires unless renewed.
    pub lease_until: Option<DateTimeUtc>,
    /// Not claimed before this time (retry back-off).
    pub run_after: DateTimeUtc,
    /// When it started.
    pub started_at: Option<DateTimeUtc>,
    /// When it ended (written once).
    pub completed_at: Option<DateTimeUtc>,
    /// Run time of the successful attempt.
    pub duration_ms: Option<i64>,
    /// JSON text the cog returned.
    #[sea_orm(column_type = "Text")]
    pub result: Option<String>,
    /// Last error message.
    #[sea_orm(column_type = "Text")]
    pub error: Option<String>,
}

/// No relations are declared; join on the `_id` columns.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
