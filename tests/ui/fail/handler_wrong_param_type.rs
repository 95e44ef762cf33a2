use cog::{TaskError, TaskRunInfo, cog_error_handler};

#[cog_error_handler]
fn by_value(error: TaskError) {}

#[cog_error_handler]
fn wrong_type(error: &String) {}

#[cog_error_handler]
fn swapped(task_run: &TaskRunInfo, error: &TaskError) {}

#[cog_error_handler]
async fn mutable(error: &mut TaskError) {}

fn main() {}
