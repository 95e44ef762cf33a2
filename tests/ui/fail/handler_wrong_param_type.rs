use cog::{TaskError, TaskRunInfo, cog_error_handler};

#[cog_error_handler]
fn by_value(_error: TaskError) {}

#[cog_error_handler]
fn wrong_type(_error: &String) {}

#[cog_error_handler]
fn swapped(_task_run: &TaskRunInfo, _error: &TaskError) {}

#[cog_error_handler]
async fn mutable(_error: &mut TaskError) {}

fn main() {}
