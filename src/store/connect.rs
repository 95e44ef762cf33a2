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
/// more for each of cog's transactions (a stage hand-off is four on PostgreSQL), for
/// connections that were in use a moment before. Under load a connection is back in use
/// within milliseconds. After a server restart (which takes longer than this) every
/// connection that survived in the pool was idle for longer than this, or failed when used
/// during it and was dropped then: each is pinged, found dead and replaced, as before. A
/// connection that dies within this of its last use fails its transaction with a connection
/// error, which cog's writers retry and `RunHandle::wait` reads again after (see
/// `store::errors::is_transient`).
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// Most connections of the pool that a runtime opens on PostgreSQL beside [`Pools::work`], for
/// the host ([`CogRuntime::connection`](crate::CogRuntime::connection)) and for everything
/// of its own but its transitions (definitions, the worker's presence, leases and listener,
/// schedules, reports, cancels); [`HOST_CONNECTIONS_OPEN`] of them kept open.
const HOST_CONNECTIONS: u32 = 4;

/// Connections of that pool opened at build and kept open.
const HOST_CONNECTIONS_OPEN: u32 = 2;

/// The pools a runtime opened from a URL.
pub(crate) struct Pools {
    /// What the host is given, and what cog reads and writes outside its transitions: the
    /// server's own session settings (ORM queries of the definitions, say, planned generic and
    /// without sequential scans, took 100–140 ms instead of under 1 on tiny tables).
    pub(crate) db: DatabaseConnection,
    /// The transitions' pool (the worker's outcomes, claims and fills, launches): on
    /// PostgreSQL its sessions start with the claim's planner settings (`claims::PLANNER`), so
    /// that none of its transactions spends a round trip setting them
    /// (`claims::Planner::of`); the same pool as `db` elsewhere, and when the host gave its own.
    pub(crate) work: DatabaseConnection,
}

/// Opens `url` with settings fit for cog: on SQLite one long-lived connection in WAL mode
/// (an in-memory database lives exactly as long as its connection), used for everything; on
/// PostgreSQL and MySQL a pool for the transitions ([`Pools::work`], `pool_size` connections,
/// default [`WARM_CONNECTIONS`], opened here rather than when first needed), whose MySQL
/// sessions read and write timestamps in UTC; and on PostgreSQL a second, smaller pool with
/// the server's own session settings for everything else ([`Pools::db`], at most
/// [`HOST_CONNECTIONS`]; on MySQL the one pool is both).
pub(crate) async fn connect(url: &str, pool_size: Option<u32>) -> Result<Pools, DbErr> {
    if url.starts_with("sqlite:") {
        let mut options = ConnectOptions::new(url.to_owned());
        options.sqlx_logging(false);
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        // SQLite's one connection lives in this process: nothing to ping.
        options.test_before_acquire(false);
        options.max_connections(pool_size.unwrap_or(1)).min_connections(1).idle_timeout(None::<Duration>).max_lifetime(None::<Duration>).map_sqlx_sqlite_opts(
            move |o| {
                let o = o.busy_timeout(Duration::from_secs(30)).foreign_keys(true).synchronous(SqliteSynchronous::Normal);
                if in_memory { o } else { o.journal_mode(SqliteJournalMode::Wal) }
            },
        );
        let db = Database::connect(options).await?;
        return Ok(Pools { work: db.clone(), db });
    }
    let max = pool_size.unwrap_or(WARM_CONNECTIONS);
    let postgres = !url.starts_with("mysql:") && !url.starts_with("mariadb:");
    let mut options = server_options(url);
    options.max_connections(max).min_connections(max.min(WARM_CONNECTIONS));
    if postgres {
        options.map_sqlx_postgres_opts(|o| o.options(super::claims::PLANNER));
    }
    let work = Database::connect(options).await?;
    warm(&work, max.min(WARM_CONNECTIONS)).await?;
    if !postgres {
        return Ok(Pools { db: work.clone(), work });
    }
    let mut options = server_options(url);
    options.max_connections(HOST_CONNECTIONS).min_connections(HOST_CONNECTIONS_OPEN);
    let db = Database::connect(options).await?;
    Ok(Pools { db, work })
}

