//! Queue state: pausing and resuming a queue, the queues with their depths, and the change
//! counter that processes without notifications (MySQL) watch.

use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};

use super::{Backend, Sql};
use crate::entity::status::RunStatus;

/// Pauses (`paused = true`) or resumes queue `name` and bumps its `version`; returns whether
/// the queue exists.
///
/// On PostgreSQL and MySQL the update waits for every claim transaction that holds the
/// queue's row in share mode (see [`super::claims::claim`]), so once it commits no claim that
/// read the queue as running is still open; SQLite runs one writer at a time.
pub(crate) async fn set_paused(conn: &impl ConnectionTrait, name: &str, paused: bool) -> Result<bool, DbErr> {
    let n = Sql::new(Backend::of(conn)?, "UPDATE cog_queue SET paused = ")
        .bind(paused)
        .push(", version = version + 1 WHERE name = ")
        .bind(name)
        .execute(conn)
        .await?;
    Ok(n > 0)
}

/// A queue, its queued task runs and whether it is paused.
#[derive(Debug, Clone, FromQueryResult)]
pub(crate) struct QueueRow {
    pub(crate) name: String,
    pub(crate) queued: i64,
    pub(crate) paused: bool,
}

/// Every known queue with its queued task runs (zero included) and paused flag, by name.
pub(crate) async fn queues(conn: &impl ConnectionTrait) -> Result<Vec<QueueRow>, DbErr> {
    Sql::new(Backend::of(conn)?, "SELECT q.name, q.paused, (SELECT COUNT(*) FROM cog_task_run t WHERE t.queue = q.name AND t.status = ")
        .status(RunStatus::Queued)
        .push(") AS queued FROM cog_queue q ORDER BY q.name")
        .all(conn)
        .await
}

/// What a process without notifications watches to learn that there may be new work: the
/// newest task run id (it grows whenever any process starts a stage) and the sum of the
/// queues' versions (it grows with every pause and resume).
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromQueryResult)]
pub(crate) struct Changes {
    newest: Option<i64>,
    queues: Option<i64>,
}

/// Reads the [`Changes`]: the end of `cog_task_run`'s primary key and the few `cog_queue` rows.
pub(crate) async fn changes(conn: &impl ConnectionTrait) -> Result<Option<Changes>, DbErr> {
    let b = Backend::of(conn)?;
    // SUM of a BIGINT is a DECIMAL on MySQL and a NUMERIC on PostgreSQL: cast it back.
    let sum = match b {
        Backend::MySql => "CAST(SUM(version) AS SIGNED)",
        Backend::Sqlite | Backend::Postgres => "CAST(SUM(version) AS BIGINT)",
    };
    Sql::new(b, "SELECT (SELECT MAX(id) FROM cog_task_run) AS newest, (SELECT ").push(sum).push(" FROM cog_queue) AS queues").one(conn).await
}
