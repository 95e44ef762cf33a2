//! Entity of table `cog_worker_cog`.

use sea_orm::entity::prelude::*;

/// A cog compiled into a worker: "present" means carried by a live worker.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "cog_worker_cog")]
pub struct Model {
    /// The worker (`cog_worker.id`).
    #[sea_orm(primary_key, auto_increment = false)]
    pub worker_id: i64,
    /// The cog (`cog_cog.id`).
    #[sea_orm(primary_key, auto_increment = false)]
    pub cog_id: i64,
}

/// No relations are declared; join on the `_id` columns.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
