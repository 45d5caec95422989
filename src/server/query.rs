//! The query endpoints: SQL through [`crate::sql`], its result streamed in
//! the format asked for, and the telemetry of the last query.
//!
//! | endpoint | request | answer |
//! |---|---|---|
//! | `GET /api/v3/query_sql` | `db`, `q`, `format`, `params` (JSON) in the query string | the rows |
//! | `POST /api/v3/query_sql` | `QueryRequestObject` JSON body `{db, q, format, params}` | the rows |
//! | `GET /query`, `POST /query` | v1: `db`, `q`, `epoch`, `chunked`, `chunk_size`, `pretty` (query string, form or JSON body) | v1 JSON or CSV |
//! | `GET /api/v3/query_sql_telemetry` | | the last query's [`TelemetryReport`] |
//!
//! Formats of `query_sql` (`format`, else the `Accept` header, else json):
//! `json` is the reference's `QueryResponse`, `{"results": [row, ...]}` with
//! one object per row; `jsonl`/`json_lines` one row object per line; `csv`
//! with a header line; `parquet` one Parquet file; `pretty` an ASCII table.
//! Timestamps are RFC 3339 in UTC. `/query` answers in the InfluxDB v1
//! shape, `{"results": [{"statement_id": 0, "series": [{"name", "columns",
//! "values"}]}]}`, timestamps RFC 3339 or, with `epoch`, integers in that
//! unit; `q` is run as SQL (a v1 `SELECT` that is also valid SQL works;
//! InfluxQL-only syntax such as `GROUP BY time(1m)` is a 400).
//!
//! Errors: a missing `db` or `q`, a bad format, bad SQL, an unknown table or
//! column, or a failure before the first row is 400 with the planner's
//! message; an unknown database is 404. Rows are encoded on a blocking
//! thread and streamed through a bounded channel, so a large result is
//! never held in memory (except `pretty`, which needs every row to size its
//! columns and is capped at [`PRETTY_MAX_ROWS`]). An error after the first
//! byte cuts the response off.

use std::io::{self, Write};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int64Type, SchemaRef, TimeUnit, TimestampNanosecondType, UInt64Type};
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::AppState;
use super::error::ApiError;
use super::export::{CHANNEL_CHUNKS, ChannelWriter, ChunkStream};
use super::write::{query, read_body};
use crate::sql::{self, QueryOptions, QueryTelemetry};

/// Rows `format=pretty` collects before it gives up (it cannot stream).
pub const PRETTY_MAX_ROWS: usize = 100_000;
/// Rows per chunk of a chunked v1 answer when `chunk_size` is not given.
const DEFAULT_CHUNK_ROWS: usize = 10_000;

/// The output formats of `query_sql`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    JsonLines,
    Csv,
    Parquet,
    Pretty,
}

impl Format {
    fn parse(name: &str) -> Result<Format, ApiError> {
        Ok(match name {
            "json" => Format::Json,
            "jsonl" | "json_lines" => Format::JsonLines,
            "csv" => Format::Csv,
            "parquet" => Format::Parquet,
            "pretty" => Format::Pretty,
            other => {
                return Err(ApiError::bad_request(format!(
                    "invalid format {other:?}: expected json, jsonl, json_lines, csv, parquet or pretty"
                )));
            }
        })
    }

    /// The format an `Accept` header asks for; json when it names none we
    /// know.
    fn from_accept(headers: &HeaderMap) -> Format {
        let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
        for media in accept.split(',').map(|m| m.split(';').next().unwrap_or("").trim()) {
            match media {
                "application/json" => return Format::Json,
                "application/jsonl" | "application/x-ndjson" => return Format::JsonLines,
                "text/csv" | "application/csv" => return Format::Csv,
                "application/vnd.apache.parquet" => return Format::Parquet,
                "text/plain" => return Format::Pretty,
                _ => {}
            }
        }
        Format::Json
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::JsonLines => "application/jsonl",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Parquet => "application/vnd.apache.parquet",
            Format::Pretty => "text/plain; charset=utf-8",
        }
    }
}

/// `query_sql` parameters, from the query string or a form body.
#[derive(Debug, Default, Deserialize)]
struct SqlParams {
    db: Option<String>,
    q: Option<String>,
    format: Option<String>,
    /// JSON text.
    params: Option<String>,
}

impl SqlParams {
    /// The request, with `params` decoded from its JSON text.
    fn into_body(self) -> Result<SqlBody, ApiError> {
        let params = match self.params.as_deref().filter(|t| !t.is_empty()) {
            None => None,
            Some(text) => Some(
                serde_json::from_str(text)
                    .map_err(|e| ApiError::bad_request(format!("`params` is not valid JSON: {e}")))?,
            ),
        };
        Ok(SqlBody { db: self.db, q: self.q, format: self.format, params })
    }
}

/// The `QueryRequestObject` body of `POST /api/v3/query_sql`.
#[derive(Debug, Default, Deserialize)]
struct SqlBody {
    db: Option<String>,
    q: Option<String>,
    format: Option<String>,
    params: Option<serde_json::Value>,
}

fn required(name: &str, value: Option<String>, what: &str) -> Result<String, ApiError> {
    value.filter(|v| !v.is_empty()).ok_or_else(|| ApiError::bad_request(format!("missing `{name}`: {what}")))
}

