//! `cog_cog.parameters`: each cog's parameters (JSON: name, type, optional), written by the
//! workers that carry it, so a dashboard without the cog compiled in can show them.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

/// Adds (up) or drops (down) `cog_cog.parameters`.
pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261203_000004_cog_parameters"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let long_text = match db.get_database_backend() {
            DbBackend::Sqlite | DbBackend::Postgres => "TEXT",
            DbBackend::MySql => "LONGTEXT",
            other => return Err(DbErr::Migration(format!("cog supports SQLite, PostgreSQL and MySQL/MariaDB, not {other:?}"))),
        };
        db.execute_unprepared(&format!("ALTER TABLE cog_cog ADD COLUMN parameters {long_text} NULL")).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared("ALTER TABLE cog_cog DROP COLUMN parameters").await?;
        Ok(())
    }
}
