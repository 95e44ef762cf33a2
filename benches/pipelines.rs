//! Run with: cargo bench --bench pipelines            (every workload, SQLite, PostgreSQL, MySQL)
//!           cargo bench --bench pipelines -- A C      (only workloads A and C)
//!
//! Workloads of DESIGN.md "Performance targets": A = 1 stage x 1,000 no-op tasks;
//! B = a chain of 100 stages x 1 task; C = 10 stages x 100 tasks; D = diamond
//! A -> (B, C) -> D with 10 tasks of 50 ms sleep each; E = 1 stage x 100,000 no-op tasks;
//! W = cross-process wake-up: 50 one-task runs launched one after the other by a process that
//! does not work, each run by an idle worker process (reported: launch -> task start, ms).
//! Each measurement runs in a fresh child process (so peak memory is its own); the 4-process
//! measurements add 3 worker processes. PostgreSQL is taken from `COG_BENCH_POSTGRES_URL`
//! (default `postgres://postgres@127.0.0.1:5432/test`), MySQL/MariaDB from
//! `COG_BENCH_MYSQL_URL` (default `mysql://root@127.0.0.1:3306/test`), each skipped when
//! unreachable. One machine-readable `bench ...` line per measurement, then a summary.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use cog::{CogRuntime, Config, PipelineSpec, RunStatus, StageSpec, TaskSpec, cog};
use sea_orm::{ConnectionTrait, Database, Statement};
use serde_json::json;

#[cog]
async fn bench_noop() {}