/// `GET /api/v3/query_sql`.
pub async fn sql_get(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    let request = (|| query::<SqlParams>(&uri)?.into_body())();
    match request {
        Ok(body) => run_sql(state, body, &headers).await,
        Err(e) => e.into_response(),
    }
}

/// `POST /api/v3/query_sql`: a JSON `QueryRequestObject` body (a form body
/// or the query string are read the same way when there is no JSON body).
pub async fn sql_post(State(state): State<AppState>, uri: Uri, headers: HeaderMap, body: Body) -> Response {
    let request = async {
        let bytes = read_body(&state, &headers, body).await?;
        if bytes.is_empty() || is_form(&headers) {
            let p: SqlParams = if bytes.is_empty() {
                query(&uri)?
            } else {
                serde_urlencoded::from_bytes(&bytes)
                    .map_err(|e| ApiError::bad_request(format!("invalid form body: {e}")))?
            };
            return p.into_body();
        }
        serde_json::from_slice::<SqlBody>(&bytes)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body (expected {{\"db\", \"q\"}}): {e}")))
    };
    match request.await {
        Ok(body) => run_sql(state, body, &headers).await,
        Err(e) => e.into_response(),
    }
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

async fn run_sql(state: AppState, body: SqlBody, headers: &HeaderMap) -> Response {
    let started = async {
        let db = required("db", body.db, "the database to query")?;
        let q = required("q", body.q, "the SQL query")?;
        let format = match body.format.as_deref() {
            Some(f) => Format::parse(f)?,
            None => Format::from_accept(headers),
        };
        let params = match &body.params {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => Some(sql::params_from_json(v).map_err(ApiError::from_engine)?),
        };
        let started = start(&state, &db, &q, params).await?;
        Ok::<_, ApiError>((format, started))
    };
    let (format, started) = match started.await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let Started { schema, first, stream, telemetry, deadline, .. } = started;
    if format == Format::Pretty {
        return pretty(schema, first, stream, telemetry).await;
    }
    let content_type = HeaderValue::from_static(format.content_type());
    let encoder: Box<dyn RowEncoder> = match format {
        Format::Json => Box::new(JsonRows::new(false)),
        Format::JsonLines => Box::new(JsonRows::new(true)),
        Format::Csv => Box::new(CsvRows::new(None, TimeText::Rfc3339)),
        Format::Parquet => Box::new(ParquetRows { writer: None }),
        // Answered above.
        Format::Pretty => return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "pretty").into_response(),
    };
    stream_response(content_type, schema, first, stream, telemetry, deadline, encoder)
}

/// A query planned and started, with its first batch in hand.
struct Started {
    schema: SchemaRef,
    tables: Vec<String>,
    first: Option<RecordBatch>,
    stream: SendableRecordBatchStream,
    telemetry: std::sync::Arc<QueryTelemetry>,
    /// When the query timeout cuts it off.
    deadline: Option<Instant>,
}

/// Plans and starts `q`, and waits for its first rows so that a failure
/// before them is still an error status.
async fn start(
    state: &AppState,
    db: &str,
    q: &str,
    params: Option<datafusion::common::ParamValues>,
) -> Result<Started, ApiError> {
    let engine = state.engine().clone();
    let id = ulid::Ulid::from(engine.next_id()).to_string();
    let telemetry = QueryTelemetry::new(&engine, id, db, q);
    state.set_last_query(telemetry.clone());
    let fail = |e: crate::Error| {
        telemetry.finish(Some(e.to_string()));
        query_api_error(e)
    };
    let runtime = state.query_runtime().cloned();
    let deadline = runtime.as_ref().and_then(|r| r.limits().timeout).and_then(|t| Instant::now().checked_add(t));
    let options = QueryOptions { params, telemetry: Some(telemetry.clone()), runtime };
    let prepared = sql::prepare(&engine, db, q, options).await.map_err(fail)?;
    let tables = prepared.tables();
    let schema = prepared.schema();
    let mut stream = prepared.execute().await.map_err(fail)?;
    let first = loop {
        match stream.next().await {
            None => break None,
            Some(Ok(batch)) if batch.num_rows() == 0 => continue,
            Some(Ok(batch)) => break Some(batch),
            Some(Err(e)) => return Err(fail(sql::query_error(e))),
        }
    };
    // The stream's schema is the one the rows carry.
    let schema = first.as_ref().map(|b| b.schema()).unwrap_or(schema);
    Ok(Started { schema, tables, first, stream, telemetry, deadline })
}

/// The answer to a query that failed before its first byte: a limit it
/// cannot run within is the client's (400, the same query fails again);
/// memory the other running queries hold is a 503 worth retrying.
fn query_api_error(e: crate::Error) -> ApiError {
    match e {
        crate::Error::QueryLimit(_) => ApiError::bad_request(e.to_string()),
        crate::Error::QueryBusy(_) => {
            ApiError { retry_after: Some(1), ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()) }
        }
        other => ApiError::from_engine(other),
    }
}

/// Encodes rows into the response body, batch by batch.
trait RowEncoder: Send {
    fn begin(&mut self, out: &mut ChannelWriter, schema: &SchemaRef) -> io::Result<()>;
    fn batch(&mut self, out: &mut ChannelWriter, batch: &RecordBatch) -> io::Result<()>;
    fn end(&mut self, out: &mut ChannelWriter) -> io::Result<()>;
}

