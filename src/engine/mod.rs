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

use std::sync::atomic::{AtomicUsize, Ordering};

use sea_orm::{DatabaseTransaction, DbErr, TransactionTrait};

use crate::store::claims;

/// Learns task weights from run `run_id` inside its final transaction `txn` when `effects` say
/// the run ended and `learn` gives a sample size (DESIGN invariant 9): done before commit, so
/// whoever is told the run ended sees the new weights. The update runs under a savepoint:
/// if it fails for good, it is rolled back alone, logged, and the run still ends; a transient
/// failure (deadlock, lost connection) is returned so that the caller retries the transaction.
///
/// The weights' statement reads history and is planned for its values, through indexes only
/// ([`claims::custom_plans`]; the generic plans a transaction took with
/// [`claims::set_planner`], or found in its session, give way to plans for the values, so
/// callers learn last, or take them again): a generic plan is made once per connection, and
/// the one the warm-up would make, on empty tables, read the runs' task runs through a sort
/// of everything — 167 ms a learning instead of 3.5 for two runs of 200 tasks in workload F
/// (2026-12-05).
pub(crate) async fn learn_if_ended(txn: &DatabaseTransaction, run_id: i64, effects: Effects, learn: Option<u32>) -> Result<(), DbErr> {
    if !effects.run_ended {
        return Ok(());
    }
    learn_ended(txn, &[run_id], learn).await
}

/// [`learn_if_ended`] for runs `runs` of one pipeline that ended in `txn`, learned together:
/// once for a task that ran in several of them (each learning reads every duration the
/// transaction sees, so a second one would only write the same weights again, each write of a
/// row this transaction wrote checking its foreign keys anew).
pub(crate) async fn learn_ended(txn: &DatabaseTransaction, runs: &[i64], learn: Option<u32>) -> Result<(), DbErr> {
    let (Some(sample_size), Some(&run_id)) = (learn, runs.first()) else { return Ok(()) };
    claims::custom_plans(txn).await?;
    let savepoint = txn.begin().await?;
    let learning = Learning::start(&LEARNING);
    let learned = crate::definitions::weights::update_weights(&savepoint, runs, sample_size).await;
    drop(learning);
    match learned {
        Ok(_) => savepoint.commit().await?,
        // A deadlock or lost connection may have ended the whole transaction (MySQL rolls it
        // all back on a deadlock): the caller retries it, weights included.
        Err(e) if crate::store::errors::is_transient(&e) => return Err(e),
        Err(e) => {
            tracing::error!(pipeline.run = run_id, pipeline.runs = ?runs, error = %e, "could not learn task weights from the run; they stay as they were and the run ends anyway");
            savepoint.rollback().await?
        }
    }
    Ok(())
}

/// [`learn_ended`] for runs `runs` (that ended in `txn`) of any pipelines: the runs of each
/// pipeline together, the pipelines in the order of their weights locks
/// (`store::weights_lock_groups`), so that two transactions learning several never wait for
/// each other in a circle. Nothing when `learn` is `None` or no run ended.
pub(crate) async fn learn_ended_runs(txn: &DatabaseTransaction, runs: &[i64], learn: Option<u32>) -> Result<(), DbErr> {
    if learn.is_none() || runs.is_empty() {
        return Ok(());
    }
    for group in crate::store::weights_lock_groups(txn, runs).await? {
        learn_ended(txn, &group, learn).await?;
    }
    Ok(())
}

/// Transactions of this process inside weight learning now (see [`learning_now`]).
static LEARNING: AtomicUsize = AtomicUsize::new(0);

/// How many transactions of this process are inside weight learning now
/// ([`learn_if_ended`]): mostly waiting for the weights lock of their pipeline, which the run
/// ends of its other runs hold one after the other. The outcome writer does not count them
/// against its limit of concurrent writes (`worker::completions`).
pub(crate) fn learning_now() -> usize {
    LEARNING.load(Ordering::Relaxed)
}

/// Counts a transaction in a learning counter for as long as it lives (a learning that fails,
/// panics or is dropped mid-way is uncounted as well).
struct Learning(&'static AtomicUsize);

impl Learning {
    fn start(counter: &'static AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Learning(counter)
    }
}

impl Drop for Learning {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Commits `txn`, the transition of run `run_id` that had `effects`; when it ended the run, the
/// run is counted in `cog_pipeline_runs_total` once the commit has succeeded.
pub(crate) async fn commit(txn: DatabaseTransaction, run_id: i64, effects: Effects) -> Result<(), DbErr> {
    let ended = crate::metrics::ended_run(&txn, run_id, effects).await?;
    txn.commit().await?;
    crate::metrics::run_ended(ended.as_ref());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_learning_is_counted_while_it_lasts_even_when_it_panics() {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let first = Learning::start(&COUNTER);
        let second = Learning::start(&COUNTER);
        assert_eq!(COUNTER.load(Ordering::Relaxed), 2);
        drop(first);
        assert_eq!(COUNTER.load(Ordering::Relaxed), 1);
        let unwound = std::panic::catch_unwind(move || {
            let _second = second;
            panic!("a learning that panics");
        });
        assert!(unwound.is_err());
        assert_eq!(COUNTER.load(Ordering::Relaxed), 0);
    }
}
