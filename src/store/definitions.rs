//! The statements of `define`: pipelines, queues, registry rows, stages, prerequisites and
//! tasks upserted by name. PostgreSQL and SQLite say `ON CONFLICT ... DO UPDATE ... RETURNING`;
//! MySQL says `ON DUPLICATE KEY UPDATE` and reads the id back.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, Value};

use super::{Backend, Id, Sql};

/// A pipeline row to upsert.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PipelineRow<'a> {
    pub(crate) name: &'a str,
    pub(crate) enabled: bool,
    pub(crate) schedule: Option<&'a str>,
    pub(crate) timezone: &'a str,
    pub(crate) overlap: crate::spec::Overlap,
    pub(crate) now: DateTime<Utc>,
    /// Where a new or changed schedule starts counting ticks.
    pub(crate) schedule_base: Option<DateTime<Utc>>,
}

/// The id of the row named `name` in `table` (read back after an upsert on MySQL).
async fn id_by_name(conn: &impl ConnectionTrait, b: Backend, table: &str, name: &str) -> Result<i64, DbErr> {
    Sql::new(b, &format!("SELECT id FROM {table} WHERE name = "))
        .bind(name)
        .one::<Id>(conn)
        .await?
        .map(|r| r.id)
        .ok_or_else(|| DbErr::RecordNotFound(format!("{table} row `{name}` just upserted")))
}

/// Inserts or updates pipeline `row.name`; returns its id. An unchanged schedule and time zone
/// keep `last_tick`; a new or changed one starts from `row.schedule_base`.
pub(crate) async fn upsert_pipeline(conn: &impl ConnectionTrait, row: PipelineRow<'_>) -> Result<i64, DbErr> {
    let b = Backend::of(conn)?;
    let insert =
        Sql::new(b, "INSERT INTO cog_pipeline (name, enabled, schedule, timezone, prevent_overlap, overlap, last_tick, created_at, updated_at) VALUES (")
            .bind_list([
                Value::from(row.name),
                row.enabled.into(),
                row.schedule.map(str::to_owned).into(),
                row.timezone.into(),
                row.overlap.prevents_overlap().into(),
                row.overlap.as_str().into(),
                row.schedule_base.into(),
                row.now.into(),
                row.now.into(),
            ])
            .push(")");
    match b {
        Backend::Sqlite | Backend::Postgres => insert
            .push(
                " ON CONFLICT (name) DO UPDATE SET enabled = excluded.enabled, schedule = excluded.schedule, timezone = excluded.timezone, \
                 prevent_overlap = excluded.prevent_overlap, overlap = excluded.overlap, updated_at = excluded.updated_at, \
                 last_tick = CASE WHEN cog_pipeline.schedule IS NOT DISTINCT FROM excluded.schedule AND cog_pipeline.timezone = excluded.timezone \
                 THEN cog_pipeline.last_tick ELSE excluded.last_tick END RETURNING id",
            )
            .one::<Id>(conn)
            .await?
            .map(|r| r.id)
            .ok_or(DbErr::RecordNotInserted),
        Backend::MySql => {
            // Assignments run left to right and later ones see earlier ones: `last_tick` is
            // decided first, on the old schedule and time zone.
            insert
                .push(
                    " ON DUPLICATE KEY UPDATE \
                     last_tick = CASE WHEN schedule <=> VALUES(schedule) AND timezone = VALUES(timezone) THEN last_tick ELSE VALUES(last_tick) END, \
                     enabled = VALUES(enabled), schedule = VALUES(schedule), timezone = VALUES(timezone), \
                     prevent_overlap = VALUES(prevent_overlap), overlap = VALUES(overlap), updated_at = VALUES(updated_at)",
                )
                .execute(conn)
                .await?;
            id_by_name(conn, b, "cog_pipeline", row.name).await
        }
    }
}

/// The id of queue `name`, inserting it if new.
pub(crate) async fn upsert_queue(conn: &impl ConnectionTrait, name: &str) -> Result<i64, DbErr> {
    let b = Backend::of(conn)?;
    id_or_insert(conn, b, "cog_queue", name, Sql::new(b, "INSERT INTO cog_queue (name) VALUES (").bind(name).push(")")).await
}

