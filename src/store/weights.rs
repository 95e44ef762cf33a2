//! Learning task weights from history (DESIGN invariant 9).

use sea_orm::{ConnectionTrait, DbErr};

use super::{Backend, Sql};
use crate::entity::status::RunStatus;

/// Sets the weight of every task that completed in runs `runs` (one or more) to the mean
/// duration, in seconds, of its last `sample_size` completed runs; returns how many weights
/// changed.
pub(crate) async fn learn(conn: &impl ConnectionTrait, runs: &[i64], sample_size: u32) -> Result<u64, DbErr> {
    let b = Backend::of(conn)?;
    // Unchanged weights are not written: a run of many tasks whose durations did not change
    // then updates no row (and its final transaction stays short).
    match b {
        // Each task's last `sample_size` durations read off the end of its index range
        // (`cog_task_run_durations`, a partial index of completed task runs: the status is a
        // literal so that the planner sees it) and averaged by a LATERAL subquery, per task
        // (no task has two task runs in a run). A task without a sample averages to NULL,
        // which `<>` leaves out. Averaged inside the subquery rather than grouped after it:
        // 2.4 ms instead of 2.9 for a run of 200 tasks with ten samples each (no sort of the
        // 2,000 durations). A task that ran in several of the runs is learned once.
        Backend::Postgres => run_completed_tasks(
            Sql::new(b, "UPDATE cog_task SET weight = w.seconds FROM (SELECT d.task_id, r.ms / 1000.0 AS seconds FROM (SELECT DISTINCT t.task_id FROM "),
            runs,
        )
        .push(") d CROSS JOIN LATERAL (SELECT AVG(x.duration_ms) AS ms FROM (SELECT tr.duration_ms FROM cog_task_run tr WHERE tr.task_id = d.task_id AND tr.status = ")
        .status(RunStatus::Completed)
        .push(" AND tr.duration_ms IS NOT NULL ORDER BY tr.id DESC LIMIT ")
        .bind(i64::from(sample_size.max(1)))
        .push(") x) r) w WHERE cog_task.id = w.task_id AND cog_task.weight <> w.seconds")
        .execute(conn)
        .await,
        // Materialized: each mean is computed once, not again for the comparison.
        Backend::Sqlite => {
            newest_means(Sql::new(b, "WITH w AS MATERIALIZED ("), runs, sample_size)
                .push(") UPDATE cog_task SET weight = w.seconds FROM w WHERE cog_task.id = w.task_id AND cog_task.weight <> w.seconds")
                .execute(conn)
                .await
        }
        // InnoDB would read the history inside an UPDATE with shared locks, and wait for the
        // task runs another run-ending transaction has just completed while that one waits for
        // the definitions lock held here: a deadlock, again and again when many runs of one
        // pipeline end together. A plain SELECT reads without locks; the UPDATE then joins
        // only literal values.
        Backend::MySql => {
            #[derive(sea_orm::FromQueryResult)]
            struct Mean {
                task_id: i64,
                seconds: f64,
            }
            // Only the weights that change are written (read without locks too): when many
            // runs of a pipeline end together, the first one sets the weights and the others
            // lock no `cog_task` row at all.
            let means: Vec<Mean> = ranked_means(Sql::new(b, "SELECT w.task_id, w.seconds FROM ("), runs, sample_size)
                .push(") w JOIN cog_task t ON t.id = w.task_id WHERE t.weight <> w.seconds ORDER BY w.task_id")
                .all(conn)
                .await?;
            // One row at a time in id order (`ORDER BY id`), the order in which a stage start's
            // insert share-locks them where it locks them (see `transitions::task_runs_insert`):
            // the two never deadlock.
            let mut changed = 0;
            for chunk in means.chunks(500) {
                let mut sql = Sql::new(b, "UPDATE cog_task SET weight = CASE id");
                for m in chunk {
                    sql = sql.push(" WHEN ").bind(m.task_id).push(" THEN ").bind(m.seconds);
                }
                changed += sql.push(" END WHERE id IN (").bind_list(chunk.iter().map(|m| m.task_id)).push(") ORDER BY id").execute(conn).await?;
            }
            Ok(changed)
        }
    }
}

/// Appends a query of the run's completed tasks (`task_id`), each with the mean, in seconds,
/// of its last `sample_size` completed durations (`seconds`), for SQLite: the durations from
/// the `sample_size`-th newest on (all of them when there are fewer: from id 0, below every
/// task run's, a constant so that the range stays an index range), each range read off the
/// end of the task's entries in the index of completed durations (`cog_task_run_durations`).
/// The cost follows the run's size, not the history's: ranking every completed run of the
/// run's tasks (as MySQL still does) read a pipeline's whole history at each of its runs'
/// ends (workload F on SQLite, 50 runs of one pipeline: 5,432–7,393 → 9,145–10,052 tasks/s).
/// A task has at most one task run in a run (one stage run per stage, unique; one task run per
/// task in it, unique), but may have one in each of several runs: the runs' tasks are
/// distinct ones.
fn newest_means(sql: Sql, runs: &[i64], sample_size: u32) -> Sql {
    let completed = |sql: Sql, alias: &str| {
        sql.push(&format!("{alias}.task_id = d.task_id AND {alias}.status = "))
            .status(RunStatus::Completed)
            .push(&format!(" AND {alias}.duration_ms IS NOT NULL"))
    };
    let sql = completed(sql.push("SELECT d.task_id, (SELECT AVG(tr.duration_ms) FROM cog_task_run tr WHERE "), "tr")
        .push(" AND tr.id >= COALESCE((SELECT x.id FROM cog_task_run x WHERE ");
    let sql = completed(sql, "x")
        .push(" ORDER BY x.id DESC LIMIT 1 OFFSET ")
        .bind(i64::from(sample_size.max(1) - 1))
        .push("), 0)) / 1000.0 AS seconds FROM (SELECT DISTINCT t.task_id FROM ");
    run_completed_tasks(sql, runs).push(") d")
}

