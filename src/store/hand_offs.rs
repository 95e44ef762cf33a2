//! A stage hand-off's end and start in one statement on PostgreSQL: the stage run whose task
//! runs are all done completes, the stages that makes ready are read, and the first of them
//! starts (and claims, for a worker with room), where three statements did it one after the
//! other: the end with its ready stages, then each start.
//!
//! A hand-off on one PostgreSQL process spent 118 µs of its 1.5 ms in the stage end's round
//! trip (a step-by-step probe, 2026-12-05); each round trip wakes a process on the other core,
//! which on a 2-core machine costs as much as the statement. The stage run's new status is not
//! visible to the statement's other parts, so its stage is taken as completed explicitly (as
//! `transitions::complete_stage_run_and_successors` does), and the stage started is read from
//! the inserted stage run (`transitions::StageOf::FirstReady`): when the stage run did not
//! complete, or nothing became ready, the statement inserts nothing and queues nothing.
//!
//! Its text is bigger than a stage end's alone, so the outcome's transaction sends it only for
//! stage runs that look done (`outcomes::complete_and_lock_runs` tells which); the others end,
//! if they do, as before.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};

use super::transitions::{self, StageOf, StartedStage, Starting};
use super::{Backend, Sql};

/// What [`end_stage_run_and_start_next`] did when the stage run completed.
#[derive(Debug)]
pub(crate) struct EndedStage {
    /// The stages its end made ready, in definition order (those of
    /// `transitions::ready_successors`).
    pub(crate) ready: Vec<i64>,
    /// The start of the first of `ready`: `None` when the run already had its stage run (or
    /// nothing is ready).
    pub(crate) first_started: Option<StartedStage>,
}

