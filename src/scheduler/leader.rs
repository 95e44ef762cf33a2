//! One scheduler at a time: a lease row in `cog_lock`, renewed by its holder and taken over
//! by another runtime once it expires.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DbErr};

use crate::db::{execute, now, query_one};

/// The lock's name in `cog_lock`.
const NAME: &str = "scheduler";

/// How long leadership lasts without renewal; a dead leader is replaced within this time.
pub(crate) const LEADER_LEASE: Duration = Duration::from_secs(10);

/// Takes or renews the scheduler lease for `holder`; true when `holder` is the leader.
pub(crate) async fn acquire(conn: &impl ConnectionTrait, holder: &str) -> Result<bool, DbErr> {
    let now = now();
    let row = query_one(
        conn,
        "INSERT INTO cog_lock (name, holder, lease_until) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, lease_until = excluded.lease_until \
         WHERE cog_lock.holder = excluded.holder OR cog_lock.lease_until < $4 RETURNING holder",
        [NAME.into(), holder.into(), (now + LEADER_LEASE).into(), now.into()],
    )
    .await?;
    Ok(row.is_some())
}

/// Gives the lease up (on shutdown), so another runtime takes over at once.
pub(crate) async fn release(conn: &impl ConnectionTrait, holder: &str) -> Result<(), DbErr> {
    execute(conn, "DELETE FROM cog_lock WHERE name = $1 AND holder = $2", [NAME.into(), holder.into()]).await.map(|_| ())
}
