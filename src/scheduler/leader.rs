//! One scheduler at a time: a lease row in `cog_lock`, renewed by its holder and taken over
//! by another runtime once it expires.

use std::time::Duration;

use sea_orm::{DatabaseConnection, DbErr};

use crate::store::schedules;

/// How long leadership lasts without renewal; a dead leader is replaced within this time.
pub(crate) const LEADER_LEASE: Duration = Duration::from_secs(10);

/// Takes or renews the scheduler lease for `holder`; true when `holder` is the leader.
pub(crate) async fn acquire(db: &DatabaseConnection, holder: &str) -> Result<bool, DbErr> {
    schedules::acquire_leadership(db, holder, LEADER_LEASE).await
}

/// Gives the lease up (on shutdown), so another runtime takes over at once.
pub(crate) async fn release(db: &DatabaseConnection, holder: &str) -> Result<(), DbErr> {
    schedules::release_leadership(db, holder).await.map(|_| ())
}
