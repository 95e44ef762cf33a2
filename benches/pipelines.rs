//! Run with: cargo bench --bench pipelines            (every workload, SQLite, PostgreSQL, MySQL)
//!           cargo bench --bench pipelines -- A C      (only workloads A and C)
//!
//! Workloads of DESIGN.md "Performance targets": A = 1 stage x 1,000 no-op tasks;
//! B = a chain of 100 stages x 1 task; C = 10 stages x 100 tasks; D = diamond
//! A -> (B, C) -> D with 10 tasks of 50 ms sleep each; E = 1 stage x 100,000 no-op tasks;
//! F = 50 runs launched at once, each a chain of 5 stages x 40 no-op tasks (reported besides
//! tasks/s: the spread of run durations, and the longest any run waited for its first task,
//! as fairness: no run may wait for all the others);
//! W = cross-process wake-up: 50 one-task runs launched one after the other by a process that
//! does not work, each run by an idle worker process (reported: launch -> task start, ms).
//! Only when named (`cargo bench --bench pipelines -- F G H`), two workloads that take F
//! apart, each 10,000 no-op tasks as F: G = F's 50 runs launched at once, each one stage of
//! 200 tasks (F without its 200 stage hand-offs: what its runs cost), and H = 10 runs launched
//! at once, each a chain of 5 stages x 200 tasks (F's chains in 5 times fewer runs).
//! Every line also reports the CPU time per task, in µs, spent by cog's processes (the
//! measuring one and the workers, from `/proc/<pid>/stat` as `getrusage` counts it) and by the
//! PostgreSQL backends serving the bench database (`/proc/<pid>/stat` of each, the server
//! being on this machine; `-` for SQLite, which runs inside cog's process, and for MySQL, whose
//! one server process serves every database), the machine's load average when the
//! measurement started (the cores are shared: CPU per task is the steadier figure), and
//! `cpu_loop_ms`, the calibration's CPU loop timed (a tenth of it, scaled) right before the
//! measurement, and `roundtrip_us` / `commit_us`, the server's round trip and one-row commit
//! probed in the bench database right before it too (medians of 200 and 50; `-` on SQLite): a
//! machine whose speed changes from one run to the next shows it there.
//! `handoff_p50_ms` / `handoff_p99_ms`: from the end of the last cog call of a stage to the
//! start of the first cog call of each stage it unblocks, by the wall clock (every bench cog
//! returns when its call began and ended). Until 2026-12-05 they were read from the task run
//! rows instead (the next stage's first claim, `started_at`, after the last `completed_at`):
//! since a stage's start on PostgreSQL claims its task runs in the transaction that records
//! the stage before it ending, that reads 0 and says nothing of the commit and the dispatch.
//! `first_task_ms` is `launch()` called -> first cog call started, in the measuring process,
//! a fresh one (its runtime built, started and `ready()`); with several processes, -> the
//! first task run started in any of them (its `started_at`, written when it is claimed), the
//! worker processes having reported `ready()` before the launch.
//! Each measurement runs in a fresh child process (so peak memory is its own); the 4-process
//! measurements add 3 worker processes. PostgreSQL is taken from `COG_BENCH_POSTGRES_URL`
//! (default `postgres://postgres@127.0.0.1:5432/test?sslmode=disable`: the server is on this
//! machine, and TLS over loopback — sqlx's default `prefer` takes it when the server offers
//! it, as Debian's does — cost 12 % of F's throughput, 2026-12-04), MySQL/MariaDB from
//! `COG_BENCH_MYSQL_URL` (default `mysql://root@127.0.0.1:3306/test`), each skipped when
//! unreachable. One machine-readable `bench ...` line per measurement, then a summary.
//! First, for each server, a `bench calibration ...` line (also alone: `--calibrate
//! <postgres|mysql>`): the server's round trip and commit, and a CPU loop, as measured right
//! then (machines of one kind ran the same code twice as fast on one day as on another).
//! For profiling: `COG_BENCH_NO_LEARN=1` runs every process with `Config::auto_weight(false)`
//! (what weight learning costs), `COG_BENCH_FAIR_RUNS=<n>` launches n runs in F and G instead
//! of 50, `COG_BENCH_CHAIN_STAGES=<n>` makes B a chain of n stages instead of 100 (a longer
//! run of hand-offs, whose set-up is a smaller part of what a profiler samples),
//! `COG_BENCH_STEPS=1` ends each line with where the measuring process's hand-offs spent
//! their time, step by step (`steps_us`, see `pipelines/steps.rs`; B on one process),
//! `COG_BENCH_TEMPLATE=<database>` creates each server database as a copy of that one
//! (a kept one: the workload then runs on top of its history), and `COG_BENCH_KEEP=1` leaves
//! each server database in place
//! after its measurement (`cog_bench_<workload>_<pid>`, for `EXPLAIN` on its data; drop it
//! yourself).

