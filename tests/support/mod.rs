//! Shared fixtures for integration tests: one fresh database per test, on SQLite and (when
//! `COG_TEST_POSTGRES_URL` / `COG_TEST_MYSQL_URL` is set) on PostgreSQL and MySQL/MariaDB, and
//! small query helpers.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use cog::{CogRuntime, CogRuntimeBuilder, Config};
use sea_orm::{ConnectionTrait, Database, QueryResult, Statement};
use tokio::sync::Notify;

/// Generates, for each listed `async fn name(db: TestDb)`, a test `sqlite::name`, a test
/// `postgres::name` and a test `mysql::name` (the server ones skipped with a notice when
/// `COG_TEST_POSTGRES_URL` / `COG_TEST_MYSQL_URL` is not set).
#[macro_export]
macro_rules! on_all_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name($crate::support::TestDb::sqlite()).await
                }
            )+
        }
        $crate::on_server_backends!($($name),+);
    };
}

/// SQLite and PostgreSQL only: `sqlite::name` and `postgres::name` (kept for suites not yet
/// run on MySQL; engine tests use [`on_all_backends!`]).
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name($crate::support::TestDb::sqlite()).await
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    if let Some(db) = $crate::support::TestDb::postgres().await {
                        super::$name(db).await
                    }
                }
            )+
        }
    };
}

/// Like [`on_all_backends!`] without SQLite: for tests of several processes on one server.
#[macro_export]
macro_rules! on_server_backends {
    ($($name:ident),+ $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    if let Some(db) = $crate::support::TestDb::postgres().await {
                        super::$name(db).await
                    }
                }
            )+
        }
        mod mysql {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    if let Some(db) = $crate::support::TestDb::mysql().await {
                        super::$name(db).await
                    }
                }
            )+
        }
    };
}

/// A database of its own for one test.
#[derive(Debug, Clone)]
pub struct TestDb {
    /// Connection URL.
    pub url: String,
    /// `sqlite`, `postgres` or `mysql`.
    pub backend: &'static str,
}

fn unique() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{}_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed), nanos)
}

/// Drops, once per test process and server, the test databases (`cog_t_<pid>_...`) of test
/// processes that have ended: each test makes its own database and nothing drops it when the
/// test ends, so without this every run of the suite left a few hundred behind.
async fn drop_abandoned_databases(admin: &sea_orm::DatabaseConnection, backend: &'static str) {
    static DONE: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    {
        let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
        // Whether a process has ended is read from /proc: elsewhere nothing is dropped.
        if done.contains(&backend) || !std::path::Path::new("/proc/self").exists() {
            return;
        }
        done.push(backend);
    }
    let list = if backend == "mysql" {
        "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'cog\\_t\\_%'"
    } else {
        "SELECT datname FROM pg_database WHERE datname LIKE 'cog\\_t\\_%'"
    };
    let rows = admin.query_all_raw(sea_orm::Statement::from_string(admin.get_database_backend(), list)).await.unwrap_or_default();
    for name in rows.iter().filter_map(|r| r.try_get_by_index::<String>(0).ok()) {
        let pid = name.trim_start_matches("cog_t_").split('_').next().and_then(|p| p.parse::<u32>().ok());
        let ended = pid.is_some_and(|pid| pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists());
        if ended {
            let drop = if backend == "mysql" { format!("DROP DATABASE IF EXISTS {name}") } else { format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)") };
            if let Err(e) = admin.execute_unprepared(&drop).await {
                eprintln!("notice: could not drop abandoned test database {name}: {e}");
            }
        }
    }
}

impl TestDb {
    /// A new SQLite database file in the temp directory.
    pub fn sqlite() -> Self {
        let path = std::env::temp_dir().join(format!("cog_test_{}.db", unique()));
        Self { url: format!("sqlite://{}?mode=rwc", path.display()), backend: "sqlite" }
    }

    /// A new PostgreSQL database, or `None` (with a printed notice) when
    /// `COG_TEST_POSTGRES_URL` is unset. With `COG_REQUIRE_POSTGRES=1` a missing or
    /// unreachable server fails the test instead.
    pub async fn postgres() -> Option<Self> {
        Self::server("postgres", "COG_TEST_POSTGRES_URL", "COG_REQUIRE_POSTGRES").await
    }

    /// A new MySQL/MariaDB database, or `None` (with a printed notice) when
    /// `COG_TEST_MYSQL_URL` is unset. With `COG_REQUIRE_MYSQL=1` a missing or unreachable
    /// server fails the test instead.
    pub async fn mysql() -> Option<Self> {
        Self::server("mysql", "COG_TEST_MYSQL_URL", "COG_REQUIRE_MYSQL").await
    }

