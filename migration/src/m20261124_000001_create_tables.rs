//! The first schema: every table of DESIGN.md "Data model", written once for both backends.

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

/// The schema with `{ID}` (auto-increment 64-bit key) and `{TS}` (UTC timestamp) to fill per backend.
const SCHEMA: &str = r#"
CREATE TABLE cog_cog (
    id {ID},
    name TEXT NOT NULL UNIQUE,
    module TEXT NOT NULL,
    present BOOLEAN NOT NULL,
    updated_at {TS} NOT NULL
);
CREATE TABLE cog_error_handler (
    id {ID},
    name TEXT NOT NULL UNIQUE,
    module TEXT NOT NULL,
    present BOOLEAN NOT NULL,
    updated_at {TS} NOT NULL
);
CREATE TABLE cog_queue (
    id {ID},
    name TEXT NOT NULL UNIQUE
);
INSERT INTO cog_queue (name) VALUES ('default');
CREATE TABLE cog_pipeline (
    id {ID},
    name TEXT NOT NULL UNIQUE,
    enabled BOOLEAN NOT NULL,
    schedule TEXT NULL,
    timezone TEXT NOT NULL,
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
    name TEXT NOT NULL,
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
    name TEXT NOT NULL,
    cog_id BIGINT NOT NULL REFERENCES cog_cog (id),
    arguments TEXT NOT NULL,
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
    status TEXT NOT NULL,
    "trigger" TEXT NOT NULL,
    scheduled_for {TS} NULL,
    arguments TEXT NOT NULL,
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
    status TEXT NOT NULL,
    started_at {TS} NULL,
    completed_at {TS} NULL,
    UNIQUE (pipeline_run_id, stage_id)
);
CREATE TABLE cog_task_run (
    id {ID},
    stage_run_id BIGINT NOT NULL REFERENCES cog_stage_run (id),
    task_id BIGINT NOT NULL REFERENCES cog_task (id),
    status TEXT NOT NULL,
    queue TEXT NOT NULL,
    weight DOUBLE PRECISION NOT NULL,
    attempt INTEGER NOT NULL,
    worker TEXT NULL,
    lease_until {TS} NULL,
    run_after {TS} NOT NULL,
    started_at {TS} NULL,
    completed_at {TS} NULL,
    duration_ms BIGINT NULL,
    result TEXT NULL,
    error TEXT NULL,
    UNIQUE (stage_run_id, task_id)
);
CREATE INDEX cog_task_run_claim ON cog_task_run (status, queue, weight DESC, id);
CREATE INDEX cog_task_run_task ON cog_task_run (task_id, status, id);
CREATE INDEX cog_task_run_stage_status ON cog_task_run (stage_run_id, status);
CREATE TABLE cog_error (
    id {ID},
    task_run_id BIGINT NOT NULL REFERENCES cog_task_run (id),
    attempt INTEGER NOT NULL,
    error_type TEXT NOT NULL,
    message TEXT NOT NULL,
    backtrace TEXT NULL,
    created_at {TS} NOT NULL
);
CREATE INDEX cog_error_task_run ON cog_error (task_run_id);
CREATE TABLE cog_lock (
    name TEXT NOT NULL PRIMARY KEY,
    holder TEXT NOT NULL,
    lease_until {TS} NOT NULL
);
"#;

/// The schema's statements for one backend.
fn statements(backend: DbBackend) -> Result<Vec<String>, DbErr> {
    let (id, ts) = match backend {
        DbBackend::Sqlite => ("INTEGER PRIMARY KEY AUTOINCREMENT", "TEXT"),
        DbBackend::Postgres => ("BIGSERIAL PRIMARY KEY", "TIMESTAMPTZ"),
        other => return Err(DbErr::Migration(format!("cog supports SQLite and PostgreSQL, not {other:?}"))),
    };
    let sql = SCHEMA.replace("{ID}", id).replace("{TS}", ts);
    Ok(sql.split(';').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
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
