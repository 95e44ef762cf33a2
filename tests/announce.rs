//! Which stage starts wake the other processes (PostgreSQL's `NOTIFY cog_events, 'work'`;
//! SQLite and MySQL have no notifications). A stage hand-off whose transaction claims all of
//! the next stage's task runs itself tells nobody: there is nothing left to claim. One whose
//! claim leaves some (the stage is wider than the worker's free claim room) tells the others.

mod support;

use std::time::Duration;

use cog::{PipelineSpec, RunStatus, StageSpec, TaskSpec, cog};
use sea_orm::sqlx::postgres::PgListener;
use sea_orm::{ConnectionTrait, Statement};
use support::{TestDb, test_config, wait};

#[cog]
async fn an_nap() {
    tokio::time::sleep(Duration::from_millis(20)).await;
}

/// A chain of `stages` stages of `width` tasks each.
fn chain(stages: usize, width: usize) -> PipelineSpec {
    (0..stages).fold(PipelineSpec::new("p"), |p, i| {
        let after = if i == 0 { vec![] } else { vec![format!("s{}", i - 1)] };
        p.stage((0..width).fold(StageSpec::new(format!("s{i}")).after(after), |s, t| s.task(TaskSpec::new("an_nap").name(format!("t{t}")))))
    })
}

/// Runs `pipeline` on one working runtime of `concurrency` slots and returns how many `work`
/// notifications were sent meanwhile (all of them: a marker sent after the run ended is read
/// last, notifications arriving in commit order). The claim loop polls only once a minute, but
/// it still makes a pass when woken (as when the runtime's listener has connected, which may
/// be after `ready()`), and a pass of an idle worker holds room for the free slots while it
/// runs: with no prefetch, a launch or hand-off committing meanwhile found no room for its
/// chained claim and announced its task runs (a test that failed now and then under load). A
/// prefetch of 1 leaves a chained claim room for 1 task run whenever a pass runs.
async fn work_notifications(db: &TestDb, pipeline: PipelineSpec, concurrency: usize) -> usize {
    let config = test_config().poll_interval(Duration::from_secs(60)).prefetch(1);
    let rt = db.runtime_with(|b| b.concurrency(concurrency).config(config)).await;
    rt.define(pipeline).await.unwrap();
    rt.start();
    rt.ready().await;
    let mut listener = PgListener::connect(&db.url).await.unwrap();
    listener.listen("cog_events").await.unwrap();
    let run = rt.launch("p").await.unwrap();
    assert_eq!(wait(&run).await, RunStatus::Completed);
    let conn = rt.connection();
    conn.execute_raw(Statement::from_string(conn.get_database_backend(), "SELECT pg_notify('cog_events', 'test:end')")).await.unwrap();
    let mut work = 0;
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), listener.recv()).await.expect("the marker arrives").unwrap();
        match n.payload() {
            "test:end" => break,
            "work" => work += 1,
            _ => {}
        }
    }
    rt.shutdown().await;
    work
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_hand_offs_claimed_whole_wake_nobody() {
    let Some(db) = TestDb::postgres().await else { return };
    // The launch's own claim takes its first stage whole (the worker is idle), and so does
    // each of the 4 hand-offs' (1 task, 8 slots free, room for 1 even during a claim pass):
    // nobody is woken.
    assert_eq!(work_notifications(&db, chain(5, 1), 8).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_a_hand_off_its_claim_cannot_take_whole_wakes_the_others() {
    let Some(db) = TestDb::postgres().await else { return };
    // Each stage has 5 task runs; the worker has room for 3 (2 slots, 1 prefetched): the
    // launch's claim takes the 2 free slots and announces the 3 it leaves (after its commit),
    // and the hand-off's takes at most 3 and announces the rest (the claim loop takes them).
    assert_eq!(work_notifications(&db, chain(2, 5), 2).await, 2);
}

/// A launch by a process that does not work (its runtime not started: it claims nothing)
/// announces all it queued, once it has committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_a_launch_nobody_claims_wakes_the_others() {
    let Some(db) = TestDb::postgres().await else { return };
    let rt = db.runtime().await;
    rt.define(chain(1, 3)).await.unwrap();
    let mut listener = PgListener::connect(&db.url).await.unwrap();
    listener.listen("cog_events").await.unwrap();
    let run = rt.launch("p").await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(10), listener.recv()).await.expect("the launch's announcement arrives").unwrap();
    assert_eq!(n.payload(), "work");
    let queued = rt
        .connection()
        .query_one_raw(Statement::from_string(
            rt.connection().get_database_backend(),
            format!(
                "SELECT COUNT(*) FROM cog_task_run t JOIN cog_stage_run s ON s.id = t.stage_run_id WHERE s.pipeline_run_id = {} AND t.status = 'queued'",
                run.id()
            ),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<i64>(0)
        .unwrap();
    assert_eq!(queued, 3, "what it announced is queued");
    rt.shutdown().await;
}
