//! Canceling a pipeline run.

use sea_orm::{DatabaseConnection, TransactionTrait};

use super::{Effects, advance};
use crate::db::{lock_run, notify, now};
use crate::error::Error;

/// Cancels run `run_id`: it becomes `canceled` at once, its queued task runs `canceled`,
/// running ones finish. A run that has already ended is left alone (`Ok`).
pub(crate) async fn cancel(db: &DatabaseConnection, run_id: i64) -> Result<Effects, Error> {
    let txn = db.begin().await?;
    let status = lock_run(&txn, run_id).await?.ok_or(Error::UnknownRun { id: run_id })?;
    if status != "queued" && status != "running" {
        return Ok(Effects::default());
    }
    let effects = advance::end_run(&txn, run_id, "canceled", None, now()).await?;
    notify(&txn, &format!("cancel:{run_id}")).await?;
    txn.commit().await?;
    tracing::info!(pipeline.run = run_id, "pipeline run canceled");
    Ok(effects)
}
