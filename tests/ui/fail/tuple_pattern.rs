use cog::cog;

#[cog]
fn add((a, b): (i32, i32)) -> i32 {
    a + b
}

#[cog]
fn ignored(_: String) {}

#[cog]
fn by_ref(ref _name: String) {}

fn main() {}