/// Streams the rows through `encoder` from a blocking thread that pulls
/// the query's batches. At `deadline` the body is cut off, also while the
/// client is slow to read: the thread then finds the channel closed and
/// drops the query.
fn stream_response(
    content_type: HeaderValue,
    schema: SchemaRef,
    first: Option<RecordBatch>,
    mut stream: SendableRecordBatchStream,
    telemetry: std::sync::Arc<QueryTelemetry>,
    deadline: Option<Instant>,
    mut encoder: Box<dyn RowEncoder>,
) -> Response {
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let mut out = ChannelWriter::new(tx.clone());
        let run = || -> Result<(), String> {
            encoder.begin(&mut out, &schema).map_err(|e| e.to_string())?;
            if let Some(batch) = first {
                encoder.batch(&mut out, &batch).map_err(|e| e.to_string())?;
            }
            while let Some(batch) = handle.block_on(stream.next()) {
                let batch = batch.map_err(|e| sql::query_error(e).to_string())?;
                encoder.batch(&mut out, &batch).map_err(|e| e.to_string())?;
            }
            encoder.end(&mut out).map_err(|e| e.to_string())?;
            out.flush().map_err(|e| e.to_string())
        };
        let result = run();
        match &result {
            Ok(()) => telemetry.finish(None),
            Err(_) if out.closed() && deadline.is_some_and(|d| Instant::now() >= d) => {
                tracing::debug!(query = telemetry.id(), "query stopped: the query timeout");
                telemetry.finish(Some("the query ran longer than the query timeout".into()));
            }
            Err(_) if out.closed() => {
                tracing::debug!(query = telemetry.id(), "query stopped: the client went away");
                telemetry.finish(Some("the client closed the connection".into()));
            }
            Err(e) => {
                tracing::error!(query = telemetry.id(), error = %e, "query failed after the response started");
                telemetry.finish(Some(e.clone()));
                // Cut the response off so the client cannot take it for whole.
                let _ = tx.blocking_send(Err(io::Error::other(e.clone())));
            }
        }
    });
    let body = UntilDeadline {
        chunks: Some(ChunkStream::new(rx)),
        sleep: deadline.map(|d| Box::pin(tokio::time::sleep_until(d.into()))),
    };
    ([(header::CONTENT_TYPE, content_type)], Body::from_stream(body)).into_response()
}

/// A response body that ends with an error at its deadline, which makes
/// the server abort the response: the client cannot take it for whole.
struct UntilDeadline {
    /// Dropped at the deadline, so that the encoding thread stops at once.
    chunks: Option<ChunkStream>,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl futures_core::Stream for UntilDeadline {
    type Item = io::Result<bytes::Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(sleep) = self.sleep.as_mut()
            && sleep.as_mut().poll(cx).is_ready()
        {
            self.sleep = None;
            if self.chunks.take().is_some() {
                return Poll::Ready(Some(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the query ran longer than the query timeout",
                ))));
            }
        }
        match self.chunks.as_mut() {
            Some(chunks) => chunks.poll_next_unpin(cx),
            None => Poll::Ready(None),
        }
    }
}

/// `format=pretty`: every row (up to [`PRETTY_MAX_ROWS`]) as one table.
async fn pretty(
    schema: SchemaRef,
    first: Option<RecordBatch>,
    mut stream: SendableRecordBatchStream,
    telemetry: std::sync::Arc<QueryTelemetry>,
) -> Response {
    let mut batches: Vec<RecordBatch> = first.into_iter().collect();
    let mut rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    while let Some(batch) = stream.next().await {
        match batch {
            Ok(b) => {
                rows += b.num_rows();
                batches.push(b);
            }
            Err(e) => {
                let e = sql::query_error(e);
                telemetry.finish(Some(e.to_string()));
                return query_api_error(e).into_response();
            }
        }
        if rows > PRETTY_MAX_ROWS {
            let message = format!(
                "the result has more than {PRETTY_MAX_ROWS} rows, too many for format pretty; use csv, jsonl or parquet, which stream"
            );
            telemetry.finish(Some(message.clone()));
            return ApiError::bad_request(message).into_response();
        }
    }
    telemetry.finish(None);
    let text = if batches.is_empty() {
        header_only(&schema)
    } else {
        match arrow::util::pretty::pretty_format_batches(&batches) {
            Ok(t) => t.to_string(),
            Err(e) => return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        }
    };
    ([(header::CONTENT_TYPE, HeaderValue::from_static(Format::Pretty.content_type()))], format!("{text}\n"))
        .into_response()
}

/// The pretty table of no rows: the column names alone.
fn header_only(schema: &SchemaRef) -> String {
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let line = format!("+{}+", names.iter().map(|n| "-".repeat(n.chars().count() + 2)).collect::<Vec<_>>().join("+"));
    let cells = names.iter().map(|n| format!(" {n} ")).collect::<Vec<_>>().join("|");
    format!("{line}\n|{cells}|\n{line}")
}

/// `GET /api/v3/query_sql_telemetry`: what the last query (of either query
/// endpoint) read, per table scan, while it runs or once done.
pub async fn telemetry(State(state): State<AppState>) -> Response {
    match state.last_query() {
        Some(t) => Json(t.report()).into_response(),
        None => ApiError::new(StatusCode::NOT_FOUND, "no query has run on this server yet").into_response(),
    }
}

// ---------------------------------------------------------------------------
// Cell encoding shared by the JSON and CSV encoders.

/// How timestamps are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimeText {
    /// RFC 3339 in UTC, with as many fraction digits as needed (0, 3, 6, 9).
    Rfc3339,
    /// Integer units since the epoch: ns per unit.
    Epoch(i64),
}

