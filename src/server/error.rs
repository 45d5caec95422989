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
    /// Seconds for a `Retry-After` header (on a 503 worth retrying soon).
    pub retry_after: Option<u64>,
}

#[derive(serde::Serialize)]
struct ErrorMessage<'a> {
    error: &'a str,
    data: &'a Value,
}

impl ApiError {
    /// An error without `data` (`"data": null`).
    pub fn new(status: StatusCode, error: impl Into<String>) -> Self {
        ApiError { status, error: error.into(), data: Value::Null, retry_after: None }
    }

    pub fn with_data(status: StatusCode, error: impl Into<String>, data: Value) -> Self {
        ApiError { status, error: error.into(), data, retry_after: None }
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
    /// and restore outcomes map as their endpoints document (409, 404, 400,
    /// 503), a write a restore rolled back in flight is 503 with
    /// `Retry-After`, a write the write buffer cannot take is 413 when it
    /// alone is over the limit (split it) and 503 with `Retry-After` while
    /// the buffer is full, a write not stored (rolled back, retryable) is 507
    /// when the disk is full and 503 otherwise, anything else (I/O,
    /// corruption) is ours (500).
    pub fn from_engine(err: crate::Error) -> Self {
        use crate::backup::BackupError;
        use crate::remote::RemoteError;
        use crate::restore::RestoreError;
        let status = match &err {
            crate::Error::Backup(b) => match b {
                BackupError::Exists { .. } | BackupError::Running { .. } => StatusCode::CONFLICT,
                BackupError::NotFound { .. } | BackupError::NotRunning { .. } => StatusCode::NOT_FOUND,
                BackupError::InvalidName { .. } | BackupError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
                BackupError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
            crate::Error::Restore(r) => match r {
                RestoreError::Running { .. } => StatusCode::CONFLICT,
                RestoreError::NotFound { .. } | RestoreError::NotRunning { .. } => StatusCode::NOT_FOUND,
                RestoreError::TargetNotEmpty { .. } => StatusCode::BAD_REQUEST,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
            crate::Error::Remote(r) => match r {
                RemoteError::InvalidUrl { .. } => StatusCode::BAD_REQUEST,
                RemoteError::NotFound { .. } | RemoteError::TransferNotFound { .. } => StatusCode::NOT_FOUND,
                RemoteError::TransferEnded { .. }
                | RemoteError::TooManyTransfers { .. }
                | RemoteError::ManifestExists { .. } => StatusCode::CONFLICT,
                _ => StatusCode::BAD_GATEWAY,
            },
            crate::Error::Poisoned { .. } | crate::Error::Closed | crate::Error::RolledBack => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            crate::Error::BufferFull { request_bytes, limit_bytes, .. } if request_bytes > limit_bytes => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            crate::Error::BufferFull { .. } => StatusCode::SERVICE_UNAVAILABLE,
            crate::Error::WriteNotStored { source, .. } => match source.kind() {
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => StatusCode::INSUFFICIENT_STORAGE,
                _ => StatusCode::SERVICE_UNAVAILABLE,
            },
            crate::Error::DatabaseNotFound { .. }
            | crate::Error::TableNotFound { .. }
            | crate::Error::WindowNotFound { .. } => StatusCode::NOT_FOUND,
            crate::Error::InvalidArgument(_)
            | crate::Error::Query(_)
            | crate::Error::WriteRejected { .. }
            | crate::Error::BatchRejected { .. } => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        // A full buffer is load, not a fault: the client is told, the log is not.
        if status.is_server_error() && !matches!(err, crate::Error::BufferFull { .. }) {
            tracing::error!(error = %err, "engine error");
        }
        let retryable = matches!(
            err,
            crate::Error::RolledBack | crate::Error::BufferFull { .. } | crate::Error::WriteNotStored { .. }
        );
        let retry_after = (retryable && status == StatusCode::SERVICE_UNAVAILABLE).then_some(1);
        ApiError { retry_after, ..Self::new(status, err.to_string()) }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(ErrorMessage { error: &self.error, data: &self.data })).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(secs));
        }
        response
    }
}
