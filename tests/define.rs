//! Saving pipeline definitions (DESIGN invariant 11 and "Data model"): every invalid
//! definition is refused with a typed error naming the offender and leaves the database as it
//! was; valid ones are upserted in place, keep their history, archive what was left out, and
//! keep learned weights.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::sync::{LazyLock, Mutex};

use cog::{CogRuntime, DefinitionError, Error, PipelineSpec, RunStatus, StageSpec, TaskError, TaskSpec, cog, cog_error_handler};
use serde_json::{Value, json};
use support::{TestDb, rows, scalar, wait};

// ---- cogs ------------------------------------------------------------------------------------

#[cog]
fn d_noop() {}

#[cog]
fn d_add(a: i64, b: i64) -> i64 {
    a + b
}

/// Labels of the `d_record` calls, by test key.
static RECORDED: LazyLock<Mutex<HashMap<String, Vec<String>>>> = LazyLock::new(Default::default);

#[cog]
fn d_record(key: String, label: String) {
    RECORDED.lock().unwrap().entry(key).or_default().push(label);
}

fn recorded(key: &str) -> BTreeSet<String> {
    RECORDED.lock().unwrap().get(key).map(|v| v.iter().cloned().collect()).unwrap_or_default()
}

#[cog_error_handler]
fn d_handler(error: &TaskError) {
    let _ = error;
}

// ---- helpers ---------------------------------------------------------------------------------

/// Every definition table, every column but timestamps, as text, in id order.
async fn snapshot(rt: &CogRuntime) -> Vec<(String, Vec<Vec<Option<String>>>)> {
    const TABLES: &[(&str, &[&str], &str)] = &[
        ("cog_pipeline", &["id", "name", "enabled", "schedule", "timezone", "prevent_overlap"], "id"),
        ("cog_stage", &["id", "pipeline_id", "name", "enabled", "archived", "position"], "id"),
        ("cog_stage_prerequisite", &["stage_id", "prerequisite_id"], "stage_id, prerequisite_id"),
        (
            "cog_task",
            &[
                "id",
                "stage_id",
                "name",
                "cog_id",
                "arguments",
                "queue_id",
                "weight",
                "critical",
                "error_handler_id",
                "enabled",
                "archived",
                "max_retries",
                "timeout_ms",
                "position",
            ],
            "id",
        ),
        ("cog_queue", &["id", "name"], "id"),
        ("cog_cog", &["id", "name", "module", "present"], "id"),
        ("cog_error_handler", &["id", "name", "module", "present"], "id"),
    ];
    let mut out = Vec::new();
    for (table, columns, order) in TABLES {
        let select: Vec<String> = columns.iter().map(|c| support::as_text(rt, c)).collect();
        let sql = format!("SELECT {} FROM {table} ORDER BY {order}", select.join(", "));
        let values = rows(rt, &sql).await.iter().map(|r| (0..columns.len()).map(|i| r.try_get_by_index::<Option<String>>(i).unwrap()).collect()).collect();
        out.push((table.to_string(), values));
    }
    out
}

/// Row counts of cog_pipeline, cog_stage and cog_task.
async fn counts(rt: &CogRuntime) -> (i64, i64, i64) {
    (
        scalar(rt, "SELECT COUNT(*) FROM cog_pipeline").await,
        scalar(rt, "SELECT COUNT(*) FROM cog_stage").await,
        scalar(rt, "SELECT COUNT(*) FROM cog_task").await,
    )
}

/// Defines `spec`, expects a [`DefinitionError`], and checks nothing at all was written.
async fn rejected(rt: &CogRuntime, spec: PipelineSpec) -> (DefinitionError, String) {
    let before = snapshot(rt).await;
    let counted = counts(rt).await;
    let err = rt.define(spec.clone()).await.expect_err(&format!("define must refuse {spec:?}"));
    let message = err.to_string();
    assert_eq!(counts(rt).await, counted, "rows were added by a refused definition: {message}");
    assert_eq!(snapshot(rt).await, before, "the database changed on a refused definition: {message}");
    match err {
        Error::Definition(e) => (e, message),
        other => panic!("expected Error::Definition, got {other:?}"),
    }
}

