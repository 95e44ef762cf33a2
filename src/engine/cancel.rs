//! Canceling a pipeline run.

use sea_orm::DatabaseConnection;

use super::{Effects, advance};
use crate::entity::status::RunStatus;
use crate::error::Error;
use crate::store::{self, lock_run, notify, now};

/// Cancels run `run_id`: it becomes `canceled` at once, its queued task runs `canceled`,
/// running ones finish; weights are learned if it ended at once. A run that has already ended is left alone (`Ok`).
pub(crate) async fn cancel(db: &DatabaseConnection, run_id: i64, learn_weights: Option<u32>) -> Result<Effects, Error> {
    let txn = store::begin(db).await?;
    let status = lock_run(&txn, run_id).await?.ok_or(Error::UnknownRun { id: run_id })?;
    if status.is_terminal() {
        return Ok(Effects::default());
    }
    let effects = advance::end_run(&txn, run_id, RunStatus::Canceled, None, now()).await?;
    notify(&txn, &format!("cancel:{run_id}")).await?;
    super::learn_if_ended(&txn, run_id, effects, learn_weights).await?;
    super::commit(txn, run_id, effects).await?;
    tracing::info!(pipeline.run = run_id, "pipeline run canceled");
    Ok(effects)
}
