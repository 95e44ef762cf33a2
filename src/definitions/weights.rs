//! Learning task weights from history (DESIGN invariant 9).

use sea_orm::{ConnectionTrait, DbErr};

use crate::store;

/// Sets the weight of every task that completed in runs `runs` (one or more runs of one
/// pipeline) to the mean duration, in seconds, of its last `sample_size` completed runs. Tasks
/// that did not complete keep theirs.
///
/// Runs on `conn` as it is: inside the caller's transaction (under a savepoint, say) or on its
/// own. Takes the weights lock of the runs' pipeline first (see [`store::lock_weights_of`]).
pub(crate) async fn update_weights(conn: &impl ConnectionTrait, runs: &[i64], sample_size: u32) -> Result<u64, DbErr> {
    let Some(&first) = runs.first() else { return Ok(0) };
    store::lock_weights_of(conn, first).await?;
    store::weights::learn(conn, runs, sample_size).await
}
