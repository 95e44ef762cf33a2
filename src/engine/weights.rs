//! Learning task weights from history (DESIGN invariant 9).

use sea_orm::{DatabaseConnection, DbErr, TransactionTrait};

use crate::db::execute;

/// Sets the weight of every task that completed in run `run_id` to the mean duration, in
/// seconds, of its last `sample_size` completed runs. Tasks that did not complete keep theirs.
///
/// Runs after the run's final transaction has committed, on its own: if it fails, the run's
/// status is already final and nothing else is affected.
pub(crate) async fn update_weights(db: &DatabaseConnection, run_id: i64, sample_size: u32) -> Result<u64, DbErr> {
    let txn = db.begin().await?;
    crate::db::lock_definitions(&txn).await?;
    let n = execute(
        &txn,
        "UPDATE cog_task SET weight = w.seconds FROM ( \
            SELECT task_id, AVG(duration_ms) / 1000.0 AS seconds FROM ( \
                SELECT tr.task_id, tr.duration_ms, ROW_NUMBER() OVER (PARTITION BY tr.task_id ORDER BY tr.id DESC) AS n \
                FROM cog_task_run tr WHERE tr.status = 'completed' AND tr.duration_ms IS NOT NULL AND tr.task_id IN ( \
                    SELECT t.task_id FROM cog_task_run t JOIN cog_stage_run s ON s.id = t.stage_run_id \
                    WHERE s.pipeline_run_id = $1 AND t.status = 'completed') \
            ) ranked WHERE n <= $2 GROUP BY task_id \
         ) w WHERE cog_task.id = w.task_id",
        [run_id.into(), (sample_size.max(1) as i64).into()],
    )
    .await?;
    txn.commit().await?;
    Ok(n)
}
