//! Room on `cog_task`'s pages for a new version of every row (issue 11), PostgreSQL only: a
//! fill factor of 50 instead of migration 000007's 70. A run's end sets the learned weight of
//! each task that ran; when a run covers most rows of a page (a stage of many tasks), every row
//! of the page gets a new version at once. With 30 % free, about a third of them fit on the
//! page (a "HOT" update, touching no index) and the others moved to other pages with a new entry
//! in each of the table's four indexes; with half the page free, all of them fit. Measured on
//! the first run of a 100,000-task stage: the weights' statement took 1.26 s at 70 (386,000 WAL
//! records) and 0.59 s at 50 (100,000 records). The setting applies to pages filled from now
//! on; existing rows move to roomier pages as they are updated.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

/// Sets (up) `cog_task`'s fill factor to 50 on PostgreSQL, or back (down) to 70; nothing
/// elsewhere.
pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261204_000009_task_room_for_weights"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if db.get_database_backend() == DbBackend::Postgres {
            db.execute_unprepared("ALTER TABLE cog_task SET (fillfactor = 50)").await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if db.get_database_backend() == DbBackend::Postgres {
            db.execute_unprepared("ALTER TABLE cog_task SET (fillfactor = 70)").await?;
        }
        Ok(())
    }
}
