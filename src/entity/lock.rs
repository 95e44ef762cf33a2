//! Entity of table `cog_lock`.

use sea_orm::entity::prelude::*;

/// A named lease: the scheduler's leader holds `scheduler` while it renews it.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "cog_lock")]
pub struct Model {
    /// Lock name.
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    /// The runtime holding it (its worker name).
    pub holder: String,
    /// When the lease expires unless renewed.
    pub lease_until: DateTimeUtc,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
