//! Stages queued in chunks (issue 11): `cog_stage_run.fill_after` is the id of the last task
//! whose task run is queued while the stage run's other task runs are still to be queued (NULL
//! once every task run exists), and `cog_stage_run.fill_lease_until` is until when the process
//! queueing them holds the job (NULL: nobody holds it; any process may take it). The index
//! finds the stage runs still filling, a handful among all of history.
//!
//! Two indexes on `cog_task` serve big stages too: `(stage_id, id)`, the order in which a
//! stage's task runs are queued (each chunk reads only its own tasks, where the unique
//! `(stage_id, name)` index made every chunk read and sort all the stage's tasks), and
//! `(cog_id)`, by which a launch reads only the tasks of cogs that take parameters (not on
//! MySQL/MariaDB: MariaDB has that one already, for migration 000001's foreign key; MySQL 8,
//! which ignores that migration's inline `REFERENCES`, has neither the key nor the index).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

/// Adds (up) or drops (down) the fill columns of `cog_stage_run` and their index.
pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261204_000006_stage_fill"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        // SQLite and PostgreSQL index only the rows still filling; MySQL has no partial index.
        let (ts, index) = match db.get_database_backend() {
            DbBackend::Sqlite => ("TEXT", "CREATE INDEX cog_stage_run_fill ON cog_stage_run (fill_after) WHERE fill_after IS NOT NULL"),
            DbBackend::Postgres => ("TIMESTAMPTZ", "CREATE INDEX cog_stage_run_fill ON cog_stage_run (fill_after) WHERE fill_after IS NOT NULL"),
            DbBackend::MySql => ("DATETIME(6)", "CREATE INDEX cog_stage_run_fill ON cog_stage_run (fill_after)"),
            other => return Err(DbErr::Migration(format!("cog supports SQLite, PostgreSQL and MySQL/MariaDB, not {other:?}"))),
        };
        db.execute_unprepared("ALTER TABLE cog_stage_run ADD COLUMN fill_after BIGINT NULL").await?;
        db.execute_unprepared(&format!("ALTER TABLE cog_stage_run ADD COLUMN fill_lease_until {ts} NULL")).await?;
        db.execute_unprepared(index).await?;
        db.execute_unprepared("CREATE INDEX cog_task_stage_order ON cog_task (stage_id, id)").await?;
        if db.get_database_backend() != DbBackend::MySql {
            db.execute_unprepared("CREATE INDEX cog_task_cog ON cog_task (cog_id)").await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        // MySQL names the index's table; SQLite and PostgreSQL do not.
        if db.get_database_backend() == DbBackend::MySql {
            db.execute_unprepared("DROP INDEX cog_task_stage_order ON cog_task").await?;
            db.execute_unprepared("DROP INDEX cog_stage_run_fill ON cog_stage_run").await?;
        } else {
            db.execute_unprepared("DROP INDEX cog_task_cog").await?;
            db.execute_unprepared("DROP INDEX cog_task_stage_order").await?;
            db.execute_unprepared("DROP INDEX cog_stage_run_fill").await?;
        }
        db.execute_unprepared("ALTER TABLE cog_stage_run DROP COLUMN fill_lease_until").await?;
        db.execute_unprepared("ALTER TABLE cog_stage_run DROP COLUMN fill_after").await?;
        Ok(())
    }
}
