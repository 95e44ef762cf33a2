//! Per-request context of a page: the mount point (so links work under any prefix), the
//! CSRF token (double-submit cookie), and the shared state.

use axum::extract::{FromRequestParts, OriginalUri};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};

use crate::Shared;
use crate::failure::Failure;

/// The CSRF cookie's name.
pub(crate) const CSRF_COOKIE: &str = "cog_admin_csrf";

/// The request's view of the admin.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    /// The shared state.
    pub(crate) state: Shared,
    /// The mount point without a trailing slash (`""` at the root, `/cog`, `/x/y`).
    pub(crate) base: String,
    /// The CSRF token forms carry.
    pub(crate) csrf: String,
    /// Whether the token is new (the response sets the cookie).
    pub(crate) new_token: bool,
    /// The script asked for the page's content only (header `X-Cog-Fragment: main`).
    pub(crate) fragment: bool,
}

impl Ctx {
    /// `path` under the mount point: `url("runs/3")` is `/cog/runs/3` when mounted at `/cog`.
    /// The admin's root is the mount point itself (`/cog`, not `/cog/`: a nested axum router
    /// answers the former only).
    pub(crate) fn url(&self, path: &str) -> String {
        match path.trim_start_matches('/') {
            "" if !self.base.is_empty() => self.base.clone(),
            path => format!("{}/{path}", self.base),
        }
    }

    /// The `Set-Cookie` value for a new token, scoped to the mount point.
    pub(crate) fn cookie(&self) -> Option<HeaderValue> {
        if !self.new_token {
            return None;
        }
        let path = if self.base.is_empty() { "/" } else { self.base.as_str() };
        HeaderValue::from_str(&format!("{CSRF_COOKIE}={}; Path={path}; HttpOnly; SameSite=Strict", self.csrf)).ok()
    }
}

impl FromRequestParts<Shared> for Ctx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, Self::Rejection> {
        let base = base(parts);
        let (csrf, new_token) = match cookie(&parts.headers, CSRF_COOKIE) {
            Some(token) if valid_token(&token) => (token, false),
            _ => (new_token(), true),
        };
        let fragment = parts.headers.get("x-cog-fragment").is_some_and(|v| v.as_bytes() == b"main");
        Ok(Self { state: state.clone(), base, csrf, new_token, fragment })
    }
}

/// The mount point: the original path minus the path the admin's router saw.
pub(crate) fn base(parts: &Parts) -> String {
    let inner = parts.uri.path();
    let Some(original) = parts.extensions.get::<OriginalUri>().map(|o| o.0.path().to_owned()) else { return String::new() };
    let prefix = if inner == "/" { original.trim_end_matches('/') } else { original.strip_suffix(inner).unwrap_or("") };
    prefix.trim_end_matches('/').to_owned()
}

/// Cookie `name` of the request.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// A token is 64 hex digits.
fn valid_token(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

/// 32 random bytes from the OS, as hex.
fn new_token() -> String {
    let mut bytes = [0u8; 32];
    if let Err(e) = getrandom::fill(&mut bytes) {
        // Without randomness no form can be trusted: every form post will be refused.
        tracing::error!(error = %e, "no random source for CSRF tokens; form actions will be refused");
        return String::new();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks a form's token against the cookie (double submit): a cross-site page can make the
/// browser send the cookie but can neither read it nor set it, so it cannot put it in a form.
pub(crate) fn check_csrf(headers: &HeaderMap, submitted: &str) -> Result<(), Failure> {
    let expected = cookie(headers, CSRF_COOKIE).filter(|t| valid_token(t));
    match expected {
        Some(expected) if constant_time_eq(expected.as_bytes(), submitted.as_bytes()) => Ok(()),
        _ => Err(Failure::forbidden("the form's CSRF token is missing or does not match this browser's: reload the page and submit again")),
    }
}

/// Equality that takes the same time wherever the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
