//! Entity of table `cog_stage_prerequisite`.

use sea_orm::entity::prelude::*;

/// An edge: `stage_id` starts only after `prerequisite_id` completed.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "cog_stage_prerequisite")]
pub struct Model {
    /// The stage.
    #[sea_orm(primary_key, auto_increment = false)]
    pub stage_id: i64,
    /// The stage it waits for.
    #[sea_orm(primary_key, auto_increment = false)]
    pub prerequisite_id: i64,
}

/// No relations are declared; join on the `_id` columns.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