/// A runtime with pipeline `p` (two stages, a handler, a schedule) and pipeline `other`
/// (stage `elsewhere`) saved.
async fn setup(db: &TestDb) -> CogRuntime {
    let rt = db.runtime().await;
    rt.define(
        PipelineSpec::new("p")
            .schedule("0 3 * * *")
            .stage(StageSpec::new("extract").task(TaskSpec::new("d_noop")).task(TaskSpec::new("d_add").name("add_1").args(json!({"a": 1, "b": 2}))))
            .stage(StageSpec::new("load").after(["extract"]).task(TaskSpec::new("d_noop").error_handler("d_handler").weight(4.0))),
    )
    .await
    .unwrap();
    rt.define(PipelineSpec::new("other").stage(StageSpec::new("elsewhere").task(TaskSpec::new("d_noop")))).await.unwrap();
    rt
}

/// A valid definition named `name` that changes much of `p` (schedule, time zone, a new queue, a
/// new stage, new weights), for the offending part to be added to.
fn changes(name: &str) -> PipelineSpec {
    PipelineSpec::new(name)
        .schedule("*/10 * * * *")
        .timezone("Europe/Paris")
        .prevent_overlap(false)
        .stage(StageSpec::new("extract").task(TaskSpec::new("d_noop").queue("queue_never_saved").weight(9.0)))
        .stage(StageSpec::new("brand_new").after(["extract"]).task(TaskSpec::new("d_add").args(json!({"a": 5, "b": 6}))))
}

/// Refuses `make(changes(name))` both as a redefinition of `p` and as a new pipeline, and runs
/// `check` on each error with the pipeline name and the error message.
async fn refuse_both(rt: &CogRuntime, make: impl Fn(PipelineSpec) -> PipelineSpec, check: impl Fn(&DefinitionError, &str, &str)) {
    for name in ["p", "fresh"] {
        let (err, message) = rejected(rt, make(changes(name))).await;
        check(&err, name, &message);
    }
    assert!(matches!(rt.launch("fresh").await, Err(Error::UnknownPipeline { .. })), "a refused new pipeline must not exist");
}

// ---- refused definitions ---------------------------------------------------------------------

async fn unknown_cog_is_refused(db: TestDb) {
    let rt = setup(&db).await;
    refuse_both(
        &rt,
        |s| s.stage(StageSpec::new("late").task(TaskSpec::new("no_such_cog").name("load_1"))),
        |e, _, message| {
            assert_eq!(e, &DefinitionError::UnknownCog { task: "load_1".into(), cog: "no_such_cog".into() });
            assert!(message.contains("load_1") && message.contains("no_such_cog"), "{message}");
        },
    )
    .await;
    // Named after the cog when no name is given.
    let (e, _) = rejected(&rt, changes("p").stage(StageSpec::new("late").task(TaskSpec::new("lod")))).await;
    assert_eq!(e, DefinitionError::UnknownCog { task: "lod".into(), cog: "lod".into() });
}

async fn unknown_error_handler_is_refused(db: TestDb) {
    let rt = setup(&db).await;
    refuse_both(
        &rt,
        |s| s.stage(StageSpec::new("late").task(TaskSpec::new("d_noop").name("handled").error_handler("no_such_handler"))),
        |e, _, message| {
            assert_eq!(e, &DefinitionError::UnknownErrorHandler { task: "handled".into(), handler: "no_such_handler".into() });
            assert!(message.contains("handled") && message.contains("no_such_handler"), "{message}");
        },
    )
    .await;
}

async fn unknown_prerequisite_is_refused(db: TestDb) {
    let rt = setup(&db).await;
    refuse_both(
        &rt,
        |s| s.stage(StageSpec::new("late").after(["extract", "nowhere"]).task(TaskSpec::new("d_noop"))),
        |e, name, message| {
            assert_eq!(e, &DefinitionError::UnknownPrerequisite { pipeline: name.into(), stage: "late".into(), prerequisite: "nowhere".into() });
            assert!(message.contains("late") && message.contains("nowhere"), "{message}");
        },
    )
    .await;
}

async fn prerequisite_in_another_pipeline_is_refused(db: TestDb) {
    let rt = setup(&db).await;
    refuse_both(
        &rt,
        |s| s.stage(StageSpec::new("late").after(["elsewhere"]).task(TaskSpec::new("d_noop"))),
        |e, _, message| {
            assert_eq!(
                e,
                &DefinitionError::PrerequisiteInOtherPipeline { stage: "late".into(), prerequisite: "elsewhere".into(), other_pipeline: "other".into() }
            );
            assert!(message.contains("late") && message.contains("elsewhere") && message.contains("other"), "{message}");
        },
    )
    .await;
}

