use cog::{TaskContext, TaskError, cog, cog_error_handler};

#[cog]
async fn context_by_reference(_ctx: &TaskContext) {}

#[cog]
unsafe fn unsafe_cog() {}

#[cog_error_handler]
fn handler_returns_value(error: &TaskError) -> String {
    error.message.clone()
}

#[cog_error_handler]
fn generic_handler<E>(_error: &TaskError) {}

struct Notifier;

impl Notifier {
    #[cog_error_handler]
    fn notify(&self, _error: &TaskError) {}
}

fn main() {}
