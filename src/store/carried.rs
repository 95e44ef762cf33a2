//! Transactions carried over their commit (PostgreSQL): an outcome write that started a stage
//! (a hand-off's, see `engine::finish::finish_runs`) ends with `COMMIT; BEGIN` in one round
//! trip, and the next write goes on in the transaction that began, without a `BEGIN` of its
//! own.
//!
//! A stage hand-off's transaction began with a `BEGIN` round trip of its own: 71–87 µs of
//! workload B's 1.0–1.1 ms hand-off (one PostgreSQL process, 2026-12-06). Carried, B's hand-off
//! p50 went from 0.94 to 0.83 ms (four pairs, 300 stages) and F on four processes from 19,935
//! to 21,804 tasks/s. (Carried after every write, E on one process ran at 24,800 tasks/s in
//! half its runs instead of 30,700: its writes, begun at once, took smaller batches.)
//!
//! A transaction that only began holds no snapshot and no lock on any table or row
//! (PostgreSQL takes them at its first statement), so a carried one holds back neither vacuum
//! nor any other session; it shows as `idle in transaction` in `pg_stat_activity` until the
//! next write takes it, or for about [`CARRY_FOR`], after which the completion loop rolls it
//! back and its connection goes back to the pool; the worker's shutdown rolls back what is
//! carried and carries no more.
//!
//! `COMMIT; BEGIN` commits as `COMMIT` does: PostgreSQL runs the `BEGIN` only once the commit is
//! through, and skips it when the commit fails. Nothing cog writes reads the transaction's start
//! time (`now()`): the database's clock is `statement_timestamp()`, the rest this process's
//! clock. Notifications sent in a transaction reach the listeners at its commit from 12.9,
//! 13.5, 14.1 and 15 on (the minor releases of November 2021 and later); before, only once the
//! session was idle outside a transaction: only servers of those versions or later carry (the
//! version a pooled connection read at its start-up, see [`Carried::ask_server`]), and only
//! where no `idle_in_transaction_session_timeout` or `transaction_timeout` under
//! [`SHORTEST_SERVER_TIMEOUT`] could end a carried transaction's session first.
//!
//! One case reads as failed where the commit went through, a little more often than with a
//! plain `COMMIT`: a session ended by the server (a shutdown, `pg_terminate_backend`) between
//! the commit and the `BEGIN`. As with a connection lost right after a `COMMIT`, the write is
//! tried again and finds its outcomes written (stale), and the task runs its chained claim
//! took wait for their leases to run out.

use std::sync::Mutex;
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr};
use tokio::sync::OnceCell;
use tokio::time::Instant;

use super::Backend;

/// How long a carried transaction waits for the next write: far more than the cog of a
/// hand-off chain takes to return, a tenth of the shortest session timeout of a server that
/// gets anything carried ([`SHORTEST_SERVER_TIMEOUT`]).
pub(crate) const CARRY_FOR: Duration = Duration::from_millis(500);

/// Longest the shutdown waits for the carried transactions' rollbacks (a lost connection's
/// would wait for TCP to give up); past it they are dropped, and the pool closes their
/// connections.
const CLEAR_WITHIN: Duration = Duration::from_secs(2);

/// Most transactions carried at once: one per outcome writer (`worker::completions` runs two
/// where one transaction writes several runs, as on PostgreSQL).
const MOST_CARRIED: usize = 2;

/// A pool's connections per transaction carried: a carried transaction holds its connection
/// between writes, and the claim loop, the fills and the launches share the rest.
const CONNECTIONS_PER_CARRIED: u32 = 4;

/// The oldest server of each major version (12 to 14) that tells the listeners of a
/// transaction's notifications at its commit, as `server_version_num`; 15 and later all do.
const NOTIFYING_AT_COMMIT: [i64; 3] = [120_009, 130_005, 140_001];