/// Checks `cycle` is a closed walk over exactly `members`, each step one prerequisite edge
/// (all in the same direction) of `edges` (stage, prerequisite).
fn assert_cycle(cycle: &[String], members: &[&str], edges: &[(&str, &str)]) {
    assert_eq!(cycle.len(), members.len() + 1, "{cycle:?}");
    assert_eq!(cycle.first(), cycle.last(), "the first stage is repeated at the end: {cycle:?}");
    let on_cycle: BTreeSet<&str> = cycle[..members.len()].iter().map(String::as_str).collect();
    assert_eq!(on_cycle, members.iter().copied().collect::<BTreeSet<_>>(), "{cycle:?}");
    let steps: Vec<(&str, &str)> = cycle.windows(2).map(|w| (w[0].as_str(), w[1].as_str())).collect();
    let forward = steps.iter().all(|(a, b)| edges.contains(&(a, b)));
    let backward = steps.iter().all(|(a, b)| edges.contains(&(b, a)));
    assert!(forward || backward, "{cycle:?} does not follow the prerequisites {edges:?}");
}

async fn cycles_are_refused(db: TestDb) {
    let rt = setup(&db).await;
    refuse_both(
        &rt,
        |s| {
            s.stage(StageSpec::new("c1").after(["extract", "c3"]).task(TaskSpec::new("d_noop")))
                .stage(StageSpec::new("c2").after(["c1"]))
                .stage(StageSpec::new("c3").after(["c2"]).task(TaskSpec::new("d_noop")))
                .stage(StageSpec::new("tail").after(["c3"]))
        },
        |e, name, message| {
            let DefinitionError::Cycle { pipeline, cycle } = e else { panic!("expected a cycle, got {e:?}") };
            assert_eq!(pipeline, name);
            assert_cycle(cycle, &["c1", "c2", "c3"], &[("c1", "c3"), ("c2", "c1"), ("c3", "c2")]);
            for stage in ["c1", "c2", "c3"] {
                assert!(message.contains(stage), "{message}");
            }
        },
    )
    .await;
    refuse_both(
        &rt,
        |s| s.stage(StageSpec::new("selfish").after(["selfish"]).task(TaskSpec::new("d_noop"))),
        |e, name, _| assert_eq!(e, &DefinitionError::Cycle { pipeline: name.into(), cycle: vec!["selfish".into(), "selfish".into()] }),
    )
    .await;
}

async fn duplicate_names_are_refused(db: TestDb) {
    let rt = setup(&db).await;
    refuse_both(
        &rt,
        |s| s.stage(StageSpec::new("twice").task(TaskSpec::new("d_noop"))).stage(StageSpec::new("twice")),
        |e, name, message| {
            assert_eq!(e, &DefinitionError::DuplicateStage { pipeline: name.into(), stage: "twice".into() });
            assert!(message.contains("twice"), "{message}");
        },
    )
    .await;
    // Two tasks of one cog without `.name(..)` are both named after the cog.
    refuse_both(
        &rt,
        |s| s.stage(StageSpec::new("late").task(TaskSpec::new("d_add").args(json!({"a": 1, "b": 1}))).task(TaskSpec::new("d_add"))),
        |e, _, message| {
            assert_eq!(e, &DefinitionError::DuplicateTask { stage: "late".into(), task: "d_add".into() });
            assert!(message.contains("late") && message.contains("d_add"), "{message}");
        },
    )
    .await;
    // The same task name in two stages is fine.
    rt.define(changes("p").stage(StageSpec::new("late").task(TaskSpec::new("d_noop")))).await.unwrap();
}

async fn bad_schedules_and_time_zones_are_refused(db: TestDb) {
    let rt = setup(&db).await;
    for bad in ["61 * * * *", "* * *"] {
        refuse_both(
            &rt,
            |s| s.schedule(bad),
            |e, name, message| {
                let DefinitionError::InvalidSchedule { pipeline, schedule, reason } = e else { panic!("expected InvalidSchedule, got {e:?}") };
                assert_eq!((pipeline.as_str(), schedule.as_str()), (name, bad));
                assert!(!reason.is_empty());
                assert!(message.contains(bad), "{message}");
            },
        )
        .await;
    }
    refuse_both(
        &rt,
        |s| s.timezone("Mars/Olympus"),
        |e, name, message| {
            assert_eq!(e, &DefinitionError::InvalidTimezone { pipeline: name.into(), timezone: "Mars/Olympus".into() });
            assert!(message.contains("Mars/Olympus"), "{message}");
        },
    )
    .await;
}

