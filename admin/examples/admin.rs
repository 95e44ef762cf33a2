//! Run with: cargo run -p cog-admin --example admin -- --demo
//!
//! Serves the cog admin on http://127.0.0.1:8080 over a cog database (default: the
//! quickstart's SQLite file). With `--demo` it also defines demo pipelines (one scheduled
//! every 10 seconds, a diamond, one that fails sometimes, a slow one to cancel) and runs
//! workers in this process, so there is live data at once.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use cog::{CogRuntime, Config, PipelineSpec, StageSpec, TaskContext, TaskSpec, cog};
use serde_json::json;

/// The cog admin, standalone.
#[derive(Debug, Parser)]
#[command(about = "Serve the cog web admin over a cog database")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
    /// The cog database (default: the quickstart's SQLite file in the temp directory).
    #[arg(long)]
    database_url: Option<String>,
    /// Define demo pipelines and run workers in this process.
    #[arg(long)]
    demo: bool,
    /// Refuse every action (launch, cancel, enable/disable).
    #[arg(long)]
    read_only: bool,
    /// The name in the header.
    #[arg(long, default_value = "cog")]
    title: String,
}

/// Sleeps `ms` milliseconds (stops early when the run is canceled) and reports what it did.
#[cog]
async fn demo_work(ms: u64, label: Option<String>, ctx: TaskContext) -> Result<serde_json::Value, std::io::Error> {
    tokio::select! {
        _ = ctx.cancelled() => Err(std::io::Error::other("canceled while working")),
        _ = tokio::time::sleep(Duration::from_millis(ms)) => Ok(json!({ "slept_ms": ms, "label": label })),
    }
}

/// Fails with probability `failure_rate` (0..1), else returns a row count.
#[cog]
async fn demo_flaky(failure_rate: f64) -> Result<u64, std::io::Error> {
    tokio::time::sleep(Duration::from_millis(400)).await;
    if rand::random::<f64>() < failure_rate {
        return Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "upstream API reset the connection while streaming page 3"));
    }
    Ok(rand::random_range(100..5000))
}

/// Resolves on Ctrl-C (never, if the signal cannot be listened to).
async fn ctrl_c() {
    if let Err(e) = tokio::signal::ctrl_c().await {
        tracing::error!(error = %e, "cannot listen for Ctrl-C; stop the process another way");
        std::future::pending::<()>().await;
    }
}

/// The demo pipelines.
fn demo_pipelines() -> Vec<PipelineSpec> {
    let work = |name: &str, ms: u64| TaskSpec::new("demo_work").name(name).args(json!({ "ms": ms, "label": name }));
    vec![
        PipelineSpec::new("heartbeat").schedule("*/10 * * * * *").timezone("UTC").stage(StageSpec::new("ping").task(work("ping", 300))),
        PipelineSpec::new("etl-diamond")
            .stage(StageSpec::new("extract").task(work("orders", 1200)).task(work("customers", 800)))
            .stage(StageSpec::new("transform_orders").after(["extract"]).task(work("clean_orders", 1500)))
            .stage(StageSpec::new("transform_customers").after(["extract"]).task(work("dedupe_customers", 900)))
            .stage(StageSpec::new("load").after(["transform_orders", "transform_customers"]).task(work("warehouse", 1000).queue("io"))),
        PipelineSpec::new("flaky-report")
            .schedule("*/30 * * * * *")
            .timezone("Europe/Paris")
            .stage(StageSpec::new("fetch").task(TaskSpec::new("demo_flaky").name("fetch_api").args(json!({ "failure_rate": 0.5 }))))
            .stage(StageSpec::new("publish").after(["fetch"]).task(work("publish", 500))),
        PipelineSpec::new("slow-backfill").stage(StageSpec::new("backfill").task(work("year_2025", 120_000))),
    ]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,sqlx=warn".into())).init();
    let args = Args::parse();
    let url = args.database_url.unwrap_or_else(|| format!("sqlite://{}?mode=rwc", std::env::temp_dir().join("cog-quickstart.db").display()));
    // A failed last run does not block the next launch: the flaky demo keeps being scheduled.
    let config = Config::default().overlap_failed(true);
    let rt = CogRuntime::builder().database_url(&url).queues(["default", "io"]).concurrency(4).config(config).build().await?;
    if args.demo {
        for spec in demo_pipelines() {
            rt.define(spec).await?;
        }
        rt.start();
        for name in ["etl-diamond", "flaky-report"] {
            match rt.launch(name).await {
                Ok(run) => tracing::info!(pipeline = name, run = run.id(), "launched a demo run"),
                Err(e) => tracing::info!(pipeline = name, error = %e, "demo launch refused"),
            }
        }
    }
    let admin = cog_admin::Admin::new(rt.clone()).read_only(args.read_only).title(args.title);
    let listener = tokio::net::TcpListener::bind(args.bind).await?;
    println!("cog admin on http://{} (database {url})", listener.local_addr()?);
    axum::serve(listener, admin.router()).with_graceful_shutdown(ctrl_c()).await?;
    rt.shutdown().await;
    Ok(())
}
