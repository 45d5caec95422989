//! The InfluxDB 2 backup and restore face (`/api/v2/backup/*`,
//! `/api/v2/restore/*`; issue 19, being built): its error shape,
//! `{"code": "<word>", "message": "..."}` with the word also in the
//! `X-Platform-Error-Code` header, as InfluxDB 2 answers and its clients
//! read it (the Go CLI parses an error only when it is JSON, and compares
//! the code word), and the routes served so far.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// True for the paths of this face.
pub fn is_v2_backup_path(path: &str) -> bool {
    path.starts_with("/api/v2/backup/") || path.starts_with("/api/v2/restore/")
}

/// An error in InfluxDB 2's shape.
#[derive(Debug)]
pub struct V2Error {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl V2Error {
    pub fn unauthorized(message: impl Into<String>) -> V2Error {
        V2Error { status: StatusCode::UNAUTHORIZED, code: "unauthorized", message: message.into() }
    }

    pub fn not_found(message: impl Into<String>) -> V2Error {
        V2Error { status: StatusCode::NOT_FOUND, code: "not found", message: message.into() }
    }

    pub fn method_not_allowed(message: impl Into<String>) -> V2Error {
        V2Error { status: StatusCode::METHOD_NOT_ALLOWED, code: "method not allowed", message: message.into() }
    }

    pub fn not_implemented(message: impl Into<String>) -> V2Error {
        V2Error { status: StatusCode::NOT_IMPLEMENTED, code: "not implemented", message: message.into() }
    }
}

#[derive(serde::Serialize)]
struct Body<'a> {
    code: &'a str,
    message: &'a str,
}

impl IntoResponse for V2Error {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&Body { code: self.code, message: &self.message }).unwrap_or_default();
        (
            self.status,
            [
                (header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8")),
                (header::HeaderName::from_static("x-platform-error-code"), HeaderValue::from_static(self.code)),
            ],
            body,
        )
            .into_response()
    }
}

/// `POST /api/v2/restore/bucket/{bucketID}` (the Python client's spelling)
/// and `/api/v2/restore/buckets/{bucketID}` (the Go CLI's, for servers
/// before 2.1): InfluxDB 2.0's restore of one bucket over an existing one,
/// from a protobuf of its storage engine's shard layout. quipu has no such
/// layout to take; `POST /api/v2/restore/bucketMetadata` and then the
/// shards is the way to restore a bucket.
pub async fn restore_bucket_legacy() -> V2Error {
    V2Error::not_implemented(
        "restoring a bucket from InfluxDB 2.0's shard layout is not supported: restore it with \
         POST /api/v2/restore/bucketMetadata, then POST /api/v2/restore/shards/{shardID} for each shard",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn errors_have_influxdb_2s_shape_and_header() {
        let response = V2Error::unauthorized("no token").into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()["x-platform-error-code"], "unauthorized");
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json; charset=utf-8");
        let body = axum::body::to_bytes(response.into_body(), 1 << 10).await.unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json, serde_json::json!({"code": "unauthorized", "message": "no token"}));
        assert!(is_v2_backup_path("/api/v2/restore/kv") && !is_v2_backup_path("/api/v2/write"));
    }
}
