//! Entity of table `cog_stage`.

use sea_orm::entity::prelude::*;

/// A stage of a pipeline; `archived` stages were left out of the latest definition and never run.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "cog_stage")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The pipeline.
    pub pipeline_id: i64,
    /// Unique name.
    pub name: String,
    /// Disabled ones are skipped.
    pub enabled: bool,
    /// Left out of the latest definition: kept for history, never run.
    pub archived: bool,
    /// Order in the definition.
    pub position: i32,
}

/// No relations are declared; join on the `_id` columns.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
