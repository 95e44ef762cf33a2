//! Two `#[cog]` functions with one name (DESIGN invariant 12): `build()` fails naming both
//! modules. Nothing in this binary may build a runtime successfully.

mod support;

use cog::{CogRuntime, Error};
use sea_orm::{ConnectionTrait, Database, Statement};

mod a {
    use cog::cog;

    #[cog]
    pub(crate) fn same() {}
}

mod b {
    use cog::cog;

    #[cog]
    pub(crate) fn same() -> i32 {
        2
    }
}

fn assert_duplicate(err: Error) {
    let message = err.to_string();
    let Error::DuplicateCog { name, first_module, second_module } = err else { panic!("expected DuplicateCog, got {err:?}") };
    assert_eq!(name, "same");
    let mut modules = [first_module, second_module];
    modules.sort();
    assert_eq!(modules, ["duplicate_cogs::a", "duplicate_cogs::b"]);
    for module in &modules {
        assert!(message.contains(module.as_str()), "the message names {module}: {message}");
    }
    assert!(message.contains("`same`"), "{message}");
}

#[tokio::test]
async fn two_cogs_with_one_name_fail_the_build() {
    let modules: Vec<&str> = cog::registry::cogs().iter().filter(|c| c.name == "same").map(|c| c.module).collect();
    assert_eq!(modules.len(), 2, "both cogs are registered: {modules:?}");
    let err = CogRuntime::builder().database_url("sqlite::memory:").build().await.expect_err("build must refuse two cogs named `same`");
    assert_duplicate(err);
}

#[tokio::test]
async fn a_refused_build_writes_nothing() {
    let db = support::TestDb::sqlite();
    let err = CogRuntime::builder().database_url(&db.url).build().await.expect_err("build must refuse two cogs named `same`");
    assert_duplicate(err);
    let conn = Database::connect(db.url.as_str()).await.unwrap();
    let sql = "SELECT COUNT(*) FROM sqlite_master WHERE name LIKE 'cog%'";
    let row = conn.query_one_raw(Statement::from_string(conn.get_database_backend(), sql)).await.unwrap().unwrap();
    assert_eq!(row.try_get_by_index::<i64>(0).unwrap(), 0, "no cog table was created");
}
