//! Run with: cargo run --example metrics
//!
//! cog's metrics for Prometheus: `metrics-exporter-prometheus` is installed as the `metrics`
//! recorder and serves them on http://127.0.0.1:9000/metrics while a pipeline runs every 2
//! seconds (one task in five fails and is retried). The example prints its own first scrape,
//! then keeps serving until Ctrl-C: `curl -s localhost:9000/metrics | grep ^cog_`.

use std::time::Duration;

use cog::{CogRuntime, PipelineSpec, RunStatus, StageSpec, TaskContext, TaskSpec, cog};
use metrics_exporter_prometheus::PrometheusBuilder;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Works for `ms` milliseconds.
#[cog]
async fn work(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// Fails the first attempt of one task run in five.
#[cog]
fn flaky(ctx: TaskContext) -> Result<(), String> {
    if ctx.attempt() == 1 && ctx.task_run_id() % 5 == 0 { Err("unlucky".to_owned()) } else { Ok(()) }
}

/// Reads `/metrics` from the exporter, as Prometheus would.
async fn scrape(port: u16) -> std::io::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await?;
    Ok(reply)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let port = 9000;
    // The recorder first: cog records through the `metrics` facade, and without a recorder
    // every metric is a no-op. The HTTP listener runs on this tokio runtime.
    PrometheusBuilder::new().with_http_listener(([127, 0, 0, 1], port)).install()?;

    let rt = CogRuntime::builder().database_url("sqlite::memory:").queues(["default", "io"]).concurrency(4).build().await?;
    let work_on_io = |name: &str, ms: u64| TaskSpec::new("work").name(name).args(json!({ "ms": ms })).queue("io");
    rt.define(
        PipelineSpec::new("every_2_seconds")
            .schedule("*/2 * * * * *")
            .prevent_overlap(false)
            .stage(StageSpec::new("extract").task(work_on_io("fetch_a", 50)).task(work_on_io("fetch_b", 120)))
            .stage(StageSpec::new("load").after(["extract"]).task(TaskSpec::new("flaky").max_retries(2))),
    )
    .await?;
    rt.start();
    for _ in 0..3 {
        assert_eq!(rt.launch("every_2_seconds").await?.wait().await?, RunStatus::Completed);
    }
    let page = scrape(port).await?;
    println!("{}", page.lines().filter(|l| l.starts_with("cog_") || l.starts_with("# HELP cog_")).collect::<Vec<_>>().join("\n"));
    println!("\nserving http://127.0.0.1:{port}/metrics (a run every 2 seconds); press Ctrl-C to stop");
    tokio::signal::ctrl_c().await?;
    rt.shutdown().await;
    Ok(())
}
