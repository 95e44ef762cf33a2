use cog::cog;

struct NotDeserialize;
struct NotSerialize;

#[cog]
fn takes(value: NotDeserialize) {}

#[cog]
async fn gives() -> NotSerialize {
    NotSerialize
}

fn main() {}
