//! Listing pipeline runs: filters and keyset paging on `id` (indexes `(status, id)`,
//! `(pipeline_id, id)`, `(pipeline_id, status, id)` keep every page one index range scan).

use std::collections::HashMap;

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::filter::RunFilter;
use super::types::RunSummary;
use crate::entity::{pipeline, pipeline_run};
use crate::error::Error;

/// The runs matching `filter`, newest first.
pub(crate) async fn list(db: &impl ConnectionTrait, filter: &RunFilter) -> Result<Vec<RunSummary>, Error> {
    let mut query = pipeline_run::Entity::find();
    if let Some(name) = &filter.pipeline {
        let found = pipeline::Entity::find().filter(pipeline::Column::Name.eq(name.as_str())).one(db).await?;
        let found = found.ok_or_else(|| Error::UnknownPipeline { name: name.clone() })?;
        query = query.filter(pipeline_run::Column::PipelineId.eq(found.id));
    }
    if let Some(status) = filter.status {
        query = query.filter(pipeline_run::Column::Status.eq(status));
    }
    if let Some(trigger) = filter.trigger {
        query = query.filter(pipeline_run::Column::Trigger.eq(trigger));
    }
    if let Some(from) = filter.from {
        query = query.filter(pipeline_run::Column::CreatedAt.gte(from));
    }
    if let Some(to) = filter.to {
        query = query.filter(pipeline_run::Column::CreatedAt.lt(to));
    }
    if let Some(before) = filter.before {
        query = query.filter(pipeline_run::Column::Id.lt(before));
    }
    let rows = query.order_by_desc(pipeline_run::Column::Id).limit(filter.page_size()).all(db).await?;
    let names = pipeline_names(db).await?;
    Ok(rows.into_iter().map(|r| summary(r, &names)).collect())
}

/// Pipeline names by id.
pub(super) async fn pipeline_names(db: &impl ConnectionTrait) -> Result<HashMap<i64, String>, sea_orm::DbErr> {
    let rows: Vec<(i64, String)> =
        pipeline::Entity::find().select_only().column(pipeline::Column::Id).column(pipeline::Column::Name).into_tuple().all(db).await?;
    Ok(rows.into_iter().collect())
}

/// A run row as a summary.
pub(super) fn summary(run: pipeline_run::Model, names: &HashMap<i64, String>) -> RunSummary {
    RunSummary {
        id: run.id,
        pipeline: names.get(&run.pipeline_id).cloned().unwrap_or_else(|| format!("#{}", run.pipeline_id)),
        status: run.status,
        trigger: run.trigger,
        scheduled_for: run.scheduled_for,
        arguments: super::json(&run.arguments),
        created_at: run.created_at,
        started_at: run.started_at,
        completed_at: run.completed_at,
        duration_ms: match (run.started_at, run.completed_at) {
            (Some(start), Some(end)) => Some((end - start).num_milliseconds()),
            _ => None,
        },
        retry_of: run.retry_of,
    }
}
