//! The migration: `cog::migrate` creates every table of DESIGN.md "Data model" (and
//! `cog_migrations`, and the `default` queue); `down` removes them all; `up` again works.

mod support;

use cog_migration::MigratorTrait;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};
use support::TestDb;

const TABLES: [&str; 16] = [
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
    "cog_worker",
    "cog_worker_cog",
    "cog_worker_error_handler",
    "cog_migrations",
];

async fn tables(db: &DatabaseConnection) -> Vec<String> {
    let sql = match db.get_database_backend() {
        DbBackend::Sqlite => "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'cog_%' ORDER BY name",
        DbBackend::Postgres => "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_name LIKE 'cog_%' ORDER BY table_name",
        _ => "SELECT CAST(table_name AS CHAR) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name LIKE 'cog_%' ORDER BY table_name",
    };
    let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap();
    rows.iter().map(|r| r.try_get_by_index::<String>(0).unwrap()).collect()
}

async fn up_creates_every_table_and_down_removes_them(db: TestDb) {
    let conn = Database::connect(db.url.as_str()).await.unwrap();
    cog::migrate(&conn).await.unwrap();
    let mut expected: Vec<String> = TABLES.iter().map(|t| (*t).to_owned()).collect();
    expected.sort();
    assert_eq!(tables(&conn).await, expected);
    let default = conn.query_all_raw(Statement::from_string(conn.get_database_backend(), "SELECT name FROM cog_queue")).await.unwrap();
    assert_eq!(default.len(), 1);
    assert_eq!(default[0].try_get_by_index::<String>(0).unwrap(), "default");
    if conn.get_database_backend() == DbBackend::Postgres {
        // Room for a weight update of every row next to it (see migrations 000007 and 000009).
        let sql = "SELECT array_to_string(reloptions, ',') FROM pg_class WHERE relname = 'cog_task'";
        let row = conn.query_one_raw(Statement::from_string(DbBackend::Postgres, sql)).await.unwrap().unwrap();
        assert_eq!(row.try_get_by_index::<String>(0).unwrap(), "fillfactor=50", "cog_task keeps room on its pages");
    }
    // Applying it again changes nothing.
    cog::migrate(&conn).await.unwrap();
    assert_eq!(tables(&conn).await, expected);

    cog_migration::Migrator::down(&conn, None).await.unwrap();
    assert_eq!(tables(&conn).await, ["cog_migrations"], "down drops every cog table but the migrations table");
    cog::migrate(&conn).await.unwrap();
    assert_eq!(tables(&conn).await, expected);
}

/// The tables `table` references through a foreign key, in order.
async fn parents(db: &DatabaseConnection, table: &str) -> Vec<String> {
    let sql = match db.get_database_backend() {
        DbBackend::Sqlite => format!("SELECT \"table\" FROM pragma_foreign_key_list('{table}') ORDER BY 1"),
        DbBackend::Postgres => format!("SELECT confrelid::regclass::text FROM pg_constraint WHERE contype = 'f' AND conrelid = '{table}'::regclass ORDER BY 1"),
        _ => format!(
            "SELECT CAST(referenced_table_name AS CHAR) FROM information_schema.referential_constraints \
             WHERE constraint_schema = DATABASE() AND table_name = '{table}' ORDER BY 1"
        ),
    };
    let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap();
    rows.iter().map(|r| r.try_get_by_index::<String>(0).unwrap()).collect()
}

/// Whether `db` is MySQL 8 rather than MariaDB: MySQL 8 ignores the inline `REFERENCES` of
/// migration 000001, so its cog tables never had foreign keys, and `down` of the migrations
/// that drop them elsewhere restores none there.
async fn is_mysql_8(db: &DatabaseConnection) -> bool {
    if db.get_database_backend() != DbBackend::MySql {
        return false;
    }
    let row = db.query_one_raw(Statement::from_string(DbBackend::MySql, "SELECT VERSION()")).await.unwrap().expect("a version");
    !row.try_get_by_index::<String>(0).unwrap().to_ascii_lowercase().contains("mariadb")
}

/// Migrates `db`, checks that `table` references its `parents` through foreign keys on SQLite
/// only, reverts migration `migration` and checks that `down` restored them where the first
/// migration made them (PostgreSQL, MariaDB; not MySQL 8); returns the connection, reverted,
/// and the parents `table` has once migrated.
async fn parents_restored_by_down(db: &TestDb, table: &str, parents_of: [&str; 2], migration: &str) -> (DatabaseConnection, Vec<String>) {
    let conn = Database::connect(db.url.as_str()).await.unwrap();
    cog::migrate(&conn).await.unwrap();
    let both = parents_of.map(str::to_owned).to_vec();
    let kept = if db.backend == "sqlite" { both.clone() } else { Vec::new() };
    let restored = if is_mysql_8(&conn).await { Vec::new() } else { both };
    assert_eq!(parents(&conn, table).await, kept);
    cog_migration::Migrator::down(&conn, Some(steps_back_through(migration))).await.unwrap();
    assert_eq!(parents(&conn, table).await, restored, "down restores the checks");
    (conn, kept)
}

