//! Warming a new pool's connections: each server connection plans the statements of a launch,
//! a claim and an outcome once, so the first run after start-up does not pay for it.
//!
//! A PostgreSQL backend starts with empty catalog caches: the first statement that touches a
//! table loads its definition, its indexes, their operators and statistics, 1–4 ms a statement
//! on a 2-core machine, and every pooled connection is a backend of its own. Measured on
//! workload B: the first task of a fresh process started 35–45 ms after `launch()`, of which
//! about 30 ms were such first-time parsing and planning. Here every statement of the hot path
//! is sent once per connection as `EXPLAIN <statement>`, inside a transaction that is rolled
//! back: planned, never executed, so nothing is read, locked or notified. In the same
//! transaction one row is written to each table a launch writes (and rolled back with it:
//! nobody sees it, no id is taken), so that the backend sets up the foreign-key checks that
//! remain and the insert paths now rather than at the first launch. Then each statement is
//! prepared on every connection, and the generic plans of the statements that run with the
//! claim's planner settings (a launch's, a claim's, a hand-off's) made (`store::prepare`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, ExecResult, QueryResult, Statement, TransactionTrait};

use super::prepare::Prepare;
use super::{Backend, claims, launches, lock_run, lock_weights_of, now, outcomes, reports, transitions, weights};
use crate::entity::status::{RunStatus, Trigger};

/// A transaction that plans statements instead of running them: each is sent as `EXPLAIN
/// <statement>` and answers no rows. Statements sent unprepared (session settings) run as
/// they are.
struct Explain<'a, C> {
    inner: &'a C,
}

impl<C: ConnectionTrait> Explain<'_, C> {
    fn explain(stmt: Statement) -> Statement {
        Statement { sql: format!("EXPLAIN {}", stmt.sql), ..stmt }
    }
}

#[async_trait]
impl<C: ConnectionTrait> ConnectionTrait for Explain<'_, C> {
    fn get_database_backend(&self) -> DbBackend {
        self.inner.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.inner.execute_raw(Self::explain(stmt)).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.inner.execute_unprepared(sql).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.inner.query_all_raw(Self::explain(stmt)).await.map(|_| None)
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.inner.query_all_raw(Self::explain(stmt)).await.map(|_| Vec::new())
    }
}

/// Plans the statements of the hot path once on each connection `db`'s pool holds open (at
/// most [`WARM_CONNECTIONS`](super::connect::WARM_CONNECTIONS)), together, writes (and rolls
/// back) a row in each table a launch writes, and prepares the statements (see the module's
/// note). PostgreSQL only: MySQL's server shares its table cache between sessions, and SQLite
/// runs in this process. A statement that cannot be planned is logged and the runtime starts
/// anyway (the warm-up only saves time).
pub(crate) async fn warm_up(db: &DatabaseConnection, queues: &[String]) {
    if !matches!(Backend::of(db), Ok(Backend::Postgres)) {
        return;
    }
    let connections = (db.get_postgres_connection_pool().size() as usize).clamp(1, super::connect::WARM_CONNECTIONS as usize);
    let mut results = futures::future::join_all((0..connections).map(|_| warm_one(db, queues))).await;
    results.extend(futures::future::join_all((0..connections).map(|_| prepare_one(db, queues))).await);
    if let Some(e) = results.into_iter().find_map(Result::err) {
        tracing::warn!(error = %e, "could not warm up the database connections; the first runs may start a few milliseconds later");
    }
}

/// Prepares the hot path's statements on one pooled connection, and makes the claim's plan
/// (see [`super::prepare`]).
async fn prepare_one(db: &DatabaseConnection, queues: &[String]) -> Result<(), DbErr> {
    let conn = db.get_postgres_connection_pool().acquire().await.map_err(super::prepare::sqlx_error)?;
    let prepare = Prepare::new(conn);
    let now = now();
    // A launch, a claim and a hand-off run with the claim's planner settings (generic plans,
    // sequential and bitmap scans off: each plan is an index walk whatever the statistics
    // say), so the plans made here are the ones they use.
    plan_with_claim_settings(&prepare, queues, now).await?;
    for sql in prepare.take_prepared() {
        prepare.plan_generic(&sql, &claims::CLAIM_SETTINGS).await?;
    }
    // The rest is planned at each run as PostgreSQL decides: a generic plan made here would
    // be compared with the custom ones, and an outcome write's was preferred for batches of
    // hundreds of outcomes, where it is the slower (workload E on 4 processes: 10 % fewer
    // tasks per second, 11 µs more PostgreSQL CPU per task).
    plan_with_defaults(&prepare, now).await?;
    prepare.take_prepared();
    Ok(())
}

