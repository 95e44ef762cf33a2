//! Indexes on active task runs only (issue 11): on SQLite and PostgreSQL the claim index, the
//! open-task-runs-of-a-stage-run index and a new lease index hold only `queued` / `running`
//! rows, and the `completed_at` index only ended ones, so they stay as small as the work in
//! flight however long the history grows, and a launch writes no `completed_at` entries.
//! MySQL/MariaDB has no partial indexes: its indexes stay as they are.
//!
//! Statements that must use these indexes write the statuses as literals (a bound status
//! hides the condition from the planner; see `Sql::status` in cog's store).

use crate::partial_indexes::PartialIndexes;

/// The partial indexes, replacing full ones.
const UP: &str = r#"
DROP INDEX cog_task_run_claim;
CREATE INDEX cog_task_run_claim ON cog_task_run (queue, weight DESC, id) WHERE status = 'queued';
DROP INDEX cog_task_run_stage_status;
CREATE INDEX cog_task_run_open ON cog_task_run (stage_run_id, status) WHERE status IN ('queued', 'running');
CREATE INDEX cog_task_run_lease ON cog_task_run (lease_until) WHERE status = 'running';
DROP INDEX cog_task_run_completed_at;
CREATE INDEX cog_task_run_completed_at ON cog_task_run (completed_at) WHERE completed_at IS NOT NULL
"#;

/// The full indexes of migrations 000001 and 000002, as they were.
const DOWN: &str = r#"
DROP INDEX cog_task_run_claim;
CREATE INDEX cog_task_run_claim ON cog_task_run (status, queue, weight DESC, id);
DROP INDEX cog_task_run_open;
CREATE INDEX cog_task_run_stage_status ON cog_task_run (stage_run_id, status);
DROP INDEX cog_task_run_lease;
DROP INDEX cog_task_run_completed_at;
CREATE INDEX cog_task_run_completed_at ON cog_task_run (completed_at)
"#;

/// Replaces (up) or restores (down) the task-run indexes on SQLite and PostgreSQL.
pub(crate) const MIGRATION: PartialIndexes = PartialIndexes { name: "m20261203_000005_active_indexes", up: UP, down: DOWN };