async fn arguments_must_be_an_object(db: TestDb) {
    let rt = setup(&db).await;
    refuse_both(
        &rt,
        |s| s.stage(StageSpec::new("late").task(TaskSpec::new("d_add").name("listy").args(json!([1])))),
        |e, _, message| {
            assert_eq!(e, &DefinitionError::ArgumentsNotObject { task: "listy".into(), got: "an array" });
            assert!(message.contains("listy"), "{message}");
        },
    )
    .await;
    let (e, _) = rejected(&rt, changes("p").stage(StageSpec::new("late").task(TaskSpec::new("d_add").args(json!(null))))).await;
    assert!(matches!(e, DefinitionError::ArgumentsNotObject { task, .. } if task == "d_add"));
}

async fn bad_weights_are_refused(db: TestDb) {
    let rt = setup(&db).await;
    refuse_both(
        &rt,
        |s| s.stage(StageSpec::new("late").task(TaskSpec::new("d_noop").name("negative").weight(-1.0))),
        |e, _, message| {
            assert_eq!(e, &DefinitionError::InvalidWeight { task: "negative".into(), weight: -1.0 });
            assert!(message.contains("negative"), "{message}");
        },
    )
    .await;
    refuse_both(
        &rt,
        |s| s.stage(StageSpec::new("late").task(TaskSpec::new("d_noop").name("not_a_number").weight(f64::NAN))),
        |e, _, _| assert!(matches!(e, DefinitionError::InvalidWeight { task, weight } if task == "not_a_number" && weight.is_nan()), "{e:?}"),
    )
    .await;
    let (e, _) = rejected(&rt, changes("p").stage(StageSpec::new("late").task(TaskSpec::new("d_noop").weight(f64::INFINITY)))).await;
    assert!(matches!(e, DefinitionError::InvalidWeight { .. }), "{e:?}");
}

async fn empty_names_are_refused(db: TestDb) {
    let rt = setup(&db).await;
    let (e, _) = rejected(&rt, changes("")).await;
    assert_eq!(e, DefinitionError::EmptyName { pipeline: String::new(), what: "pipeline" });
    let (e, _) = rejected(&rt, changes("  ")).await;
    assert!(matches!(e, DefinitionError::EmptyName { what: "pipeline", .. }), "{e:?}");
    refuse_both(
        &rt,
        |s| s.stage(StageSpec::new(" ").task(TaskSpec::new("d_noop"))),
        |e, name, _| assert_eq!(e, &DefinitionError::EmptyName { pipeline: name.into(), what: "stage" }),
    )
    .await;
    refuse_both(
        &rt,
        |s| s.stage(StageSpec::new("late").task(TaskSpec::new("d_noop").name(""))),
        |e, name, _| assert_eq!(e, &DefinitionError::EmptyName { pipeline: name.into(), what: "task" }),
    )
    .await;
    refuse_both(
        &rt,
        |s| s.stage(StageSpec::new("late").task(TaskSpec::new("d_noop").queue(""))),
        |e, name, _| assert_eq!(e, &DefinitionError::EmptyName { pipeline: name.into(), what: "queue" }),
    )
    .await;
}

async fn names_longer_than_255_characters_are_refused(db: TestDb) {
    let rt = setup(&db).await;
    let long = "x".repeat(256);
    let (e, _) = rejected(&rt, changes(&long)).await;
    assert!(matches!(&e, DefinitionError::NameTooLong { what: "pipeline", length: 256, .. }), "{e:?}");
    assert!(e.to_string().contains("at most 255 characters"), "{e}");
    let l = long.clone();
    refuse_both(
        &rt,
        move |s| s.stage(StageSpec::new(l.clone()).task(TaskSpec::new("d_noop"))),
        |e, _, _| assert!(matches!(e, DefinitionError::NameTooLong { what: "stage", length: 256, .. }), "{e:?}"),
    )
    .await;
    let l = long.clone();
    refuse_both(
        &rt,
        move |s| s.stage(StageSpec::new("late").task(TaskSpec::new("d_noop").queue(l.clone()))),
        |e, _, _| assert!(matches!(e, DefinitionError::NameTooLong { what: "queue", length: 256, .. }), "{e:?}"),
    )
    .await;
    // 255 characters (multi-byte ones too) fit, on every backend.
    let fits: String = "é".repeat(255);
    rt.define(PipelineSpec::new(fits.clone()).stage(StageSpec::new(fits.clone()).task(TaskSpec::new("d_noop").name(fits.clone()).queue(fits))))
        .await
        .expect("255 characters fit");
}