/// Warms one pooled connection: the one a transaction holds.
async fn warm_one(db: &DatabaseConnection, queues: &[String]) -> Result<(), DbErr> {
    let txn = db.begin().await?;
    let planned = plan_hot_path(&Explain { inner: &txn }, queues, now()).await;
    let warmed = match planned {
        Ok(()) => write_first_rows(&txn).await,
        Err(e) => Err(e),
    };
    // The first error is the one worth reporting; a failed rollback only if all else went well
    // (the server rolls the transaction back anyway when the connection goes).
    let rolled_back = txn.rollback().await;
    warmed.and(rolled_back)
}

/// One row in each table that a launch, a stage start and a failed attempt write to (with the
/// parents their foreign keys need), each with this backend's negated process id as its id
/// and in its unique names: no sequence is advanced, and the warm-ups of other connections,
/// running at the same time, never wait for these rows.
const FIRST_WRITES: &str = "\
    INSERT INTO cog_pipeline (id, name, enabled, timezone, prevent_overlap, created_at, updated_at) \
        VALUES (-pg_backend_pid(), 'cog warm-up ' || pg_backend_pid(), false, 'UTC', false, now(), now()); \
    INSERT INTO cog_stage (id, pipeline_id, name, enabled, archived, position) \
        VALUES (-pg_backend_pid(), -pg_backend_pid(), 'warm-up', false, true, 0); \
    INSERT INTO cog_cog (id, name, module, present, updated_at) VALUES (-pg_backend_pid(), 'cog warm-up ' || pg_backend_pid(), '', false, now()); \
    INSERT INTO cog_queue (id, name) VALUES (-pg_backend_pid(), 'cog warm-up ' || pg_backend_pid()); \
    INSERT INTO cog_task (id, stage_id, name, cog_id, arguments, queue_id, weight, critical, enabled, archived, max_retries, position) \
        VALUES (-pg_backend_pid(), -pg_backend_pid(), 'warm-up', -pg_backend_pid(), '{}', -pg_backend_pid(), 1, true, false, true, 0, 0); \
    INSERT INTO cog_pipeline_run (id, pipeline_id, status, \"trigger\", arguments, created_at) \
        VALUES (-pg_backend_pid(), -pg_backend_pid(), 'canceled', 'manual', '{}', now()); \
    INSERT INTO cog_stage_run (id, pipeline_run_id, stage_id, status) VALUES (-pg_backend_pid(), -pg_backend_pid(), -pg_backend_pid(), 'canceled'); \
    INSERT INTO cog_task_run (id, stage_run_id, task_id, status, queue, weight, attempt, run_after) \
        VALUES (-pg_backend_pid(), -pg_backend_pid(), -pg_backend_pid(), 'canceled', 'cog warm-up', 1, 1, now()); \
    INSERT INTO cog_error (id, task_run_id, attempt, error_type, message, created_at) \
        VALUES (-pg_backend_pid(), -pg_backend_pid(), 1, 'warm-up', '', now())";

/// Writes [`FIRST_WRITES`] in `txn`, which the caller rolls back: nobody ever sees them.
///
/// A PostgreSQL backend prepares the query of each foreign-key check the first time a row
/// needs it, and sets up each table's and index's insert path at its first write: a launch on
/// a fresh connection took 0.7 ms for its run's insert, and 0.5 ms each for the first stage
/// run's and task runs' (1.7–2.5 ms in all; 0.2–0.3 ms each on the second launch), measured
/// after the statements' planning had been warmed (before migration 000010, after which a task
/// run's insert checks no foreign key on PostgreSQL, and 000012, after which a stage run's
/// checks none either; a run's and an error's still do). Writing a row to each of those tables
/// once here moves that cost to the start.
async fn write_first_rows(txn: &impl ConnectionTrait) -> Result<(), DbErr> {
    txn.execute_unprepared(FIRST_WRITES).await.map(|_| ())
}

/// Sends every statement of a launch, a claim, an outcome and a stage hand-off once.
async fn plan_hot_path(c: &impl ConnectionTrait, queues: &[String], now: DateTime<Utc>) -> Result<(), DbErr> {
    plan_with_claim_settings(c, queues, now).await?;
    plan_with_defaults(c, now).await
}

