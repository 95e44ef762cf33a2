//! HTTP-level tests of every page, action and API endpoint of the admin, through
//! `tower::ServiceExt::oneshot` on SQLite and PostgreSQL: status codes, content, CSRF and
//! read-only refusals, escaping of user-supplied values, keyset paging, mounting under a
//! prefix, and auth by a host layer.

#[path = "../../tests/support/mod.rs"]
mod support;

mod common;

use axum::Router;
use axum::http::{StatusCode, header};
use cog::{Overlap, RunStatus};
use cog_admin::Admin;
use common::{SCRIPT, csrf, define_all, form_value, get, post_form, post_json};
use support::{TestDb, wait};

/// Every page answers 200 with its content; nothing user-supplied comes out unescaped.
async fn every_page_renders_and_escapes_user_values(db: TestDb) {
    let rt = db.runtime().await;
    define_all(&rt).await;
    rt.start();
    let ok = rt.launch_with("diamond", serde_json::json!({ "note": SCRIPT })).await.unwrap();
    assert_eq!(wait(&ok).await, RunStatus::Completed);
    let bad = rt.launch("failing").await.unwrap();
    assert_eq!(wait(&bad).await, RunStatus::Failed);
    let app = Admin::new(rt.clone()).title("Acme <jobs>").router();

    let pages: [(&str, &[&str]); 10] = [
        ("/", &["Overview", "Active runs", "Failed in the last 24 h", "Task throughput", "Next scheduled launches", "slow"]),
        ("/pipelines", &["diamond", "failing", "slow", "daily at 03:00", "Europe/Paris", "Launch now", "Disable"]),
        ("/pipelines/diamond", &["Stage graph", "<svg", "a1", "t_echo", "Run history", "dag-edge"]),
        ("/runs", &["All runs, newest first", &format!("#{}", ok.id()), &format!("#{}", bad.id())]),
        (&format!("/runs/{}", ok.id()), &["Run #", "status-completed", "Timeline", "gantt-bar", "Task runs", "Launch arguments"]),
        (&format!("/runs/{}", bad.id()), &["status-failed", "disk full", "Errors"]),
        ("/errors", &["disk full", "boom", &format!("Run #{}", bad.id())]),
        (
            "/cogs",
            &[
                "t_echo",
                "t_fail",
                "present",
                "Live workers",
                rt.worker_id(),
                "<code>text: String</code>",
                "<code>greeting: Option&lt;String&gt;</code> <span class=\"tag\" title=\"May be left out of the arguments\">optional</span>",
            ],
        ),
        ("/queues", &["default", "Queued", rt.worker_id()]),
        ("/errors?pipeline=failing&cog=t_fail", &["disk full"]),
    ];
    for (path, expected) in pages {
        let reply = get(&app, path).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.body);
        assert!(reply.header(header::CONTENT_TYPE).starts_with("text/html"), "{path}");
        assert_eq!(reply.header(header::X_FRAME_OPTIONS), "SAMEORIGIN", "{path} cannot be framed by another site");
        for text in expected {
            assert!(reply.body.contains(text), "{path} shows {text:?}");
        }
        assert!(!reply.body.contains("<script>alert"), "{path} escapes user values");
        assert!(reply.body.contains("Acme &lt;jobs&gt;"), "{path} escapes the title");
    }
    // The hostile values are shown, as text: arguments (task and launch), result, error message.
    let run_page = get(&app, &format!("/runs/{}", ok.id())).await.body;
    assert!(run_page.contains("&lt;script&gt;alert('pwned')&lt;/script&gt;") || run_page.contains("&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;"));
    let errors_page = get(&app, "/errors").await.body;
    assert!(errors_page.contains("disk full &lt;script&gt;"), "error message escaped");

    // Overview, first runs page, queues and cogs refresh themselves; the script asks for the content only.
    assert!(get(&app, "/").await.body.contains("data-auto-refresh=\"5\""));
    assert!(!get(&app, &format!("/runs?before={}", ok.id())).await.body.contains("data-auto-refresh"), "older pages stay put");
    let content = common::send(&app, axum::http::Request::get("/").header("x-cog-fragment", "main").body(axum::body::Body::empty()).unwrap()).await;
    assert_eq!(content.status, StatusCode::OK);
    assert!(content.body.contains("Active runs") && !content.body.contains("<html") && !content.body.contains("<nav"));

    // The live part of a run page, alone (what the page's script swaps in).
    let fragment = get(&app, &format!("/runs/{}?fragment=live", bad.id())).await;
    assert_eq!(fragment.status, StatusCode::OK);
    assert!(fragment.body.contains("status-failed") && fragment.body.contains(&format!("?run={}", bad.id())));
    assert!(!fragment.body.contains("<html") && !fragment.body.contains("<script>alert"));

    assert_eq!(get(&app, "/pipelines/nope").await.status, StatusCode::NOT_FOUND);
    assert_eq!(get(&app, "/runs/987654").await.status, StatusCode::NOT_FOUND);
    assert_eq!(get(&app, "/nowhere").await.status, StatusCode::NOT_FOUND);
    let bad_filter = get(&app, "/runs?status=sideways").await;
    assert_eq!(bad_filter.status, StatusCode::BAD_REQUEST);
    assert!(bad_filter.body.contains("unknown status `sideways`"));
    let css = get(&app, "/assets/admin.css").await;
    assert_eq!((css.status, css.header(header::CONTENT_TYPE).as_str()), (StatusCode::OK, "text/css; charset=utf-8"));
    assert!(get(&app, "/assets/admin.js").await.body.contains("data-live-run"));
    rt.shutdown().await;
}

