//! The hot statements read the partial indexes on active task runs, and weight learning the one
//! on completed durations (SQLite's query plans, and PostgreSQL's for the open task runs'
//! index): their cost follows the work in flight, or the run's size, not the length of the
//! history.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, FromQueryResult, Statement};

use super::sql::SENT;
use super::{claims, leases, now, transitions, weights};

/// A line of `EXPLAIN QUERY PLAN`.
#[derive(FromQueryResult)]
struct PlanLine {
    detail: String,
}

/// A migrated in-memory SQLite database.
async fn database() -> DatabaseConnection {
    let db = super::test_database::sqlite().await;
    SENT.with(|sent| sent.borrow_mut().clear());
    db
}

/// The query plan of the statement built last on this thread, one line per step.
async fn plan_of_last(db: &impl ConnectionTrait) -> Vec<String> {
    let last = SENT.with(|sent| sent.borrow_mut().pop()).expect("a statement was built");
    let explain = Statement::from_sql_and_values(last.db_backend, format!("EXPLAIN QUERY PLAN {}", last.sql), last.values.map(|v| v.0).unwrap_or_default());
    let rows = db.query_all_raw(explain).await.expect("explain");
    rows.iter().map(|r| PlanLine::from_query_result(r, "").expect("plan line").detail).collect()
}

/// Fails unless `plan` reads task runs through `index` and never scans the whole table.
fn assert_reads(plan: &[String], index: &str) {
    assert!(plan.iter().any(|l| l.contains("cog_task_run") && l.contains(index)), "expected index {index} in the plan: {plan:#?}");
    assert!(!plan.iter().any(|l| l.starts_with("SCAN cog_task_run") || l.contains("SCAN t ") || l == "SCAN t"), "a full scan of task runs: {plan:#?}");
}

#[tokio::test]
async fn a_claim_reads_queued_task_runs_through_the_claim_index() {
    let db = database().await;
    let txn = super::begin(&db).await.unwrap();
    let claimed = claims::claim(&txn, "w", &["default".to_owned(), "io".to_owned()], 8, now(), Duration::from_secs(30)).await.unwrap();
    assert!(claimed.is_empty());
    let plan = plan_of_last(&txn).await;
    assert_reads(&plan, "cog_task_run_claim");
    assert!(plan.iter().any(|l| l.contains("INTEGER PRIMARY KEY")), "claimed rows are updated by key: {plan:#?}");
    assert!(!plan.iter().any(|l| l.contains("cog_task_run_claim (status")), "the outer update must not walk the claim index: {plan:#?}");
}

#[tokio::test]
async fn finding_expired_leases_reads_the_open_task_runs_index() {
    let db = database().await;
    claims::expired(&db, 10).await.unwrap();
    let plan = plan_of_last(&db).await;
    assert_reads(&plan, "cog_task_run_open");
    assert!(plan.iter().any(|l| l.contains("(status=?)")), "only the running entries are read: {plan:#?}");
}

#[tokio::test]
async fn finding_a_workers_canceled_runs_reads_the_open_task_runs_index() {
    let db = database().await;
    leases::canceled_runs_of(&db, "w").await.unwrap();
    assert_reads(&plan_of_last(&db).await, "cog_task_run_open");
}

#[tokio::test]
async fn completing_a_stage_run_reads_the_open_task_runs_index() {
    let db = database().await;
    transitions::complete_stage_run_if_done(&db, 1, now()).await.unwrap();
    assert_reads(&plan_of_last(&db).await, "cog_task_run_open");
}

#[tokio::test]
async fn finding_when_work_is_due_reads_the_retries_and_claim_indexes() {
    let db = database().await;
    claims::next_due(&db, &["default".to_owned(), "io".to_owned()]).await.unwrap();
    let plan = plan_of_last(&db).await;
    assert_reads(&plan, "cog_task_run_retries");
    assert_reads(&plan, "cog_task_run_claim");
}

#[tokio::test]
async fn learning_weights_reads_the_durations_index() {
    let db = database().await;
    weights::learn(&db, &[1, 2], 10).await.unwrap();
    assert_reads(&plan_of_last(&db).await, "cog_task_run_durations");
}

/// The text of PostgreSQL's plan of the statement built last on this thread, run in a
/// transaction of `db` with the claim's planner settings (as the hot path runs it).
async fn postgres_plan_of_last(db: &DatabaseConnection) -> String {
    let last = SENT.with(|sent| sent.borrow_mut().pop()).expect("a statement was built");
    let txn = super::begin(db).await.unwrap();
    claims::set_planner(&txn).await.unwrap();
    let explain = Statement { sql: format!("EXPLAIN {}", last.sql), ..last };
    let rows = txn.query_all_raw(explain).await.expect("explain");
    txn.rollback().await.unwrap();
    rows.iter().map(|r| r.try_get_by_index::<String>(0).expect("a plan line")).collect::<Vec<_>>().join("\n")
}

/// On PostgreSQL the open task runs of a stage run, and the running task runs whose lease
/// expired, are read by the leading status of the open task runs' index, not by a walk of all
/// its entries: PostgreSQL drops a condition that the partial index's own implies, so each
/// statement names one status (skipped without `COG_TEST_POSTGRES_URL`).
#[tokio::test]
async fn the_open_task_runs_index_is_probed_by_status_on_postgres() {
    let Some((db, url)) = super::test_database::postgres("open_index", "open index plan test").await else { return };
    SENT.with(|sent| sent.borrow_mut().clear());
    transitions::complete_stage_run_if_done(&db, 1, now()).await.unwrap();
    let plan = postgres_plan_of_last(&db).await;
    for status in ["queued", "running"] {
        assert!(plan.contains(&format!("Index Cond: ((status = '{status}'::text) AND (stage_run_id = ")), "one probe for {status}: {plan}");
    }
    claims::expired(&db, 10).await.unwrap();
    let plan = postgres_plan_of_last(&db).await;
    assert!(plan.contains("cog_task_run_open") && plan.contains("Index Cond: (status = 'running'::text)"), "the running entries only: {plan}");
    db.close().await.unwrap();
    super::test_database::drop(&url).await;
}