/// Shortest `idle_in_transaction_session_timeout` (or PostgreSQL 17's `transaction_timeout`)
/// under which nothing is carried: ten times [`CARRY_FOR`], so that the server never ends a
/// session whose carried transaction waits for the next write, even on a loaded machine.
const SHORTEST_SERVER_TIMEOUT: Duration = Duration::from_secs(5);

/// The transactions of one pool carried over their commit, each with when it began.
#[derive(Debug)]
pub(crate) struct Carried {
    /// How many may be carried at once by the pool's size: 0 where nothing is (not
    /// PostgreSQL, or a pool of fewer than [`CONNECTIONS_PER_CARRIED`] connections).
    most: usize,
    /// Whether the server lets transactions be carried (it tells the listeners of
    /// notifications at commit, and ends no session idle in a transaction too soon): set by
    /// [`ask_server`](Self::ask_server); nothing is carried until it is, and `true`.
    server_carries: OnceCell<bool>,
    state: Mutex<State>,
}

/// What is carried, and what is about to be.
#[derive(Debug, Default)]
struct State {
    /// The carried transactions, each with when it began, oldest first.
    open: Vec<(DatabaseTransaction, Instant)>,
    /// Commits under way that will carry (a place kept for each, so that none finds the
    /// places taken after its `COMMIT; BEGIN` and has to commit a second time).
    reserved: usize,
    /// Set by [`Carried::clear`]: nothing is carried any more.
    closed: bool,
    /// The rollbacks of expired transactions under way ([`Carried::expire`]), which
    /// [`Carried::clear`] waits for.
    expiring: tokio::task::JoinSet<()>,
}