async fn defines_never_deadlock_with_claims(db: TestDb) {
    // Two workers claim from queues `qa` and `qb` (claims hold queue rows in share mode) while
    // a pipeline naming them in the other order is defined again and again.
    let work = PipelineSpec::new("work")
        .prevent_overlap(false)
        .stage((0..20).fold(StageSpec::new("s"), |s, n| s.task(TaskSpec::new("d_noop").name(format!("t{n}")).queue(if n % 2 == 0 { "qa" } else { "qb" }))));
    let first = db.runtime_with(|b| b.queues(["qa", "qb"]).concurrency(4)).await;
    let second = db.runtime_with(|b| b.queues(["qb", "qa"]).concurrency(4)).await;
    first.define(work).await.unwrap();
    first.start();
    second.start();
    let launcher = {
        let rt = first.clone();
        tokio::spawn(async move {
            for _ in 0..30 {
                assert_eq!(wait(&rt.launch("work").await.unwrap()).await, RunStatus::Completed);
            }
        })
    };
    for n in 0..60 {
        let spec = PipelineSpec::new("redefined")
            .stage(StageSpec::new("s").task(TaskSpec::new("d_noop").name("b").queue("qb")).task(TaskSpec::new("d_noop").name("a").queue("qa")));
        let spec = if n % 2 == 0 { spec } else { spec.stage(StageSpec::new("extra").after(["s"]).task(TaskSpec::new("d_noop").queue("qb"))) };
        second.define(spec).await.unwrap_or_else(|e| panic!("define #{n} failed while workers claimed: {e}"));
    }
    launcher.await.unwrap();
    first.shutdown().await;
    second.shutdown().await;
}

// ---- saved definitions -----------------------------------------------------------------------

fn two_stages(name: &str) -> PipelineSpec {
    PipelineSpec::new(name)
        .stage(StageSpec::new("a").task(TaskSpec::new("d_noop")).task(TaskSpec::new("d_add").args(json!({"a": 1, "b": 2})).queue("side")))
        .stage(StageSpec::new("b").after(["a"]).task(TaskSpec::new("d_noop").error_handler("d_handler").weight(3.0)))
}

async fn define_is_idempotent(db: TestDb) {
    let rt = db.runtime().await;
    let first = rt.define(two_stages("p")).await.unwrap();
    let before = snapshot(&rt).await;
    let second = rt.define(two_stages("p")).await.unwrap();
    assert_eq!(first, second, "the pipeline keeps its id");
    assert_eq!(snapshot(&rt).await, before, "defining the same pipeline again changes nothing");
    assert_eq!(counts(&rt).await, (1, 2, 3));
    assert_eq!(scalar(&rt, "SELECT COUNT(*) FROM cog_stage_prerequisite").await, 1);
}

/// `(id, archived)` of the stage or task called `name` (a task: `stage/task`).
async fn row_state(rt: &CogRuntime, name: &str) -> (i64, bool) {
    let sql = match name.split_once('/') {
        Some((stage, task)) => {
            format!("SELECT t.id, t.archived FROM cog_task t JOIN cog_stage s ON s.id = t.stage_id WHERE s.name = '{stage}' AND t.name = '{task}'")
        }
        None => format!("SELECT id, archived FROM cog_stage WHERE name = '{name}'"),
    };
    let found = rows(rt, &sql).await;
    assert_eq!(found.len(), 1, "{sql}");
    (found[0].try_get_by_index(0).unwrap(), found[0].try_get_by_index(1).unwrap())
}

