//! Writing how attempts ended: completed (many at once), queued again for a retry, failed,
//! given back; and `cog_error` rows. Every write is fenced by attempt number and status, so a
//! stale worker's late result changes nothing.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::ArrayType;
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, Value};

use super::{Backend, Sql};
use crate::entity::status::RunStatus;

/// One successful attempt to record.
#[derive(Debug, Clone)]
pub(crate) struct Success {
    pub(crate) task_run_id: i64,
    pub(crate) attempt: i32,
    pub(crate) duration_ms: i64,
    /// JSON text of the cog's result.
    pub(crate) result: String,
}

/// Marks the running task runs of `successes` (whose attempt still matches) `completed` with
/// their results, in one statement; returns the ids it completed.
pub(crate) async fn complete_many(conn: &impl ConnectionTrait, successes: &[Success], now: DateTime<Utc>) -> Result<Vec<i64>, DbErr> {
    if successes.is_empty() {
        return Ok(Vec::new());
    }
    let b = Backend::of(conn)?;
    let set = |sql: Sql, target: &str| set_completed(sql, target, now);
    let update = |sql: Sql| update_completed(sql.push(" "), now);
    match b {
        // The results as four arrays: one statement text whatever their number, planned once
        // per connection (see `Sql::in_ids`).
        Backend::Postgres => update(pg_results(successes)).ids(conn).await,
        Backend::Sqlite => {
            let mut sql = Sql::new(b, "WITH v (id, attempt, duration_ms, result) AS (VALUES ");
            for (i, s) in successes.iter().enumerate() {
                sql = sql
                    .push(if i == 0 { "(" } else { ", (" })
                    .bind_list([Value::from(s.task_run_id), s.attempt.into(), s.duration_ms.into(), s.result.as_str().into()])
                    .push(")");
            }
            update(sql.push(")")).ids(conn).await
        }
        // No `UPDATE ... RETURNING`: the rows this attempt still owns are locked and read first,
        // then updated from a derived table of the results.
        Backend::MySql => {
            #[derive(FromQueryResult)]
            struct Owned {
                id: i64,
                attempt: i32,
            }
            let owned = Sql::new(b, "SELECT id, attempt FROM cog_task_run WHERE status = ")
                .bind(RunStatus::Running)
                .push(" AND id IN (")
                .bind_list(successes.iter().map(|s| s.task_run_id))
                .push(") FOR UPDATE")
                .all::<Owned>(conn)
                .await?;
            let mine: Vec<&Success> = successes.iter().filter(|s| owned.iter().any(|o| o.id == s.task_run_id && o.attempt == s.attempt)).collect();
            if mine.is_empty() {
                return Ok(Vec::new());
            }
            let mut sql = Sql::new(b, "UPDATE cog_task_run t JOIN (");
            for (i, s) in mine.iter().enumerate() {
                sql = sql
                    .push(if i == 0 { "SELECT " } else { " UNION ALL SELECT " })
                    .bind(s.task_run_id)
                    .push(" AS id, ")
                    .bind(s.duration_ms)
                    .push(" AS duration_ms, ")
                    .bind(s.result.as_str())
                    .push(" AS result");
            }
            set(sql.push(") v ON t.id = v.id SET t.status = "), "t.").push(" WHERE t.status = ").bind(RunStatus::Running).execute(conn).await?;
            Ok(mine.iter().map(|s| s.task_run_id).collect())
        }
    }
}

/// Appends the values a success writes after `... SET status = `; `target` qualifies the
/// updated table's columns where the derived table `v` has the same names.
fn set_completed(sql: Sql, target: &str, now: DateTime<Utc>) -> Sql {
    sql.bind(RunStatus::Completed)
        .push(&format!(", {target}completed_at = "))
        .bind(now)
        .push(&format!(", {target}duration_ms = v.duration_ms, {target}result = v.result, {target}error = NULL, {target}lease_until = NULL"))
}

