//! The index an idle worker reads to learn when the next retry becomes due (issue 11), on
//! SQLite and PostgreSQL: queued task runs that have run before (`attempt > 0`), by queue and
//! `run_after`. Only a retry's back-off puts `run_after` in the future; a task run queued by a
//! stage start or a fill has attempt 0 and is due at once, so `next_due` reads the earliest
//! retry here and looks for any one queued task run of attempt 0 through the claim index. A
//! task run has an entry here only while it is queued again after an attempt (a retry, or a
//! shutdown's give-back): a stage start's insert (attempt 0) and a claim's update (status
//! `running`) write none.
//!
//! Before, `next_due` read every queued task run of the worker's queues through the claim
//! index: 0.73–0.83 ms with 2,000 queued (workload F, which asks after about one claim in
//! three), against 0.13–0.14 ms now (`pgbench`, one client, 2026-12-05). MySQL/MariaDB has no
//! partial indexes: there the statement reads as it did.

use crate::partial_indexes::PartialIndexes;

/// The partial index of queued task runs waiting for a retry. `status` and `attempt` are
/// written as literals by the statements that read it.
const UP: &str = "CREATE INDEX cog_task_run_retries ON cog_task_run (queue, run_after) WHERE status = 'queued' AND attempt > 0";

/// Back to no such index.
const DOWN: &str = "DROP INDEX cog_task_run_retries";

/// Adds (up) or drops (down) the retries index on SQLite and PostgreSQL.
pub(crate) const MIGRATION: PartialIndexes = PartialIndexes { name: "m20261205_000011_retry_index", up: UP, down: DOWN };