async fn redefinition_updates_in_place_and_keeps_history(db: TestDb) {
    let rt = db.runtime().await;
    rt.start();
    let v1 = PipelineSpec::new("p").schedule("0 3 * * *").stage(StageSpec::new("s").task(TaskSpec::new("d_add").args(json!({"a": 1, "b": 2}))));
    let id = rt.define(v1).await.unwrap();
    let task = row_state(&rt, "s/d_add").await.0;
    let first = rt.launch("p").await.unwrap();
    assert_eq!(wait(&first).await, RunStatus::Completed);

    let v2 = PipelineSpec::new("p")
        .timezone("Asia/Tokyo")
        .prevent_overlap(false)
        .stage(StageSpec::new("s").task(TaskSpec::new("d_add").args(json!({"a": 10, "b": 20})).critical(false).max_retries(2).queue("elsewhere")));
    assert_eq!(rt.define(v2).await.unwrap(), id, "redefinition keeps the pipeline's id");
    assert_eq!(row_state(&rt, "s/d_add").await, (task, false), "redefinition keeps the task's id");
    let saved = rows(&rt, &format!("SELECT arguments, critical, max_retries FROM cog_task WHERE id = {task}")).await;
    let arguments: Value = serde_json::from_str(&saved[0].try_get_by_index::<String>(0).unwrap()).unwrap();
    assert_eq!(arguments, json!({"a": 10, "b": 20}));
    assert!(!saved[0].try_get_by_index::<bool>(1).unwrap());
    assert_eq!(saved[0].try_get_by_index::<i32>(2).unwrap(), 2);
    let pipeline = rows(&rt, &format!("SELECT timezone, prevent_overlap, schedule FROM cog_pipeline WHERE id = {id}")).await;
    assert_eq!(pipeline[0].try_get_by_index::<String>(0).unwrap(), "Asia/Tokyo");
    assert!(!pipeline[0].try_get_by_index::<bool>(1).unwrap());
    assert_eq!(pipeline[0].try_get_by_index::<Option<String>>(2).unwrap(), None);

    // The history still points at the same rows.
    assert_eq!(scalar(&rt, &format!("SELECT pipeline_id FROM cog_pipeline_run WHERE id = {}", first.id())).await, id);
    let old_task_run =
        format!("SELECT tr.task_id FROM cog_task_run tr JOIN cog_stage_run sr ON sr.id = tr.stage_run_id WHERE sr.pipeline_run_id = {}", first.id());
    assert_eq!(scalar(&rt, &old_task_run).await, task);
    assert_eq!(counts(&rt).await, (1, 1, 1));

    // New runs use the new definition (the queue `elsewhere` is not worked on: define v3 back on default).
    rt.define(
        PipelineSpec::new("p").prevent_overlap(false).stage(StageSpec::new("s").task(TaskSpec::new("d_add").args(json!({"a": 10, "b": 20})).critical(false))),
    )
    .await
    .unwrap();
    let second = rt.launch("p").await.unwrap();
    assert_eq!(wait(&second).await, RunStatus::Completed);
    let result = rows(
        &rt,
        &format!("SELECT tr.result FROM cog_task_run tr JOIN cog_stage_run sr ON sr.id = tr.stage_run_id WHERE sr.pipeline_run_id = {}", second.id()),
    )
    .await;
    assert_eq!(serde_json::from_str::<Value>(&result[0].try_get_by_index::<String>(0).unwrap()).unwrap(), json!(30));
    assert_eq!(scalar(&rt, &format!("SELECT COUNT(*) FROM cog_pipeline_run WHERE pipeline_id = {id}")).await, 2);
    rt.shutdown().await;
}

fn recording(key: &str, with_dropped: bool) -> PipelineSpec {
    let record = |label: &str| TaskSpec::new("d_record").name(label).args(json!({"key": key, "label": label}));
    let mut keep = StageSpec::new("keep").task(record("kept"));
    if with_dropped {
        keep = keep.task(record("dropped"));
    }
    let spec = PipelineSpec::new("p").stage(keep);
    if with_dropped { spec.stage(StageSpec::new("gone").after(["keep"]).task(record("gone_task"))) } else { spec }
}

