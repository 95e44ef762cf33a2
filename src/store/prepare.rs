//! Preparing the hot path's statements on a pooled PostgreSQL connection before first use:
//! each is parsed into the connection's statement cache (sqlx's, keyed by the statement's
//! text), with the parameter types its values will have, and generic plans are made for the
//! statements that use them (see `store::warm`).
//!
//! Measured on workload B (a fresh process, one task): the first launch and claim on a
//! connection parsed 9 statements (0.1–0.4 ms each, plus a round trip each to describe them)
//! and planned the claim (1.9 ms) before the first task could start; `store::warm`'s
//! `EXPLAIN` pass loads the catalogs but leaves no prepared statement behind.

use std::sync::Mutex;

use async_trait::async_trait;
use sea_orm::sea_query::{ArrayType, Value, Values};
use sea_orm::sqlx::pool::PoolConnection;
use sea_orm::sqlx::postgres::{PgQueryResult, PgTypeInfo};
use sea_orm::sqlx::{self, AssertSqlSafe, Executor, Postgres, SqlSafeStr, Type};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, ExecResult, QueryResult, Statement};

/// A connection that prepares the statements sent to it instead of running them, and
/// answers no rows. Statements sent unprepared (session settings) are skipped.
pub(super) struct Prepare {
    conn: tokio::sync::Mutex<PoolConnection<Postgres>>,
    /// The text of each statement prepared, in order.
    prepared: Mutex<Vec<String>>,
}

impl Prepare {
    pub(super) fn new(conn: PoolConnection<Postgres>) -> Self {
        Prepare { conn: tokio::sync::Mutex::new(conn), prepared: Mutex::new(Vec::new()) }
    }

    /// Parses `stmt` on the connection, with its values' types, into the statement cache. A
    /// statement with a value of a type this does not map is left to be prepared at first use.
    async fn prepare(&self, stmt: &Statement) -> Result<(), DbErr> {
        let Some(types) = parameter_types(stmt.values.as_ref()) else { return Ok(()) };
        let mut conn = self.conn.lock().await;
        conn.prepare_with(AssertSqlSafe(stmt.sql.clone()).into_sql_str(), &types).await.map_err(sqlx_error)?;
        self.prepared.lock().unwrap_or_else(|e| e.into_inner()).push(stmt.sql.clone());
        Ok(())
    }

    /// The texts prepared so far, taken.
    pub(super) fn take_prepared(&self) -> Vec<String> {
        std::mem::take(&mut *self.prepared.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Makes and keeps the generic plan of prepared statement `sql` under `settings` (those of
    /// every claim, `plan_cache_mode = force_generic_plan` among them), in a transaction rolled
    /// back: `EXPLAIN EXECUTE` plans the prepared statement itself and caches its plan,
    /// without running it.
    pub(super) async fn plan_generic(&self, sql: &str, settings: &str) -> Result<(), DbErr> {
        let mut conn = self.conn.lock().await;
        conn.execute(sqlx::raw_sql(AssertSqlSafe(format!("BEGIN; {settings}")))).await.map_err(sqlx_error)?;
        let found: Result<(String, i32), _> =
            sqlx::query_as("SELECT name, COALESCE(array_length(parameter_types, 1), 0) FROM pg_prepared_statements WHERE statement = $1")
                .bind(sql)
                .fetch_one(&mut **conn)
                .await;
        let planned = match found {
            Ok((name, parameters)) => {
                let nulls = vec!["NULL"; parameters.max(0) as usize].join(", ");
                let arguments = if nulls.is_empty() { String::new() } else { format!("({nulls})") };
                conn.execute(sqlx::raw_sql(AssertSqlSafe(format!("EXPLAIN EXECUTE \"{name}\"{arguments}")))).await.map(drop)
            }
            Err(e) => Err(e),
        };
        let rolled_back = conn.execute(sqlx::raw_sql("ROLLBACK")).await;
        // The planning's error is the one returned; the rollback's too when it planned.
        if let Err(e) = planned {
            if let Err(rollback) = &rolled_back {
                tracing::warn!(error = %rollback, "could not roll back after a failed planning of a prepared statement");
            }
            return Err(sqlx_error(e));
        }
        rolled_back.map(drop).map_err(sqlx_error)
    }
}

/// The PostgreSQL types sqlx sends for `values` (as `sea-query-sqlx` binds them), or `None`
/// when one is of a type not listed here.
fn parameter_types(values: Option<&Values>) -> Option<Vec<PgTypeInfo>> {
    let Some(values) = values else { return Some(Vec::new()) };
    values
        .0
        .iter()
        .map(|value| match value {
            Value::Bool(_) => Some(<bool as Type<Postgres>>::type_info()),
            Value::Int(_) => Some(<i32 as Type<Postgres>>::type_info()),
            Value::BigInt(_) => Some(<i64 as Type<Postgres>>::type_info()),
            Value::Double(_) => Some(<f64 as Type<Postgres>>::type_info()),
            Value::String(_) => Some(<&str as Type<Postgres>>::type_info()),
            Value::ChronoDateTimeUtc(_) => Some(<chrono::DateTime<chrono::Utc> as Type<Postgres>>::type_info()),
            Value::Array(ArrayType::Int, _) => Some(<Vec<i32> as Type<Postgres>>::type_info()),
            Value::Array(ArrayType::BigInt, _) => Some(<Vec<i64> as Type<Postgres>>::type_info()),
            Value::Array(ArrayType::String, _) => Some(<Vec<String> as Type<Postgres>>::type_info()),
            _ => None,
        })
        .collect()
}

/// `e` as sea-orm reports a connection error.
pub(super) fn sqlx_error(e: sqlx::Error) -> DbErr {
    DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e.into()))
}

#[async_trait]
impl ConnectionTrait for Prepare {
    fn get_database_backend(&self) -> DbBackend {
        DbBackend::Postgres
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.prepare(&stmt).await?;
        Ok(ExecResult::from(PgQueryResult::default()))
    }

    async fn execute_unprepared(&self, _sql: &str) -> Result<ExecResult, DbErr> {
        Ok(ExecResult::from(PgQueryResult::default()))
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.prepare(&stmt).await.map(|_| None)
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.prepare(&stmt).await.map(|_| Vec::new())
    }
}