/// Appends the update of the running task runs whose attempt matches to what `v` holds
/// (PostgreSQL and SQLite), returning their ids.
///
/// On PostgreSQL the status is compared with a subquery's value, which the planner does not
/// know while it plans: the task runs are then found by their primary key, whatever the plan
/// cache mode and the table's statistics. With the status a value it knows, a write planned
/// for its values could take a partial index of running task runs (`cog_task_run_lease` then)
/// instead: a bitmap scan of every entry since the last vacuum, hash-joined with the outcomes
/// (64,176 entries and 3.0 ms of a 6.2 ms write of 160 outcomes after 60,000 task runs,
/// where the primary key finds them in 0.2 ms; 2026-12-05).
fn update_completed(sql: Sql, now: DateTime<Utc>) -> Sql {
    let postgres = sql.backend() == Backend::Postgres;
    let sql = set_completed(sql.push("UPDATE cog_task_run SET status = "), "", now)
        .push(" FROM v WHERE cog_task_run.id = v.id AND cog_task_run.attempt = v.attempt AND cog_task_run.status = ");
    let sql = if postgres { sql.push("(SELECT ").bind(RunStatus::Running).push(")") } else { sql.bind(RunStatus::Running) };
    sql.push(" RETURNING cog_task_run.id")
}

/// PostgreSQL: the CTE `v (id, attempt, duration_ms, result)` of `successes`, as four arrays:
/// one statement text whatever their number, planned once per connection (see
/// `Sql::in_ids`).
fn pg_results(successes: &[Success]) -> Sql {
    let column = |f: &dyn Fn(&Success) -> Value| Value::Array(ArrayType::BigInt, Some(Box::new(successes.iter().map(f).collect())));
    Sql::new(Backend::Postgres, "WITH v (id, attempt, duration_ms, result) AS (SELECT * FROM unnest(")
        .bind(column(&|s| s.task_run_id.into()))
        .push("::bigint[], ")
        .bind(Value::Array(ArrayType::Int, Some(Box::new(successes.iter().map(|s| s.attempt.into()).collect()))))
        .push("::int[], ")
        .bind(column(&|s| s.duration_ms.into()))
        .push("::bigint[], ")
        .bind(Value::Array(ArrayType::String, Some(Box::new(successes.iter().map(|s| s.result.as_str().into()).collect()))))
        .push("::text[]))")
}

/// What [`complete_and_lock_runs`] wrote and read.
#[derive(Debug, Default)]
pub(crate) struct WrittenAndLocked {
    /// The ids of the task runs it completed.
    pub(crate) completed: Vec<i64>,
    /// Each run it locked, with its status (a run whose row is gone is not there).
    pub(crate) statuses: Vec<(i64, RunStatus)>,
}

impl WrittenAndLocked {
    /// The status of run `run_id` as locked (`None`: no such run).
    pub(crate) fn status_of(&self, run_id: i64) -> Option<RunStatus> {
        self.statuses.iter().find(|(id, _)| *id == run_id).map(|(_, status)| *status)
    }
}

/// [`complete_many`] and then [`super::lock_run`] of each run of `runs` (ids in ascending
/// order), in one statement on PostgreSQL (one after the other elsewhere).
/// The locks are taken once the successes are written (their condition reads what they
/// returned), as statements in that order would: the successes of one run from several
/// processes are written side by side, and only what follows waits for the runs' locks,
/// taken in id order (two such statements never wait for each other in a circle). What is
/// decided under a run's lock is read by later statements, which see what was committed
/// before it was granted. For a stage hand-off a round trip fewer, and for a write of
/// several runs' successes (`engine::finish::finish_runs`) one per run.
pub(crate) async fn complete_and_lock_runs(
    conn: &impl ConnectionTrait,
    successes: &[Success],
    now: DateTime<Utc>,
    runs: &[i64],
) -> Result<WrittenAndLocked, DbErr> {
    #[derive(FromQueryResult)]
    struct Written {
        completed: Vec<i64>,
        run_id: Option<i64>,
        status: Option<RunStatus>,
    }
    debug_assert!(runs.windows(2).all(|w| w[0] < w[1]), "runs are locked in ascending id order");
    if Backend::of(conn)? != Backend::Postgres {
        let completed = complete_many(conn, successes, now).await?;
        let mut statuses = Vec::with_capacity(runs.len());
        for &run_id in runs {
            if let Some(status) = super::lock_run(conn, run_id).await? {
                statuses.push((run_id, status));
            }
        }
        return Ok(WrittenAndLocked { completed, statuses });
    }
    let sql = update_completed(pg_results(successes).push(", done AS ("), now).push("), run AS (SELECT id, status FROM cog_pipeline_run WHERE ");
    // One run (a stage hand-off's, mostly) by its id alone: the plainest plan.
    let sql = match runs {
        [run_id] => sql.push("id = ").bind(*run_id),
        _ => sql.in_ids("id", runs),
    };
    let sql = sql.push(
        " AND (SELECT COUNT(*) FROM done) >= 0 ORDER BY id FOR UPDATE) \
         SELECT w.*, run.id AS run_id, run.status FROM (SELECT ARRAY(SELECT id FROM done) AS completed",
    );
    // One row per run locked; one with no run when none was.
    let rows = sql.push(") w LEFT JOIN run ON true").all::<Written>(conn).await?;
    let mut written = WrittenAndLocked::default();
    for (i, row) in rows.into_iter().enumerate() {
        if i == 0 {
            written.completed = row.completed;
        }
        if let (Some(run_id), Some(status)) = (row.run_id, row.status) {
            written.statuses.push((run_id, status));
        }
    }
    Ok(written)
}

