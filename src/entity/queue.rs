//! Entity of table `cog_queue`.

use sea_orm::entity::prelude::*;

/// A named queue; `default` is created by the migration.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "cog_queue")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Unique name.
    #[sea_orm(unique)]
    pub name: String,
    /// No process claims task runs of a paused queue.
    pub paused: bool,
    /// Bumped by every pause and resume (a change counter for processes without notifications).
    pub version: i64,
}

/// No relations are declared; join on the `_id` columns.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
