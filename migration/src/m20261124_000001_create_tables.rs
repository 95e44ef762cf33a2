//! The first schema: every table of DESIGN.md "Data model", written once for every backend
//! (SQLite, PostgreSQL, MySQL 8 / MariaDB 10.6+) with a few per-backend column types.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

/// Creates (up) or drops (down) every `cog_` table.
pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261124_000001_create_tables"
    }
}

/// The tables in creation order; `down` drops them in reverse.
const TABLES: &[&str] = &[
    "cog_cog",
    "cog_error_handler",
    "cog_queue",
    "cog_pipeline",
    "cog_stage",
    "cog_stage_prerequisite",
    "cog_task",
    "cog_pipeline_run",
    "cog_stage_run",
    "cog_task_run",
    "cog_error",
    "cog_lock",
];

/// The schema with placeholders to fill per backend: `{ID}` (auto-increment 64-bit key), `{TS}`
/// (UTC timestamp), `{NAME}` (short text that may be indexed: names, statuses, queues),
/// `{LONG}` (JSON and messages of any length) and `{TRIGGER}` (the quoted column name
/// `trigger`, a reserved word).
const SCHEMA: &str = r#"
CREATE TABLE cog_cog (
    id {ID},
    name {NAME} NOT NULL UNIQUE,
    module {NAME} NOT NULL,
    present BOOLEAN NOT NULL,
    updated_at {TS} NOT NULL
);
CREATE TABLE cog_error_handler (
    id {ID},
    name {NAME} NOT NULL UNIQUE,
    module {NAME} NOT NULL,
    present BOOLEAN NOT NULL,
    updated_at {TS} NOT NULL
);
CREATE TABLE cog_queue (
    id {ID},
    name {NAME} NOT NULL UNIQUE
);
INSERT INTO cog_queue (name) VALUES ('default');
CREATE TABLE cog_pipeline (
    id {ID},
    name {NAME} NOT NULL UNIQUE,
    enabled BOOLEAN NOT NULL,
    schedule {NAME} NULL,
    timezone {NAME} NOT NULL,
    prevent_overlap BOOLEAN NOT NULL,
    last_tick {TS} NULL,
    refused_ticks BIGINT NOT NULL DEFAULT 0,
    skipped_ticks BIGINT NOT NULL DEFAULT 0,
    created_at {TS} NOT NULL,
    updated_at {TS} NOT NULL
);
CREATE TABLE cog_stage (
    id {ID},
    pipeline_id BIGINT NOT NULL REFERENCES cog_pipeline (id),
    name {NAME} NOT NULL,
    enabled BOOLEAN NOT NULL,
    archived BOOLEAN NOT NULL,
    position INTEGER NOT NULL,
    UNIQUE (pipeline_id, name)
);
CREATE TABLE cog_stage_prerequisite (
    stage_id BIGINT NOT NULL REFERENCES cog_stage (id),
    prerequisite_id BIGINT NOT NULL REFERENCES cog_stage (id),
    PRIMARY KEY (stage_id, prerequisite_id)
);
CREATE INDEX cog_stage_prerequisite_prerequisite ON cog_stage_prerequisite (prerequisite_id);
CREATE TABLE cog_task (
    id {ID},
    stage_id BIGINT NOT NULL REFERENCES cog_stage (id),
    name {NAME} NOT NULL,
    cog_id BIGINT NOT NULL REFERENCES cog_cog (id),
    arguments {LONG} NOT NULL,
    queue_id BIGINT NOT NULL REFERENCES cog_queue (id),
    weight DOUBLE PRECISION NOT NULL,
    critical BOOLEAN NOT NULL,
    error_handler_id BIGINT NULL REFERENCES cog_error_handler (id),
    enabled BOOLEAN NOT NULL,
    archived BOOLEAN NOT NULL,
    max_retries INTEGER NOT NULL,
    timeout_ms BIGINT NULL,
    position INTEGER NOT NULL,
    UNIQUE (stage_id, name)
);
CREATE TABLE cog_pipeline_run (
    id {ID},
    pipeline_id BIGINT NOT NULL REFERENCES cog_pipeline (id),
    status {NAME} NOT NULL,
    {TRIGGER} {NAME} NOT NULL,
    scheduled_for {TS} NULL,
    arguments {LONG} NOT NULL,
    created_at {TS} NOT NULL,
    started_at {TS} NULL,
    completed_at {TS} NULL,
    UNIQUE (pipeline_id, scheduled_for)
);
CREATE INDEX cog_pipeline_run_pipeline_status ON cog_pipeline_run (pipeline_id, status);
CREATE TABLE cog_stage_run (
    id {ID},
    pipeline_run_id BIGINT NOT NULL REFERENCES cog_pipeline_run (id),
    stage_id BIGINT NOT NULL REFERENCES cog_stage (id),
    status {NAME} NOT NULL,
    started_at {TS} NULL,
    completed_at {TS} NULL,
    UNIQUE (pipeline_run_id, stage_id)
);
CREATE TABLE cog_task_run (
    id {ID},
    stage_run_id BIGINT NOT NULL REFERENCES cog_stage_run (id),
    task_id BIGINT NOT NULL REFERENCES cog_task (id),
    status {NAME} NOT NULL,
    queue {NAME} NOT NULL,
    weight DOUBLE PRECISION NOT NULL,
    attempt INTEGER NOT NULL,
    worker {NAME} NULL,
    lease_until {TS} NULL,
    run_after {TS} NOT NULL,
    started_at {TS} NULL,
    completed_at {TS} NULL,
    duration_ms BIGINT NULL,
    result {LONG} NULL,
    error {LONG} NULL,
    UNIQUE (stage_run_id, task_id)
);
CREATE INDEX cog_task_run_claim ON cog_task_run (status, queue, weight DESC, id);
CREATE INDEX cog_task_run_task ON cog_task_run (task_id, status, id);
CREATE INDEX cog_task_run_stage_status ON cog_task_run (stage_run_id, status);
CREATE TABLE cog_error (
    id {ID},
    task_run_id BIGINT NOT NULL REFERENCES cog_task_run (id),
    attempt INTEGER NOT NULL,
    error_type {NAME} NOT NULL,
    message {LONG} NOT NULL,
    backtrace {LONG} NULL,
    created_at {TS} NOT NULL
);
CREATE INDEX cog_error_task_run ON cog_error (task_run_id);
CREATE TABLE cog_lock (
    name {NAME} NOT NULL PRIMARY KEY,
    holder {NAME} NOT NULL,
    lease_until {TS} NOT NULL
);
"#;

