//! Arguments checked before anything runs (issue 9, item 7): `define` refuses arguments that no
//! parameter takes or that do not deserialize into the parameter's type; a launch is refused,
//! before anything is created, when a task would miss a required parameter or a launch argument
//! has the wrong type; a scheduled launch missing an argument is refused and counted.

mod support;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use cog::{CogRuntime, DefinitionError, Error, LaunchRefusal, ManualClock, PipelineSpec, RunStatus, StageSpec, TaskContext, TaskSpec, cog};
use serde_json::{Value, json};
use support::{TestDb, rows, scalar, test_config, wait};

// ---- cogs ------------------------------------------------------------------------------------

#[cog]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[cog]
fn greet(name: String, greeting: Option<String>) -> String {
    format!("{}, {name}", greeting.as_deref().unwrap_or("hello"))
}

#[cog]
fn echo(payload: Value) -> Value {
    payload
}

#[cog]
fn labelled(label: String, ctx: TaskContext) -> String {
    format!("{label}:{}", ctx.attempt())
}

#[cog]
fn nothing() {}

// ---- helpers ---------------------------------------------------------------------------------

/// Rows in every definition table.
async fn definition_rows(rt: &CogRuntime) -> Vec<i64> {
    let mut out = Vec::new();
    for table in ["cog_pipeline", "cog_stage", "cog_stage_prerequisite", "cog_task", "cog_queue", "cog_cog"] {
        out.push(scalar(rt, &format!("SELECT COUNT(*) FROM {table}")).await);
    }
    out
}

/// Rows in every run table.
async fn run_rows(rt: &CogRuntime) -> Vec<i64> {
    let mut out = Vec::new();
    for table in ["cog_pipeline_run", "cog_stage_run", "cog_task_run", "cog_error"] {
        out.push(scalar(rt, &format!("SELECT COUNT(*) FROM {table}")).await);
    }
    out
}

/// The stored arguments of task `task`.
async fn stored_arguments(rt: &CogRuntime, task: &str) -> Value {
    let row = rows(rt, &format!("SELECT arguments FROM cog_task WHERE name = '{task}'")).await;
    serde_json::from_str(&row[0].try_get_by_index::<String>(0).unwrap()).unwrap()
}

/// Defines `spec`, expects a [`DefinitionError`], and checks no definition row was added or changed.
async fn rejected(rt: &CogRuntime, spec: PipelineSpec, watched_task: &str) -> (DefinitionError, String) {
    let before = (definition_rows(rt).await, stored_arguments(rt, watched_task).await);
    let err = rt.define(spec).await.expect_err("define must refuse the arguments");
    let message = err.to_string();
    assert_eq!((definition_rows(rt).await, stored_arguments(rt, watched_task).await), before, "a refused definition changed the database: {message}");
    match err {
        Error::Definition(e) => (e, message),
        other => panic!("expected Error::Definition, got {other:?}"),
    }
}

/// Launches with `arguments`, expects an error, and checks no run row was created.
async fn refused_launch(rt: &CogRuntime, name: &str, arguments: Value) -> Error {
    let before = run_rows(rt).await;
    let err = rt.launch_with(name, arguments).await.expect_err("the launch must be refused");
    assert_eq!(run_rows(rt).await, before, "a refused launch created rows: {err}");
    err
}

fn load(args: Value) -> PipelineSpec {
    PipelineSpec::new("p").stage(StageSpec::new("load").task(TaskSpec::new("add").name("load_1").args(args)))
}

// ---- define ----------------------------------------------------------------------------------

async fn define_refuses_an_argument_no_parameter_takes(db: TestDb) {
    let rt = db.runtime().await;
    rt.define(load(json!({"a": 1, "b": 2}))).await.unwrap();
    let (error, message) = rejected(&rt, load(json!({"a": 1, "b": 2, "c": 3})), "load_1").await;
    assert_eq!(
        error,
        DefinitionError::UnknownArgument { task: "load_1".into(), cog: "add".into(), argument: "c".into(), parameters: vec!["a".into(), "b".into()] }
    );
    assert_eq!(
        message,
        "task `load_1`: cog `add` has no parameter `c`; its parameters are `a`, `b`: remove `c` from the task's .args(..) or rename it to one of them"
    );

    // A cog without parameters takes no argument; the context parameter is not an argument.
    let spec = PipelineSpec::new("q").stage(StageSpec::new("s").task(TaskSpec::new("nothing").args(json!({"x": 1}))));
    let (error, message) = rejected(&rt, spec, "load_1").await;
    assert!(matches!(&error, DefinitionError::UnknownArgument { argument, parameters, .. } if argument == "x" && parameters.is_empty()), "{error:?}");
    assert!(message.contains("it takes no arguments: remove `x`"), "{message}");
    let spec = PipelineSpec::new("q").stage(StageSpec::new("s").task(TaskSpec::new("labelled").args(json!({"label": "l", "ctx": 1}))));
    let (error, _) = rejected(&rt, spec, "load_1").await;
    assert_eq!(
        error,
        DefinitionError::UnknownArgument { task: "labelled".into(), cog: "labelled".into(), argument: "ctx".into(), parameters: vec!["label".into()] }
    );
}