/// Form actions need the CSRF token of the browser's cookie; with it they act and redirect.
async fn form_actions_need_the_csrf_token(db: TestDb) {
    let rt = db.runtime().await;
    define_all(&rt).await;
    let app = Admin::new(rt.clone()).router();
    let (cookie, token) = csrf(&app, "/pipelines").await;

    // No token, a wrong token, a token without its cookie: 403 and nothing launched.
    for (cookie, form) in [
        (Some(cookie.as_str()), "arguments=%7B%7D".to_owned()),
        (Some(cookie.as_str()), format!("csrf={}&arguments=%7B%7D", "0".repeat(64))),
        (None, format!("csrf={token}")),
    ] {
        let reply = post_form(&app, "/pipelines/diamond/launch", cookie, &form).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{form}: {}", reply.body);
        assert!(reply.body.contains("CSRF token"));
    }
    assert!(rt.runs(&Default::default()).await.unwrap().is_empty(), "a refused form launches nothing");

    // Launch Now with arguments: 303 to the new run, whose arguments are stored.
    let launched =
        post_form(&app, "/pipelines/diamond/launch", Some(&cookie), &format!("csrf={token}&arguments={}", form_value(r#"{"day": "2026-11-24"}"#))).await;
    assert_eq!(launched.status, StatusCode::SEE_OTHER, "{}", launched.body);
    let runs = rt.runs(&Default::default()).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(launched.header(header::LOCATION), format!("/runs/{}", runs[0].id));
    assert_eq!(runs[0].arguments, serde_json::json!({"day": "2026-11-24"}));

    // Arguments that are not a JSON object are refused, naming the problem.
    for (args, why) in [("{oops", "not valid JSON"), ("[1, 2]", "must be a JSON object")] {
        let reply = post_form(&app, "/pipelines/diamond/launch", Some(&cookie), &format!("csrf={token}&arguments={}", form_value(args))).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{args}");
        assert!(reply.body.contains(why), "{args}: {}", reply.body);
    }
    // A refused launch (overlap: the first run is still queued) is a 409 page.
    let refused = post_form(&app, "/pipelines/diamond/launch", Some(&cookie), &format!("csrf={token}")).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert!(refused.body.contains("refused"));

    // Disable, then enable from the detail page.
    let off = post_form(&app, "/pipelines/slow/disable", Some(&cookie), &format!("csrf={token}&back=detail")).await;
    assert_eq!((off.status, off.header(header::LOCATION).as_str()), (StatusCode::SEE_OTHER, "/pipelines/slow"));
    assert!(!rt.pipeline_detail("slow").await.unwrap().pipeline.enabled);
    let on = post_form(&app, "/pipelines/slow/enable", Some(&cookie), &format!("csrf={token}")).await;
    assert_eq!((on.status, on.header(header::LOCATION).as_str()), (StatusCode::SEE_OTHER, "/pipelines"));
    assert!(rt.pipeline_detail("slow").await.unwrap().pipeline.enabled);
    assert_eq!(post_form(&app, "/pipelines/nope/enable", Some(&cookie), &format!("csrf={token}")).await.status, StatusCode::NOT_FOUND);

    // Cancel Run.
    let id = runs[0].id;
    let page = get(&app, &format!("/runs/{id}")).await.body;
    assert!(page.contains("Cancel run") && page.contains("data-confirm"), "an active run offers a confirmed cancel");
    assert_eq!(post_form(&app, &format!("/runs/{id}/cancel"), Some(&cookie), "csrf=").await.status, StatusCode::FORBIDDEN);
    let canceled = post_form(&app, &format!("/runs/{id}/cancel"), Some(&cookie), &format!("csrf={token}")).await;
    assert_eq!((canceled.status, canceled.header(header::LOCATION)), (StatusCode::SEE_OTHER, format!("/runs/{id}")));
    assert_eq!(rt.run_detail(id).await.unwrap().run.status, RunStatus::Canceled);
    assert!(!get(&app, &format!("/runs/{id}")).await.body.contains("Cancel run"), "an ended run offers no cancel");
    assert_eq!(post_form(&app, "/runs/987654/cancel", Some(&cookie), &format!("csrf={token}")).await.status, StatusCode::NOT_FOUND);
}

/// A read-only admin shows no action and refuses every one with 403.
async fn read_only_refuses_every_action(db: TestDb) {
    let rt = db.runtime().await;
    define_all(&rt).await;
    let run = rt.launch("slow").await.unwrap();
    let app = Admin::new(rt.clone()).read_only(true).router();
    let pipelines = get(&app, "/pipelines").await.body;
    assert!(pipelines.contains("read-only") && !pipelines.contains("Launch now") && !pipelines.contains("Disable"));
    assert!(!get(&app, &format!("/runs/{}", run.id())).await.body.contains("Cancel run"));
    // Any well-formed token pair passes the CSRF check: the refusal must be read-only's.
    let token = "ab".repeat(32);
    let cookie = format!("cog_admin_csrf={token}");
    for path in [
        "/pipelines/diamond/launch",
        "/pipelines/slow/disable",
        "/pipelines/slow/enable",
        &format!("/runs/{}/cancel", run.id()),
        &format!("/runs/{}/retry", run.id()),
        "/queues/default/pause",
        "/queues/default/resume",
    ] {
        let reply = post_form(&app, path, Some(&cookie), &format!("csrf={token}")).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{path}");
        assert!(reply.body.contains("read-only"));
    }
    assert!(!get(&app, "/queues").await.body.contains("Pause"), "no pause button when read-only");
    for path in [
        "/api/pipelines/diamond/launch".to_owned(),
        format!("/api/runs/{}/cancel", run.id()),
        format!("/api/runs/{}/retry", run.id()),
        "/api/queues/default/pause".to_owned(),
    ] {
        let reply = post_json(&app, &path, Some("application/json"), "{}").await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{path}");
        assert!(reply.json()["error"].as_str().unwrap().contains("read-only"));
    }
    assert_eq!(rt.runs(&Default::default()).await.unwrap().len(), 1, "nothing launched");
    assert_eq!(rt.run_detail(run.id()).await.unwrap().run.status, RunStatus::Running, "nothing canceled");
    assert!(rt.queues().await.unwrap().iter().all(|q| !q.paused), "nothing paused");
}

/// Run control from the admin: pause and resume a queue (with its badge), Retry a failed
/// run, the overlap policy shown on the pipeline page; forms and JSON API.
async fn run_control_from_the_admin(db: TestDb) {
    let rt = db.runtime().await;
    define_all(&rt).await;
    rt.define(common::diamond().overlap(Overlap::BufferOne)).await.unwrap();
    rt.start();
    let app = Admin::new(rt.clone()).router();
    let (cookie, token) = csrf(&app, "/queues").await;
    let paused = |rt: cog::CogRuntime| async move { rt.queues().await.unwrap().iter().find(|q| q.name == "default").unwrap().paused };

    let page = get(&app, "/queues").await.body;
    assert!(page.contains("Pause") && !page.contains("queue-paused"), "{page}");
    assert_eq!(post_form(&app, "/queues/default/pause", Some(&cookie), "csrf=").await.status, StatusCode::FORBIDDEN);
    assert!(!paused(rt.clone()).await, "a refused form pauses nothing");
    let reply = post_form(&app, "/queues/default/pause", Some(&cookie), &format!("csrf={token}")).await;
    assert_eq!((reply.status, reply.header(header::LOCATION).as_str()), (StatusCode::SEE_OTHER, "/queues"));
    assert!(paused(rt.clone()).await);
    let page = get(&app, "/queues").await.body;
    assert!(page.contains("queue-paused") && page.contains("Resume"), "the queues page shows the pause");
    assert_eq!(get(&app, "/api/queues").await.json().as_array().unwrap().iter().find(|q| q["name"] == "default").unwrap()["paused"], true);
    let reply = post_form(&app, "/queues/default/resume", Some(&cookie), &format!("csrf={token}")).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert!(!paused(rt.clone()).await);
    assert_eq!(post_form(&app, "/queues/nope/pause", Some(&cookie), &format!("csrf={token}")).await.status, StatusCode::NOT_FOUND);
    let api = post_json(&app, "/api/queues/default/pause", Some("application/json"), "").await;
    assert_eq!((api.status, api.json()["paused"].clone()), (StatusCode::OK, serde_json::json!(true)));
    assert!(paused(rt.clone()).await);
    let api = post_json(&app, "/api/queues/default/resume", Some("application/json"), "").await;
    assert_eq!((api.status, api.json()["paused"].clone()), (StatusCode::OK, serde_json::json!(false)));
    assert_eq!(post_json(&app, "/api/queues/nope/resume", Some("application/json"), "").await.status, StatusCode::NOT_FOUND);

    let failed = rt.launch("failing").await.unwrap();
    assert_eq!(wait(&failed).await, RunStatus::Failed);
    assert!(get(&app, &format!("/runs/{}", failed.id())).await.body.contains("retry-run"), "a failed run offers Retry");
    let reply = post_form(&app, &format!("/runs/{}/retry", failed.id()), Some(&cookie), &format!("csrf={token}")).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    let retry: i64 = reply.header(header::LOCATION).trim_start_matches("/runs/").parse().unwrap();
    assert_eq!(rt.run_detail(retry).await.unwrap().run.retry_of, Some(failed.id()));
    let page = get(&app, &format!("/runs/{retry}")).await.body;
    assert!(page.contains("Retry of") && page.contains(&format!("run #{}", failed.id())), "the retry links to the run it retries");
    assert_eq!(wait(&rt.handle(retry)).await, RunStatus::Failed);
    let api = post_json(&app, &format!("/api/runs/{retry}/retry"), Some("application/json"), "").await;
    assert_eq!(api.status, StatusCode::CREATED, "{}", api.body);
    assert_eq!(wait(&rt.handle(api.json()["id"].as_i64().unwrap())).await, RunStatus::Failed);

    let completed = rt.launch("diamond").await.unwrap();
    assert_eq!(wait(&completed).await, RunStatus::Completed);
    assert!(!get(&app, &format!("/runs/{}", completed.id())).await.body.contains("retry-run"), "a completed run offers no Retry");
    let refused = post_form(&app, &format!("/runs/{}/retry", completed.id()), Some(&cookie), &format!("csrf={token}")).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(post_json(&app, "/api/runs/987654/retry", Some("application/json"), "").await.status, StatusCode::NOT_FOUND);

    let page = get(&app, "/pipelines/diamond").await.body;
    assert!(page.contains("buffer_one"), "the pipeline page shows the overlap policy");
    assert!(get(&app, "/pipelines/failing").await.body.contains(">skip<"));
    rt.shutdown().await;
}

/// The JSON API as documented: shapes, 201/409, content type check, JSON errors.
async fn the_json_api_answers_as_documented(db: TestDb) {
    let rt = db.runtime().await;
    define_all(&rt).await;
    let app = Admin::new(rt.clone()).router();

    let pipelines = get(&app, "/api/pipelines").await;
    assert_eq!(pipelines.status, StatusCode::OK);
    assert!(pipelines.header(header::CONTENT_TYPE).starts_with("application/json"));
    let list = pipelines.json();
    let slow = list.as_array().unwrap().iter().find(|p| p["name"] == "slow").unwrap().clone();
    assert_eq!((slow["enabled"].clone(), slow["schedule"].clone(), slow["timezone"].clone()), (true.into(), "0 3 * * *".into(), "Europe/Paris".into()));
    assert!(slow["last_run"].is_null() && slow["next_ticks"].as_array().unwrap().len() == 3);

    // Launch: JSON content type required (a cross-site form cannot send it).
    for ct in [None, Some("text/plain"), Some("application/x-www-form-urlencoded")] {
        let reply = post_json(&app, "/api/pipelines/slow/launch", ct, "{}").await;
        assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct:?}");
        assert!(reply.json()["error"].as_str().unwrap().contains("application/json"));
    }
    let created = post_json(&app, "/api/pipelines/slow/launch", Some("application/json; charset=utf-8"), r#"{"day": "mon"}"#).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.json()["id"].as_i64().unwrap();
    assert_eq!(rt.run_detail(id).await.unwrap().run.arguments, serde_json::json!({"day": "mon"}));
    let refused = post_json(&app, "/api/pipelines/slow/launch", Some("application/json"), "").await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert!(refused.json()["error"].as_str().unwrap().contains("refused"));
    let not_object = post_json(&app, "/api/pipelines/diamond/launch", Some("application/json"), "[1]").await;
    assert_eq!(not_object.status, StatusCode::BAD_REQUEST);
    assert!(not_object.json()["error"].as_str().unwrap().contains("JSON object"));
    let ill_typed = post_json(&app, "/api/pipelines/diamond/launch", Some("application/json"), r#"{"text": 5}"#).await;
    assert_eq!(ill_typed.status, StatusCode::BAD_REQUEST, "{}", ill_typed.body);
    assert!(ill_typed.json()["error"].as_str().unwrap().contains("launch argument `text` of cog `t_echo` must be String"), "{}", ill_typed.body);
    let unknown = post_json(&app, "/api/pipelines/nope/launch", Some("application/json"), "{}").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(unknown.json()["error"].as_str().unwrap().contains("nope"));

    // Runs and one run.
    let runs = get(&app, "/api/runs?pipeline=slow&status=running&limit=10").await.json();
    assert_eq!(runs.as_array().unwrap().len(), 1);
    assert_eq!(runs[0]["id"], id);
    let run = get(&app, &format!("/api/runs/{id}")).await.json();
    assert_eq!(run["status"], "running");
    assert_eq!(run["pipeline"], "slow");
    assert!(run["stages"].is_array() && run["task_runs"].is_array() && run["errors"].is_array());
    assert_eq!(run["task_runs"][0]["task"], "forever");
    let missing = get(&app, "/api/runs/987654").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.json()["error"].as_str().unwrap().contains("987654"));
    let bad = get(&app, "/api/runs?status=sideways").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.json()["error"].as_str().unwrap().contains("sideways"));
    assert_eq!(get(&app, "/api/runs/abc").await.status, StatusCode::BAD_REQUEST);

    // Queues, cogs, workers, errors, unknown endpoints.
    let queues = get(&app, "/api/queues").await.json();
    let default = queues.as_array().unwrap().iter().find(|q| q["name"] == "default").unwrap().clone();
    assert_eq!(default["queued"], 1);
    let cogs = get(&app, "/api/cogs").await.json();
    assert!(cogs["cogs"].as_array().unwrap().iter().any(|c| c["name"] == "t_slow"));
    let echo = cogs["cogs"].as_array().unwrap().iter().find(|c| c["name"] == "t_echo").expect("t_echo is listed");
    assert_eq!(echo["signature"], serde_json::json!([{"name": "text", "type_name": "String", "optional": false}]));
    assert!(get(&app, "/api/workers").await.json().as_array().unwrap().is_empty());
    assert!(get(&app, "/api/errors").await.json().as_array().unwrap().is_empty());
    let nowhere = get(&app, "/api/nowhere").await;
    assert_eq!(nowhere.status, StatusCode::NOT_FOUND);
    assert!(nowhere.json()["error"].is_string());

    // Cancel.
    assert_eq!(post_json(&app, &format!("/api/runs/{id}/cancel"), None, "").await.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let canceled = post_json(&app, &format!("/api/runs/{id}/cancel"), Some("application/json"), "").await;
    assert_eq!(canceled.status, StatusCode::OK, "{}", canceled.body);
    assert_eq!(canceled.json()["status"], "canceled");
    assert_eq!(post_json(&app, "/api/runs/987654/cancel", Some("application/json"), "").await.status, StatusCode::NOT_FOUND);
}

/// Keyset pages: `before` = the last id shown, "Older »" links, the API's `before`.
async fn a_restarted_background_loop_shows_on_the_overview_and_in_the_api(db: TestDb) {
    let rt = db.runtime().await;
    define_all(&rt).await;
    let app = Admin::new(rt.clone()).router();
    // An admin that runs no workers has no loops to report.
    let idle = get(&app, "/api/health").await.json();
    assert_eq!((idle["healthy"].clone(), idle["loops"].as_array().unwrap().len()), (false.into(), 0));
    assert!(!get(&app, "/").await.body.contains("background loops need attention"));

    // The claim loop panics at its first pass (asked before the start, so no pass has begun);
    // the run is launched by a runtime that does not work (a started one claims its launch's
    // first task runs itself), so it completes once the claim loop was restarted.
    rt.inject_loop_panic("claim");
    rt.start();
    let launcher = db.runtime().await;
    let run = launcher.launch("diamond").await.unwrap();
    assert_eq!(wait(&run).await, RunStatus::Completed);
    let health = get(&app, "/api/health").await.json();
    let claim = health["loops"].as_array().unwrap().iter().find(|l| l["name"] == "claim").unwrap().clone();
    assert_eq!((claim["state"].clone(), claim["restarts"].clone()), ("running".into(), 1.into()), "{health}");
    assert!(claim["last_error"].as_str().unwrap().contains("panic injected"), "{health}");
    assert_eq!(health["healthy"], true, "every loop runs again: {health}");

    rt.shutdown().await;
    let overview = get(&app, "/").await.body;
    assert!(overview.contains("background loops need attention"), "stopped loops are shown");
    assert!(overview.contains("stopped") && overview.contains("panic injected into the `claim` loop"), "with the claim loop's last error");
}

async fn runs_are_paged_by_keyset(db: TestDb) {
    let rt = db.runtime_with(|b| b.config(support::test_config().overlap_failed(true))).await;
    define_all(&rt).await;
    let mut ids = Vec::new();
    for _ in 0..55 {
        let run = rt.launch("failing").await.unwrap();
        rt.cancel(run.id()).await.unwrap();
        ids.push(run.id());
    }
    let app = Admin::new(rt.clone()).router();
    let first = get(&app, "/runs").await.body;
    assert!(first.contains(&format!("#{}<", ids[54])) && first.contains(&format!("#{}<", ids[5])), "newest 50 on the first page");
    assert!(!first.contains(&format!("#{}<", ids[4])));
    let older = format!("before={}", ids[5]);
    assert!(first.contains(&older), "an Older link continues after the last run shown");
    let second = get(&app, &format!("/runs?{older}")).await.body;
    assert!(second.contains(&format!("#{}<", ids[4])) && second.contains(&format!("#{}<", ids[0])));
    assert!(!second.contains(&format!("#{}<", ids[5])) && !second.contains("rel=\"next\""), "the last page has no Older link");

    let filtered = get(&app, "/runs?pipeline=failing&status=canceled&limit=20").await.body;
    assert!(filtered.contains(&format!("pipeline=failing&amp;status=canceled&amp;limit=20&amp;before={}", ids[35])), "filters are kept across pages");

    let page = get(&app, &format!("/api/runs?limit=3&before={}", ids[10])).await.json();
    let got: Vec<i64> = page.as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(got, [ids[9], ids[8], ids[7]]);
    assert_eq!(get(&app, "/api/runs?limit=0").await.status, StatusCode::BAD_REQUEST);
    assert_eq!(get(&app, "/api/runs?limit=100000").await.status, StatusCode::BAD_REQUEST);
}

/// Mounted under any prefix, every link, form, asset and redirect carries it.
async fn works_under_any_prefix(db: TestDb) {
    let rt = db.runtime().await;
    define_all(&rt).await;
    for prefix in ["/cog", "/x/y"] {
        let app = Router::new().nest(prefix, Admin::new(rt.clone()).router());
        for page in ["", "/pipelines", "/pipelines/diamond", "/runs", "/errors", "/cogs", "/queues"] {
            let reply = get(&app, &format!("{prefix}{page}")).await;
            assert_eq!(reply.status, StatusCode::OK, "{prefix}{page}");
            for link in ["assets/admin.css", "assets/admin.js", "pipelines\"", "runs\"", "errors\"", "cogs\"", "queues\""] {
                assert!(reply.body.contains(&format!("\"{prefix}/{link}")), "{prefix}{page} links to {prefix}/{link}");
            }
            assert!(!reply.body.contains("href=\"/pipelines"), "{prefix}{page}: no link escapes the prefix");
        }
        assert_eq!(get(&app, &format!("{prefix}/assets/admin.css")).await.status, StatusCode::OK);
        let pipelines = get(&app, &format!("{prefix}/pipelines")).await;
        assert!(pipelines.body.contains(&format!("action=\"{prefix}/pipelines/diamond/launch\"")));
        assert!(pipelines.header(header::SET_COOKIE).contains(&format!("Path={prefix};")), "the CSRF cookie is scoped to the mount point");
        let (cookie, token) = csrf(&app, &format!("{prefix}/pipelines")).await;
        let launched = post_form(&app, &format!("{prefix}/pipelines/diamond/launch"), Some(&cookie), &format!("csrf={token}")).await;
        assert_eq!(launched.status, StatusCode::SEE_OTHER);
        let location = launched.header(header::LOCATION);
        assert!(location.starts_with(&format!("{prefix}/runs/")), "{location}");
        let run_page = get(&app, &location).await.body;
        let id = location.rsplit('/').next().unwrap();
        assert!(
            run_page.contains(&format!("data-api=\"{prefix}/api/runs/{id}\""))
                && run_page.contains(&format!("data-fragment=\"{prefix}/runs/{id}?fragment=live\""))
        );
        assert_eq!(get(&app, &format!("{prefix}/api/runs/{id}")).await.json()["id"].as_i64().unwrap().to_string(), id);
        rt.cancel(id.parse().unwrap()).await.unwrap();
    }
}

/// Auth is the host's: a tower layer around the router guards pages, API and assets.
async fn a_host_layer_guards_everything(db: TestDb) {
    use axum::http::Request;
    let rt = db.runtime().await;
    define_all(&rt).await;
    async fn basic_auth(request: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
        // "admin:secret"
        if request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) == Some("Basic YWRtaW46c2VjcmV0") {
            next.run(request).await
        } else {
            axum::response::IntoResponse::into_response((StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Basic realm=\"cog\"")], "login required"))
        }
    }
    let app = Router::new().nest("/cog", Admin::new(rt.clone()).router().layer(axum::middleware::from_fn(basic_auth)));
    for path in ["/cog", "/cog/pipelines", "/cog/api/pipelines", "/cog/assets/admin.css"] {
        assert_eq!(get(&app, path).await.status, StatusCode::UNAUTHORIZED, "{path}");
        let reply =
            common::send(&app, Request::get(path).header(header::AUTHORIZATION, "Basic YWRtaW46c2VjcmV0").body(axum::body::Body::empty()).unwrap()).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
    }
    let refused = post_json(&app, "/cog/api/pipelines/slow/launch", Some("application/json"), "{}").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(rt.runs(&Default::default()).await.unwrap().is_empty());
}

