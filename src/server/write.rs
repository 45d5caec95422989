//! The three line protocol write endpoints and the request body rules they
//! share.
//!
//! | endpoint | database | precision (default) | partial writes |
//! |---|---|---|---|
//! | `POST /api/v3/write_lp` | `db` | v3 names (`auto`) | `accept_partial`, default true |
//! | `POST /api/v2/write` | `bucket` | `ms s us u ns n` (`ns`) | `accept_partial`, default true |
//! | `POST /write` | `db` | `ms s us u ns n` (`ns`) | always (the reference's 400 describes partial writes) |
//!
//! Choices the reference leaves open, and what we do:
//! - v3 `precision` is a free string in the operation; we accept the
//!   `PrecisionWrite` enum (`auto nanosecond microsecond millisecond second`)
//!   plus the short names the operation's own examples use (`ms`, `ns`, and
//!   likewise `s us u n`). Anything else is 400. The v1/v2 precision follows
//!   the `PrecisionWriteCompatibility` enum exactly.
//! - Boolean parameters accept exactly `true` and `false`; anything else is 400.
//! - Unknown query parameters are ignored (v2 clients send `org`, v1 clients
//!   `rp`, `consistency`, `u`); a parameter given twice is 400.
//! - A v2 `bucket` of the form `db/rp` writes to `db`; the v1 `rp` is
//!   ignored ("InfluxDB 3 doesn't use retention policies"). quipu database
//!   names cannot contain `/`, so there is no `db/rp` database to map to.
//! - Rejected lines (400) — the reference documents the bodies only for
//!   v1; we use its shapes for both compatibility endpoints and InfluxDB 3's
//!   native ones for `/api/v3/write_lp`:
//!   - some lines written: `{"error": "partial write of line protocol occurred", "data": [line, ...]}` (all endpoints);
//!   - nothing written, v1/v2: `{"error": "write of line protocol failed", "data": [line, ...]}`;
//!   - nothing written, v3: `{"error": "parsing failed for write_lp endpoint", "data": line}` (the first bad line).
//!
//!   where `line` is `{"original_line", "line_number", "error_message"}` and
//!   lists hold at most [`MAX_REJECTED_LINES`] (the reference: "up to 100 points").
//! - `Content-Encoding` other than `gzip` or `identity` (the reference's enum,
//!   compared case-insensitively): 415, the HTTP status for an unsupported
//!   content coding; the reference lists no status for it.
//! - gzip is decoded here with flate2's multi-member decoder rather than
//!   tower-http's decompression layer, which reads only the first member of
//!   a multi-member body and silently drops the rest.
//! - A body that is not UTF-8 is rejected whole (400), like InfluxDB 3.
//! - `Content-Type` is not checked (clients send all sorts).
//! - The `cluster-uuid` header of the 204 is not sent: quipu's catalog has no UUID yet.

use std::str::FromStr;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use std::io::Read;

use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::error::ApiError;

/// At most this many rejected lines are listed in an error body.
pub const MAX_REJECTED_LINES: usize = 100;

/// Middleware before any body is read: refuses content codings we cannot
/// decode (415) and declared lengths over the limit (413, before reading a
/// byte), and normalises the coding: `gzip` stays (lower case), `identity`
/// is removed.
pub async fn check_body_headers(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let limit = state.inner.max_body_bytes;
    let encodings: Vec<HeaderValue> = req.headers().get_all(header::CONTENT_ENCODING).iter().cloned().collect();
    match encodings.as_slice() {
        [] => {}
        [one] => {
            let value = one.to_str().unwrap_or("").trim();
            if value.eq_ignore_ascii_case("gzip") {
                req.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            } else if value.eq_ignore_ascii_case("identity") {
                req.headers_mut().remove(header::CONTENT_ENCODING);
            } else {
                return unsupported_encoding();
            }
        }
        _ => return unsupported_encoding(),
    }
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return ApiError::too_large(limit).into_response();
    }
    next.run(req).await
}

fn is_gzip(headers: &HeaderMap) -> bool {
    headers.get(header::CONTENT_ENCODING).is_some_and(|v| v == "gzip")
}

fn unsupported_encoding() -> Response {
    ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported Content-Encoding: use gzip or identity")
        .into_response()
}

#[derive(Debug, Default, Deserialize)]
struct V3Params {
    db: Option<String>,
    precision: Option<String>,
    accept_partial: Option<String>,
    no_sync: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct V2Params {
    bucket: Option<String>,
    precision: Option<String>,
    accept_partial: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct V1Params {
    db: Option<String>,
    precision: Option<String>,
}

/// Which error bodies an endpoint answers with (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    V3,
    Compat,
}

/// The three write endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteEndpoint {
    /// `POST /api/v3/write_lp`
    V3,
    /// `POST /api/v2/write`
    V2,
    /// `POST /write`
    V1,
}

