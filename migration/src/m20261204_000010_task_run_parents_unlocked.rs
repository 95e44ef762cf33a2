//! `cog_task_run` without foreign-key constraints to its parents, `cog_stage_run` and
//! `cog_task`, on PostgreSQL and MariaDB (issue 11; see `parent_keys` for the backends).
//!
//! On the server backends each inserted task run checked both parents with a locking read
//! (`FOR KEY SHARE` on PostgreSQL, a shared record lock on InnoDB): per task run two more
//! statements run by a trigger, a lock written into each parent row (a WAL record on
//! PostgreSQL), and, when runs of one pipeline start stages at the same time, a shared lock of
//! several transactions on each `cog_task` row (a MultiXact on PostgreSQL). Measured on
//! PostgreSQL, 4 processes, in alternating pairs: workload E 20,260–20,861 → 22,148–22,738
//! tasks/s (database CPU 66.5–68.7 → 57.7–58.9 µs per task); on MariaDB, workload F 2,672–2,851
//! → 4,513–4,675. In isolation a 40-task stage start spent as long in the two checks (0.63 ms)
//! as in the insert itself (0.62 ms).
//!
//! The parents are kept by cog's own statements instead. Every transaction that inserts task
//! runs (a stage start, a chunk of a big stage's fill, a retry's copy of completed stages)
//! commits only after it has locked their pipeline run and seen it `running` (a fill chunk
//! checks after its insert and rolls back otherwise); a run that has ended never runs again;
//! the prune deletes only ended runs, their errors, then their task runs, then their stage
//! runs; tasks are never deleted (a removed task is archived). The concurrency tests assert
//! that no task run lacks a parent (`tests/support::assert_no_orphans`), one of them with
//! prunes racing stage starts and fills. The other foreign keys stayed: their rows are written
//! once per run or stage run, or on failures (migration 000012 later dropped the stage runs'
//! too, for the stage starts of workload B and F).

use crate::parent_keys::ParentKeys;

/// Drops (up) `cog_task_run`'s foreign keys to `cog_stage_run` and `cog_task` on PostgreSQL
/// and MariaDB, or adds them back (down).
pub(crate) const MIGRATION: ParentKeys = ParentKeys {
    name: "m20261204_000010_task_run_parents_unlocked",
    table: "cog_task_run",
    parents: &[("stage_run_id", "cog_stage_run"), ("task_id", "cog_task")],
};
