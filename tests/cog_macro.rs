//! What `#[cog]` and `#[cog_error_handler]` register: each test calls a registration's `invoke`
//! directly, with no runtime, and checks the outcome.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use cog::__private::{CogArgs, CogFailure, CogOutcome, sample_task_run_info};
use cog::{TaskContext, TaskError, TaskErrorKind, TaskRunInfo, cog, cog_error_handler};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

// ---- cogs under test -------------------------------------------------------------------------

#[cog]
async fn mt_add(a: i64, b: i64) -> i64 {
    tokio::task::yield_now().await;
    a + b
}

#[cog]
fn mt_concat(first: String, second: String) -> String {
    format!("{first}{second}")
}

#[cog]
async fn mt_greet(name: String, greeting: Option<String>) -> String {
    format!("{}, {name}", greeting.unwrap_or_else(|| "hello".to_owned()))
}

#[derive(Debug, Deserialize, Serialize, PartialEq)]
struct Point {
    x: i32,
    y: i32,
}

#[cog]
fn mt_flip(p: Point) -> Point {
    Point { x: p.y, y: p.x }
}

#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refused: {}", self.0)
    }
}

#[cog]
async fn mt_checked(value: i32) -> Result<i32, Refused> {
    if value < 0 { Err(Refused(format!("{value} is negative"))) } else { Ok(value * 2) }
}

#[cog]
fn mt_read(path: String) -> std::io::Result<String> {
    Err(std::io::Error::new(std::io::ErrorKind::NotFound, format!("no file at {path}")))
}

static UNIT_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cog]
fn mt_unit() {
    UNIT_CALLS.fetch_add(1, Ordering::SeqCst);
}

#[cog]
async fn mt_unit_async(n: usize) -> () {
    UNIT_CALLS.fetch_add(n, Ordering::SeqCst);
}

#[cog]
async fn mt_with_ctx(label: String, ctx: TaskContext, factor: i32) -> String {
    format!("{label}:{}", ctx.attempt() * factor)
}

#[cog]
fn mt_sync_ctx(ctx: cog::TaskContext) -> (i32, bool) {
    (ctx.attempt(), ctx.is_cancelled())
}

#[cog]
fn mt_json(payload: serde_json::Value, tags: Option<Vec<String>>) -> Value {
    json!({"payload": payload, "tags": tags})
}

#[cog]
fn mt_order(zeta: u8, alpha: u8, mid: u8) -> Vec<u8> {
    vec![zeta, alpha, mid]
}

#[cog(name = "mt_renamed")]
fn mt_original_name(x: u32) -> u32 {
    x + 1
}

#[cog]
fn r#mt_raw(r#type: String) -> String {
    r#type
}

#[cog]
fn mt_same_names(mt_same_names: i32) -> i32 {
    mt_same_names * 10
}

#[cog]
fn mt_blocking_thread() -> Option<String> {
    // A plain function runs on tokio's blocking pool, not on the thread that awaits `invoke`.
    std::thread::current().name().map(str::to_owned)
}

// ---- error handlers under test ---------------------------------------------------------------

static HANDLED: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn handled() -> Vec<String> {
    HANDLED.lock().unwrap().clone()
}

#[cog_error_handler]
fn mt_on_error(error: &TaskError) {
    HANDLED.lock().unwrap().push(format!("sync1:{}", error.message));
}

#[cog_error_handler]
async fn mt_on_error_async(error: &TaskError, task_run: &TaskRunInfo) {
    tokio::task::yield_now().await;
    HANDLED.lock().unwrap().push(format!("async2:{}:{}:{}", error.message, task_run.task_name, task_run.attempt));
}

#[cog_error_handler(name = "mt_handler_renamed")]
fn mt_on_error_result(error: &cog::TaskError, task_run: &cog::TaskRunInfo) -> Result<(), String> {
    HANDLED.lock().unwrap().push(format!("sync2:{}:{}", error.error_type, task_run.pipeline));
    if error.message == "fail the handler" { Err(format!("could not notify about {}", task_run.task_name)) } else { Ok(()) }
}

#[cog_error_handler]
async fn mt_on_error_async_result(error: &TaskError) -> std::io::Result<()> {
    HANDLED.lock().unwrap().push(format!("async1:{}", error.message));
    Err(std::io::Error::other(format!("mail server down for {}", error.message)))
}

// ---- helpers ---------------------------------------------------------------------------------

