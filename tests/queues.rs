//! Paused queues (issue 9, item 3): no process claims from a paused queue, running task runs
//! finish and queued ones wait; a resume wakes idle workers of every process; a pause never
//! overlaps a claim in flight; `rt.queues()` shows paused queues; unknown queues are typed errors.

mod support;

use std::time::Duration;

use cog::{Error, PipelineSpec, RunStatus, StageSpec, TaskSpec, cog};
use support::{TestDb, eventually, scalar, task_statuses, test_config, wait};

#[cog]
fn q_noop() -> i64 {
    1
}

#[cog]
async fn q_short() -> i64 {
    tokio::time::sleep(Duration::from_millis(2)).await;
    1
}

async fn a_paused_queue_keeps_its_task_runs_waiting_until_resumed(db: TestDb) {
    // A poll interval no test waits for: only wake-ups start work here.
    let rt = db.runtime_with(|b| b.config(test_config().poll_interval(Duration::from_secs(600))).queues(["default", "io"])).await;
    rt.define(PipelineSpec::new("io_p").stage(StageSpec::new("s").task(TaskSpec::new("q_noop").queue("io").weight(10.0)))).await.unwrap();
    rt.define(PipelineSpec::new("def_p").stage(StageSpec::new("s").task(TaskSpec::new("q_noop")))).await.unwrap();
    rt.pause_queue("io").await.unwrap();
    rt.pause_queue("io").await.unwrap();
    rt.start();
    let io_run = rt.launch("io_p").await.unwrap();
    let def_run = rt.launch("def_p").await.unwrap();
    // Every claim that took def_p's task would have taken io_p's (queued earlier, heavier).
    assert_eq!(wait(&def_run).await, RunStatus::Completed);
    assert_eq!(task_statuses(&rt, io_run.id()).await, [("q_noop".to_owned(), "queued".to_owned())]);
    assert_eq!(io_run.status().await.unwrap(), RunStatus::Running);
    let queues = rt.queues().await.unwrap();
    let io = queues.iter().find(|q| q.name == "io").expect("queue io listed");
    assert_eq!((io.queued, io.paused), (1, true));
    let default = queues.iter().find(|q| q.name == "default").expect("queue default listed");
    assert_eq!((default.queued, default.paused), (0, false));
    assert!(rt.queue_depths().await.unwrap().contains(&("io".to_owned(), 1)), "queue_depths still lists the paused queue");

    rt.resume_queue("io").await.unwrap();
    assert!(!rt.queues().await.unwrap().iter().find(|q| q.name == "io").unwrap().paused);
    assert_eq!(wait(&io_run).await, RunStatus::Completed, "the resume woke the idle worker");
    rt.shutdown().await;
}

async fn pausing_an_unknown_queue_is_a_typed_error(db: TestDb) {
    let rt = db.runtime().await;
    match rt.pause_queue("nope").await {
        Err(Error::UnknownQueue { name }) => assert_eq!(name, "nope"),
        other => panic!("expected UnknownQueue, got {other:?}"),
    }
    assert!(matches!(rt.resume_queue("nope").await, Err(Error::UnknownQueue { .. })));
    let err = rt.pause_queue("nope").await.unwrap_err().to_string();
    assert!(err.contains("`nope`") && err.contains("TaskSpec::queue"), "{err}");
}

/// Pause while two runtimes claim a stream of task runs: once `pause_queue` has returned, no
/// task run of the queue is claimed any more.
async fn nothing_starts_after_pause_queue_returned(db: TestDb) {
    const TASKS: usize = 2000;
    let a = db.runtime_with(|b| b.queues(["hot", "default"])).await;
    let b = db.runtime_with(|b| b.queues(["hot", "default"]).scheduler(false)).await;
    let tasks = (0..TASKS).fold(StageSpec::new("s"), |s, i| s.task(TaskSpec::new("q_short").name(format!("t{i}")).queue("hot")));
    a.define(PipelineSpec::new("hot_p").stage(tasks)).await.unwrap();
    a.define(PipelineSpec::new("marker").stage(StageSpec::new("s").task(TaskSpec::new("q_noop")))).await.unwrap();
    let claimed = "SELECT COUNT(*) FROM cog_task_run WHERE queue = 'hot' AND status <> 'queued'";
    a.start();
    if db.backend != "sqlite" {
        b.start();
    }
    let run = a.launch("hot_p").await.unwrap();
    eventually("claims under way", || async { scalar(&a, claimed).await >= 50 }).await;
    a.pause_queue("hot").await.unwrap();
    let at_pause = scalar(&a, claimed).await;
    assert!(at_pause < TASKS as i64, "the pause came while task runs were still being claimed");
    // Let every worker finish what it holds and go round its claim loop again.
    eventually("running task runs finished", || async { scalar(&a, "SELECT COUNT(*) FROM cog_task_run WHERE status = 'running'").await == 0 }).await;
    for _ in 0..3 {
        assert_eq!(wait(&a.launch("marker").await.unwrap()).await, RunStatus::Completed);
    }
    assert_eq!(scalar(&a, claimed).await, at_pause, "a task run of the paused queue was claimed after pause_queue returned");
    a.resume_queue("hot").await.unwrap();
    assert_eq!(wait(&run).await, RunStatus::Completed);
    assert_eq!(scalar(&a, "SELECT COUNT(*) FROM cog_task_run WHERE queue = 'hot' AND status = 'completed'").await, TASKS as i64);
    a.shutdown().await;
    b.shutdown().await;
}

on_all_backends!(
    a_paused_queue_keeps_its_task_runs_waiting_until_resumed,
    pausing_an_unknown_queue_is_a_typed_error,
    nothing_starts_after_pause_queue_returned,
);

/// Tests of two processes on one server (SQLite serves one process).
mod across_processes {
    use super::*;

    /// Another process (a second runtime) resumes: the idle worker is woken by PostgreSQL's
    /// notification or MySQL's change watcher, not by polling.
    async fn a_resume_in_another_process_wakes_idle_workers(db: TestDb) {
        let admin = db.runtime_with(|b| b.scheduler(false)).await;
        admin.define(PipelineSpec::new("io_p").stage(StageSpec::new("s").task(TaskSpec::new("q_noop").queue("io")))).await.unwrap();
        admin.pause_queue("io").await.unwrap();
        let worker = db.runtime_with(|b| b.config(test_config().poll_interval(Duration::from_secs(600))).scheduler(false).queues(["io"])).await;
        worker.start();
        let run = admin.launch("io_p").await.unwrap();
        admin.resume_queue("io").await.unwrap();
        assert_eq!(wait(&run).await, RunStatus::Completed);
        worker.shutdown().await;
    }

    on_server_backends!(a_resume_in_another_process_wakes_idle_workers);
}
