//! The stylesheet and script, embedded in the binary (no build step) and served with a
//! content type and a cache lifetime.

use axum::http::header;
use axum::response::IntoResponse;

/// The stylesheet.
const CSS: &str = include_str!("assets/admin.css");
/// The script: local times, confirmations, JSON argument checks, live run updates.
const JS: &str = include_str!("assets/admin.js");

/// `GET assets/admin.css`.
pub(crate) async fn css() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=300")], CSS)
}

/// `GET assets/admin.js`.
pub(crate) async fn js() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=300")], JS)
}