/// A validated write request.
struct WriteRequest {
    db: String,
    precision: crate::Precision,
    options: crate::WriteOptions,
    flavor: Flavor,
}

impl WriteRequest {
    /// The query string's parameters, checked as `endpoint` takes them.
    fn parse(endpoint: WriteEndpoint, query_string: Option<&str>) -> Result<WriteRequest, ApiError> {
        match endpoint {
            WriteEndpoint::V3 => {
                let p: V3Params = query_str(query_string)?;
                let precision = match p.precision.as_deref() {
                    None => crate::Precision::Auto,
                    Some(
                        name @ ("auto" | "nanosecond" | "microsecond" | "millisecond" | "second" | "ns" | "n" | "us"
                        | "u" | "ms" | "s"),
                    ) => parse_precision(name)?,
                    Some(other) => {
                        return Err(ApiError::bad_request(format!(
                            "invalid precision {other:?}: expected one of auto, nanosecond, microsecond, millisecond, \
                             second (or ns, n, us, u, ms, s)"
                        )));
                    }
                };
                Ok(WriteRequest {
                    db: database("db", p.db)?,
                    precision,
                    options: crate::WriteOptions {
                        accept_partial: boolean("accept_partial", p.accept_partial, true)?,
                        no_sync: boolean("no_sync", p.no_sync, false)?,
                    },
                    flavor: Flavor::V3,
                })
            }
            WriteEndpoint::V2 => {
                let p: V2Params = query_str(query_string)?;
                // A v2 bucket may name a v1 database and retention policy as `db/rp`.
                let bucket = p.bucket.map(|b| match b.split_once('/') {
                    Some((db, _rp)) => db.to_owned(),
                    None => b,
                });
                Ok(WriteRequest {
                    db: database("bucket", bucket)?,
                    precision: compat_precision(p.precision)?,
                    options: crate::WriteOptions {
                        accept_partial: boolean("accept_partial", p.accept_partial, true)?,
                        no_sync: false,
                    },
                    flavor: Flavor::Compat,
                })
            }
            WriteEndpoint::V1 => {
                let p: V1Params = query_str(query_string)?;
                Ok(WriteRequest {
                    db: database("db", p.db)?,
                    precision: compat_precision(p.precision)?,
                    options: crate::WriteOptions { accept_partial: true, no_sync: false },
                    flavor: Flavor::Compat,
                })
            }
        }
    }
}

pub async fn write_v3(State(state): State<AppState>, uri: Uri, headers: HeaderMap, body: Body) -> Response {
    run(state, WriteEndpoint::V3, &uri, &headers, body).await
}

pub async fn write_v2(State(state): State<AppState>, uri: Uri, headers: HeaderMap, body: Body) -> Response {
    run(state, WriteEndpoint::V2, &uri, &headers, body).await
}

pub async fn write_v1(State(state): State<AppState>, uri: Uri, headers: HeaderMap, body: Body) -> Response {
    run(state, WriteEndpoint::V1, &uri, &headers, body).await
}

pub(super) fn query<T: for<'de> Deserialize<'de> + Default>(uri: &Uri) -> Result<T, ApiError> {
    query_str(uri.query())
}

fn query_str<T: for<'de> Deserialize<'de> + Default>(query_string: Option<&str>) -> Result<T, ApiError> {
    match query_string {
        None => Ok(T::default()),
        Some(q) => {
            serde_urlencoded::from_str(q).map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))
        }
    }
}

fn database(param: &str, value: Option<String>) -> Result<String, ApiError> {
    let db = value
        .filter(|d| !d.is_empty())
        .ok_or_else(|| ApiError::bad_request(format!("missing query parameter `{param}`: the database to write to")))?;
    crate::catalog::validate_db_name(&db).map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(db)
}

fn parse_precision(name: &str) -> Result<crate::Precision, ApiError> {
    crate::Precision::from_str(name).map_err(|e| ApiError::bad_request(e.to_string()))
}

fn compat_precision(value: Option<String>) -> Result<crate::Precision, ApiError> {
    match value.as_deref() {
        None => Ok(crate::Precision::Nanosecond),
        Some(name @ ("ms" | "s" | "us" | "u" | "ns" | "n")) => parse_precision(name),
        Some(other) => {
            Err(ApiError::bad_request(format!("invalid precision {other:?}: expected one of ms, s, us, u, ns, n")))
        }
    }
}

fn boolean(param: &str, value: Option<String>, default: bool) -> Result<bool, ApiError> {
    match value.as_deref() {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(ApiError::bad_request(format!("invalid `{param}` {other:?}: expected true or false"))),
    }
}

