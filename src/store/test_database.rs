//! A migrated PostgreSQL database of its own for a crate unit test (tests of the engine's
//! PostgreSQL paths; `tests/support` does the same for the integration tests).

use sea_orm::{ConnectionTrait, Database, DatabaseConnection};

/// A fresh, migrated database `cog_t_<pid>_<suffix>` on the server of `COG_TEST_POSTGRES_URL`,
/// and its URL; `None` (with a printed notice naming `what`) when that variable is unset,
/// unless `COG_REQUIRE_POSTGRES=1`, which makes that a failure.
pub(crate) async fn postgres(suffix: &str, what: &str) -> Option<(DatabaseConnection, String)> {
    let Ok(admin_url) = std::env::var("COG_TEST_POSTGRES_URL") else {
        assert!(std::env::var("COG_REQUIRE_POSTGRES").as_deref() != Ok("1"), "COG_REQUIRE_POSTGRES=1 but COG_TEST_POSTGRES_URL is not set");
        eprintln!("notice: COG_TEST_POSTGRES_URL is not set; skipping the PostgreSQL {what}");
        return None;
    };
    let admin = Database::connect(admin_url.as_str()).await.expect("PostgreSQL reachable");
    let name = format!("cog_t_{}_{suffix}", std::process::id());
    admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name}")).await.unwrap();
    admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.unwrap();
    let url = format!("{}/{name}", &admin_url[..admin_url.rfind('/').expect("a server URL ends in /<database>")]);
    let db = super::connect(&url, None).await.unwrap();
    crate::migrate(&db).await.unwrap();
    Some((db, url))
}

/// Drops database `url` made by [`postgres`] (its connections closed by force).
pub(crate) async fn drop(url: &str) {
    let admin_url = std::env::var("COG_TEST_POSTGRES_URL").expect("set: the database was made from it");
    let admin = Database::connect(admin_url.as_str()).await.expect("PostgreSQL reachable");
    let name = &url[url.rfind('/').expect("a database URL") + 1..];
    admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.unwrap();
}
