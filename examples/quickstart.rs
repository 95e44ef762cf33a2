//! Run with: cargo run --example quickstart
//!
//! Registers a few cogs, defines a diamond-shaped pipeline
//! (`download` -> (`resize`, `index`) -> `publish`) in a SQLite file, launches it,
//! shows progress while it runs and prints a summary of the run.

use std::time::Duration;

use cog::{CogRuntime, Config, PipelineSpec, RunStatus, StageSpec, TaskSpec, cog, cog_error_handler};
use serde::Serialize;
use serde_json::json;

/// Pretends to download a file and returns its size.
#[cog]
async fn download(url: String, size_kb: u64) -> Result<u64, std::io::Error> {
    tokio::time::sleep(Duration::from_millis(300)).await;
    println!("    downloaded {url}");
    Ok(size_kb * 1024)
}

#[derive(Serialize)]
struct Thumbnail {
    width: u32,
    height: u32,
}

/// A CPU-bound step: plain functions run on tokio's blocking pool.
#[cog]
fn resize(width: u32, height: Option<u32>) -> Thumbnail {
    std::thread::sleep(Duration::from_millis(200));
    Thumbnail { width, height: height.unwrap_or(width * 3 / 4) }
}

/// Counts words; the `date` launch argument overrides the task's own.
#[cog]
async fn index(words: Vec<String>, date: String) -> Result<String, std::io::Error> {
    tokio::time::sleep(Duration::from_millis(150)).await;
    Ok(format!("{} words indexed for {date}", words.len()))
}

/// The last step; it receives the run's cancellation through its context.
#[cog]
async fn publish(channel: String, ctx: cog::TaskContext) -> Result<(), std::io::Error> {
    tokio::select! {
        _ = ctx.cancelled() => println!("    publish to {channel} canceled"),
        _ = tokio::time::sleep(Duration::from_millis(250)) => println!("    published to {channel} (run {})", ctx.pipeline_run_id()),
    }
    Ok(())
}

/// Tells somebody when a task fails.
#[cog_error_handler]
fn notify_team(error: &cog::TaskError, task_run: &cog::TaskRunInfo) {
    eprintln!("!! task {} of pipeline {} failed: {error}", task_run.task_name, task_run.pipeline);
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();

    // A fresh database each time, so the example always starts from the same state.
    let path = std::env::temp_dir().join("cog-quickstart.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let rt = CogRuntime::builder()
        .database_url(format!("sqlite://{}?mode=rwc", path.display()))
        .queues(["default", "io"])
        .concurrency(4)
        .config(Config::default())
        .build()
        .await?;
    rt.start();
    println!("cog database: {}", path.display());
    println!("cogs in this binary: {}", cog::registry::cogs().iter().map(|c| c.name).collect::<Vec<_>>().join(", "));

    rt.define(
        PipelineSpec::new("quickstart")
            .schedule("0 3 * * *")
            .timezone("Europe/Paris")
            .stage(
                StageSpec::new("download")
                    .task(TaskSpec::new("download").name("photos").args(json!({"url": "https://example.com/photos.zip", "size_kb": 2048})).queue("io"))
                    .task(TaskSpec::new("download").name("texts").args(json!({"url": "https://example.com/texts.zip", "size_kb": 512})).queue("io")),
            )
            .stage(
                StageSpec::new("resize")
                    .after(["download"])
                    .task(TaskSpec::new("resize").name("small").args(json!({"width": 160})))
                    .task(TaskSpec::new("resize").name("large").args(json!({"width": 1280, "height": 720})).weight(3.0)),
            )
            .stage(
                StageSpec::new("index").after(["download"]).task(
                    TaskSpec::new("index").args(json!({"words": ["cog", "stage", "task"], "date": "unset"})).critical(false).error_handler("notify_team"),
                ),
            )
            .stage(StageSpec::new("publish").after(["resize", "index"]).task(TaskSpec::new("publish").args(json!({"channel": "#releases"})).max_retries(2))),
    )
    .await?;

    let run = rt.launch_with("quickstart", json!({"date": "2026-11-24"})).await?;
    println!("launched run {}", run.id());
    loop {
        let report = rt.report(run.id()).await?;
        let [queued, running, completed, failed, canceled] = report.task_counts();
        let stages: Vec<String> = report.stages.iter().map(|s| format!("{}:{}", s.name, s.status)).collect();
        println!("  progress: {completed} completed, {running} running, {queued} queued, {failed} failed, {canceled} canceled | {}", stages.join(" "));
        if tokio::time::timeout(Duration::from_millis(200), run.wait()).await.is_ok() {
            break;
        }
    }
    let status = run.wait().await?;
    println!("\n{}", rt.report(run.id()).await?);
    rt.shutdown().await;
    if status != RunStatus::Completed {
        return Err(format!("the run ended {status}").into());
    }
    Ok(())
}
