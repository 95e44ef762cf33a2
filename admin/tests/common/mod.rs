//! Shared by the admin's tests: cogs and pipelines to look at, and HTTP helpers over
//! `tower::ServiceExt::oneshot`.
#![allow(dead_code, unreachable_pub)]

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use cog::{CogRuntime, PipelineSpec, StageSpec, TaskContext, TaskSpec, cog};
use http_body_util::BodyExt;
use serde_json::json;
use tower::ServiceExt;

/// The hostile text every user-supplied field gets.
pub const SCRIPT: &str = "<script>alert('pwned')</script>";

/// Returns `text`.
#[cog]
fn t_echo(text: String) -> String {
    text
}

/// Fails with `message`.
#[cog]
fn t_fail(message: String) -> Result<(), std::io::Error> {
    Err(std::io::Error::other(message))
}

/// Greets `name`, with `greeting` when given (a cog with an optional parameter).
#[cog]
fn t_greet(name: String, greeting: Option<String>) -> String {
    format!("{}, {name}", greeting.as_deref().unwrap_or("hello"))
}

/// Runs until its run is canceled.
#[cog]
async fn t_slow(ctx: TaskContext) -> Result<(), std::io::Error> {
    ctx.cancelled().await;
    Err(std::io::Error::other("stopped: the run was canceled"))
}

/// A diamond `a -> (b, c) -> d` whose arguments carry a script tag.
pub fn diamond() -> PipelineSpec {
    let echo = |name: &str| TaskSpec::new("t_echo").name(name).args(json!({ "text": format!("{name} {SCRIPT}") }));
    PipelineSpec::new("diamond")
        .stage(StageSpec::new("a").task(echo("a1")))
        .stage(StageSpec::new("b").after(["a"]).task(echo("b1")))
        .stage(StageSpec::new("c").after(["a"]).task(echo("c1")))
        .stage(StageSpec::new("d").after(["b", "c"]).task(echo("d1")))
}

/// A pipeline whose only task fails with a script tag in the message.
pub fn failing() -> PipelineSpec {
    PipelineSpec::new("failing")
        .stage(StageSpec::new("only").task(TaskSpec::new("t_fail").name("boom").args(json!({ "message": format!("disk full {SCRIPT}") }))))
}

/// A pipeline that runs until canceled, scheduled daily.
pub fn slow() -> PipelineSpec {
    PipelineSpec::new("slow").schedule("0 3 * * *").timezone("Europe/Paris").stage(StageSpec::new("wait").task(TaskSpec::new("t_slow").name("forever")))
}

/// Defines the three pipelines.
pub async fn define_all(rt: &CogRuntime) {
    for spec in [diamond(), failing(), slow()] {
        rt.define(spec).await.expect("define");
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body text.
    pub body: String,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    /// A header's value.
    pub fn header(&self, name: header::HeaderName) -> String {
        self.headers.get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
    }
}

/// Sends `request` to `app`.
pub async fn send(app: &Router, request: Request<Body>) -> Reply {
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    Reply { status, headers, body: String::from_utf8(bytes.to_vec()).expect("UTF-8 body") }
}

/// `GET path`.
pub async fn get(app: &Router, path: &str) -> Reply {
    send(app, Request::get(path).body(Body::empty()).unwrap()).await
}

/// A form POST with a cookie header.
pub async fn post_form(app: &Router, path: &str, cookie: Option<&str>, form: &str) -> Reply {
    let mut request = Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        request = request.header(header::COOKIE, c);
    }
    send(app, request.body(Body::from(form.to_owned())).unwrap()).await
}

/// A JSON POST (`content_type` None = no header).
pub async fn post_json(app: &Router, path: &str, content_type: Option<&str>, body: &str) -> Reply {
    let mut request = Request::post(path);
    if let Some(ct) = content_type {
        request = request.header(header::CONTENT_TYPE, ct);
    }
    send(app, request.body(Body::from(body.to_owned())).unwrap()).await
}

/// The CSRF cookie a page sets, as `(cookie header value, token)`.
pub async fn csrf(app: &Router, page: &str) -> (String, String) {
    let reply = get(app, page).await;
    assert_eq!(reply.status, StatusCode::OK, "{page}: {}", reply.body);
    let set = reply.header(header::SET_COOKIE);
    let pair = set.split(';').next().expect("a Set-Cookie header").to_owned();
    let token = pair.split_once('=').expect("name=value").1.to_owned();
    assert!(reply.body.contains(&format!("value=\"{token}\"")), "the page's forms carry the cookie's token");
    (pair, token)
}

/// Percent-encodes a form value.
pub fn form_value(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
