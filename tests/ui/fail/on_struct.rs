use cog::{cog, cog_error_handler};

#[cog]
struct Job {
    id: u32,
}

#[cog_error_handler]
const LIMIT: u32 = 3;

fn main() {}
