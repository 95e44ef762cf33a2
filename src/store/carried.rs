//! Transactions carried over their commit (PostgreSQL): an outcome write ends with
//! `COMMIT; BEGIN` in one round trip, and the next write goes on in the transaction that began,
//! without a `BEGIN` of its own.
//!
//! A stage hand-off is a transaction of five round trips (`BEGIN`, the outcome with the run's
//! lock, the stage's end, the next stage's start with its claim, `COMMIT`); the `BEGIN` was
//! 71–87 µs of workload B's 1.0–1.1 ms (one PostgreSQL process, 2026-12-06). Carried, B's
//! hand-off p50 went from 1.02 to 0.95 ms (six pairs) and cog's CPU per hand-off from 300 to
//! 233 µs.
//!
//! A transaction that only began holds no snapshot and no lock (PostgreSQL takes them at its
//! first statement), so a carried one holds back neither vacuum nor any other session; it
//! shows as `idle in transaction` in `pg_stat_activity`, for at most [`CARRY_FOR`], after which
//! it is rolled back and its connection goes back to the pool. `COMMIT; BEGIN` commits exactly
//! as `COMMIT` does (PostgreSQL runs `BEGIN` only once the commit succeeded), and nothing cog
//! writes reads the transaction's start time (`now()`): the database's clock is
//! `statement_timestamp()`, the rest this process's clock.

use std::sync::Mutex;
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr};
use tokio::time::Instant;

use super::Backend;

/// Longest a carried transaction waits for the next write: far more than the cog of a
/// hand-off chain takes to return, far less than any `idle_in_transaction_session_timeout`
/// a server would set.
pub(crate) const CARRY_FOR: Duration = Duration::from_millis(500);

/// Most transactions carried at once: one per outcome writer (`worker::completions` runs two
/// where one transaction writes several runs, as on PostgreSQL).
const MOST_CARRIED: usize = 2;

/// A pool's connections per transaction carried: a carried transaction holds its connection
/// between writes, and the claim loop, the fills and the launches share the rest.
const CONNECTIONS_PER_CARRIED: u32 = 4;

/// The transactions of one pool carried over their commit, each with when it began.
#[derive(Debug)]
pub(crate) struct Carried {
    /// How many may be carried at once: 0 where nothing is (not PostgreSQL, or a pool of fewer
    /// than [`CONNECTIONS_PER_CARRIED`] connections).
    most: usize,
    open: Mutex<Vec<(DatabaseTransaction, Instant)>>,
}

impl Carried {
    /// The carried transactions of pool `db`: on PostgreSQL, one per [`CONNECTIONS_PER_CARRIED`]
    /// of its connections, at most [`MOST_CARRIED`]; none elsewhere (SQLite has no round trip
    /// to save, and MySQL's driver sends one statement at a time).
    pub(crate) fn for_pool(db: &DatabaseConnection) -> Carried {
        let most = match Backend::of(db) {
            Ok(Backend::Postgres) => {
                let connections = db.get_postgres_connection_pool().options().get_max_connections();
                usize::try_from(connections / CONNECTIONS_PER_CARRIED).unwrap_or(MOST_CARRIED).min(MOST_CARRIED)
            }
            Ok(Backend::Sqlite | Backend::MySql) | Err(_) => 0,
        };
        Carried { most, open: Mutex::new(Vec::new()) }
    }

    /// A transaction on `db`: the carried one that began last, if that was less than
    /// [`CARRY_FOR`] ago, else one begun now (`super::begin`). (Older ones are left to
    /// [`expire`](Self::expire).)
    pub(crate) async fn begin(&self, db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
        let carried = {
            let mut open = self.lock();
            match open.last() {
                Some((_, began)) if began.elapsed() < CARRY_FOR => open.pop().map(|(txn, _)| txn),
                _ => None,
            }
        };
        match carried {
            Some(txn) => Ok(txn),
            None => super::begin(db).await,
        }
    }

    /// Commits `txn` (begun on this pool) and, while fewer than the most are carried, begins
    /// the next transaction in the same round trip and keeps it for [`begin`](Self::begin).
    /// Returns once the commit is through, as `commit` does.
    pub(crate) async fn commit(&self, txn: DatabaseTransaction) -> Result<(), DbErr> {
        if self.lock().len() >= self.most {
            return txn.commit().await;
        }
        // Should this fail, `txn` is dropped and its connection rolled back as after a failed
        // `COMMIT` (PostgreSQL then warns that no transaction is in progress).
        txn.execute_unprepared("COMMIT; BEGIN").await?;
        let over = {
            let mut open = self.lock();
            if open.len() < self.most {
                open.push((txn, Instant::now()));
                None
            } else {
                Some(txn)
            }
        };
        match over {
            None => Ok(()),
            // Another write carried one meanwhile: this one's empty transaction ends here.
            Some(txn) => txn.commit().await,
        }
    }

    /// When the carried transaction that began first is due to be rolled back, if one is
    /// carried.
    pub(crate) fn due(&self) -> Option<Instant> {
        self.lock().first().map(|(_, began)| *began + CARRY_FOR)
    }

    /// Rolls back the carried transactions that began [`CARRY_FOR`] ago or more; returns once
    /// they are rolled back.
    pub(crate) async fn expire(&self) {
        let expired: Vec<DatabaseTransaction> = {
            let mut open = self.lock();
            let fresh = open.iter().position(|(_, began)| began.elapsed() < CARRY_FOR).unwrap_or(open.len());
            open.drain(..fresh).map(|(txn, _)| txn).collect()
        };
        roll_back(expired).await;
    }

