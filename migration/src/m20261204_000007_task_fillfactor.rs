//! Room on `cog_task`'s pages for weight updates (issue 11), PostgreSQL only: with a fill
//! factor of 70 a page keeps 30 % free, so the weight learned at a run's end is written next to
//! the old row version (a "HOT" update: no index is touched, `weight` being in none) instead
//! of on another page with a new entry in each of the table's four indexes. Measured on the
//! first run of a 100,000-task stage: weight learning took 1.39 s at the default fill factor
//! (100, pages packed full) and 0.96–1.09 s at 70. The setting applies to pages filled from
//! now on; existing rows move to roomier pages as they are updated.
//! SQLite has no such setting, and InnoDB's (`innodb_fill_factor`) is the server's.
//! Migration `m20261204_000009_task_room_for_weights` lowers it to 50: at 70 only about a third
//! of a page's rows fit a new version next to the old one.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

/// Sets (up) or resets (down) `cog_task`'s fill factor on PostgreSQL; nothing elsewhere.
pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261204_000007_task_fillfactor"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if db.get_database_backend() == DbBackend::Postgres {
            db.execute_unprepared("ALTER TABLE cog_task SET (fillfactor = 70)").await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if db.get_database_backend() == DbBackend::Postgres {
            db.execute_unprepared("ALTER TABLE cog_task RESET (fillfactor)").await?;
        }
        Ok(())
    }
}