/// [`newest_means`] for MySQL/MariaDB: every completed run of the run's tasks ranked newest
/// first, the first `sample_size` of each averaged. The cost grows with the tasks' history
/// (see README, Known limits): MariaDB allows no outer column in a derived table, and the
/// correlated form of [`newest_means`] ran there slower than this ranking at 50 runs of
/// history (13–17 ms against 7.5 ms for 200 tasks) and made workload F slower.
fn ranked_means(sql: Sql, runs: &[i64], sample_size: u32) -> Sql {
    // MySQL's AVG is a DECIMAL: read back as a double.
    let sql = sql
        .push(
            "SELECT task_id, CAST(AVG(duration_ms) / 1000.0 AS DOUBLE) AS seconds FROM ( \
        SELECT tr.task_id, tr.duration_ms, ROW_NUMBER() OVER (PARTITION BY tr.task_id ORDER BY tr.id DESC) AS n \
        FROM cog_task_run tr WHERE tr.status = ",
        )
        .status(RunStatus::Completed)
        .push(" AND tr.duration_ms IS NOT NULL AND tr.task_id IN (SELECT t.task_id FROM ");
    run_completed_tasks(sql, runs).push(")) ranked WHERE n <= ").bind(i64::from(sample_size.max(1))).push(" GROUP BY task_id")
}

/// Appends the completed task runs of runs `runs` as `t` (with their stage runs as `s`):
/// `cog_task_run t JOIN cog_stage_run s ... WHERE ...`, for a `FROM` clause.
fn run_completed_tasks(sql: Sql, runs: &[i64]) -> Sql {
    sql.push("cog_task_run t JOIN cog_stage_run s ON s.id = t.stage_run_id WHERE ")
        .in_ids("s.pipeline_run_id", runs)
        .push(" AND t.status = ")
        .bind(RunStatus::Completed)
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

    use super::learn;
    use crate::store::test_database::{self, define};

    /// Stage 1's three tasks (1000, 1001, 1002) ran in runs 1 and 2: 1000 completed in both
    /// (100 ms, then 300 ms), 1001 in run 1 only (200 ms; queued in run 2), 1002 in run 2 only
    /// (500 ms; failed in run 1).
    async fn two_runs(db: &DatabaseConnection) {
        define(db, &[3]).await;
        let at = "'2026-12-05 00:00:00+00'";
        db.execute_unprepared(&format!(
            "INSERT INTO cog_pipeline_run (id, pipeline_id, status, \"trigger\", arguments, created_at) VALUES (2, 1, 'running', 'manual', '{{}}', {at}); \
             INSERT INTO cog_stage_run (id, pipeline_run_id, stage_id, status) VALUES (1, 1, 1, 'completed'), (2, 2, 1, 'running'); \
             INSERT INTO cog_task_run (id, stage_run_id, task_id, status, queue, weight, attempt, run_after, duration_ms) VALUES \
             (1, 1, 1000, 'completed', 'default', 1, 1, {at}, 100), (2, 1, 1001, 'completed', 'default', 1, 1, {at}, 200), \
             (3, 1, 1002, 'failed', 'default', 1, 1, {at}, NULL), (4, 2, 1000, 'completed', 'default', 1, 1, {at}, 300), \
             (5, 2, 1001, 'queued', 'default', 1, 0, {at}, NULL), (6, 2, 1002, 'completed', 'default', 1, 1, {at}, 500)"
        ))
        .await
        .unwrap();
    }

    /// The weights of tasks 1000, 1001 and 1002.
    async fn weights(db: &DatabaseConnection) -> Vec<f64> {
        let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), "SELECT weight FROM cog_task ORDER BY id")).await.unwrap();
        rows.iter().map(|r| r.try_get_by_index::<f64>(0).unwrap()).collect()
    }

    /// Runs learned together set each task's weight once, from every run's durations.
    async fn check(db: &DatabaseConnection) {
        two_runs(db).await;
        assert_eq!(learn(db, &[1, 2], 10).await.unwrap(), 3, "every task that ran changed weight");
        assert_eq!(weights(db).await, vec![0.2, 0.2, 0.5]);
        assert_eq!(learn(db, &[1, 2], 10).await.unwrap(), 0, "learned again, nothing changes");
        // The last sample only: task 1000's newest run (300 ms); run 2 alone leaves 1001 as it is.
        assert_eq!(learn(db, &[2], 1).await.unwrap(), 1);
        assert_eq!(weights(db).await, vec![0.3, 0.2, 0.5]);
    }

    #[tokio::test]
    async fn several_runs_are_learned_together_on_sqlite() {
        check(&test_database::sqlite().await).await;
    }

    /// Skipped without `COG_TEST_POSTGRES_URL`.
    #[tokio::test]
    async fn several_runs_are_learned_together_on_postgres() {
        let Some((db, url)) = test_database::postgres("learn", "weight learning test").await else { return };
        check(&db).await;
        db.close().await.unwrap();
        test_database::drop(&url).await;
    }
}
