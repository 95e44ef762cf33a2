//! Pipelines: each with its last run and next ticks; one with its stage graph and tasks.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};

use super::catalog::Catalog;
use super::runs::{pipeline_names, summary};
use super::types::{PipelineDetail, PipelineSummary, StageInfo, TaskInfo};
use crate::entity::{pipeline, pipeline_run};
use crate::error::Error;

/// How many next ticks a summary shows.
const NEXT_TICKS: usize = 3;

/// Every pipeline by name.
pub(crate) async fn list(db: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<Vec<PipelineSummary>, Error> {
    let catalog = Catalog::load(db).await?;
    let mut pipelines: Vec<&pipeline::Model> = catalog.pipelines.values().collect();
    pipelines.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = Vec::with_capacity(pipelines.len());
    for p in pipelines {
        out.push(summarize(db, &catalog, p, now).await?);
    }
    Ok(out)
}

/// Pipeline `name` in detail.
pub(crate) async fn detail(db: &impl ConnectionTrait, name: &str, now: DateTime<Utc>) -> Result<PipelineDetail, Error> {
    let catalog = Catalog::load(db).await?;
    let p = catalog.pipelines.values().find(|p| p.name == name).ok_or_else(|| Error::UnknownPipeline { name: name.to_owned() })?;
    let stages = catalog
        .stages_of(p.id, false)
        .into_iter()
        .map(|(s, depth)| StageInfo {
            id: s.id,
            name: s.name.clone(),
            enabled: s.enabled,
            prerequisites: catalog.prerequisite_names(s.id),
            depth,
            tasks: catalog
                .tasks_of(s.id, false)
                .into_iter()
                .map(|t| TaskInfo {
                    id: t.id,
                    name: t.name.clone(),
                    cog: catalog.cog_name(t.cog_id),
                    arguments: super::json(&t.arguments),
                    queue: catalog.queues.get(&t.queue_id).cloned().unwrap_or_else(|| format!("#{}", t.queue_id)),
                    weight: t.weight,
                    critical: t.critical,
                    error_handler: t.error_handler_id.map(|h| catalog.handlers.get(&h).map_or_else(|| format!("#{h}"), |h| h.name.clone())),
                    enabled: t.enabled,
                    max_retries: t.max_retries,
                    timeout_ms: t.timeout_ms,
                })
                .collect(),
        })
        .collect();
    Ok(PipelineDetail { pipeline: summarize(db, &catalog, p, now).await?, stages })
}

/// Pipeline row `name`.
pub(crate) async fn find(db: &impl ConnectionTrait, name: &str) -> Result<pipeline::Model, Error> {
    pipeline::Entity::find().filter(pipeline::Column::Name.eq(name)).one(db).await?.ok_or_else(|| Error::UnknownPipeline { name: name.to_owned() })
}

/// The next `n` ticks of `p`'s schedule after `after` (none if unscheduled or unreadable).
pub(crate) fn ticks(p: &pipeline::Model, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
    let Some(expr) = p.schedule.as_deref() else { return Vec::new() };
    // `define` validates both; a value written by hand that does not parse has no ticks (and
    // the scheduler reports it too).
    let Some(tz) = crate::scheduler::expression::parse_timezone(&p.timezone) else {
        tracing::warn!(pipeline = %p.name, timezone = %p.timezone, "unknown time zone in cog_pipeline; no next ticks shown");
        return Vec::new();
    };
    let schedule = match crate::scheduler::expression::parse(expr) {
        Ok(schedule) => schedule,
        Err(reason) => {
            tracing::warn!(pipeline = %p.name, schedule = %expr, %reason, "unreadable schedule in cog_pipeline; no next ticks shown");
            return Vec::new();
        }
    };
    let mut out = Vec::with_capacity(n);
    let mut cursor = after;
    while out.len() < n {
        match crate::scheduler::ticks::next_tick(&schedule, tz, cursor) {
            Some(tick) => {
                out.push(tick);
                cursor = tick;
            }
            None => break,
        }
    }
    out
}

/// One pipeline's summary: its newest run (index `(pipeline_id, id)`) and next ticks.
async fn summarize(db: &impl ConnectionTrait, catalog: &Catalog, p: &pipeline::Model, now: DateTime<Utc>) -> Result<PipelineSummary, Error> {
    let last = pipeline_run::Entity::find().filter(pipeline_run::Column::PipelineId.eq(p.id)).order_by_desc(pipeline_run::Column::Id).one(db).await?;
    let last_run = match last {
        Some(run) => Some(summary(run, &pipeline_names(db).await?)),
        None => None,
    };
    let stages = catalog.stages_of(p.id, false);
    Ok(PipelineSummary {
        id: p.id,
        name: p.name.clone(),
        enabled: p.enabled,
        schedule: p.schedule.clone(),
        timezone: p.timezone.clone(),
        prevent_overlap: p.prevent_overlap,
        overlap: p.overlap,
        last_run,
        next_ticks: ticks(p, now, NEXT_TICKS),
        tasks: stages.iter().map(|(s, _)| catalog.tasks_of(s.id, false).len()).sum(),
        stages: stages.len(),
    })
}
