//! `cog_task_run` without foreign-key constraints to its parents, `cog_stage_run` and
//! `cog_task`, on PostgreSQL and MySQL/MariaDB (issue 11). SQLite keeps them: there a check is
//! an index lookup that locks nothing, and dropping a constraint means rebuilding the table.
//!
//! On the server backends each inserted task run checked both parents with a locking read
//! (`FOR KEY SHARE` on PostgreSQL, a shared record lock on InnoDB): per task run two more
//! statements run by a trigger, a lock written into each parent row (a WAL record on
//! PostgreSQL), and, when runs of one pipeline start stages at the same time, a shared lock of
//! several transactions on each `cog_task` row (a MultiXact on PostgreSQL). Measured on
//! PostgreSQL, 4 processes, in alternating pairs: workload E 17,058–20,278 → 19,536–22,478
//! tasks/s (database CPU 69–81 → 60–69 µs per task), workload F 8,021–8,864 → 9,097–9,535
//! (157–179 → 139–151 µs). In isolation a 40-task stage start spent as long in the two checks
//! (0.63 ms) as in the insert itself (0.62 ms).
//!
//! The parents are kept by cog's own statements instead: a task run is only ever inserted by
//! an `INSERT ... SELECT` that reads its task and its stage run, in the transaction that holds
//! its pipeline run's lock (or a fill chunk's, guarded by its running stage run); tasks are
//! never deleted (a removed task is archived); a stage run is deleted only by the prune of an
//! ended run, after its task runs. The concurrency tests assert that no task run lacks a parent
//! (`tests/support::assert_no_orphans`). The other foreign keys stay: their rows are written
//! once per run or stage run, or on failures.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, Statement};

/// Drops (up) `cog_task_run`'s foreign keys to `cog_stage_run` and `cog_task` on PostgreSQL
/// and MySQL, or adds them back (down); nothing on SQLite.
pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261204_000010_task_run_parents_unlocked"
    }
}

/// The foreign keys dropped: column and parent table.
const PARENTS: [(&str, &str); 2] = [("stage_run_id", "cog_stage_run"), ("task_id", "cog_task")];

/// The names of `cog_task_run`'s foreign-key constraints to [`PARENTS`]' tables (PostgreSQL
/// named them `cog_task_run_<column>_fkey`, MariaDB `cog_task_run_ibfk_<n>`: read, not assumed).
async fn parent_constraints(db: &impl ConnectionTrait) -> Result<Vec<String>, DbErr> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "SELECT c.conname::text FROM pg_constraint c WHERE c.contype = 'f' AND c.conrelid = 'cog_task_run'::regclass \
             AND c.confrelid IN ('cog_stage_run'::regclass, 'cog_task'::regclass) ORDER BY 1"
        }
        _ => {
            "SELECT CAST(constraint_name AS CHAR) FROM information_schema.referential_constraints WHERE constraint_schema = DATABASE() \
             AND table_name = 'cog_task_run' AND referenced_table_name IN ('cog_stage_run', 'cog_task') ORDER BY 1"
        }
    };
    let rows = db.query_all_raw(Statement::from_string(backend, sql)).await?;
    rows.iter().map(|r| r.try_get_by_index::<String>(0)).collect()
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
        for name in parent_constraints(db).await? {
            db.execute_unprepared(&format!("ALTER TABLE cog_task_run {drop} {name}")).await?;
        }
        Ok(())
    }

    /// Adds the constraints back under PostgreSQL's names; this checks every task run (and
    /// fails, naming the constraint, if one has lost a parent).
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if !matches!(db.get_database_backend(), DbBackend::Postgres | DbBackend::MySql) || !parent_constraints(db).await?.is_empty() {
            return Ok(());
        }
        let adds: Vec<String> = PARENTS
            .iter()
            .map(|(column, parent)| format!("ADD CONSTRAINT cog_task_run_{column}_fkey FOREIGN KEY ({column}) REFERENCES {parent} (id)"))
            .collect();
        db.execute_unprepared(&format!("ALTER TABLE cog_task_run {}", adds.join(", "))).await?;
        Ok(())
    }
}