async fn define_refuses_a_value_of_the_wrong_type(db: TestDb) {
    let rt = db.runtime().await;
    rt.define(load(json!({"a": 1, "b": 2}))).await.unwrap();
    let (error, message) = rejected(&rt, load(json!({"a": 1, "b": "x"})), "load_1").await;
    assert_eq!(
        error,
        DefinitionError::BadArgument {
            task: "load_1".into(),
            cog: "add".into(),
            argument: "b".into(),
            expected: "i64".into(),
            message: "invalid type: string \"x\", expected i64".into(),
        }
    );
    assert_eq!(message, "task `load_1`: argument `b` of cog `add` must be i64: invalid type: string \"x\", expected i64");
    // `null` is a value like any other: only an `Option` takes it.
    let (error, _) = rejected(&rt, load(json!({"a": null})), "load_1").await;
    assert!(matches!(&error, DefinitionError::BadArgument { argument, expected, .. } if argument == "a" && expected == "i64"), "{error:?}");
    let spec = PipelineSpec::new("q").stage(StageSpec::new("s").task(TaskSpec::new("greet").args(json!({"name": "ada", "greeting": 5}))));
    let (error, _) = rejected(&rt, spec, "load_1").await;
    assert!(matches!(&error, DefinitionError::BadArgument { argument, expected, .. } if argument == "greeting" && expected == "Option<String>"), "{error:?}");
}

async fn define_accepts_fitting_optional_and_json_value_arguments(db: TestDb) {
    let rt = db.runtime().await;
    rt.start();
    let spec = PipelineSpec::new("p").stage(
        StageSpec::new("s")
            .task(TaskSpec::new("add").args(json!({"a": 1, "b": 2})))
            .task(TaskSpec::new("greet").name("greet_plain").args(json!({"name": "ada"})))
            .task(TaskSpec::new("greet").name("greet_null").args(json!({"name": "ada", "greeting": null})))
            .task(TaskSpec::new("greet").name("greet_hi").args(json!({"name": "ada", "greeting": "hi"})))
            .task(TaskSpec::new("echo").name("echo_list").args(json!({"payload": [1, "two", {"three": 3}]})))
            .task(TaskSpec::new("echo").name("echo_none"))
            .task(TaskSpec::new("labelled").args(json!({"label": "l"}))),
    );
    rt.define(spec).await.unwrap();
    let run = rt.launch("p").await.unwrap();
    assert_eq!(wait(&run).await, RunStatus::Completed);
    let results: Vec<(String, Option<String>)> = rows(
        &rt,
        &format!(
            "SELECT t.name, tr.result FROM cog_task_run tr JOIN cog_task t ON t.id = tr.task_id JOIN cog_stage_run sr ON sr.id = tr.stage_run_id \
             WHERE sr.pipeline_run_id = {} ORDER BY t.name",
            run.id()
        ),
    )
    .await
    .iter()
    .map(|r| (r.try_get_by_index(0).unwrap(), r.try_get_by_index(1).unwrap()))
    .collect();
    let results: Vec<(String, Value)> =
        results.into_iter().map(|(name, result)| (name, result.map_or(Value::Null, |t| serde_json::from_str(&t).unwrap()))).collect();
    assert_eq!(
        results,
        [
            ("add".to_owned(), json!(3)),
            ("echo_list".to_owned(), json!([1, "two", {"three": 3}])),
            ("echo_none".to_owned(), Value::Null),
            ("greet_hi".to_owned(), json!("hi, ada")),
            ("greet_null".to_owned(), json!("hello, ada")),
            ("greet_plain".to_owned(), json!("hello, ada")),
            ("labelled".to_owned(), json!("l:1")),
        ]
    );
    rt.shutdown().await;
}