#[path = "pipelines/steps.rs"]
mod steps;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use cog::{CogRuntime, Config, PipelineSpec, RunStatus, StageSpec, TaskSpec, cog};
use sea_orm::{ConnectionTrait, Database, Statement};
use serde_json::json;

/// When this process first started a task (first-task latency, measured in-process).
static FIRST_TASK: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// The wall clock, in µs since the Unix epoch: the bench's cogs return when their call began
/// and ended (every process on one machine), from which the hand-offs are measured.
fn wall_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}

#[cog]
async fn bench_noop() -> [i64; 2] {
    let began = wall_us();
    FIRST_TASK.get_or_init(Instant::now);
    [began, wall_us()]
}

#[cog]
async fn bench_sleep(ms: u64) -> [i64; 2] {
    let began = wall_us();
    FIRST_TASK.get_or_init(Instant::now);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    [began, wall_us()]
}

const CONCURRENCY: usize = 32;

/// Task runs a worker claims ahead of its free slots (`Config::prefetch`), from
/// `COG_BENCH_PREFETCH` (default 480: with 32 slots, up to 512 task runs held per worker, claimed
/// at most 256 at a time, written in outcome batches of up to 512).
/// 480 rather than the 224 of the passes before 2026-12-05: E on PostgreSQL x 4 then ran
/// 9-12 % more tasks per second (steady 26.5-26.7k -> 29.1-29.8k, three pairs), with 8 %
/// less PostgreSQL CPU per task; C and F the same or a little faster; 992 was no faster.
fn prefetch() -> usize {
    std::env::var("COG_BENCH_PREFETCH").ok().and_then(|v| v.parse().ok()).unwrap_or(480)
}

/// Runs of workload W.
const WAKEUP_RUNS: usize = 50;

/// Runs of workload F (and G), launched at once: 50, or `COG_BENCH_FAIR_RUNS` for profiling
/// (a longer run, whose set-up is a smaller part of what a profiler samples).
fn fair_runs() -> usize {
    std::env::var("COG_BENCH_FAIR_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(50)
}

/// Stages of workload B: 100, or `COG_BENCH_CHAIN_STAGES` for profiling.
fn chain_stages() -> usize {
    std::env::var("COG_BENCH_CHAIN_STAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(100)
}

/// Runs of workload H, launched at once.
const BIG_STAGE_RUNS: usize = 10;

/// A chain of `stages` stages of `tasks` no-op tasks each, `s0` first.
fn chain(p: PipelineSpec, stages: usize, tasks: usize) -> PipelineSpec {
    (0..stages).fold(p, |p, i| p.stage(stage(format!("s{i}"), &if i == 0 { vec![] } else { vec![format!("s{}", i - 1)] }, tasks, noop)))
}

/// How many runs of workload `name` are launched at once.
fn launches(name: &str) -> usize {
    match name {
        "F" | "G" => fair_runs(),
        "H" => BIG_STAGE_RUNS,
        _ => 1,
    }
}

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
        "B" => (chain(p, chain_stages(), 1), chain_stages()),
        "C" => (chain(p, 10, 100), 1000),
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
        "F" => (chain(p.prevent_overlap(false), 5, 40), fair_runs() * 200),
        "G" => (chain(p.prevent_overlap(false), 1, 200), fair_runs() * 200),
        "H" => (chain(p.prevent_overlap(false), 5, 200), BIG_STAGE_RUNS * 1000),
        "W" => (p.stage(stage("s0".into(), &[], 1, noop)), WAKEUP_RUNS),
        other => panic!("unknown workload {other}"),
    }
}

