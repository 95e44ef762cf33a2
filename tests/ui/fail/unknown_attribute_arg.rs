use cog::{cog, cog_error_handler};

#[cog(nmae = "typo")]
fn first() {}

#[cog(name = 42)]
fn second() {}

#[cog(name = "")]
fn third() {}

#[cog_error_handler(retries = 3)]
fn on_error(_error: &cog::TaskError) {}

fn main() {
    // The functions are still defined, so only the attribute errors are reported.
    first();
    second();
    third();
}