/// Checks the parameters, reads the body up to the limit, then leaves the
/// rest to [`write_body`] on a blocking thread.
async fn run(state: AppState, endpoint: WriteEndpoint, uri: &Uri, headers: &HeaderMap, body: Body) -> Response {
    // Parameters first: a bad one is answered before the body is read.
    let request = match WriteRequest::parse(endpoint, uri.query()) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let limit = state.inner.max_body_bytes;
    let bytes = match collect_limited(body, limit).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let engine = state.engine().clone();
    let gzip = is_gzip(headers);
    match tokio::task::spawn_blocking(move || apply(&engine, request, gzip, bytes, limit)).await {
        Err(join) => {
            tracing::error!(error = %join, "write task failed");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error while writing").into_response()
        }
        Ok(Err(e)) => e.into_response(),
        Ok(Ok(())) => StatusCode::NO_CONTENT.into_response(),
    }
}

/// What a write endpoint does with a request whose body has arrived
/// (`query_string` its parameters, `gzip` whether it says
/// `Content-Encoding: gzip`, `max_body_bytes` the limit after
/// decompression): `Ok` is the 204, an error the answer as sent. The
/// handlers run exactly this (on a blocking thread); it is public for the
/// `http_write` fuzz target.
pub fn write_body(
    engine: &crate::Engine,
    endpoint: WriteEndpoint,
    query_string: Option<&str>,
    gzip: bool,
    body: impl Into<Bytes>,
    max_body_bytes: usize,
) -> Result<(), ApiError> {
    let request = WriteRequest::parse(endpoint, query_string)?;
    apply(engine, request, gzip, body.into(), max_body_bytes)
}

fn apply(
    engine: &crate::Engine,
    request: WriteRequest,
    gzip: bool,
    bytes: Bytes,
    limit: usize,
) -> Result<(), ApiError> {
    // The reference marks the line protocol body as required.
    if bytes.is_empty() {
        return Err(ApiError::bad_request("empty request body: send line protocol to write"));
    }
    let bytes = if gzip { gunzip(&bytes, limit)? } else { bytes };
    let text = utf8(&bytes)?;
    let WriteRequest { db, precision, options, flavor } = request;
    match engine.write_lp(&db, text, precision, options) {
        Ok(summary) if summary.errors.is_empty() => Ok(()),
        Ok(summary) if summary.lines_written == 0 => Err(rejected_all(flavor, &summary.errors)),
        Ok(summary) => Err(ApiError::with_data(
            StatusCode::BAD_REQUEST,
            "partial write of line protocol occurred",
            lines_json(&summary.errors),
        )),
        Err(crate::Error::WriteRejected { errors, .. }) => Err(rejected_all(flavor, &errors)),
        Err(e) => Err(ApiError::from_engine(e)),
    }
}

/// The request body, up to the body limit.
async fn collect_limited(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(ApiError::too_large(limit)),
        Err(e) => Err(ApiError::bad_request(format!("cannot read request body: {e}"))),
    }
}

/// A request body read whole up to the limit and, when it says gzip,
/// decompressed (again up to the limit): for the endpoints whose body is a
/// small request document.
pub(super) async fn read_body(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let limit = state.inner.max_body_bytes;
    let bytes = collect_limited(body, limit).await?;
    if is_gzip(headers) && !bytes.is_empty() {
        return tokio::task::spawn_blocking(move || gunzip(&bytes, limit))
            .await
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("body task failed: {e}")))?;
    }
    Ok(bytes)
}

/// Decompresses a gzip body, all members of it (RFC 1952 allows several
/// concatenated; the reference promises to accept them), stopping one byte
/// past `limit` so that a small body expanding without bound costs at most
/// `limit` bytes of memory.
fn gunzip(compressed: &[u8], limit: usize) -> Result<Bytes, ApiError> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(compressed)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| ApiError::bad_request(format!("invalid gzip body: {e}")))?;
    if out.len() > limit {
        return Err(ApiError::too_large(limit));
    }
    Ok(Bytes::from(out))
}

fn utf8(bytes: &Bytes) -> Result<&str, ApiError> {
    std::str::from_utf8(bytes).map_err(|e| {
        let offset = e.valid_up_to();
        let line = bytes[..offset].iter().filter(|&&b| b == b'\n').count() + 1;
        ApiError::bad_request(crate::lp::LpError::NotUtf8 { line, offset }.to_string())
    })
}

fn line_json(e: &crate::LineError) -> serde_json::Value {
    json!({ "original_line": e.text, "line_number": e.line, "error_message": e.message })
}

fn lines_json(errors: &[crate::LineError]) -> serde_json::Value {
    serde_json::Value::Array(errors.iter().take(MAX_REJECTED_LINES).map(line_json).collect())
}

fn rejected_all(flavor: Flavor, errors: &[crate::LineError]) -> ApiError {
    match flavor {
        Flavor::V3 => ApiError::with_data(
            StatusCode::BAD_REQUEST,
            "parsing failed for write_lp endpoint",
            errors.first().map_or(serde_json::Value::Null, line_json),
        ),
        Flavor::Compat => {
            ApiError::with_data(StatusCode::BAD_REQUEST, "write of line protocol failed", lines_json(errors))
        }
    }
}
