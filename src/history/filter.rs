//! Filters of the run and error listings.

use chrono::{DateTime, Utc};

use crate::entity::status::{RunStatus, Trigger};

/// Which pipeline runs [`CogRuntime::runs`](crate::CogRuntime::runs) returns.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct RunFilter {
    /// Only runs of this pipeline.
    pub pipeline: Option<String>,
    /// Only runs with this status.
    pub status: Option<RunStatus>,
    /// Only runs launched this way.
    pub trigger: Option<Trigger>,
    /// Only runs created at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Only runs created before this time.
    pub to: Option<DateTime<Utc>>,
    /// Keyset cursor: only runs with a smaller id (the last id of the previous page).
    pub before: Option<i64>,
    /// At most this many (default 50, at most [`MAX_LIMIT`](super::MAX_LIMIT)).
    pub limit: Option<u64>,
}

impl RunFilter {
    /// Every run, 50 per page.
    pub fn new() -> Self {
        Self::default()
    }
    /// Only runs of pipeline `name`.
    pub fn pipeline(mut self, name: impl Into<String>) -> Self {
        self.pipeline = Some(name.into());
        self
    }
    /// Only runs with `status`.
    pub fn status(mut self, status: RunStatus) -> Self {
        self.status = Some(status);
        self
    }
    /// Only runs launched by `trigger`.
    pub fn trigger(mut self, trigger: Trigger) -> Self {
        self.trigger = Some(trigger);
        self
    }
    /// Only runs created at or after `from`.
    pub fn from(mut self, from: DateTime<Utc>) -> Self {
        self.from = Some(from);
        self
    }
    /// Only runs created before `to`.
    pub fn to(mut self, to: DateTime<Utc>) -> Self {
        self.to = Some(to);
        self
    }
    /// Only runs with an id below `id` (the next page after a page ending at `id`).
    pub fn before(mut self, id: i64) -> Self {
        self.before = Some(id);
        self
    }
    /// At most `n` runs (capped at [`MAX_LIMIT`](super::MAX_LIMIT)).
    pub fn limit(mut self, n: u64) -> Self {
        self.limit = Some(n);
        self
    }
    /// The page size in force.
    pub fn page_size(&self) -> u64 {
        self.limit.unwrap_or(50).clamp(1, super::MAX_LIMIT)
    }
}

/// Which errors [`CogRuntime::errors`](crate::CogRuntime::errors) returns.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct ErrorFilter {
    /// Only errors of task runs of this pipeline.
    pub pipeline: Option<String>,
    /// Only errors of task runs calling this cog.
    pub cog: Option<String>,
    /// Only errors of this type (`cog_error.error_type`).
    pub error_type: Option<String>,
    /// Only errors of this pipeline run.
    pub run: Option<i64>,
    /// Keyset cursor: only errors with a smaller id.
    pub before: Option<i64>,
    /// At most this many (default 50, at most [`MAX_LIMIT`](super::MAX_LIMIT)).
    pub limit: Option<u64>,
}

impl ErrorFilter {
    /// Every error, 50 per page.
    pub fn new() -> Self {
        Self::default()
    }
    /// Only errors of pipeline `name`.
    pub fn pipeline(mut self, name: impl Into<String>) -> Self {
        self.pipeline = Some(name.into());
        self
    }
    /// Only errors of cog `name`.
    pub fn cog(mut self, name: impl Into<String>) -> Self {
        self.cog = Some(name.into());
        self
    }
    /// Only errors of type `error_type`.
    pub fn error_type(mut self, error_type: impl Into<String>) -> Self {
        self.error_type = Some(error_type.into());
        self
    }
    /// Only errors of pipeline run `id`.
    pub fn run(mut self, id: i64) -> Self {
        self.run = Some(id);
        self
    }
    /// Only errors with an id below `id`.
    pub fn before(mut self, id: i64) -> Self {
        self.before = Some(id);
        self
    }
    /// At most `n` errors (capped at [`MAX_LIMIT`](super::MAX_LIMIT)).
    pub fn limit(mut self, n: u64) -> Self {
        self.limit = Some(n);
        self
    }
    /// The page size in force.
    pub fn page_size(&self) -> u64 {
        self.limit.unwrap_or(50).clamp(1, super::MAX_LIMIT)
    }
}