async fn call(name: &str, args: Value) -> CogOutcome {
    let def = cog::registry::cog(name).unwrap_or_else(|| panic!("cog `{name}` is not registered"));
    let Value::Object(map) = args else { panic!("arguments must be an object") };
    (def.invoke)(CogArgs::new(map), TaskContext::detached()).await
}

fn arguments_failure(outcome: CogOutcome) -> String {
    match outcome {
        Err(CogFailure::Arguments(message)) => message,
        other => panic!("expected an arguments failure, got {other:?}"),
    }
}

fn task_error(message: &str) -> Arc<TaskError> {
    Arc::new(TaskError { kind: TaskErrorKind::Returned, error_type: "my::Error".to_owned(), message: message.to_owned(), backtrace: None })
}

async fn handle(name: &str, message: &str) -> Result<(), String> {
    let def = cog::registry::error_handler(name).unwrap_or_else(|| panic!("error handler `{name}` is not registered"));
    (def.invoke)(task_error(message), Arc::new(sample_task_run_info())).await
}

// ---- cogs ------------------------------------------------------------------------------------

#[tokio::test]
async fn async_cog_returns_its_value_as_json() {
    assert_eq!(call("mt_add", json!({"a": 2, "b": 40})).await, Ok(json!(42)));
}

#[tokio::test]
async fn sync_cog_returns_its_value_as_json() {
    assert_eq!(call("mt_concat", json!({"first": "con", "second": "cat"})).await, Ok(json!("concat")));
    assert_eq!(call("mt_flip", json!({"p": {"x": 1, "y": 2}})).await, Ok(json!({"x": 2, "y": 1})));
}

#[tokio::test]
async fn sync_cog_runs_on_the_blocking_pool() {
    let here = std::thread::current().name().map(str::to_owned);
    let pool = tokio::task::spawn_blocking(|| std::thread::current().name().map(str::to_owned)).await.unwrap();
    assert_ne!(here, pool);
    assert_eq!(call("mt_blocking_thread", json!({})).await, Ok(json!(pool)));
}

#[tokio::test]
async fn original_functions_stay_callable() {
    assert_eq!(mt_add(1, 2).await, 3);
    assert_eq!(mt_concat("a".into(), "b".into()), "ab");
    assert_eq!(mt_original_name(1), 2);
    assert_eq!(mt_same_names(4), 40);
}

#[tokio::test]
async fn missing_argument_names_the_cog_and_the_parameter() {
    let message = arguments_failure(call("mt_add", json!({"a": 1})).await);
    assert!(message.contains("`mt_add`") && message.contains("missing argument `b`"), "{message}");
}

#[tokio::test]
async fn absent_option_parameter_is_none() {
    assert_eq!(call("mt_greet", json!({"name": "ada"})).await, Ok(json!("hello, ada")));
    assert_eq!(call("mt_greet", json!({"name": "ada", "greeting": null})).await, Ok(json!("hello, ada")));
    assert_eq!(call("mt_greet", json!({"name": "ada", "greeting": "hi"})).await, Ok(json!("hi, ada")));
}

#[tokio::test]
async fn unknown_argument_is_refused_by_name() {
    let message = arguments_failure(call("mt_add", json!({"a": 1, "b": 2, "c": 3})).await);
    assert!(message.contains("`mt_add`") && message.contains("unknown argument `c`"), "{message}");
}

#[tokio::test]
async fn wrong_type_names_the_parameter() {
    let message = arguments_failure(call("mt_add", json!({"a": 1, "b": "two"})).await);
    assert!(message.contains("`mt_add`") && message.contains("argument `b` has the wrong type"), "{message}");
    let message = arguments_failure(call("mt_flip", json!({"p": {"x": 1}})).await);
    assert!(message.contains("argument `p` has the wrong type"), "{message}");
}

#[tokio::test]
async fn err_return_is_a_returned_failure_with_type_and_message() {
    assert_eq!(call("mt_checked", json!({"value": 4})).await, Ok(json!(8)));
    match call("mt_checked", json!({"value": -3})).await {
        Err(CogFailure::Returned { error_type, message }) => {
            assert_eq!(message, "refused: -3 is negative");
            assert!(error_type.ends_with("Refused"), "{error_type}");
        }
        other => panic!("expected a returned failure, got {other:?}"),
    }
}

