//! The admin in a real headless Chromium, driven over WebDriver (`fantoccini` +
//! `/usr/bin/chromedriver`): Launch Now reaches `completed` on the run page without a reload,
//! Cancel Run (confirmed) shows `canceled`, the errors page of a failed run shows its error.
//! Screenshots of every page (desktop and phone width) go to `target/admin-screenshots/`.
//!
//! Skipped with a notice when chromedriver is missing, unless `COG_REQUIRE_BROWSER=1`.

#[path = "../../tests/support/mod.rs"]
mod support;

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cog::{PipelineSpec, RunStatus, StageSpec, TaskSpec, cog};
use cog_admin::Admin;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use support::{TestDb, wait};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// Waits `ms` milliseconds: long enough for the run page to show the run running.
#[cog]
async fn b_pause(ms: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    ms
}

/// chromedriver on a free port, stopped when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Err(e) = self.child.kill() {
            eprintln!("could not stop chromedriver: {e}");
        }
        if let Err(e) = self.child.wait() {
            eprintln!("could not reap chromedriver: {e}");
        }
    }
}

/// Starts chromedriver, or `None` (with a notice) when it is not installed and not required.
async fn chromedriver() -> Option<Driver> {
    let required = std::env::var("COG_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
    if !Path::new(CHROMEDRIVER).exists() || !Path::new(CHROMIUM).exists() {
        assert!(!required, "COG_REQUIRE_BROWSER=1 but {CHROMEDRIVER} or {CHROMIUM} is missing: apt-get install -y chromium chromium-driver");
        eprintln!("NOTICE: browser tests skipped: {CHROMEDRIVER} or {CHROMIUM} is missing (apt-get install -y chromium chromium-driver)");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(CHROMEDRIVER).arg(format!("--port={port}")).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn chromedriver");
    let driver = Driver { child, port };
    // chromedriver is ready once it accepts connections.
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Some(driver);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("chromedriver did not listen on port {port} within 10 s");
}

/// A headless Chromium session.
async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({ "binary": CHROMIUM, "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000", "--lang=en-US"] }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a WebDriver session")
}

/// Where screenshots go.
fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/admin-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot directory");
    dir
}

/// Saves a screenshot of the whole page as `name.png`.
async fn shot(client: &Client, name: &str) {
    // Grow the window to the page's height so the picture shows all of it.
    let height = client.execute("return Math.min(document.documentElement.scrollHeight, 4000);", vec![]).await.unwrap().as_u64().unwrap_or(1000);
    let width = client.execute("return window.innerWidth;", vec![]).await.unwrap().as_u64().unwrap_or(1280);
    let (w, h) = (if width < 600 { 390 } else { 1280 }, height.max(700) as u32 + 120);
    client.set_window_size(w, h).await.unwrap();
    let png = client.screenshot().await.unwrap();
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
}