impl State {
    /// Whether one more may be carried.
    fn has_room(&self, most: usize) -> bool {
        !self.closed && self.open.len() + self.reserved < most
    }
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
        Carried::at_most(most)
    }

    /// Carrying at most `most` transactions.
    fn at_most(most: usize) -> Carried {
        Carried { most, server_carries: OnceCell::new(), state: Mutex::new(State::default()) }
    }

    /// A transaction on `db`: the carried one that began last, if that was less than
    /// [`CARRY_FOR`] ago, else one begun now (`super::begin`). (Older ones are left to
    /// [`expire`](Self::expire).)
    pub(crate) async fn begin(&self, db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
        let carried = {
            let mut state = self.lock();
            match state.open.last() {
                Some((_, began)) if began.elapsed() < CARRY_FOR => state.open.pop().map(|(txn, _)| txn),
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
        if self.server_carries.get() != Some(&true) || !self.reserve() {
            return txn.commit().await;
        }
        // Should this fail, `txn` is dropped and its connection rolled back as after a failed
        // `COMMIT` (PostgreSQL then warns that no transaction is in progress).
        let committed = txn.execute_unprepared("COMMIT; BEGIN").await;
        let mut state = self.lock();
        state.reserved -= 1;
        committed?;
        if state.closed {
            // The worker stopped meanwhile: the empty transaction is rolled back (dropped).
            return Ok(());
        }
        state.open.push((txn, Instant::now()));
        Ok(())
    }

    /// Keeps a place for a transaction about to be carried, if there is room.
    fn reserve(&self) -> bool {
        let mut state = self.lock();
        let room = state.has_room(self.most);
        if room {
            state.reserved += 1;
        }
        room
    }

    /// Asks the server of pool `db` (on PostgreSQL, where something may be carried) whether a
    /// transaction may be carried over the commit: whether it tells the listeners of a
    /// transaction's notifications at its commit, from its version as a pooled connection
    /// read it at its start-up (see [`NOTIFYING_AT_COMMIT`]), and whether its sessions may
    /// stay idle in a transaction long enough (no timeout under [`SHORTEST_SERVER_TIMEOUT`]).
    /// Nothing is carried before this is asked, nor after it answered no.
    pub(crate) async fn ask_server(&self, db: &DatabaseConnection) -> Result<(), DbErr> {
        if self.most == 0 || self.server_carries.initialized() {
            return Ok(());
        }
        let mut connection = db.get_postgres_connection_pool().acquire().await.map_err(super::prepare::sqlx_error)?;
        let version = connection.server_version_num().map_or(0, i64::from);
        let notifies = notifies_at_commit(version);
        if !notifies {
            tracing::info!(
                server_version_num = version,
                "this PostgreSQL tells listeners of notifications only outside a transaction (before 14.1, 13.5, 12.9): stage hand-offs do not carry their transaction over the commit"
            );
        }
        let carries = notifies
            && {
                // Both in milliseconds, 0 for off; PostgreSQL before 17 has no `transaction_timeout`.
                let timeouts: Vec<(String, String)> = sea_orm::sqlx::query_as(
                    "SELECT name, setting FROM pg_settings WHERE name IN ('idle_in_transaction_session_timeout', 'transaction_timeout')",
                )
                .fetch_all(&mut *connection)
                .await
                .map_err(super::prepare::sqlx_error)?;
                match shortest_timeout(&timeouts) {
                    Some((name, timeout)) if timeout < SHORTEST_SERVER_TIMEOUT => {
                        tracing::info!(
                            setting = %name,
                            timeout = ?timeout,
                            "the server ends sessions idle in a transaction this soon: stage hand-offs do not carry their transaction over the commit (set {name} to {SHORTEST_SERVER_TIMEOUT:?} or more, or off, for a round trip less per hand-off)"
                        );
                        false
                    }
                    _ => true,
                }
            };
        // Set once: a second ask (none is made) would find the same server.
        let _ = self.server_carries.set(carries);
        Ok(())
    }

    /// When the carried transaction that began first is due to be rolled back, if one is
    /// carried.
    pub(crate) fn due(&self) -> Option<Instant> {
        self.lock().open.first().map(|(_, began)| *began + CARRY_FOR)
    }

    /// Takes the carried transactions that began [`CARRY_FOR`] ago or more and rolls them back
    /// in a task of their own (the completion loop that calls this waits for no server), which
    /// [`clear`](Self::clear) waits for.
    pub(crate) fn expire(&self) {
        let mut state = self.lock();
        let fresh = state.open.iter().position(|(_, began)| began.elapsed() < CARRY_FOR).unwrap_or(state.open.len());
        let expired: Vec<DatabaseTransaction> = state.open.drain(..fresh).map(|(txn, _)| txn).collect();
        // The rollbacks done before are forgotten (each logged its own failure).
        while let Some(done) = state.expiring.try_join_next() {
            log_panic(done);
        }
        if !expired.is_empty() {
            state.expiring.spawn(roll_back(expired));
        }
    }

    /// Rolls back every carried transaction and carries no more (the worker is stopping);
    /// returns once they, and the expired ones' rollbacks under way, are through, or after
    /// [`CLEAR_WITHIN`] (the rest dropped: their connections are closed by the pool).
    pub(crate) async fn clear(&self) {
        let (all, mut expiring) = {
            let mut state = self.lock();
            state.closed = true;
            let all: Vec<DatabaseTransaction> = state.open.drain(..).map(|(txn, _)| txn).collect();
            (all, std::mem::take(&mut state.expiring))
        };
        let cleared = async {
            roll_back(all).await;
            while let Some(done) = expiring.join_next().await {
                log_panic(done);
            }
        };
        if tokio::time::timeout(CLEAR_WITHIN, cleared).await.is_err() {
            tracing::warn!(within = ?CLEAR_WITHIN, "the carried transactions were not all rolled back in time at shutdown; their connections are dropped");
        }
    }

    /// How many transactions are carried now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().open.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Carried {
    /// A carried transaction's connection goes back to its pool through a task of the pool's,
    /// which needs a Tokio runtime: dropped outside one (a host that drops its runtime after
    /// Tokio's, without `shutdown`), the transactions are left to the end of the process
    /// instead of panicking here: their sockets and pool places stay taken, and their sessions
    /// idle in a transaction, until the process exits. Rollbacks of expired ones under way are
    /// left to finish (or, with the runtime gone, to end with it).
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        // Rollbacks under way finish on their own.
        state.expiring.detach_all();
        if tokio::runtime::Handle::try_current().is_err() {
            for (txn, _) in state.open.drain(..) {
                std::mem::forget(txn);
            }
        }
    }
}

