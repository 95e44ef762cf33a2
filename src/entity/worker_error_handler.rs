//! Entity of table `cog_worker_error_handler`.

use sea_orm::entity::prelude::*;

/// An error handler compiled into a worker.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "cog_worker_error_handler")]
pub struct Model {
    /// The worker (`cog_worker.id`).
    #[sea_orm(primary_key, auto_increment = false)]
    pub worker_id: i64,
    /// The error handler (`cog_error_handler.id`).
    #[sea_orm(primary_key, auto_increment = false)]
    pub error_handler_id: i64,
}

/// No relations are declared; join on the `_id` columns.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
