//! Listing `cog_error` rows, newest first, filtered by pipeline, cog, type or run.

use std::collections::HashMap;

use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::catalog::Catalog;
use super::filter::ErrorFilter;
use super::types::ErrorRow;
use crate::entity::{error, pipeline_run, stage_run, task_run};
use crate::error::Error;

/// The errors matching `filter`.
pub(crate) async fn list(db: &impl ConnectionTrait, filter: &ErrorFilter) -> Result<Vec<ErrorRow>, Error> {
    let catalog = Catalog::load(db).await?;
    let mut query = error::Entity::find();
    // Pipeline and cog filters become a set of task ids (definitions are small).
    let mut task_ids: Option<Vec<i64>> = None;
    if let Some(name) = &filter.pipeline {
        let p = catalog.pipelines.values().find(|p| &p.name == name).ok_or_else(|| Error::UnknownPipeline { name: name.clone() })?;
        let ids = catalog.tasks.values().filter(|t| catalog.stages.get(&t.stage_id).is_some_and(|s| s.pipeline_id == p.id)).map(|t| t.id).collect();
        task_ids = Some(ids);
    }
    if let Some(name) = &filter.cog {
        let ids: Vec<i64> = catalog.tasks.values().filter(|t| catalog.cogs.get(&t.cog_id).is_some_and(|c| &c.name == name)).map(|t| t.id).collect();
        task_ids = Some(match task_ids {
            Some(previous) => previous.into_iter().filter(|id| ids.contains(id)).collect(),
            None => ids,
        });
    }
    if let Some(ids) = task_ids {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // Correlated EXISTS: errors are read newest first and each checked by primary key, so
        // a page stops after `limit` matches instead of collecting every task run of the tasks.
        let matching = Query::select()
            .expr(Expr::val(1))
            .from(task_run::Entity)
            .and_where(Expr::col((task_run::Entity, task_run::Column::Id)).equals((error::Entity, error::Column::TaskRunId)))
            .and_where(Expr::col((task_run::Entity, task_run::Column::TaskId)).is_in(ids))
            .to_owned();
        query = query.filter(Expr::exists(matching));
    }
    if let Some(run) = filter.run {
        let stage_runs =
            Query::select().column(stage_run::Column::Id).from(stage_run::Entity).and_where(Expr::col(stage_run::Column::PipelineRunId).eq(run)).to_owned();
        let task_runs = Query::select()
            .column(task_run::Column::Id)
            .from(task_run::Entity)
            .and_where(Expr::col(task_run::Column::StageRunId).in_subquery(stage_runs))
            .to_owned();
        query = query.filter(error::Column::TaskRunId.in_subquery(task_runs));
    }
    if let Some(kind) = &filter.error_type {
        query = query.filter(error::Column::ErrorType.eq(kind.as_str()));
    }
    if let Some(before) = filter.before {
        query = query.filter(error::Column::Id.lt(before));
    }
    let errors = query.order_by_desc(error::Column::Id).limit(filter.page_size()).all(db).await?;
    if errors.is_empty() {
        return Ok(Vec::new());
    }

    // Where each error happened: task run -> stage run -> pipeline run.
    let task_runs: HashMap<i64, (i64, i64)> = task_run::Entity::find()
        .select_only()
        .column(task_run::Column::Id)
        .column(task_run::Column::StageRunId)
        .column(task_run::Column::TaskId)
        .filter(task_run::Column::Id.is_in(errors.iter().map(|e| e.task_run_id)))
        .into_tuple::<(i64, i64, i64)>()
        .all(db)
        .await?
        .into_iter()
        .map(|(id, stage_run, task)| (id, (stage_run, task)))
        .collect();
    let stage_runs: HashMap<i64, (i64, i64)> = stage_run::Entity::find()
        .select_only()
        .column(stage_run::Column::Id)
        .column(stage_run::Column::PipelineRunId)
        .column(stage_run::Column::StageId)
        .filter(stage_run::Column::Id.is_in(task_runs.values().map(|(s, _)| *s)))
        .into_tuple::<(i64, i64, i64)>()
        .all(db)
        .await?
        .into_iter()
        .map(|(id, run, stage)| (id, (run, stage)))
        .collect();
    let runs: HashMap<i64, i64> = pipeline_run::Entity::find()
        .select_only()
        .column(pipeline_run::Column::Id)
        .column(pipeline_run::Column::PipelineId)
        .filter(pipeline_run::Column::Id.is_in(stage_runs.values().map(|(r, _)| *r)))
        .into_tuple::<(i64, i64)>()
        .all(db)
        .await?
        .into_iter()
        .collect();

    Ok(errors
        .into_iter()
        .map(|e| {
            let (stage_run, task_id) = task_runs.get(&e.task_run_id).copied().unwrap_or((0, 0));
            let (run_id, stage_id) = stage_runs.get(&stage_run).copied().unwrap_or((0, 0));
            let task = catalog.tasks.get(&task_id);
            ErrorRow {
                id: e.id,
                task_run_id: e.task_run_id,
                attempt: e.attempt,
                error_type: e.error_type,
                message: e.message,
                backtrace: e.backtrace,
                created_at: e.created_at,
                run_id,
                pipeline: runs.get(&run_id).map_or_else(|| "?".to_owned(), |p| catalog.pipeline_name(*p)),
                stage: catalog.stage_name(stage_id),
                task: task.map_or_else(|| format!("#{task_id}"), |t| t.name.clone()),
                cog: task.map_or_else(|| "?".to_owned(), |t| catalog.cog_name(t.cog_id)),
            }
        })
        .collect())
}
