//! The read API behind the admin (`cog::history`): run listings with filters and keyset
//! paging, one run in detail, errors, pipelines with next ticks, queues and throughput, and
//! enabling/disabling a pipeline.

mod support;

use chrono::{Timelike, Utc};
use cog::history::{ErrorFilter, RunFilter};
use cog::{Error, PipelineSpec, RunStatus, StageSpec, TaskSpec, Trigger, cog};
use serde_json::json;
use support::{TestDb, wait};

#[cog]
fn h_echo(text: String) -> String {
    text
}

#[cog]
fn h_fail(reason: String) -> Result<(), std::io::Error> {
    Err(std::io::Error::other(reason))
}

fn diamond() -> PipelineSpec {
    PipelineSpec::new("diamond")
        .stage(StageSpec::new("a").task(TaskSpec::new("h_echo").name("a1").args(json!({"text": "a"}))))
        .stage(StageSpec::new("b").after(["a"]).task(TaskSpec::new("h_echo").name("b1").args(json!({"text": "b"}))))
        .stage(StageSpec::new("c").after(["a"]).task(TaskSpec::new("h_echo").name("c1").args(json!({"text": "c"}))))
        .stage(StageSpec::new("d").after(["b", "c"]).task(TaskSpec::new("h_echo").name("d1").args(json!({"text": "d"}))))
}

fn failing() -> PipelineSpec {
    PipelineSpec::new("failing").stage(StageSpec::new("only").task(TaskSpec::new("h_fail").name("boom").args(json!({"reason": "disk full"}))))
}

async fn runs_are_listed_newest_first_with_filters_and_keyset_pages(db: TestDb) {
    let rt = db.runtime().await;
    rt.define(diamond()).await.unwrap();
    rt.define(failing()).await.unwrap();
    rt.start();
    let mut diamond_ids = Vec::new();
    for i in 0..5 {
        let run = rt.launch_with("diamond", json!({"n": i})).await.unwrap();
        assert_eq!(wait(&run).await, RunStatus::Completed);
        diamond_ids.push(run.id());
    }
    let failed = rt.launch("failing").await.unwrap();
    assert_eq!(wait(&failed).await, RunStatus::Failed);

    let all = rt.runs(&RunFilter::new()).await.unwrap();
    assert_eq!(all.iter().map(|r| r.id).collect::<Vec<_>>(), [failed.id(), diamond_ids[4], diamond_ids[3], diamond_ids[2], diamond_ids[1], diamond_ids[0]]);
    assert_eq!(all[1].arguments, json!({"n": 4}));
    assert_eq!(all[1].pipeline, "diamond");
    assert_eq!(all[1].trigger, Trigger::Manual);
    assert!(all[1].duration_ms.is_some_and(|d| d >= 0));

    let page1 = rt.runs(&RunFilter::new().pipeline("diamond").limit(2)).await.unwrap();
    assert_eq!(page1.iter().map(|r| r.id).collect::<Vec<_>>(), [diamond_ids[4], diamond_ids[3]]);
    let page2 = rt.runs(&RunFilter::new().pipeline("diamond").limit(2).before(page1[1].id)).await.unwrap();
    assert_eq!(page2.iter().map(|r| r.id).collect::<Vec<_>>(), [diamond_ids[2], diamond_ids[1]]);
    let page3 = rt.runs(&RunFilter::new().pipeline("diamond").limit(2).before(page2[1].id)).await.unwrap();
    assert_eq!(page3.iter().map(|r| r.id).collect::<Vec<_>>(), [diamond_ids[0]]);

    let failed_only = rt.runs(&RunFilter::new().status(RunStatus::Failed)).await.unwrap();
    assert_eq!(failed_only.iter().map(|r| r.id).collect::<Vec<_>>(), [failed.id()]);
    assert!(rt.runs(&RunFilter::new().trigger(Trigger::Schedule)).await.unwrap().is_empty());
    assert_eq!(rt.runs(&RunFilter::new().from(Utc::now() - chrono::TimeDelta::hours(1))).await.unwrap().len(), 6);
    assert!(rt.runs(&RunFilter::new().to(Utc::now() - chrono::TimeDelta::hours(1))).await.unwrap().is_empty());
    assert!(matches!(rt.runs(&RunFilter::new().pipeline("nope")).await, Err(Error::UnknownPipeline { name }) if name == "nope"));

    // Throughput counts every task run that ended in the last hour.
    let minutes = rt.throughput(Utc::now() - chrono::TimeDelta::hours(1)).await.unwrap();
    assert!(minutes.len() >= 60 && minutes.windows(2).all(|w| w[0].minute < w[1].minute));
    assert_eq!(minutes.iter().map(|m| m.completed).sum::<i64>(), 20);
    assert_eq!(minutes.iter().map(|m| m.failed).sum::<i64>(), 1);
    rt.shutdown().await;
}

