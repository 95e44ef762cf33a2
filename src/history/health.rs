//! Cogs, error handlers, queues and workers: what live workers carry and serve.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::catalog::Catalog;
use super::types::{CogHealth, ParameterInfo, QueueHealth, TaskRef, WorkerInfo};
use crate::entity::status::RunStatus;
use crate::entity::{queue, worker, worker_cog, worker_error_handler};
use crate::error::Error;

/// The live workers, by name.
async fn live(db: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<Vec<worker::Model>, DbErr> {
    worker::Entity::find().filter(worker::Column::AliveUntil.gt(now)).order_by_asc(worker::Column::Name).all(db).await
}

/// Live workers.
pub(crate) async fn workers(db: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<Vec<WorkerInfo>, Error> {
    let workers = live(db, now).await?;
    let ids: Vec<i64> = workers.iter().map(|w| w.id).collect();
    let carried: Vec<(i64, i64)> = worker_cog::Entity::find()
        .select_only()
        .column(worker_cog::Column::WorkerId)
        .column_as(worker_cog::Column::CogId.count(), "n")
        .filter(worker_cog::Column::WorkerId.is_in(ids))
        .group_by(worker_cog::Column::WorkerId)
        .into_tuple()
        .all(db)
        .await?;
    let carried: HashMap<i64, i64> = carried.into_iter().collect();
    Ok(workers
        .into_iter()
        .map(|w| WorkerInfo {
            cogs: carried.get(&w.id).copied().unwrap_or(0) as usize,
            queues: split_queues(&w.queues),
            name: w.name,
            started_at: w.started_at,
            heartbeat_at: w.heartbeat_at,
            alive_until: w.alive_until,
        })
        .collect())
}

/// `cog_worker.queues` as a list.
fn split_queues(queues: &str) -> Vec<String> {
    queues.split(',').filter(|q| !q.is_empty()).map(str::to_owned).collect()
}

/// Every cog, with the live workers carrying it and the tasks using it.
pub(crate) async fn cogs(db: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<Vec<CogHealth>, Error> {
    let catalog = Catalog::load(db).await?;
    let workers = live(db, now).await?;
    let names: HashMap<i64, &str> = workers.iter().map(|w| (w.id, w.name.as_str())).collect();
    let pairs: Vec<(i64, i64)> = worker_cog::Entity::find()
        .select_only()
        .column(worker_cog::Column::CogId)
        .column(worker_cog::Column::WorkerId)
        .filter(worker_cog::Column::WorkerId.is_in(names.keys().copied()))
        .into_tuple()
        .all(db)
        .await?;
    let mut carriers: HashMap<i64, Vec<String>> = HashMap::new();
    for (cog, w) in pairs {
        carriers.entry(cog).or_default().push(names[&w].to_owned());
    }
    let mut out: Vec<CogHealth> = catalog
        .cogs
        .values()
        .map(|c| {
            let mut workers = carriers.remove(&c.id).unwrap_or_default();
            workers.sort();
            // What the workers recorded; else what this binary knows.
            let details = c
                .parameters
                .as_deref()
                .and_then(|json| match serde_json::from_str::<Vec<ParameterInfo>>(json) {
                    Ok(details) => Some(details),
                    Err(e) => {
                        tracing::debug!(cog = c.name.as_str(), error = %e, "cog_cog.parameters does not parse; showing what this binary knows of the cog");
                        None
                    }
                })
                .or_else(|| crate::registry::cog(&c.name).map(ParameterInfo::of));
            CogHealth {
                name: c.name.clone(),
                module: c.module.clone(),
                present: !workers.is_empty(),
                workers,
                parameters: details.as_ref().map(|d| d.iter().map(|p| p.name.clone()).collect()),
                parameter_details: details,
                used_by: used_by(&catalog, |t| t.cog_id == c.id),
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Every error handler, as [`cogs`].
pub(crate) async fn error_handlers(db: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<Vec<CogHealth>, Error> {
    let catalog = Catalog::load(db).await?;
    let workers = live(db, now).await?;
    let names: HashMap<i64, &str> = workers.iter().map(|w| (w.id, w.name.as_str())).collect();
    let pairs: Vec<(i64, i64)> = worker_error_handler::Entity::find()
        .select_only()
        .column(worker_error_handler::Column::ErrorHandlerId)
        .column(worker_error_handler::Column::WorkerId)
        .filter(worker_error_handler::Column::WorkerId.is_in(names.keys().copied()))
        .into_tuple()
        .all(db)
        .await?;
    let mut carriers: HashMap<i64, Vec<String>> = HashMap::new();
    for (handler, w) in pairs {
        carriers.entry(handler).or_default().push(names[&w].to_owned());
    }
    let mut out: Vec<CogHealth> = catalog
        .handlers
        .values()
        .map(|h| {
            let mut workers = carriers.remove(&h.id).unwrap_or_default();
            workers.sort();
            CogHealth {
                name: h.name.clone(),
                module: h.module.clone(),
                present: !workers.is_empty(),
                workers,
                parameters: None,
                parameter_details: None,
                used_by: used_by(&catalog, |t| t.error_handler_id == Some(h.id)),
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The current tasks matching `pick`, sorted.
fn used_by(catalog: &Catalog, pick: impl Fn(&crate::entity::task::Model) -> bool) -> Vec<TaskRef> {
    let mut refs: Vec<TaskRef> = catalog
        .tasks
        .values()
        .filter(|t| !t.archived && pick(t))
        .filter_map(|t| {
            let stage = catalog.stages.get(&t.stage_id).filter(|s| !s.archived)?;
            Some(TaskRef { pipeline: catalog.pipeline_name(stage.pipeline_id), stage: stage.name.clone(), task: t.name.clone() })
        })
        .collect();
    refs.sort_by(|a, b| (&a.pipeline, &a.stage, &a.task).cmp(&(&b.pipeline, &b.stage, &b.task)));
    refs
}

/// Every queue (the `cog_queue` rows and any queue a task run waits on) with its depth.
pub(crate) async fn queues(db: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<Vec<QueueHealth>, Error> {
    let mut out: BTreeMap<String, QueueHealth> = BTreeMap::new();
    let entry = |out: &mut BTreeMap<String, QueueHealth>, name: &str| {
        out.entry(name.to_owned()).or_insert_with(|| QueueHealth {
            name: name.to_owned(),
            queued: 0,
            running: 0,
            oldest_queued_at: None,
            workers: Vec::new(),
            paused: false,
        });
    };
    for q in queue::Entity::find().all(db).await? {
        entry(&mut out, &q.name);
        if let Some(known) = out.get_mut(&q.name) {
            known.paused = q.paused;
        }
    }
    for crate::store::reports::ActiveRow { queue: name, status, n, oldest } in crate::store::reports::active_per_queue(db).await? {
        entry(&mut out, &name);
        let q = out.get_mut(&name).expect("inserted above");
        match status {
            RunStatus::Queued => {
                q.queued = n;
                q.oldest_queued_at = oldest;
            }
            _ => q.running = n,
        }
    }
    for w in live(db, now).await? {
        for name in split_queues(&w.queues) {
            entry(&mut out, &name);
            out.get_mut(&name).expect("inserted above").workers.push(w.name.clone());
        }
    }
    Ok(out.into_values().collect())
}
