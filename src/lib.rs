#![doc = include_str!("../README.md")]

pub mod registry;

mod context;
mod error;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use cog_macros::{cog, cog_error_handler};
pub use context::TaskContext;
pub use error::{DefinitionError, Error, LaunchRefusal, Result, TaskError, TaskErrorKind, TaskRunInfo};