async fn a_run_in_detail_has_its_stage_graph_task_runs_and_errors(db: TestDb) {
    let rt = db.runtime().await;
    rt.define(diamond()).await.unwrap();
    rt.define(failing()).await.unwrap();
    rt.start();
    let run = rt.launch("diamond").await.unwrap();
    assert_eq!(wait(&run).await, RunStatus::Completed);
    let detail = rt.run_detail(run.id()).await.unwrap();
    assert_eq!(detail.run.status, RunStatus::Completed);
    let stages: Vec<_> = detail.stages.iter().map(|s| (s.stage.as_str(), s.depth, s.status)).collect();
    assert_eq!(
        stages,
        [
            ("a", 0, Some(RunStatus::Completed)),
            ("b", 1, Some(RunStatus::Completed)),
            ("c", 1, Some(RunStatus::Completed)),
            ("d", 2, Some(RunStatus::Completed))
        ]
    );
    assert_eq!(detail.stages[3].prerequisites, ["b", "c"]);
    assert_eq!(detail.task_runs.len(), 4);
    assert_eq!(detail.task_runs[0].task, "a1");
    assert_eq!(detail.task_runs[3].task, "d1");
    assert!(detail.task_runs.iter().all(|t| t.worker.as_deref() == Some(rt.worker_id()) && t.cog == "h_echo"));
    assert_eq!(detail.task_runs[0].result, Some(json!("a")));
    assert!(detail.errors.is_empty());

    let failed = rt.launch("failing").await.unwrap();
    assert_eq!(wait(&failed).await, RunStatus::Failed);
    let detail = rt.run_detail(failed.id()).await.unwrap();
    assert_eq!(detail.errors.len(), 1);
    assert!(detail.errors[0].message.contains("disk full"));
    assert_eq!((detail.errors[0].task.as_str(), detail.errors[0].cog.as_str(), detail.errors[0].run_id), ("boom", "h_fail", failed.id()));
    assert!(matches!(rt.run_detail(987_654).await, Err(Error::UnknownRun { id: 987_654 })));

    // The error listing, with each filter.
    let all = rt.errors(&ErrorFilter::new()).await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!((all[0].pipeline.as_str(), all[0].stage.as_str(), all[0].run_id), ("failing", "only", failed.id()));
    assert_eq!(rt.errors(&ErrorFilter::new().pipeline("failing")).await.unwrap().len(), 1);
    assert!(rt.errors(&ErrorFilter::new().pipeline("diamond")).await.unwrap().is_empty());
    assert_eq!(rt.errors(&ErrorFilter::new().cog("h_fail")).await.unwrap().len(), 1);
    assert!(rt.errors(&ErrorFilter::new().cog("h_echo")).await.unwrap().is_empty());
    assert_eq!(rt.errors(&ErrorFilter::new().error_type(all[0].error_type.clone())).await.unwrap().len(), 1);
    assert!(rt.errors(&ErrorFilter::new().error_type("other")).await.unwrap().is_empty());
    assert_eq!(rt.errors(&ErrorFilter::new().run(failed.id())).await.unwrap().len(), 1);
    assert!(rt.errors(&ErrorFilter::new().run(run.id())).await.unwrap().is_empty());
    assert!(rt.errors(&ErrorFilter::new().before(all[0].id)).await.unwrap().is_empty());
    rt.shutdown().await;
}

async fn pipelines_show_last_run_next_ticks_and_can_be_disabled(db: TestDb) {
    let rt = db.runtime().await;
    rt.define(diamond().schedule("0 3 * * *").timezone("Europe/Paris")).await.unwrap();
    rt.define(failing()).await.unwrap();
    let listed = rt.pipelines().await.unwrap();
    assert_eq!(listed.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["diamond", "failing"]);
    let d = &listed[0];
    assert_eq!((d.enabled, d.schedule.as_deref(), d.timezone.as_str(), d.stages, d.tasks), (true, Some("0 3 * * *"), "Europe/Paris", 4, 4));
    assert!(d.last_run.is_none());
    assert_eq!(d.next_ticks.len(), 3);
    for tick in &d.next_ticks {
        let local = tick.with_timezone(&chrono_tz::Europe::Paris);
        assert_eq!((local.hour(), local.minute()), (3, 0), "{tick}");
        assert!(*tick > Utc::now());
    }
    assert!(d.next_ticks.windows(2).all(|w| w[1] - w[0] >= chrono::TimeDelta::hours(23)));
    assert!(listed[1].next_ticks.is_empty(), "an unscheduled pipeline has no ticks");
    assert_eq!(rt.next_ticks("diamond", Utc::now(), 5).await.unwrap().len(), 5);

    let run = rt.launch("diamond").await.unwrap();
    let detail = rt.pipeline_detail("diamond").await.unwrap();
    assert_eq!(detail.pipeline.last_run.as_ref().map(|r| r.id), Some(run.id()));
    assert_eq!(detail.stages.iter().map(|s| (s.name.as_str(), s.depth)).collect::<Vec<_>>(), [("a", 0), ("b", 1), ("c", 1), ("d", 2)]);
    assert_eq!(detail.stages[0].tasks[0].arguments, json!({"text": "a"}));
    assert_eq!(detail.stages[0].tasks[0].queue, "default");

    rt.set_enabled("diamond", false).await.unwrap();
    assert!(!rt.pipeline_detail("diamond").await.unwrap().pipeline.enabled);
    rt.set_enabled("diamond", true).await.unwrap();
    assert!(rt.pipeline_detail("diamond").await.unwrap().pipeline.enabled);
    assert!(matches!(rt.set_enabled("nope", true).await, Err(Error::UnknownPipeline { .. })));
    assert!(matches!(rt.pipeline_detail("nope").await, Err(Error::UnknownPipeline { .. })));

    // Queue depths: the launched run's first task waits (no worker started).
    let queues = rt.queues_overview().await.unwrap();
    let default = queues.iter().find(|q| q.name == "default").unwrap();
    assert_eq!((default.queued, default.running), (1, 0));
    assert!(default.oldest_queued_at.is_some());
    assert!(default.workers.is_empty(), "no live worker");
}

on_all_backends!(
    runs_are_listed_newest_first_with_filters_and_keyset_pages,
    a_run_in_detail_has_its_stage_graph_task_runs_and_errors,
    pipelines_show_last_run_next_ticks_and_can_be_disabled,
);