/// The shortest of the server's session timeouts `settings` (name, milliseconds as
/// `pg_settings` reads them) that are on.
fn shortest_timeout(settings: &[(String, String)]) -> Option<(&str, Duration)> {
    settings
        .iter()
        .filter_map(|(name, ms)| ms.parse::<u64>().ok().filter(|&ms| ms > 0).map(|ms| (name.as_str(), Duration::from_millis(ms))))
        .min_by_key(|&(_, timeout)| timeout)
}

/// Whether a PostgreSQL server of `server_version_num` `version` tells the listeners of a
/// transaction's notifications at its commit.
fn notifies_at_commit(version: i64) -> bool {
    // A major version's releases are numbered from major * 10,000 (120_009: 12.9).
    version >= 150_000 || NOTIFYING_AT_COMMIT.iter().any(|&first| (first..first - first % 10_000 + 10_000).contains(&version))
}

/// Logs a rollback task of [`Carried::expire`] that panicked (its connection is dropped by the
/// pool: nothing is lost).
fn log_panic(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done
        && e.is_panic()
    {
        let message = crate::signals::panic_message(e.into_panic().as_ref());
        tracing::error!(panic = %message, "rolling back an expired carried transaction panicked; its connection is dropped");
    }
}

/// Rolls back `txns`, empty transactions that only began. One that cannot be rolled back loses
/// nothing (its connection is dropped by the pool); it is logged, as the server may have ended
/// the session (an `idle_in_transaction_session_timeout` set after [`Carried::ask_server`]
/// read it, say).
async fn roll_back(txns: Vec<DatabaseTransaction>) {
    for txn in txns {
        if let Err(e) = txn.rollback().await {
            tracing::warn!(error = %e, "could not roll back a carried (empty) transaction; its connection is dropped. If the server ended the session, keep its idle_in_transaction_session_timeout at 5 s or more, or off");
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
        let carried = Carried::at_most(1);
        carried.ask_server(&db).await.unwrap();
        assert_eq!(carried.server_carries.get(), Some(&true), "PostgreSQL 15 and later tell listeners at commit");
        db.execute_unprepared("CREATE TABLE carried_probe (v INT)").await.unwrap();

        // Committed as `commit` commits: another session sees the row at once.
        let txn = carried.begin(&db).await.unwrap();
        txn.execute_unprepared("INSERT INTO carried_probe VALUES (1)").await.unwrap();
        let session = backend_pid(&txn).await;
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
        assert_eq!(backend_pid(&txn).await, session, "the next write goes on in the session carried");
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
        carried.expire();
        assert_eq!(carried.len(), 0);
        assert_eq!(carried.due(), None);
        let mut rollbacks = std::mem::take(&mut carried.lock().expiring);
        while rollbacks.join_next().await.is_some() {}
        let left = sessions(&other, &name).await;
        assert!(left.iter().all(|(state, in_txn, _)| state == "idle" && !in_txn), "every session back out of its transaction: {left:?}");

        // So too when the writer stops: what is carried, and what expired and is still being
        // rolled back, is rolled back before `clear` returns.
        let txn = carried.begin(&db).await.unwrap();
        carried.commit(txn).await.unwrap();
        tokio::time::sleep(CARRY_FOR).await;
        carried.expire();
        let txn = carried.begin(&db).await.unwrap();
        carried.commit(txn).await.unwrap();
        assert_eq!(carried.len(), 1);
        carried.clear().await;
        let left = sessions(&other, &name).await;
        assert!(left.iter().all(|(state, in_txn, _)| state == "idle" && !in_txn), "every session back out of its transaction: {left:?}");
        let txn = carried.begin(&db).await.unwrap();
        carried.commit(txn).await.unwrap();
        assert_eq!(carried.len(), 0, "nothing is carried after `clear`");
        other.close().await.unwrap();
        db.close().await.unwrap();
        test_database::drop(&url).await;
    }

    /// The server process of the session `txn` runs in.
    async fn backend_pid(txn: &DatabaseTransaction) -> i32 {
        let row = txn.query_one_raw(Statement::from_string(txn.get_database_backend(), "SELECT pg_backend_pid() AS pid")).await.unwrap().unwrap();
        row.try_get("", "pid").unwrap()
    }

    /// A server that ends sessions idle in a transaction within [`SHORTEST_SERVER_TIMEOUT`]
    /// gets nothing carried; and a write on a session it ended that way fails as transient
    /// (tried again on another), not as a refusal of the outcome.
    #[tokio::test]
    async fn a_server_that_ends_idle_transactions_soon_gets_none_carried_on_postgres() {
        let Some((db, url)) = test_database::postgres("carried_timeout", "carried transaction timeout test").await else { return };
        let name = url.rsplit('/').next().unwrap().split('?').next().unwrap().to_owned();
        db.execute_unprepared(&format!("ALTER DATABASE {name} SET idle_in_transaction_session_timeout = '300ms'")).await.unwrap();
        // The setting is read by sessions that start after it.
        let timed = Database::connect(url.as_str()).await.unwrap();
        let carried = Carried::at_most(1);
        carried.ask_server(&timed).await.unwrap();
        assert_eq!(carried.server_carries.get(), Some(&false), "sessions ended after 300 ms idle in a transaction: nothing carried");
        let txn = carried.begin(&timed).await.unwrap();
        carried.commit(txn).await.unwrap();
        assert_eq!(carried.len(), 0);

        let txn = crate::store::begin(&timed).await.unwrap();
        tokio::time::sleep(Duration::from_millis(900)).await;
        let ended = txn.execute_unprepared("SELECT 1").await.expect_err("the server ended the session idle in its transaction");
        let sea_orm::DbErr::Exec(sea_orm::RuntimeErr::SqlxError(sqlx_error)) = &ended else { panic!("a statement's error: {ended:?}") };
        let code = sqlx_error.as_database_error().and_then(|e| e.code()).map(|c| c.into_owned());
        assert_eq!(code.as_deref(), Some("25P03"), "the server's own error, idle-in-transaction timeout: {ended:?}");
        assert!(crate::store::errors::is_transient(&ended), "a session ended by the server's timeout is transient: {ended:?}");
        drop(txn);
        timed.close().await.unwrap();
        db.close().await.unwrap();
        test_database::drop(&url).await;
    }

    #[test]
    fn the_shortest_session_timeout_that_is_on_is_found() {
        let settings = |pairs: &[(&str, &str)]| pairs.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect::<Vec<_>>();
        assert_eq!(shortest_timeout(&settings(&[("idle_in_transaction_session_timeout", "0")])), None);
        assert_eq!(shortest_timeout(&settings(&[])), None);
        assert_eq!(
            shortest_timeout(&settings(&[("idle_in_transaction_session_timeout", "60000"), ("transaction_timeout", "2000")])),
            Some(("transaction_timeout", Duration::from_secs(2)))
        );
        assert_eq!(
            shortest_timeout(&settings(&[("idle_in_transaction_session_timeout", "400"), ("transaction_timeout", "0")])),
            Some(("idle_in_transaction_session_timeout", Duration::from_millis(400)))
        );
    }

    #[test]
    fn servers_that_notify_at_commit_are_told_apart_by_version() {
        for (version, notifies) in [
            (110_022, false),
            (120_008, false),
            (120_009, true),
            (130_004, false),
            (130_005, true),
            (140_000, false),
            (140_001, true),
            (150_000, true),
            (170_004, true),
        ] {
            assert_eq!(notifies_at_commit(version), notifies, "server_version_num {version}");
        }
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
