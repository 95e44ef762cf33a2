//! Compile-time behaviour of `#[cog]` and `#[cog_error_handler]`: the signatures they accept
//! (`tests/ui/pass`, each built and run) and the ones they refuse with a message (`tests/ui/fail`).
//!
//! After changing a message, regenerate the `.stderr` files with
//! `TRYBUILD=overwrite cargo test --test macros_ui` and review the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