/// Completes running stage run `stage_run_id` of run `run_id` if it is done (see
/// `transitions::complete_stage_run_if_done`) and starts the first stage that makes ready, as
/// `starting` says (see `transitions::start_stage_run`): one statement on PostgreSQL, the
/// statements one after the other elsewhere. `None` when the stage run did not complete.
/// Callers hold the run's lock and start the rest of `ready` themselves.
pub(crate) async fn end_stage_run_and_start_next(
    conn: &impl ConnectionTrait,
    run_id: i64,
    stage_run_id: i64,
    now: DateTime<Utc>,
    starting: Starting<'_>,
) -> Result<Option<EndedStage>, DbErr> {
    let b = Backend::of(conn)?;
    if b != Backend::Postgres {
        let Some(ready) = transitions::complete_stage_run_and_successors(conn, run_id, stage_run_id, now).await? else { return Ok(None) };
        let first_started = match ready.first() {
            Some(&first) => transitions::start_stage_run(conn, run_id, first, now, starting).await?,
            None => None,
        };
        return Ok(Some(EndedStage { ready, first_started }));
    }
    #[derive(FromQueryResult)]
    struct Ended {
        ended: i64,
        ready: Vec<i64>,
    }
    let sql = transitions::stage_run_done(Sql::new(b, "WITH done AS ("), stage_run_id, now).push(" RETURNING stage_id), nx AS (");
    let sql = transitions::successors(sql, run_id, &|sql| sql.push("(SELECT stage_id FROM done)")).push("), ");
    let columns = "(SELECT COUNT(*) FROM done) AS ended, ARRAY(SELECT id FROM nx ORDER BY position) AS ready, ";
    let (sql, claim) = transitions::pg_start(sql, run_id, StageOf::FirstReady, now, starting, columns);
    let rows = conn.query_all_raw(sql.statement()).await?;
    let Some(first_row) = rows.first() else { return Ok(None) };
    let ended = Ended::from_query_result(first_row, "")?;
    let first_started = transitions::pg_started(&rows, claim)?;
    if ended.ended == 0 {
        return Ok(None);
    }
    Ok(Some(EndedStage { ready: ended.ready, first_started }))
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, Statement, TransactionTrait};

    use super::*;
    use crate::store::now;
    use crate::store::start_claims::FixedRoom;
    use crate::store::test_database::{self, define};
    use crate::store::transitions::Announce;

    /// Run 1 of stages 1 (one task), 2 (two tasks), 3 (one task) and 4 (one task): 2 and 3
    /// wait for 1, 4 waits for 2 and 3. Stage run 101 of stage 1 runs, its task run 101 at
    /// `status` (ids the sequences do not hand out).
    async fn diamond(db: &DatabaseConnection, status: &str) {
        define(db, &[1, 2, 1, 1]).await;
        db.execute_unprepared(&format!(
            "INSERT INTO cog_stage_prerequisite (stage_id, prerequisite_id) VALUES (2, 1), (3, 1), (4, 2), (4, 3); \
             INSERT INTO cog_stage_run (id, pipeline_run_id, stage_id, status) VALUES (101, 1, 1, 'running'); \
             INSERT INTO cog_task_run (id, stage_run_id, task_id, status, queue, weight, attempt, run_after) \
             VALUES (101, 101, 1000, '{status}', 'default', 1, 1, '2026-12-05 00:00:00+00')"
        ))
        .await
        .unwrap();
    }

    /// `(stage_id, status, task runs queued, task runs running)` of each stage run of run 1, by stage.
    async fn stage_runs(txn: &DatabaseTransaction) -> Vec<(i64, String, i64, i64)> {
        let sql = "SELECT r.stage_id, r.status, \
                   (SELECT COUNT(*) FROM cog_task_run t WHERE t.stage_run_id = r.id AND t.status = 'queued') AS queued, \
                   (SELECT COUNT(*) FROM cog_task_run t WHERE t.stage_run_id = r.id AND t.status = 'running') AS running \
                   FROM cog_stage_run r WHERE r.pipeline_run_id = 1 ORDER BY r.stage_id";
        let rows = txn.query_all_raw(Statement::from_string(txn.get_database_backend(), sql)).await.unwrap();
        rows.iter()
            .map(|r| (r.try_get_by_index(0).unwrap(), r.try_get_by_index(1).unwrap(), r.try_get_by_index(2).unwrap(), r.try_get_by_index(3).unwrap()))
            .collect()
    }

    fn hand_off() -> Starting<'static> {
        Starting::hand_off(Announce::Later)
    }

    /// The end of a done stage run starts the first stage it made ready, and says which are.
    async fn ends_and_starts_the_first_ready(db: &DatabaseConnection) {
        diamond(db, "completed").await;
        let txn = db.begin().await.unwrap();
        let ended = end_stage_run_and_start_next(&txn, 1, 101, now(), hand_off()).await.unwrap().expect("stage run 101 is done");
        assert_eq!(ended.ready, [2, 3], "both successors are ready, in definition order");
        let started = ended.first_started.expect("stage 2 started");
        assert_eq!(started.queued, 2);
        assert!(!started.filling);
        assert_eq!(
            stage_runs(&txn).await,
            [(1, "completed".into(), 0, 0), (2, "running".into(), 2, 0)],
            "stage 1 completed, stage 2 started with its two tasks queued, stage 3 left to the caller"
        );
        assert!(end_stage_run_and_start_next(&txn, 1, 101, now(), hand_off()).await.unwrap().is_none(), "a stage run ends once");
        // Stage 3's end leaves stage 4 waiting for stage 2.
        let three = transitions::start_stage_run(&txn, 1, 3, now(), hand_off()).await.unwrap().unwrap().stage_run_id;
        txn.execute_unprepared(&format!("UPDATE cog_task_run SET status = 'completed' WHERE stage_run_id = {three}")).await.unwrap();
        let ended = end_stage_run_and_start_next(&txn, 1, three, now(), hand_off()).await.unwrap().expect("stage run 3 is done");
        assert!(ended.ready.is_empty() && ended.first_started.is_none(), "stage 4 still waits for stage 2: {ended:?}");
        assert_eq!(stage_runs(&txn).await.len(), 3, "nothing started");
        txn.rollback().await.unwrap();
    }

    /// A stage run with a task run still open does not end, and nothing starts.
    async fn an_open_stage_run_starts_nothing(db: &DatabaseConnection) {
        diamond(db, "running").await;
        let txn = db.begin().await.unwrap();
        assert!(end_stage_run_and_start_next(&txn, 1, 101, now(), hand_off()).await.unwrap().is_none());
        assert_eq!(stage_runs(&txn).await, [(1, "running".into(), 0, 1)], "no stage run inserted, no task run queued");
        txn.rollback().await.unwrap();
    }

    #[tokio::test]
    async fn a_done_stage_run_ends_and_starts_the_first_ready_on_sqlite() {
        ends_and_starts_the_first_ready(&test_database::sqlite().await).await;
    }

    #[tokio::test]
    async fn an_open_stage_run_starts_nothing_on_sqlite() {
        an_open_stage_run_starts_nothing(&test_database::sqlite().await).await;
    }

    /// One statement on PostgreSQL: the same answers; and with a worker's room, the start
    /// claims for it as `transitions::start_stage_run` does.
    #[tokio::test]
    async fn a_stage_run_ends_and_the_next_starts_in_one_statement_on_postgres() {
        for (suffix, check) in [("hand_off_done", 0), ("hand_off_open", 1), ("hand_off_claim", 2)] {
            let Some((db, url)) = test_database::postgres(suffix, "hand-off test").await else { return };
            match check {
                0 => ends_and_starts_the_first_ready(&db).await,
                1 => an_open_stage_run_starts_nothing(&db).await,
                _ => {
                    diamond(&db, "completed").await;
                    let txn = db.begin().await.unwrap();
                    crate::store::sql::SENT.with(|sent| sent.borrow_mut().clear());
                    let room = FixedRoom::new("w", &["default".to_owned()], 1);
                    let ended = end_stage_run_and_start_next(&txn, 1, 101, now(), hand_off().claiming(Some(&room))).await.unwrap().expect("done");
                    assert_eq!(crate::store::sql::SENT.with(|sent| sent.borrow().len()), 1, "one statement");
                    let started = ended.first_started.expect("stage 2 started");
                    assert_eq!(stage_runs(&txn).await[1], (2, "running".into(), 1, 1), "one of stage 2's task runs claimed, one queued");
                    assert_eq!(*room.took.lock().unwrap(), [(started.stage_run_id, 1, false)]);
                    let claimed = room.claimed.lock().unwrap().clone();
                    assert_eq!(claimed.iter().map(|c| (c.task_id, c.stage_run_id, c.attempt)).collect::<Vec<_>>(), [(2000, started.stage_run_id, 1)]);
                    txn.rollback().await.unwrap();
                }
            }
            db.close().await.unwrap();
            test_database::drop(&url).await;
        }
    }
}