/// A PostgreSQL or MySQL pool's options for `url`: no statement logging, a connection pinged
/// at checkout only after [`PING_IF_IDLE_FOR`] idle, MySQL sessions in UTC.
fn server_options(url: &str) -> ConnectOptions {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .sqlx_logging(false)
        .acquire_timeout(Duration::from_secs(30))
        .test_before_acquire_if_idle_for(PING_IF_IDLE_FOR)
        .map_sqlx_mysql_opts(|o| o.timezone(Some("+00:00".to_owned())));
    options
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

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, DatabaseConnection, Statement, TransactionTrait};

    use super::*;
    use crate::store::claims::{self, Planner};
    use crate::store::test_database;

    /// The value of setting `name` where `conn` runs.
    async fn setting(conn: &impl ConnectionTrait, name: &str) -> String {
        let row =
            conn.query_one_raw(Statement::from_string(conn.get_database_backend(), format!("SELECT current_setting('{name}') AS v"))).await.unwrap().unwrap();
        row.try_get::<String>("", "v").unwrap()
    }

    /// Each of the claim's planner settings where `conn` runs, in `claims::PLANNER`'s order.
    async fn planner(conn: &impl ConnectionTrait) -> Vec<String> {
        let mut values = Vec::new();
        for (name, _) in claims::PLANNER {
            values.push(setting(conn, name).await);
        }
        values
    }

    const SET: [&str; 3] = ["off", "off", "force_generic_plan"];
    const SERVERS: [&str; 3] = ["on", "on", "auto"];

    #[tokio::test]
    async fn only_the_transitions_pool_of_a_postgres_runtime_starts_its_sessions_with_the_planner_settings() {
        let Some((_, url)) = test_database::postgres("pools", "pools test").await else { return };
        let Pools { db, work } = connect(&url, Some(2)).await.unwrap();
        assert_eq!(planner(&work).await, SET, "every session of the transitions' pool");
        assert_eq!(Planner::of(&work), Planner::AlreadySet);
        // What the host is given keeps the server's settings, and its transactions take the
        // settings for themselves, for as long as they last.
        assert_eq!(planner(&db).await, SERVERS);
        assert_eq!(Planner::of(&db), Planner::Set);
        let txn = db.begin().await.unwrap();
        Planner::of(&db).take(&txn).await.unwrap();
        assert_eq!(planner(&txn).await, SET);
        txn.commit().await.unwrap();
        assert_eq!(planner(&db).await, SERVERS, "SET LOCAL: gone with the transaction");
        // Custom plans (weight learning, a fill chunk, a big outcome write) in a transaction of
        // the transitions' pool: planned for their values, still through indexes only, and the
        // generic plans back once the transaction ends.
        let txn = work.begin().await.unwrap();
        claims::custom_plans(&txn).await.unwrap();
        assert_eq!(planner(&txn).await, ["off", "off", "auto"]);
        claims::set_planner(&txn).await.unwrap();
        assert_eq!(planner(&txn).await, SET);
        // A big outcome write's plan: the server's defaults, whatever the session has.
        claims::server_planner(&txn).await.unwrap();
        assert_eq!(planner(&txn).await, SERVERS);
        txn.rollback().await.unwrap();
        let txn = work.begin().await.unwrap();
        claims::custom_plans(&txn).await.unwrap();
        txn.commit().await.unwrap();
        assert_eq!(planner(&work).await, SET);
        drop((db, work));
        test_database::drop(&url).await;
    }

    #[tokio::test]
    async fn a_host_pool_opened_with_the_planner_settings_is_taken_as_having_them() {
        let Some((_, url)) = test_database::postgres("host_pool", "host pool test").await else { return };
        let mut options = ConnectOptions::new(url.clone());
        options.max_connections(1).map_sqlx_postgres_opts(|o| o.options(claims::PLANNER));
        let host: DatabaseConnection = Database::connect(options).await.unwrap();
        assert_eq!(Planner::of(&host), Planner::AlreadySet);
        let mut options = ConnectOptions::new(url.clone());
        options.max_connections(1).map_sqlx_postgres_opts(|o| o.options([("enable_seqscan", "off")]));
        let partial: DatabaseConnection = Database::connect(options).await.unwrap();
        assert_eq!(Planner::of(&partial), Planner::Set, "one setting of three is not the claim's settings");
        drop((host, partial));
        test_database::drop(&url).await;
    }

    #[tokio::test]
    async fn sqlite_has_one_connection_for_everything() {
        let Pools { db, work } = connect("sqlite::memory:", None).await.unwrap();
        db.execute_unprepared("CREATE TABLE t (x INTEGER)").await.unwrap();
        work.execute_unprepared("INSERT INTO t VALUES (1)").await.unwrap();
        let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), "SELECT COUNT(*) AS n FROM t")).await.unwrap().unwrap();
        assert_eq!(row.try_get::<i64>("", "n").unwrap(), 1, "the same in-memory database: one connection");
        assert_eq!(Planner::of(&work), Planner::Set);
    }
}
