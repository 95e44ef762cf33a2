//! Attribute macros of the `cog` crate; use them through `cog::{cog, cog_error_handler}`.
use proc_macro::TokenStream;

/// Registers a function as a cog.
#[proc_macro_attribute]
pub fn cog(_attr: TokenStream, item: TokenStream) -> TokenStream {
    item
}

/// Registers a function as an error handler.
#[proc_macro_attribute]
pub fn cog_error_handler(_attr: TokenStream, item: TokenStream) -> TokenStream {
    item
}
