use cog::cog;

#[cog]
async fn greet(name: &str, tags: &[String], ids: Vec<&'static u8>) -> String {
    format!("{name}{tags:?}{ids:?}")
}

fn main() {}
