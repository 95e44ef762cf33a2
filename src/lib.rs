#![doc = include_str!("../README.md")]

pub mod entity;
pub mod health;
pub mod history;
pub mod metrics;
pub mod registry;
pub mod report;
pub mod runtime;
pub mod scheduler;
pub mod spec;

mod arguments;
mod config;
mod context;
mod control;
mod definitions;
mod engine;
mod error;
mod signals;
mod store;
mod supervisor;
mod worker;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use cog_macros::{cog, cog_error_handler};
pub use config::{Config, MissedTicks};
pub use context::TaskContext;
pub use control::prune::PruneReport;
pub use control::queues::QueueState;
pub use entity::status::{RunStatus, Trigger};
pub use error::{DefinitionError, Error, LaunchRefusal, MAX_NAME_CHARS, Result, TaskError, TaskErrorKind, TaskRunInfo};
pub use health::{Health, LoopHealth, LoopState};
pub use report::RunReport;
pub use runtime::{CogRuntime, CogRuntimeBuilder, RunHandle};
pub use scheduler::ManualClock;
pub use spec::{Overlap, PipelineSpec, StageSpec, TaskSpec};

/// The migrator of cog's tables (`up` and `down`), for hosts that manage migrations themselves.
pub use cog_migration as migration;

/// Applies cog's migrations to `db` (creating every `cog_` table and the `cog_migrations`
/// table); `CogRuntime::builder().build()` does this itself.
///
/// On PostgreSQL the migrations run in one transaction under an advisory lock, on MySQL under a
/// named lock, so processes starting together against an empty database do not race to create
/// the tables.
pub async fn migrate(db: &sea_orm::DatabaseConnection) -> Result<(), sea_orm::DbErr> {
    store::migrate(db).await
}
