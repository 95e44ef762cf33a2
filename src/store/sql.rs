//! [`Backend`] and [`Sql`]: which database a connection talks to, and statements written with
//! that database's placeholders.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DbBackend, DbErr, FromQueryResult, Statement, Value};

/// The databases cog runs on. SeaORM's `DatabaseBackend` is `#[non_exhaustive]`; it is mapped
/// onto this once ([`Backend::of`]), so every dialect choice is an exhaustive `match`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    /// SQLite 3.35+ (one process).
    Sqlite,
    /// PostgreSQL 12+.
    Postgres,
    /// MySQL 8 or MariaDB 10.6+.
    MySql,
}

impl Backend {
    /// The backend of `conn`; an error naming the databases cog supports for any other.
    pub(crate) fn of(conn: &impl ConnectionTrait) -> Result<Self, DbErr> {
        Self::from_sea_orm(conn.get_database_backend())
    }

    /// Maps SeaORM's backend onto cog's.
    pub(crate) fn from_sea_orm(backend: DbBackend) -> Result<Self, DbErr> {
        match backend {
            DbBackend::Sqlite => Ok(Self::Sqlite),
            DbBackend::Postgres => Ok(Self::Postgres),
            DbBackend::MySql => Ok(Self::MySql),
            other => Err(DbErr::Custom(format!("cog runs on SQLite, PostgreSQL and MySQL/MariaDB; this connection is {other:?}"))),
        }
    }

    /// SeaORM's name for it.
    fn sea_orm(self) -> DbBackend {
        match self {
            Self::Sqlite => DbBackend::Sqlite,
            Self::Postgres => DbBackend::Postgres,
            Self::MySql => DbBackend::MySql,
        }
    }

    /// The column `cog_pipeline_run.trigger`, quoted (`trigger` is a reserved word).
    pub(crate) fn trigger_column(self) -> &'static str {
        match self {
            Self::Sqlite | Self::Postgres => "\"trigger\"",
            Self::MySql => "`trigger`",
        }
    }
}

/// One statement under construction: text and bound values, in order. [`bind`](Self::bind)
/// writes the backend's placeholder for the next value (`$n` on PostgreSQL, `?` on SQLite and
/// MySQL), so a statement is written once and reads the same on every backend.
#[derive(Debug, Clone)]
#[must_use = "a statement does nothing until it is run"]
pub(crate) struct Sql {
    backend: Backend,
    text: String,
    values: Vec<Value>,
}

