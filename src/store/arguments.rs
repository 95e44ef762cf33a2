//! The statement of the launch-time argument check: the tasks a run of a pipeline would queue.

use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};

use super::{Backend, Sql};

/// A task a launch would run: its name, its cog's name and its own arguments (JSON text).
#[derive(Debug, Clone, FromQueryResult)]
pub(crate) struct LaunchedTask {
    pub(crate) task: String,
    pub(crate) cog: String,
    pub(crate) arguments: String,
}

/// The enabled tasks of the enabled, current stages of pipeline `pipeline_id` that call one of
/// `cogs`, in definition order: the tasks of those cogs a run of it queues.
pub(crate) async fn launched_tasks(conn: &impl ConnectionTrait, pipeline_id: i64, cogs: &[&str]) -> Result<Vec<LaunchedTask>, DbErr> {
    if cogs.is_empty() {
        return Ok(Vec::new());
    }
    Sql::new(
        Backend::of(conn)?,
        "SELECT t.name AS task, c.name AS cog, t.arguments AS arguments FROM cog_task t \
         JOIN cog_stage s ON s.id = t.stage_id JOIN cog_cog c ON c.id = t.cog_id WHERE s.pipeline_id = ",
    )
    .bind(pipeline_id)
    .push(" AND c.name IN (")
    .bind_list(cogs.iter().copied())
    .push(") AND t.enabled AND NOT t.archived AND s.enabled AND NOT s.archived ORDER BY s.position, t.position")
    .all(conn)
    .await
}