/// Sends once every statement that runs with the claim's planner settings
/// (`claims::set_planner`): a launch's own transaction, a claim, a stage hand-off, and an idle
/// worker's look for the next retry due.
async fn plan_with_claim_settings(c: &impl ConnectionTrait, queues: &[String], now: DateTime<Utc>) -> Result<(), DbErr> {
    const NONE: i64 = 0;
    launches::lock_pipeline(c, "").await?;
    launches::lock_decisions(c, NONE).await?;
    super::arguments::launched_tasks(c, NONE, &crate::registry::cogs_with_parameters()).await?;
    launches::overlap_state(c, NONE).await?;
    let run =
        launches::NewRun { pipeline_id: NONE, status: RunStatus::Running, trigger: Trigger::Manual, scheduled_for: None, arguments: "{}", retry_of: None, now };
    // An explained or only prepared insert returns no id: that answer is expected here.
    match launches::insert_run(c, run).await {
        Ok(_) | Err(DbErr::RecordNotInserted) => {}
        Err(e) => return Err(e),
    }
    launches::root_stages(c, NONE).await?;
    // A launch in cog's own transaction announces after commit, and its worker claims as the
    // stages start when idle; one in a host's announces in it.
    let later = transitions::Starting { announce: transitions::Announce::Later, ..transitions::Starting::LAUNCH };
    let room = super::start_claims::FixedRoom::new("", queues, 1);
    transitions::start_stage_run(c, NONE, NONE, now, later).await?;
    transitions::start_stage_run(c, NONE, NONE, now, later.claiming(Some(&room))).await?;
    transitions::start_stage_run(c, NONE, NONE, now, transitions::Starting::LAUNCH).await?;
    transitions::has_open_stage_runs(c, NONE).await?;
    // Claim.
    claims::claim_and_load(c, "", queues, 1, now, std::time::Duration::from_secs(1), claims::Planner::Set).await?;
    // Hand-off: the run's lock, the stage run's end, the next stage's start (announced after
    // its chained claim), fan-in and the run's end.
    lock_run(c, NONE).await?;
    transitions::complete_stage_run_and_successors(c, NONE, NONE, now).await?;
    let hand_off = transitions::Starting::hand_off(transitions::Announce::Later);
    transitions::start_stage_run(c, NONE, NONE, now, hand_off).await?;
    transitions::start_stage_run(c, NONE, NONE, now, hand_off.claiming(Some(&room))).await?;
    transitions::queued_from(c, NONE).await?;
    transitions::ready_successors(c, NONE, NONE).await?;
    transitions::complete_run(c, NONE, now).await?;
    // An idle worker's look for the next retry due (`claims::next_due_planned`).
    claims::next_due(c, queues).await?;
    Ok(())
}