/// Migration 000010: on the server backends `cog_task_run` checks no parent (cog's statements
/// keep them, see `support::assert_no_orphans`); SQLite keeps its checks; `down` adds them back
/// (where the first migration made them) and `up` drops them again.
async fn task_runs_check_their_parents_on_sqlite_only(db: TestDb) {
    let (conn, kept) = parents_restored_by_down(&db, "cog_task_run", ["cog_stage_run", "cog_task"], "m20261204_000010_task_run_parents_unlocked").await;
    cog::migrate(&conn).await.unwrap();
    assert_eq!(parents(&conn, "cog_task_run").await, kept);
}

/// Migration 000012: on the server backends `cog_stage_run` checks no parent either (see
/// `support::assert_no_orphans`); SQLite keeps its checks; `down` adds them back and `up`
/// drops them again.
async fn stage_runs_check_their_parents_on_sqlite_only(db: TestDb) {
    let (conn, kept) = parents_restored_by_down(&db, "cog_stage_run", ["cog_pipeline_run", "cog_stage"], "m20261206_000012_stage_run_parents_unlocked").await;
    assert_eq!(
        parents(&conn, "cog_task_run").await,
        if db.backend == "sqlite" { vec!["cog_stage_run".to_owned(), "cog_task".to_owned()] } else { Vec::new() },
        "down of 000012 leaves 000010's"
    );
    cog::migrate(&conn).await.unwrap();
    assert_eq!(parents(&conn, "cog_stage_run").await, kept);
}

/// How many migrations `down` reverts to undo migration `name` (and every later one).
fn steps_back_through(name: &str) -> u32 {
    let names: Vec<String> = cog_migration::Migrator::migrations().iter().map(|m| m.name().to_owned()).collect();
    let at = names.iter().position(|n| n == name).unwrap_or_else(|| panic!("no migration {name} in {names:?}"));
    (names.len() - at) as u32
}

/// Whether `cog_task_run` has an index named `name`.
async fn has_task_run_index(db: &DatabaseConnection, name: &str) -> bool {
    let sql = match db.get_database_backend() {
        DbBackend::Sqlite => format!("SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'cog_task_run' AND name = '{name}'"),
        DbBackend::Postgres => format!("SELECT COUNT(*) FROM pg_indexes WHERE tablename = 'cog_task_run' AND indexname = '{name}'"),
        _ => format!(
            "SELECT COUNT(*) FROM information_schema.statistics WHERE table_schema = DATABASE() AND table_name = 'cog_task_run' AND index_name = '{name}'"
        ),
    };
    let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap().expect("a count");
    row.try_get_by_index::<i64>(0).unwrap() > 0
}

/// Migration 000011: the partial index of task runs waiting for a retry exists where partial
/// indexes do (SQLite, PostgreSQL) and not on MySQL/MariaDB; `down` drops it, `up` adds it back.
async fn retries_have_their_index_where_partial_indexes_exist(db: TestDb) {
    let conn = Database::connect(db.url.as_str()).await.unwrap();
    cog::migrate(&conn).await.unwrap();
    let partial = db.backend != "mysql";
    assert_eq!(has_task_run_index(&conn, "cog_task_run_retries").await, partial);
    cog_migration::Migrator::down(&conn, Some(steps_back_through("m20261205_000011_retry_index"))).await.unwrap();
    assert!(!has_task_run_index(&conn, "cog_task_run_retries").await, "down drops the index");
    cog::migrate(&conn).await.unwrap();
    assert_eq!(has_task_run_index(&conn, "cog_task_run_retries").await, partial);
}

/// The definition of index `name` (SQLite and PostgreSQL: the statement that creates it).
async fn index_definition(db: &DatabaseConnection, name: &str) -> String {
    let sql = match db.get_database_backend() {
        DbBackend::Sqlite => format!("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = '{name}'"),
        _ => format!("SELECT indexdef FROM pg_indexes WHERE indexname = '{name}'"),
    };
    let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap().unwrap_or_else(|| panic!("no index {name}"));
    row.try_get_by_index::<String>(0).unwrap()
}

/// Migration 000013: where partial indexes exist (SQLite, PostgreSQL), the open task runs'
/// index leads with the status and the lease index is gone (the lease sweep reads the open
/// index); `down` splits them again and `up` folds them again. MySQL/MariaDB has neither.
async fn the_lease_index_is_folded_into_the_open_index(db: TestDb) {
    let conn = Database::connect(db.url.as_str()).await.unwrap();
    cog::migrate(&conn).await.unwrap();
    let partial = db.backend != "mysql";
    assert!(!has_task_run_index(&conn, "cog_task_run_lease").await);
    assert_eq!(has_task_run_index(&conn, "cog_task_run_open").await, partial);
    if partial {
        assert!(index_definition(&conn, "cog_task_run_open").await.contains("(status, stage_run_id)"), "status first");
    }
    cog_migration::Migrator::down(&conn, Some(steps_back_through("m20261206_000013_lease_index_folded"))).await.unwrap();
    assert_eq!(has_task_run_index(&conn, "cog_task_run_lease").await, partial, "down brings the lease index back");
    if partial {
        assert!(index_definition(&conn, "cog_task_run_open").await.contains("(stage_run_id, status)"), "stage run first again");
    }
    cog::migrate(&conn).await.unwrap();
    assert!(!has_task_run_index(&conn, "cog_task_run_lease").await);
}

on_all_backends!(
    up_creates_every_table_and_down_removes_them,
    the_lease_index_is_folded_into_the_open_index,
    task_runs_check_their_parents_on_sqlite_only,
    stage_runs_check_their_parents_on_sqlite_only,
    retries_have_their_index_where_partial_indexes_exist
);