// ---- launch ----------------------------------------------------------------------------------

async fn launch_refuses_a_task_missing_a_required_argument(db: TestDb) {
    let rt = db.runtime().await;
    rt.start();
    let spec = PipelineSpec::new("p")
        .stage(StageSpec::new("extract").task(TaskSpec::new("greet").args(json!({"name": "ada"}))).task(TaskSpec::new("echo")))
        .stage(StageSpec::new("load").after(["extract"]).task(TaskSpec::new("add").name("load_1").args(json!({"a": 1}))));
    rt.define(spec).await.unwrap();

    let err = refused_launch(&rt, "p", json!({})).await;
    assert!(matches!(&err, Error::MissingArgument { task, cog, parameter } if task == "load_1" && cog == "add" && parameter == "b"), "{err:?}");
    assert_eq!(
        err.to_string(),
        "task `load_1`: cog `add` requires argument `b`, which is in neither the task's arguments nor the launch arguments; \
         pass it with launch_with(.., json!({\"b\": ..})) or in the task's .args(..)"
    );
    // `launch` is `launch_with` and `{}`; arguments for other parameters do not help.
    assert!(matches!(refused_launch(&rt, "p", json!({"a": 5, "unrelated": true})).await, Error::MissingArgument { .. }));
    assert!(matches!(rt.launch("p").await, Err(Error::MissingArgument { .. })));

    // Given as a launch argument it runs; launch arguments override the task's own.
    let run = rt.launch_with("p", json!({"b": 10, "a": 100})).await.unwrap();
    assert_eq!(wait(&run).await, RunStatus::Completed);
    let result = rows(&rt, &format!("SELECT tr.result FROM cog_task_run tr JOIN cog_stage_run sr ON sr.id = tr.stage_run_id JOIN cog_task t ON t.id = tr.task_id WHERE sr.pipeline_run_id = {} AND t.name = 'load_1'", run.id())).await;
    assert_eq!(serde_json::from_str::<Value>(&result[0].try_get_by_index::<String>(0).unwrap()).unwrap(), json!(110));
    rt.shutdown().await;
}