async fn left_out_stages_and_tasks_are_archived_and_come_back(db: TestDb) {
    let rt = db.runtime().await;
    rt.start();
    let names = ["keep", "gone", "keep/kept", "keep/dropped", "gone/gone_task"];
    rt.define(recording(&db.url, true)).await.unwrap();
    let mut ids = Vec::new();
    for name in names {
        let (id, archived) = row_state(&rt, name).await;
        assert!(!archived, "{name}");
        ids.push(id);
    }

    rt.define(recording(&db.url, false)).await.unwrap();
    for (name, id) in names.iter().zip(&ids) {
        let expect_archived = !matches!(*name, "keep" | "keep/kept");
        assert_eq!(row_state(&rt, name).await, (*id, expect_archived), "{name} after leaving it out");
    }
    let run = rt.launch("p").await.unwrap();
    assert_eq!(wait(&run).await, RunStatus::Completed);
    assert_eq!(recorded(&db.url), BTreeSet::from(["kept".to_owned()]), "archived stages and tasks must not run");
    assert_eq!(support::stage_statuses(&rt, run.id()).await, [("keep".to_owned(), "completed".to_owned())]);
    assert_eq!(support::task_statuses(&rt, run.id()).await, [("kept".to_owned(), "completed".to_owned())]);

    rt.define(recording(&db.url, true)).await.unwrap();
    for (name, id) in names.iter().zip(&ids) {
        assert_eq!(row_state(&rt, name).await, (*id, false), "{name} after adding it back");
    }
    let run = rt.launch("p").await.unwrap();
    assert_eq!(wait(&run).await, RunStatus::Completed);
    let all: BTreeSet<String> = ["kept", "dropped", "gone_task"].map(String::from).into();
    assert_eq!(recorded(&db.url), all);
    assert_eq!(support::task_statuses(&rt, run.id()).await.len(), 3);
    assert_eq!(counts(&rt).await, (1, 2, 3), "nothing is duplicated");
    rt.shutdown().await;
}

async fn weight(rt: &CogRuntime, task: &str) -> f64 {
    let found = rows(rt, &format!("SELECT weight FROM cog_task WHERE name = '{task}'")).await;
    assert_eq!(found.len(), 1);
    found[0].try_get_by_index(0).unwrap()
}

async fn learned_weights_survive_redefinition_unless_given(db: TestDb) {
    let rt = db.runtime().await;
    let spec = |explicit: Option<f64>| {
        let learned = TaskSpec::new("d_noop").name("learned");
        let learned = match explicit {
            Some(w) => learned.weight(w),
            None => learned,
        };
        PipelineSpec::new("p").stage(StageSpec::new("s").task(learned).task(TaskSpec::new("d_noop").name("fixed").weight(2.0)))
    };
    rt.define(spec(None)).await.unwrap();
    assert_eq!((weight(&rt, "learned").await, weight(&rt, "fixed").await), (1.0, 2.0), "default weight 1.0");
    // What a finished run would have learned.
    rows(&rt, "UPDATE cog_task SET weight = 7.25").await;
    rt.define(spec(None)).await.unwrap();
    assert_eq!(weight(&rt, "learned").await, 7.25, "a task without .weight(..) keeps its learned weight");
    assert_eq!(weight(&rt, "fixed").await, 2.0, "an explicit weight overwrites the learned one");
    rt.define(spec(Some(0.5))).await.unwrap();
    assert_eq!(weight(&rt, "learned").await, 0.5);
}

async fn queues_are_created_when_first_named(db: TestDb) {
    let rt = db.runtime().await;
    let names =
        || async { rows(&rt, "SELECT name FROM cog_queue ORDER BY name").await.iter().map(|r| r.try_get_by_index::<String>(0).unwrap()).collect::<Vec<_>>() };
    assert_eq!(names().await, ["default"], "the default queue exists after build");
    rt.define(PipelineSpec::new("p").stage(StageSpec::new("s").task(TaskSpec::new("d_noop").queue("io_bound")).task(TaskSpec::new("d_add").queue("io_bound"))))
        .await
        .unwrap();
    assert_eq!(names().await, ["default", "io_bound"]);
    let queue = scalar(&rt, "SELECT id FROM cog_queue WHERE name = 'io_bound'").await;
    assert_eq!(scalar(&rt, &format!("SELECT COUNT(*) FROM cog_task WHERE queue_id = {queue}")).await, 2);
    rt.define(PipelineSpec::new("q").stage(StageSpec::new("s").task(TaskSpec::new("d_noop").queue("io_bound")))).await.unwrap();
    assert_eq!(names().await, ["default", "io_bound"], "a known queue is not created twice");
    assert_eq!(scalar(&rt, "SELECT id FROM cog_queue WHERE name = 'io_bound'").await, queue);
}

