//! [`Overlap`]: what a launch does while a run of the same pipeline is active.

use sea_orm::entity::prelude::*;

/// What a launch (manual, scheduled or a retry) does while a run of the same pipeline is
/// still `queued` or `running` — Temporal's schedule overlap policies. Stored in
/// `cog_pipeline.overlap` as lowercase text.
///
/// ```
/// use cog::{Overlap, PipelineSpec};
/// let spec = PipelineSpec::new("sync").overlap(Overlap::BufferOne);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, serde::Serialize, serde::Deserialize)]
#[sea_orm(rs_type = "String", db_type = "Text")]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// The launch is refused (`Error::LaunchRefused` with `LaunchRefusal::Overlap`); so is a
    /// launch after a failed last run unless `Config::overlap_failed`. The default, and what
    /// `prevent_overlap(true)` sets.
    #[default]
    #[sea_orm(string_value = "skip")]
    Skip,
    /// The launch creates one `queued` run that starts when the active one ends (in the same
    /// transaction that ends it). A launch while a run is already buffered is refused
    /// (`LaunchRefusal::AlreadyBuffered`). The failed-last-run rule applies as for `Skip`.
    #[sea_orm(string_value = "buffer_one")]
    BufferOne,
    /// The active run is canceled (as by `rt.cancel`) and the new one starts at once. The
    /// failed-last-run rule applies as for `Skip`.
    #[sea_orm(string_value = "cancel_running")]
    CancelRunning,
    /// Runs overlap freely; no check at all. What `prevent_overlap(false)` sets.
    #[sea_orm(string_value = "allow")]
    Allow,
}

impl Overlap {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Skip => "skip",
            Self::BufferOne => "buffer_one",
            Self::CancelRunning => "cancel_running",
            Self::Allow => "allow",
        }
    }

    /// Whether runs are kept from overlapping (every policy but `Allow`): the value written to
    /// `cog_pipeline.prevent_overlap`.
    pub fn prevents_overlap(self) -> bool {
        self != Self::Allow
    }
}

impl std::fmt::Display for Overlap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
