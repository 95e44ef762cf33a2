//! The one history query SeaORM's builder cannot write portably: task runs ended per minute
//! (the minute of a timestamp is a per-backend expression). Raw SQL lives here only, one
//! statement per backend, for the store layer to take over.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, TimeDelta, Timelike, Utc};
use sea_orm::{ConnectionTrait, DbBackend, Statement};

use super::types::MinuteCount;
use crate::error::Error;

/// Completed and failed task runs per minute in `[since, now]`, every minute listed.
pub(super) async fn throughput(db: &impl ConnectionTrait, since: DateTime<Utc>, now: DateTime<Utc>) -> Result<Vec<MinuteCount>, Error> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Sqlite => {
            "SELECT substr(completed_at, 1, 16) AS minute, status, COUNT(*) AS n FROM cog_task_run \
             WHERE completed_at >= ? AND status IN ('completed', 'failed') GROUP BY minute, status"
        }
        DbBackend::Postgres => {
            "SELECT to_char(date_trunc('minute', completed_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD HH24:MI') AS minute, status, COUNT(*) AS n \
             FROM cog_task_run WHERE completed_at >= $1 AND status IN ('completed', 'failed') GROUP BY 1, 2"
        }
        DbBackend::MySql => {
            "SELECT DATE_FORMAT(completed_at, '%Y-%m-%d %H:%i') AS minute, status, COUNT(*) AS n FROM cog_task_run \
             WHERE completed_at >= ? AND status IN ('completed', 'failed') GROUP BY minute, status"
        }
        other => return Err(Error::InvalidSetting(format!("cog supports SQLite, PostgreSQL and MySQL/MariaDB, not {other:?}"))),
    };
    let rows = db.query_all_raw(Statement::from_sql_and_values(backend, sql, [since.into()])).await?;
    let start = since.with_second(0).and_then(|t| t.with_nanosecond(0)).unwrap_or(since);
    let mut minutes: BTreeMap<DateTime<Utc>, MinuteCount> = BTreeMap::new();
    let mut m = start;
    while m <= now {
        minutes.insert(m, MinuteCount { minute: m, completed: 0, failed: 0 });
        m += TimeDelta::minutes(1);
    }
    for row in rows {
        let text: String = row.try_get("", "minute")?;
        let status: String = row.try_get("", "status")?;
        let n: i64 = row.try_get("", "n")?;
        let minute = NaiveDateTime::parse_from_str(&text.replace('T', " "), "%Y-%m-%d %H:%M")
            .map_err(|_| Error::Corrupt { table: "cog_task_run", column: "completed_at", value: text.clone() })?
            .and_utc();
        let slot = minutes.entry(minute).or_insert(MinuteCount { minute, completed: 0, failed: 0 });
        if status == "completed" {
            slot.completed += n;
        } else {
            slot.failed += n;
        }
    }
    Ok(minutes.into_values().collect())
}