/// One column of a batch, typed once for the whole batch.
enum Column {
    Null,
    Str(ArrayRef),
    Int(ArrayRef),
    UInt(ArrayRef),
    Float(ArrayRef),
    Bool(ArrayRef),
    /// ns since the epoch, UTC.
    Time(ArrayRef),
    /// Anything else, as arrow displays it.
    Text(Vec<Option<String>>),
}

impl Column {
    fn of(array: &ArrayRef) -> Column {
        let cast = |to: &DataType| arrow::compute::cast(array, to).ok();
        let typed = match array.data_type() {
            DataType::Null => Some(Column::Null),
            DataType::Utf8 => Some(Column::Str(array.clone())),
            DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(_, _) => {
                cast(&DataType::Utf8).map(Column::Str)
            }
            DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
                cast(&DataType::Int64).map(Column::Int)
            }
            DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
                cast(&DataType::UInt64).map(Column::UInt)
            }
            DataType::Float16 | DataType::Float32 | DataType::Float64 => cast(&DataType::Float64).map(Column::Float),
            DataType::Boolean => Some(Column::Bool(array.clone())),
            DataType::Timestamp(_, _) => cast(&DataType::Timestamp(TimeUnit::Nanosecond, None)).map(Column::Time),
            _ => None,
        };
        typed.unwrap_or_else(|| Column::Text(display(array)))
    }

    /// Writes row `i` as a JSON value.
    fn json(&self, i: usize, time: TimeText, out: &mut Vec<u8>) {
        if self.is_null(i) {
            out.extend_from_slice(b"null");
            return;
        }
        match self {
            Column::Null => out.extend_from_slice(b"null"),
            Column::Str(a) => json_string(a.as_string::<i32>().value(i), out),
            Column::Int(a) => {
                out.extend_from_slice(itoa::Buffer::new().format(a.as_primitive::<Int64Type>().value(i)).as_bytes())
            }
            Column::UInt(a) => {
                out.extend_from_slice(itoa::Buffer::new().format(a.as_primitive::<UInt64Type>().value(i)).as_bytes())
            }
            Column::Float(a) => json_float(a.as_primitive::<Float64Type>().value(i), out),
            Column::Bool(a) => out.extend_from_slice(if a.as_boolean().value(i) { b"true" } else { b"false" }),
            Column::Time(a) => match time_text(a.as_primitive::<TimestampNanosecondType>().value(i), time) {
                TimeValue::Text(t) => json_string(&t, out),
                TimeValue::Int(n) => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
            },
            Column::Text(v) => match &v[i] {
                Some(t) => json_string(t, out),
                None => out.extend_from_slice(b"null"),
            },
        }
    }

    /// Writes row `i` as a CSV field (empty for null).
    fn csv(&self, i: usize, time: TimeText, out: &mut Vec<u8>) {
        if self.is_null(i) {
            return;
        }
        match self {
            Column::Null => {}
            Column::Str(a) => csv_string(a.as_string::<i32>().value(i), out),
            Column::Text(v) => {
                if let Some(t) = &v[i] {
                    csv_string(t, out)
                }
            }
            Column::Time(a) => match time_text(a.as_primitive::<TimestampNanosecondType>().value(i), time) {
                TimeValue::Text(t) => out.extend_from_slice(t.as_bytes()),
                TimeValue::Int(n) => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
            },
            Column::Float(a) => {
                let f = a.as_primitive::<Float64Type>().value(i);
                if f.is_finite() {
                    json_float(f, out);
                } else {
                    out.extend_from_slice(f.to_string().as_bytes());
                }
            }
            other => other.json(i, time, out),
        }
    }

    fn is_null(&self, i: usize) -> bool {
        match self {
            Column::Null => true,
            Column::Str(a)
            | Column::Int(a)
            | Column::UInt(a)
            | Column::Float(a)
            | Column::Bool(a)
            | Column::Time(a) => a.is_null(i),
            Column::Text(v) => v[i].is_none(),
        }
    }
}

enum TimeValue {
    Text(String),
    Int(i64),
}

fn time_text(ns: i64, time: TimeText) -> TimeValue {
    match time {
        TimeText::Rfc3339 => TimeValue::Text(
            chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        ),
        TimeText::Epoch(unit) => TimeValue::Int(ns.div_euclid(unit)),
    }
}

fn display(array: &ArrayRef) -> Vec<Option<String>> {
    let options = arrow::util::display::FormatOptions::default();
    match arrow::util::display::ArrayFormatter::try_new(array.as_ref(), &options) {
        Ok(f) => (0..array.len()).map(|i| (!array.is_null(i)).then(|| f.value(i).to_string())).collect(),
        Err(_) => (0..array.len()).map(|i| (!array.is_null(i)).then(|| format!("{array:?}[{i}]"))).collect(),
    }
}

