#![doc = include_str!("../README.md")]

pub mod entity;
pub mod registry;
pub mod report;
pub mod runtime;
pub mod scheduler;
pub mod spec;

mod config;
mod context;
mod db;
mod engine;
mod error;
mod schedule;
mod worker;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use cog_macros::{cog, cog_error_handler};
pub use config::Config;
pub use context::TaskContext;
pub use entity::status::{RunStatus, Trigger};
pub use error::{DefinitionError, Error, LaunchRefusal, Result, TaskError, TaskErrorKind, TaskRunInfo};
pub use report::RunReport;
pub use runtime::{CogRuntime, CogRuntimeBuilder, RunHandle};
pub use scheduler::{ManualClock, MissedTicks};
pub use spec::{PipelineSpec, StageSpec, TaskSpec};

/// Applies cog's migrations to `db` (creating every `cog_` table and the `cog_migrations`
/// table); `CogRuntime::builder().build()` does this itself.
pub async fn migrate(db: &sea_orm::DatabaseConnection) -> Result<(), sea_orm::DbErr> {
    use cog_migration::MigratorTrait;
    cog_migration::Migrator::up(db, None).await
}
