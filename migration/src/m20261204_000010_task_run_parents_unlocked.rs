//! `cog_task_run` without foreign-key constraints to its parents, `cog_stage_run` and
//! `cog_task`, on PostgreSQL and MariaDB (issue 11). SQLite keeps them: there a check is an
//! index lookup that locks nothing, and dropping a constraint means rebuilding the table.
//! MySQL 8 never had them: it ignores the inline `REFERENCES` of migration 000001 (MariaDB
//! 10.5+ creates them), so there is nothing to drop and `down` adds nothing there.
//!
//! On the server backends each inserted task run checked both parents with a locking read
//! (`FOR KEY SHARE` on PostgreSQL, a shared record lock on InnoDB): per task run two more
//! statements run by a trigger, a lock written into each parent row (a WAL record on
//! PostgreSQL), and, when runs of one pipeline start stages at the same time, a shared lock of
//! several transactions on each `cog_task` row (a MultiXact on PostgreSQL). Measured on
//! PostgreSQL, 4 processes, in alternating pairs: workload E 20,260–20,861 → 22,148–22,738
//! tasks/s (database CPU 66.5–68.7 → 57.7–58.9 µs per task); on MariaDB, workload F 2,672–2,851
//! → 4,513–4,675. In isolation a 40-task stage start spent as long in the two checks (0.63 ms)
//! as in the insert itself (0.62 ms).
//!
//! The parents are kept by cog's own statements instead. Every transaction that inserts task
//! runs (a stage start, a chunk of a big stage's fill, a retry's copy of completed stages)
//! commits only after it has locked their pipeline run and seen it `running` (a fill chunk
//! checks after its insert and rolls back otherwise); a run that has ended never runs again;
//! the prune deletes only ended runs, their errors, then their task runs, then their stage
//! runs; tasks are never deleted (a removed task is archived). The concurrency tests assert
//! that no task run lacks a parent (`tests/support::assert_no_orphans`), one of them with
//! prunes racing stage starts and fills. The other foreign keys stay: their rows are written
//! once per run or stage run, or on failures.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, Statement};

/// Drops (up) `cog_task_run`'s foreign keys to `cog_stage_run` and `cog_task` on PostgreSQL
/// and MariaDB, or adds them back (down); nothing on SQLite, nor on MySQL 8 (it has none).
pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261204_000010_task_run_parents_unlocked"
    }
}

/// The foreign keys dropped: column and parent table.
const PARENTS: [(&str, &str); 2] = [("stage_run_id", "cog_stage_run"), ("task_id", "cog_task")];

/// `cog_task_run`'s foreign-key constraints to [`PARENTS`]' tables, as (constraint name,
/// parent table): PostgreSQL named them `cog_task_run_<column>_fkey`, MariaDB
/// `cog_task_run_ibfk_<n>`, so they are read, not assumed. None on SQLite (never dropped).
async fn parent_constraints(db: &impl ConnectionTrait) -> Result<Vec<(String, String)>, DbErr> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "SELECT c.conname::text, c.confrelid::regclass::text FROM pg_constraint c WHERE c.contype = 'f' \
             AND c.conrelid = 'cog_task_run'::regclass AND c.confrelid IN ('cog_stage_run'::regclass, 'cog_task'::regclass) ORDER BY 1"
        }
        DbBackend::MySql => {
            "SELECT CAST(constraint_name AS CHAR), CAST(referenced_table_name AS CHAR) FROM information_schema.referential_constraints \
             WHERE constraint_schema = DATABASE() AND table_name = 'cog_task_run' AND referenced_table_name IN ('cog_stage_run', 'cog_task') ORDER BY 1"
        }
        _ => return Ok(Vec::new()),
    };
    let rows = db.query_all_raw(Statement::from_string(backend, sql)).await?;
    rows.iter().map(|r| Ok((r.try_get_by_index::<String>(0)?, r.try_get_by_index::<String>(1)?))).collect()
}

/// Whether a MySQL-protocol server is MariaDB, which created migration 000001's inline
/// foreign keys (MySQL 8 ignored them).
async fn is_mariadb(db: &impl ConnectionTrait) -> Result<bool, DbErr> {
    let row = db.query_one_raw(Statement::from_string(DbBackend::MySql, "SELECT VERSION()")).await?;
    Ok(row.map(|r| r.try_get_by_index::<String>(0)).transpose()?.is_some_and(|v| v.to_ascii_lowercase().contains("mariadb")))
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let drop = match db.get_database_backend() {
            DbBackend::Postgres => "DROP CONSTRAINT",
            DbBackend::MySql => "DROP FOREIGN KEY",
            _ => return Ok(()),
        };
        for (name, _) in parent_constraints(db).await? {
            db.execute_unprepared(&format!("ALTER TABLE cog_task_run {drop} {name}")).await?;
        }
        Ok(())
    }

    /// Adds back, under PostgreSQL's names, each constraint that is missing (all of them, or
    /// the one an interrupted `up` left: MySQL's DDL is not transactional), on PostgreSQL and
    /// MariaDB. Every task run is checked (on PostgreSQL after the constraint is in place, so
    /// writes go on meanwhile); a task run that lost a parent fails it, naming the constraint.
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let backend = db.get_database_backend();
        let restore = match backend {
            DbBackend::Postgres => true,
            DbBackend::MySql => is_mariadb(db).await?,
            _ => false,
        };
        if !restore {
            return Ok(());
        }
        let present: Vec<String> = parent_constraints(db).await?.into_iter().map(|(_, parent)| parent).collect();
        for (column, parent) in PARENTS.iter().filter(|(_, parent)| !present.iter().any(|p| p == parent)) {
            let name = format!("cog_task_run_{column}_fkey");
            let add = format!("ALTER TABLE cog_task_run ADD CONSTRAINT {name} FOREIGN KEY ({column}) REFERENCES {parent} (id)");
            if backend == DbBackend::Postgres {
                db.execute_unprepared(&format!("{add} NOT VALID")).await?;
                db.execute_unprepared(&format!("ALTER TABLE cog_task_run VALIDATE CONSTRAINT {name}")).await?;
            } else {
                db.execute_unprepared(&add).await?;
            }
        }
        Ok(())
    }
}
