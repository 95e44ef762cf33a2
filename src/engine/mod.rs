//! The state machine of runs. Every transition runs in one transaction that first locks the
//! pipeline run row ([`crate::store::lock_run`]) and then makes conditional updates
//! (`... WHERE status = 'running'`), so transitions of one run never interleave and a terminal
//! status is never overwritten.

pub(crate) mod advance;
pub(crate) mod cancel;
pub(crate) mod claim;
pub(crate) mod fill;
pub(crate) mod finish;
pub(crate) mod launch;
pub(crate) mod start;

pub(crate) use crate::signals::Effects;

use sea_orm::{DatabaseTransaction, DbErr, TransactionTrait};

use crate::store::claims;

/// Learns task weights from run `run_id` inside its final transaction `txn` when `effects` say
/// the run ended and `learn` gives a sample size (DESIGN invariant 9): done before commit, so
/// whoever is told the run ended sees the new weights. The update runs under a savepoint:
/// if it fails for good, it is rolled back alone, logged, and the run still ends; a transient
/// failure (deadlock, lost connection) is returned so that the caller retries the transaction.
///
/// The planner settings an outcome's transaction took ([`claims::set_planner`]) are put back to
/// the session's first: the weights' statement reads history and is planned for its values
/// (with the generic plan it took twice as long, 11 ms a run of 200 tasks). Returns whether it
/// learned, so whatever follows knows the settings were put back.
pub(crate) async fn learn_if_ended(txn: &DatabaseTransaction, run_id: i64, effects: Effects, learn: Option<u32>) -> Result<bool, DbErr> {
    let Some(sample_size) = learn.filter(|_| effects.run_ended) else { return Ok(false) };
    claims::custom_plans(txn).await?;
    let savepoint = txn.begin().await?;
    match crate::definitions::weights::update_weights(&savepoint, run_id, sample_size).await {
        Ok(_) => savepoint.commit().await?,
        // A deadlock or lost connection may have ended the whole transaction (MySQL rolls it
        // all back on a deadlock): the caller retries it, weights included.
        Err(e) if crate::store::errors::is_transient(&e) => return Err(e),
        Err(e) => {
            tracing::error!(pipeline.run = run_id, error = %e, "could not learn task weights from the run; they stay as they were and the run ends anyway");
            savepoint.rollback().await?
        }
    }
    Ok(true)
}

/// Commits `txn`, the transition of run `run_id` that had `effects`; when it ended the run, the
/// run is counted in `cog_pipeline_runs_total` once the commit has succeeded.
pub(crate) async fn commit(txn: DatabaseTransaction, run_id: i64, effects: Effects) -> Result<(), DbErr> {
    let ended = crate::metrics::ended_run(&txn, run_id, effects).await?;
    txn.commit().await?;
    crate::metrics::run_ended(ended.as_ref());
    Ok(())
}
