//! The status and trigger values stored in run tables (lowercase text).

use sea_orm::entity::prelude::*;

/// Status of a pipeline run, stage run or task run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, serde::Serialize, serde::Deserialize)]
#[sea_orm(rs_type = "String", db_type = "Text")]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Created, waiting to run.
    #[sea_orm(string_value = "queued")]
    Queued,
    /// Running.
    #[sea_orm(string_value = "running")]
    Running,
    /// Ended well (a task run: its cog returned Ok).
    #[sea_orm(string_value = "completed")]
    Completed,
    /// Ended in failure.
    #[sea_orm(string_value = "failed")]
    Failed,
    /// Canceled before it could end.
    #[sea_orm(string_value = "canceled")]
    Canceled,
}

impl RunStatus {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
        }
    }

    /// Parses the stored text.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            "canceled" => Self::Canceled,
            _ => return None,
        })
    }

    /// Whether the status is final (completed, failed or canceled).
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Canceled)
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What launched a pipeline run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, serde::Serialize, serde::Deserialize)]
#[sea_orm(rs_type = "String", db_type = "Text")]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// `launch` / `launch_with`.
    #[sea_orm(string_value = "manual")]
    Manual,
    /// The scheduler, at a cron tick.
    #[sea_orm(string_value = "schedule")]
    Schedule,
    /// `retry`: a failed or canceled run tried again from where it stopped.
    #[sea_orm(string_value = "retry")]
    Retry,
}

impl Trigger {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Schedule => "schedule",
            Self::Retry => "retry",
        }
    }
}