    /// A new database on the server named by `url_var`, created through that URL.
    async fn server(backend: &'static str, url_var: &str, require_var: &str) -> Option<Self> {
        let required = std::env::var(require_var).is_ok_and(|v| v == "1");
        let Ok(admin_url) = std::env::var(url_var) else {
            assert!(!required, "{require_var}=1 but {url_var} is not set");
            eprintln!("notice: {url_var} is not set; skipping the {backend} variant of this test");
            return None;
        };
        let admin = match Database::connect(admin_url.as_str()).await {
            Ok(admin) => admin,
            Err(e) if !required => {
                eprintln!("notice: {backend} at {url_var} is unreachable ({e}); skipping");
                return None;
            }
            Err(e) => panic!("{require_var}=1 but {backend} is unreachable: {e}"),
        };
        drop_abandoned_databases(&admin, backend).await;
        let name = format!("cog_t_{}", unique());
        admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("create test database");
        admin.close().await.ok();
        let base = match admin_url.rfind('/') {
            Some(i) if i > admin_url.find("://").map_or(0, |j| j + 2) => &admin_url[..i],
            _ => admin_url.as_str(),
        };
        Some(Self { url: format!("{base}/{name}"), backend })
    }

    /// A runtime on this database with [`test_config`], working on `default` with 8 slots.
    pub async fn runtime(&self) -> CogRuntime {
        self.runtime_with(|b| b).await
    }

    /// A runtime on this database, configured further by `f`.
    pub async fn runtime_with(&self, f: impl FnOnce(CogRuntimeBuilder) -> CogRuntimeBuilder) -> CogRuntime {
        let builder = CogRuntime::builder().database_url(&self.url).concurrency(8).config(test_config());
        f(builder).build().await.expect("build runtime")
    }
}

/// Settings that keep tests quick: fast polling and retries.
pub fn test_config() -> Config {
    Config::default()
        .poll_interval(Duration::from_millis(20))
        .retry_backoff(Duration::from_millis(10), Duration::from_millis(100))
        .shutdown_timeout(Duration::from_secs(5))
}

/// Runs `sql` (no placeholders) and returns the rows.
pub async fn rows(rt: &CogRuntime, sql: &str) -> Vec<QueryResult> {
    let db = rt.connection();
    db.query_all_raw(Statement::from_string(db.get_database_backend(), sql.to_owned())).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The column `cog_pipeline_run.trigger` quoted for `rt`'s backend (a reserved word).
pub fn trigger_column(rt: &CogRuntime) -> &'static str {
    match rt.connection().get_database_backend() {
        sea_orm::DbBackend::MySql => "`trigger`",
        _ => "\"trigger\"",
    }
}

/// `expr` cast to a 64-bit integer, in `rt`'s dialect.
pub fn as_int(rt: &CogRuntime, expr: &str) -> String {
    match rt.connection().get_database_backend() {
        sea_orm::DbBackend::MySql => format!("CAST({expr} AS SIGNED)"),
        _ => format!("CAST({expr} AS BIGINT)"),
    }
}

/// `expr` cast to text, in `rt`'s dialect.
pub fn as_text(rt: &CogRuntime, expr: &str) -> String {
    match rt.connection().get_database_backend() {
        sea_orm::DbBackend::MySql => format!("CAST({expr} AS CHAR)"),
        _ => format!("CAST({expr} AS TEXT)"),
    }
}

