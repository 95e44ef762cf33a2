//! Entity of table `cog_worker`.

use sea_orm::entity::prelude::*;

/// A started runtime (a worker process): written by `start()`, renewed by its heartbeat,
/// deleted by `shutdown()`. A worker is live while `alive_until` is in the future.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "cog_worker")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The runtime's worker name (as in `cog_task_run.worker`); unique.
    #[sea_orm(unique)]
    pub name: String,
    /// The queues it works on, comma-separated.
    pub queues: String,
    /// When `start()` registered it.
    pub started_at: DateTimeUtc,
    /// Its last heartbeat.
    pub heartbeat_at: DateTimeUtc,
    /// Live until then unless renewed (its heartbeat plus its lease duration).
    pub alive_until: DateTimeUtc,
}

/// No relations are declared; join on the `_id` columns.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
