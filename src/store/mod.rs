//! The only home of cog's SQL: every statement cog sends, per backend, and the rows it reads.
//!
//! - [`Backend`] is cog's own list of databases (SeaORM's is open-ended); each statement
//!   whose dialects differ is chosen by an exhaustive `match` on it, never by a fallback arm.
//! - [`Sql`] writes a statement and binds its values in order, with each dialect's own
//!   placeholders (`$1` on PostgreSQL, `?` on SQLite and MySQL): nothing rewrites SQL text.
//! - Rows are read by column name into `FromQueryResult` structs; statuses are bound as
//!   [`RunStatus`](crate::RunStatus) values.
//!
//! Submodules are by area: [`arguments`], [`claims`], [`transitions`], [`fills`], [`outcomes`], [`launches`],
//! [`definitions`], [`weights`], [`leases`], [`presence`], [`schedules`],
//! [`reports`], [`queues`], [`retries`], [`prune`]. Where SeaORM's query builder renders every dialect cleanly ([`presence`]), it
//! writes the SQL.

pub(crate) mod arguments;
mod claimed_rows;
pub(crate) mod claims;
pub(crate) mod definitions;
pub(crate) mod errors;
pub(crate) mod fills;
pub(crate) mod launches;
pub(crate) mod leases;
pub(crate) mod outcomes;
pub(crate) mod presence;
pub(crate) mod prune;
pub(crate) mod queues;
pub(crate) mod reports;
pub(crate) mod retries;
pub(crate) mod schedules;
pub(crate) mod start_claims;
pub(crate) mod transitions;
pub(crate) mod weights;

mod carried;
mod connect;
#[cfg(test)]
mod plans;
mod prepare;
mod sql;
#[cfg(test)]
mod stage_starts;
#[cfg(test)]
pub(crate) mod test_database;
mod warm;

pub(crate) use carried::Carried;
pub(crate) use connect::{Pools, connect};
pub(crate) use sql::{Backend, Id, Sql};
pub(crate) use warm::warm_up;

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, FromQueryResult, TransactionTrait};

use crate::entity::status::RunStatus;

/// The time cog writes: UTC, truncated to microseconds so every backend stores the same value
/// and SQLite's text timestamps sort in time order.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Begins a transaction. On MySQL it runs at READ COMMITTED, as PostgreSQL's default: every
/// statement sees what committed before it, and InnoDB takes no gap locks that would make
/// concurrent claims and inserts deadlock.
pub(crate) async fn begin(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    match Backend::of(db)? {
        Backend::Sqlite | Backend::Postgres => db.begin().await,
        Backend::MySql => db.begin_with_config(Some(sea_orm::IsolationLevel::ReadCommitted), None).await,
    }
}

/// A status column.
#[derive(Debug, FromQueryResult)]
struct StatusRow {
    status: RunStatus,
}

/// Locks pipeline run `id` for the rest of the transaction and returns its status.
///
/// Every state transition of a run starts here, so transitions of one run are serialized:
/// PostgreSQL and MySQL take the row lock; SQLite takes the database write lock with a no-op
/// update (a transaction whose first statement writes never fails to upgrade its lock later).
pub(crate) async fn lock_run(conn: &impl ConnectionTrait, id: i64) -> Result<Option<RunStatus>, DbErr> {
    let b = Backend::of(conn)?;
    let sql = match b {
        Backend::Postgres | Backend::MySql => Sql::new(b, "SELECT status FROM cog_pipeline_run WHERE id = ").bind(id).push(" FOR UPDATE"),
        Backend::Sqlite => Sql::new(b, "UPDATE cog_pipeline_run SET id = id WHERE id = ").bind(id).push(" RETURNING status"),
    };
    Ok(sql.one::<StatusRow>(conn).await?.map(|r| r.status))
}

/// Until `limit` is set again or the transaction ends, a statement of transaction `conn`
/// that waits longer than `limit` for a lock fails (PostgreSQL's `lock_timeout`, SQLSTATE
/// 55P03); `None`: it waits as long as it takes. PostgreSQL only (elsewhere nothing).
pub(crate) async fn limit_lock_waits(conn: &impl ConnectionTrait, limit: Option<std::time::Duration>) -> Result<(), DbErr> {
    if Backend::of(conn)? == Backend::Postgres {
        let ms = limit.map_or(0, |l| l.as_millis().max(1));
        conn.execute_unprepared(&format!("SET LOCAL lock_timeout = {ms}")).await?;
    }
    Ok(())
}

