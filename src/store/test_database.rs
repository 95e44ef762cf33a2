//! A migrated PostgreSQL database of its own for a crate unit test (tests of the engine's
//! PostgreSQL paths; `tests/support` does the same for the integration tests), and
//! definitions written straight to a test database.

use sea_orm::{ConnectionTrait, Database, DatabaseConnection};

/// A migrated in-memory SQLite database (it lives as long as its one connection).
pub(crate) async fn sqlite() -> DatabaseConnection {
    let db = super::connect("sqlite::memory:", None).await.expect("open SQLite in memory").work;
    crate::migrate(&db).await.expect("migrate");
    db
}

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
    let db = super::connect(&url, None).await.unwrap().work;
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

/// Defines pipeline 1 with stage `i + 1` of `sizes[i]` enabled tasks of weight 1 (task ids
/// `1000 * (i + 1) + n`, in order, on the default queue) and a running run 1 of it, on a
/// migrated database (any backend).
pub(crate) async fn define(db: &DatabaseConnection, sizes: &[usize]) {
    let at = "'2026-12-05 00:00:00+00'";
    let mut sql = format!(
        "INSERT INTO cog_pipeline (id, name, enabled, timezone, prevent_overlap, created_at, updated_at) VALUES (1, 'p', true, 'UTC', false, {at}, {at}); \
         INSERT INTO cog_cog (id, name, module, present, updated_at) VALUES (1, 'c', '', true, {at}); \
         INSERT INTO cog_pipeline_run (id, pipeline_id, status, \"trigger\", arguments, created_at) VALUES (1, 1, 'running', 'manual', '{{}}', {at}); "
    );
    for (i, tasks) in sizes.iter().enumerate() {
        let stage = i + 1;
        sql += &format!("INSERT INTO cog_stage (id, pipeline_id, name, enabled, archived, position) VALUES ({stage}, 1, 's{stage}', true, false, {i}); ");
        let rows: Vec<String> = (0..*tasks)
            .map(|n| {
                format!("({}, {stage}, 't{n}', 1, '{{}}', (SELECT id FROM cog_queue WHERE name = 'default'), 1, true, true, false, 0, {n})", 1000 * stage + n)
            })
            .collect();
        sql += &format!(
            "INSERT INTO cog_task (id, stage_id, name, cog_id, arguments, queue_id, weight, critical, enabled, archived, max_retries, position) VALUES {}; ",
            rows.join(", ")
        );
    }
    db.execute_unprepared(&sql).await.expect("the definitions are written");
}

/// [`define`] with stages of 5, 3 and 3 tasks, weighing: stage 1 (task ids 1000..=1004) 1, 3,
/// 1, 3, 2; stage 2 (2000..=2002) 3 each; stage 3 (3000..=3002) 4, 5, 4.
pub(crate) async fn define_weighed(db: &DatabaseConnection) {
    define(db, &[5, 3, 3]).await;
    db.execute_unprepared(
        "UPDATE cog_task SET weight = 3 WHERE id IN (1001, 1003) OR stage_id = 2; UPDATE cog_task SET weight = 2 WHERE id = 1004; \
         UPDATE cog_task SET weight = 4 WHERE stage_id = 3; UPDATE cog_task SET weight = 5 WHERE id = 3001",
    )
    .await
    .expect("the weights are written");
}
