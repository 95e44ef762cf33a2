// Async and plain cogs with owned parameters, `Option` parameters and the context parameter.
use cog::{TaskContext, cog};
use serde::Deserialize;

#[derive(Deserialize)]
struct Size {
    width: u32,
    height: u32,
}

#[cog]
async fn async_cog(path: String, size: Size, quality: Option<u8>) -> u64 {
    u64::from(size.width * size.height) + path.len() as u64 + u64::from(quality.unwrap_or(0))
}

#[cog]
fn sync_cog(mut items: Vec<String>, limit: Option<usize>) -> Vec<String> {
    items.truncate(limit.unwrap_or(items.len()));
    items
}

#[cog]
async fn with_context(ctx: TaskContext, id: i64) -> i64 {
    id + i64::from(ctx.attempt())
}

#[cog]
fn with_full_path_context(id: i64, ctx: cog::TaskContext) -> bool {
    id > 0 && !ctx.is_cancelled()
}

#[cog]
fn unnamed_context(_: TaskContext, id: i64) -> i64 {
    id
}

#[cog]
pub async fn no_params() -> &'static str {
    "static strings are fine as a return value"
}

#[cog]
fn tuple_and_map(pair: (i32, String), map: std::collections::BTreeMap<String, f64>) -> usize {
    pair.1.len() + map.len()
}

#[cog]
fn static_lifetime_param(text: std::borrow::Cow<'static, str>) -> String {
    text.into_owned()
}

#[cog]
fn r#raw_name(r#type: String) -> String {
    r#type
}

// Two cogs in one module, in a block and in a nested module, do not clash.
mod nested {
    #[cog::cog]
    pub(crate) fn async_cog_nested(x: i32) -> i32 {
        x
    }
}

/// Registrations made by this file (the `cog` library may hold its own).
fn ours(module: &str) -> bool {
    module.split("::").next() == Some(module_path!())
}

fn main() {
    let names: Vec<&str> = cog::registry::cogs().iter().filter(|c| ours(c.module)).map(|c| c.name).collect();
    assert_eq!(
        names,
        [
            "async_cog",
            "async_cog_nested",
            "no_params",
            "raw_name",
            "static_lifetime_param",
            "sync_cog",
            "tuple_and_map",
            "unnamed_context",
            "with_context",
            "with_full_path_context",
        ]
    );
    assert_eq!(cog::registry::cog("async_cog").unwrap().params, ["path", "size", "quality"]);
    assert_eq!(cog::registry::cog("with_context").unwrap().params, ["id"]);
    assert_eq!(cog::registry::cog("with_full_path_context").unwrap().params, ["id"]);
    assert_eq!(cog::registry::cog("unnamed_context").unwrap().params, ["id"]);
    assert_eq!(cog::registry::cog("raw_name").unwrap().params, ["type"]);
    assert_eq!(nested::async_cog_nested(3), 3);
    assert_eq!(sync_cog(vec!["a".into(), "b".into()], Some(1)), ["a"]);
}
