// Types the macros cannot check themselves: the compiler's trait errors point at the type written.
use cog::{TaskError, cog, cog_error_handler};

struct NotDeserialize;
struct NotSerialize;
#[derive(Debug)]
struct NotDisplay;

#[cog]
fn takes(_value: NotDeserialize) {}

#[cog]
async fn gives() -> NotSerialize {
    NotSerialize
}

#[cog]
fn fails() -> Result<u32, NotDisplay> {
    Err(NotDisplay)
}

#[cog_error_handler]
fn handler_fails(_error: &TaskError) -> Result<(), NotDisplay> {
    Err(NotDisplay)
}

fn main() {}
