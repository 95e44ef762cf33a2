//! Which cogs and error handlers live workers carry (`cog_worker`, `cog_worker_cog`,
//! `cog_worker_error_handler`), and `cog_cog.present` / `cog_error_handler.present` kept equal
//! to "carried by a live worker".
//!
//! Only a started runtime writes here (`start()` registers, its heartbeat renews,
//! `shutdown()` deregisters): `build()` alone, as in a standalone admin, writes nothing about
//! cogs, so a binary without some cogs never marks them missing for the others.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query, SelectStatement};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};

use crate::entity::{cog, error_handler, worker, worker_cog, worker_error_handler};
use crate::registry;

/// How long a dead worker's rows are kept before any live worker deletes them.
const FORGET_DEAD_AFTER: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// Who is registering: the worker's name, queues and liveness window.
pub(crate) struct WorkerRecord<'a> {
    /// `cog_worker.name`.
    pub(crate) name: &'a str,
    /// The queues it works on.
    pub(crate) queues: &'a [String],
    /// How long a heartbeat keeps it live.
    pub(crate) alive_for: chrono::TimeDelta,
}

/// A cog's parameters as recorded in `cog_cog.parameters`: `[{"name", "type_name", "optional"}]`.
fn parameters_json(def: &registry::CogDef) -> String {
    let list: Vec<serde_json::Value> =
        def.parameters.iter().map(|p| serde_json::json!({ "name": p.name, "type_name": p.type_name, "optional": p.optional })).collect();
    serde_json::Value::Array(list).to_string()
}