#[cog]
async fn bench_sleep(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

const CONCURRENCY: usize = 32;

/// Runs of workload W.
const WAKEUP_RUNS: usize = 50;

fn stage(name: String, after: &[String], tasks: usize, task: impl Fn(usize) -> TaskSpec) -> StageSpec {
    (0..tasks).fold(StageSpec::new(name).after(after.to_vec()), |s, i| s.task(task(i).name(format!("t{i}"))))
}

fn noop(_: usize) -> TaskSpec {
    TaskSpec::new("bench_noop")
}

/// The pipeline of a workload and its number of tasks.
fn workload(name: &str) -> (PipelineSpec, usize) {
    let p = PipelineSpec::new(format!("bench_{name}"));
    match name {
        "A" => (p.stage(stage("s0".into(), &[], 1000, noop)), 1000),
        "B" => ((0..100).fold(p, |p, i| p.stage(stage(format!("s{i}"), &if i == 0 { vec![] } else { vec![format!("s{}", i - 1)] }, 1, noop))), 100),
        "C" => ((0..10).fold(p, |p, i| p.stage(stage(format!("s{i}"), &if i == 0 { vec![] } else { vec![format!("s{}", i - 1)] }, 100, noop))), 1000),
        "D" => {
            let sleep = |_| TaskSpec::new("bench_sleep").args(json!({"ms": 50}));
            let p = p
                .stage(stage("a".into(), &[], 10, sleep))
                .stage(stage("b".into(), &["a".into()], 10, sleep))
                .stage(stage("c".into(), &["a".into()], 10, sleep))
                .stage(stage("d".into(), &["b".into(), "c".into()], 10, sleep));
            (p, 40)
        }
        "E" => (p.stage(stage("s0".into(), &[], 100_000, noop)), 100_000),
        "W" => (p.stage(stage("s0".into(), &[], 1, noop)), WAKEUP_RUNS),
        other => panic!("unknown workload {other}"),
    }
}

fn config() -> Config {
    Config::default().poll_interval(Duration::from_millis(100))
}

/// Peak resident memory of process `pid` in MiB (`VmHWM`). The measuring process's figure
/// includes the workload's own definition (100,000 `TaskSpec`s for E); the worker processes'
/// figure is the runtime alone.
fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Stage hand-off latencies in ms: last task of the prerequisite stages completed -> first
/// task of the stage started, for every stage with prerequisites.
async fn handoffs(db: &sea_orm::DatabaseConnection, run_id: i64) -> Vec<f64> {
    let q = |sql: String| Statement::from_string(db.get_database_backend(), sql);
    let tasks = db
        .query_all_raw(q(format!(
            "SELECT sr.stage_id, MIN(t.started_at), MAX(t.completed_at) FROM cog_task_run t JOIN cog_stage_run sr ON sr.id = t.stage_run_id \
             WHERE sr.pipeline_run_id = {run_id} GROUP BY sr.stage_id"
        )))
        .await
        .unwrap();
    let mut first_start = std::collections::HashMap::new();
    let mut last_end = std::collections::HashMap::new();
    for row in tasks {
        let stage: i64 = row.try_get_by_index(0).unwrap();
        first_start.insert(stage, row.try_get_by_index::<DateTime<Utc>>(1).unwrap());
        last_end.insert(stage, row.try_get_by_index::<DateTime<Utc>>(2).unwrap());
    }
    let edges = db.query_all_raw(q("SELECT stage_id, prerequisite_id FROM cog_stage_prerequisite".into())).await.unwrap();
    let mut ready: std::collections::HashMap<i64, DateTime<Utc>> = std::collections::HashMap::new();
    for row in edges {
        let (stage, pre): (i64, i64) = (row.try_get_by_index(0).unwrap(), row.try_get_by_index(1).unwrap());
        if let Some(end) = last_end.get(&pre) {
            let e = ready.entry(stage).or_insert(*end);
            *e = (*e).max(*end);
        }
    }
    let mut out: Vec<f64> =
        ready.iter().filter_map(|(stage, end)| first_start.get(stage).map(|s| (*s - *end).num_microseconds().unwrap_or(0) as f64 / 1000.0)).collect();
    out.sort_by(|a, b| a.total_cmp(b));
    out
}

/// Launch to first task start (ms), and tasks per second between the first task start and
/// the last task end: what the run costs around its tasks, and the rate once it runs.
async fn ramp_and_steady_rate(db: &sea_orm::DatabaseConnection, run_id: i64, tasks: usize) -> (f64, f64) {
    let sql = format!(
        "SELECT r.started_at, MIN(t.started_at), MAX(t.completed_at) FROM cog_pipeline_run r JOIN cog_stage_run sr ON sr.pipeline_run_id = r.id \
         JOIN cog_task_run t ON t.stage_run_id = sr.id WHERE r.id = {run_id} GROUP BY r.started_at"
    );
    let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap().unwrap();
    let (run_start, first, last): (DateTime<Utc>, DateTime<Utc>, DateTime<Utc>) =
        (row.try_get_by_index(0).unwrap(), row.try_get_by_index(1).unwrap(), row.try_get_by_index(2).unwrap());
    let ms = |a: DateTime<Utc>, b: DateTime<Utc>| (b - a).num_microseconds().unwrap_or(0) as f64 / 1000.0;
    (ms(run_start, first), tasks as f64 / (ms(first, last) / 1000.0).max(1e-6))
}

fn spawn_self(args: &[&str]) -> Child {
    Command::new(std::env::current_exe().unwrap()).args(args).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("spawn bench child")
}

/// Child: one worker process working until killed (or its parent is gone).
async fn worker(url: &str) {
    let rt = CogRuntime::builder().database_url(url).concurrency(CONCURRENCY).config(config()).scheduler(false).build().await.unwrap();
    rt.start();
    let parent = std::os::unix::process::parent_id();
    while std::os::unix::process::parent_id() == parent {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Workload W: `WAKEUP_RUNS` one-task runs launched by this process, which does not work, and
/// run by one idle worker process; returns launch -> task start of each, in ms, sorted.
async fn wakeups(rt: &CogRuntime, pipeline: &str) -> Vec<f64> {
    let mut out = Vec::with_capacity(WAKEUP_RUNS);
    for _ in 0..WAKEUP_RUNS {
        // Let the worker go idle first, as it would be between rare launches.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let run = rt.launch(pipeline).await.unwrap();
        assert_eq!(run.wait().await.unwrap(), RunStatus::Completed);
        let sql = format!(
            "SELECT r.created_at, t.started_at FROM cog_pipeline_run r JOIN cog_stage_run sr ON sr.pipeline_run_id = r.id \
             JOIN cog_task_run t ON t.stage_run_id = sr.id WHERE r.id = {}",
            run.id()
        );
        let db = rt.connection();
        let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap().unwrap();
        let (launched, started): (DateTime<Utc>, DateTime<Utc>) = (row.try_get_by_index(0).unwrap(), row.try_get_by_index(1).unwrap());
        out.push((started - launched).num_microseconds().unwrap_or(0) as f64 / 1000.0);
    }
    out.sort_by(|a, b| a.total_cmp(b));
    out
}

/// Child: one measurement; prints its `bench` line.
async fn measure(name: &str, db_kind: &str, procs: usize, admin_url: &str) {
    let url = match db_kind {
        "sqlite" => {
            let path = std::env::temp_dir().join(format!("cog_bench_{}_{name}.db", std::process::id()));
            format!("sqlite://{}?mode=rwc", path.display())
        }
        _ => {
            let admin = Database::connect(admin_url).await.unwrap();
            let db = format!("cog_bench_{}_{}", name.to_lowercase(), std::process::id());
            admin.execute_unprepared(&format!("CREATE DATABASE {db}")).await.unwrap();
            format!("{}/{db}", &admin_url[..admin_url.rfind('/').unwrap()])
        }
    };
    if name == "W" {
        return measure_wakeups(&url, db_kind, admin_url).await;
    }
    let rt = CogRuntime::builder().database_url(&url).concurrency(CONCURRENCY).config(config()).scheduler(false).build().await.unwrap();
    let (spec, tasks) = workload(name);
    let defined = Instant::now();
    rt.define(spec).await.unwrap();
    let define_s = defined.elapsed().as_secs_f64();
    let mut workers: Vec<Child> = (1..procs).map(|_| spawn_self(&["--worker", &url])).collect();
    if procs > 1 {
        tokio::time::sleep(Duration::from_millis(500)).await; // let the workers connect
    }
    rt.start();
    let started = Instant::now();
    let run = rt.launch(&format!("bench_{name}")).await.unwrap();
    let status = run.wait().await.unwrap();
    let wall = started.elapsed().as_secs_f64();
    let rss = peak_rss_mb(std::process::id());
    let worker_rss = workers.iter().map(|w| peak_rss_mb(w.id())).fold(0.0, f64::max);
    for w in &mut workers {
        let _ = w.kill();
        let _ = w.wait();
    }
    rt.shutdown().await;
    assert_eq!(status, RunStatus::Completed, "workload {name} did not complete");
    let h = handoffs(rt.connection(), run.id()).await;
    let (ramp_ms, steady) = ramp_and_steady_rate(rt.connection(), run.id(), tasks).await;
    let (p50, p99) =
        if h.is_empty() { ("-".to_owned(), "-".to_owned()) } else { (format!("{:.2}", percentile(&h, 0.5)), format!("{:.2}", percentile(&h, 0.99))) };
    println!(
        "bench workload={name} db={db_kind} procs={procs} tasks={tasks} wall_s={wall:.3} tasks_per_s={:.0} handoff_p50_ms={p50} handoff_p99_ms={p99} peak_rss_mb={rss:.1} worker_peak_rss_mb={} define_s={define_s:.2} first_task_ms={ramp_ms:.1} steady_tasks_per_s={steady:.0}",
        tasks as f64 / wall,
        if workers.is_empty() { "-".to_owned() } else { format!("{worker_rss:.1}") }
    );
    if db_kind == "sqlite" {
        let path = url.trim_start_matches("sqlite://").trim_end_matches("?mode=rwc").to_owned();
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{path}{suffix}"));
        }
    } else {
        rt.connection().clone().close().await.ok();
        drop(rt);
        drop_database(&url, db_kind, admin_url).await;
    }
}

/// Drops a bench database on a server.
async fn drop_database(url: &str, db_kind: &str, admin_url: &str) {
    let admin = Database::connect(admin_url).await.unwrap();
    let name = url.rsplit('/').next().unwrap_or_default();
    let sql = if db_kind == "mysql" { format!("DROP DATABASE IF EXISTS {name}") } else { format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)") };
    if let Err(e) = admin.execute_unprepared(&sql).await {
        eprintln!("notice: could not drop bench database {name}: {e}");
    }
}

/// Child: workload W on a server database; prints its `bench` line.
async fn measure_wakeups(url: &str, db_kind: &str, admin_url: &str) {
    let rt = CogRuntime::builder().database_url(url).concurrency(CONCURRENCY).config(config()).scheduler(false).build().await.unwrap();
    let (spec, runs) = workload("W");
    rt.define(spec).await.unwrap();
    let mut worker = spawn_self(&["--worker", url]);
    tokio::time::sleep(Duration::from_millis(500)).await; // let the worker connect
    let latencies = wakeups(&rt, "bench_W").await;
    let _ = worker.kill();
    let _ = worker.wait();
    println!(
        "bench workload=W db={db_kind} procs=2 tasks={runs} wakeup_p50_ms={:.2} wakeup_p99_ms={:.2} wakeup_max_ms={:.2}",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(0.0)
    );
    rt.connection().clone().close().await.ok();
    drop(rt);
    drop_database(url, db_kind, admin_url).await;
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let pg_admin = std::env::var("COG_BENCH_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let my_admin = std::env::var("COG_BENCH_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_owned());
    let admin_of = |db: &str| if db == "mysql" { my_admin.clone() } else { pg_admin.clone() };
    match args.first().map(String::as_str) {
        Some("--worker") => return worker(&args[1]).await,
        Some("--measure") => return measure(&args[1], &args[2], args[3].parse().unwrap(), &admin_of(&args[2])).await,
        _ => {}
    }
    let chosen: Vec<&str> = ["A", "B", "C", "D", "E", "W"].into_iter().filter(|w| args.is_empty() || args.iter().any(|a| a == w)).collect();
    let pg = Database::connect(pg_admin.as_str()).await.is_ok();
    if !pg {
        eprintln!("notice: PostgreSQL at {pg_admin} is unreachable; skipping it");
    }
    let my = Database::connect(my_admin.as_str()).await.is_ok();
    if !my {
        eprintln!("notice: MySQL at {my_admin} is unreachable; skipping it");
    }
    let mut lines = Vec::new();
    for w in &chosen {
        // W needs another process: servers only.
        let mut combos = if *w == "W" { vec![] } else { vec![("sqlite", 1)] };
        for (up, db) in [(pg, "postgres"), (my, "mysql")] {
            if up {
                combos.extend(if *w == "W" { vec![(db, 2)] } else { vec![(db, 1), (db, 4)] });
            }
        }
        for (db, procs) in combos {
            let child = spawn_self(&["--measure", w, db, &procs.to_string()]);
            let out = child.wait_with_output().expect("bench child");
            let text = String::from_utf8_lossy(&out.stdout);
            match text.lines().find(|l| l.starts_with("bench ")) {
                Some(line) => {
                    println!("{line}");
                    lines.push(line.to_owned());
                }
                None => println!("bench workload={w} db={db} procs={procs} error=\"the measurement failed (exit {:?})\"", out.status.code()),
            }
        }
    }
    println!("\nsummary ({} cores, {}):", std::thread::available_parallelism().map_or(0, |n| n.get()), Utc::now().format("%Y-%m-%d"));
    println!(
        "{:<9} {:<9} {:>5} {:>8} {:>9} {:>11} {:>11} {:>9} {:>11}",
        "workload", "db", "procs", "tasks", "tasks/s", "handoff p50", "handoff p99", "peak MiB", "worker MiB"
    );
    let (wakeup_lines, lines): (Vec<String>, Vec<String>) = lines.into_iter().partition(|l| l.contains("workload=W "));
    for line in lines {
        let field = |k: &str| line.split_whitespace().find_map(|kv| kv.strip_prefix(&format!("{k}="))).unwrap_or("-").to_owned();
        println!(
            "{:<9} {:<9} {:>5} {:>8} {:>9} {:>11} {:>11} {:>9} {:>11}",
            field("workload"),
            field("db"),
            field("procs"),
            field("tasks"),
            field("tasks_per_s"),
            field("handoff_p50_ms"),
            field("handoff_p99_ms"),
            field("peak_rss_mb"),
            field("worker_peak_rss_mb")
        );
    }
    if !wakeup_lines.is_empty() {
        println!("\ncross-process wake-up (launch in one process -> task start in an idle worker process):");
        println!("{:<9} {:>10} {:>10} {:>10}", "db", "p50 ms", "p99 ms", "max ms");
        for line in wakeup_lines {
            let field = |k: &str| line.split_whitespace().find_map(|kv| kv.strip_prefix(&format!("{k}="))).unwrap_or("-").to_owned();
            println!("{:<9} {:>10} {:>10} {:>10}", field("db"), field("wakeup_p50_ms"), field("wakeup_p99_ms"), field("wakeup_max_ms"));
        }
    }
}
