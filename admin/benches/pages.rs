//! Page-render benchmark of the admin: fills a database with 100,000 pipeline runs and
//! 1,000,000 task runs (plus 1,000,000 stage runs and 5,000 errors), then renders every page
//! and API listing through the router and reports p50/p95 per page, on SQLite and PostgreSQL.
//! Target: p95 < 50 ms.
//!
//! Run with: cargo bench -p cog-admin --bench pages
//! PostgreSQL: `COG_BENCH_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`);
//! skipped with a notice when unreachable. `COG_BENCH_RUNS` changes the number of runs.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::Utc;
use cog::{CogRuntime, PipelineSpec, StageSpec, TaskSpec, cog};
use cog_admin::Admin;
use http_body_util::BodyExt;
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use tower::ServiceExt;

/// Stages (and tasks) of the benchmark pipeline: task runs = runs × STAGES.
const STAGES: i64 = 10;
/// Measured renders per page.
const SAMPLES: usize = 40;

#[cog]
fn bench_noop() {}

/// `rows` as `n` consecutive integers `i` from 1, in the backend's SQL.
fn series(backend: DbBackend, n: i64) -> String {
    match backend {
        DbBackend::Postgres => format!("generate_series(1, {n}) AS n(i)"),
        _ => format!("(WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n}) SELECT i FROM s) AS n"),
    }
}

/// The instant `base + secs` seconds in the backend's SQL (`secs` an SQL expression).
fn at(backend: DbBackend, base: &str, secs: &str) -> String {
    match backend {
        DbBackend::Postgres => format!("(TIMESTAMPTZ '{base}' + make_interval(secs => {secs}))"),
        _ => format!("(strftime('%Y-%m-%dT%H:%M:%f', '{base}', '+' || ({secs}) || ' seconds') || '+00:00')"),
    }
}

