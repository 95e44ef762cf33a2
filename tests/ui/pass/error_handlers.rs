// Both parameter forms, async and plain, returning `()` or a `Result`.
use cog::{TaskError, TaskRunInfo, cog_error_handler};

#[cog_error_handler]
fn sync_one(error: &TaskError) {
    eprintln!("{error}");
}

#[cog_error_handler]
fn sync_two(error: &cog::TaskError, task_run: &cog::TaskRunInfo) -> Result<(), String> {
    if task_run.will_retry { Ok(()) } else { Err(error.message.clone()) }
}

#[cog_error_handler]
async fn async_one(_: &TaskError) -> std::io::Result<()> {
    Ok(())
}

#[cog_error_handler]
pub async fn async_two(error: &TaskError, task_run: &TaskRunInfo) {
    eprintln!("{error} in {}", task_run.task_name);
}

#[cog_error_handler]
async fn async_elided_lifetime(error: &'_ TaskError) -> Result<u32, std::fmt::Error> {
    Ok(error.message.len() as u32)
}

/// Registrations made by this file (the `cog` library may hold its own).
fn ours(module: &str) -> bool {
    module.split("::").next() == Some(module_path!())
}

fn main() {
    let names: Vec<&str> = cog::registry::error_handlers().iter().filter(|h| ours(h.module)).map(|h| h.name).collect();
    assert_eq!(names, ["async_elided_lifetime", "async_one", "async_two", "sync_one", "sync_two"]);
}
