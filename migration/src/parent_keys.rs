//! [`ParentKeys`]: a migration that drops a table's foreign-key constraints to its parents on
//! PostgreSQL and MariaDB (`up`), or adds them back (`down`). SQLite keeps them: there a check
//! is an index lookup that locks nothing, and dropping a constraint means rebuilding the
//! table. MySQL 8 never had them: it ignores the inline `REFERENCES` of migration 000001
//! (MariaDB 10.5+ creates them), so there is nothing to drop and `down` adds nothing there.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, Statement};

/// A migration dropping `table`'s foreign keys to `parents` (column, parent table) on the
/// server backends.
pub(crate) struct ParentKeys {
    /// The migration's name, as recorded in `cog_migrations`.
    pub(crate) name: &'static str,
    /// The child table.
    pub(crate) table: &'static str,
    /// Each foreign key: its column and the parent table it references (by `id`).
    pub(crate) parents: &'static [(&'static str, &'static str)],
}

impl ParentKeys {
    /// The table's foreign-key constraints to its parents' tables, as (constraint name, parent
    /// table): PostgreSQL named them `<table>_<column>_fkey`, MariaDB `<table>_ibfk_<n>`, so
    /// they are read, not assumed. None on SQLite (never dropped).
    async fn constraints(&self, db: &impl ConnectionTrait) -> Result<Vec<(String, String)>, DbErr> {
        let backend = db.get_database_backend();
        let table = self.table;
        let sql = match backend {
            DbBackend::Postgres => {
                let parents = self.parents.iter().map(|(_, p)| format!("'{p}'::regclass")).collect::<Vec<_>>().join(", ");
                format!(
                    "SELECT c.conname::text, c.confrelid::regclass::text FROM pg_constraint c WHERE c.contype = 'f' \
                     AND c.conrelid = '{table}'::regclass AND c.confrelid IN ({parents}) ORDER BY 1"
                )
            }
            DbBackend::MySql => {
                let parents = self.parents.iter().map(|(_, p)| format!("'{p}'")).collect::<Vec<_>>().join(", ");
                format!(
                    "SELECT CAST(constraint_name AS CHAR), CAST(referenced_table_name AS CHAR) FROM information_schema.referential_constraints \
                     WHERE constraint_schema = DATABASE() AND table_name = '{table}' AND referenced_table_name IN ({parents}) ORDER BY 1"
                )
            }
            _ => return Ok(Vec::new()),
        };
        let rows = db.query_all_raw(Statement::from_string(backend, sql)).await?;
        rows.iter().map(|r| Ok((r.try_get_by_index::<String>(0)?, r.try_get_by_index::<String>(1)?))).collect()
    }
}

/// Whether a MySQL-protocol server is MariaDB, which created migration 000001's inline
/// foreign keys (MySQL 8 ignored them).
async fn is_mariadb(db: &impl ConnectionTrait) -> Result<bool, DbErr> {
    let row = db.query_one_raw(Statement::from_string(DbBackend::MySql, "SELECT VERSION()")).await?;
    Ok(row.map(|r| r.try_get_by_index::<String>(0)).transpose()?.is_some_and(|v| v.to_ascii_lowercase().contains("mariadb")))
}

impl MigrationName for ParentKeys {
    fn name(&self) -> &str {
        self.name
    }
}

#[async_trait::async_trait]
impl MigrationTrait for ParentKeys {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let drop = match db.get_database_backend() {
            DbBackend::Postgres => "DROP CONSTRAINT",
            DbBackend::MySql => "DROP FOREIGN KEY",
            _ => return Ok(()),
        };
        for (name, _) in self.constraints(db).await? {
            db.execute_unprepared(&format!("ALTER TABLE {} {drop} {name}", self.table)).await?;
        }
        Ok(())
    }

    /// Adds back, under PostgreSQL's names, each constraint that is missing (all of them, or
    /// the one an interrupted `up` left: MySQL's DDL is not transactional), on PostgreSQL and
    /// MariaDB. Every row is checked (on PostgreSQL after the constraint is in place, so
    /// writes go on meanwhile); a row that lost a parent fails it, naming the constraint.
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let backend = db.get_database_backend();
        let restore = match backend {
            DbBackend::Postgres => true,
            DbBackend::MySql => is_mariadb(db).await?,
            _ => false,
        };
        if !restore {
            return Ok(());
        }
        let table = self.table;
        let present: Vec<String> = self.constraints(db).await?.into_iter().map(|(_, parent)| parent).collect();
        for (column, parent) in self.parents.iter().filter(|(_, parent)| !present.iter().any(|p| p == parent)) {
            let name = format!("{table}_{column}_fkey");
            let add = format!("ALTER TABLE {table} ADD CONSTRAINT {name} FOREIGN KEY ({column}) REFERENCES {parent} (id)");
            if backend == DbBackend::Postgres {
                db.execute_unprepared(&format!("{add} NOT VALID")).await?;
                db.execute_unprepared(&format!("ALTER TABLE {table} VALIDATE CONSTRAINT {name}")).await?;
            } else {
                db.execute_unprepared(&add).await?;
            }
        }
        Ok(())
    }
}