/// Fills the history: `runs` runs of pipeline `bench`, each with one stage run and one task
/// run per stage; every 20th run failed (its last task run failed, with an error row), every
/// 50th canceled, the newest five running.
async fn fill(rt: &CogRuntime, runs: i64) {
    let db = rt.connection();
    let backend = db.get_database_backend();
    let one = |sql: String| async move {
        let started = Instant::now();
        db.execute_raw(Statement::from_string(backend, sql.clone())).await.unwrap_or_else(|e| panic!("{e}: {sql}"));
        started.elapsed()
    };
    let base = (Utc::now() - chrono::TimeDelta::seconds(runs * 10 + 60)).format("%Y-%m-%d %H:%M:%S").to_string();
    let status = format!("CASE WHEN i > {runs} - 5 THEN 'running' WHEN i % 20 = 0 THEN 'failed' WHEN i % 50 = 1 THEN 'canceled' ELSE 'completed' END");
    let pipeline = "(SELECT id FROM cog_pipeline WHERE name = 'bench')";
    let t0 = Instant::now();
    one(format!(
        "INSERT INTO cog_pipeline_run (id, pipeline_id, status, \"trigger\", scheduled_for, arguments, created_at, started_at, completed_at) \
         SELECT i, {pipeline}, {status}, CASE WHEN i % 3 = 0 THEN 'manual' ELSE 'schedule' END, \
         CASE WHEN i % 3 = 0 THEN NULL ELSE {ts} END, '{{\"n\": 1}}', {ts}, {ts}, CASE WHEN i > {runs} - 5 THEN NULL ELSE {end} END FROM {series}",
        ts = at(backend, &base, "i * 10"),
        end = at(backend, &base, "i * 10 + 5"),
        series = series(backend, runs),
    ))
    .await;
    // Stage k of run i has id (i - 1) * STAGES + k; its task run has the same id.
    let task_status = format!(
        "CASE WHEN r.i > {runs} - 5 AND k.i = 1 THEN 'running' WHEN r.i > {runs} - 5 THEN 'queued' WHEN r.i % 20 = 0 AND k.i = {STAGES} THEN 'failed' \
         WHEN r.i % 50 = 1 AND k.i = {STAGES} THEN 'canceled' ELSE 'completed' END"
    );
    let stage_series = match backend {
        DbBackend::Postgres => format!("generate_series(1, {runs}) AS r(i) CROSS JOIN generate_series(1, {STAGES}) AS k(i)"),
        _ => format!("{} CROSS JOIN {}", series(backend, runs).replace(" AS n", " AS r"), series(backend, STAGES).replace(" AS n", " AS k")),
    };
    // Stage ids and task ids by position, looked up once.
    let ids = |sql: String| async move {
        let rows = db.query_all_raw(Statement::from_string(backend, sql)).await.unwrap();
        rows.iter().map(|r| r.try_get_by_index::<i64>(0).unwrap()).collect::<Vec<i64>>()
    };
    let stage_ids = ids(format!("SELECT id FROM cog_stage WHERE pipeline_id = {pipeline} ORDER BY position")).await;
    let task_ids = ids(format!("SELECT t.id FROM cog_task t JOIN cog_stage s ON s.id = t.stage_id WHERE s.pipeline_id = {pipeline} ORDER BY s.position")).await;
    let case =
        |ids: &[i64]| format!("CASE k.i {} END", ids.iter().enumerate().map(|(n, id)| format!("WHEN {} THEN {id}", n + 1)).collect::<Vec<_>>().join(" "));
    let secs = "r.i * 10 + k.i * 0.4";
    one(format!(
        "INSERT INTO cog_stage_run (id, pipeline_run_id, stage_id, status, started_at, completed_at) \
         SELECT (r.i - 1) * {STAGES} + k.i, r.i, {stage_case}, {task_status}, {start}, CASE WHEN r.i > {runs} - 5 THEN NULL ELSE {end} END FROM {stage_series}",
        stage_case = case(&stage_ids),
        start = at(backend, &base, secs),
        end = at(backend, &base, &format!("{secs} + 0.3")),
    ))
    .await;
    one(format!(
        "INSERT INTO cog_task_run (id, stage_run_id, task_id, status, queue, weight, attempt, worker, run_after, started_at, completed_at, duration_ms, result, error) \
         SELECT (r.i - 1) * {STAGES} + k.i, (r.i - 1) * {STAGES} + k.i, {task_case}, {task_status}, 'default', 1.0, 1, 'bench-worker', {start}, {start}, \
         CASE WHEN r.i > {runs} - 5 THEN NULL ELSE {end} END, 300, '{{\"rows\": 42}}', CASE WHEN r.i % 20 = 0 AND k.i = {STAGES} THEN 'upstream reset' ELSE NULL END \
         FROM {stage_series}",
        task_case = case(&task_ids),
        start = at(backend, &base, secs),
        end = at(backend, &base, &format!("{secs} + 0.3")),
    ))
    .await;
    one(format!(
        "INSERT INTO cog_error (task_run_id, attempt, error_type, message, backtrace, created_at) \
         SELECT (i - 1) * {STAGES} + {STAGES}, 1, 'std::io::Error', 'upstream reset the connection', 'at bench::fetch\n at bench::run', {ts} FROM {series} WHERE i % 20 = 0",
        ts = at(backend, &base, "i * 10 + 5"),
        series = series(backend, runs),
    ))
    .await;
    if backend == DbBackend::Postgres {
        for table in ["cog_pipeline_run", "cog_stage_run", "cog_task_run", "cog_error"] {
            one(format!("SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))")).await;
        }
    }
    one("ANALYZE".to_owned()).await;
    println!("  filled {runs} runs, {} stage runs, {} task runs, {} errors in {:.1?}", runs * STAGES, runs * STAGES, runs / 20, t0.elapsed());
}