/// The id of row `name` of `table`, running `insert` (an `INSERT` of that row) only when it is
/// missing. An existing row is read, never written: writing it would lock it, and claims hold
/// queue rows in share mode, so `define` would wait for them and could deadlock with them.
async fn id_or_insert(conn: &impl ConnectionTrait, b: Backend, table: &str, name: &str, insert: Sql) -> Result<i64, DbErr> {
    let find = || Sql::new(b, &format!("SELECT id FROM {table} WHERE name = ")).bind(name).one::<Id>(conn);
    if let Some(found) = find().await? {
        return Ok(found.id);
    }
    // Another transaction may insert the same name meanwhile: then nothing is inserted here
    // and its row is read.
    match b {
        Backend::Sqlite | Backend::Postgres => insert.push(" ON CONFLICT (name) DO NOTHING").execute(conn).await?,
        Backend::MySql => insert.push(" ON DUPLICATE KEY UPDATE name = name").execute(conn).await?,
    };
    id_by_name(conn, b, table, name).await
}

/// A registry table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Registry {
    /// `cog_cog`.
    Cogs,
    /// `cog_error_handler`.
    ErrorHandlers,
}

impl Registry {
    fn table(self) -> &'static str {
        match self {
            Self::Cogs => "cog_cog",
            Self::ErrorHandlers => "cog_error_handler",
        }
    }
}

/// The id of registry row `name` in `registry`, inserting it (not present: no live worker is
/// known to carry it yet) if no worker has recorded it.
pub(crate) async fn registered(conn: &impl ConnectionTrait, registry: Registry, name: &str, module: &str, now: DateTime<Utc>) -> Result<i64, DbErr> {
    let b = Backend::of(conn)?;
    let table = registry.table();
    let insert = Sql::new(b, &format!("INSERT INTO {table} (name, module, present, updated_at) VALUES ("))
        .bind_list([Value::from(name), module.into(), false.into(), now.into()])
        .push(")");
    id_or_insert(conn, b, table, name, insert).await
}

/// Archives every stage and task of pipeline `pipeline_id` and removes its prerequisites, before
/// `define` writes back the ones in the spec.
pub(crate) async fn archive_contents(conn: &impl ConnectionTrait, pipeline_id: i64) -> Result<(), DbErr> {
    let b = Backend::of(conn)?;
    Sql::new(b, "UPDATE cog_stage SET archived = ").bind(true).push(" WHERE pipeline_id = ").bind(pipeline_id).execute(conn).await?;
    Sql::new(b, "UPDATE cog_task SET archived = ")
        .bind(true)
        .push(" WHERE stage_id IN (SELECT id FROM cog_stage WHERE pipeline_id = ")
        .bind(pipeline_id)
        .push(")")
        .execute(conn)
        .await?;
    Sql::new(b, "DELETE FROM cog_stage_prerequisite WHERE stage_id IN (SELECT id FROM cog_stage WHERE pipeline_id = ")
        .bind(pipeline_id)
        .push(")")
        .execute(conn)
        .await?;
    Ok(())
}

/// Inserts or updates (and un-archives) stage `name` of pipeline `pipeline_id`; returns its id.
pub(crate) async fn upsert_stage(conn: &impl ConnectionTrait, pipeline_id: i64, name: &str, enabled: bool, position: i32) -> Result<i64, DbErr> {
    let b = Backend::of(conn)?;
    let insert = Sql::new(b, "INSERT INTO cog_stage (pipeline_id, name, enabled, archived, position) VALUES (")
        .bind_list([Value::from(pipeline_id), name.into(), enabled.into(), false.into(), position.into()])
        .push(")");
    match b {
        Backend::Sqlite | Backend::Postgres => insert
            .push(" ON CONFLICT (pipeline_id, name) DO UPDATE SET enabled = excluded.enabled, archived = excluded.archived, position = excluded.position RETURNING id")
            .one::<Id>(conn)
            .await?
            .map(|r| r.id)
            .ok_or(DbErr::RecordNotInserted),
        Backend::MySql => {
            insert.push(" ON DUPLICATE KEY UPDATE enabled = VALUES(enabled), archived = VALUES(archived), position = VALUES(position)").execute(conn).await?;
            Sql::new(b, "SELECT id FROM cog_stage WHERE pipeline_id = ")
                .bind(pipeline_id)
                .push(" AND name = ")
                .bind(name)
                .one::<Id>(conn)
                .await?
                .map(|r| r.id)
                .ok_or_else(|| DbErr::RecordNotFound(format!("cog_stage row `{name}` just upserted")))
        }
    }
}

