use cog::cog;

struct Resizer;

impl Resizer {
    #[cog]
    fn resize(&self, width: u32) -> u32 {
        width
    }
}

fn main() {}