/// Renders `path` `SAMPLES` times (after a warm-up); returns (p50, p95, bytes).
async fn measure(app: &axum::Router, path: &str) -> (Duration, Duration, usize) {
    let mut times = Vec::with_capacity(SAMPLES);
    let mut bytes = 0;
    for n in 0..SAMPLES + 3 {
        let started = Instant::now();
        let response = app.clone().oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let took = started.elapsed();
        assert_eq!(status, StatusCode::OK, "{path}: {}", String::from_utf8_lossy(&body));
        bytes = body.len();
        if n >= 3 {
            times.push(took);
        }
    }
    times.sort();
    (times[SAMPLES / 2], times[(SAMPLES * 95).div_ceil(100) - 1], bytes)
}

/// Defines, fills and measures one database.
async fn bench(label: &str, url: &str, runs: i64) {
    println!("\n{label}: filling {url}");
    let rt = CogRuntime::builder().database_url(url).build().await.expect("runtime");
    let mut bench = PipelineSpec::new("bench").schedule("*/5 * * * *");
    for k in 0..STAGES {
        let mut stage = StageSpec::new(format!("stage_{k}")).task(TaskSpec::new("bench_noop").name(format!("task_{k}")));
        if k > 0 {
            stage = stage.after([format!("stage_{}", k - 1)]);
        }
        bench = bench.stage(stage);
    }
    rt.define(bench).await.unwrap();
    rt.define(PipelineSpec::new("tiny").stage(StageSpec::new("only").task(TaskSpec::new("bench_noop")))).await.unwrap();
    fill(&rt, runs).await;
    let app = Admin::new(rt.clone()).router();
    let mid = runs / 2;
    let pages = [
        "/".to_owned(),
        "/pipelines".to_owned(),
        "/pipelines/bench".to_owned(),
        "/runs".to_owned(),
        format!("/runs?before={mid}"),
        "/runs?status=failed".to_owned(),
        format!("/runs?pipeline=bench&status=completed&before={mid}"),
        "/runs?trigger=manual&from=2020-01-01".to_owned(),
        format!("/runs/{mid}"),
        format!("/runs/{}", runs),
        "/errors".to_owned(),
        "/errors?pipeline=bench&cog=bench_noop".to_owned(),
        "/cogs".to_owned(),
        "/queues".to_owned(),
        "/api/pipelines".to_owned(),
        format!("/api/runs?limit=50&before={mid}"),
        format!("/api/runs/{mid}"),
        "/api/queues".to_owned(),
    ];
    println!("  {:<48} {:>9} {:>9} {:>9}", "page", "p50", "p95", "KiB");
    for path in &pages {
        let (p50, p95, bytes) = measure(&app, path).await;
        let flag = if p95 > Duration::from_millis(50) { "  over target" } else { "" };
        println!("  {path:<48} {:>7.1}ms {:>7.1}ms {:>9.1}{flag}", p50.as_secs_f64() * 1e3, p95.as_secs_f64() * 1e3, bytes as f64 / 1024.0);
    }
}

#[tokio::main]
async fn main() {
    let runs: i64 = std::env::var("COG_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let path = std::env::temp_dir().join(format!("cog_admin_bench_{}.db", std::process::id()));
    bench("SQLite", &format!("sqlite://{}?mode=rwc", path.display()), runs).await;
    for suffix in ["", "-wal", "-shm"] {
        let file = format!("{}{suffix}", path.display());
        if let Err(e) = std::fs::remove_file(&file)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            eprintln!("could not remove {file}: {e}");
        }
    }

    let admin_url = std::env::var("COG_BENCH_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let Ok(admin) = Database::connect(admin_url.as_str()).await else {
        println!("\nPostgreSQL: skipped (cannot connect to {admin_url}; set COG_BENCH_POSTGRES_URL)");
        return;
    };
    let name = format!("cog_admin_bench_{}", std::process::id());
    admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("create the bench database");
    let base = admin_url.rsplit_once('/').map_or(admin_url.as_str(), |(b, _)| b);
    bench("PostgreSQL", &format!("{base}/{name}"), runs).await;
    if let Err(e) = admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await {
        eprintln!("could not drop {name}: {e}");
    }
}
