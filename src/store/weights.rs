//! Learning task weights from history (DESIGN invariant 9).

use sea_orm::{ConnectionTrait, DbErr};

use super::{Backend, Sql};
use crate::entity::status::RunStatus;

/// Sets the weight of every task that completed in run `run_id` to the mean duration, in
/// seconds, of its last `sample_size` completed runs; returns how many weights changed.
pub(crate) async fn learn(conn: &impl ConnectionTrait, run_id: i64, sample_size: u32) -> Result<u64, DbErr> {
    let b = Backend::of(conn)?;
    // MySQL's AVG is a DECIMAL: read back as a double.
    let mean = match b {
        Backend::MySql => "CAST(AVG(duration_ms) / 1000.0 AS DOUBLE)",
        Backend::Sqlite | Backend::Postgres => "AVG(duration_ms) / 1000.0",
    };
    let means = |sql: Sql| {
        sql.push("SELECT task_id, ")
            .push(mean)
            .push(
                " AS seconds FROM ( \
                SELECT tr.task_id, tr.duration_ms, ROW_NUMBER() OVER (PARTITION BY tr.task_id ORDER BY tr.id DESC) AS n \
                FROM cog_task_run tr WHERE tr.status = ",
            )
            .status(RunStatus::Completed)
            .push(
                " AND tr.duration_ms IS NOT NULL AND tr.task_id IN ( \
                SELECT t.task_id FROM cog_task_run t JOIN cog_stage_run s ON s.id = t.stage_run_id WHERE s.pipeline_run_id = ",
            )
            .bind(run_id)
            .push(" AND t.status = ")
            .bind(RunStatus::Completed)
            .push(")) ranked WHERE n <= ")
            .bind(i64::from(sample_size.max(1)))
            .push(" GROUP BY task_id")
    };
    if b == Backend::Postgres {
        // Each task's last `sample_size` durations read off the end of its index range
        // (`cog_task_run_durations`, a partial index of completed task runs: the status is a
        // literal so that the planner sees it): the cost follows the run's size, not the
        // history's. (MariaDB
        // has no LATERAL; SQLite has one writer, so the window over the history is kept there.)
        // A task has at most one task run in a run (one stage run per stage, unique; one task
        // run per task in it, unique): the run's task ids need no DISTINCT (a sort of them).
        return Sql::new(
            b,
            "UPDATE cog_task SET weight = w.seconds FROM ( \
                SELECT d.task_id, AVG(r.duration_ms) / 1000.0 AS seconds FROM ( \
                    SELECT t.task_id FROM cog_task_run t JOIN cog_stage_run s ON s.id = t.stage_run_id WHERE s.pipeline_run_id = ",
        )
        .bind(run_id)
        .push(" AND t.status = ")
        .bind(RunStatus::Completed)
        .push(") d CROSS JOIN LATERAL (SELECT tr.duration_ms FROM cog_task_run tr WHERE tr.task_id = d.task_id AND tr.status = ")
        .status(RunStatus::Completed)
        .push(" AND tr.duration_ms IS NOT NULL ORDER BY tr.id DESC LIMIT ")
        .bind(i64::from(sample_size.max(1)))
        .push(") r GROUP BY d.task_id) w WHERE cog_task.id = w.task_id AND cog_task.weight <> w.seconds")
        .execute(conn)
        .await;
    }
    match b {
        // Unchanged weights are not written: a run of many tasks whose durations did not
        // change then updates no row (and its final transaction stays short).
        Backend::Sqlite | Backend::Postgres => {
            means(Sql::new(b, "UPDATE cog_task SET weight = w.seconds FROM ("))
                .push(") w WHERE cog_task.id = w.task_id AND cog_task.weight <> w.seconds")
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
            let means: Vec<Mean> = means(Sql::new(b, "SELECT w.task_id, w.seconds FROM ("))
                .push(") w JOIN cog_task t ON t.id = w.task_id WHERE t.weight <> w.seconds ORDER BY w.task_id")
                .all(conn)
                .await?;
            // One row at a time in id order (`ORDER BY id`), the order in which queuing task
            // runs share-locks them: the two never deadlock.
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
