//! One run in detail: every stage of its pipeline with its stage run, its task runs, errors.

use std::collections::HashMap;

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};

use super::catalog::Catalog;
use super::runs::summary;
use super::types::{ErrorRow, RunDetail, StageRunRow, TaskRunRow};
use crate::entity::{error, pipeline_run, stage_run, task_run};
use crate::error::Error;

/// Loads run `id`.
pub(crate) async fn load(db: &impl ConnectionTrait, id: i64) -> Result<RunDetail, Error> {
    let run = pipeline_run::Entity::find_by_id(id).one(db).await?.ok_or(Error::UnknownRun { id })?;
    let catalog = Catalog::load(db).await?;
    let stage_runs = stage_run::Entity::find().filter(stage_run::Column::PipelineRunId.eq(id)).all(db).await?;
    let stage_run_ids: Vec<i64> = stage_runs.iter().map(|s| s.id).collect();
    let by_stage: HashMap<i64, &stage_run::Model> = stage_runs.iter().map(|s| (s.stage_id, s)).collect();
    let stage_of_run: HashMap<i64, i64> = stage_runs.iter().map(|s| (s.id, s.stage_id)).collect();

    // Every current stage, and archived ones that ran in this run.
    let stages = catalog
        .stages_of(run.pipeline_id, true)
        .into_iter()
        .filter(|(s, _)| !s.archived || by_stage.contains_key(&s.id))
        .map(|(s, depth)| {
            let sr = by_stage.get(&s.id);
            StageRunRow {
                stage: s.name.clone(),
                prerequisites: catalog.prerequisite_names(s.id),
                depth,
                id: sr.map(|r| r.id),
                status: sr.map(|r| r.status),
                started_at: sr.and_then(|r| r.started_at),
                completed_at: sr.and_then(|r| r.completed_at),
            }
        })
        .collect();

    let task_runs = if stage_run_ids.is_empty() {
        Vec::new()
    } else {
        task_run::Entity::find().filter(task_run::Column::StageRunId.is_in(stage_run_ids)).order_by_asc(task_run::Column::Id).all(db).await?
    };
    let mut rows: Vec<TaskRunRow> = task_runs
        .iter()
        .map(|t| {
            let task = catalog.tasks.get(&t.task_id);
            TaskRunRow {
                id: t.id,
                stage: stage_of_run.get(&t.stage_run_id).map_or_else(|| "?".to_owned(), |s| catalog.stage_name(*s)),
                task: task.map_or_else(|| format!("#{}", t.task_id), |t| t.name.clone()),
                cog: task.map_or_else(|| "?".to_owned(), |t| catalog.cog_name(t.cog_id)),
                status: t.status,
                queue: t.queue.clone(),
                attempt: t.attempt,
                max_retries: task.map_or(0, |t| t.max_retries),
                worker: t.worker.clone(),
                started_at: t.started_at,
                completed_at: t.completed_at,
                duration_ms: t.duration_ms.or(match (t.started_at, t.completed_at) {
                    (Some(start), Some(end)) => Some((end - start).num_milliseconds()),
                    _ => None,
                }),
                result: t.result.as_deref().map(super::json),
                error: t.error.clone(),
            }
        })
        .collect();
    rows.sort_by_key(|t| (t.started_at.is_none(), t.started_at, t.id));

    let errors = if task_runs.is_empty() {
        Vec::new()
    } else {
        error::Entity::find().filter(error::Column::TaskRunId.is_in(task_runs.iter().map(|t| t.id))).order_by_asc(error::Column::Id).all(db).await?
    };
    let task_of: HashMap<i64, &TaskRunRow> = rows.iter().map(|t| (t.id, t)).collect();
    let errors = errors
        .into_iter()
        .map(|e| {
            let t = task_of.get(&e.task_run_id);
            ErrorRow {
                id: e.id,
                task_run_id: e.task_run_id,
                attempt: e.attempt,
                error_type: e.error_type,
                message: e.message,
                backtrace: e.backtrace,
                created_at: e.created_at,
                run_id: run.id,
                pipeline: catalog.pipeline_name(run.pipeline_id),
                stage: t.map_or_else(|| "?".to_owned(), |t| t.stage.clone()),
                task: t.map_or_else(|| "?".to_owned(), |t| t.task.clone()),
                cog: t.map_or_else(|| "?".to_owned(), |t| t.cog.clone()),
            }
        })
        .collect();
    let names = catalog.pipelines.iter().map(|(id, p)| (*id, p.name.clone())).collect();
    Ok(RunDetail { run: summary(run, &names), stages, task_runs: rows, errors })
}