/// Registers this worker and the cogs and error handlers compiled into it (upserting their
/// `cog_cog` / `cog_error_handler` rows), replacing an earlier row of the same name, and
/// refreshes `present`. Returns the worker's id.
pub(crate) async fn register(db: &DatabaseConnection, record: &WorkerRecord<'_>, now: DateTime<Utc>) -> Result<i64, DbErr> {
    let txn = super::begin(db).await?;
    super::lock_definitions(&txn).await?;
    let cogs: Vec<_> = registry::cogs().iter().map(|c| (c.name, c.module, parameters_json(c))).collect();
    let handlers: Vec<_> = registry::error_handlers().iter().map(|h| (h.name, h.module)).collect();
    if !cogs.is_empty() {
        cog::Entity::insert_many(cogs.iter().map(|(name, module, parameters)| cog::ActiveModel {
            name: Set((*name).to_owned()),
            module: Set((*module).to_owned()),
            present: Set(true),
            parameters: Set(Some(parameters.clone())),
            updated_at: Set(now),
            ..Default::default()
        }))
        .on_conflict(
            OnConflict::column(cog::Column::Name)
                .update_columns([cog::Column::Module, cog::Column::Present, cog::Column::Parameters, cog::Column::UpdatedAt])
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await?;
    }
    if !handlers.is_empty() {
        error_handler::Entity::insert_many(handlers.iter().map(|(name, module)| error_handler::ActiveModel {
            name: Set((*name).to_owned()),
            module: Set((*module).to_owned()),
            present: Set(true),
            updated_at: Set(now),
            ..Default::default()
        }))
        .on_conflict(
            OnConflict::column(error_handler::Column::Name)
                .update_columns([error_handler::Column::Module, error_handler::Column::Present, error_handler::Column::UpdatedAt])
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await?;
    }
    if let Some(old) = worker::Entity::find().filter(worker::Column::Name.eq(record.name)).one(&txn).await? {
        delete_worker(&txn, old.id).await?;
    }
    let id = worker::Entity::insert(worker::ActiveModel {
        name: Set(record.name.to_owned()),
        queues: Set(record.queues.join(",")),
        started_at: Set(now),
        heartbeat_at: Set(now),
        alive_until: Set(now + record.alive_for),
        ..Default::default()
    })
    .exec(&txn)
    .await?
    .last_insert_id;
    let cog_ids = cog::Entity::find().filter(cog::Column::Name.is_in(cogs.iter().map(|c| c.0))).all(&txn).await?;
    if !cog_ids.is_empty() {
        worker_cog::Entity::insert_many(cog_ids.iter().map(|c| worker_cog::ActiveModel { worker_id: Set(id), cog_id: Set(c.id) }))
            .exec_without_returning(&txn)
            .await?;
    }
    let handler_ids = error_handler::Entity::find().filter(error_handler::Column::Name.is_in(handlers.iter().map(|h| h.0))).all(&txn).await?;
    if !handler_ids.is_empty() {
        worker_error_handler::Entity::insert_many(
            handler_ids.iter().map(|h| worker_error_handler::ActiveModel { worker_id: Set(id), error_handler_id: Set(h.id) }),
        )
        .exec_without_returning(&txn)
        .await?;
    }
    refresh_present(&txn, now).await?;
    txn.commit().await?;
    Ok(id)
}

/// Renews worker `id`'s liveness; forgets workers dead for a while and refreshes `present`.
/// Returns false when the row is gone (deleted as dead while this process was stalled): the
/// caller registers again.
pub(crate) async fn heartbeat(db: &DatabaseConnection, id: i64, alive_for: chrono::TimeDelta, now: DateTime<Utc>) -> Result<bool, DbErr> {
    let txn = super::begin(db).await?;
    let renewed = worker::Entity::update_many()
        .col_expr(worker::Column::HeartbeatAt, Expr::value(now))
        .col_expr(worker::Column::AliveUntil, Expr::value(now + alive_for))
        .filter(worker::Column::Id.eq(id))
        .exec(&txn)
        .await?
        .rows_affected
        == 1;
    let dead = worker::Entity::find().filter(worker::Column::AliveUntil.lt(now - FORGET_DEAD_AFTER)).all(&txn).await?;
    for worker in dead {
        tracing::info!(worker = %worker.name, last_heartbeat = %worker.heartbeat_at, "forgetting a worker that stopped without shutting down");
        delete_worker(&txn, worker.id).await?;
    }
    refresh_present(&txn, now).await?;
    txn.commit().await?;
    Ok(renewed)
}

/// Removes worker `id` (on shutdown) and refreshes `present`.
pub(crate) async fn deregister(db: &DatabaseConnection, id: i64, now: DateTime<Utc>) -> Result<(), DbErr> {
    let txn = super::begin(db).await?;
    delete_worker(&txn, id).await?;
    refresh_present(&txn, now).await?;
    txn.commit().await
}

/// Deletes a worker row and its cog and handler rows.
async fn delete_worker(conn: &impl ConnectionTrait, id: i64) -> Result<(), DbErr> {
    worker_cog::Entity::delete_many().filter(worker_cog::Column::WorkerId.eq(id)).exec(conn).await?;
    worker_error_handler::Entity::delete_many().filter(worker_error_handler::Column::WorkerId.eq(id)).exec(conn).await?;
    worker::Entity::delete_by_id(id).exec(conn).await?;
    Ok(())
}

/// The ids of the cogs (or handlers) that live workers carry.
fn carried<E: EntityTrait>(table: E, worker_col: E::Column, item_col: E::Column, now: DateTime<Utc>) -> SelectStatement {
    Query::select()
        .column((table, item_col))
        .from(table)
        .inner_join(worker::Entity, Expr::col((worker::Entity, worker::Column::Id)).equals((table, worker_col)))
        .and_where(Expr::col((worker::Entity, worker::Column::AliveUntil)).gt(now))
        .to_owned()
}

/// Sets `present` to "carried by a live worker" wherever it differs.
pub(crate) async fn refresh_present(conn: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<(), DbErr> {
    let cogs = || carried(worker_cog::Entity, worker_cog::Column::WorkerId, worker_cog::Column::CogId, now);
    cog::Entity::update_many()
        .col_expr(cog::Column::Present, Expr::value(true))
        .col_expr(cog::Column::UpdatedAt, Expr::value(now))
        .filter(cog::Column::Present.eq(false))
        .filter(cog::Column::Id.in_subquery(cogs()))
        .exec(conn)
        .await?;
    cog::Entity::update_many()
        .col_expr(cog::Column::Present, Expr::value(false))
        .col_expr(cog::Column::UpdatedAt, Expr::value(now))
        .filter(cog::Column::Present.eq(true))
        .filter(cog::Column::Id.not_in_subquery(cogs()))
        .exec(conn)
        .await?;
    let handlers = || carried(worker_error_handler::Entity, worker_error_handler::Column::WorkerId, worker_error_handler::Column::ErrorHandlerId, now);
    error_handler::Entity::update_many()
        .col_expr(error_handler::Column::Present, Expr::value(true))
        .col_expr(error_handler::Column::UpdatedAt, Expr::value(now))
        .filter(error_handler::Column::Present.eq(false))
        .filter(error_handler::Column::Id.in_subquery(handlers()))
        .exec(conn)
        .await?;
    error_handler::Entity::update_many()
        .col_expr(error_handler::Column::Present, Expr::value(false))
        .col_expr(error_handler::Column::UpdatedAt, Expr::value(now))
        .filter(error_handler::Column::Present.eq(true))
        .filter(error_handler::Column::Id.not_in_subquery(handlers()))
        .exec(conn)
        .await?;
    Ok(())
}
