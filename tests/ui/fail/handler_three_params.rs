use cog::{TaskError, TaskRunInfo, cog_error_handler};

#[cog_error_handler]
fn too_many(_error: &TaskError, _task_run: &TaskRunInfo, _extra: u32) {}

#[cog_error_handler]
fn none() {}

fn main() {}
