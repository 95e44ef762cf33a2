//! Schedules: the pipelines to tick, their last tick and counters, and the scheduler's leader
//! lease in `cog_lock`.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, FromQueryResult};

use super::{Backend, Sql};

/// A scheduled pipeline.
#[derive(Debug, Clone, FromQueryResult)]
pub(crate) struct Scheduled {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) schedule: String,
    pub(crate) timezone: String,
    pub(crate) last_tick: Option<DateTime<Utc>>,
}

/// The enabled pipelines with a schedule, by id.
pub(crate) async fn scheduled(conn: &impl ConnectionTrait) -> Result<Vec<Scheduled>, DbErr> {
    Sql::new(Backend::of(conn)?, "SELECT id, name, schedule, timezone, last_tick FROM cog_pipeline WHERE enabled = ")
        .bind(true)
        .push(" AND schedule IS NOT NULL ORDER BY id")
        .all(conn)
        .await
}

/// Gives pipeline `id`, scheduled without a baseline, the baseline `now`.
pub(crate) async fn set_baseline(conn: &impl ConnectionTrait, id: i64, now: DateTime<Utc>) -> Result<u64, DbErr> {
    Sql::new(Backend::of(conn)?, "UPDATE cog_pipeline SET last_tick = ")
        .bind(now)
        .push(" WHERE id = ")
        .bind(id)
        .push(" AND last_tick IS NULL")
        .execute(conn)
        .await
}

/// Moves `last_tick` of pipeline `id` forward to `tick` (never back) and adds to its tick counters.
pub(crate) async fn advance_tick(conn: &impl ConnectionTrait, id: i64, tick: DateTime<Utc>, refused: i64, skipped: i64) -> Result<u64, DbErr> {
    Sql::new(Backend::of(conn)?, "UPDATE cog_pipeline SET last_tick = CASE WHEN last_tick IS NULL OR last_tick < ")
        .bind(tick)
        .push(" THEN ")
        .bind(tick)
        .push(" ELSE last_tick END, refused_ticks = refused_ticks + ")
        .bind(refused)
        .push(", skipped_ticks = skipped_ticks + ")
        .bind(skipped)
        .push(" WHERE id = ")
        .bind(id)
        .execute(conn)
        .await
}

/// Sets (or removes) the schedule of pipeline `name`: a new schedule counts ticks from
/// `base`, an unchanged one keeps its last tick. Returns whether the pipeline exists.
pub(crate) async fn set_schedule(
    conn: &impl ConnectionTrait,
    name: &str,
    schedule: Option<&str>,
    base: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let b = Backend::of(conn)?;
    let same = match b {
        Backend::Sqlite | Backend::Postgres => "schedule IS NOT DISTINCT FROM ",
        Backend::MySql => "schedule <=> ",
    };
    // `last_tick` first: MySQL evaluates assignments left to right, on the values so far.
    let n = Sql::new(b, "UPDATE cog_pipeline SET last_tick = CASE WHEN ")
        .push(same)
        .bind(schedule.map(str::to_owned))
        .push(" THEN last_tick ELSE ")
        .bind(schedule.map(|_| base))
        .push(" END, schedule = ")
        .bind(schedule.map(str::to_owned))
        .push(", updated_at = ")
        .bind(now)
        .push(" WHERE name = ")
        .bind(name)
        .execute(conn)
        .await?;
    Ok(n > 0)
}

/// The lock's name in `cog_lock`.
const SCHEDULER: &str = "scheduler";

/// Takes or renews the scheduler lease for `holder` for `lease` (another holder's lease only
/// once it has expired), by the database's clock; true when `holder` is the leader.
pub(crate) async fn acquire_leadership(db: &DatabaseConnection, holder: &str, lease: std::time::Duration) -> Result<bool, DbErr> {
    #[derive(FromQueryResult)]
    struct Holder {
        holder: String,
    }
    let b = Backend::of(db)?;
    let insert =
        Sql::new(b, "INSERT INTO cog_lock (name, holder, lease_until) VALUES (").bind(SCHEDULER).push(", ").bind(holder).push(", ").now_plus(lease).push(")");
    match b {
        Backend::Sqlite | Backend::Postgres => {
            let row = insert
                .push(" ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, lease_until = excluded.lease_until WHERE cog_lock.holder = excluded.holder OR cog_lock.lease_until < ")
                .now()
                .push(" RETURNING holder")
                .one::<Holder>(db)
                .await?;
            Ok(row.is_some())
        }
        Backend::MySql => {
            // `holder` changes first; the `lease_until` test then sees the new holder.
            let txn = super::begin(db).await?;
            insert
                .push(" ON DUPLICATE KEY UPDATE holder = IF(holder = VALUES(holder) OR lease_until < ")
                .now()
                .push(", VALUES(holder), holder), lease_until = IF(holder = VALUES(holder), VALUES(lease_until), lease_until)")
                .execute(&txn)
                .await?;
            let row = Sql::new(b, "SELECT holder FROM cog_lock WHERE name = ").bind(SCHEDULER).one::<Holder>(&txn).await?;
            txn.commit().await?;
            Ok(row.is_some_and(|r| r.holder == holder))
        }
    }
}

/// Gives the scheduler lease up if `holder` has it.
pub(crate) async fn release_leadership(conn: &impl ConnectionTrait, holder: &str) -> Result<u64, DbErr> {
    Sql::new(Backend::of(conn)?, "DELETE FROM cog_lock WHERE name = ").bind(SCHEDULER).push(" AND holder = ").bind(holder).execute(conn).await
}