fn config() -> Config {
    let learn = std::env::var_os("COG_BENCH_NO_LEARN").is_none();
    Config::default().poll_interval(Duration::from_millis(100)).prefetch(prefetch()).auto_weight(learn)
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

/// CPU time (user + system) process `pid` has used so far, in seconds, as `getrusage` counts
/// it (`/proc/<pid>/stat`, in clock ticks of 10 ms); 0 if the process is gone.
fn cpu_s(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces), from field 3 on.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

/// The database server's processes serving the bench database (PostgreSQL backends, by pid),
/// or none (SQLite runs inside this process; MySQL serves every connection from one process).
async fn db_backends(db: &sea_orm::DatabaseConnection, db_kind: &str) -> Vec<u32> {
    if db_kind != "postgres" {
        return Vec::new();
    }
    let sql = "SELECT pid FROM pg_stat_activity WHERE datname = current_database()";
    let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap_or_default();
    rows.iter().filter_map(|r| r.try_get_by_index::<i32>(0).ok()).map(|p| p as u32).collect()
}

/// CPU seconds used so far by each of `pids`.
fn cpu_of(pids: &[u32]) -> std::collections::HashMap<u32, f64> {
    pids.iter().map(|&p| (p, cpu_s(p))).collect()
}

/// CPU seconds `after` used beyond `before` (processes new in `after` count whole).
fn cpu_used(before: &std::collections::HashMap<u32, f64>, after: &std::collections::HashMap<u32, f64>) -> f64 {
    after.iter().map(|(pid, t)| t - before.get(pid).copied().unwrap_or(0.0)).sum()
}

/// The machine's 1-minute load average.
fn load1() -> String {
    std::fs::read_to_string("/proc/loadavg").ok().and_then(|l| l.split_whitespace().next().map(str::to_owned)).unwrap_or_else(|| "-".to_owned())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Stage hand-off latencies in ms: the last cog call of the prerequisite stages ended -> the
/// first cog call of the stage began (as the cogs report them), for every stage with
/// prerequisites.
async fn handoffs(db: &sea_orm::DatabaseConnection, run_id: i64) -> Vec<f64> {
    let q = |sql: String| Statement::from_string(db.get_database_backend(), sql);
    let edges = db.query_all_raw(q("SELECT stage_id, prerequisite_id FROM cog_stage_prerequisite".into())).await.unwrap();
    if edges.is_empty() {
        return Vec::new();
    }
    let tasks = db
        .query_all_raw(q(format!(
            "SELECT sr.stage_id, t.result FROM cog_task_run t JOIN cog_stage_run sr ON sr.id = t.stage_run_id WHERE sr.pipeline_run_id = {run_id}"
        )))
        .await
        .unwrap();
    let mut first_start = std::collections::HashMap::new();
    let mut last_end = std::collections::HashMap::new();
    for row in tasks {
        let stage: i64 = row.try_get_by_index(0).unwrap();
        let result: String = row.try_get_by_index::<Option<String>>(1).unwrap().expect("a completed task run has its result");
        let [began, ended]: [i64; 2] = serde_json::from_str(&result).expect("a bench cog returns when its call began and ended");
        let start = first_start.entry(stage).or_insert(began);
        *start = (*start).min(began);
        let end = last_end.entry(stage).or_insert(ended);
        *end = (*end).max(ended);
    }
    let mut ready: std::collections::HashMap<i64, i64> = std::collections::HashMap::new();
    for row in edges {
        let (stage, pre): (i64, i64) = (row.try_get_by_index(0).unwrap(), row.try_get_by_index(1).unwrap());
        if let Some(end) = last_end.get(&pre) {
            let e = ready.entry(stage).or_insert(*end);
            *e = (*e).max(*end);
        }
    }
    let mut out: Vec<f64> = ready.iter().filter_map(|(stage, end)| first_start.get(stage).map(|s| (*s - *end) as f64 / 1000.0)).collect();
    out.sort_by(|a, b| a.total_cmp(b));
    out
}

/// Tasks per second between the first task start and the last task end of `runs`: the rate
/// once they run.
async fn steady_rate(db: &sea_orm::DatabaseConnection, runs: &[i64], tasks: usize) -> f64 {
    let ids = runs.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
    let sql = format!(
        "SELECT MIN(t.started_at), MAX(t.completed_at) FROM cog_stage_run sr \
         JOIN cog_task_run t ON t.stage_run_id = sr.id WHERE sr.pipeline_run_id IN ({ids})"
    );
    let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap().unwrap();
    let (first, last): (DateTime<Utc>, DateTime<Utc>) = (row.try_get_by_index(0).unwrap(), row.try_get_by_index(1).unwrap());
    tasks as f64 / ((last - first).num_microseconds().unwrap_or(0) as f64 / 1e6).max(1e-6)
}

/// Workload F's fairness over `runs`: each run's duration (launch -> `completed_at`, s),
/// sorted, and the longest any run waited between its launch and its first task start (ms).
async fn run_spread(db: &sea_orm::DatabaseConnection, runs: &[i64]) -> (Vec<f64>, f64) {
    let ids = runs.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
    let sql = format!(
        "SELECT r.id, r.created_at, r.completed_at, MIN(t.started_at) FROM cog_pipeline_run r JOIN cog_stage_run sr ON sr.pipeline_run_id = r.id \
         JOIN cog_task_run t ON t.stage_run_id = sr.id WHERE r.id IN ({ids}) GROUP BY r.id, r.created_at, r.completed_at"
    );
    let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap();
    let ms = |a: DateTime<Utc>, b: DateTime<Utc>| (b - a).num_microseconds().unwrap_or(0) as f64 / 1000.0;
    let mut durations = Vec::new();
    let mut wait_max: f64 = 0.0;
    for row in rows {
        let (created, completed, first): (DateTime<Utc>, DateTime<Utc>, DateTime<Utc>) =
            (row.try_get_by_index(1).unwrap(), row.try_get_by_index(2).unwrap(), row.try_get_by_index(3).unwrap());
        durations.push(ms(created, completed) / 1000.0);
        wait_max = wait_max.max(ms(created, first));
    }
    durations.sort_by(|a, b| a.total_cmp(b));
    (durations, wait_max)
}

/// Launch called at `since` -> the earliest task run of `runs` started, in ms, in whichever
/// process claimed it (its `started_at`, written at the claim).
async fn first_start_ms(db: &sea_orm::DatabaseConnection, runs: &[i64], since: DateTime<Utc>) -> f64 {
    let ids = runs.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
    let sql = format!("SELECT MIN(t.started_at) FROM cog_stage_run sr JOIN cog_task_run t ON t.stage_run_id = sr.id WHERE sr.pipeline_run_id IN ({ids})");
    let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap().unwrap();
    let first: DateTime<Utc> = row.try_get_by_index(0).unwrap();
    (first - since).num_microseconds().unwrap_or(0) as f64 / 1000.0
}

fn spawn_self(args: &[&str]) -> Child {
    Command::new(std::env::current_exe().unwrap()).args(args).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("spawn bench child")
}

/// Waits until worker process `child` (spawned with `--worker`) has registered and is claiming:
/// it prints `ready` then. A measurement that only slept while workers started could begin
/// with some of them still building their runtime (W's first run then waited ~220 ms for it).
fn wait_ready(child: &mut Child) {
    use std::io::BufRead;
    let stdout = child.stdout.take().expect("worker stdout is piped");
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line).expect("read the worker's stdout");
    assert_eq!(line.trim(), "ready", "the bench worker exited before it was ready");
}

/// Child: one worker process working until killed (or its parent is gone).
async fn worker(url: &str) {
    let rt = CogRuntime::builder().database_url(url).concurrency(CONCURRENCY).config(config()).scheduler(false).build().await.unwrap();
    rt.start();
    rt.ready().await;
    println!("ready");
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
            // A copy of a kept database (`COG_BENCH_KEEP`) measures a workload on top of its
            // history.
            let template = std::env::var("COG_BENCH_TEMPLATE").map(|t| format!(" TEMPLATE {t}")).unwrap_or_default();
            admin.execute_unprepared(&format!("CREATE DATABASE {db}{template}")).await.unwrap();
            with_database(admin_url, &db)
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
    workers.iter_mut().for_each(wait_ready);
    let load = load1();
    // The machine's speed right before this measurement (a tenth of the calibration's loop,
    // scaled to it): some machines of this kind ran the same build 1.5x apart from one run
    // to the next (2026-12-06), and this tells a slow run from a slow build.
    let cpu_loop = cpu_loop_ms(CPU_LOOP / 10);
    // And the server's round trip and commit (every hand-off waits for a commit): on one
    // machine B's hand-offs took 2.0 ms in one whole bench and 1.1–1.3 ms in the runs around it
    // with the same CPU loop (2026-12-06).
    let (trips, commits) = match db_kind {
        "sqlite" => ("-".to_owned(), "-".to_owned()),
        _ => match probe(&url, db_kind, 200, 50).await {
            Ok((t, c)) => (format!("{t:.0}"), format!("{c:.0}")),
            Err(e) => {
                eprintln!("notice: could not probe the server's round trip and commit before measuring {name}: {e}");
                ("-".to_owned(), "-".to_owned())
            }
        },
    };
    let cog_pids: Vec<u32> = std::iter::once(std::process::id()).chain(workers.iter().map(Child::id)).collect();
    let (cog_before, db_before) = (cpu_of(&cog_pids), cpu_of(&db_backends(rt.connection(), db_kind).await));
    rt.start();
    // A service that just started: its worker is registered, then a launch comes in.
    rt.ready().await;
    let (started, started_wall) = (Instant::now(), Utc::now());
    let launches = launches(name);
    let pipeline = format!("bench_{name}");
    let runs = futures::future::try_join_all((0..launches).map(|_| rt.launch(&pipeline))).await.unwrap();
    let statuses = futures::future::try_join_all(runs.iter().map(|r| r.wait())).await.unwrap();
    let wall = started.elapsed().as_secs_f64();
    let (cog_after, db_after) = (cpu_of(&cog_pids), cpu_of(&db_backends(rt.connection(), db_kind).await));
    let per_task_us = |s: f64| format!("{:.1}", s * 1e6 / tasks as f64);
    let cog_cpu = per_task_us(cpu_used(&cog_before, &cog_after));
    let db_cpu = if db_kind == "postgres" { per_task_us(cpu_used(&db_before, &db_after)) } else { "-".to_owned() };
    let rss = peak_rss_mb(std::process::id());
    let worker_rss = workers.iter().map(|w| peak_rss_mb(w.id())).fold(0.0, f64::max);
    for w in &mut workers {
        let _ = w.kill();
        let _ = w.wait();
    }
    rt.shutdown().await;
    assert!(statuses.iter().all(|s| *s == RunStatus::Completed), "workload {name} did not complete");
    let mut h = Vec::new();
    for run in &runs {
        h.extend(handoffs(rt.connection(), run.id()).await);
    }
    h.sort_by(|a, b| a.total_cmp(b));
    let (p50, p99) =
        if h.is_empty() { ("-".to_owned(), "-".to_owned()) } else { (format!("{:.2}", percentile(&h, 0.5)), format!("{:.2}", percentile(&h, 0.99))) };
    let run_ids: Vec<i64> = runs.iter().map(|r| r.id()).collect();
    let fairness = if runs.len() > 1 {
        let (durations, wait_max) = run_spread(rt.connection(), &run_ids).await;
        format!(
            " runs={} run_min_s={:.3} run_p50_s={:.3} run_max_s={:.3} run_first_task_max_ms={wait_max:.1}",
            runs.len(),
            durations.first().copied().unwrap_or(0.0),
            percentile(&durations, 0.5),
            durations.last().copied().unwrap_or(0.0)
        )
    } else {
        String::new()
    };
    let steady = steady_rate(rt.connection(), &run_ids, tasks).await;
    let ramp_ms = if procs == 1 {
        FIRST_TASK.get().map_or(f64::NAN, |t| t.duration_since(started).as_secs_f64() * 1000.0)
    } else {
        first_start_ms(rt.connection(), &run_ids, started_wall).await
    };
    println!(
        "bench workload={name} db={db_kind} procs={procs} tasks={tasks} wall_s={wall:.3} tasks_per_s={:.0} handoff_p50_ms={p50} handoff_p99_ms={p99} peak_rss_mb={rss:.1} worker_peak_rss_mb={} define_s={define_s:.2} first_task_ms={ramp_ms:.1} steady_tasks_per_s={steady:.0} cpu_us_per_task={cog_cpu} db_cpu_us_per_task={db_cpu} load1={load} cpu_loop_ms={cpu_loop:.0} roundtrip_us={trips} commit_us={commits}{fairness}{}",
        tasks as f64 / wall,
        if workers.is_empty() { "-".to_owned() } else { format!("{worker_rss:.1}") },
        if steps::enabled() { steps::summary() } else { String::new() }
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

/// `url` (a server's URL) naming database `db` instead of its own, its parameters kept
/// (`?sslmode=disable` must reach the bench database's connections too).
fn with_database(url: &str, db: &str) -> String {
    let (base, params) = url.split_once('?').map_or((url, None), |(b, p)| (b, Some(p)));
    let server = &base[..base.rfind('/').expect("a server URL ends in /<database>")];
    params.map_or_else(|| format!("{server}/{db}"), |p| format!("{server}/{db}?{p}"))
}

/// Drops a bench database on a server.
async fn drop_database(url: &str, db_kind: &str, admin_url: &str) {
    if std::env::var_os("COG_BENCH_KEEP").is_some() {
        eprintln!("COG_BENCH_KEEP: {url} kept");
        return;
    }
    let admin = Database::connect(admin_url).await.unwrap();
    let name = url.split('?').next().unwrap_or_default().rsplit('/').next().unwrap_or_default();
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
    wait_ready(&mut worker);
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

/// The value of `key` in a `bench ...` line (`key=value`), `-` when absent.
fn field_of(line: &str, key: &str) -> String {
    line.split_whitespace().find_map(|kv| kv.strip_prefix(key).and_then(|rest| rest.strip_prefix('='))).unwrap_or("-").to_owned()
}

/// The calibration's CPU loop: 10^8 multiply-adds.
const CPU_LOOP: u64 = 100_000_000;

/// Milliseconds this process takes for `iterations` of the CPU loop, scaled to [`CPU_LOOP`]'s.
fn cpu_loop_ms(iterations: u64) -> f64 {
    let t = Instant::now();
    let mut x: u64 = 1;
    for i in 0..iterations {
        x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(i));
    }
    std::hint::black_box(x);
    t.elapsed().as_secs_f64() * 1e3 * CPU_LOOP as f64 / iterations as f64
}

/// How fast this machine and its database server are right now, for reading the other lines:
/// the same code measured 2x apart on two days on machines of one kind (2026-12-05). Prints a
/// `bench calibration ...` line: the median of 2,000 round trips of a prepared `SELECT 1` on
/// one connection in a transaction (`roundtrip_us`), of 300 transactions that insert one row
/// and commit (`commit_us`, the commit's WAL flush included), and a fixed CPU loop in this
/// process (`cpu_loop_ms`, 10^8 multiply-adds).
async fn calibrate(url: &str, db_kind: &str) -> String {
    let (trips, commits) = match probe(url, db_kind, 2_000, 300).await {
        Ok(probed) => probed,
        Err(e) => return format!("bench calibration db={db_kind} error=\"{}\"", e.to_string().replace('"', "'")),
    };
    let cpu_ms = cpu_loop_ms(CPU_LOOP);
    format!("bench calibration db={db_kind} roundtrip_us={trips:.0} commit_us={commits:.0} cpu_loop_ms={cpu_ms:.0} load1={}", load1())
}

/// The server's round trip and one-row commit right now, in µs, on a connection of its own to
/// database `url` (an error: unreachable, or a probe statement failed): the medians of
/// `round_trips` prepared `SELECT 1`s in a transaction (after 200 more to warm up) and of
/// `commits` transactions that insert a row into a scratch table (dropped afterwards, whatever
/// happened) and commit, the commit alone timed.
async fn probe(url: &str, db_kind: &str, round_trips: usize, commits: usize) -> Result<(f64, f64), sea_orm::DbErr> {
    let mut options = sea_orm::ConnectOptions::new(url.to_owned());
    options.max_connections(1).sqlx_logging(false);
    let db = Database::connect(options).await?;
    let table = format!("cog_bench_calibration_{}", std::process::id());
    let id_column = if db_kind == "mysql" { "id BIGINT AUTO_INCREMENT PRIMARY KEY" } else { "id BIGSERIAL PRIMARY KEY" };
    db.execute_unprepared(&format!("CREATE TABLE {table} ({id_column}, v INT)")).await?;
    let probed = probe_on(&db, &table, round_trips, commits).await;
    if let Err(e) = db.execute_unprepared(&format!("DROP TABLE {table}")).await {
        eprintln!("notice: could not drop the probe's table {table}: {e}");
    }
    db.close().await.ok();
    probed
}

/// [`probe`]'s measurements on `db`, its scratch table `table` made.
async fn probe_on(db: &sea_orm::DatabaseConnection, table: &str, round_trips: usize, commits: usize) -> Result<(f64, f64), sea_orm::DbErr> {
    let backend = db.get_database_backend();
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let txn = sea_orm::TransactionTrait::begin(db).await?;
    let select = Statement::from_sql_and_values(backend, "SELECT 1 AS one", []);
    let mut trips = Vec::with_capacity(round_trips);
    for i in 0..round_trips + 200 {
        let t = Instant::now();
        txn.query_one_raw(select.clone()).await?;
        if i >= 200 {
            trips.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    txn.commit().await?;
    let insert = Statement::from_string(backend, format!("INSERT INTO {table} (v) VALUES (1)"));
    let mut committed = Vec::with_capacity(commits);
    for _ in 0..commits {
        let txn = sea_orm::TransactionTrait::begin(db).await?;
        txn.execute_raw(insert.clone()).await?;
        let t = Instant::now();
        txn.commit().await?;
        committed.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Ok((median(trips), median(committed)))
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    // cog's own warnings and errors on stderr (`RUST_LOG` to see more), so a stalled
    // measurement says why.
    let env_filter = || tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // The steps are recorded by the measuring process only (a worker child never reports them).
    if steps::enabled() && args.first().map(String::as_str) == Some("--measure") {
        use tracing_subscriber::prelude::*;
        let handoff = tracing_subscriber::filter::Targets::new().with_target("cog::handoff", tracing::Level::TRACE);
        let _ = tracing_subscriber::registry()
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(env_filter()))
            .with(steps::Recorder.with_filter(handoff))
            .try_init();
    } else {
        let _ = tracing_subscriber::fmt().with_env_filter(env_filter()).with_writer(std::io::stderr).try_init();
    }
    let pg_admin = std::env::var("COG_BENCH_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test?sslmode=disable".to_owned());
    let my_admin = std::env::var("COG_BENCH_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_owned());
    let admin_of = |db: &str| if db == "mysql" { my_admin.clone() } else { pg_admin.clone() };
    match args.first().map(String::as_str) {
        Some("--worker") => return worker(&args[1]).await,
        // The schema alone, for `benches/floor/run.sh`.
        Some("--migrate") => return cog::migrate(&Database::connect(args[1].as_str()).await.unwrap()).await.unwrap(),
        Some("--measure") => return measure(&args[1], &args[2], args[3].parse().unwrap(), &admin_of(&args[2])).await,
        Some("--calibrate") => return println!("{}", calibrate(&admin_of(&args[1]), &args[1]).await),
        _ => {}
    }
    // G and H only take F apart: measured when named.
    let chosen: Vec<&str> = ["A", "B", "C", "D", "E", "F", "G", "H", "W"]
        .into_iter()
        .filter(|w| args.iter().any(|a| a == w) || (args.is_empty() && !["G", "H"].contains(w)))
        .collect();
    let pg = Database::connect(pg_admin.as_str()).await.is_ok();
    if !pg {
        eprintln!("notice: PostgreSQL at {pg_admin} is unreachable; skipping it");
    }
    let my = Database::connect(my_admin.as_str()).await.is_ok();
    if !my {
        eprintln!("notice: MySQL at {my_admin} is unreachable; skipping it");
    }
    let mut calibrations = Vec::new();
    for (up, db) in [(pg, "postgres"), (my, "mysql")] {
        if up {
            let line = calibrate(&admin_of(db), db).await;
            println!("{line}");
            calibrations.push(line);
        }
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
        "{:<9} {:<9} {:>5} {:>8} {:>9} {:>11} {:>11} {:>9} {:>11} {:>10} {:>10} {:>10}",
        "workload", "db", "procs", "tasks", "tasks/s", "handoff p50", "handoff p99", "peak MiB", "worker MiB", "first ms", "cog µs/t", "db µs/t"
    );
    let (wakeup_lines, lines): (Vec<String>, Vec<String>) = lines.into_iter().partition(|l| l.contains("workload=W "));
    for line in lines {
        let field = |k: &str| field_of(&line, k);
        println!(
            "{:<9} {:<9} {:>5} {:>8} {:>9} {:>11} {:>11} {:>9} {:>11} {:>10} {:>10} {:>10}",
            field("workload"),
            field("db"),
            field("procs"),
            field("tasks"),
            field("tasks_per_s"),
            field("handoff_p50_ms"),
            field("handoff_p99_ms"),
            field("peak_rss_mb"),
            field("worker_peak_rss_mb"),
            field("first_task_ms"),
            field("cpu_us_per_task"),
            field("db_cpu_us_per_task")
        );
    }
    if !calibrations.is_empty() {
        println!("\nthe machine while measuring (see `calibrate`):");
        println!("{:<9} {:>13} {:>10} {:>12}", "db", "roundtrip µs", "commit µs", "cpu loop ms");
        for line in calibrations {
            let field = |k: &str| field_of(&line, k);
            println!("{:<9} {:>13} {:>10} {:>12}", field("db"), field("roundtrip_us"), field("commit_us"), field("cpu_loop_ms"));
        }
    }
    if !wakeup_lines.is_empty() {
        println!("\ncross-process wake-up (launch in one process -> task start in an idle worker process):");
        println!("{:<9} {:>10} {:>10} {:>10}", "db", "p50 ms", "p99 ms", "max ms");
        for line in wakeup_lines {
            let field = |k: &str| field_of(&line, k);
            println!("{:<9} {:>10} {:>10} {:>10}", field("db"), field("wakeup_p50_ms"), field("wakeup_p99_ms"), field("wakeup_max_ms"));
        }
    }
}
