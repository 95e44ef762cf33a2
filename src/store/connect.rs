//! Opening a database with settings fit for cog.

use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};

/// Opens `url` with settings fit for cog: on SQLite one long-lived connection in WAL mode
/// (an in-memory database lives exactly as long as its connection); on PostgreSQL and MySQL
/// a pool, whose MySQL sessions read and write timestamps in UTC.
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
        options
            .max_connections(pool_size.unwrap_or(16))
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .map_sqlx_mysql_opts(|o| o.timezone(Some("+00:00".to_owned())));
    }
    Database::connect(options).await
}
