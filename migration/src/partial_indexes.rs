//! Running a migration's index statements where partial indexes exist: SQLite and PostgreSQL;
//! and [`PartialIndexes`], a migration made only of such statements.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

/// Runs `script`'s `;`-separated statements on SQLite and PostgreSQL, one after the other;
/// nothing on MySQL/MariaDB, which has no partial indexes (its full indexes stay as they are).
pub(crate) async fn apply(manager: &SchemaManager<'_>, script: &str) -> Result<(), DbErr> {
    let db = manager.get_connection();
    match db.get_database_backend() {
        DbBackend::Sqlite | DbBackend::Postgres => {
            for statement in script.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                db.execute_unprepared(statement).await?;
            }
            Ok(())
        }
        DbBackend::MySql => Ok(()),
        other => Err(DbErr::Migration(format!("cog supports SQLite, PostgreSQL and MySQL/MariaDB, not {other:?}"))),
    }
}

/// A migration made only of index statements for SQLite and PostgreSQL (see [`apply`]): its
/// name, and the scripts its `up` and `down` run.
pub(crate) struct PartialIndexes {
    /// The migration's name, as recorded in `cog_migrations`.
    pub(crate) name: &'static str,
    /// What `up` runs.
    pub(crate) up: &'static str,
    /// What `down` runs.
    pub(crate) down: &'static str,
}

impl MigrationName for PartialIndexes {
    fn name(&self) -> &str {
        self.name
    }
}

#[async_trait::async_trait]
impl MigrationTrait for PartialIndexes {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        apply(manager, self.up).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        apply(manager, self.down).await
    }
}
