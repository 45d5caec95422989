//! The export endpoints: list what is compacted and stream it as a tar of
//! Parquet files (see [`crate::export`] for what is exported).
//!
//! | endpoint | answer |
//! |---|---|
//! | `GET /api/v3/export/databases` | `{"databases": [name, ...]}` |
//! | `GET /api/v3/export/tables?db=` | `{"tables": [name, ...]}` |
//! | `GET /api/v3/export/windows?db=&table=` | `{"windows": [{"window": "YYYY-MM-DD", "start_ns", "end_ns", "rows", "time_min_ns", "time_max_ns", "segment_bytes"}, ...]}` |
//! | `GET /api/v3/export/window_data?db=&table=[&windows=]` | `application/x-tar`: `<table>/<YYYY-MM-DD>.parquet` per window |
//!
//! The reference types the list answers only as `object`; the shapes above
//! are ours and docs/openapi.yaml marks them `x-quipu`. A missing `db` or
//! `table` or a malformed `windows` list is 400; an unknown database, table
//! or window is 404, and so is `window_data` for a table with no compacted
//! window. The tar is produced on a blocking thread and streamed through a
//! small bounded channel, so a slow client slows the export instead of
//! growing memory; a client that goes away stops it. An error after the
//! first byte can no longer change the status: the stream is cut off, so the
//! client sees a truncated transfer, never a short tar that looks whole.

use std::io::{self, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use super::AppState;
use super::error::ApiError;
use super::write::query;
use crate::export::{self, TableExport};

/// Bytes per chunk handed to the HTTP layer.
const CHUNK_BYTES: usize = 256 << 10;
/// Chunks in flight between the exporting thread and the connection.
pub(super) const CHANNEL_CHUNKS: usize = 8;

#[derive(Debug, Default, Deserialize)]
struct ExportParams {
    db: Option<String>,
    table: Option<String>,
    windows: Option<String>,
}

fn required(name: &str, value: Option<String>, what: &str) -> Result<String, ApiError> {
    value
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::bad_request(format!("missing query parameter `{name}`: {what}")))
}

/// `GET /api/v3/export/databases`.
pub async fn databases(State(state): State<AppState>) -> Response {
    Json(json!({ "databases": export::databases(state.engine()) })).into_response()
}

/// `GET /api/v3/export/tables?db=`.
pub async fn tables(State(state): State<AppState>, uri: Uri) -> Result<Response, ApiError> {
    let p: ExportParams = query(&uri)?;
    let db = required("db", p.db, "the database")?;
    let tables = export::tables(state.engine(), &db).map_err(ApiError::from_engine)?;
    Ok(Json(json!({ "tables": tables })).into_response())
}

/// `GET /api/v3/export/windows?db=&table=`.
pub async fn windows(State(state): State<AppState>, uri: Uri) -> Result<Response, ApiError> {
    let p: ExportParams = query(&uri)?;
    let db = required("db", p.db, "the database")?;
    let table = required("table", p.table, "the table")?;
    let windows = export::windows(state.engine(), &db, &table).map_err(ApiError::from_engine)?;
    Ok(Json(json!({ "windows": windows })).into_response())
}

/// `GET /api/v3/export/window_data?db=&table=[&windows=]`.
pub async fn window_data(State(state): State<AppState>, uri: Uri) -> Result<Response, ApiError> {
    let p: ExportParams = query(&uri)?;
    let db = required("db", p.db, "the database")?;
    let table = required("table", p.table, "the table")?;
    let wanted = export::parse_window_list(p.windows.as_deref().unwrap_or("")).map_err(ApiError::from_engine)?;
    let export =
        TableExport::new(state.engine(), state.export_cache(), &db, &table, &wanted).map_err(ApiError::from_engine)?;
    if export.windows().is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("table {table} of database {db} has no compacted data yet; only compacted windows are exported"),
        ));
    }
    let file_name = format!("{}.tar", export::safe_file_name(&table));
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    tokio::task::spawn_blocking(move || {
        let mut out = ChannelWriter::new(tx.clone());
        let result = export.write_tar(&mut out, |_| {}).and_then(|_| out.flush().map_err(|e| io_error(&db, e)));
        if let Err(e) = result {
            if out.closed() {
                tracing::debug!(%db, %table, "export stopped: the client went away");
            } else {
                tracing::error!(%db, %table, error = %e, "export failed after the response started");
                // Cut the response off so the client cannot take it for whole.
                let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
            }
        }
    });
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/x-tar")),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        Body::from_stream(ChunkStream::new(rx)),
    )
        .into_response())
}

fn io_error(db: &str, source: io::Error) -> crate::Error {
    crate::Error::Io { path: format!("export of {db}").into(), source }
}

/// The producing thread's end of a streamed response: fills chunks and
/// hands them over, blocking while the channel is full. A clone writes its
/// own chunks into the same channel.
#[derive(Clone)]
pub(super) struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    pub(super) fn new(tx: mpsc::Sender<io::Result<Bytes>>) -> ChannelWriter {
        ChannelWriter { tx, buf: Vec::with_capacity(CHUNK_BYTES) }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_BYTES)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client closed the connection"))
    }

    pub(super) fn closed(&self) -> bool {
        self.tx.is_closed()
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK_BYTES - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK_BYTES {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// The connection's end: the chunks as a stream for the response body.
pub(super) struct ChunkStream(mpsc::Receiver<io::Result<Bytes>>);

impl ChunkStream {
    pub(super) fn new(rx: mpsc::Receiver<io::Result<Bytes>>) -> ChunkStream {
        ChunkStream(rx)
    }
}

impl futures_core::Stream for ChunkStream {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}
