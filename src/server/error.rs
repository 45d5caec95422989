//! The one error answer of the API: the reference's `ErrorMessage` schema,
//! `{"error": "...", "data": ...}` with `data` null when there is nothing
//! more to say, and the mapping of engine errors to statuses.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// An HTTP error answer with a JSON `ErrorMessage` body.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub error: String,
    pub data: Value,
}

#[derive(serde::Serialize)]
struct ErrorMessage<'a> {
    error: &'a str,
    data: &'a Value,
}

impl ApiError {
    /// An error without `data` (`"data": null`).
    pub fn new(status: StatusCode, error: impl Into<String>) -> Self {
        ApiError { status, error: error.into(), data: Value::Null }
    }

    pub fn with_data(status: StatusCode, error: impl Into<String>, data: Value) -> Self {
        ApiError { status, error: error.into(), data }
    }

    pub fn bad_request(error: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error)
    }

    pub fn unauthorized(error: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, error)
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, format!("request body is larger than the limit of {limit} bytes"))
    }

    /// Maps an engine error that is not about the lines themselves (those are
    /// answered by the write handlers): a closed or poisoned engine is a
    /// temporary unavailability (503), a bad argument is the client's (400),
    /// an unknown database, table or export window is 404, and backup
    /// outcomes map as the backup endpoints document (409, 404, 400, 503),
    /// anything else — I/O, corruption — is ours (500).
    pub fn from_engine(err: crate::Error) -> Self {
        use crate::backup::BackupError;
        let status = match &err {
            crate::Error::Backup(b) => match b {
                BackupError::Exists { .. } | BackupError::Running { .. } => StatusCode::CONFLICT,
                BackupError::NotFound { .. } | BackupError::NotRunning { .. } => StatusCode::NOT_FOUND,
                BackupError::InvalidName { .. } | BackupError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
                BackupError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
            crate::Error::Poisoned { .. } | crate::Error::Closed => StatusCode::SERVICE_UNAVAILABLE,
            crate::Error::DatabaseNotFound { .. }
            | crate::Error::TableNotFound { .. }
            | crate::Error::WindowNotFound { .. } => StatusCode::NOT_FOUND,
            crate::Error::InvalidArgument(_)
            | crate::Error::WriteRejected { .. }
            | crate::Error::BatchRejected { .. } => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            tracing::error!(error = %err, "engine error");
        }
        Self::new(status, err.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(ErrorMessage { error: &self.error, data: &self.data })).into_response()
    }
}
