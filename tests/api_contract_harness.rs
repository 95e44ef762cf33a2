//! Runs `tests/api_contract.rs`, an unchanged copy of `../shared/contract/api_contract.rs`
//! (the public API contract), as test target `api_contract`, out of rustfmt's reach so the
//! copy stays byte-for-byte identical.

#[rustfmt::skip]
#[path = "api_contract.rs"]
mod api_contract;