#[tokio::test]
async fn io_result_return_is_a_returned_failure() {
    match call("mt_read", json!({"path": "/nope"})).await {
        Err(CogFailure::Returned { error_type, message }) => {
            assert_eq!(message, "no file at /nope");
            assert_eq!(error_type, "std::io::error::Error");
        }
        other => panic!("expected a returned failure, got {other:?}"),
    }
}

#[tokio::test]
async fn unit_return_is_json_null_and_the_function_runs() {
    let before = UNIT_CALLS.load(Ordering::SeqCst);
    assert_eq!(call("mt_unit", json!({})).await, Ok(Value::Null));
    assert_eq!(call("mt_unit_async", json!({"n": 10})).await, Ok(Value::Null));
    // Other tests do not touch UNIT_CALLS, so exactly these two calls added to it.
    assert_eq!(UNIT_CALLS.load(Ordering::SeqCst) - before, 11);
}

#[tokio::test]
async fn context_parameter_receives_the_context_and_is_not_an_argument() {
    assert_eq!(call("mt_with_ctx", json!({"label": "x", "factor": 5})).await, Ok(json!("x:5")));
    assert_eq!(call("mt_sync_ctx", json!({})).await, Ok(json!([1, false])));
    // `ctx` is not taken from the arguments: passing it is an unknown argument.
    let message = arguments_failure(call("mt_sync_ctx", json!({"ctx": 1})).await);
    assert!(message.contains("unknown argument `ctx`"), "{message}");
    assert_eq!(cog::registry::cog("mt_with_ctx").unwrap().params, ["label", "factor"]);
    assert!(cog::registry::cog("mt_sync_ctx").unwrap().params.is_empty());
}

#[tokio::test]
async fn context_parameter_sees_a_cancel() {
    let ctx = TaskContext::detached();
    ctx.cancellation_token().cancel();
    let def = cog::registry::cog("mt_sync_ctx").unwrap();
    assert_eq!((def.invoke)(CogArgs::default(), ctx).await, Ok(json!([1, true])));
}

#[test]
fn params_are_listed_in_declaration_order() {
    assert_eq!(cog::registry::cog("mt_order").unwrap().params, ["zeta", "alpha", "mid"]);
    assert_eq!(cog::registry::cog("mt_add").unwrap().params, ["a", "b"]);
    assert!(cog::registry::cog("mt_unit").unwrap().params.is_empty());
}

/// `(name, type_name, optional)` of each parameter of cog `name`.
fn parameters(name: &str) -> Vec<(&'static str, &'static str, bool)> {
    cog::registry::cog(name).unwrap().parameters.iter().map(|p| (p.name, p.type_name, p.optional)).collect()
}

#[test]
fn parameters_record_name_type_as_written_and_optional() {
    assert_eq!(parameters("mt_add"), [("a", "i64", false), ("b", "i64", false)]);
    assert_eq!(parameters("mt_greet"), [("name", "String", false), ("greeting", "Option<String>", true)]);
    assert_eq!(parameters("mt_flip"), [("p", "Point", false)]);
    assert_eq!(parameters("mt_with_ctx"), [("label", "String", false), ("factor", "i32", false)], "the context is not a parameter");
    assert_eq!(parameters("mt_raw"), [("type", "String", false)]);
    assert_eq!(parameters("mt_json"), [("payload", "serde_json::Value", false), ("tags", "Option<Vec<String>>", true)]);
    assert!(parameters("mt_unit").is_empty());
    for def in cog::registry::cogs() {
        let names: Vec<&str> = def.parameters.iter().map(|p| p.name).collect();
        assert_eq!(names, def.params, "{}", def.name);
    }
}

#[test]
fn a_parameter_checks_values_against_its_type() {
    let def = cog::registry::cog("mt_greet").unwrap();
    let (name, greeting) = (&def.parameters[0], &def.parameters[1]);
    assert_eq!(name.check(&json!("ada")), Ok(()));
    assert_eq!(name.check(&json!(5)), Err("invalid type: integer `5`, expected a string".to_owned()));
    assert!(name.check(&Value::Null).is_err());
    assert_eq!(greeting.check(&Value::Null), Ok(()));
    assert!(greeting.check(&json!(["no"])).is_err());
    assert!(name.required() && !greeting.required());
    let flip = &cog::registry::cog("mt_flip").unwrap().parameters[0];
    assert_eq!(flip.check(&json!({"x": 1, "y": 2})), Ok(()));
    assert!(flip.check(&json!({"x": 1})).unwrap_err().contains("missing field `y`"));
    // `serde_json::Value` takes anything, absence included (it is read as `null`).
    let payload = &cog::registry::cog("mt_json").unwrap().parameters[0];
    for value in [Value::Null, json!(1), json!("s"), json!([1, {"a": null}]), json!({"k": [true]})] {
        assert_eq!(payload.check(&value), Ok(()), "{value}");
    }
    assert!(!payload.optional && !payload.required());
}