/// Waits (at most 20 s) for an element.
async fn wait_for(client: &Client, css: &str) -> fantoccini::elements::Element {
    client.wait().at_most(Duration::from_secs(20)).for_element(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css} never appeared: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_admin_works_in_a_real_browser() {
    let Some(driver) = chromedriver().await else { return };
    let db = TestDb::sqlite();
    let rt = db.runtime().await;
    common::define_all(&rt).await;
    rt.define(
        PipelineSpec::new("quick")
            .stage(StageSpec::new("first").task(TaskSpec::new("b_pause").name("warm_up").args(json!({ "ms": 1200 }))))
            .stage(StageSpec::new("second").after(["first"]).task(TaskSpec::new("b_pause").name("finish").args(json!({ "ms": 800 })))),
    )
    .await
    .unwrap();
    rt.start();
    let earlier = rt.launch("diamond").await.unwrap();
    assert_eq!(wait(&earlier).await, RunStatus::Completed);

    let app = axum::Router::new().nest("/cog", Admin::new(rt.clone()).title("Acme jobs").router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/cog", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let client = browser(&driver).await;

    // Launch Now on the pipelines page, follow to the run page, watch it complete live.
    client.goto(&format!("{base}/pipelines")).await.unwrap();
    shot(&client, "pipelines").await;
    // Launch arguments that are not a JSON object are refused in the page, before any request.
    let form = "form.launch:has(button[data-launch='diamond'])";
    client.find(Locator::Css(&format!("{form} summary"))).await.unwrap().click().await.unwrap();
    let area = client.find(Locator::Css(&format!("{form} textarea"))).await.unwrap();
    area.clear().await.unwrap();
    area.send_keys("{oops").await.unwrap();
    client.find(Locator::Css("button[data-launch='diamond']")).await.unwrap().click().await.unwrap();
    let message = client.find(Locator::Css(&format!("{form} .field-error"))).await.unwrap().text().await.unwrap();
    assert!(message.contains("not valid JSON"), "{message}");
    assert_eq!(client.current_url().await.unwrap().path(), "/cog/pipelines");
    shot(&client, "pipelines-invalid-arguments").await;
    assert_eq!(rt.runs(&Default::default()).await.unwrap().len(), 1, "nothing was launched");

    client.find(Locator::Css("button[data-launch='quick']")).await.unwrap().click().await.unwrap();
    wait_for(&client, "[data-live-run]").await;
    assert!(client.current_url().await.unwrap().path().starts_with("/cog/runs/"));
    client.execute("window.__noReload = true;", vec![]).await.unwrap();
    wait_for(&client, "#run-status[data-status='running']").await;
    shot(&client, "run-running").await;
    wait_for(&client, "#run-status[data-status='completed']").await;
    let same_page = client.execute("return window.__noReload === true;", vec![]).await.unwrap();
    assert_eq!(same_page, json!(true), "the run page updated without a reload");
    let text = client.find(Locator::Css("main")).await.unwrap().text().await.unwrap();
    assert!(text.contains("warm_up") && text.contains("finish"), "{text}");
    shot(&client, "run-completed").await;

    // Launch the slow pipeline from its page, press Cancel Run, confirm: canceled.
    client.goto(&format!("{base}/pipelines/slow")).await.unwrap();
    shot(&client, "pipeline-detail").await;
    client.find(Locator::Css("button[data-launch='slow']")).await.unwrap().click().await.unwrap();
    wait_for(&client, "#cancel-run").await.click().await.unwrap();
    client.accept_alert().await.unwrap();
    wait_for(&client, "#run-status[data-status='canceled']").await;
    shot(&client, "run-canceled").await;

    // The errors page of a failed run.
    let failed = rt.launch("failing").await.unwrap();
    assert_eq!(wait(&failed).await, RunStatus::Failed);
    client.goto(&format!("{base}/runs/{}", failed.id())).await.unwrap();
    shot(&client, "run-failed").await;
    client.goto(&format!("{base}/errors?run={}", failed.id())).await.unwrap();
    let entry = wait_for(&client, "article.error-entry").await;
    let text = entry.text().await.unwrap();
    assert!(text.contains("disk full <script>alert('pwned')</script>"), "the message shows as text: {text}");
    let injected = client.execute("return window.pwned === undefined && document.querySelectorAll('main script').length === 0;", vec![]).await.unwrap();
    assert_eq!(injected, json!(true));
    shot(&client, "errors").await;

    // Retry the failed run from its page: the new run's page names the run it retries.
    client.goto(&format!("{base}/runs/{}", failed.id())).await.unwrap();
    wait_for(&client, "#retry-run").await.click().await.unwrap();
    // (The new run's page refreshes itself while the run is active: look the link up by its target.)
    wait_for(&client, &format!("#retry-of[href='/cog/runs/{}']", failed.id())).await;
    shot(&client, "run-retry").await;

    // Pause the default queue from the queues page (a badge shows it), then resume it.
    client.goto(&format!("{base}/queues")).await.unwrap();
    wait_for(&client, "form[action='/cog/queues/default/pause'] button").await.click().await.unwrap();
    wait_for(&client, "#queue-default .queue-paused").await;
    assert!(rt.queues().await.unwrap().iter().any(|q| q.name == "default" && q.paused));
    shot(&client, "queues-paused").await;
    wait_for(&client, "form[action='/cog/queues/default/resume'] button").await.click().await.unwrap();
    wait_for(&client, "form[action='/cog/queues/default/pause'] button").await;
    assert!(rt.queues().await.unwrap().iter().all(|q| !q.paused));

    // The overview follows new runs without a reload.
    client.goto(&base).await.unwrap();
    wait_for(&client, "footer").await;
    client.execute("window.__noReload = true;", vec![]).await.unwrap();
    let live = rt.launch("slow").await.unwrap();
    wait_for(&client, &format!("main a[href='/cog/runs/{}']", live.id())).await;
    assert_eq!(client.execute("return window.__noReload === true;", vec![]).await.unwrap(), json!(true), "the overview refreshed in place");
    shot(&client, "overview-live").await;
    rt.cancel(live.id()).await.unwrap();

    // The other pages, desktop and phone width.
    for (page, name) in [("", "overview"), ("/runs", "runs"), ("/cogs", "cogs"), ("/queues", "queues")] {
        client.set_window_size(1280, 1000).await.unwrap();
        client.goto(&format!("{base}{page}")).await.unwrap();
        wait_for(&client, "footer").await;
        shot(&client, name).await;
    }
    for (page, name) in [(String::new(), "phone-overview"), (format!("/runs/{}", failed.id()), "phone-run"), ("/pipelines".to_owned(), "phone-pipelines")] {
        client.set_window_size(390, 844).await.unwrap();
        client.goto(&format!("{base}{page}")).await.unwrap();
        wait_for(&client, "footer").await;
        let overflow = client.execute("return document.documentElement.scrollWidth <= window.innerWidth + 1;", vec![]).await.unwrap();
        assert_eq!(overflow, json!(true), "{name}: the page fits a phone's width (wide tables scroll inside their card)");
        shot(&client, name).await;
    }

    client.close().await.unwrap();
    server.abort();
    rt.shutdown().await;
}
