//! Entity of table `cog_cog`.

use sea_orm::entity::prelude::*;

/// A registered cog's row: `present` tells whether the running binary has it.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "cog_cog")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Unique name.
    #[sea_orm(unique)]
    pub name: String,
    /// Rust module that defines it.
    pub module: String,
    /// Whether a live worker carries it.
    pub present: bool,
    /// Its parameters as JSON (`[{"name", "type_name", "optional"}]`), written by the workers
    /// that carry it; `None` until one registered.
    pub parameters: Option<String>,
    /// Last sync.
    pub updated_at: DateTimeUtc,
}

/// No relations are declared; join on the `_id` columns.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
