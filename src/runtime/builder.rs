//! [`CogRuntimeBuilder`]: settings collected here, checked in `build()`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sea_orm::DatabaseConnection;

use super::{CogRuntime, Inner};
use crate::config::Config;
use crate::error::Error;
use crate::health::HealthBoard;
use crate::scheduler::{Clock, Scheduler, SystemClock};
use crate::signals::Signals;
use crate::store::Pools;
use crate::worker::Worker;

/// Configures a [`CogRuntime`]; errors are reported by [`build`](Self::build).
#[derive(Default)]
pub struct CogRuntimeBuilder {
    url: Option<String>,
    connection: Option<DatabaseConnection>,
    queues: Option<Vec<String>>,
    concurrency: Option<usize>,
    config: Option<Config>,
    worker_name: Option<String>,
    pool_size: Option<u32>,
    scheduler: Option<bool>,
    clock: Option<Arc<dyn Clock>>,
}

impl CogRuntimeBuilder {
    /// The database: `sqlite://cog.db?mode=rwc`, `sqlite::memory:`, or `postgres://user@host/db`.
    pub fn database_url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// Shares the host's connection pool instead of opening one.
    pub fn connection(mut self, db: DatabaseConnection) -> Self {
        self.connection = Some(db);
        self
    }

    /// The queues this process works on (default: `default` only).
    pub fn queues<I, S>(mut self, queues: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.queues = Some(queues.into_iter().map(Into::into).collect());
        self
    }

    /// How many task runs this process executes at once (default: the number of CPUs).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = Some(n);
        self
    }

    /// Runtime settings.
    pub fn config(mut self, config: Config) -> Self {
        self.config = Some(config);
        self
    }

    /// The name written to `cog_task_run.worker` (default: `host:pid:n`); must be unique per runtime.
    pub fn worker_name(mut self, name: impl Into<String>) -> Self {
        self.worker_name = Some(name.into());
        self
    }

    /// Connections opened by `database_url` (default: 1 for SQLite; 8 for PostgreSQL and MySQL,
    /// all opened at build, so no connection is opened, cold, under load — a process rarely
    /// has more than 8 statements worth running at once on a database's cores). On
    /// PostgreSQL these serve cog's transitions (outcomes, claims, launches, fills), their
    /// sessions started with the planner settings those use; up to 4 more (2 kept open) serve
    /// [`CogRuntime::connection`] and the runtime's other reads and writes with the server's
    /// own settings (the listener for the other processes' notifications among them): 12
    /// connections a process at most, so that eight processes stay under PostgreSQL's
    /// default `max_connections` of 100 (on MySQL, 8 a process).
    pub fn pool_size(mut self, n: u32) -> Self {
        self.pool_size = Some(n);
        self
    }

    /// Whether `start()` runs the scheduler in this process (default true). Any number of
    /// processes may run it: one at a time fires, the others stand by.
    pub fn scheduler(mut self, on: bool) -> Self {
        self.scheduler = Some(on);
        self
    }

    /// The clock schedules follow (default: the system clock); tests pass a `ManualClock`.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Connects, applies cog's migrations and checks the registry (two cogs with one name fail
    /// here, naming both modules). Which cogs this binary carries is recorded by `start()`.
    pub async fn build(self) -> Result<CogRuntime, Error> {
        crate::registry::check_unique()?;
        let config = self.config.unwrap_or_default();
        config.check().map_err(Error::InvalidSetting)?;
        let concurrency = self.concurrency.unwrap_or_else(|| std::thread::available_parallelism().map_or(4, |n| n.get()));
        if concurrency == 0 {
            return Err(Error::InvalidSetting("concurrency must be at least 1".into()));
        }
        let queues = self.queues.unwrap_or_else(|| vec!["default".to_owned()]);
        if queues.is_empty() {
            return Err(Error::InvalidSetting("queues: the list is empty; name at least one queue (the default is `default`)".into()));
        }
        if let Some(empty) = queues.iter().position(|q| q.trim().is_empty()) {
            return Err(Error::InvalidSetting(format!("queue #{} has an empty name", empty + 1)));
        }
        let Pools { db, work } = match (self.connection, self.url) {
            (Some(db), _) => Pools { work: db.clone(), db },
            (None, Some(url)) => crate::store::connect(&url, self.pool_size).await?,
            (None, None) => return Err(Error::MissingDatabase),
        };
        crate::migrate(&db).await?;
        crate::store::warm_up(&work, &queues).await;
        let worker_id = self.worker_name.unwrap_or_else(default_worker_name);
        let signals = Arc::new(Signals::default());
        let health = Arc::new(HealthBoard::default());
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let worker = Worker::new(
            Pools { db: db.clone(), work: work.clone() },
            config.clone(),
            queues,
            concurrency,
            worker_id.clone(),
            Arc::clone(&signals),
            Arc::clone(&health),
        );
        if let Err(e) = worker.carried.ask_server(&work).await {
            tracing::warn!(error = %e, "could not ask the server whether stage hand-offs may carry their transaction over the commit (its version, its session timeouts); they will not");
        }
        let scheduler = Scheduler::new(db.clone(), config.clone(), clock, Arc::clone(&signals), Arc::clone(&health), worker_id);
        Ok(CogRuntime {
            inner: Arc::new(Inner {
                db,
                work,
                config,
                signals,
                health,
                worker: Arc::new(worker),
                scheduler: Arc::new(scheduler),
                run_scheduler: self.scheduler.unwrap_or(true),
                started: Mutex::new(false),
            }),
        })
    }
}

impl std::fmt::Debug for CogRuntimeBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CogRuntimeBuilder")
            .field("url", &self.url)
            .field("queues", &self.queues)
            .field("concurrency", &self.concurrency)
            .field("config", &self.config)
            .field("scheduler", &self.scheduler)
            .finish_non_exhaustive()
    }
}

/// `host:pid:n:random`: unique per runtime, also across machines whose processes share a pid
/// (containers all run as pid 1), since a name shared by two workers would let one renew the
/// other's leases.
fn default_worker_name() -> String {
    use std::hash::{BuildHasher, Hasher};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let host = ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok().map(|h| h.trim().to_owned()).filter(|h| !h.is_empty()))
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "host".to_owned());
    // RandomState is seeded from the OS's random source.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    format!("{host}:{}:{}:{:08x}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed), hasher.finish() as u32)
}
