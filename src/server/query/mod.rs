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

mod encode;
mod v1;

use encode::*;
pub use v1::{v1_get, v1_post};

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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::v1::{V1Json, epoch_unit};
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
