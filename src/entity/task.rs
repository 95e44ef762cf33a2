//! Entity of table `cog_task`.

use sea_orm::entity::prelude::*;

/// A task of a stage: which cog it calls, with what arguments, on which queue.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "cog_task")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The stage.
    pub stage_id: i64,
    /// Unique name.
    pub name: String,
    /// The cog called.
    pub cog_id: i64,
    /// JSON object text.
    #[sea_orm(column_type = "Text")]
    pub arguments: String,
    /// Queue.
    pub queue_id: i64,
    /// Seconds it is expected to take; heavier task runs are taken first.
    pub weight: f64,
    /// Whether its failure fails the pipeline run.
    pub critical: bool,
    /// Own error handler, if any.
    pub error_handler_id: Option<i64>,
    /// Disabled ones are skipped.
    pub enabled: bool,
    /// Left out of the latest definition: kept for history, never run.
    pub archived: bool,
    /// Attempts after the first one.
    pub max_retries: i32,
    /// Longest an attempt may run.
    pub timeout_ms: Option<i64>,
    /// Order in the definition.
    pub position: i32,
}

/// No relations are declared; join on the `_id` columns.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
