use cog::cog;

#[cog]
fn parse<T: serde::de::DeserializeOwned>(_value: T) {}

#[cog]
fn with_where(value: Vec<u8>) -> usize
where
    Vec<u8>: Clone,
{
    value.len()
}

#[cog]
fn impl_trait(_value: impl serde::de::DeserializeOwned) {}

fn main() {}
