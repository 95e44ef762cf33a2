//! Reading the run history and the state of workers and queues: what the admin shows, through
//! public `CogRuntime` methods (listing runs with filters and keyset paging, one run in detail,
//! errors, cogs, queues, throughput, next schedule ticks; the methods live with the runtime).
//!
//! Reading never writes: a runtime that only reads (a dashboard) leaves no trace.
//!
//! ```no_run
//! # async fn f(rt: cog::CogRuntime) -> Result<(), cog::Error> {
//! use cog::history::RunFilter;
//! use cog::RunStatus;
//! let failed = rt.runs(&RunFilter::new().status(RunStatus::Failed).limit(20)).await?;
//! if let Some(oldest) = failed.last() {
//!     let next_page = rt.runs(&RunFilter::new().status(RunStatus::Failed).before(oldest.id).limit(20)).await?;
//! #   let _ = next_page;
//! }
//! # Ok(()) }
//! ```

pub(crate) mod catalog;
pub(crate) mod detail;
pub(crate) mod errors;
pub(crate) mod filter;
pub(crate) mod health;
pub(crate) mod pipelines;
pub(crate) mod runs;
pub(crate) mod throughput;
pub(crate) mod types;

pub use filter::{ErrorFilter, RunFilter};
pub use types::{
    CogHealth, ErrorRow, MinuteCount, ParameterInfo, PipelineDetail, PipelineSummary, QueueHealth, RunDetail, RunSummary, StageInfo, StageRunRow, TaskInfo,
    TaskRef, TaskRunRow, WorkerInfo,
};

/// The most rows one listing returns.
pub const MAX_LIMIT: u64 = 500;

/// Reads stored JSON text; text that is not JSON (written by hand) is kept as a string.
fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_owned()))
}
