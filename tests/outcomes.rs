//! Recording outcomes: an outcome the database refuses for good (a trigger here) fails only its
//! own attempt, with the reason; the other outcomes of its batch are written as they were.

mod support;

use cog::{PipelineSpec, RunStatus, StageSpec, TaskSpec, cog};
use serde_json::json;
use support::{TestDb, rows, scalar, task_statuses, wait};

#[cog]
fn o_echo(value: String) -> String {
    value
}

async fn a_refused_outcome_fails_only_its_own_attempt(db: TestDb) {
    let rt = db.runtime().await;
    let triggers = match db.backend {
        "sqlite" => vec![
            "CREATE TRIGGER poison BEFORE UPDATE OF result ON cog_task_run WHEN NEW.result = '\"poison\"' BEGIN SELECT RAISE(ABORT, 'poisoned result'); END",
        ],
        "mysql" => vec![
            "CREATE TRIGGER poison BEFORE UPDATE ON cog_task_run FOR EACH ROW BEGIN IF NEW.result = '\"poison\"' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'poisoned result'; END IF; END",
        ],
        _ => vec![
            "CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'poisoned result'; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER poison BEFORE UPDATE ON cog_task_run FOR EACH ROW WHEN (NEW.result = '\"poison\"') EXECUTE FUNCTION poison()",
        ],
    };
    for sql in triggers {
        rows(&rt, sql).await;
    }
    let echo = |name: &str, value: &str| TaskSpec::new("o_echo").name(name).args(json!({ "value": value }));
    let mut stage = StageSpec::new("s").task(echo("bad", "poison").critical(false).max_retries(3));
    for n in 0..20 {
        stage = stage.task(echo(&format!("good_{n:02}"), "fine"));
    }
    rt.define(PipelineSpec::new("p").stage(stage)).await.unwrap();
    // Everything is queued before the worker starts, so outcomes arrive together and share batches.
    let run = rt.launch("p").await.unwrap();
    rt.start();
    assert_eq!(wait(&run).await, RunStatus::Completed);
    for (task, status) in task_statuses(&rt, run.id()).await {
        assert_eq!(status, if task == "bad" { "failed" } else { "completed" }, "task {task}");
    }
    let good = rows(&rt, "SELECT result FROM cog_task_run WHERE status = 'completed'").await;
    assert_eq!(good.len(), 20);
    assert!(good.iter().all(|r| r.try_get_by_index::<String>(0).unwrap() == "\"fine\""));
    let refused = rows(&rt, "SELECT error_type, message, attempt FROM cog_error").await;
    assert_eq!(refused.len(), 1, "one error row, for the refused outcome");
    assert_eq!(refused[0].try_get_by_index::<String>(0).unwrap(), "outcome_refused");
    let message = refused[0].try_get_by_index::<String>(1).unwrap();
    assert!(message.contains("task `bad`") && message.contains("poisoned result"), "{message}");
    assert_eq!(
        scalar(&rt, "SELECT COUNT(*) FROM cog_task_run WHERE status = 'failed' AND attempt = 1").await,
        1,
        "an outcome the database refuses is not retried"
    );
    rt.shutdown().await;
}

#[cog]
async fn o_gated(key: String) -> i64 {
    support::probe(&key).arrive_and_pass().await;
    1
}

/// Waits until a statement of this test's database waits to lock a pipeline run.
async fn until_a_statement_waits_for_a_lock(rt: &cog::CogRuntime, backend: &str) {
    // MariaDB does not always list a statement waiting for a row lock as `LOCK WAIT` in
    // `innodb_trx`; the process list shows it still running.
    let sql = match backend {
        "mysql" => {
            "SELECT COUNT(*) FROM information_schema.processlist WHERE db = DATABASE() \
             AND info LIKE 'SELECT status FROM cog_pipeline_run WHERE id = % FOR UPDATE'"
        }
        _ => "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
    };
    support::eventually("the outcome's write to wait for the run's lock", || async { scalar(rt, sql).await > 0 }).await;
}

