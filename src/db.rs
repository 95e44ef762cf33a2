//! Database plumbing: connecting, the clock, and raw SQL written once for both backends.
//!
//! SQL in cog uses PostgreSQL's `$1` placeholders; for SQLite they become `?1`.

use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, QueryResult, Statement, Value};

/// The time cog writes: UTC, truncated to microseconds so both backends store the same value
/// and SQLite's text timestamps sort in time order.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Opens `url` with settings fit for cog: on SQLite one long-lived connection in WAL mode
/// (an in-memory database lives exactly as long as its connection), on PostgreSQL a pool.
pub(crate) async fn connect(url: &str, pool_size: Option<u32>) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(url.to_owned());
    options.sqlx_logging(false);
    if url.starts_with("sqlite:") {
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        options.max_connections(pool_size.unwrap_or(1)).min_connections(1).idle_timeout(None::<Duration>).max_lifetime(None::<Duration>).map_sqlx_sqlite_opts(
            move |o| {
                let o = o.busy_timeout(Duration::from_secs(30)).foreign_keys(true).synchronous(SqliteSynchronous::Normal);
                if in_memory { o } else { o.journal_mode(SqliteJournalMode::Wal) }
            },
        );
    } else {
        options.max_connections(pool_size.unwrap_or(16)).min_connections(1).acquire_timeout(Duration::from_secs(30));
    }
    Database::connect(options).await
}

/// Rewrites `$N` placeholders for the backend.
fn placeholders(backend: DbBackend, sql: &str) -> String {
    match backend {
        DbBackend::Sqlite => sql.replace('$', "?"),
        _ => sql.to_owned(),
    }
}

/// A statement for `conn`'s backend.
pub(crate) fn statement(conn: &impl ConnectionTrait, sql: &str, values: impl IntoIterator<Item = Value>) -> Statement {
    let backend = conn.get_database_backend();
    Statement::from_sql_and_values(backend, placeholders(backend, sql), values)
}

/// Runs a statement; returns the number of rows it changed.
pub(crate) async fn execute(conn: &impl ConnectionTrait, sql: &str, values: impl IntoIterator<Item = Value>) -> Result<u64, DbErr> {
    Ok(conn.execute_raw(statement(conn, sql, values)).await?.rows_affected())
}

/// Runs a query and returns every row.
pub(crate) async fn query_all(conn: &impl ConnectionTrait, sql: &str, values: impl IntoIterator<Item = Value>) -> Result<Vec<QueryResult>, DbErr> {
    conn.query_all_raw(statement(conn, sql, values)).await
}

/// Runs a query and returns its first row, if any.
pub(crate) async fn query_one(conn: &impl ConnectionTrait, sql: &str, values: impl IntoIterator<Item = Value>) -> Result<Option<QueryResult>, DbErr> {
    conn.query_one_raw(statement(conn, sql, values)).await
}

/// Locks pipeline run `id` for the rest of the transaction and returns its status text.
///
/// Every state transition of a run starts here, so transitions of one run are serialized:
/// PostgreSQL takes the row lock; SQLite takes the database write lock with a no-op update
/// (a transaction whose first statement writes never fails to upgrade its lock later).
pub(crate) async fn lock_run(conn: &impl ConnectionTrait, id: i64) -> Result<Option<String>, DbErr> {
    let sql = match conn.get_database_backend() {
        DbBackend::Postgres => "SELECT status FROM cog_pipeline_run WHERE id = $1 FOR UPDATE",
        _ => "UPDATE cog_pipeline_run SET id = id WHERE id = $1 RETURNING status",
    };
    match query_one(conn, sql, [id.into()]).await? {
        Some(row) => Ok(Some(row.try_get_by_index::<String>(0)?)),
        None => Ok(None),
    }
}

/// Makes an IN-list of placeholders `$first, $first+1, ...` for `n` values.
pub(crate) fn in_list(first: usize, n: usize) -> String {
    (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// The PostgreSQL channel cog's processes tell each other about changes on.
pub(crate) const EVENTS_CHANNEL: &str = "cog_events";

/// Tells every listening process (PostgreSQL only; a no-op on SQLite) about `event`:
/// `work` (task runs were queued), `cancel:<run id>` or `ended:<run id>`. Inside a
/// transaction the notification is delivered at commit, and not at all on rollback.
pub(crate) async fn notify(conn: &impl ConnectionTrait, event: &str) -> Result<(), DbErr> {
    if conn.get_database_backend() == DbBackend::Postgres {
        query_one(conn, "SELECT pg_notify($1, $2)", [EVENTS_CHANNEL.into(), event.into()]).await?;
    }
    Ok(())
}

/// Serializes the rare transactions that touch many definition rows (migrations, registry
/// sync, `define`, weight updates) across processes: on PostgreSQL a transaction-scoped
/// advisory lock, so their row locks can never be taken in conflicting orders (deadlock);
/// on SQLite nothing (a transaction there already holds the database write lock).
pub(crate) async fn lock_definitions(conn: &impl ConnectionTrait) -> Result<(), DbErr> {
    /// An arbitrary key, "cog" in ASCII.
    const KEY: i64 = 0x636f67;
    if conn.get_database_backend() == DbBackend::Postgres {
        query_one(conn, "SELECT pg_advisory_xact_lock($1)", [KEY.into()]).await?;
    }
    Ok(())
}
