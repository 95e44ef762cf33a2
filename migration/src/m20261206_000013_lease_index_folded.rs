//! One partial index of open task runs instead of two, on SQLite and PostgreSQL (issue 11):
//! `cog_task_run_open` becomes `(status, stage_run_id)` (it was `(stage_run_id, status)`), for
//! `queued` and `running` rows as before, and `cog_task_run_lease` (`lease_until` of `running`
//! rows) is dropped.
//!
//! The lease sweep's read (`running` task runs whose lease has expired) now walks the `running`
//! part of the open index, which holds as many entries as there are task runs in flight, and
//! compares their leases; a stage run's open task runs are still found by two probes of it,
//! one per status. What it saves: a claim wrote four index entries per task run and now
//! writes three, and a lease's renewal, which changes no indexed column any more, can be a
//! heap-only update. Measured on PostgreSQL, workload E on 4 processes (2026-12-06, 2 cores):
//! WAL written per task 2,268 → 2,201 bytes (two runs each, within 3 bytes). Its throughput
//! moved within the machine's noise that day, which toggled between about 60 and 95 µs of
//! PostgreSQL CPU per task from one run to the next whatever the build: 26,180 → 28,470
//! tasks/s at the steady rate in 4 pairs on copies of one migrated template, 24,080 → 22,080
//! in 6 pairs of the two builds (best runs 28,079 → 30,565).
//!
//! A stage run's open task runs are looked up by one status at a time (`stage_run_done` in
//! cog's store): PostgreSQL drops a condition that a partial index's own condition implies, so
//! `status IN ('queued', 'running')` alone would leave it the stage run as a condition on the
//! index's second column, a walk of every entry.
//!
//! MySQL/MariaDB has no partial indexes: its indexes stay as they are. The statements that
//! read these indexes write the statuses as literals (see `Sql::status` in cog's store).

use crate::partial_indexes::PartialIndexes;

/// The open index by status first, and no lease index.
const UP: &str = "
DROP INDEX cog_task_run_lease;
DROP INDEX cog_task_run_open;
CREATE INDEX cog_task_run_open ON cog_task_run (status, stage_run_id) WHERE status IN ('queued', 'running')";

/// Back to the open index by stage run first, and the lease index.
const DOWN: &str = "
DROP INDEX cog_task_run_open;
CREATE INDEX cog_task_run_open ON cog_task_run (stage_run_id, status) WHERE status IN ('queued', 'running');
CREATE INDEX cog_task_run_lease ON cog_task_run (lease_until) WHERE status = 'running'";

/// Folds the lease index into the open index (up), or splits them again (down), on SQLite and
/// PostgreSQL.
pub(crate) const MIGRATION: PartialIndexes = PartialIndexes { name: "m20261206_000013_lease_index_folded", up: UP, down: DOWN };