/// Looking writes nothing: an admin over a runtime that never starts leaves every table as it was.
async fn looking_writes_nothing(db: TestDb) {
    let worker = db.runtime().await;
    define_all(&worker).await;
    worker.start();
    let run = worker.launch("failing").await.unwrap();
    assert_eq!(wait(&run).await, RunStatus::Failed);
    worker.shutdown().await;

    let snapshot = |rt: cog::CogRuntime| async move {
        use ::cog::entity::{cog, error, error_handler, lock, pipeline, pipeline_run, stage_run, task_run, worker, worker_cog};
        use sea_orm::EntityTrait;
        let db = rt.connection();
        vec![
            format!("{:?}", cog::Entity::find().all(db).await.unwrap()),
            format!("{:?}", error_handler::Entity::find().all(db).await.unwrap()),
            format!("{:?}", worker::Entity::find().all(db).await.unwrap()),
            format!("{:?}", worker_cog::Entity::find().all(db).await.unwrap()),
            format!("{:?}", pipeline::Entity::find().all(db).await.unwrap()),
            format!("{:?}", pipeline_run::Entity::find().all(db).await.unwrap()),
            format!("{:?}", stage_run::Entity::find().all(db).await.unwrap()),
            format!("{:?}", task_run::Entity::find().all(db).await.unwrap()),
            format!("{:?}", error::Entity::find().all(db).await.unwrap()),
            format!("{:?}", lock::Entity::find().all(db).await.unwrap()),
        ]
    };
    let dashboard = db.runtime().await;
    let before = snapshot(dashboard.clone()).await;
    assert!(before[0].contains("t_fail") && before[5].contains("Failed") && before[8].contains("disk full"), "the snapshot holds the rows: {before:?}");
    let app = Admin::new(dashboard.clone()).router();
    for path in
        ["/", "/pipelines", "/pipelines/failing", "/runs", &format!("/runs/{}", run.id()), "/errors", "/cogs", "/queues", "/api/pipelines", "/api/queues"]
    {
        assert_eq!(get(&app, path).await.status, StatusCode::OK, "{path}");
    }
    assert_eq!(snapshot(dashboard).await, before, "no page wrote anything");
}

on_all_backends!(
    a_restarted_background_loop_shows_on_the_overview_and_in_the_api,
    looking_writes_nothing,
    every_page_renders_and_escapes_user_values,
    form_actions_need_the_csrf_token,
    read_only_refuses_every_action,
    the_json_api_answers_as_documented,
    run_control_from_the_admin,
    runs_are_paged_by_keyset,
    works_under_any_prefix,
    a_host_layer_guards_everything,
);
