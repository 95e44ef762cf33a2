//! History retention: the prune passes behind `rt.prune(older_than)` (in `runtime::control`)
//! and the scheduler leader's hourly prune (`Config::retention`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, DbErr};
use serde::Serialize;

use crate::store::prune::{self, Child};
use crate::store::{self, now};

/// Most rows deleted by one transaction, so a prune never holds locks for long.
pub(crate) const ROWS_PER_TRANSACTION: usize = 1_000;

/// How often the scheduler leader prunes when `Config::retention` is set.
pub(crate) const RETENTION_INTERVAL: Duration = Duration::from_secs(3600);

/// Most transactions one scheduler pass spends pruning; the rest waits for the next pass,
/// so a long backlog never holds up schedule ticks for long.
const TRANSACTIONS_PER_PASS: usize = 200;

/// What a prune deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PruneReport {
    /// Pipeline runs deleted.
    pub pipeline_runs: u64,
    /// Their stage runs.
    pub stage_runs: u64,
    /// Their task runs.
    pub task_runs: u64,
    /// The `cog_error` rows of those task runs.
    pub errors: u64,
}

/// Deletes runs that ended before `before` and everything under them, spending at most
/// `budget` transactions; returns what it deleted and whether runs to delete are left.
pub(crate) async fn prune_before(db: &DatabaseConnection, before: DateTime<Utc>, mut budget: usize) -> Result<(PruneReport, bool), DbErr> {
    let mut report = PruneReport::default();
    loop {
        let runs = prune::ended_runs(db, before, ROWS_PER_TRANSACTION).await?;
        if runs.is_empty() {
            return Ok((report, false));
        }
        for child in [Child::Errors, Child::TaskRuns, Child::StageRuns] {
            loop {
                if budget == 0 {
                    return Ok((report, true));
                }
                budget -= 1;
                let txn = store::begin(db).await?;
                let deleted = prune::delete_under(&txn, child, &runs, ROWS_PER_TRANSACTION).await?;
                txn.commit().await?;
                match child {
                    Child::Errors => report.errors += deleted,
                    Child::TaskRuns => report.task_runs += deleted,
                    Child::StageRuns => report.stage_runs += deleted,
                }
                if deleted < ROWS_PER_TRANSACTION as u64 {
                    break;
                }
            }
        }
        if budget == 0 {
            return Ok((report, true));
        }
        budget -= 1;
        let txn = store::begin(db).await?;
        report.pipeline_runs += prune::delete_runs(&txn, &runs).await?;
        txn.commit().await?;
    }
}

/// The scheduler leader's prune (`Config::retention`): when the last one is an hour old by
/// the scheduler's clock (`now`), deletes what ended longer than `retention` ago, at most
/// [`TRANSACTIONS_PER_PASS`] transactions per call (the next pass goes on until done).
/// Returns what it deleted, or `None` when no prune was due.
pub(crate) async fn prune_if_due(
    db: &DatabaseConnection,
    retention: Option<Duration>,
    holder: &str,
    now_by_schedule: DateTime<Utc>,
) -> Result<Option<PruneReport>, DbErr> {
    let Some(retention) = retention else { return Ok(None) };
    if prune::retention_due(db).await?.is_some_and(|due| due > now_by_schedule) {
        return Ok(None);
    }
    let keep = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    let before = now().checked_sub_signed(keep).unwrap_or(DateTime::<Utc>::MIN_UTC);
    let (report, more) = prune_before(db, before, TRANSACTIONS_PER_PASS).await?;
    if !more {
        let interval = chrono::Duration::from_std(RETENTION_INTERVAL).unwrap_or(chrono::Duration::hours(1));
        prune::set_retention_due(db, holder, now_by_schedule + interval).await?;
    }
    if report != PruneReport::default() {
        tracing::info!(?report, "retention: history pruned");
    }
    Ok(Some(report))
}
