//! The index weight learning reads (issue 11), on SQLite and PostgreSQL: each task's completed
//! durations, newest first, in a partial index of completed task runs only, instead of an index
//! of every task run keyed by `(task_id, status, id)`. A task run's status changes twice before
//! it completes (queued, running), and each change wrote a new entry in the full index; the
//! partial one gets a single entry, at completion. MySQL/MariaDB has no partial indexes: its
//! index stays as it is.
//!
//! `cog_task_run.task_id`'s foreign key then has no index of all task runs behind it on SQLite
//! and PostgreSQL: deleting a `cog_task` row would read every task run to check it. cog never
//! deletes tasks (a task dropped from a definition is archived, its history kept).
//!
//! The learning statements write the status as a literal so that the planner sees the
//! condition (see migration `m20261203_000005_active_indexes`).

use crate::partial_indexes::PartialIndexes;

/// The partial index, replacing the full one.
const UP: &str = r#"
CREATE INDEX cog_task_run_durations ON cog_task_run (task_id, id) WHERE status = 'completed' AND duration_ms IS NOT NULL;
DROP INDEX cog_task_run_task
"#;

/// The full index of migration 000001, as it was.
const DOWN: &str = r#"
CREATE INDEX cog_task_run_task ON cog_task_run (task_id, status, id);
DROP INDEX cog_task_run_durations
"#;

/// Replaces (up) or restores (down) the durations index on SQLite and PostgreSQL.
pub(crate) const MIGRATION: PartialIndexes = PartialIndexes { name: "m20261204_000008_duration_index", up: UP, down: DOWN };
