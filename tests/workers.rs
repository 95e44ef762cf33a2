//! Presence without side effects from looking: `start()` records the worker and the cogs it
//! carries (`cog_worker`, `cog_worker_cog`), its heartbeat keeps them live, `shutdown()`
//! removes them, and "present" means "carried by a live worker". A runtime that never
//! starts (a dashboard, a second binary that only launches) writes nothing about cogs.

mod support;

use cog::{PipelineSpec, StageSpec, TaskSpec, cog, cog_error_handler};
use sea_orm::{ActiveValue::Set, EntityTrait};
use support::{TestDb, rows, scalar};

#[cog]
fn w_number() -> i64 {
    7
}

#[cog]
fn w_params(count: i64, label: Option<String>) -> String {
    format!("{count} {label:?}")
}

#[cog_error_handler]
async fn w_handler(_error: &cog::TaskError) {}

/// `(present, module)` of registry row `name` in `table`.
async fn state(rt: &cog::CogRuntime, table: &str, name: &str) -> (bool, String) {
    let found = rows(rt, &format!("SELECT present, module FROM {table} WHERE name = '{name}'")).await;
    assert_eq!(found.len(), 1, "{table} row {name}");
    (found[0].try_get_by_index::<bool>(0).unwrap(), found[0].try_get_by_index::<String>(1).unwrap())
}

async fn build_alone_writes_nothing_about_cogs(db: TestDb) {
    let first = db.runtime().await;
    assert_eq!(scalar(&first, "SELECT COUNT(*) FROM cog_cog").await, 0, "build() records no cog");
    assert_eq!(scalar(&first, "SELECT COUNT(*) FROM cog_error_handler").await, 0);
    // Cogs of another binary, carried by its live worker.
    rows(&first, "INSERT INTO cog_cog (name, module, present, updated_at) VALUES ('elsewhere', 'other::bin', (1 = 1), '2026-01-01 00:00:00')").await;

    let dashboard = db.runtime().await;
    assert_eq!(state(&dashboard, "cog_cog", "elsewhere").await, (true, "other::bin".to_owned()), "a second build leaves other binaries' cogs alone");
    assert_eq!(scalar(&dashboard, "SELECT COUNT(*) FROM cog_cog").await, 1);
    assert_eq!(scalar(&dashboard, "SELECT COUNT(*) FROM cog_worker").await, 0, "no worker without start()");
    assert!(dashboard.workers().await.unwrap().is_empty());
}

async fn start_records_the_worker_and_its_cogs_and_shutdown_removes_them(db: TestDb) {
    let setup = db.runtime().await;
    rows(&setup, "INSERT INTO cog_cog (name, module, present, updated_at) VALUES ('stale_cog', 'old::module', (1 = 1), '2026-01-01 00:00:00')").await;
    rows(&setup, "INSERT INTO cog_cog (name, module, present, updated_at) VALUES ('w_number', 'wrong', (1 = 0), '2026-01-01 00:00:00')").await;

    let rt = db.runtime_with(|b| b.worker_name("w-1").queues(["default", "io"])).await;
    rt.start();
    rt.ready().await;
    let workers = rt.workers().await.unwrap();
    assert_eq!(workers.len(), 1);
    assert_eq!(workers[0].name, "w-1");
    assert_eq!(workers[0].queues, ["default", "io"]);
    assert_eq!(workers[0].cogs, cog::registry::cogs().len());

    assert_eq!(state(&rt, "cog_cog", "w_number").await, (true, module_of("w_number")), "a carried cog is present, with its module");
    assert_eq!(state(&rt, "cog_cog", "stale_cog").await, (false, "old::module".to_owned()), "a cog no live worker carries is missing, not deleted");
    assert!(state(&rt, "cog_error_handler", "w_handler").await.0);
    let overview = rt.cogs_overview().await.unwrap();
    let number = overview.iter().find(|c| c.name == "w_number").unwrap();
    assert!(number.present);
    assert_eq!(number.workers, ["w-1"]);
    assert_eq!(number.parameters.as_deref(), Some(&[][..]));
    assert!(!overview.iter().find(|c| c.name == "stale_cog").unwrap().present);
    let queues = rt.queues_overview().await.unwrap();
    let io = queues.iter().find(|q| q.name == "io").expect("a queue served by a live worker is listed");
    assert_eq!(io.workers, ["w-1"]);

    rt.shutdown().await;
    assert_eq!(scalar(&rt, "SELECT COUNT(*) FROM cog_worker").await, 0, "shutdown removes the worker");
    assert_eq!(scalar(&rt, "SELECT COUNT(*) FROM cog_worker_cog").await, 0);
    assert!(!state(&rt, "cog_cog", "w_number").await.0, "no live worker carries it any more");
    assert!(rt.cogs_overview().await.unwrap().iter().all(|c| !c.present && c.workers.is_empty()));
}

