//! Opening a database with settings fit for cog.

use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};

/// Connections a PostgreSQL or MySQL pool opens at once and keeps open: about what a started
/// runtime uses together (claims, outcome writers, leases, presence, the listener, a launch),
/// so the first task after a launch never waits for a connection to be opened. Also the
/// default pool size: measured with 50 runs launched at once on 4 processes, pools of 16
/// opened 37 connections mid-run, each a cold PostgreSQL backend to start and plan for
/// (throughput 4,200 tasks/s; with pools of 8, 4,800–5,000).
pub(super) const WARM_CONNECTIONS: u32 = 8;

/// A pooled PostgreSQL or MySQL connection idle for at least this long is pinged before it is
/// handed out; a busier one is not. The pool's default pings on every checkout: a round trip
/// more for each of cog's transactions (a stage hand-off is six on PostgreSQL), for
/// connections that were in use a moment before. Under load a connection is back in use
/// within milliseconds. After a server restart (which takes longer than this) every
/// connection that survived in the pool was idle for longer than this, or failed when used
/// during it and was dropped then: each is pinged, found dead and replaced, as before. A
/// connection that dies within this of its last use fails its transaction with a connection
/// error, which cog's writers retry and `RunHandle::wait` reads again after (see
/// `store::errors::is_transient`).
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// Opens `url` with settings fit for cog: on SQLite one long-lived connection in WAL mode
/// (an in-memory database lives exactly as long as its connection); on PostgreSQL and MySQL
/// a pool, whose MySQL sessions read and write timestamps in UTC, with its first connections
/// opened here rather than when first needed.
pub(crate) async fn connect(url: &str, pool_size: Option<u32>) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(url.to_owned());
    options.sqlx_logging(false);
    if url.starts_with("sqlite:") {
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        // SQLite's one connection lives in this process: nothing to ping.
        options.test_before_acquire(false);
        options.max_connections(pool_size.unwrap_or(1)).min_connections(1).idle_timeout(None::<Duration>).max_lifetime(None::<Duration>).map_sqlx_sqlite_opts(
            move |o| {
                let o = o.busy_timeout(Duration::from_secs(30)).foreign_keys(true).synchronous(SqliteSynchronous::Normal);
                if in_memory { o } else { o.journal_mode(SqliteJournalMode::Wal) }
            },
        );
    } else {
        let max = pool_size.unwrap_or(WARM_CONNECTIONS);
        options
            .max_connections(max)
            .min_connections(max.min(WARM_CONNECTIONS))
            .acquire_timeout(Duration::from_secs(30))
            .test_before_acquire_if_idle_for(PING_IF_IDLE_FOR)
            .map_sqlx_mysql_opts(|o| o.timezone(Some("+00:00".to_owned())));
        let db = Database::connect(options).await?;
        warm(&db, max.min(WARM_CONNECTIONS)).await?;
        return Ok(db);
    }
    Database::connect(options).await
}

/// Opens `n` connections of `db`'s pool now, together (a pool otherwise opens them one by one
/// as they are first needed, each costing a few milliseconds then), and gives them back idle.
async fn warm(db: &DatabaseConnection, n: u32) -> Result<(), DbErr> {
    let n = n as usize;
    let opened = match super::Backend::of(db)? {
        super::Backend::Postgres => {
            let pool = db.get_postgres_connection_pool();
            futures::future::try_join_all((0..n).map(|_| pool.acquire())).await.map(drop)
        }
        super::Backend::MySql => {
            let pool = db.get_mysql_connection_pool();
            futures::future::try_join_all((0..n).map(|_| pool.acquire())).await.map(drop)
        }
        super::Backend::Sqlite => Ok(()),
    };
    opened.map_err(|e| DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e.into())))
}
