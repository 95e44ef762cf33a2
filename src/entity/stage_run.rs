//! Entity of table `cog_stage_run`.

use sea_orm::entity::prelude::*;

use super::status::RunStatus;

/// One run of a stage within a pipeline run (at most one per stage and pipeline run).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "cog_stage_run")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The pipeline run.
    pub pipeline_run_id: i64,
    /// The stage.
    pub stage_id: i64,
    /// Lifecycle status.
    pub status: RunStatus,
    /// When it started.
    pub started_at: Option<DateTimeUtc>,
    /// When it ended (written once).
    pub completed_at: Option<DateTimeUtc>,
    /// While the task runs of a big stage are still being queued (a chunk at a time): the id
    /// of the last task whose task run is queued. `None` once every task run exists.
    pub fill_after: Option<i64>,
    /// Until when the process queueing the rest holds that job (`None`: nobody holds it).
    pub fill_lease_until: Option<DateTimeUtc>,
}

/// No relations are declared; join on the `_id` columns.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
