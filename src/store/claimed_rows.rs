//! Reading claimed task runs ([`Claimed`]) off a result set, each column found by its name
//! once per result set and then read by position on every row.
//!
//! Read by name on every row (sea-orm's derived `FromQueryResult`), each of a claimed task
//! run's 19 columns was looked up twice in the row's table of column names (once to check its
//! type, once to decode it): 2.7 % of a worker's CPU time in workload E on one PostgreSQL
//! process, where a claim returns a few hundred rows (`perf`, 2026-12-06). Reading the rows
//! took 13.6 % in all; the rest, decoding and allocating each row's eight strings, remains.

use sea_orm::{DbErr, QueryResult};

use super::claims::Claimed;

/// The columns of a [`Claimed`], in the order [`Positions`] keeps them.
const COLUMNS: [&str; 19] = [
    "task_run_id",
    "attempt",
    "stage_run_id",
    "pipeline_run_id",
    "task_id",
    "task_name",
    "stage_name",
    "pipeline_name",
    "cog",
    "error_handler",
    "arguments",
    "launch_arguments",
    "critical",
    "max_retries",
    "timeout_ms",
    "started_at",
    "queue",
    "run_after",
    "weight",
];

/// Where each of [`COLUMNS`] is in a result set.
struct Positions([usize; COLUMNS.len()]);

impl Positions {
    /// The positions in the result set of `row`; an error naming the first column it lacks.
    fn of(row: &QueryResult) -> Result<Positions, DbErr> {
        let names = row.column_names();
        let mut at = [0; COLUMNS.len()];
        for (slot, column) in at.iter_mut().zip(COLUMNS) {
            *slot = names.iter().position(|name| name == column).ok_or_else(|| {
                DbErr::Custom(format!(
                    "a result set of claimed task runs has no column `{column}` (columns: {}): the statement that read them and \
                         `store::claimed_rows::COLUMNS` disagree, a bug in cog to report with this message",
                    names.join(", ")
                ))
            })?;
        }
        Ok(Positions(at))
    }

    /// One row as a [`Claimed`].
    fn read(&self, row: &QueryResult) -> Result<Claimed, DbErr> {
        let [
            task_run_id,
            attempt,
            stage_run_id,
            pipeline_run_id,
            task_id,
            task_name,
            stage_name,
            pipeline_name,
            cog,
            error_handler,
            arguments,
            launch_arguments,
            critical,
            max_retries,
            timeout_ms,
            started_at,
            queue,
            run_after,
            weight,
        ] = self.0;
        Ok(Claimed {
            task_run_id: row.try_get_by_index(task_run_id)?,
            attempt: row.try_get_by_index(attempt)?,
            stage_run_id: row.try_get_by_index(stage_run_id)?,
            pipeline_run_id: row.try_get_by_index(pipeline_run_id)?,
            task_id: row.try_get_by_index(task_id)?,
            task_name: row.try_get_by_index(task_name)?,
            stage_name: row.try_get_by_index(stage_name)?,
            pipeline_name: row.try_get_by_index(pipeline_name)?,
            cog: row.try_get_by_index(cog)?,
            error_handler: row.try_get_by_index(error_handler)?,
            arguments: row.try_get_by_index(arguments)?,
            launch_arguments: row.try_get_by_index(launch_arguments)?,
            critical: row.try_get_by_index(critical)?,
            max_retries: row.try_get_by_index(max_retries)?,
            timeout_ms: row.try_get_by_index(timeout_ms)?,
            started_at: row.try_get_by_index(started_at)?,
            queue: row.try_get_by_index(queue)?,
            run_after: row.try_get_by_index(run_after)?,
            weight: row.try_get_by_index(weight)?,
        })
    }
}

/// Every row of `rows` (one result set) as a [`Claimed`], in order.
pub(crate) fn read(rows: &[QueryResult]) -> Result<Vec<Claimed>, DbErr> {
    let Some(first) = rows.first() else { return Ok(Vec::new()) };
    let at = Positions::of(first)?;
    rows.iter().map(|row| at.read(row)).collect()
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, Statement};

    use super::*;

    /// The columns in another order than [`COLUMNS`], with others around them (as a stage
    /// start's statement returns them): each is found by its name.
    #[tokio::test]
    async fn columns_are_found_by_name_whatever_their_order() {
        let db = crate::store::test_database::sqlite().await;
        let sql = "SELECT 9 AS id, 'x' AS queued, 'default' AS queue, 2.5 AS weight, 7 AS task_run_id, 2 AS attempt, 70 AS stage_run_id, 700 AS pipeline_run_id, \
                   5 AS task_id, 't' AS task_name, 's' AS stage_name, 'p' AS pipeline_name, 'c' AS cog, NULL AS error_handler, '{}' AS arguments, \
                   '{\"a\": 1}' AS launch_arguments, 1 AS critical, 3 AS max_retries, 1500 AS timeout_ms, NULL AS started_at, \
                   '2026-12-06 00:00:00+00:00' AS run_after";
        let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap();
        let claimed = read(&rows).unwrap();
        assert_eq!(claimed.len(), 1);
        let c = &claimed[0];
        assert_eq!((c.task_run_id, c.attempt, c.stage_run_id, c.pipeline_run_id, c.task_id), (7, 2, 70, 700, 5));
        assert_eq!((c.task_name.as_str(), c.stage_name.as_str(), c.pipeline_name.as_str(), c.cog.as_str()), ("t", "s", "p", "c"));
        assert_eq!((c.error_handler.as_deref(), c.arguments.as_str(), c.launch_arguments.as_str()), (None, "{}", "{\"a\": 1}"));
        assert_eq!((c.critical, c.max_retries, c.timeout_ms, c.started_at), (true, 3, Some(1500), None));
        assert_eq!((c.queue.as_str(), c.weight), ("default", 2.5));
        assert_eq!(c.run_after.to_rfc3339(), "2026-12-06T00:00:00+00:00");
    }

    #[tokio::test]
    async fn a_missing_column_is_named() {
        let db = crate::store::test_database::sqlite().await;
        let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), "SELECT 7 AS task_run_id")).await.unwrap();
        let error = read(&rows).unwrap_err().to_string();
        assert!(error.contains("no column `attempt`"), "{error}");
        assert!(error.contains("and `store::claimed_rows::COLUMNS` disagree, a bug in cog"), "{error}");
    }

    #[tokio::test]
    async fn no_row_is_no_claimed_task_run() {
        assert!(read(&[]).unwrap().is_empty());
    }
}