fn json_string(s: &str, out: &mut Vec<u8>) {
    // Writing a &str to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// A float as JSON: shortest round-trip text; NaN and infinities, which JSON
/// cannot hold, are null (serde_json's rule).
fn json_float(f: f64, out: &mut Vec<u8>) {
    // Writing a number to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &f);
}

fn csv_string(s: &str, out: &mut Vec<u8>) {
    if s.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r')) || s.starts_with(' ') || s.ends_with(' ') {
        out.push(b'"');
        for b in s.bytes() {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(s.as_bytes());
    }
}

fn columns_of(batch: &RecordBatch) -> Vec<Column> {
    batch.columns().iter().map(Column::of).collect()
}

/// `json` (`{"results": [row, ...]}`) and `jsonl` (a row per line).
struct JsonRows {
    lines: bool,
    names: Vec<Vec<u8>>,
    first: bool,
    buf: Vec<u8>,
}

impl JsonRows {
    fn new(lines: bool) -> JsonRows {
        JsonRows { lines, names: Vec::new(), first: true, buf: Vec::new() }
    }
}

impl RowEncoder for JsonRows {
    fn begin(&mut self, out: &mut ChannelWriter, schema: &SchemaRef) -> io::Result<()> {
        self.names = schema
            .fields()
            .iter()
            .map(|f| {
                let mut key = Vec::new();
                json_string(f.name(), &mut key);
                key.push(b':');
                key
            })
            .collect();
        if !self.lines {
            out.write_all(b"{\"results\":[")?;
        }
        Ok(())
    }

    fn batch(&mut self, out: &mut ChannelWriter, batch: &RecordBatch) -> io::Result<()> {
        let columns = columns_of(batch);
        for row in 0..batch.num_rows() {
            self.buf.clear();
            if !self.lines && !self.first {
                self.buf.push(b',');
            }
            self.first = false;
            self.buf.push(b'{');
            let mut any = false;
            for (name, column) in self.names.iter().zip(&columns) {
                // Null values are left out of a row object, as InfluxDB does.
                if column.is_null(row) {
                    continue;
                }
                if any {
                    self.buf.push(b',');
                }
                any = true;
                self.buf.extend_from_slice(name);
                column.json(row, TimeText::Rfc3339, &mut self.buf);
            }
            self.buf.push(b'}');
            if self.lines {
                self.buf.push(b'\n');
            }
            out.write_all(&self.buf)?;
        }
        Ok(())
    }

    fn end(&mut self, out: &mut ChannelWriter) -> io::Result<()> {
        if !self.lines {
            out.write_all(b"]}")?;
        }
        Ok(())
    }
}

/// CSV with a header line; `prefix` puts v1's `name,tags` columns first.
struct CsvRows {
    prefix: Option<Vec<u8>>,
    time: TimeText,
    buf: Vec<u8>,
}

impl CsvRows {
    fn new(prefix: Option<Vec<u8>>, time: TimeText) -> CsvRows {
        CsvRows { prefix, time, buf: Vec::new() }
    }
}

impl RowEncoder for CsvRows {
    fn begin(&mut self, out: &mut ChannelWriter, schema: &SchemaRef) -> io::Result<()> {
        self.buf.clear();
        if self.prefix.is_some() {
            self.buf.extend_from_slice(b"name,tags,");
        }
        for (i, f) in schema.fields().iter().enumerate() {
            if i > 0 {
                self.buf.push(b',');
            }
            csv_string(f.name(), &mut self.buf);
        }
        self.buf.push(b'\n');
        out.write_all(&self.buf)
    }

    fn batch(&mut self, out: &mut ChannelWriter, batch: &RecordBatch) -> io::Result<()> {
        let columns = columns_of(batch);
        for row in 0..batch.num_rows() {
            self.buf.clear();
            if let Some(prefix) = &self.prefix {
                self.buf.extend_from_slice(prefix);
            }
            for (i, column) in columns.iter().enumerate() {
                if i > 0 {
                    self.buf.push(b',');
                }
                column.csv(row, self.time, &mut self.buf);
            }
            self.buf.push(b'\n');
            out.write_all(&self.buf)?;
        }
        Ok(())
    }

    fn end(&mut self, _out: &mut ChannelWriter) -> io::Result<()> {
        Ok(())
    }
}

/// One Parquet file, zstd-compressed, written row group by row group.
struct ParquetRows {
    writer: Option<parquet::arrow::ArrowWriter<ChannelWriter>>,
}

impl RowEncoder for ParquetRows {
    fn begin(&mut self, out: &mut ChannelWriter, schema: &SchemaRef) -> io::Result<()> {
        let props = parquet::file::properties::WriterProperties::builder()
            .set_compression(parquet::basic::Compression::ZSTD(parquet::basic::ZstdLevel::default()))
            .build();
        let writer =
            parquet::arrow::ArrowWriter::try_new(out.clone(), schema.clone(), Some(props)).map_err(io::Error::other)?;
        self.writer = Some(writer);
        Ok(())
    }

    fn batch(&mut self, _out: &mut ChannelWriter, batch: &RecordBatch) -> io::Result<()> {
        match &mut self.writer {
            Some(w) => w.write(batch).map_err(io::Error::other),
            None => Err(io::Error::other("parquet writer not started")),
        }
    }

    fn end(&mut self, _out: &mut ChannelWriter) -> io::Result<()> {
        match self.writer.take() {
            Some(w) => w.into_inner().map_err(io::Error::other)?.flush(),
            None => Ok(()),
        }
    }
}

// ---------------------------------------------------------------------------
// InfluxDB v1 `/query`.

/// `/query` parameters (query string, form or JSON body).
#[derive(Debug, Default, Deserialize)]
struct V1Params {
    db: Option<String>,
    q: Option<String>,
    epoch: Option<String>,
    chunked: Option<String>,
    chunk_size: Option<String>,
    pretty: Option<String>,
    // Accepted and ignored, as InfluxDB 3 does.
    #[allow(dead_code)]
    rp: Option<String>,
}

/// The JSON body form of `POST /query`.
#[derive(Debug, Default, Deserialize)]
struct V1Body {
    db: Option<String>,
    q: Option<String>,
    epoch: Option<String>,
    chunked: Option<bool>,
    chunk_size: Option<u64>,
    pretty: Option<bool>,
}

/// `GET /query`.
pub async fn v1_get(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    match query::<V1Params>(&uri) {
        Ok(p) => run_v1(state, p, &headers).await,
        Err(e) => e.into_response(),
    }
}

/// `POST /query`: parameters in the query string, a form body or a JSON
/// body; a body's values win over the query string's.
pub async fn v1_post(State(state): State<AppState>, uri: Uri, headers: HeaderMap, body: Body) -> Response {
    let request = async {
        let mut p: V1Params = query(&uri)?;
        let bytes = read_body(&state, &headers, body).await?;
        if bytes.is_empty() {
            return Ok(p);
        }
        if is_form(&headers) {
            let f: V1Params = serde_urlencoded::from_bytes(&bytes)
                .map_err(|e| ApiError::bad_request(format!("invalid form body: {e}")))?;
            p = V1Params {
                db: f.db.or(p.db),
                q: f.q.or(p.q),
                epoch: f.epoch.or(p.epoch),
                chunked: f.chunked.or(p.chunked),
                chunk_size: f.chunk_size.or(p.chunk_size),
                pretty: f.pretty.or(p.pretty),
                rp: f.rp.or(p.rp),
            };
            return Ok(p);
        }
        let j: V1Body = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body (expected {{\"db\", \"q\"}}): {e}")))?;
        Ok::<_, ApiError>(V1Params {
            db: j.db.or(p.db),
            q: j.q.or(p.q),
            epoch: j.epoch.or(p.epoch),
            chunked: j.chunked.map(|b| b.to_string()).or(p.chunked),
            chunk_size: j.chunk_size.map(|n| n.to_string()).or(p.chunk_size),
            pretty: j.pretty.map(|b| b.to_string()).or(p.pretty),
            rp: p.rp,
        })
    };
    match request.await {
        Ok(p) => run_v1(state, p, &headers).await,
        Err(e) => e.into_response(),
    }
}

/// ns per unit of a v1 `epoch` value.
fn epoch_unit(epoch: &str) -> Result<i64, ApiError> {
    Ok(match epoch {
        "ns" | "n" => 1,
        "u" | "µ" | "us" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 3_600 * 1_000_000_000,
        other => {
            return Err(ApiError::bad_request(format!("invalid epoch {other:?}: expected ns, u, µ, ms, s, m or h")));
        }
    })
}

fn flag(name: &str, value: Option<&str>) -> Result<bool, ApiError> {
    match value {
        None | Some("") | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!("invalid `{name}` {other:?}: expected true or false"))),
    }
}

