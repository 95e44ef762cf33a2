//! What can go wrong in a request, and how it is answered: JSON for the API, a page for the
//! HTML side (see `pages::error_page`).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// A refused or failed request, with a message that names the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    /// The HTTP status.
    pub(crate) status: StatusCode,
    /// What went wrong and what to do.
    pub(crate) message: String,
}

impl Failure {
    /// 400.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, message: message.into() }
    }
    /// 403.
    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self { status: StatusCode::FORBIDDEN, message: message.into() }
    }
    /// 404.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self { status: StatusCode::NOT_FOUND, message: message.into() }
    }
    /// 415.
    pub(crate) fn unsupported(message: impl Into<String>) -> Self {
        Self { status: StatusCode::UNSUPPORTED_MEDIA_TYPE, message: message.into() }
    }
    /// 403 for any action of a read-only admin.
    pub(crate) fn read_only() -> Self {
        Self::forbidden("this admin is read-only: actions (launch, cancel, retry, enable, disable, pause, resume) are disabled")
    }
}

impl From<cog::Error> for Failure {
    fn from(e: cog::Error) -> Self {
        let status = match &e {
            cog::Error::UnknownPipeline { .. } | cog::Error::UnknownRun { .. } | cog::Error::UnknownQueue { .. } => StatusCode::NOT_FOUND,
            cog::Error::LaunchRefused { .. } | cog::Error::RetryOfActiveRun { .. } | cog::Error::RetryOfCompletedRun { .. } => StatusCode::CONFLICT,
            cog::Error::LaunchArgumentsNotObject { .. }
            | cog::Error::MissingArgument { .. }
            | cog::Error::BadLaunchArgument { .. }
            | cog::Error::Definition(_) => StatusCode::BAD_REQUEST,
            _ => {
                tracing::error!(error = %e, "admin request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        Self { status, message: e.to_string() }
    }
}

/// A failure answered as JSON: `{"error": message}`.
#[derive(Debug)]
pub(crate) struct ApiFailure(pub(crate) Failure);

impl<E: Into<Failure>> From<E> for ApiFailure {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        (self.0.status, Json(serde_json::json!({ "error": self.0.message, "status": self.0.status.as_u16() }))).into_response()
    }
}
