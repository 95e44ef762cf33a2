//! Entity of table `cog_pipeline`.

use sea_orm::entity::prelude::*;

/// A pipeline definition.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "cog_pipeline")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Unique name.
    #[sea_orm(unique)]
    pub name: String,
    /// Disabled ones are skipped.
    pub enabled: bool,
    /// Cron expression, or none.
    pub schedule: Option<String>,
    /// IANA time zone of the schedule.
    pub timezone: String,
    /// Refuse a launch while a run is going (`overlap` is not `allow`).
    pub prevent_overlap: bool,
    /// What a launch does while a run is going.
    pub overlap: crate::spec::Overlap,
    /// The last schedule tick handled (fired, refused or skipped); ticks up to it are never fired again.
    pub last_tick: Option<DateTimeUtc>,
    /// Schedule ticks refused by the overlap rules.
    pub refused_ticks: i64,
    /// Missed schedule ticks not fired (`MissedTicks::Skip`, or older ticks behind a catch-up).
    pub skipped_ticks: i64,
    /// When it was created (UTC).
    pub created_at: DateTimeUtc,
    /// Last sync.
    pub updated_at: DateTimeUtc,
}

/// No relations are declared; join on the `_id` columns.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