async fn run_v1(state: AppState, p: V1Params, headers: &HeaderMap) -> Response {
    let started = async {
        let db = required("db", p.db, "the database to query")?;
        let q = required("q", p.q, "the query")?;
        let time = match p.epoch.as_deref().filter(|e| !e.is_empty()) {
            Some(e) => TimeText::Epoch(epoch_unit(e)?),
            None => TimeText::Rfc3339,
        };
        let chunked = flag("chunked", p.chunked.as_deref())?;
        let chunk_rows = match p.chunk_size.as_deref().filter(|s| !s.is_empty()) {
            None => DEFAULT_CHUNK_ROWS,
            Some(s) => s.parse::<usize>().ok().filter(|&n| n > 0).ok_or_else(|| {
                ApiError::bad_request(format!("invalid `chunk_size` {s:?}: expected a positive integer"))
            })?,
        };
        flag("pretty", p.pretty.as_deref())?;
        let started = start(&state, &db, &q, None).await?;
        Ok::<_, ApiError>((time, chunked, chunk_rows, started))
    };
    let (time, chunked, chunk_rows, started) = match started.await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let name = started.tables.join(",");
    let csv = Format::from_accept(headers) == Format::Csv;
    let (content_type, encoder): (&'static str, Box<dyn RowEncoder>) = if csv {
        let mut prefix = Vec::new();
        csv_string(&name, &mut prefix);
        prefix.extend_from_slice(b",,");
        // v1 CSV writes times as epoch ns unless asked otherwise.
        let time = if time == TimeText::Rfc3339 { TimeText::Epoch(1) } else { time };
        ("application/csv", Box::new(CsvRows::new(Some(prefix), time)))
    } else {
        ("application/json", Box::new(V1Json::new(name, time, chunked.then_some(chunk_rows))))
    };
    let Started { schema, first, stream, telemetry, deadline, .. } = started;
    stream_response(HeaderValue::from_static(content_type), schema, first, stream, telemetry, deadline, encoder)
}

/// The v1 JSON answer: one document, or with `chunked` one document per
/// `chunk_rows` rows, each but the last marked `"partial": true`.
struct V1Json {
    name: String,
    time: TimeText,
    chunk_rows: Option<usize>,
    header: Vec<u8>,
    /// Encoded rows of the chunk being filled.
    values: Vec<u8>,
    rows: usize,
    /// A full chunk waiting to learn whether it is the last.
    pending: Option<Vec<u8>>,
    any_rows: bool,
}

