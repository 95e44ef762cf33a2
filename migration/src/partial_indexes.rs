//! Running a migration's index statements where partial indexes exist: SQLite and PostgreSQL.

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