/// Runs `sql` returning one integer (a count, an id).
pub async fn scalar(rt: &CogRuntime, sql: &str) -> i64 {
    let rows = rows(rt, sql).await;
    let row = rows.first().unwrap_or_else(|| panic!("{sql}: no row"));
    row.try_get_by_index::<i64>(0).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Counts the task runs without their stage run or their task.
const ORPHAN_TASK_RUNS: &str = "SELECT COUNT(*) FROM cog_task_run t LEFT JOIN cog_stage_run s ON s.id = t.stage_run_id \
     LEFT JOIN cog_task k ON k.id = t.task_id WHERE s.id IS NULL OR k.id IS NULL";

/// Counts the stage runs without their pipeline run or their stage.
const ORPHAN_STAGE_RUNS: &str = "SELECT COUNT(*) FROM cog_stage_run sr LEFT JOIN cog_pipeline_run r ON r.id = sr.pipeline_run_id \
     LEFT JOIN cog_stage s ON s.id = sr.stage_id WHERE r.id IS NULL OR s.id IS NULL";

/// Task runs without their stage run or their task.
pub async fn orphan_task_runs(rt: &CogRuntime) -> i64 {
    scalar(rt, ORPHAN_TASK_RUNS).await
}

/// Stage runs without their pipeline run or their stage.
pub async fn orphan_stage_runs(rt: &CogRuntime) -> i64 {
    scalar(rt, ORPHAN_STAGE_RUNS).await
}

/// Asserts that every task run has its stage run and its task, and every stage run its
/// pipeline run and its stage. On PostgreSQL and MariaDB no foreign key checks this
/// (migrations 000010 and 000012 dropped them for speed): cog's own statements keep it, and
/// the tests that hammer them check it here.
pub async fn assert_no_orphans(rt: &CogRuntime) {
    let orphans = orphan_task_runs(rt).await;
    assert_eq!(orphans, 0, "{orphans} task run(s) without their stage run or task");
    let orphans = orphan_stage_runs(rt).await;
    assert_eq!(orphans, 0, "{orphans} stage run(s) without their pipeline run or stage");
}

/// `(task name, status)` of every task run of pipeline run `run_id`, ordered by task name.
pub async fn task_statuses(rt: &CogRuntime, run_id: i64) -> Vec<(String, String)> {
    let sql = format!(
        "SELECT t.name, tr.status FROM cog_task_run tr JOIN cog_task t ON t.id = tr.task_id \
         JOIN cog_stage_run sr ON sr.id = tr.stage_run_id WHERE sr.pipeline_run_id = {run_id} ORDER BY t.name"
    );
    rows(rt, &sql).await.iter().map(|r| (r.try_get_by_index(0).unwrap(), r.try_get_by_index(1).unwrap())).collect()
}

/// `(stage name, status)` of every stage run of pipeline run `run_id`, ordered by stage name.
pub async fn stage_statuses(rt: &CogRuntime, run_id: i64) -> Vec<(String, String)> {
    let sql =
        format!("SELECT s.name, sr.status FROM cog_stage_run sr JOIN cog_stage s ON s.id = sr.stage_id WHERE sr.pipeline_run_id = {run_id} ORDER BY s.name");
    rows(rt, &sql).await.iter().map(|r| (r.try_get_by_index(0).unwrap(), r.try_get_by_index(1).unwrap())).collect()
}

/// Waits for `run` to end, failing the test after 60 s.
pub async fn wait(run: &cog::RunHandle) -> cog::RunStatus {
    wait_within(run, Duration::from_secs(60)).await
}

/// Waits for `run` to end, failing the test after `limit` (a guard against a hang, not a
/// measure of speed: for runs of thousands of tasks, which a loaded 2-core machine runs
/// several times slower beside the other tests than alone).
pub async fn wait_within(run: &cog::RunHandle, limit: Duration) -> cog::RunStatus {
    tokio::time::timeout(limit, run.wait()).await.unwrap_or_else(|_| panic!("run did not end within {limit:?}")).expect("wait")
}

/// Polls `check` every 10 ms until it is true, failing the test after 30 s.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Per-test state shared between a test and its cogs, keyed by a string argument (see [`probe`]):
/// a gate that holds cogs until the test opens it, and counters and logs the cogs write.
#[derive(Default)]
pub struct Probe {
    /// Cogs that reached the probe (each cog counts itself, or [`Probe::arrive_and_pass`] does).
    pub arrived: AtomicUsize,
    /// Calls of a counting cog.
    pub calls: AtomicUsize,
    /// Set by a cog that saw its cancellation.
    pub saw_cancel: AtomicBool,
    /// Attempt numbers a cog saw, in call order.
    pub attempts: Mutex<Vec<i32>>,
    /// Labels cogs recorded, in call order.
    pub log: Mutex<Vec<String>>,
    open: AtomicBool,
    opened: Notify,
}

impl Probe {
    /// Waits until the test opens the gate (at once when it is open already).
    pub async fn pass(&self) {
        loop {
            let opened = self.opened.notified();
            if self.open.load(Ordering::SeqCst) {
                return;
            }
            opened.await;
        }
    }

    /// Counts an arrival, then waits until the test opens the gate.
    pub async fn arrive_and_pass(&self) {
        self.arrived.fetch_add(1, Ordering::SeqCst);
        self.pass().await;
    }

    /// Opens the gate: lets every waiting and later cog pass.
    pub fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
        self.opened.notify_waiters();
    }
}

/// The [`Probe`] for `key`, created on first use. Tests pass a key unique to the test (and
/// backend), so probes of concurrent tests do not meet.
pub fn probe(key: &str) -> Arc<Probe> {
    static PROBES: LazyLock<Mutex<HashMap<String, Arc<Probe>>>> = LazyLock::new(Default::default);
    Arc::clone(PROBES.lock().unwrap().entry(key.to_owned()).or_default())
}
