//! The operations behind the API's endpoints and the UI's forms (`op_*`):
//! one implementation for both, which the API answers as JSON and the UI as
//! a redirect with a message. Errors are [`ApiError`]s (status and reason).

pub(crate) mod policy;
pub(crate) mod queues;
pub(crate) mod sensors;
pub(crate) mod users;

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use uuid::Uuid;

use crate::server::Shared;

/// An API error: status and reason.
#[derive(Debug)]
pub(crate) struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"status": "error", "reason": self.1}))).into_response()
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> ApiError {
        let msg = format!("{e:#}");
        let code = if crate::store::health::is_unwritable(&e) {
            // A full disk: the server's condition, passing (it heals itself).
            StatusCode::SERVICE_UNAVAILABLE
        } else if msg.starts_with("no queue") || msg.starts_with("no user") {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::BAD_REQUEST
        };
        ApiError(code, msg)
    }
}

/// A result of an API operation.
pub(crate) type ApiResult<T> = Result<T, ApiError>;

pub(crate) fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

/// Runs blocking work (disk commits, password hashing) off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(ApiError::from)
}

/// Changes the policy (a disk commit) off the async threads.
pub(crate) async fn policy_update<T: Send + 'static>(
    s: &Arc<Shared>,
    f: impl FnOnce(&mut crate::ingest::policy::PolicyState) -> T + Send + 'static,
) -> ApiResult<T> {
    let s = s.clone();
    blocking(move || s.policy.update(f)).await
}

/// Parses a UUID (with or without dashes).
pub(crate) fn parse_uuid(s: &str) -> ApiResult<Uuid> {
    Uuid::try_parse(s.trim()).map_err(|_| bad(format!("{s:?} is not a UUID")))
}
