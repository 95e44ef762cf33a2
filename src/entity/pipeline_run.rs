//! Entity of table `cog_pipeline_run`.

use sea_orm::entity::prelude::*;

use super::status::{RunStatus, Trigger};

/// One run of a pipeline.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "cog_pipeline_run")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The pipeline.
    pub pipeline_id: i64,
    /// Lifecycle status.
    pub status: RunStatus,
    /// What launched it.
    pub trigger: Trigger,
    /// The schedule tick it was fired for.
    pub scheduled_for: Option<DateTimeUtc>,
    /// JSON object text.
    #[sea_orm(column_type = "Text")]
    pub arguments: String,
    /// When it was created (UTC).
    pub created_at: DateTimeUtc,
    /// When it started.
    pub started_at: Option<DateTimeUtc>,
    /// When it ended (written once).
    pub completed_at: Option<DateTimeUtc>,
    /// The run this one retries (`rt.retry`), if any.
    pub retry_of: Option<i64>,
}

/// No relations are declared; join on the `_id` columns.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
