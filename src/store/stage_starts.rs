//! How much of a stage its start queues, on SQLite and PostgreSQL (whose one-statement start
//! is written apart): a launch queues a stage of up to `SMALL_STAGE` tasks whole, and only
//! the first `LAUNCH_CHUNK` of a bigger one, marking it as filling after that chunk's last
//! task; a hand-off queues up to `START_CHUNK`.

use sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait};

use super::now;
use super::test_database::{self, define};
use super::transitions::{self, Announce, LAUNCH_CHUNK, SMALL_STAGE, START_CHUNK, Starting};

/// The stage sizes tried: one task, the launch's chunk, a small stage's most, one more, what
/// a hand-off queues (the stage then marked as filling, with nothing left to fill), and one
/// more.
const SIZES: [usize; 6] = [1, LAUNCH_CHUNK, SMALL_STAGE, SMALL_STAGE + 1, START_CHUNK, START_CHUNK + 1];

/// What starting each stage of [`SIZES`] in run 1 with `starting` queued: (task runs, marked
/// as filling, the fill mark as written), in a transaction rolled back.
async fn starts(db: &DatabaseConnection, starting: Starting<'_>) -> Vec<(u64, bool, Option<i64>)> {
    let txn = db.begin().await.unwrap();
    let mut started = Vec::new();
    for stage in 1..=SIZES.len() as i64 {
        let s = transitions::start_stage_run(&txn, 1, stage, now(), starting).await.unwrap().expect("a new stage run");
        let row = txn
            .query_one_raw(sea_orm::Statement::from_string(
                txn.get_database_backend(),
                format!("SELECT fill_after FROM cog_stage_run WHERE id = {}", s.stage_run_id),
            ))
            .await
            .unwrap()
            .unwrap();
        started.push((s.queued, s.filling, row.try_get_by_index::<Option<i64>>(0).unwrap()));
    }
    txn.rollback().await.unwrap();
    started
}

/// Checks the starts of [`SIZES`] on migrated database `db`.
async fn check(db: &DatabaseConnection) {
    define(db, &SIZES).await;
    let chunk_end = |stage: usize, chunk: usize| Some((1000 * stage + chunk - 1) as i64);
    assert_eq!(
        starts(db, Starting::LAUNCH).await,
        vec![
            (1, false, None),
            (LAUNCH_CHUNK as u64, false, None),
            (SMALL_STAGE as u64, false, None),
            (LAUNCH_CHUNK as u64, true, chunk_end(4, LAUNCH_CHUNK)),
            (LAUNCH_CHUNK as u64, true, chunk_end(5, LAUNCH_CHUNK)),
            (LAUNCH_CHUNK as u64, true, chunk_end(6, LAUNCH_CHUNK)),
        ],
        "a launch queues a stage of up to {SMALL_STAGE} tasks whole, else the first {LAUNCH_CHUNK}"
    );
    assert_eq!(
        starts(db, Starting::hand_off(Announce::Now)).await,
        vec![
            (1, false, None),
            (LAUNCH_CHUNK as u64, false, None),
            (SMALL_STAGE as u64, false, None),
            (SMALL_STAGE as u64 + 1, false, None),
            (START_CHUNK as u64, true, chunk_end(5, START_CHUNK)),
            (START_CHUNK as u64, true, chunk_end(6, START_CHUNK)),
        ],
        "a hand-off queues up to {START_CHUNK} tasks, and marks a stage of that many or more as filling"
    );
}

#[tokio::test]
async fn a_launch_queues_a_small_stage_whole_on_sqlite() {
    check(&test_database::sqlite().await).await;
}

/// The most rows any walk of stage 5's tasks (of [`SIZES`]: more than a small stage) reads
/// when a launch starts it on PostgreSQL, by `EXPLAIN ANALYZE` of the start's statement with
/// a launch's planner settings (in a transaction rolled back).
async fn tasks_read_by_a_launch(db: &DatabaseConnection) -> u64 {
    let txn = db.begin().await.unwrap();
    super::sql::SENT.with(|sent| sent.borrow_mut().clear());
    let later = Starting { announce: Announce::Later, ..Starting::LAUNCH };
    transitions::start_stage_run(&txn, 1, 5, now(), later).await.unwrap();
    let start = super::sql::SENT.with(|sent| sent.borrow_mut().pop()).expect("the start's statement");
    txn.rollback().await.unwrap();
    let txn = db.begin().await.unwrap();
    // As a launch runs it (`engine::launch`): index walks only.
    super::claims::set_planner(&txn).await.unwrap();
    let explain = sea_orm::Statement { sql: format!("EXPLAIN (ANALYZE, COSTS OFF) {}", start.sql), ..start };
    let lines: Vec<String> = txn.query_all_raw(explain).await.unwrap().iter().map(|r| r.try_get_by_index::<String>(0).unwrap()).collect();
    txn.rollback().await.unwrap();
    let task_walks: Vec<&String> = lines.iter().filter(|l| l.contains("Index Scan") && l.contains(" on cog_task ")).collect();
    assert!(!task_walks.is_empty(), "the start walks the stage's tasks: {lines:#?}");
    task_walks
        .iter()
        .map(|l| l.split("rows=").last().and_then(|r| r.split_whitespace().next()).and_then(|n| n.parse().ok()).expect("actual rows"))
        .max()
        .unwrap_or(0)
}

/// PostgreSQL's start is one statement of its own (skipped without `COG_TEST_POSTGRES_URL`).
#[tokio::test]
async fn a_launch_queues_a_small_stage_whole_on_postgres() {
    let Some((db, url)) = test_database::postgres("starts", "stage start test").await else { return };
    check(&db).await;
    // A big stage's start reads its first tasks only: up to the one that tells it is not small.
    assert_eq!(tasks_read_by_a_launch(&db).await, SMALL_STAGE as u64 + 1, "a launch reads no more of a big stage's tasks than it needs");
    db.close().await.unwrap();
    test_database::drop(&url).await;
}