async fn one_runs_blocked_outcome_does_not_hold_back_another_runs(db: TestDb) {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let rt = db.runtime().await;
    rt.start();
    let key = format!("{}#gate", db.url);
    rt.define(PipelineSpec::new("slow").stage(StageSpec::new("s").task(TaskSpec::new("o_gated").args(json!({ "key": key }))))).await.unwrap();
    rt.define(PipelineSpec::new("quick").stage(StageSpec::new("s").task(TaskSpec::new("o_echo").args(json!({ "value": "v" }))))).await.unwrap();
    let slow = rt.launch("slow").await.unwrap();
    let gate = support::probe(&key);
    support::eventually("the gated cog to run", || async { gate.arrived.load(std::sync::atomic::Ordering::SeqCst) == 1 }).await;

    // Another session locks the slow run's row: writing its outcome has to wait.
    let other = sea_orm::Database::connect(&db.url).await.unwrap();
    let blocker = other.begin().await.unwrap();
    blocker.execute_unprepared(&format!("SELECT id FROM cog_pipeline_run WHERE id = {} FOR UPDATE", slow.id())).await.unwrap();
    gate.open();
    until_a_statement_waits_for_a_lock(&rt, db.backend).await;

    // Meanwhile another run's outcomes are written and it ends.
    let quick = rt.launch("quick").await.unwrap();
    assert_eq!(wait(&quick).await, RunStatus::Completed);
    assert_eq!(slow.status().await.unwrap(), RunStatus::Running, "the slow run's outcome is still waiting");

    blocker.rollback().await.unwrap();
    assert_eq!(wait(&slow).await, RunStatus::Completed);
    rt.shutdown().await;
}

/// Runs whose outcomes arrive together while one of them is locked by another session: the
/// others are written and end without waiting for the lock, whether or not they were written
/// together (on PostgreSQL a transaction writing several runs gives up on a lock after
/// `JOINT_LOCK_WAIT`, and each run's outcome is then written on its own: see the unit test
/// `engine::finish::tests::runs_written_together_do_not_wait_long_for_a_locked_run`); the
/// locked one ends once the lock is released.
async fn a_locked_run_does_not_hold_back_the_runs_written_with_it(db: TestDb) {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let rt = db.runtime().await;
    rt.start();
    let key = format!("{}#joint", db.url);
    rt.define(PipelineSpec::new("joint").prevent_overlap(false).stage(StageSpec::new("s").task(TaskSpec::new("o_gated").args(json!({ "key": key })))))
        .await
        .unwrap();
    let runs = futures::future::try_join_all((0..3).map(|_| rt.launch("joint"))).await.unwrap();
    let gate = support::probe(&key);
    support::eventually("the gated cogs to run", || async { gate.arrived.load(std::sync::atomic::Ordering::SeqCst) == 3 }).await;
    let other = sea_orm::Database::connect(&db.url).await.unwrap();
    let blocker = other.begin().await.unwrap();
    blocker.execute_unprepared(&format!("SELECT id FROM cog_pipeline_run WHERE id = {} FOR UPDATE", runs[0].id())).await.unwrap();
    gate.open();
    for run in &runs[1..] {
        // A guard against a hang, not a measurement: the lock is held until these have ended.
        let ended = tokio::time::timeout(std::time::Duration::from_secs(20), wait(run)).await;
        assert_eq!(ended.ok(), Some(RunStatus::Completed), "run {} waited for another run's lock", run.id());
    }
    assert_eq!(runs[0].status().await.unwrap(), RunStatus::Running, "the locked run's outcome is still waiting");
    blocker.rollback().await.unwrap();
    assert_eq!(wait(&runs[0]).await, RunStatus::Completed);
    rt.shutdown().await;
}

on_all_backends!(a_refused_outcome_fails_only_its_own_attempt);

mod server {
    use super::*;
    on_server_backends!(one_runs_blocked_outcome_does_not_hold_back_another_runs, a_locked_run_does_not_hold_back_the_runs_written_with_it);
}
