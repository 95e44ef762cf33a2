// `name = ".."` replaces the registered name; the function keeps its own.
use cog::{TaskError, cog, cog_error_handler};

#[cog(name = "resize_image")]
async fn resize(width: u32) -> u32 {
    width / 2
}

#[cog(name = "the-sync-one")]
fn sync_named() {}

#[cog_error_handler(name = "notify")]
fn on_error(_error: &TaskError) {}

fn main() {
    assert!(cog::registry::cog("resize_image").is_some());
    assert!(cog::registry::cog("resize").is_none());
    assert!(cog::registry::cog("the-sync-one").is_some());
    assert!(cog::registry::error_handler("notify").is_some());
    assert!(cog::registry::error_handler("on_error").is_none());
    let _ = (resize(4), sync_named());
}
