//! `cog_stage_run` without foreign-key constraints to its parents, `cog_pipeline_run` and
//! `cog_stage`, on PostgreSQL and MariaDB (issue 11; see `parent_keys` for the backends), as
//! migration 000010 did for `cog_task_run`.
//!
//! Every stage start inserts a stage run, and each insert checked both parents with a locking
//! read (`FOR KEY SHARE` on PostgreSQL): two more statements run by a trigger, and a lock
//! written into the run's row and into the stage's definition row (a WAL record each on
//! PostgreSQL; when the runs of one pipeline start the same stage at once, as workload F's 50
//! runs do, several transactions' shared lock on one `cog_stage` row, a MultiXact). In a stage
//! hand-off (workload B) those checks ran after every statement of the start (PostgreSQL's
//! `AfterTriggerEndQuery`: 2 % of the machine's CPU samples, 6 % of PostgreSQL's). Measured on
//! PostgreSQL, in alternating pairs, each database a copy of the same template with and
//! without the constraints (2026-12-06, 2 cores): workload B with 1,000 stages, hand-off p50
//! 1.055 → 0.96 ms (6 pairs), PostgreSQL CPU 735 → 705 µs a task; workload F on 4 processes
//! 15,180 → 16,430 tasks/s (6 pairs), PostgreSQL CPU 96 → 88 µs a task.
//!
//! The parents are kept by cog's own statements instead. A stage run is inserted only by a
//! stage start or a retry's copy of completed stages, in a transaction that holds its run's
//! lock and has seen the run `running` (or inserted the run itself); a run that has ended never
//! runs again; the prune deletes only ended runs, their errors, task runs and stage runs first;
//! stages are never deleted (a removed stage is archived). The concurrency tests assert that
//! no stage run lacks a parent (`tests/support::assert_no_orphans`).

use crate::parent_keys::ParentKeys;

/// Drops (up) `cog_stage_run`'s foreign keys to `cog_pipeline_run` and `cog_stage` on
/// PostgreSQL and MariaDB, or adds them back (down).
pub(crate) const MIGRATION: ParentKeys = ParentKeys {
    name: "m20261206_000012_stage_run_parents_unlocked",
    table: "cog_stage_run",
    parents: &[("pipeline_run_id", "cog_pipeline_run"), ("stage_id", "cog_stage")],
};
