//! Run with: cargo run --example scheduled
//!
//! A pipeline on a schedule with seconds (`*/3 * * * * *`: every 3 seconds), running until
//! Ctrl-C and printing each run as it completes, with the delay between the tick and the
//! run's start.

use std::time::Duration;

use chrono::{DateTime, Utc};
use cog::entity::pipeline_run;
use cog::{CogRuntime, PipelineSpec, StageSpec, TaskSpec, cog};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::json;

/// Takes a short nap.
#[cog]
async fn nap(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// Reports the tick the run was fired for.
#[cog]
fn stamp(ctx: cog::TaskContext) -> String {
    format!("run {} done at {}", ctx.pipeline_run_id(), Utc::now().format("%H:%M:%S%.3f"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let path = std::env::temp_dir().join("cog-scheduled.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let rt = CogRuntime::builder().database_url(format!("sqlite://{}?mode=rwc", path.display())).build().await?;
    rt.define(
        PipelineSpec::new("every_3_seconds")
            .schedule("*/3 * * * * *")
            .timezone("Europe/Paris")
            .stage(StageSpec::new("work").task(TaskSpec::new("nap").args(json!({"ms": 400}))))
            .stage(StageSpec::new("report").after(["work"]).task(TaskSpec::new("stamp"))),
    )
    .await?;
    rt.start();
    println!("pipeline `every_3_seconds` scheduled with `*/3 * * * * *`; press Ctrl-C to stop");

    let mut seen = 0;
    let mut ticker = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = ticker.tick() => {}
        }
        let ended = pipeline_run::Entity::find()
            .filter(pipeline_run::Column::Id.gt(seen))
            .filter(pipeline_run::Column::CompletedAt.is_not_null())
            .order_by_asc(pipeline_run::Column::Id)
            .all(rt.connection())
            .await?;
        for run in ended {
            seen = run.id;
            let tick: Option<DateTime<Utc>> = run.scheduled_for;
            let delay = match (tick, run.started_at) {
                (Some(t), Some(s)) => format!("{} ms after its tick", (s - t).num_milliseconds()),
                _ => "manual".to_owned(),
            };
            let took = run.completed_at.zip(run.started_at).map_or(0, |(c, s)| (c - s).num_milliseconds());
            let tick = tick.map_or_else(|| "-".to_owned(), |t| t.format("%H:%M:%S").to_string());
            println!("run {:>3}  tick {tick}  {}  started {delay}, took {took} ms", run.id, run.status);
        }
    }
    println!("stopping");
    rt.shutdown().await;
    Ok(())
}
