//! Starting a pipeline run: its first stages (after the stages a retry copies from the run it
//! retries), and the buffered run of [`Overlap::BufferOne`](crate::Overlap) when the active
//! run of its pipeline ends.

use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};

use super::{Effects, advance};
use crate::entity::status::RunStatus;
use crate::store::start_claims::StartClaims;
use crate::store::transitions::Starting;
use crate::store::{launches, lock_run, retries};

/// Starts run `run_id` of pipeline `pipeline_id` (already `running`): a retry first records
/// the stages that completed in the run it retries as completed (their task runs copied, not
/// run again), then the stages without prerequisites start and fan-in goes on from both,
/// telling other processes of what it queued (and of the run's end, if it ends at once) as
/// `announce` says.
pub(crate) async fn begin_run(
    conn: &impl ConnectionTrait,
    run_id: i64,
    pipeline_id: i64,
    retry_of: Option<i64>,
    now: DateTime<Utc>,
    starting: Starting<'_>,
) -> Result<Effects, DbErr> {
    let copied = match retry_of {
        Some(old) => retries::copy_completed_stages(conn, old, run_id, now).await?,
        None => Vec::new(),
    };
    let roots = launches::root_stages(conn, pipeline_id).await?;
    advance::start_stages_after(conn, run_id, roots, copied, now, starting).await
}

/// Called in the transaction that ended run `ended_run` (its status became terminal, its lock
/// held): starts the oldest `queued` run of the same pipeline, if any (a run buffered by
/// `Overlap::BufferOne`), its stages claiming for `claim` as they start (the transaction's
/// chained claim, when it moved the run forward). A buffered run that ends at once (no task)
/// hands on to the next one. Returns whether task runs were queued.
///
/// Locks are taken in id order (the ended run, then the newer buffered one), as a
/// `CancelRunning` launch takes them, so the two never deadlock.
pub(crate) fn start_buffered<'a, C: ConnectionTrait>(
    conn: &'a C,
    ended_run: i64,
    now: DateTime<Utc>,
    claim: Option<&'a dyn StartClaims>,
) -> Pin<Box<dyn Future<Output = Result<Effects, DbErr>> + Send + 'a>> {
    Box::pin(async move {
        // Bounded: each round either starts a run or sees one leave `queued` (canceled).
        for _ in 0..64 {
            let Some(next) = launches::next_queued_run(conn, ended_run).await? else { return Ok(Effects::default()) };
            if lock_run(conn, next.id).await? != Some(RunStatus::Queued) || !launches::start_queued_run(conn, next.id, now).await? {
                continue;
            }
            tracing::info!(pipeline.run = next.id, after = ended_run, "buffered pipeline run started");
            // Only the wake-up (and the fill still to do) is handed on: the caller's `run_ended` (and the weights it
            // learns) concern the run that ended, not this one (which, if it ended at once,
            // ran no task to learn from, and was announced by its own notification; in this
            // process, `other_run_ended` wakes every waiter to read again).
            let started = begin_run(conn, next.id, next.pipeline_id, next.retry_of, now, Starting::LAUNCH.claiming(claim)).await?;
            return Ok(Effects { run_ended: false, other_run_ended: started.run_ended || started.other_run_ended, ..started });
        }
        Ok(Effects::default())
    })
}
