//! Task runs ended per minute, every minute listed (the per-backend statement is
//! `store::reports::ended_per_minute`).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, TimeDelta, Timelike, Utc};
use sea_orm::ConnectionTrait;

use super::types::MinuteCount;
use crate::entity::status::RunStatus;
use crate::error::Error;

/// Completed and failed task runs per minute in `[since, now]`, every minute listed.
pub(crate) async fn throughput(db: &impl ConnectionTrait, since: DateTime<Utc>, now: DateTime<Utc>) -> Result<Vec<MinuteCount>, Error> {
    let rows = crate::store::reports::ended_per_minute(db, since).await?;
    let start = since.with_second(0).and_then(|t| t.with_nanosecond(0)).unwrap_or(since);
    let mut minutes: BTreeMap<DateTime<Utc>, MinuteCount> = BTreeMap::new();
    let mut m = start;
    while m <= now {
        minutes.insert(m, MinuteCount { minute: m, completed: 0, failed: 0 });
        m += TimeDelta::minutes(1);
    }
    for row in rows {
        let (text, status, n) = (row.minute, row.status, row.n);
        let minute = NaiveDateTime::parse_from_str(&text.replace('T', " "), "%Y-%m-%d %H:%M")
            .map_err(|_| Error::Corrupt { table: "cog_task_run", column: "completed_at", value: text.clone() })?
            .and_utc();
        let slot = minutes.entry(minute).or_insert(MinuteCount { minute, completed: 0, failed: 0 });
        if status == RunStatus::Completed {
            slot.completed += n;
        } else {
            slot.failed += n;
        }
    }
    Ok(minutes.into_values().collect())
}