/// How a failed attempt is written.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FailedAttempt {
    /// Queued again, claimable `after` from now (by the database's clock).
    Retry { after: std::time::Duration },
    /// `failed` for good, ended `now`.
    Fail { now: DateTime<Utc> },
}

/// Writes a failed attempt on task run `task_run_id`, fenced by attempt number and status;
/// for a lease `takeover`, only while its lease is still expired (by the database's clock),
/// so a worker that renewed it meanwhile keeps it. Returns whether it was written.
pub(crate) async fn fail_attempt(
    conn: &impl ConnectionTrait,
    task_run_id: i64,
    attempt: i32,
    how: FailedAttempt,
    error: &str,
    takeover: bool,
) -> Result<bool, DbErr> {
    let b = Backend::of(conn)?;
    let sql = match how {
        FailedAttempt::Retry { after } => {
            Sql::new(b, "UPDATE cog_task_run SET status = ").bind(RunStatus::Queued).push(", worker = NULL, lease_until = NULL, run_after = ").now_plus(after)
        }
        FailedAttempt::Fail { now } => {
            Sql::new(b, "UPDATE cog_task_run SET status = ").bind(RunStatus::Failed).push(", completed_at = ").bind(now).push(", lease_until = NULL")
        }
    };
    let mut sql = sql
        .push(", error = ")
        .bind(error)
        .push(" WHERE id = ")
        .bind(task_run_id)
        .push(" AND attempt = ")
        .bind(attempt)
        .push(" AND status = ")
        .bind(RunStatus::Running);
    if takeover {
        sql = sql.push(" AND lease_until < ").now();
    }
    Ok(sql.execute(conn).await? > 0)
}

/// Gives task run `task_run_id` (attempt `attempt`, still running) back without counting a
/// failure: queued again at once (`requeue`) or `canceled` (its run has ended).
pub(crate) async fn give_back(conn: &impl ConnectionTrait, task_run_id: i64, attempt: i32, requeue: bool, now: DateTime<Utc>) -> Result<bool, DbErr> {
    let b = Backend::of(conn)?;
    let sql = if requeue {
        Sql::new(b, "UPDATE cog_task_run SET status = ").bind(RunStatus::Queued).push(", worker = NULL, lease_until = NULL, run_after = ").now()
    } else {
        Sql::new(b, "UPDATE cog_task_run SET status = ").bind(RunStatus::Canceled).push(", completed_at = ").bind(now).push(", lease_until = NULL")
    };
    let n =
        sql.push(" WHERE id = ").bind(task_run_id).push(" AND attempt = ").bind(attempt).push(" AND status = ").bind(RunStatus::Running).execute(conn).await?;
    Ok(n > 0)
}

/// A `cog_error` row to write.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ErrorRow<'a> {
    pub(crate) task_run_id: i64,
    pub(crate) attempt: i32,
    pub(crate) error_type: &'a str,
    pub(crate) message: &'a str,
    pub(crate) backtrace: Option<&'a str>,
    pub(crate) created_at: DateTime<Utc>,
}

