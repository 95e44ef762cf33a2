//! What running a cog records: its result as JSON, argument errors, returned errors and panics,
//! error handlers (default, custom, failing), and tasks whose cog is not in the binary
//! (DESIGN "Concepts" and invariant 12).

mod support;

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use cog::{CogRuntime, PipelineSpec, RunStatus, StageSpec, TaskError, TaskErrorKind, TaskRunInfo, TaskSpec, cog, cog_error_handler};
use serde::Serialize;
use serde_json::{Value, json};
use support::{TestDb, rows, scalar, wait};

// ---- cogs ------------------------------------------------------------------------------------

#[cog]
fn c_number() -> i64 {
    42
}

#[derive(Serialize)]
struct Point {
    x: i32,
    y: i32,
    label: String,
}

#[cog]
async fn c_struct() -> Point {
    Point { x: 1, y: -2, label: "here".into() }
}

#[cog]
fn c_unit() {}

#[cog]
fn c_typed(count: i64, label: String) -> String {
    format!("{label}{count}")
}

#[cog]
fn c_opt(name: String, greeting: Option<String>) -> String {
    format!("{}, {name}", greeting.as_deref().unwrap_or("hello"))
}

#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refused: {}", self.0)
    }
}

#[cog]
async fn c_refuse(why: String) -> Result<i32, Refused> {
    Err(Refused(why))
}

#[cog]
fn c_panic() {
    panic!("boom in c_panic");
}

/// Fails with a message naming `key`, so handlers can file their calls under it.
#[cog]
fn c_fail_keyed(key: String) -> Result<(), String> {
    Err(format!("failure for {key}"))
}

// ---- error handlers --------------------------------------------------------------------------

/// One error handler call.
#[derive(Debug, Clone)]
struct Call {
    handler: &'static str,
    error: TaskError,
    info: Option<TaskRunInfo>,
}

/// Handler calls, by error message (which names the test's key).
static CALLS: LazyLock<Mutex<HashMap<String, Vec<Call>>>> = LazyLock::new(Default::default);

fn calls(message: &str) -> Vec<Call> {
    CALLS.lock().unwrap().get(message).cloned().unwrap_or_default()
}

fn note(handler: &'static str, error: &TaskError, info: Option<&TaskRunInfo>) {
    CALLS.lock().unwrap().entry(error.message.clone()).or_default().push(Call { handler, error: error.clone(), info: info.cloned() });
}

#[cog_error_handler]
async fn h_plain(error: &TaskError) {
    note("h_plain", error, None);
}

#[cog_error_handler]
fn h_info(error: &TaskError, task_run: &TaskRunInfo) {
    note("h_info", error, Some(task_run));
}

#[cog_error_handler]
async fn h_err(error: &TaskError) -> Result<(), String> {
    note("h_err", error, None);
    Err("handler gave up".into())
}

#[cog_error_handler]
fn h_panic(error: &TaskError) {
    note("h_panic", error, None);
    panic!("handler exploded");
}

// ---- helpers ---------------------------------------------------------------------------------

/// `(status, result, error)` of the run of task `task` in run `run_id`.
async fn task_run(rt: &CogRuntime, run_id: i64, task: &str) -> (String, Option<String>, Option<String>) {
    let sql = format!(
        "SELECT tr.status, tr.result, tr.error FROM cog_task_run tr JOIN cog_task t ON t.id = tr.task_id \
         JOIN cog_stage_run sr ON sr.id = tr.stage_run_id WHERE sr.pipeline_run_id = {run_id} AND t.name = '{task}'"
    );
    let found = rows(rt, &sql).await;
    assert_eq!(found.len(), 1, "{sql}");
    (found[0].try_get_by_index(0).unwrap(), found[0].try_get_by_index(1).unwrap(), found[0].try_get_by_index(2).unwrap())
}