async fn launch_refuses_a_launch_argument_of_the_wrong_type(db: TestDb) {
    let rt = db.runtime().await;
    rt.define(load(json!({"a": 1}))).await.unwrap();
    let err = refused_launch(&rt, "p", json!({"b": "x"})).await;
    match &err {
        Error::BadLaunchArgument { task, cog, argument, expected, message } => {
            assert_eq!((task.as_str(), cog.as_str(), argument.as_str(), *expected), ("load_1", "add", "b", "i64"));
            assert_eq!(message, "invalid type: string \"x\", expected i64");
        }
        other => panic!("expected BadLaunchArgument, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "task `load_1`: launch argument `b` of cog `add` must be i64: invalid type: string \"x\", expected i64; pass a value of that type"
    );
    // Overriding an argument the task has is checked too.
    assert!(matches!(refused_launch(&rt, "p", json!({"a": [1], "b": 2})).await, Error::BadLaunchArgument { argument, .. } if argument == "a"));
    // A launch argument no task takes is kept on the run, unchecked.
    let run = rt.launch_with("p", json!({"b": 2, "note": {"any": "thing"}})).await.unwrap();
    assert_eq!(scalar(&rt, &format!("SELECT COUNT(*) FROM cog_pipeline_run WHERE id = {}", run.id())).await, 1);
}

async fn launch_checks_only_tasks_that_would_run(db: TestDb) {
    let rt = db.runtime().await;
    rt.start();
    let spec = PipelineSpec::new("p")
        .stage(StageSpec::new("on").task(TaskSpec::new("nothing")).task(TaskSpec::new("add").name("off").args(json!({"a": 1})).enabled(false)))
        .stage(StageSpec::new("disabled").enabled(false).task(TaskSpec::new("add").name("in_disabled_stage")));
    rt.define(spec).await.unwrap();
    let run = rt.launch("p").await.unwrap();
    assert_eq!(wait(&run).await, RunStatus::Completed);

    // A task left out of a new definition (archived) is not checked either.
    rt.define(PipelineSpec::new("p").stage(StageSpec::new("on").task(TaskSpec::new("nothing")))).await.unwrap();
    assert_eq!(wait(&rt.launch("p").await.unwrap()).await, RunStatus::Completed);
    rt.shutdown().await;
}

async fn launch_skips_tasks_whose_cog_this_binary_lacks(db: TestDb) {
    let rt = db.runtime().await;
    rt.start();
    // `add` needs `a` and `b`, which no one gives; a launch is refused only where this binary
    // knows the cog, so a task calling a cog compiled into another binary only is left to its worker.
    let spec = PipelineSpec::new("p").stage(StageSpec::new("s").task(TaskSpec::new("nothing")).task(TaskSpec::new("add").name("remote").critical(false)));
    rt.define(spec).await.unwrap();
    assert!(matches!(rt.launch("p").await, Err(Error::MissingArgument { task, .. }) if task == "remote"));
    rows(&rt, "UPDATE cog_cog SET name = 'add_elsewhere' WHERE name = 'add'").await;
    let run = rt.launch("p").await.unwrap();
    assert_eq!(wait(&run).await, RunStatus::Completed);
    let status = rows(&rt, &format!("SELECT tr.status FROM cog_task_run tr JOIN cog_task t ON t.id = tr.task_id JOIN cog_stage_run sr ON sr.id = tr.stage_run_id WHERE sr.pipeline_run_id = {} AND t.name = 'remote'", run.id())).await;
    assert_eq!(status[0].try_get_by_index::<String>(0).unwrap(), "failed", "the worker reports the missing cog");
    rt.shutdown().await;
}

// ---- schedule --------------------------------------------------------------------------------

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

async fn a_scheduled_launch_missing_an_argument_is_refused_and_counted(db: TestDb) {
    let clock = Arc::new(ManualClock::new(at("2030-01-01T00:00:30Z")));
    let rt = {
        let clock = Arc::clone(&clock);
        db.runtime_with(move |b| b.clock(clock).scheduler(false).config(test_config())).await
    };
    rt.start();
    rt.define(PipelineSpec::new("nightly").schedule("* * * * *").stage(StageSpec::new("s").task(TaskSpec::new("add").name("load_1").args(json!({"a": 1})))))
        .await
        .unwrap();
    clock.set(at("2030-01-01T00:01:00Z"));
    let pass = rt.run_scheduler_once().await.unwrap();
    assert!(pass.fired.is_empty(), "{pass:?}");
    assert_eq!(pass.refused.len(), 1, "{pass:?}");
    let (pipeline, tick, reason) = &pass.refused[0];
    assert_eq!((pipeline.as_str(), *tick), ("nightly", at("2030-01-01T00:01:00Z")));
    assert_eq!(reason, &LaunchRefusal::MissingArgument { task: "load_1".into(), cog: "add".into(), parameter: "b".into() });
    assert!(reason.to_string().contains("give it in the task's .args(..)"), "{reason}");
    assert_eq!(scalar(&rt, "SELECT refused_ticks FROM cog_pipeline WHERE name = 'nightly'").await, 1);
    assert_eq!(run_rows(&rt).await, [0, 0, 0, 0], "nothing was created");
    // The refused tick is not retried; the next tick is refused too until the definition is fixed.
    assert!(rt.run_scheduler_once().await.unwrap().refused.is_empty());
    rt.define(
        PipelineSpec::new("nightly").schedule("* * * * *").stage(StageSpec::new("s").task(TaskSpec::new("add").name("load_1").args(json!({"a": 1, "b": 2})))),
    )
    .await
    .unwrap();
    clock.set(at("2030-01-01T00:02:00Z"));
    let pass = rt.run_scheduler_once().await.unwrap();
    assert_eq!(pass.fired.len(), 1, "{pass:?}");
    assert_eq!(wait(&rt.handle(pass.fired[0].2)).await, RunStatus::Completed);
    assert_eq!(scalar(&rt, "SELECT refused_ticks FROM cog_pipeline WHERE name = 'nightly'").await, 1);
    rt.shutdown().await;
}

on_all_backends!(
    define_refuses_an_argument_no_parameter_takes,
    define_refuses_a_value_of_the_wrong_type,
    define_accepts_fitting_optional_and_json_value_arguments,
    launch_refuses_a_task_missing_a_required_argument,
    launch_refuses_a_launch_argument_of_the_wrong_type,
    launch_checks_only_tasks_that_would_run,
    launch_skips_tasks_whose_cog_this_binary_lacks,
    a_scheduled_launch_missing_an_argument_is_refused_and_counted,
);
