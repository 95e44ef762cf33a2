//! Attribute macros of the `cog` crate; use them through `cog::{cog, cog_error_handler}`.

use proc_macro::TokenStream;

mod cog;
mod handler;
mod signature;

/// Registers a function as a cog: a unit of work that tasks call by name.
///
/// The function stays as written and can still be called directly; the attribute adds an entry to
/// `cog::registry` that the runtime uses to run it.
///
/// ```ignore
/// use cog::cog;
///
/// #[cog]
/// async fn resize(path: String, width: u32, height: Option<u32>) -> Result<String, std::io::Error> {
///     // ...
/// #   Ok(path)
/// }
///
/// #[cog(name = "send_report")]
/// fn report(to: Vec<String>, ctx: cog::TaskContext) -> usize {
///     to.len() + ctx.attempt() as usize
/// }
/// ```
///
/// - **Functions.** `async fn` or plain `fn`; a plain `fn` runs on tokio's blocking pool, so it may block.
/// - **Parameters.** Each is taken by its name from the task's JSON arguments and deserialized, so it
///   must be an owned type that implements `serde::Deserialize` (`String`, not `&str`). An `Option<T>`
///   parameter may be left out of the arguments. Arguments no parameter takes are an error. A
///   parameter of type `cog::TaskContext` gets the task run's context instead and is not an argument.
///   Each parameter's name, type and optionality are recorded (`cog::registry::CogDef::parameters`)
///   with a checker, so `define` and launches refuse arguments that do not fit before anything runs.
/// - **Return type.** Nothing or `()` gives the result `null`; a `Result<T, E>` (any type named
///   `Result`, such as `std::io::Result<T>` or `anyhow::Result<T>`) gives `T` as JSON or fails the task
///   with `E`'s `Display` text; any other type that implements `serde::Serialize` gives that value as JSON.
/// - **Name.** The function's name, unless `#[cog(name = "..")]` gives another. Names must be
///   unique in the binary; the runtime refuses to start otherwise.
///
/// Methods (`self`), generic functions, `impl Trait` or borrowed parameters, `unsafe fn` and
/// parameters that are patterns rather than names are compile errors.
#[proc_macro_attribute]
pub fn cog(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item = proc_macro2::TokenStream::from(item);
    signature::emit(item.clone(), cog::expand(attr.into(), item)).into()
}

/// Registers a function as an error handler, which tasks name to be told when they fail.
///
/// ```ignore
/// use cog::{cog_error_handler, TaskError, TaskRunInfo};
///
/// #[cog_error_handler]
/// fn log_failure(error: &TaskError) {
///     eprintln!("task failed: {error}");
/// }
///
/// #[cog_error_handler(name = "page_on_call")]
/// async fn page(error: &TaskError, task_run: &TaskRunInfo) -> Result<(), std::io::Error> {
///     // ...
/// #   Ok(())
/// }
/// ```
///
/// - **Parameters.** `(error: &TaskError)` or `(error: &TaskError, task_run: &TaskRunInfo)`.
/// - **Functions.** `async fn` or plain `fn`; a plain `fn` runs on tokio's blocking pool.
/// - **Return type.** `()`, or a `Result<_, E>` with `E: Display`, whose `Err` is recorded as the
///   handler's failure.
/// - **Name.** The function's name, unless `#[cog_error_handler(name = "..")]` gives another.
#[proc_macro_attribute]
pub fn cog_error_handler(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item = proc_macro2::TokenStream::from(item);
    signature::emit(item.clone(), handler::expand(attr.into(), item)).into()
}