/// The PostgreSQL channel cog's processes tell each other about changes on.
pub(crate) const EVENTS_CHANNEL: &str = "cog_events";

/// Tells every listening process about `event` (PostgreSQL: `NOTIFY`; SQLite and MySQL have
/// no such thing, and their processes poll): `work` (task runs were queued), `cancel:<run id>`
/// or `ended:<run id>`. Inside a transaction the notification is delivered at commit, and not
/// at all on rollback.
pub(crate) async fn notify(conn: &impl ConnectionTrait, event: &str) -> Result<(), DbErr> {
    let b = Backend::of(conn)?;
    match b {
        Backend::Postgres => {
            Sql::new(b, "SELECT pg_notify(").bind(EVENTS_CHANNEL).push(", ").bind(event).push(")").execute(conn).await?;
        }
        Backend::Sqlite | Backend::MySql => {}
    }
    Ok(())
}

/// Tells listening processes `events` (as [`notify`] does) once the transaction that caused
/// them has committed, in a statement of its own: on PostgreSQL only (nothing elsewhere,
/// where [`notify`] does nothing either). What it tells is already in the database; when it
/// cannot be sent (the connection lost), it is logged, and the processes it was for find out
/// by reading (idle workers at their next poll, a waiter within 2 s).
pub(crate) async fn notify_after_commit(db: &DatabaseConnection, events: Vec<String>) {
    if events.is_empty() || !matches!(Backend::of(db), Ok(Backend::Postgres)) {
        return;
    }
    let sent = Sql::new(Backend::Postgres, "SELECT pg_notify(")
        .bind(EVENTS_CHANNEL)
        .push(", e) FROM unnest(")
        .bind(events.clone())
        .push("::text[]) AS e")
        .execute(db)
        .await;
    if let Err(e) = sent {
        tracing::warn!(error = %e, ?events, "could not tell the other processes of events after their commit; they find out by reading");
    }
}

/// Serializes the rare transactions that touch many definition rows (registry sync, `define`,
/// weight updates) across processes, so their row locks can never be taken in conflicting
/// orders (deadlock): on PostgreSQL a transaction-scoped advisory lock; on MySQL the row
/// `definitions` of `cog_lock`, locked until the transaction ends (a session-scoped
/// `GET_LOCK` would outlive the transaction on a pooled connection); on SQLite nothing (a
/// transaction there already holds the database write lock).
pub(crate) async fn lock_definitions(conn: &impl ConnectionTrait) -> Result<(), DbErr> {
    take_definitions_lock(conn, "pg_advisory_xact_lock").await
}

/// The lock a weight update of run `run_id` takes: on PostgreSQL the definitions lock of
/// [`lock_definitions`] shared (learners wait for, and hold off, `define` and registry syncs,
/// but not each other), then a lock on the run's pipeline alone, so the updates of one
/// pipeline's weights follow each other — each reads the durations the one before committed —
/// while other pipelines' go on (measured: 50 runs ending together waited 280 ms each for the
/// exclusive lock, across pipelines too). On MySQL the exclusive definitions lock; on SQLite
/// nothing (one writer at a time).
pub(crate) async fn lock_weights_of(conn: &impl ConnectionTrait, run_id: i64) -> Result<(), DbErr> {
    /// An arbitrary first key: "cogW" in ASCII.
    const WEIGHTS: i32 = 0x636f_6757;
    if Backend::of(conn)? != Backend::Postgres {
        return lock_definitions(conn).await;
    }
    take_definitions_lock(conn, "pg_advisory_xact_lock_shared").await?;
    // The second key is 32 bits: pipelines whose ids are equal modulo 2^31 - 1 share it.
    Sql::new(Backend::Postgres, "SELECT pg_advisory_xact_lock(")
        .bind(WEIGHTS)
        .push(", ((SELECT pipeline_id FROM cog_pipeline_run WHERE id = ")
        .bind(run_id)
        .push(") % 2147483647)::int)")
        .execute(conn)
        .await?;
    Ok(())
}

