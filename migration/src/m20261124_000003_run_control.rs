//! Run control (issue 9): the overlap policy of a pipeline (`cog_pipeline.overlap`), paused
//! queues (`cog_queue.paused`, and `cog_queue.version`, bumped by every pause and resume so
//! processes without notifications notice), retried runs (`cog_pipeline_run.retry_of`), and
//! the index that finds ended runs by age for pruning.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

/// Adds (up) or drops (down) the run-control columns and the pruning index.
pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261124_000003_run_control"
    }
}

/// The schema with `{NAME}` (short indexable text) to fill per backend.
const SCHEMA: &str = r#"
ALTER TABLE cog_pipeline ADD COLUMN overlap {NAME} NOT NULL DEFAULT 'skip';
UPDATE cog_pipeline SET overlap = 'allow' WHERE NOT prevent_overlap;
ALTER TABLE cog_queue ADD COLUMN paused BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE cog_queue ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE cog_pipeline_run ADD COLUMN retry_of BIGINT NULL;
CREATE INDEX cog_pipeline_run_completed_at ON cog_pipeline_run (completed_at)
"#;

/// The columns `down` drops, with their tables.
const COLUMNS: &[(&str, &str)] = &[("cog_pipeline", "overlap"), ("cog_queue", "paused"), ("cog_queue", "version"), ("cog_pipeline_run", "retry_of")];

/// The schema's statements for one backend.
fn statements(backend: DbBackend) -> Result<Vec<String>, DbErr> {
    let name = match backend {
        DbBackend::Sqlite | DbBackend::Postgres => "TEXT",
        DbBackend::MySql => "VARCHAR(255)",
        other => return Err(DbErr::Migration(format!("cog supports SQLite, PostgreSQL and MySQL/MariaDB, not {other:?}"))),
    };
    Ok(SCHEMA.replace("{NAME}", name).split(';').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for statement in statements(db.get_database_backend())? {
            db.execute_unprepared(&statement).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        // MySQL names the index's table; SQLite and PostgreSQL do not.
        let drop_index = match db.get_database_backend() {
            DbBackend::MySql => "DROP INDEX cog_pipeline_run_completed_at ON cog_pipeline_run",
            _ => "DROP INDEX cog_pipeline_run_completed_at",
        };
        db.execute_unprepared(drop_index).await?;
        for (table, column) in COLUMNS {
            db.execute_unprepared(&format!("ALTER TABLE {table} DROP COLUMN {column}")).await?;
        }
        Ok(())
    }
}