/// The schema's statements for one backend.
fn statements(backend: DbBackend) -> Result<Vec<String>, DbErr> {
    let (id, ts, name, long, trigger) = match backend {
        DbBackend::Sqlite => ("INTEGER PRIMARY KEY AUTOINCREMENT", "TEXT", "TEXT", "TEXT", "\"trigger\""),
        DbBackend::Postgres => ("BIGSERIAL PRIMARY KEY", "TIMESTAMPTZ", "TEXT", "TEXT", "\"trigger\""),
        // MySQL indexes only bounded text (255 characters of utf8mb4 stay within InnoDB's
        // 3,072-byte key limit, even in the four-column claim index); DATETIME(6) holds UTC
        // (sqlx sets the session time zone to +00:00).
        DbBackend::MySql => ("BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY", "DATETIME(6)", "VARCHAR(255)", "LONGTEXT", "`trigger`"),
        other => return Err(DbErr::Migration(format!("cog supports SQLite, PostgreSQL and MySQL/MariaDB, not {other:?}"))),
    };
    let sql = SCHEMA.replace("{ID}", id).replace("{TS}", ts).replace("{NAME}", name).replace("{LONG}", long).replace("{TRIGGER}", trigger);
    Ok(sql
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| match backend {
            // Names compare exactly (binary collation), as on SQLite and PostgreSQL: `Load` and
            // `load` are two stages. Foreign keys need InnoDB.
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
        for table in TABLES.iter().rev() {
            db.execute_unprepared(&format!("DROP TABLE IF EXISTS {table}")).await?;
        }
        Ok(())
    }
}
