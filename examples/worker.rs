//! Run with: cargo run --example worker -- --database-url postgres://postgres@127.0.0.1/test --queues default,io --concurrency 8
//!
//! A worker process: start as many as you like, on as many machines as you like, against one
//! PostgreSQL database. Each works on the queues it is given, renews the leases of what it
//! runs, takes over the task runs of workers that died, and (one at a time) fires schedules.
//! `--demo` also defines and launches a demo pipeline of 200 tasks over 4 stages.
//! Stop with Ctrl-C: running cogs finish first.

use std::time::Duration;

use cog::{CogRuntime, PipelineSpec, StageSpec, TaskSpec, cog};
use serde_json::json;

/// Does nothing, quickly.
#[cog]
async fn demo_noop() {}

/// Sleeps `ms` milliseconds and says which process ran it.
#[cog]
async fn demo_sleep(ms: u64) -> String {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    format!("slept {ms} ms in process {}", std::process::id())
}

struct Args {
    database_url: String,
    queues: Vec<String>,
    concurrency: usize,
    scheduler: bool,
    demo: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args { database_url: String::new(), queues: vec!["default".into()], concurrency: 8, scheduler: true, demo: false };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--database-url" => args.database_url = value()?,
            "--queues" => args.queues = value()?.split(',').map(|q| q.trim().to_owned()).filter(|q| !q.is_empty()).collect(),
            "--concurrency" => args.concurrency = value()?.parse().map_err(|e| format!("--concurrency: {e}"))?,
            "--no-scheduler" => args.scheduler = false,
            "--demo" => args.demo = true,
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if args.database_url.is_empty() {
        args.database_url = std::env::var("DATABASE_URL").map_err(|_| "pass --database-url postgres://... (or set DATABASE_URL)".to_owned())?;
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into())).init();
    let args = parse_args().map_err(|e| format!("{e}\nusage: worker --database-url URL [--queues a,b] [--concurrency N] [--no-scheduler] [--demo]"))?;
    let rt = CogRuntime::builder()
        .database_url(&args.database_url)
        .queues(args.queues.clone())
        .concurrency(args.concurrency)
        .scheduler(args.scheduler)
        .build()
        .await?;
    rt.start();
    println!("worker {} on queues {:?}, {} at once", rt.worker_id(), args.queues, args.concurrency);

    if args.demo {
        let mut spec = PipelineSpec::new("worker_demo").prevent_overlap(false);
        for s in 0..4 {
            let mut stage = StageSpec::new(format!("stage_{s}"));
            if s > 0 {
                stage = stage.after([format!("stage_{}", s - 1)]);
            }
            for t in 0..50 {
                let task = if t % 5 == 0 { TaskSpec::new("demo_sleep").args(json!({"ms": 100})).queue("io") } else { TaskSpec::new("demo_noop") };
                stage = stage.task(task.name(format!("t{t}")).max_retries(2));
            }
            spec = spec.stage(stage);
        }
        rt.define(spec).await?;
        let run = rt.launch("worker_demo").await?;
        let rt2 = rt.clone();
        tokio::spawn(async move {
            if let Ok(status) = run.wait().await
                && let Ok(report) = rt2.report(run.id()).await
            {
                println!("demo run {} ended {status}: {:?} (queued, running, completed, failed, canceled)", run.id(), report.task_counts());
            }
        });
    }

    tokio::signal::ctrl_c().await?;
    println!("shutting down: letting running cogs finish");
    rt.shutdown().await;
    Ok(())
}