impl V1Json {
    fn new(name: String, time: TimeText, chunk_rows: Option<usize>) -> V1Json {
        V1Json {
            name,
            time,
            chunk_rows,
            header: Vec::new(),
            values: Vec::new(),
            rows: 0,
            pending: None,
            any_rows: false,
        }
    }

    fn document(&self, values: &[u8], partial: bool) -> Vec<u8> {
        let mut doc = Vec::with_capacity(values.len() + self.header.len() + 64);
        doc.extend_from_slice(b"{\"results\":[{\"statement_id\":0,\"series\":[");
        doc.extend_from_slice(&self.header);
        doc.extend_from_slice(values);
        doc.extend_from_slice(b"]");
        if partial {
            doc.extend_from_slice(b",\"partial\":true}],\"partial\":true}]}\n");
        } else {
            doc.extend_from_slice(b"}]}]}\n");
        }
        doc
    }
}

impl RowEncoder for V1Json {
    fn begin(&mut self, out: &mut ChannelWriter, schema: &SchemaRef) -> io::Result<()> {
        self.header.clear();
        self.header.extend_from_slice(b"{\"name\":");
        json_string(&self.name, &mut self.header);
        self.header.extend_from_slice(b",\"columns\":[");
        for (i, f) in schema.fields().iter().enumerate() {
            if i > 0 {
                self.header.push(b',');
            }
            json_string(f.name(), &mut self.header);
        }
        self.header.extend_from_slice(b"],\"values\":[");
        // Nothing is written yet: with no rows the document has another shape.
        let _ = out;
        Ok(())
    }

