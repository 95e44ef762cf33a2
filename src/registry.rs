//! The cogs and error handlers compiled into this binary.
//!
//! `#[cog]` and `#[cog_error_handler]` add an entry to a `linkme` distributed
//! slice at link time; this module reads those slices.
//!
//! ```
//! for c in cog::registry::cogs() {
//!     println!("{} in {}", c.name, c.module);
//!     for p in c.parameters {
//!         println!("  {}: {}{}", p.name, p.type_name, if p.optional { " (optional)" } else { "" });
//!     }
//! }
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::{Map, Value};

use crate::context::TaskContext;
use crate::error::{Error, TaskError, TaskRunInfo};

/// A function registered with `#[cog]`.
#[derive(Debug)]
pub struct CogDef {
    /// The name tasks use to call it (the function name unless `#[cog(name = "..")]`).
    pub name: &'static str,
    /// The module that defines it (`module_path!()`).
    pub module: &'static str,
    /// The names of its parameters, in order, without the context parameter.
    pub params: &'static [&'static str],
    /// Its parameters, in order, without the context parameter: name, type and whether it may be left out.
    pub parameters: &'static [Parameter],
    #[doc(hidden)]
    pub invoke: fn(CogArgs, TaskContext) -> BoxFuture<'static, CogOutcome>,
}

/// One parameter of a cog: a key of the task's JSON arguments.
pub struct Parameter {
    /// The parameter's name: the JSON key its value is taken from.
    pub name: &'static str,
    /// Its Rust type as written in the signature, such as `i64` or `Option<Vec<String>>`.
    pub type_name: &'static str,
    /// Whether it is declared `Option<T>`, so it may be left out of the arguments.
    pub optional: bool,
    #[doc(hidden)]
    pub checker: fn(&Value) -> Result<(), String>,
}

impl Parameter {
    /// Whether `value` deserializes into the parameter's type; `Err` is serde's message.
    /// A parameter of type `serde_json::Value` accepts anything.
    pub fn check(&self, value: &Value) -> Result<(), String> {
        (self.checker)(value)
    }

    /// Whether a task fails without this argument: not `Option<T>`, and `null` (what a left-out
    /// argument is read as) does not deserialize into its type, as it does for `serde_json::Value`
    /// or `()`.
    pub fn required(&self) -> bool {
        !self.optional && self.check(&Value::Null).is_err()
    }
}

impl std::fmt::Debug for Parameter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parameter").field("name", &self.name).field("type_name", &self.type_name).field("optional", &self.optional).finish_non_exhaustive()
    }
}

/// A function registered with `#[cog_error_handler]`.
#[derive(Debug)]
pub struct ErrorHandlerDef {
    /// The name tasks use to refer to it.
    pub name: &'static str,
    /// The module that defines it.
    pub module: &'static str,
    #[doc(hidden)]
    pub invoke: HandlerInvoke,
}

/// How a registered error handler is called: with the error and its task run; `Err` is
/// the message of a handler that failed.
#[doc(hidden)]
pub type HandlerInvoke = fn(Arc<TaskError>, Arc<TaskRunInfo>) -> BoxFuture<'static, Result<(), String>>;

#[doc(hidden)]
#[linkme::distributed_slice]
pub static COGS: [CogDef];

#[doc(hidden)]
#[linkme::distributed_slice]
pub static ERROR_HANDLERS: [ErrorHandlerDef];

/// Every cog compiled into this binary, sorted by name.
pub fn cogs() -> Vec<&'static CogDef> {
    let mut all: Vec<&'static CogDef> = COGS.iter().collect();
    all.sort_by_key(|c| (c.name, c.module));
    all
}

/// The names of the cogs compiled into this binary that take parameters (the only ones whose
/// tasks a launch's argument check can refuse), sorted.
pub(crate) fn cogs_with_parameters() -> Vec<&'static str> {
    cogs().into_iter().filter(|c| !c.parameters.is_empty()).map(|c| c.name).collect()
}

/// Every error handler compiled into this binary, sorted by name.
pub fn error_handlers() -> Vec<&'static ErrorHandlerDef> {
    let mut all: Vec<&'static ErrorHandlerDef> = ERROR_HANDLERS.iter().collect();
    all.sort_by_key(|h| (h.name, h.module));
    all
}

/// The cog registered under `name`, if this binary has one.
pub fn cog(name: &str) -> Option<&'static CogDef> {
    COGS.iter().find(|c| c.name == name)
}

/// The error handler registered under `name`, if this binary has one.
pub fn error_handler(name: &str) -> Option<&'static ErrorHandlerDef> {
    ERROR_HANDLERS.iter().find(|h| h.name == name)
}

/// Fails when two registered functions of one kind share a name, naming both modules.
pub(crate) fn check_unique() -> Result<(), Error> {
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for c in cogs() {
        if let Some(first) = seen.insert(c.name, c.module) {
            return Err(Error::DuplicateCog { name: c.name.to_owned(), first_module: first.to_owned(), second_module: c.module.to_owned() });
        }
    }
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for h in error_handlers() {
        if let Some(first) = seen.insert(h.name, h.module) {
            return Err(Error::DuplicateErrorHandler { name: h.name.to_owned(), first_module: first.to_owned(), second_module: h.module.to_owned() });
        }
    }
    Ok(())
}

/// Why a cog call did not produce a value.
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq)]
pub enum CogFailure {
    /// The task's arguments did not fit the cog's parameters.
    Arguments(String),
    /// The cog returned `Err(e)`.
    Returned {
        /// `std::any::type_name` of the error type.
        error_type: String,
        /// `e.to_string()`.
        message: String,
    },
    /// The value returned could not be turned into JSON.
    Serialize(String),
}

/// What a cog call ends with: its result as JSON, or why it failed.
#[doc(hidden)]
pub type CogOutcome = Result<Value, CogFailure>;

/// The JSON object a cog takes its parameters from, consumed parameter by parameter.
#[doc(hidden)]
#[derive(Debug, Default)]
pub struct CogArgs {
    map: Map<String, Value>,
}

impl CogArgs {
    /// Wraps the merged task and launch arguments.
    pub fn new(map: Map<String, Value>) -> Self {
        Self { map }
    }

    /// Takes parameter `param` of cog `cog`, deserialized as `T`.
    ///
    /// An absent key is read as JSON `null`, so `Option<T>` parameters may be left out.
    pub fn take<T: serde::de::DeserializeOwned>(&mut self, cog: &str, param: &str) -> Result<T, CogFailure> {
        match self.map.remove(param) {
            Some(v) => serde_json::from_value(v).map_err(|e| CogFailure::Arguments(format!("cog `{cog}`: argument `{param}` has the wrong type: {e}"))),
            None => serde_json::from_value(Value::Null).map_err(|_| CogFailure::Arguments(format!("cog `{cog}`: missing argument `{param}`"))),
        }
    }

    /// Fails when keys are left that no parameter took.
    pub fn finish(self, cog: &str) -> Result<(), CogFailure> {
        if self.map.is_empty() {
            return Ok(());
        }
        let mut keys: Vec<&String> = self.map.keys().collect();
        keys.sort();
        let keys: Vec<String> = keys.into_iter().map(|k| format!("`{k}`")).collect();
        Err(CogFailure::Arguments(format!("cog `{cog}`: unknown argument {}", keys.join(", "))))
    }
}
