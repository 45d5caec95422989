//! The InfluxDB 2 backup and restore face (`/api/v2/backup/*`,
//! `/api/v2/restore/*`; issue 19, being built): its error shape,
//! `{"code": "<word>", "message": "..."}` with the word also in the
//! `X-Platform-Error-Code` header, as InfluxDB 2 answers and its clients
//! read it (the Go CLI parses an error only when it is JSON, and compares
//! the code word), and the routes served so far: `GET /api/v2/backup/kv`
//! and the legacy bucket restore (501).

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;

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

    pub fn internal(message: impl Into<String>) -> V2Error {
        V2Error { status: StatusCode::INTERNAL_SERVER_ERROR, code: "internal error", message: message.into() }
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

/// `GET /api/v2/backup/kv`: the current catalog snapshot whole, as a data
/// folder stores it (docs/FORMAT.md, "Catalog snapshots": envelope `QCAT`,
/// JSON body), opaque to clients; gzipped when the client accepts it.
pub async fn backup_kv(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let engine = state.engine().clone();
    match tokio::task::spawn_blocking(move || engine.catalog().encode()).await {
        Ok(bytes) => octet_stream(bytes, accepts_gzip(&headers)),
        Err(e) => V2Error::internal(format!("reading the catalog failed: {e}")).into_response(),
    }
}

/// `bytes` as `application/octet-stream`, gzipped (fast level) when `gzip`.
fn octet_stream(bytes: Vec<u8>, gzip: bool) -> Response {
    let octets = (header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    if !gzip {
        return ([octets], bytes).into_response();
    }
    let mut encoder = flate2::write::GzEncoder::new(Vec::with_capacity(bytes.len() / 4), flate2::Compression::fast());
    match std::io::Write::write_all(&mut encoder, &bytes).and_then(|()| encoder.finish()) {
        Ok(gzipped) => {
            ([octets, (header::CONTENT_ENCODING, HeaderValue::from_static("gzip"))], gzipped).into_response()
        }
        Err(e) => V2Error::internal(format!("gzip failed: {e}")).into_response(),
    }
}

/// True when `Accept-Encoding` lists gzip (or `*`) without `q=0`.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(
        |item| {
            let mut parts = item.split(';').map(str::trim);
            let coding = parts.next().unwrap_or_default();
            let refused =
                parts.any(|p| p.strip_prefix("q=").and_then(|q| q.parse::<f32>().ok()).is_some_and(|q| q <= 0.0));
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
        },
    )
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

    #[test]
    fn gzip_is_sent_when_accepted_and_not_refused() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(value).unwrap());
            accepts_gzip(&headers)
        };
        assert!(with("gzip") && with("deflate, GZIP;q=0.5") && with("*") && with("br, gzip"));
        assert!(!with("gzip;q=0") && !with("identity") && !with("gzip; q=0.0") && !with("x-gzip"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
