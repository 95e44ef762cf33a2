//! cog-admin: the web admin of [cog](https://docs.rs/cog), an axum [`Router`] a host mounts
//! anywhere in its own app.
//!
//! Pages (under the mount point): `/` overview, `pipelines`, `pipelines/{name}`, `runs`,
//! `runs/{id}`, `errors`, `cogs`, `queues`; a JSON API beside them under `api/`. Every link,
//! form and asset URL follows the mount point, so `app.nest("/cog", admin.router())` and
//! `app.nest("/x/y", admin.router())` both work. Actions are POST only, protected against
//! CSRF (double-submit cookie for forms, `Content-Type: application/json` for the API), and
//! refused with 403 in read-only mode. Authentication is the host's: wrap the router in
//! the host's own tower layer.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! let rt = cog::CogRuntime::builder().database_url("sqlite://cog.db?mode=rwc").build().await?;
//! let admin = cog_admin::Admin::new(rt).title("Acme jobs").read_only(false);
//! let app = axum::Router::new().nest("/cog", admin.router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```

mod api;
mod assets;
mod ctx;
mod failure;
mod pages;
mod views;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use cog::CogRuntime;

/// The admin: a [`CogRuntime`] to read from and act through, and display options.
#[derive(Clone, Debug)]
pub struct Admin {
    rt: CogRuntime,
    read_only: bool,
    title: String,
}

/// What every handler shares.
#[derive(Debug)]
pub(crate) struct State {
    /// The runtime the admin reads and acts through.
    pub(crate) rt: CogRuntime,
    /// Refuse every action with 403.
    pub(crate) read_only: bool,
    /// Shown in the header and the page titles.
    pub(crate) title: String,
}

/// The state handlers receive.
pub(crate) type Shared = Arc<State>;

impl Admin {
    /// An admin over `rt`: read-write, titled "cog".
    ///
    /// The admin reads through `rt` and acts (launch, cancel, enable) through its public API.
    /// `rt` need not be started: a runtime that never calls `start()` writes nothing.
    pub fn new(rt: CogRuntime) -> Self {
        Self { rt, read_only: false, title: "cog".to_owned() }
    }

    /// With `true`, every action (launch, cancel, retry, enable/disable, pause/resume) is refused with 403 and
    /// the pages show no action buttons: for dashboards that must not act.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// The name shown in the header and in page titles (default "cog").
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = title.into();
        self
    }

    /// The router of pages, actions, JSON API and assets; mount it anywhere
    /// (`Router::nest("/cog", admin.router())`) and wrap it in the host's auth layer.
    pub fn router(self) -> Router {
        let state: Shared = Arc::new(State { rt: self.rt, read_only: self.read_only, title: self.title });
        Router::new()
            .route("/", get(pages::overview::page))
            .route("/pipelines", get(pages::pipelines::page))
            .route("/pipelines/{name}", get(pages::pipeline::page))
            .route("/pipelines/{name}/launch", post(pages::actions::launch))
            .route("/pipelines/{name}/enable", post(pages::actions::enable))
            .route("/pipelines/{name}/disable", post(pages::actions::disable))
            .route("/runs", get(pages::runs::page))
            .route("/runs/{id}", get(pages::run::page))
            .route("/runs/{id}/cancel", post(pages::actions::cancel))
            .route("/runs/{id}/retry", post(pages::actions::retry))
            .route("/errors", get(pages::errors::page))
            .route("/cogs", get(pages::cogs::page))
            .route("/queues", get(pages::queues::page))
            .route("/queues/{name}/pause", post(pages::actions::pause_queue))
            .route("/queues/{name}/resume", post(pages::actions::resume_queue))
            .route("/api/pipelines", get(api::pipelines))
            .route("/api/pipelines/{name}", get(api::pipeline))
            .route("/api/pipelines/{name}/launch", post(api::launch))
            .route("/api/runs", get(api::runs))
            .route("/api/runs/{id}", get(api::run))
            .route("/api/runs/{id}/cancel", post(api::cancel))
            .route("/api/runs/{id}/retry", post(api::retry))
            .route("/api/errors", get(api::errors))
            .route("/api/cogs", get(api::cogs))
            .route("/api/queues", get(api::queues))
            .route("/api/queues/{name}/pause", post(api::pause_queue))
            .route("/api/queues/{name}/resume", post(api::resume_queue))
            .route("/api/workers", get(api::workers))
            .route("/api/health", get(api::health))
            .route("/api/{*rest}", axum::routing::any(api::not_found))
            .route("/assets/admin.css", get(assets::css))
            .route("/assets/admin.js", get(assets::js))
            .fallback(pages::not_found)
            .with_state(state)
    }
}