    fn batch(&mut self, out: &mut ChannelWriter, batch: &RecordBatch) -> io::Result<()> {
        let columns = columns_of(batch);
        for row in 0..batch.num_rows() {
            if self.chunk_rows.is_none() && !self.any_rows {
                out.write_all(b"{\"results\":[{\"statement_id\":0,\"series\":[")?;
                out.write_all(&self.header)?;
            }
            if self.rows > 0 {
                self.values.push(b',');
            }
            self.values.push(b'[');
            for (i, column) in columns.iter().enumerate() {
                if i > 0 {
                    self.values.push(b',');
                }
                column.json(row, self.time, &mut self.values);
            }
            self.values.push(b']');
            self.rows += 1;
            self.any_rows = true;
            match self.chunk_rows {
                None => {
                    out.write_all(&self.values)?;
                    self.values.clear();
                }
                Some(n) if self.rows == n => {
                    if let Some(done) = self.pending.take() {
                        out.write_all(&self.document(&done, true))?;
                    }
                    self.pending = Some(std::mem::take(&mut self.values));
                    self.rows = 0;
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    fn end(&mut self, out: &mut ChannelWriter) -> io::Result<()> {
        if !self.any_rows {
            return out.write_all(b"{\"results\":[{\"statement_id\":0}]}\n");
        }
        match self.chunk_rows {
            None => out.write_all(b"]}]}]}\n"),
            Some(_) => {
                let last = if self.rows > 0 { Some(std::mem::take(&mut self.values)) } else { None };
                match (self.pending.take(), last) {
                    (Some(done), Some(last)) => {
                        out.write_all(&self.document(&done, true))?;
                        out.write_all(&self.document(&last, false))
                    }
                    (Some(done), None) | (None, Some(done)) => out.write_all(&self.document(&done, false)),
                    (None, None) => Ok(()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn formats_parse() {
        assert_eq!(Format::parse("json_lines").ok(), Some(Format::JsonLines));
        assert_eq!(Format::parse("jsonl").ok(), Some(Format::JsonLines));
        assert!(Format::parse("xml").is_err());
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_static("text/csv;q=0.9, application/json"));
        assert_eq!(Format::from_accept(&h), Format::Csv);
        assert_eq!(Format::from_accept(&HeaderMap::new()), Format::Json);
    }

    #[test]
    fn epoch_units() {
        assert_eq!(epoch_unit("ms").ok(), Some(1_000_000));
        assert_eq!(epoch_unit("µ").ok(), Some(1_000));
        assert!(epoch_unit("d").is_err());
        assert!(matches!(time_text(-1, TimeText::Epoch(1_000)), TimeValue::Int(-1)));
        assert!(
            matches!(time_text(1_500_000_000, TimeText::Rfc3339), TimeValue::Text(t) if t == "1970-01-01T00:00:01.500Z")
        );
    }

    #[test]
    fn csv_quotes_only_when_needed() {
        let mut out = Vec::new();
        csv_string("a,b \"c\"", &mut out);
        assert_eq!(out, b"\"a,b \"\"c\"\"\"");
        out.clear();
        csv_string("plain", &mut out);
        assert_eq!(out, b"plain");
    }

    /// Everything an encoder writes for `batches`.
    fn encode(mut encoder: Box<dyn RowEncoder>, batches: &[RecordBatch]) -> Vec<u8> {
        let (tx, mut rx) = mpsc::channel(1 << 16);
        let mut out = ChannelWriter::new(tx);
        encoder.begin(&mut out, &batches[0].schema()).unwrap();
        for b in batches {
            encoder.batch(&mut out, b).unwrap();
        }
        encoder.end(&mut out).unwrap();
        out.flush().unwrap();
        drop(out);
        drop(encoder);
        let mut bytes = Vec::new();
        while let Ok(chunk) = rx.try_recv() {
            bytes.extend_from_slice(&chunk.unwrap());
        }
        bytes
    }

    type Row = (Option<i64>, Option<f64>, Option<String>, Option<bool>, i64);

    fn batch_of(rows: &[Row]) -> RecordBatch {
        use arrow::array::{BooleanArray, Float64Array, Int64Array, StringArray, TimestampNanosecondArray};
        use arrow::datatypes::{Field, Schema};
        let schema = Arc::new(Schema::new(vec![
            Field::new("i", DataType::Int64, true),
            Field::new("f", DataType::Float64, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("b", DataType::Boolean, true),
            Field::new("time", DataType::Timestamp(TimeUnit::Nanosecond, None), false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(rows.iter().map(|r| r.0).collect::<Int64Array>()),
                Arc::new(rows.iter().map(|r| r.1).collect::<Float64Array>()),
                Arc::new(rows.iter().map(|r| r.2.clone()).collect::<StringArray>()),
                Arc::new(rows.iter().map(|r| r.3).collect::<BooleanArray>()),
                Arc::new(TimestampNanosecondArray::from(rows.iter().map(|r| r.4).collect::<Vec<_>>())),
            ],
        )
        .unwrap()
    }

    fn row_strategy() -> impl proptest::strategy::Strategy<Value = Row> {
        use proptest::prelude::*;
        (
            proptest::option::of(any::<i64>()),
            proptest::option::of(any::<f64>().prop_filter("finite", |f| f.is_finite())),
            proptest::option::of(".*"),
            proptest::option::of(any::<bool>()),
            -4_000_000_000_000_000_000i64..4_000_000_000_000_000_000,
        )
    }

    proptest::proptest! {
        /// JSON and JSON lines read back (serde_json) to the batch's values;
        /// v1 values with `epoch=ns` too.
        #[test]
        fn json_encodings_read_back(rows in proptest::collection::vec(row_strategy(), 1..40)) {
            let batch = batch_of(&rows);
            let check = |obj: &serde_json::Value, r: &Row| {
                proptest::prop_assert_eq!(obj.get("i").and_then(|v| v.as_i64()), r.0);
                proptest::prop_assert_eq!(obj.get("f").and_then(|v| v.as_f64()), r.1);
                proptest::prop_assert_eq!(obj.get("s").and_then(|v| v.as_str()), r.2.as_deref());
                proptest::prop_assert_eq!(obj.get("b").and_then(|v| v.as_bool()), r.3);
                let t = obj["time"].as_str().unwrap();
                let parsed = chrono::DateTime::parse_from_rfc3339(t).unwrap().timestamp_nanos_opt().unwrap();
                proptest::prop_assert_eq!(parsed, r.4);
                Ok(())
            };
            let json: serde_json::Value = serde_json::from_slice(&encode(Box::new(JsonRows::new(false)), std::slice::from_ref(&batch))).unwrap();
            let objects = json["results"].as_array().unwrap();
            proptest::prop_assert_eq!(objects.len(), rows.len());
            for (o, r) in objects.iter().zip(&rows) {
                check(o, r)?;
            }
            let lines = encode(Box::new(JsonRows::new(true)), std::slice::from_ref(&batch));
            let lines: Vec<serde_json::Value> =
                std::str::from_utf8(&lines).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
            proptest::prop_assert_eq!(&lines, objects);

            let v1 = encode(Box::new(V1Json::new("t".into(), TimeText::Epoch(1), Some(7))), &[batch]);
            let mut values = Vec::new();
            let docs: Vec<serde_json::Value> =
                std::str::from_utf8(&v1).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
            for (k, d) in docs.iter().enumerate() {
                let partial = d["results"][0].get("partial").is_some();
                proptest::prop_assert_eq!(partial, k + 1 < docs.len());
                values.extend(d["results"][0]["series"][0]["values"].as_array().unwrap().iter().cloned());
            }
            proptest::prop_assert_eq!(values.len(), rows.len());
            for (v, r) in values.iter().zip(&rows) {
                proptest::prop_assert_eq!(v[0].as_i64(), r.0);
                proptest::prop_assert_eq!(v[1].as_f64(), r.1);
                proptest::prop_assert_eq!(v[2].as_str(), r.2.as_deref());
                proptest::prop_assert_eq!(v[3].as_bool(), r.3);
                proptest::prop_assert_eq!(v[4].as_i64(), Some(r.4));
            }
        }

        /// A CSV field reads back (RFC 4180 quoting) to the string.
        #[test]
        fn csv_fields_read_back(s in ".*") {
            let mut out = Vec::new();
            csv_string(&s, &mut out);
            let text = String::from_utf8(out).unwrap();
            let back = match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
                Some(inner) => {
                    proptest::prop_assert!(!inner.replace("\"\"", "").contains('"'));
                    inner.replace("\"\"", "\"")
                }
                None => {
                    proptest::prop_assert!(!text.contains([',', '"', '\n', '\r']));
                    text.clone()
                }
            };
            proptest::prop_assert_eq!(back, s);
        }
    }

    #[test]
    fn floats_round_trip() {
        for f in [0.1, 1e300, -2.5e-8, 42.0, 123_456_789_012_345_680.0, f64::MIN_POSITIVE] {
            let mut out = Vec::new();
            json_float(f, &mut out);
            let back: f64 = serde_json::from_slice(&out).unwrap();
            assert_eq!(back, f);
        }
        let mut out = Vec::new();
        json_float(f64::NAN, &mut out);
        assert_eq!(out, b"null");
    }
}