/// `(error_type, message)` of the cog_error rows of task `task` in run `run_id`, in id order.
async fn errors(rt: &CogRuntime, run_id: i64, task: &str) -> Vec<(String, String)> {
    let sql = format!(
        "SELECT e.error_type, e.message FROM cog_error e JOIN cog_task_run tr ON tr.id = e.task_run_id JOIN cog_task t ON t.id = tr.task_id \
         JOIN cog_stage_run sr ON sr.id = tr.stage_run_id WHERE sr.pipeline_run_id = {run_id} AND t.name = '{task}' ORDER BY e.id"
    );
    rows(rt, &sql).await.iter().map(|r| (r.try_get_by_index(0).unwrap(), r.try_get_by_index(1).unwrap())).collect()
}

fn json_of(text: Option<String>) -> Value {
    serde_json::from_str(&text.expect("a result is stored")).unwrap()
}

// ---- results ---------------------------------------------------------------------------------

async fn results_are_stored_as_json(db: TestDb) {
    let rt = db.runtime().await;
    rt.start();
    rt.define(
        PipelineSpec::new("p").stage(
            StageSpec::new("s")
                .task(TaskSpec::new("c_number"))
                .task(TaskSpec::new("c_struct"))
                .task(TaskSpec::new("c_unit"))
                .task(TaskSpec::new("c_typed").args(json!({"count": 3, "label": "x"}))),
        ),
    )
    .await
    .unwrap();
    let run = rt.launch("p").await.unwrap();
    assert_eq!(wait(&run).await, RunStatus::Completed);
    let (status, result, error) = task_run(&rt, run.id(), "c_number").await;
    assert_eq!((status.as_str(), json_of(result), error), ("completed", json!(42), None));
    assert_eq!(json_of(task_run(&rt, run.id(), "c_struct").await.1), json!({"x": 1, "y": -2, "label": "here"}));
    assert_eq!(json_of(task_run(&rt, run.id(), "c_typed").await.1), json!("x3"));
    let (status, result, _) = task_run(&rt, run.id(), "c_unit").await;
    assert_eq!(status, "completed");
    // `()` is JSON null (stored as the text `null`, or as SQL NULL).
    assert_eq!(result.map_or(Value::Null, |t| serde_json::from_str(&t).unwrap()), Value::Null);
    assert_eq!(scalar(&rt, "SELECT COUNT(*) FROM cog_error").await, 0);
    rt.shutdown().await;
}

