//! What the admin needs: which workers are alive and which cogs and error handlers each one
//! carries (`cog_worker`, `cog_worker_cog`, `cog_worker_error_handler`), and the indexes that
//! keep run listings fast with hundreds of thousands of runs (keyset paging on `id`).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

/// Creates (up) or drops (down) the worker tables and the listing indexes.
pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261124_000002_admin"
    }
}

/// The schema with `{ID}` (auto-increment 64-bit key), `{TS}` (UTC timestamp) and `{NAME}`
/// (short indexable text) to fill per backend, as in the first migration.
const SCHEMA: &str = r#"
CREATE TABLE cog_worker (
    id {ID},
    name {NAME} NOT NULL UNIQUE,
    queues {NAME} NOT NULL,
    started_at {TS} NOT NULL,
    heartbeat_at {TS} NOT NULL,
    alive_until {TS} NOT NULL
);
CREATE INDEX cog_worker_alive_until ON cog_worker (alive_until);
CREATE TABLE cog_worker_cog (
    worker_id BIGINT NOT NULL REFERENCES cog_worker (id),
    cog_id BIGINT NOT NULL REFERENCES cog_cog (id),
    PRIMARY KEY (worker_id, cog_id)
);
CREATE INDEX cog_worker_cog_cog ON cog_worker_cog (cog_id);
CREATE TABLE cog_worker_error_handler (
    worker_id BIGINT NOT NULL REFERENCES cog_worker (id),
    error_handler_id BIGINT NOT NULL REFERENCES cog_error_handler (id),
    PRIMARY KEY (worker_id, error_handler_id)
);
CREATE INDEX cog_worker_error_handler_handler ON cog_worker_error_handler (error_handler_id);
CREATE INDEX cog_pipeline_run_status_id ON cog_pipeline_run (status, id);
CREATE INDEX cog_pipeline_run_pipeline_id ON cog_pipeline_run (pipeline_id, id);
CREATE INDEX cog_pipeline_run_pipeline_status_id ON cog_pipeline_run (pipeline_id, status, id);
CREATE INDEX cog_pipeline_run_created_at ON cog_pipeline_run (created_at);
CREATE INDEX cog_task_run_completed_at ON cog_task_run (completed_at);
CREATE INDEX cog_error_created_at ON cog_error (created_at)
"#;

/// The tables `down` drops, children first.
const TABLES: &[&str] = &["cog_worker_error_handler", "cog_worker_cog", "cog_worker"];

/// The indexes `down` drops, with their tables.
const INDEXES: &[(&str, &str)] = &[
    ("cog_pipeline_run_status_id", "cog_pipeline_run"),
    ("cog_pipeline_run_pipeline_id", "cog_pipeline_run"),
    ("cog_pipeline_run_pipeline_status_id", "cog_pipeline_run"),
    ("cog_pipeline_run_created_at", "cog_pipeline_run"),
    ("cog_task_run_completed_at", "cog_task_run"),
    ("cog_error_created_at", "cog_error"),
];

/// The column types of one backend: `(id, timestamp, name)`.
fn types(backend: DbBackend) -> Result<(&'static str, &'static str, &'static str), DbErr> {
    Ok(match backend {
        DbBackend::Sqlite => ("INTEGER PRIMARY KEY AUTOINCREMENT", "TEXT", "TEXT"),
        DbBackend::Postgres => ("BIGSERIAL PRIMARY KEY", "TIMESTAMPTZ", "TEXT"),
        DbBackend::MySql => ("BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY", "DATETIME(6)", "VARCHAR(255)"),
        other => return Err(DbErr::Migration(format!("cog supports SQLite, PostgreSQL and MySQL/MariaDB, not {other:?}"))),
    })
}

/// The schema's statements for one backend.
fn statements(backend: DbBackend) -> Result<Vec<String>, DbErr> {
    let (id, ts, name) = types(backend)?;
    let sql = SCHEMA.replace("{ID}", id).replace("{TS}", ts).replace("{NAME}", name);
    Ok(sql
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| match backend {
            DbBackend::MySql if s.starts_with("CREATE TABLE") => format!("{s} ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"),
            _ => s.to_owned(),
        })
        .collect())
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
        for table in TABLES {
            db.execute_unprepared(&format!("DROP TABLE IF EXISTS {table}")).await?;
        }
        for (index, table) in INDEXES {
            // MySQL names the index's table; SQLite and PostgreSQL do not.
            let sql = match db.get_database_backend() {
                DbBackend::MySql => format!("DROP INDEX {index} ON {table}"),
                _ => format!("DROP INDEX {index}"),
            };
            db.execute_unprepared(&sql).await?;
        }
        Ok(())
    }
}
