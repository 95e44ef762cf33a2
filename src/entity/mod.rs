//! SeaORM entities of cog's tables, one module per table, for hosts that query run history.
//!
//! ```no_run
//! # async fn f(db: sea_orm::DatabaseConnection) -> Result<(), sea_orm::DbErr> {
//! use cog::entity::pipeline_run;
//! use sea_orm::EntityTrait;
//! let runs = pipeline_run::Entity::find().all(&db).await?;
//! # Ok(()) }
//! ```

pub mod cog;
pub mod error;
pub mod error_handler;
pub mod lock;
pub mod pipeline;
pub mod pipeline_run;
pub mod queue;
pub mod stage;
pub mod stage_prerequisite;
pub mod stage_run;
pub mod status;
pub mod task;
pub mod task_run;
pub mod worker;
pub mod worker_cog;
pub mod worker_error_handler;
