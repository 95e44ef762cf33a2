//! Recording which cogs and error handlers the running binary has (`cog_cog`, `cog_error_handler`).

use sea_orm::{DatabaseConnection, DbErr, TransactionTrait};

use crate::db::{execute, now};
use crate::registry;

/// Upserts a row for every registered cog and error handler with `present = true` and marks
/// the others `present = false`; rows are never deleted (tasks keep pointing at them).
pub(crate) async fn sync_registry(db: &DatabaseConnection) -> Result<(), DbErr> {
    let txn = db.begin().await?;
    crate::db::lock_definitions(&txn).await?;
    let now = now();
    for (table, entries) in [
        ("cog_cog", registry::cogs().iter().map(|c| (c.name, c.module)).collect::<Vec<_>>()),
        ("cog_error_handler", registry::error_handlers().iter().map(|h| (h.name, h.module)).collect()),
    ] {
        execute(&txn, &format!("UPDATE {table} SET present = $1, updated_at = $2 WHERE present = $3"), [false.into(), now.into(), true.into()]).await?;
        for (name, module) in entries {
            execute(
                &txn,
                &format!(
                    "INSERT INTO {table} (name, module, present, updated_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (name) DO UPDATE SET module = excluded.module, present = excluded.present, updated_at = excluded.updated_at"
                ),
                [name.into(), module.into(), true.into(), now.into()],
            )
            .await?;
        }
    }
    txn.commit().await
}