/// Runs `runs` grouped by pipeline, the groups in the order in which a transaction learning the
/// weights of each takes their weights locks (see [`lock_weights_of`]): by the lock's key (the
/// pipeline's id modulo 2^31 - 1), then by pipeline id; runs in id order within a group.
/// Transactions that take several in this order never wait for each other in a circle.
pub(crate) async fn weights_lock_groups(conn: &impl ConnectionTrait, runs: &[i64]) -> Result<Vec<Vec<i64>>, DbErr> {
    #[derive(FromQueryResult)]
    struct RunOf {
        id: i64,
        pipeline_id: i64,
    }
    if runs.len() < 2 {
        return Ok(runs.iter().map(|&run| vec![run]).collect());
    }
    let rows: Vec<RunOf> = Sql::new(Backend::of(conn)?, "SELECT id, pipeline_id FROM cog_pipeline_run WHERE ")
        .in_ids("id", runs)
        .push(" ORDER BY pipeline_id % 2147483647, pipeline_id, id")
        .all(conn)
        .await?;
    let mut groups: Vec<(i64, Vec<i64>)> = Vec::new();
    for row in rows {
        match groups.last_mut() {
            Some((pipeline, group)) if *pipeline == row.pipeline_id => group.push(row.id),
            _ => groups.push((row.pipeline_id, vec![row.id])),
        }
    }
    Ok(groups.into_iter().map(|(_, group)| group).collect())
}

/// Takes the definitions lock with PostgreSQL's advisory lock function `pg_function`.
async fn take_definitions_lock(conn: &impl ConnectionTrait, pg_function: &str) -> Result<(), DbErr> {
    /// An arbitrary key, "cog" in ASCII.
    const KEY: i64 = 0x636f67;
    let b = Backend::of(conn)?;
    match b {
        Backend::Postgres => {
            Sql::new(b, "SELECT ").push(pg_function).push("(").bind(KEY).push(")").execute(conn).await?;
        }
        Backend::MySql => {
            // Inserting the row, or finding it there, locks it exclusively until commit.
            Sql::new(b, "INSERT INTO cog_lock (name, holder, lease_until) VALUES (")
                .bind("definitions")
                .push(", ")
                .bind("")
                .push(", ")
                .now()
                .push(") ON DUPLICATE KEY UPDATE holder = holder")
                .execute(conn)
                .await?;
        }
        Backend::Sqlite => {}
    }
    Ok(())
}

/// Applies cog's migrations (see [`crate::migrate`]). On PostgreSQL they run in one
/// transaction under the definitions lock. MySQL cannot roll DDL back, so there a named
/// `GET_LOCK` is held by the one connection that runs them (a transaction pins it) and
/// released before that connection goes back to the pool.
pub(crate) async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    use cog_migration::MigratorTrait;
    let b = Backend::of(db)?;
    match b {
        Backend::Sqlite => cog_migration::Migrator::up(db, None).await,
        Backend::Postgres => {
            let txn = db.begin().await?;
            lock_definitions(&txn).await?;
            cog_migration::Migrator::up(&txn, None).await?;
            txn.commit().await
        }
        Backend::MySql => {
            #[derive(FromQueryResult)]
            struct Locked {
                locked: Option<i64>,
            }
            let pinned = db.begin().await?;
            let locked = Sql::new(b, "SELECT GET_LOCK(").bind("cog_migrations").push(", ").bind(300i64).push(") AS locked").one::<Locked>(&pinned).await?;
            if locked.and_then(|l| l.locked) != Some(1) {
                return Err(DbErr::Migration("another process held the `cog_migrations` lock for 5 minutes; is a migration stuck?".into()));
            }
            let result = cog_migration::Migrator::up(&pinned, None).await;
            let released = Sql::new(b, "SELECT RELEASE_LOCK(").bind("cog_migrations").push(") AS locked").one::<Locked>(&pinned).await;
            // DDL committed as it ran; this ends the (empty) transaction.
            pinned.commit().await?;
            result?;
            released.map(|_| ())
        }
    }
}
