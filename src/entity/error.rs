//! Entity of table `cog_error`.

use sea_orm::entity::prelude::*;

/// An error recorded for one attempt of a task run (or for a failing error handler).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "cog_error")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The task run.
    pub task_run_id: i64,
    /// Attempts started so far.
    pub attempt: i32,
    /// Rust type or category of the error.
    pub error_type: String,
    /// The error message.
    #[sea_orm(column_type = "Text")]
    pub message: String,
    /// Backtrace or panic payload.
    #[sea_orm(column_type = "Text")]
    pub backtrace: Option<String>,
    /// When it was created (UTC).
    pub created_at: DateTimeUtc,
}

/// No relations are declared; join on the `_id` columns.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