/// Records that stage `stage_id` runs after `prerequisite_id` (once).
pub(crate) async fn insert_prerequisite(conn: &impl ConnectionTrait, stage_id: i64, prerequisite_id: i64) -> Result<(), DbErr> {
    let b = Backend::of(conn)?;
    let insert =
        Sql::new(b, "INSERT INTO cog_stage_prerequisite (stage_id, prerequisite_id) VALUES (").bind(stage_id).push(", ").bind(prerequisite_id).push(")");
    match b {
        Backend::Sqlite | Backend::Postgres => insert.push(" ON CONFLICT DO NOTHING"),
        Backend::MySql => insert.push(" ON DUPLICATE KEY UPDATE stage_id = stage_id"),
    }
    .execute(conn)
    .await?;
    Ok(())
}

/// A task row to upsert.
#[derive(Debug, Clone)]
pub(crate) struct TaskRow {
    pub(crate) stage_id: i64,
    pub(crate) name: String,
    pub(crate) cog_id: i64,
    /// JSON text.
    pub(crate) arguments: String,
    pub(crate) queue_id: i64,
    pub(crate) weight: f64,
    pub(crate) critical: bool,
    pub(crate) error_handler_id: Option<i64>,
    pub(crate) enabled: bool,
    pub(crate) max_retries: i32,
    pub(crate) timeout_ms: Option<i64>,
    pub(crate) position: i32,
}

/// Inserts or updates (and un-archives) `rows` by `(stage_id, name)` in one statement. An
/// existing task keeps its weight (learned from history) when `keep_weight`.
pub(crate) async fn upsert_tasks(conn: &impl ConnectionTrait, rows: &[TaskRow], keep_weight: bool) -> Result<(), DbErr> {
    if rows.is_empty() {
        return Ok(());
    }
    let b = Backend::of(conn)?;
    let mut sql = Sql::new(
        b,
        "INSERT INTO cog_task (stage_id, name, cog_id, arguments, queue_id, weight, critical, error_handler_id, enabled, archived, max_retries, timeout_ms, position) VALUES ",
    );
    for (i, t) in rows.iter().enumerate() {
        sql = sql
            .push(if i == 0 { "(" } else { ", (" })
            .bind_list([
                Value::from(t.stage_id),
                t.name.as_str().into(),
                t.cog_id.into(),
                t.arguments.as_str().into(),
                t.queue_id.into(),
                t.weight.into(),
                t.critical.into(),
                t.error_handler_id.into(),
                t.enabled.into(),
                false.into(),
                t.max_retries.into(),
                t.timeout_ms.into(),
                t.position.into(),
            ])
            .push(")");
    }
    let sql = match b {
        Backend::Sqlite | Backend::Postgres => sql
            .push(
                " ON CONFLICT (stage_id, name) DO UPDATE SET cog_id = excluded.cog_id, arguments = excluded.arguments, queue_id = excluded.queue_id, \
                 critical = excluded.critical, error_handler_id = excluded.error_handler_id, enabled = excluded.enabled, archived = excluded.archived, \
                 max_retries = excluded.max_retries, timeout_ms = excluded.timeout_ms, position = excluded.position",
            )
            .push(if keep_weight { "" } else { ", weight = excluded.weight" }),
        Backend::MySql => sql
            .push(
                " ON DUPLICATE KEY UPDATE cog_id = VALUES(cog_id), arguments = VALUES(arguments), queue_id = VALUES(queue_id), \
                 critical = VALUES(critical), error_handler_id = VALUES(error_handler_id), enabled = VALUES(enabled), archived = VALUES(archived), \
                 max_retries = VALUES(max_retries), timeout_ms = VALUES(timeout_ms), position = VALUES(position)",
            )
            .push(if keep_weight { "" } else { ", weight = VALUES(weight)" }),
    };
    sql.execute(conn).await?;
    Ok(())
}

/// The first (by name) other pipeline with a current stage named `stage`.
pub(crate) async fn pipeline_with_stage(conn: &impl ConnectionTrait, stage: &str, except_pipeline: &str) -> Result<Option<String>, DbErr> {
    #[derive(FromQueryResult)]
    struct Name {
        name: String,
    }
    let row = Sql::new(Backend::of(conn)?, "SELECT p.name FROM cog_stage s JOIN cog_pipeline p ON p.id = s.pipeline_id WHERE s.name = ")
        .bind(stage)
        .push(" AND p.name <> ")
        .bind(except_pipeline)
        .push(" AND NOT s.archived ORDER BY p.name LIMIT 1")
        .one::<Name>(conn)
        .await?;
    Ok(row.map(|r| r.name))
}