async fn argument_errors_fail_the_task_run_naming_cog_and_parameter(db: TestDb) {
    let rt = db.runtime().await;
    rt.start();
    let typed = |name: &str| TaskSpec::new("c_typed").name(name).args(json!({"count": 1, "label": "x"})).critical(false).max_retries(3);
    rt.define(
        PipelineSpec::new("p").stage(
            StageSpec::new("s")
                .task(typed("wrong_type"))
                .task(typed("unknown_key"))
                .task(TaskSpec::new("c_opt").name("option_absent").args(json!({"name": "ada"})))
                .task(TaskSpec::new("c_opt").name("option_given").args(json!({"name": "ada", "greeting": "hi"}))),
        ),
    )
    .await
    .unwrap();
    // `define` refuses arguments that do not fit (tests/arguments.rs); stored arguments that no
    // longer fit the cog (written by an older binary, say) still fail the task run when it runs.
    for (task, arguments) in [("wrong_type", r#"{"count": "many", "label": "x"}"#), ("unknown_key", r#"{"count": 1, "label": "x", "colour": "red"}"#)] {
        rows(&rt, &format!("UPDATE cog_task SET arguments = '{arguments}' WHERE name = '{task}'")).await;
    }
    let run = rt.launch("p").await.unwrap();
    assert_eq!(wait(&run).await, RunStatus::Completed, "the failing tasks are not critical");
    for (task, offender) in [("wrong_type", "count"), ("unknown_key", "colour")] {
        let (status, result, error) = task_run(&rt, run.id(), task).await;
        assert_eq!(status, "failed", "{task}");
        assert_eq!(result, None, "{task}");
        let error = error.unwrap_or_else(|| panic!("{task}: cog_task_run.error is empty"));
        assert!(error.contains("c_typed") && error.contains(offender), "{task}: {error}");
        let recorded = errors(&rt, run.id(), task).await;
        assert_eq!(recorded.len(), 1, "{task}: argument errors are not retried: {recorded:?}");
        let (error_type, message) = &recorded[0];
        assert_eq!(error_type, "arguments", "{task}");
        assert!(message.contains("c_typed") && message.contains(offender), "{task}: {message}");
    }
    assert_eq!(json_of(task_run(&rt, run.id(), "option_absent").await.1), json!("hello, ada"));
    assert_eq!(json_of(task_run(&rt, run.id(), "option_given").await.1), json!("hi, ada"));
    rt.shutdown().await;
}

// ---- errors and handlers ---------------------------------------------------------------------

async fn the_default_handler_records_returned_errors_and_panics(db: TestDb) {
    let rt = db.runtime().await;
    rt.start();
    rt.define(
        PipelineSpec::new("p").stage(
            StageSpec::new("s")
                .task(TaskSpec::new("c_refuse").args(json!({"why": "not today"})).critical(false))
                .task(TaskSpec::new("c_panic").critical(false))
                .task(TaskSpec::new("c_number")),
        ),
    )
    .await
    .unwrap();
    let run = rt.launch("p").await.unwrap();
    assert_eq!(wait(&run).await, RunStatus::Completed);

    let (status, _, error) = task_run(&rt, run.id(), "c_refuse").await;
    assert_eq!(status, "failed");
    assert!(error.unwrap().contains("refused: not today"));
    let recorded = errors(&rt, run.id(), "c_refuse").await;
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    let (error_type, message) = &recorded[0];
    assert!(error_type.ends_with("Refused"), "error_type is the Rust type of the error: {error_type}");
    assert_eq!(error_type, std::any::type_name::<Refused>());
    assert_eq!(message, "refused: not today");

    assert_eq!(task_run(&rt, run.id(), "c_panic").await.0, "failed");
    let recorded = errors(&rt, run.id(), "c_panic").await;
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(recorded[0].0, "panic");
    assert!(recorded[0].1.contains("boom in c_panic"), "{}", recorded[0].1);
    assert_eq!(task_run(&rt, run.id(), "c_number").await.0, "completed");
    rt.shutdown().await;
}

async fn custom_handlers_get_the_error_and_the_task_run(db: TestDb) {
    let rt = db.runtime().await;
    rt.start();
    let soft_key = format!("{}#soft", db.url);
    let hard_key = format!("{}#hard", db.url);
    rt.define(
        PipelineSpec::new("p")
            .stage(
                StageSpec::new("first")
                    .task(TaskSpec::new("c_fail_keyed").name("soft").args(json!({"key": soft_key})).critical(false).error_handler("h_plain")),
            )
            .stage(
                StageSpec::new("second")
                    .after(["first"])
                    .task(TaskSpec::new("c_fail_keyed").name("hard").args(json!({"key": hard_key})).max_retries(1).error_handler("h_info")),
            ),
    )
    .await
    .unwrap();
    let run = rt.launch("p").await.unwrap();
    assert_eq!(wait(&run).await, RunStatus::Failed);

    let soft_message = format!("failure for {soft_key}");
    let hard_message = format!("failure for {hard_key}");
    // Handlers run before their failure is recorded: once `wait()` returned, every one was called.
    assert_eq!(calls(&soft_message).len(), 1);
    assert_eq!(calls(&hard_message).len(), 2);

    let soft = &calls(&soft_message)[0];
    assert_eq!(soft.handler, "h_plain");
    assert_eq!(soft.error.kind, TaskErrorKind::Returned);
    assert_eq!(soft.error.error_type, std::any::type_name::<String>());
    assert_eq!(soft.error.message, soft_message);

    let hard = calls(&hard_message);
    let hard_run_id = scalar(
        &rt,
        &format!(
            "SELECT tr.id FROM cog_task_run tr JOIN cog_task t ON t.id = tr.task_id JOIN cog_stage_run sr ON sr.id = tr.stage_run_id \
             WHERE sr.pipeline_run_id = {} AND t.name = 'hard'",
            run.id()
        ),
    )
    .await;
    for (n, call) in hard.iter().enumerate() {
        assert_eq!(call.handler, "h_info");
        assert_eq!(call.error.message, hard_message);
        assert_eq!(call.error.kind, TaskErrorKind::Returned);
        let info = call.info.as_ref().expect("the two-argument handler gets the task run");
        assert_eq!(info.task_name, "hard");
        assert_eq!(info.cog, "c_fail_keyed");
        assert_eq!(info.pipeline, "p");
        assert_eq!(info.stage, "second");
        assert_eq!(info.pipeline_run_id, run.id());
        assert_eq!(info.task_run_id, hard_run_id);
        assert!(info.critical);
        assert_eq!(info.attempt, n as i32 + 1);
        assert_eq!(info.will_retry, n == 0, "attempt {} of 2", n + 1);
    }
    // The default cog_error row is written for every failed attempt, handler or not.
    assert_eq!(errors(&rt, run.id(), "soft").await, [(std::any::type_name::<String>().to_owned(), soft_message.clone())]);
    assert_eq!(errors(&rt, run.id(), "hard").await.len(), 2);
    rt.shutdown().await;
}

async fn failing_handlers_are_recorded_and_the_worker_goes_on(db: TestDb) {
    let rt = db.runtime_with(|b| b.concurrency(1)).await;
    rt.start();
    let key = |task: &str| format!("{}#{task}", db.url);
    rt.define(
        PipelineSpec::new("p").stage(
            StageSpec::new("s")
                .task(TaskSpec::new("c_fail_keyed").name("errs").args(json!({"key": key("errs")})).critical(false).error_handler("h_err"))
                .task(TaskSpec::new("c_fail_keyed").name("panics").args(json!({"key": key("panics")})).critical(false).error_handler("h_panic")),
        ),
    )
    .await
    .unwrap();
    let run = rt.launch("p").await.unwrap();
    assert_eq!(wait(&run).await, RunStatus::Completed);
    let id = run.id();
    // A handler's failure is recorded with the failure it handled, before `wait()` returns.
    assert_eq!(errors(&rt, id, "errs").await.len(), 2);
    assert_eq!(errors(&rt, id, "panics").await.len(), 2);
    assert_eq!(calls(&format!("failure for {}", key("errs"))).len(), 1);
    assert_eq!(calls(&format!("failure for {}", key("panics"))).len(), 1);

    let errs = errors(&rt, id, "errs").await;
    assert_eq!(errs[0].1, format!("failure for {}", key("errs")), "the cog's own error comes first");
    assert_eq!(errs[1].0, "error_handler_failed");
    assert!(errs[1].1.contains("h_err") && errs[1].1.contains("handler gave up"), "{}", errs[1].1);
    let panics = errors(&rt, id, "panics").await;
    assert_eq!(panics[1].0, "error_handler_panic");
    assert!(panics[1].1.contains("h_panic") && panics[1].1.contains("handler exploded"), "{}", panics[1].1);

    // The only worker slot is still working.
    rt.define(PipelineSpec::new("later").stage(StageSpec::new("s").task(TaskSpec::new("c_number")))).await.unwrap();
    let later = rt.launch("later").await.unwrap();
    assert_eq!(wait(&later).await, RunStatus::Completed);
    assert_eq!(json_of(task_run(&rt, later.id(), "c_number").await.1), json!(42));
    rt.shutdown().await;
}

// ---- cogs missing from the binary (invariant 12) ---------------------------------------------

async fn a_task_whose_cog_is_not_in_the_binary_fails_clearly(db: TestDb) {
    let rt = db.runtime().await;
    rt.define(
        PipelineSpec::new("p")
            .stage(StageSpec::new("s").task(TaskSpec::new("c_number").name("haunted").max_retries(3)).task(TaskSpec::new("c_unit").critical(false))),
    )
    .await
    .unwrap();
    rows(
        &rt,
        "INSERT INTO cog_cog (name, module, present, updated_at) SELECT 'ghost', 'gone::module', (1 = 0), updated_at FROM cog_cog WHERE name = 'c_number'",
    )
    .await;
    rows(&rt, "UPDATE cog_task SET cog_id = (SELECT id FROM cog_cog WHERE name = 'ghost') WHERE name = 'haunted'").await;

    let run = rt.launch("p").await.unwrap();
    rt.start();
    assert_eq!(wait(&run).await, RunStatus::Failed);
    let (status, result, error) = task_run(&rt, run.id(), "haunted").await;
    assert_eq!((status.as_str(), result), ("failed", None));
    let error = error.expect("cog_task_run.error is set");
    assert!(error.contains("ghost") && error.contains("not compiled into this binary"), "{error}");
    let recorded = errors(&rt, run.id(), "haunted").await;
    assert_eq!(recorded.len(), 1, "a missing cog is not retried: {recorded:?}");
    assert!(recorded[0].1.contains("ghost") && recorded[0].1.contains("not compiled into this binary"), "{}", recorded[0].1);

    // The rows stay; the ghost is still marked absent after another build.
    let again = db.runtime().await;
    let ghost = rows(&again, "SELECT present, module FROM cog_cog WHERE name = 'ghost'").await;
    assert_eq!(ghost.len(), 1);
    assert!(!ghost[0].try_get_by_index::<bool>(0).unwrap());
    assert_eq!(scalar(&again, "SELECT COUNT(*) FROM cog_task t JOIN cog_cog c ON c.id = t.cog_id WHERE c.name = 'ghost'").await, 1);
    rt.shutdown().await;
}

/// Never returns.
#[cog_error_handler]
async fn c_hanging_handler(_error: &TaskError) {
    std::future::pending::<()>().await;
}

#[cog]
fn c_always_fails() -> Result<(), std::io::Error> {
    Err(std::io::Error::other("no luck"))
}

async fn a_hanging_handler_is_abandoned_and_recorded(db: TestDb) {
    let mut config = support::test_config();
    config.error_handler_timeout = std::time::Duration::from_millis(200);
    let rt = db.runtime_with(|b| b.concurrency(1).config(config)).await;
    rt.start();
    rt.define(PipelineSpec::new("hang").stage(StageSpec::new("s").task(TaskSpec::new("c_always_fails").critical(false).error_handler("c_hanging_handler"))))
        .await
        .unwrap();
    let run = rt.launch("hang").await.unwrap();
    assert_eq!(support::wait(&run).await, RunStatus::Completed);
    assert_eq!(support::scalar(&rt, "SELECT COUNT(*) FROM cog_error WHERE error_type = 'error_handler_timeout'").await, 1);
    // The worker's single slot is free again.
    assert_eq!(support::wait(&rt.launch("hang").await.unwrap()).await, RunStatus::Completed);
    rt.shutdown().await;
}

on_all_backends!(
    a_hanging_handler_is_abandoned_and_recorded,
    results_are_stored_as_json,
    argument_errors_fail_the_task_run_naming_cog_and_parameter,
    the_default_handler_records_returned_errors_and_panics,
    custom_handlers_get_the_error_and_the_task_run,
    failing_handlers_are_recorded_and_the_worker_goes_on,
    a_task_whose_cog_is_not_in_the_binary_fails_clearly,
);
