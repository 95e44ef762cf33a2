//! Database migrations of cog: every `cog_` table, its indexes and the `default` queue row.
//!
//! Applied by `CogRuntime::builder().build()` and by `cog::migrate(&db)`; the
//! migrations table is `cog_migrations`, beside the host's own tables.

pub use sea_orm_migration::MigratorTrait;
pub use sea_orm_migration::prelude::*;

mod m20261124_000001_create_tables;
mod m20261124_000002_admin;
mod m20261124_000003_run_control;
mod m20261203_000004_cog_parameters;
mod m20261203_000005_active_indexes;
mod m20261204_000006_stage_fill;
mod m20261204_000007_task_fillfactor;
mod m20261204_000008_duration_index;
mod m20261204_000009_task_room_for_weights;
mod m20261204_000010_task_run_parents_unlocked;
mod m20261205_000011_retry_index;
mod m20261206_000012_stage_run_parents_unlocked;
mod m20261206_000013_lease_index_folded;
mod parent_keys;
mod partial_indexes;

/// The migrator of cog's tables.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migration_table_name() -> sea_orm::DynIden {
        "cog_migrations".into_iden()
    }

    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_create_tables::Migration),
            Box::new(m20261124_000002_admin::Migration),
            Box::new(m20261124_000003_run_control::Migration),
            Box::new(m20261203_000004_cog_parameters::Migration),
            Box::new(m20261203_000005_active_indexes::MIGRATION),
            Box::new(m20261204_000006_stage_fill::Migration),
            Box::new(m20261204_000007_task_fillfactor::Migration),
            Box::new(m20261204_000008_duration_index::MIGRATION),
            Box::new(m20261204_000009_task_room_for_weights::Migration),
            Box::new(m20261204_000010_task_run_parents_unlocked::MIGRATION),
            Box::new(m20261205_000011_retry_index::MIGRATION),
            Box::new(m20261206_000012_stage_run_parents_unlocked::MIGRATION),
            Box::new(m20261206_000013_lease_index_folded::MIGRATION),
        ]
    }
}
