// Every kind of return type: nothing, `()`, plain values, `Result`, `io::Result` and other `Result` aliases.
use std::fmt;

use cog::cog;

#[derive(Debug)]
struct MyError;

impl fmt::Display for MyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("my error")
    }
}

mod my {
    pub(crate) type Result<T> = std::result::Result<T, super::MyError>;
}

#[cog]
fn returns_nothing(x: i32) {
    let _ = x;
}

#[cog]
#[allow(clippy::unused_unit)]
async fn returns_unit() -> () {}

#[cog]
fn returns_value() -> serde_json::Value {
    serde_json::json!({"ok": true})
}

#[cog]
async fn returns_result(x: i32) -> Result<i32, MyError> {
    if x > 0 { Ok(x) } else { Err(MyError) }
}

#[cog]
fn returns_std_result() -> std::result::Result<(), String> {
    Ok(())
}

#[cog]
fn returns_io_result(path: String) -> std::io::Result<Vec<u8>> {
    std::fs::read(path)
}

#[cog]
async fn returns_alias_result() -> my::Result<String> {
    Err(MyError)
}

#[cog]
fn returns_impl_serialize() -> impl serde::Serialize + Send + 'static {
    vec![1, 2, 3]
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
            "returns_alias_result",
            "returns_impl_serialize",
            "returns_io_result",
            "returns_nothing",
            "returns_result",
            "returns_std_result",
            "returns_unit",
            "returns_value",
        ]
    );
}