    /// Rolls back every carried transaction (the writer is stopping); returns once they are
    /// rolled back.
    pub(crate) async fn clear(&self) {
        let all: Vec<DatabaseTransaction> = self.lock().drain(..).map(|(txn, _)| txn).collect();
        roll_back(all).await;
    }

    /// How many transactions are carried now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(DatabaseTransaction, Instant)>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Rolls back `txns`, empty transactions that only began. One that cannot be rolled back (its
/// connection lost, say) loses nothing: it is logged, and its connection is dropped by the pool.
async fn roll_back(txns: Vec<DatabaseTransaction>) {
    for txn in txns {
        if let Err(e) = txn.rollback().await {
            tracing::debug!(error = %e, "could not roll back a carried transaction (an empty one); its connection is dropped");
        }
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, Database, Statement};

    use super::*;
    use crate::store::test_database;

    /// `(state, xact_start is set, backend_xmin is set)` of the sessions of database `name`
    /// other than the asking one, from `pg_stat_activity`.
    async fn sessions(admin: &DatabaseConnection, name: &str) -> Vec<(String, bool, bool)> {
        let rows = admin
            .query_all_raw(Statement::from_string(
                admin.get_database_backend(),
                format!(
                    "SELECT COALESCE(state, ''), xact_start IS NOT NULL, backend_xmin IS NOT NULL FROM pg_stat_activity \
                     WHERE datname = '{name}' AND pid <> pg_backend_pid() AND backend_type = 'client backend' ORDER BY state"
                ),
            ))
            .await
            .unwrap();
        rows.iter().map(|r| (r.try_get_by_index(0).unwrap(), r.try_get_by_index(1).unwrap(), r.try_get_by_index(2).unwrap())).collect()
    }

    #[tokio::test]
    async fn a_carried_transaction_commits_begins_the_next_and_ends_after_its_time_on_postgres() {
        let Some((db, url)) = test_database::postgres("carried", "carried transaction test").await else { return };
        let name = url.rsplit('/').next().unwrap().split('?').next().unwrap().to_owned();
        assert!(Carried::for_pool(&db).most >= 1, "a pool of {} connections carries", db.get_postgres_connection_pool().options().get_max_connections());
        let carried = Carried { most: 1, open: Mutex::new(Vec::new()) };
        db.execute_unprepared("CREATE TABLE carried_probe (v INT)").await.unwrap();

        // Committed as `commit` commits: another session sees the row at once.
        let txn = carried.begin(&db).await.unwrap();
        txn.execute_unprepared("INSERT INTO carried_probe VALUES (1)").await.unwrap();
        carried.commit(txn).await.unwrap();
        assert_eq!(carried.len(), 1, "the next transaction is carried");
        let other = Database::connect(url.as_str()).await.unwrap();
        let count = |db: DatabaseConnection| async move {
            let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), "SELECT COUNT(*) FROM carried_probe")).await.unwrap().unwrap();
            row.try_get_by_index::<i64>(0).unwrap()
        };
        assert_eq!(count(other.clone()).await, 1, "the commit is through when `commit` returns");
        // The carried transaction holds no snapshot: idle in a transaction, no xmin.
        assert!(sessions(&other, &name).await.contains(&("idle in transaction".to_owned(), true, false)), "{:?}", sessions(&other, &name).await);

        // The next write goes on in it, and its own commit carries again.
        let txn = carried.begin(&db).await.unwrap();
        assert_eq!(carried.len(), 0);
        txn.execute_unprepared("INSERT INTO carried_probe VALUES (2)").await.unwrap();
        carried.commit(txn).await.unwrap();
        assert_eq!(count(other.clone()).await, 2);

        // A second carried at once is over the most: committed plainly.
        let first = carried.begin(&db).await.unwrap();
        let second = carried.begin(&db).await.unwrap();
        carried.commit(first).await.unwrap();
        carried.commit(second).await.unwrap();
        assert_eq!(carried.len(), 1, "no more than the most are carried");

        // Past its time it is rolled back: no session of the pool is left in a transaction.
        assert!(carried.due().is_some());
        tokio::time::sleep(CARRY_FOR).await;
        carried.expire().await;
        assert_eq!(carried.len(), 0);
        assert_eq!(carried.due(), None);
        let left = sessions(&other, &name).await;
        assert!(left.iter().all(|(state, in_txn, _)| state == "idle" && !in_txn), "every session back out of its transaction: {left:?}");

        // So too when the writer stops.
        let txn = carried.begin(&db).await.unwrap();
        carried.commit(txn).await.unwrap();
        assert_eq!(carried.len(), 1);
        carried.clear().await;
        let left = sessions(&other, &name).await;
        assert!(left.iter().all(|(state, in_txn, _)| state == "idle" && !in_txn), "every session back out of its transaction: {left:?}");
        other.close().await.unwrap();
        db.close().await.unwrap();
        test_database::drop(&url).await;
    }

    #[tokio::test]
    async fn nothing_is_carried_on_sqlite() {
        let db = test_database::sqlite().await;
        let carried = Carried::for_pool(&db);
        let txn = carried.begin(&db).await.unwrap();
        carried.commit(txn).await.unwrap();
        assert_eq!(carried.len(), 0);
    }
}