async fn schedule(rt: &CogRuntime, pipeline: &str) -> Option<String> {
    let found = rows(rt, &format!("SELECT schedule FROM cog_pipeline WHERE name = '{pipeline}'")).await;
    assert_eq!(found.len(), 1, "pipeline {pipeline}");
    found[0].try_get_by_index(0).unwrap()
}

async fn leaving_out_the_schedule_removes_it(db: TestDb) {
    let rt = db.runtime().await;
    let stage = || StageSpec::new("s").task(TaskSpec::new("d_noop"));
    rt.define(PipelineSpec::new("p").schedule("0 3 * * *").stage(stage())).await.unwrap();
    assert_eq!(schedule(&rt, "p").await.as_deref(), Some("0 3 * * *"));
    rt.define(PipelineSpec::new("p").stage(stage())).await.unwrap();
    assert_eq!(schedule(&rt, "p").await, None);
}

async fn set_schedule_sets_removes_and_validates(db: TestDb) {
    let rt = db.runtime().await;
    rt.define(PipelineSpec::new("p").stage(StageSpec::new("s").task(TaskSpec::new("d_noop")))).await.unwrap();
    rt.set_schedule("p", Some("*/5 * * * * *")).await.unwrap();
    assert_eq!(schedule(&rt, "p").await.as_deref(), Some("*/5 * * * * *"));
    rt.set_schedule("p", None).await.unwrap();
    assert_eq!(schedule(&rt, "p").await, None);
    rt.set_schedule("p", Some("0 4 * * 1-5")).await.unwrap();
    let err = rt.set_schedule("p", Some("61 * * * *")).await.unwrap_err();
    assert!(
        matches!(&err, Error::Definition(DefinitionError::InvalidSchedule { pipeline, schedule, .. }) if pipeline == "p" && schedule == "61 * * * *"),
        "{err:?}"
    );
    assert_eq!(schedule(&rt, "p").await.as_deref(), Some("0 4 * * 1-5"), "a refused schedule changes nothing");
    assert!(matches!(rt.set_schedule("nope", None).await, Err(Error::UnknownPipeline { name }) if name == "nope"));
}

async fn five_and_six_field_schedules_are_accepted(db: TestDb) {
    let rt = db.runtime().await;
    for (name, expr) in [("five", "30 2 * * 1-5"), ("six", "*/5 * * * * *"), ("seven", "0 0 3 * * * 2099")] {
        rt.define(PipelineSpec::new(name).enabled(false).schedule(expr).timezone("Europe/Paris").stage(StageSpec::new("s").task(TaskSpec::new("d_noop"))))
            .await
            .unwrap_or_else(|e| panic!("{expr}: {e}"));
        assert_eq!(schedule(&rt, name).await.as_deref(), Some(expr));
    }
}

async fn migrations_table_is_cog_migrations(db: TestDb) {
    let rt = db.runtime().await;
    let versions: Vec<String> = rows(&rt, "SELECT version FROM cog_migrations").await.iter().map(|r| r.try_get_by_index(0).unwrap()).collect();
    assert!(!versions.is_empty(), "cog_migrations lists the applied migrations");
    let sql = match db.backend {
        "sqlite" => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'seaql_migrations'",
        _ => "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'seaql_migrations'",
    };
    assert_eq!(scalar(&rt, sql).await, 0, "no table under sea-orm's default migrations name");
    // A second runtime on the same database finds the migrations applied.
    let again = db.runtime().await;
    assert_eq!(scalar(&again, "SELECT COUNT(*) FROM cog_migrations").await, versions.len() as i64);
}

on_all_backends!(
    defines_never_deadlock_with_claims,
    names_longer_than_255_characters_are_refused,
    unknown_cog_is_refused,
    unknown_error_handler_is_refused,
    unknown_prerequisite_is_refused,
    prerequisite_in_another_pipeline_is_refused,
    cycles_are_refused,
    duplicate_names_are_refused,
    bad_schedules_and_time_zones_are_refused,
    arguments_must_be_an_object,
    bad_weights_are_refused,
    empty_names_are_refused,
    define_is_idempotent,
    redefinition_updates_in_place_and_keeps_history,
    left_out_stages_and_tasks_are_archived_and_come_back,
    learned_weights_survive_redefinition_unless_given,
    queues_are_created_when_first_named,
    leaving_out_the_schedule_removes_it,
    set_schedule_sets_removes_and_validates,
    five_and_six_field_schedules_are_accepted,
    migrations_table_is_cog_migrations,
);