#[cfg(test)]
thread_local! {
    /// The statements built on this thread, for tests that look at their query plans.
    pub(crate) static SENT: std::cell::RefCell<Vec<Statement>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A row holding one id.
#[derive(Debug, Clone, Copy, FromQueryResult)]
pub(crate) struct Id {
    /// The id.
    pub(crate) id: i64,
}

impl Sql {
    /// A statement for `backend` starting with `text`.
    pub(crate) fn new(backend: Backend, text: &str) -> Self {
        Self { backend, text: text.to_owned(), values: Vec::new() }
    }

    /// Appends SQL text.
    pub(crate) fn push(mut self, text: &str) -> Self {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder bound to `value`.
    pub(crate) fn bind(mut self, value: impl Into<Value>) -> Self {
        self.values.push(value.into());
        match self.backend {
            Backend::Postgres => {
                self.text.push('$');
                self.text.push_str(&self.values.len().to_string());
            }
            Backend::Sqlite | Backend::MySql => self.text.push('?'),
        }
        self
    }

    /// The backend the statement is written for.
    pub(crate) fn backend(&self) -> Backend {
        self.backend
    }

    /// Appends `status` as a literal (`'queued'`), from the enum's stored text. Used where a
    /// statement must read the partial indexes on active task runs (migration
    /// `m20261203_000005_active_indexes`): a planner can use a partial index only when the
    /// statement's own text implies the index's condition, which a bound value hides (SQLite
    /// never uses the index then; PostgreSQL not once it caches a generic plan).
    pub(crate) fn status(self, status: crate::entity::status::RunStatus) -> Self {
        self.push("'").push(status.as_str()).push("'")
    }

    /// Appends `'a', 'b'`: [`status`](Self::status) for each of `statuses`.
    pub(crate) fn statuses(mut self, statuses: impl IntoIterator<Item = crate::entity::status::RunStatus>) -> Self {
        for (i, status) in statuses.into_iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self = self.status(status);
        }
        self
    }

    /// Appends the time `after` from now, for a lease or `run_after` column or a comparison
    /// with one. On PostgreSQL and MySQL it is the database's clock (`statement_timestamp()`,
    /// `UTC_TIMESTAMP(6)`, which no session time zone shifts), so the machines of a cluster
    /// need not agree on the time; on SQLite (one machine) it is this process's clock.
    pub(crate) fn now_plus(self, after: Duration) -> Self {
        match self.backend {
            Backend::Sqlite => {
                let at = super::now() + chrono::TimeDelta::from_std(after).unwrap_or(chrono::TimeDelta::MAX);
                self.bind(at)
            }
            Backend::Postgres => self.push("(statement_timestamp() + make_interval(secs => ").bind(after.as_secs_f64()).push("))"),
            Backend::MySql => {
                let micros = i64::try_from(after.as_micros()).unwrap_or(i64::MAX);
                self.push("(UTC_TIMESTAMP(6) + INTERVAL ").bind(micros).push(" MICROSECOND)")
            }
        }
    }

    /// Appends the current time by the rule of [`now_plus`](Self::now_plus).
    pub(crate) fn now(self) -> Self {
        self.now_plus(Duration::ZERO)
    }

    /// Appends `a, b, c`: one placeholder per value.
    pub(crate) fn bind_list<V: Into<Value>>(mut self, values: impl IntoIterator<Item = V>) -> Self {
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self = self.bind(value);
        }
        self
    }

    /// Appends `column IN (a, b, c)`; on PostgreSQL `column = ANY($n)`, the ids bound as one
    /// array. One statement text whatever the number of ids: PostgreSQL parses it once per
    /// connection and, after five runs, reuses a generic plan, where a list of placeholders
    /// made a new statement (parsed and planned afresh) for every length.
    pub(crate) fn in_ids(self, column: &str, ids: &[i64]) -> Self {
        match self.backend {
            Backend::Postgres => self.push(column).push(" = ANY(").bind(ids.to_vec()).push(")"),
            Backend::Sqlite | Backend::MySql => self.push(column).push(" IN (").bind_list(ids.iter().copied()).push(")"),
        }
    }

    /// The statement to send.
    pub(crate) fn statement(self) -> Statement {
        let statement = Statement::from_sql_and_values(self.backend.sea_orm(), self.text, self.values);
        #[cfg(test)]
        SENT.with(|sent| sent.borrow_mut().push(statement.clone()));
        statement
    }

    /// Runs it; returns the number of rows it changed (on MySQL: the rows it matched).
    pub(crate) async fn execute(self, conn: &impl ConnectionTrait) -> Result<u64, DbErr> {
        Ok(conn.execute_raw(self.statement()).await?.rows_affected())
    }

    /// Runs an `INSERT` of one row and returns the new row's id: `RETURNING id` on SQLite and
    /// PostgreSQL, `LAST_INSERT_ID()` on MySQL (which has no `INSERT ... RETURNING`).
    pub(crate) async fn insert(self, conn: &impl ConnectionTrait) -> Result<i64, DbErr> {
        match self.backend {
            Backend::Sqlite | Backend::Postgres => self.push(" RETURNING id").one::<Id>(conn).await?.map(|r| r.id).ok_or(DbErr::RecordNotInserted),
            Backend::MySql => {
                let id = conn.execute_raw(self.statement()).await?.last_insert_id();
                i64::try_from(id).map_err(|_| DbErr::Custom(format!("inserted id {id} does not fit a 64-bit key")))
            }
        }
    }

    /// Runs a query and reads every row as a `T`.
    pub(crate) async fn all<T: FromQueryResult>(self, conn: &impl ConnectionTrait) -> Result<Vec<T>, DbErr> {
        conn.query_all_raw(self.statement()).await?.iter().map(|row| T::from_query_result(row, "")).collect()
    }

    /// Runs a query and reads its first row, if any, as a `T`.
    pub(crate) async fn one<T: FromQueryResult>(self, conn: &impl ConnectionTrait) -> Result<Option<T>, DbErr> {
        conn.query_one_raw(self.statement()).await?.map(|row| T::from_query_result(&row, "")).transpose()
    }

    /// The ids a query returns (its column `id`).
    pub(crate) async fn ids(self, conn: &impl ConnectionTrait) -> Result<Vec<i64>, DbErr> {
        Ok(self.all::<Id>(conn).await?.into_iter().map(|r| r.id).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_follow_the_backend() {
        let pg = Sql::new(Backend::Postgres, "SELECT id FROM t WHERE a = ").bind(1i64).push(" AND b IN (").bind_list([2i64, 3]).push(")");
        assert_eq!(pg.text, "SELECT id FROM t WHERE a = $1 AND b IN ($2, $3)");
        let my = Sql::new(Backend::MySql, "SELECT id FROM t WHERE a = ").bind(1i64).push(" AND b IN (").bind_list([2i64, 3]).push(")");
        assert_eq!(my.text, "SELECT id FROM t WHERE a = ? AND b IN (?, ?)");
        assert_eq!(my.values.len(), 3);
    }

    #[test]
    fn id_lists_are_one_array_on_postgres() {
        let pg = Sql::new(Backend::Postgres, "SELECT 1 FROM t WHERE ").in_ids("t.id", &[4, 5, 6]);
        assert_eq!(pg.text, "SELECT 1 FROM t WHERE t.id = ANY($1)");
        assert_eq!(pg.values, vec![Value::from(vec![4i64, 5, 6])]);
        let lite = Sql::new(Backend::Sqlite, "SELECT 1 FROM t WHERE ").in_ids("t.id", &[4, 5]);
        assert_eq!(lite.text, "SELECT 1 FROM t WHERE t.id IN (?, ?)");
    }
}