/// Writes one `cog_error` row.
pub(crate) async fn insert_error(conn: &impl ConnectionTrait, row: ErrorRow<'_>) -> Result<(), DbErr> {
    Sql::new(Backend::of(conn)?, "INSERT INTO cog_error (task_run_id, attempt, error_type, message, backtrace, created_at) VALUES (")
        .bind_list([
            Value::from(row.task_run_id),
            row.attempt.into(),
            row.error_type.into(),
            row.message.into(),
            row.backtrace.map(str::to_owned).into(),
            row.created_at.into(),
        ])
        .push(")")
        .execute(conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait};

    use super::*;
    use crate::store::{lock_run, now, test_database};

    /// Run 1 (of [`test_database::define`] with one stage of two tasks) with its stage run 1
    /// running task runs 1 and 2, both at attempt 1.
    async fn two_running(db: &DatabaseConnection) {
        test_database::define(db, &[2]).await;
        db.execute_unprepared(
            "INSERT INTO cog_stage_run (id, pipeline_run_id, stage_id, status) VALUES (1, 1, 1, 'running'); \
             INSERT INTO cog_task_run (id, stage_run_id, task_id, status, queue, weight, attempt, run_after, worker) \
             VALUES (1, 1, 1000, 'running', 'default', 1, 1, '2026-12-05 00:00:00+00', 'w'), (2, 1, 1001, 'running', 'default', 1, 1, '2026-12-05 00:00:00+00', 'w')",
        )
        .await
        .unwrap();
    }

    fn success(task_run_id: i64, attempt: i32) -> Success {
        Success { task_run_id, attempt, duration_ms: 5, result: "1".to_owned() }
    }

    /// The write of one run's successes and its lock are one statement on PostgreSQL, the lock
    /// taken after the write: while another transaction holds the run's lock, the statement
    /// waits for it with the task runs it completed already locked (written), as the two
    /// statements one after the other did. A stale attempt is not written; the status is read
    /// once the lock is granted.
    #[tokio::test]
    async fn successes_are_written_before_the_run_lock_is_waited_for_on_postgres() {
        let Some((db, url)) = test_database::postgres("complete_and_lock", "outcome test").await else { return };
        two_running(&db).await;
        let holder = db.begin().await.unwrap();
        assert_eq!(lock_run(&holder, 1).await.unwrap(), Some(RunStatus::Running));
        let writer = {
            let db = db.clone();
            tokio::spawn(async move {
                let txn = db.begin().await.unwrap();
                let written = complete_and_lock_runs(&txn, &[success(1, 1), success(2, 7)], now(), &[1]).await.unwrap();
                txn.commit().await.unwrap();
                written
            })
        };
        // Until the writer waits for the run's lock (it cannot finish before the holder ends).
        let waiting = "SELECT COUNT(*) AS n FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE NOT l.granted AND a.datname = current_database()";
        let mut waited = Duration::ZERO;
        while Sql::new(Backend::Postgres, waiting).one::<Count>(&db).await.unwrap().map_or(0, |c| c.n) == 0 {
            assert!(waited < Duration::from_secs(10), "the writer never waited for the run's lock");
            tokio::time::sleep(Duration::from_millis(10)).await;
            waited += Duration::from_millis(10);
        }
        let probe = db.begin().await.unwrap();
        let locked = probe.execute_unprepared("SELECT id FROM cog_task_run WHERE id = 1 FOR UPDATE NOWAIT").await;
        assert!(locked.is_err(), "task run 1 was written (and so locked) before the run's lock was waited for");
        probe.execute_unprepared("ROLLBACK").await.ok();
        drop(probe);
        assert!(!writer.is_finished());
        holder.execute_unprepared("UPDATE cog_pipeline_run SET status = 'canceled' WHERE id = 1").await.unwrap();
        holder.commit().await.unwrap();
        let written = writer.await.unwrap();
        assert_eq!(written.completed, [1], "the stale attempt of task run 2 is not written");
        assert_eq!(written.status_of(1), Some(RunStatus::Canceled), "the status as of the lock's grant");
        let txn = db.begin().await.unwrap();
        let written = complete_and_lock_runs(&txn, &[success(2, 1)], now(), &[99]).await.unwrap();
        assert_eq!((written.status_of(99), written.completed), (None, vec![2]), "no run 99");
        txn.rollback().await.unwrap();
        db.close().await.unwrap();
        test_database::drop(&url).await;
    }

    /// Elsewhere the same in two statements.
    #[tokio::test]
    async fn sqlite_writes_the_successes_then_locks_the_run() {
        let db = test_database::sqlite().await;
        two_running(&db).await;
        let txn = db.begin().await.unwrap();
        let written = complete_and_lock_runs(&txn, &[success(1, 1), success(2, 7)], now(), &[1]).await.unwrap();
        assert_eq!((written.status_of(1), written.completed), (Some(RunStatus::Running), vec![1]));
        txn.rollback().await.unwrap();
    }

    /// Several runs' successes and locks in one statement: each run's status, a missing run
    /// left out; every run locked until the transaction ends.
    async fn several_runs_are_locked_with_their_successes(db: &DatabaseConnection) {
        two_running(db).await;
        db.execute_unprepared(
            "INSERT INTO cog_pipeline_run (id, pipeline_id, status, \"trigger\", arguments, created_at) \
             VALUES (2, 1, 'canceled', 'manual', '{}', '2026-12-05 00:00:00+00')",
        )
        .await
        .unwrap();
        let txn = db.begin().await.unwrap();
        let written = complete_and_lock_runs(&txn, &[success(1, 1), success(2, 1)], now(), &[1, 2, 7]).await.unwrap();
        assert_eq!(written.completed.len(), 2);
        assert_eq!(written.statuses, [(1, RunStatus::Running), (2, RunStatus::Canceled)], "run 7 does not exist");
        if db.get_database_backend() == sea_orm::DbBackend::Postgres {
            let probe = db.begin().await.unwrap();
            for run in [1, 2] {
                probe.execute_unprepared("SAVEPOINT p").await.unwrap();
                let locked = probe.execute_unprepared(&format!("SELECT id FROM cog_pipeline_run WHERE id = {run} FOR UPDATE NOWAIT")).await;
                assert!(locked.is_err(), "run {run} is locked");
                probe.execute_unprepared("ROLLBACK TO SAVEPOINT p").await.unwrap();
            }
            probe.rollback().await.unwrap();
        }
        txn.rollback().await.unwrap();
    }

    /// A big write of successes finds its task runs by their primary key on PostgreSQL, under
    /// the server's planner settings and whatever the statistics say: here a table never
    /// analyzed, 2,000 task runs of one stage run, 1,840 of them completed (their entries in
    /// the index of running task runs dead until a vacuum), the other 160 written at once.
    #[tokio::test]
    async fn a_big_write_finds_its_task_runs_by_primary_key_on_postgres() {
        let Some((db, url)) = test_database::postgres("complete_by_key", "outcome test").await else { return };
        test_database::define(&db, &[2000]).await;
        db.execute_unprepared(
            "INSERT INTO cog_stage_run (id, pipeline_run_id, stage_id, status) VALUES (1, 1, 1, 'running'); \
             INSERT INTO cog_task_run (id, stage_run_id, task_id, status, queue, weight, attempt, run_after, worker, lease_until) \
             SELECT n, 1, 999 + n, 'running', 'default', 1, 1, '2026-12-05 00:00:00+00', 'w', '2026-12-05 00:00:30+00' FROM generate_series(1, 2000) n; \
             UPDATE cog_task_run SET status = 'completed', lease_until = NULL, completed_at = '2026-12-05 00:00:01+00' WHERE id <= 1840",
        )
        .await
        .unwrap();
        let successes: Vec<Success> = (1841..=2000).map(|id| success(id, 1)).collect();
        let txn = db.begin().await.unwrap();
        super::super::sql::SENT.with(|sent| sent.borrow_mut().clear());
        let written = complete_and_lock_runs(&txn, &successes, now(), &[1]).await.unwrap();
        assert_eq!(written.completed.len(), 160);
        let write = super::super::sql::SENT.with(|sent| sent.borrow_mut().pop()).expect("the write's statement");
        txn.rollback().await.unwrap();
        let txn = db.begin().await.unwrap();
        let explain = sea_orm::Statement { sql: format!("EXPLAIN (COSTS OFF) {}", write.sql), ..write };
        let plan: Vec<String> = txn.query_all_raw(explain).await.unwrap().iter().map(|r| r.try_get_by_index::<String>(0).unwrap()).collect();
        txn.rollback().await.unwrap();
        let reads: Vec<&String> = plan.iter().filter(|l| l.contains(" on cog_task_run") && l.contains("Scan")).collect();
        assert!(!reads.is_empty() && reads.iter().all(|l| l.contains("Index Scan using cog_task_run_pkey")), "task runs read by primary key only: {plan:#?}");
        db.close().await.unwrap();
        test_database::drop(&url).await;
    }

    #[tokio::test]
    async fn several_runs_are_locked_with_their_successes_on_sqlite() {
        several_runs_are_locked_with_their_successes(&test_database::sqlite().await).await;
    }

    #[tokio::test]
    async fn several_runs_are_locked_with_their_successes_on_postgres() {
        let Some((db, url)) = test_database::postgres("complete_and_lock_several", "outcome test").await else { return };
        several_runs_are_locked_with_their_successes(&db).await;
        db.close().await.unwrap();
        test_database::drop(&url).await;
    }

    #[derive(FromQueryResult)]
    struct Count {
        n: i64,
    }
}
