//! The public API contract of cog, as a test. Copy this file unchanged to
//! tests/api_contract.rs; it must compile and pass. It exercises every call
//! listed under "Public API" in DESIGN.md, so code outside this repository
//! that is written against DESIGN.md compiles against cog.

use cog::{CogRuntime, Config, PipelineSpec, RunStatus, StageSpec, TaskSpec, cog, cog_error_handler};
use serde_json::json;

#[cog]
async fn contract_add(a: i64, b: i64) -> Result<i64, std::io::Error> {
    Ok(a + b)
}

#[cog]
fn contract_sync(x: Option<String>) -> String {
    x.unwrap_or_default()
}

#[cog_error_handler]
async fn contract_handler(error: &cog::TaskError) {
    let _ = error.to_string();
}

#[cog_error_handler]
fn contract_handler_with_run(error: &cog::TaskError, task_run: &cog::TaskRunInfo) {
    let _ = (error, task_run);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_api_contract() -> Result<(), cog::Error> {
    let path = std::env::temp_dir().join("cog-api-contract.db");
    let _ = std::fs::remove_file(&path);
    let url = format!("sqlite://{}?mode=rwc", path.display());

    let workers: usize = 4;
    let rt: CogRuntime = CogRuntime::builder().database_url(&url).queues(["default", "io"]).concurrency(workers).config(Config::default()).build().await?;
    rt.start();

    rt.define(
        PipelineSpec::new("contract")
            .schedule("0 3 * * *")
            .timezone("Europe/Paris")
            .stage(
                StageSpec::new("first")
                    .task(TaskSpec::new("contract_add").name("add_1").args(json!({"a": 1, "b": 2})).weight(2.0))
                    .task(TaskSpec::new("contract_sync").args(json!({})).error_handler("contract_handler")),
            )
            .stage(
                StageSpec::new("second").after(["first"]).task(
                    TaskSpec::new("contract_add")
                        .args(json!({"a": 1, "b": 1}))
                        .critical(false)
                        .queue("io")
                        .max_retries(2)
                        .error_handler("contract_handler_with_run"),
                ),
            ),
    )
    .await?;

    // Pipelines built from data: owned names work as well as literals.
    let fan: Vec<String> = (0..3).map(|i| format!("part_{i}")).collect();
    let mut generated = PipelineSpec::new(String::from("generated"));
    for name in &fan {
        generated = generated.stage(StageSpec::new(name.clone()).task(TaskSpec::new("contract_add").name(format!("{name}_add")).args(json!({"a": 1, "b": 1}))));
    }
    generated = generated.stage(StageSpec::new("join").after(fan.clone()).task(TaskSpec::new("contract_sync")));
    rt.define(generated).await?;
    assert_eq!(rt.launch("generated").await?.wait().await?, RunStatus::Completed);

    let run: cog::RunHandle = rt.launch("contract").await?;
    let status: RunStatus = run.wait().await?;
    assert_eq!(status, RunStatus::Completed);

    let run = rt.launch_with("contract", json!({"x": "hello"})).await?;
    rt.cancel(run.id()).await?;
    let status = run.wait().await?;
    assert!(matches!(status, RunStatus::Canceled | RunStatus::Completed));

    // Without a schedule the pipeline is taken off the schedule; history stays.
    rt.define(PipelineSpec::new("contract").stage(StageSpec::new("first").task(TaskSpec::new("contract_add").name("add_1").args(json!({"a": 1, "b": 2})))))
        .await?;

    let names: Vec<String> = cog::registry::cogs().into_iter().map(|c| format!("{}::{}", c.module, c.name)).collect();
    assert!(names.iter().any(|n| n.ends_with("::contract_add")), "{names:?}");

    match rt.launch("no_such_pipeline").await {
        Err(e) => assert!(!e.to_string().is_empty()),
        Ok(_) => panic!("launching an unknown pipeline must fail"),
    }

    rt.shutdown().await;
    Ok(())
}