#[tokio::test]
async fn arguments_are_matched_by_name_not_position() {
    assert_eq!(call("mt_order", json!({"mid": 2, "alpha": 1, "zeta": 0})).await, Ok(json!([0, 1, 2])));
}

#[test]
fn module_is_the_defining_module() {
    assert_eq!(cog::registry::cog("mt_add").unwrap().module, module_path!());
    assert_eq!(cog::registry::cog("mt_inner").unwrap().module, format!("{}::inner", module_path!()));
    assert_eq!(cog::registry::error_handler("mt_on_error").unwrap().module, module_path!());
}

mod inner {
    #[cog::cog]
    pub(crate) fn mt_inner() -> &'static str {
        "inner"
    }
}

#[tokio::test]
async fn custom_name_replaces_the_function_name() {
    assert!(cog::registry::cog("mt_original_name").is_none());
    assert_eq!(cog::registry::cog("mt_renamed").unwrap().name, "mt_renamed");
    assert_eq!(call("mt_renamed", json!({"x": 1})).await, Ok(json!(2)));
}

#[tokio::test]
async fn raw_identifiers_are_registered_without_the_prefix() {
    assert_eq!(cog::registry::cog("mt_raw").unwrap().params, ["type"]);
    assert_eq!(call("mt_raw", json!({"type": "t"})).await, Ok(json!("t")));
}

#[tokio::test]
async fn a_parameter_named_like_its_function_still_works() {
    assert_eq!(call("mt_same_names", json!({"mt_same_names": 3})).await, Ok(json!(30)));
}

#[test]
fn every_cog_is_registered_once() {
    let names: Vec<&str> = cog::registry::cogs().iter().map(|c| c.name).filter(|n| n.starts_with("mt_")).collect();
    assert_eq!(
        names,
        [
            "mt_add",
            "mt_blocking_thread",
            "mt_checked",
            "mt_concat",
            "mt_flip",
            "mt_greet",
            "mt_inner",
            "mt_json",
            "mt_order",
            "mt_raw",
            "mt_read",
            "mt_renamed",
            "mt_same_names",
            "mt_sync_ctx",
            "mt_unit",
            "mt_unit_async",
            "mt_with_ctx",
        ]
    );
}

// ---- error handlers ---------------------------------------------------------------------------

#[test]
fn error_handlers_are_registered_under_their_names() {
    let names: Vec<&str> = cog::registry::error_handlers().iter().map(|h| h.name).filter(|n| n.starts_with("mt_")).collect();
    assert_eq!(names, ["mt_handler_renamed", "mt_on_error", "mt_on_error_async", "mt_on_error_async_result"]);
}

#[tokio::test]
async fn error_handlers_run_with_the_error_and_the_task_run() {
    assert_eq!(handle("mt_on_error", "boom-1").await, Ok(()));
    assert_eq!(handle("mt_on_error_async", "boom-2").await, Ok(()));
    assert_eq!(handle("mt_handler_renamed", "boom-3").await, Ok(()));
    let seen = handled();
    assert!(seen.contains(&"sync1:boom-1".to_owned()), "{seen:?}");
    assert!(seen.contains(&"async2:boom-2:sample_task:1".to_owned()), "{seen:?}");
    assert!(seen.contains(&"sync2:my::Error:sample_pipeline".to_owned()), "{seen:?}");
}

#[tokio::test]
async fn error_handler_returning_err_gives_its_message() {
    assert_eq!(handle("mt_handler_renamed", "fail the handler").await, Err("could not notify about sample_task".to_owned()));
    assert_eq!(handle("mt_on_error_async_result", "boom-4").await, Err("mail server down for boom-4".to_owned()));
    let seen = handled();
    assert!(seen.contains(&"async1:boom-4".to_owned()), "{seen:?}");
}

#[test]
fn errors_stay_small_enough_to_return_by_value() {
    // clippy's `result_large_err` warns at 128 bytes, in cog and in every host returning `cog::Error`.
    assert!(std::mem::size_of::<cog::Error>() < 128, "{}", std::mem::size_of::<cog::Error>());
}