async fn a_live_worker_of_another_binary_keeps_its_cogs_present(db: TestDb) {
    let rt = db.runtime_with(|b| b.worker_name("w-a")).await;
    // Another binary's live worker carrying `elsewhere` (alive for an hour).
    rows(&rt, "INSERT INTO cog_cog (name, module, present, updated_at) VALUES ('elsewhere', 'other::bin', (1 = 1), '2026-01-01 00:00:00')").await;
    let now = chrono::Utc::now();
    let other = cog::entity::worker::ActiveModel {
        name: Set("w-b".to_owned()),
        queues: Set("default".to_owned()),
        started_at: Set(now),
        heartbeat_at: Set(now),
        alive_until: Set(now + chrono::TimeDelta::hours(1)),
        ..Default::default()
    };
    cog::entity::worker::Entity::insert(other).exec(rt.connection()).await.unwrap();
    rows(&rt, "INSERT INTO cog_worker_cog (worker_id, cog_id) SELECT w.id, c.id FROM cog_worker w, cog_cog c WHERE w.name = 'w-b' AND c.name = 'elsewhere'")
        .await;

    rt.start();
    rt.ready().await;
    assert_eq!(rt.workers().await.unwrap().len(), 2);
    assert!(state(&rt, "cog_cog", "elsewhere").await.0, "another live worker's cog stays present");
    let elsewhere = rt.cogs_overview().await.unwrap().into_iter().find(|c| c.name == "elsewhere").unwrap();
    assert_eq!((elsewhere.present, elsewhere.workers), (true, vec!["w-b".to_owned()]));
    assert_eq!(elsewhere.parameters, None, "parameters are known only for cogs in this binary");
    rt.shutdown().await;
    assert!(state(&rt, "cog_cog", "elsewhere").await.0, "still carried by w-b");
    assert_eq!(rt.workers().await.unwrap().into_iter().map(|w| w.name).collect::<Vec<_>>(), ["w-b"]);
}

async fn define_in_a_runtime_that_never_starts_marks_nothing_present(db: TestDb) {
    let rt = db.runtime().await;
    rt.define(PipelineSpec::new("p").stage(StageSpec::new("s").task(TaskSpec::new("w_number")))).await.unwrap();
    assert_eq!(state(&rt, "cog_cog", "w_number").await, (false, module_of("w_number")), "defined, but no live worker carries it yet");
}

fn module_of(name: &str) -> String {
    cog::registry::cog(name).unwrap().module.to_owned()
}

async fn workers_record_each_cogs_parameters_for_dashboards_without_it(db: TestDb) {
    let rt = db.runtime().await;
    // A cog only another binary has, with the parameters its workers recorded.
    rows(
        &rt,
        r#"INSERT INTO cog_cog (name, module, present, updated_at, parameters) VALUES ('elsewhere', 'other::bin', (1 = 0), '2026-01-01 00:00:00', '[{"name":"day","type_name":"chrono::NaiveDate","optional":false}]')"#,
    )
    .await;
    rt.start();
    rt.ready().await;
    let stored = rows(&rt, "SELECT parameters FROM cog_cog WHERE name = 'w_params'").await;
    let stored: serde_json::Value = serde_json::from_str(&stored[0].try_get_by_index::<String>(0).unwrap()).unwrap();
    assert_eq!(
        stored,
        serde_json::json!([{"name": "count", "type_name": "i64", "optional": false}, {"name": "label", "type_name": "Option<String>", "optional": true}])
    );
    let overview = rt.cogs_overview().await.unwrap();
    let details = |name: &str| overview.iter().find(|c| c.name == name).unwrap().parameter_details.clone().unwrap();
    assert_eq!(
        details("w_params").iter().map(|p| (p.name.as_str(), p.type_name.as_str(), p.optional)).collect::<Vec<_>>(),
        [("count", "i64", false), ("label", "Option<String>", true)]
    );
    assert_eq!(
        details("elsewhere").iter().map(|p| (p.name.as_str(), p.type_name.as_str(), p.optional)).collect::<Vec<_>>(),
        [("day", "chrono::NaiveDate", false)]
    );
    assert!(details("w_number").is_empty());
    rt.shutdown().await;
}

on_all_backends!(
    workers_record_each_cogs_parameters_for_dashboards_without_it,
    build_alone_writes_nothing_about_cogs,
    start_records_the_worker_and_its_cogs_and_shutdown_removes_them,
    a_live_worker_of_another_binary_keeps_its_cogs_present,
    define_in_a_runtime_that_never_starts_marks_nothing_present,
);
