use cog::{TaskError, TaskRunInfo, cog_error_handler};

#[cog_error_handler]
fn too_many(error: &TaskError, task_run: &TaskRunInfo, extra: u32) {}

#[cog_error_handler]
fn none() {}

fn main() {}
