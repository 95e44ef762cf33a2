//! Telling database errors apart: transient ones (connection lost, pool exhausted,
//! serialization failure, deadlock, lock timeout, database busy) pass if the statement is tried
//! again; anything else (a constraint, a trigger, a value the column refuses) would fail again.

use sea_orm::sqlx;
use sea_orm::{DbErr, RuntimeErr};

/// Whether `e` may pass if the same statement is tried again later.
pub(crate) fn is_transient(e: &DbErr) -> bool {
    match e {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => sqlx_transient(e),
        _ => false,
    }
}

/// Whether the database chose `e`'s transaction as a deadlock or serialization victim and
/// rolled it back whole: running the same transaction again is safe (nothing of it was
/// written) and may pass. Unlike a lost connection, it cannot hide a commit that happened.
pub(crate) fn is_rolled_back(e: &DbErr) -> bool {
    let (DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e))) = e else { return false };
    let sqlx::Error::Database(db) = e.as_ref() else { return false };
    if let Some(mysql) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        return mysql.number() == 1213;
    }
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        return false;
    }
    matches!(db.code().as_deref(), Some("40001" | "40P01"))
}

fn sqlx_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => {
            if let Some(mysql) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
                // Deadlock, lock wait timeout, too many connections, server gone away / lost,
                // query interrupted (server shutting down), read-only during failover, and
                // MariaDB's "failed to read auto-increment value" (seen under deadlock storms).
                return matches!(mysql.number(), 1213 | 1205 | 1040 | 2006 | 2013 | 1053 | 1290 | 1927 | 1467);
            }
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                // SQLITE_BUSY and SQLITE_LOCKED, with their extended codes.
                return code.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6));
            }
            // PostgreSQL SQLSTATE: serialization failure, deadlock, connection exceptions,
            // too many connections, server shutting down, lock not available, and a session
            // the server ended for being idle, in a transaction or out of one: a new session
            // may go on (a transaction carried over a commit, see `store::carried`, is idle in
            // a transaction until the next write takes it). As after a lost connection, a
            // commit sent right as the timeout fired may have gone through: the retry is
            // fenced (it finds its outcomes written). Not PostgreSQL 17's `transaction_timeout`
            // (25P04): a write that outlasts it would outlast it again, and is written in
            // smaller parts instead.
            matches!(code.as_str(), "40001" | "40P01" | "53300" | "57P01" | "57P02" | "57P03" | "55P03" | "25P03" | "57P05") || code.starts_with("08")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_trouble_is_transient_and_a_bad_value_is_not() {
        assert!(is_transient(&DbErr::Conn(RuntimeErr::Internal("connection reset".into()))));
        let io = sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset"));
        assert!(is_transient(&DbErr::Exec(RuntimeErr::SqlxError(std::sync::Arc::new(io)))));
        assert!(!is_transient(&DbErr::Custom("no such column".into())));
        assert!(!is_transient(&DbErr::Exec(RuntimeErr::SqlxError(std::sync::Arc::new(sqlx::Error::RowNotFound)))));
    }
}
