//! Saving a pipeline definition: validated first, then upserted by names in one transaction.

use std::collections::HashMap;

use sea_orm::DatabaseConnection;

use crate::error::{DefinitionError, Error};
use crate::spec::{PipelineSpec, validate};
use crate::store::definitions::{self, PipelineRow, Registry, TaskRow};
use crate::store::{self, now};

/// Validates `spec` and saves it: the pipeline, its stages, prerequisites and tasks are
/// inserted or updated by name; stages and tasks no longer in the spec are archived (kept for
/// the run history, never run again). Returns the pipeline's id.
///
/// A new or changed schedule (or time zone) starts counting ticks from `schedule_base`, so
/// ticks of the old schedule are never caught up under the new one.
pub(crate) async fn define(db: &DatabaseConnection, spec: &PipelineSpec, schedule_base: chrono::DateTime<chrono::Utc>) -> Result<i64, Error> {
    if let Err(error) = validate(spec) {
        return Err(refine(db, error).await.into());
    }
    let txn = store::begin(db).await?;
    store::lock_definitions(&txn).await?;
    let now = now();
    let pipeline_id = definitions::upsert_pipeline(
        &txn,
        PipelineRow {
            name: &spec.name,
            enabled: spec.enabled,
            schedule: spec.schedule.as_deref(),
            timezone: &spec.timezone,
            overlap: spec.overlap,
            now,
            schedule_base: spec.schedule.as_ref().map(|_| schedule_base),
        },
    )
    .await?;

    let mut queue_ids: HashMap<&str, i64> = HashMap::new();
    let mut cog_ids: HashMap<&str, i64> = HashMap::new();
    let mut handler_ids: HashMap<&str, i64> = HashMap::new();
    for task in spec.stages.iter().flat_map(|s| &s.tasks) {
        if !queue_ids.contains_key(task.queue.as_str()) {
            queue_ids.insert(&task.queue, definitions::upsert_queue(&txn, &task.queue).await?);
        }
        if !cog_ids.contains_key(task.cog.as_str()) {
            let module = crate::registry::cog(&task.cog).map_or("", |c| c.module);
            cog_ids.insert(&task.cog, definitions::registered(&txn, Registry::Cogs, &task.cog, module, now).await?);
        }
        if let Some(handler) = &task.error_handler
            && !handler_ids.contains_key(handler.as_str())
        {
            let module = crate::registry::error_handler(handler).map_or("", |h| h.module);
            handler_ids.insert(handler, definitions::registered(&txn, Registry::ErrorHandlers, handler, module, now).await?);
        }
    }

    definitions::archive_contents(&txn, pipeline_id).await?;
    let mut stage_ids: HashMap<&str, i64> = HashMap::new();
    for (position, stage) in spec.stages.iter().enumerate() {
        let id = definitions::upsert_stage(&txn, pipeline_id, &stage.name, stage.enabled, position as i32).await?;
        stage_ids.insert(&stage.name, id);
    }
    let (mut weighted, mut unweighted) = (Vec::new(), Vec::new());
    for stage in &spec.stages {
        for prerequisite in &stage.after {
            definitions::insert_prerequisite(&txn, stage_ids[stage.name.as_str()], stage_ids[prerequisite.as_str()]).await?;
        }
        for (position, task) in stage.tasks.iter().enumerate() {
            let row = TaskRow {
                stage_id: stage_ids[stage.name.as_str()],
                name: task.task_name().to_owned(),
                cog_id: cog_ids[task.cog.as_str()],
                arguments: task.args.to_string(),
                queue_id: queue_ids[task.queue.as_str()],
                weight: task.weight.unwrap_or(1.0),
                critical: task.critical,
                error_handler_id: task.error_handler.as_deref().map(|h| handler_ids[h]),
                enabled: task.enabled,
                max_retries: task.max_retries.min(i32::MAX as u32) as i32,
                timeout_ms: task.timeout.map(|t| t.as_millis().min(i64::MAX as u128) as i64),
                position: position as i32,
            };
            // A weight left unset keeps the one learned from history on an existing task.
            let (rows, keep_weight) = if task.weight.is_some() { (&mut weighted, false) } else { (&mut unweighted, true) };
            rows.push(row);
            if rows.len() == TASK_ROWS_PER_STATEMENT {
                definitions::upsert_tasks(&txn, &std::mem::take(rows), keep_weight).await?;
            }
        }
    }
    definitions::upsert_tasks(&txn, &weighted, false).await?;
    definitions::upsert_tasks(&txn, &unweighted, true).await?;
    txn.commit().await?;
    tracing::info!(pipeline = spec.name.as_str(), stages = spec.stages.len(), "pipeline defined");
    Ok(pipeline_id)
}

/// Task rows per `INSERT` statement: 50 was fastest on SQLite (0.29 s for 20,000 tasks, against 2.0 s with 500 rows and 1.1 s with 1).
const TASK_ROWS_PER_STATEMENT: usize = 50;

/// Turns an unknown prerequisite that names a stage of another pipeline into the precise error.
async fn refine(db: &DatabaseConnection, error: DefinitionError) -> DefinitionError {
    let DefinitionError::UnknownPrerequisite { pipeline, stage, prerequisite } = error else { return error };
    match definitions::pipeline_with_stage(db, &prerequisite, &pipeline).await {
        Ok(Some(other_pipeline)) => DefinitionError::PrerequisiteInOtherPipeline { stage, prerequisite, other_pipeline },
        Ok(None) => DefinitionError::UnknownPrerequisite { pipeline, stage, prerequisite },
        // The definition is refused either way: with the error found, not the look-up's.
        Err(e) => {
            tracing::warn!(error = %e, pipeline = pipeline.as_str(), prerequisite = prerequisite.as_str(), "could not look for the prerequisite stage in other pipelines");
            DefinitionError::UnknownPrerequisite { pipeline, stage, prerequisite }
        }
    }
}