/// Sends once the hot statements planned for their values: a wait's read of the run, the
/// weights learned at a run's end, and the write of an outcome batch (of several runs, and of
/// one with its run's lock).
async fn plan_with_defaults(c: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<(), DbErr> {
    const NONE: i64 = 0;
    reports::run_end(c, NONE).await?;
    lock_weights_of(c, NONE).await?;
    weights::learn(c, &[NONE], 10).await?;
    let success = outcomes::Success { task_run_id: NONE, attempt: 1, duration_ms: 0, result: "null".to_owned() };
    outcomes::complete_many(c, std::slice::from_ref(&success), now).await?;
    outcomes::complete_and_lock_runs(c, std::slice::from_ref(&success), now, &[NONE]).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

    use super::*;

    /// Runs the planned hot path on a migrated `db` and checks that nothing was written.
    async fn plans_without_writing(db: &DatabaseConnection) {
        let queues = vec!["default".to_owned(), "io".to_owned()];
        let txn = db.begin().await.unwrap();
        plan_hot_path(&Explain { inner: &txn }, &queues, now()).await.expect("every hot statement can be planned");
        txn.rollback().await.unwrap();
        for table in ["cog_pipeline_run", "cog_stage_run", "cog_task_run"] {
            let sql = format!("SELECT COUNT(*) AS n FROM {table}");
            let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap().unwrap();
            assert_eq!(row.try_get::<i64>("", "n").unwrap(), 0, "the warm-up wrote to {table}");
        }
    }

    #[tokio::test]
    async fn the_hot_path_is_planned_on_sqlite() {
        plans_without_writing(&super::super::test_database::sqlite().await).await;
    }

    /// On the backend the warm-up runs on (skipped without `COG_TEST_POSTGRES_URL`).
    #[tokio::test]
    async fn the_hot_path_is_planned_on_postgres() {
        let Some((db, url)) = super::super::test_database::postgres("warm", "warm-up test").await else { return };
        plans_without_writing(&db).await;
        let txn = db.begin().await.unwrap();
        write_first_rows(&txn).await.expect("a row can be written to each table of the hot path");
        txn.rollback().await.unwrap();
        warm_up(&db, &["default".to_owned()]).await;
        // The first writes were rolled back, and they took no id from any sequence.
        for table in ["cog_pipeline", "cog_stage", "cog_cog", "cog_task", "cog_pipeline_run", "cog_stage_run", "cog_task_run", "cog_error"] {
            let sql = format!("SELECT (SELECT COUNT(*) FROM {table}) + (SELECT CASE WHEN is_called THEN 1 ELSE 0 END FROM {table}_id_seq)");
            let row = db.query_one_raw(Statement::from_string(DbBackend::Postgres, sql)).await.unwrap().unwrap();
            assert_eq!(row.try_get_by_index::<i64>(0).unwrap(), 0, "the warm-up left a row in {table} or took an id");
        }
        let queues = db.query_one_raw(Statement::from_string(DbBackend::Postgres, "SELECT COUNT(*) FROM cog_queue")).await.unwrap().unwrap();
        assert_eq!(queues.try_get_by_index::<i64>(0).unwrap(), 1, "only the default queue");
        db.close().await.unwrap();
        // One connection: the statements the warm-up prepared are those it holds.
        let db = super::super::connect(&url, Some(1)).await.unwrap().work;
        prepare_one(&db, &["default".to_owned()]).await.expect("every hot statement can be prepared");
        let count = |sql: &'static str| {
            let db = &db;
            async move {
                let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap().unwrap();
                row.try_get_by_index::<i64>(0).unwrap()
            }
        };
        assert!(count("SELECT COUNT(*) FROM pg_prepared_statements WHERE NOT from_sql").await >= 15, "the hot path's statements are prepared");
        assert_eq!(
            count("SELECT COUNT(*) FROM pg_prepared_statements WHERE statement LIKE 'WITH running_queues%' AND generic_plans = 1").await,
            1,
            "the claim's plan is made"
        );
        // A claim after the warm-up runs on the prepared statement and its plan.
        let txn = db.begin().await.unwrap();
        let claimed =
            claims::claim_and_load(&txn, "w", &["default".to_owned()], 5, now(), std::time::Duration::from_secs(5), claims::Planner::Set).await.unwrap();
        txn.rollback().await.unwrap();
        assert!(claimed.is_empty());
        assert_eq!(count("SELECT COUNT(*) FROM pg_prepared_statements WHERE statement LIKE 'WITH running_queues%' AND generic_plans = 2").await, 1);
        // An outcome's transaction takes the claim's planner settings first: its statements are
        // planned once (generic), not at each of their first five runs on the connection.
        for _ in 0..3 {
            let txn = db.begin().await.unwrap();
            claims::set_planner(&txn).await.unwrap();
            assert_eq!(super::super::transitions::complete_stage_run_and_successors(&txn, 1, 1, now()).await.unwrap(), None);
            assert!(super::super::transitions::ready_successors(&txn, 1, 1).await.unwrap().is_empty());
            txn.rollback().await.unwrap();
            // So does an idle worker's look for the next retry due.
            assert_eq!(claims::next_due_planned(&db, &["default".to_owned()]).await.unwrap(), None);
        }
        for statement in
            ["WITH done AS (UPDATE cog_stage_run SET status%", "SELECT s.id, s.position FROM cog_stage s WHERE NOT s.archived%", "SELECT MIN(due) AS due FROM%"]
        {
            let plans = db
                .query_one_raw(Statement::from_sql_and_values(
                    db.get_database_backend(),
                    "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE $1",
                    [statement.into()],
                ))
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{statement} was prepared"));
            let (generic, custom): (i64, i64) = (plans.try_get_by_index(0).unwrap(), plans.try_get_by_index(1).unwrap());
            assert_eq!((generic, custom), (4, 0), "{statement}: planned once (by the warm-up), its generic plan used by every run");
        }
        db.close().await.unwrap();
        super::super::test_database::drop(&url).await;
    }
}
