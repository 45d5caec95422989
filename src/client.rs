//! The HTTP client behind `quipu write`, `quipu export` and `quipu backup`: sends line
//! protocol to a quipu (or InfluxDB 3) server's `POST /api/v3/write_lp` in
//! batches and reads back which lines the server rejected; lists a table's
//! compacted windows and downloads them as Parquet files
//! (`/api/v3/export/*`), unpacking the tar stream as it arrives; starts,
//! lists, cancels, deletes and verifies backups (`/api/v3/enterprise/backup`).
//!
//! What this module owns:
//! - cutting an input stream into batches that never split a logical line
//!   (see [`Client::write_lp`] for the rule) and that stay under a line and a
//!   byte budget;
//! - the wire: gzip bodies, `Authorization: Bearer`, one keep-alive
//!   connection pool for the whole upload;
//! - recovery: a 413 halves the batch (and lowers the budget for the rest of
//!   the upload), connection failures and 503 are retried with exponential
//!   backoff ([`MAX_ATTEMPTS`] attempts, delays from 100 ms doubling up to
//!   2 s, with jitter). Retries use the `backon` crate (maintained, blocking
//!   API, no async runtime; `backoff` is unmaintained). Re-sending a batch is
//!   safe: a point written twice keeps the same series and timestamp, so the
//!   second write overwrites the first with the same values;
//! - translating the server's per-request line numbers into line numbers of
//!   the input (first line = 1, counting every physical line).
//!
//! Plain `http://` only: the crate is built without a TLS feature (it would
//! pull a TLS stack and its C build); put a TLS-terminating proxy in front of
//! a remote server.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use backon::{BlockingRetryable, ExponentialBuilder};
use reqwest::Url;
use reqwest::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HeaderValue};

/// Where `quipu write` sends to unless `--host` says otherwise.
pub const DEFAULT_HOST: &str = "http://127.0.0.1:8181";
/// The environment variable `--token` falls back to.
pub const TOKEN_ENV: &str = "QUIPU_TOKEN";
/// Attempts per request (the first one included) for transient failures.
pub const MAX_ATTEMPTS: usize = 5;
/// The server lists at most this many rejected lines per request.
pub const SERVER_MAX_REJECTED_LINES: usize = 100;

const FIRST_RETRY_DELAY: Duration = Duration::from_millis(100);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// An export streams for as long as the data takes; the stream is watched
/// by the progress bar, not by a timer.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// Generous: a synced 8 MiB batch on a slow disk takes seconds, and a
/// timed-out write is not retried (it may still be applied).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error("invalid server URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("the token contains characters not allowed in an HTTP header")]
    InvalidToken,
    #[error("request to {url} failed: {source}")]
    Http { url: String, source: reqwest::Error },
    /// Any answer this module has no better variant for; `body` is the
    /// server's JSON error text.
    #[error("server answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("unauthorized (check --token or {TOKEN_ENV}): {0}")]
    Unauthorized(String),
    #[error("cannot read {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("reading input at line {line}: {source}")]
    Read { line: u64, source: io::Error },
    #[error("input line {line} is not UTF-8 (at byte {offset} of the input)")]
    NotUtf8 { line: u64, offset: u64 },
    /// One logical line longer than the batch byte budget (often a quoted
    /// string that is never closed, which runs to the end of the input).
    #[error("input line {line} is longer than the batch limit of {limit} bytes (an unclosed quoted string?)")]
    LineTooLong { line: u64, limit: usize },
    #[error("input line {line} alone is larger than the server's body limit: {body}")]
    LineTooLarge { line: u64, body: String },
    /// With `accept_partial = false`: the server wrote nothing of the batch
    /// holding input lines `first_line..=last_line`; earlier batches stay written.
    #[error(
        "the server rejected the batch of input lines {first_line}..={last_line} (nothing of it was written; earlier batches were): {}",
        describe(rejected)
    )]
    BatchRejected { first_line: u64, last_line: u64, rejected: Vec<RejectedLine> },
    #[error("compressing a batch: {0}")]
    Compress(io::Error),
    /// 404: an unknown database, table or window (the server's text).
    #[error("not found: {0}")]
    NotFound(String),
    #[error("the server's answer is not what {what} returns: {reason}")]
    BadAnswer { what: &'static str, reason: String },
    /// The export stream broke off or is not a tar of Parquet files.
    #[error("export stream from {url}: {source}")]
    Export { url: String, source: io::Error },
    #[error("streaming the answer of {url}: {source}")]
    Stream { url: String, source: io::Error },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
}

fn describe(rejected: &[RejectedLine]) -> String {
    match rejected {
        [] => "no line named".to_owned(),
        [one, rest @ ..] => {
            let more = if rest.is_empty() { String::new() } else { format!(" (and {} more)", rest.len()) };
            format!("line {}: {}{more}", one.line, one.error)
        }
    }
}

/// How [`Client::write_lp`] cuts and sends the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteBatchOptions {
    /// At most this many lines (blank and comment lines not counted) per request.
    pub batch_lines: usize,
    /// At most this many uncompressed bytes per request. Keep it below the
    /// server's body limit (10 MiB by default), which also applies after
    /// decompression. A single line longer than this is an error.
    pub batch_bytes: usize,
    /// Let the server write the good lines of a batch holding bad ones.
    pub accept_partial: bool,
    /// Let the server answer before its WAL is synced.
    pub no_sync: bool,
    /// Send `Content-Encoding: gzip` bodies.
    pub gzip: bool,
}

impl Default for WriteBatchOptions {
    fn default() -> Self {
        Self { batch_lines: 10_000, batch_bytes: 8 << 20, accept_partial: true, no_sync: false, gzip: true }
    }
}

/// What an upload did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteReport {
    /// Lines sent (blank and comment lines not counted), rejected ones included.
    pub lines_sent: u64,
    /// Requests that the server answered with a write outcome.
    pub batches: u64,
    /// Lines the server rejected, in input order, numbered in the input.
    pub rejected: Vec<RejectedLine>,
    /// The server named only some of the lines it rejected: it lists at most
    /// [`SERVER_MAX_REJECTED_LINES`] per request, and only the first when it
    /// rejects every line of a request.
    pub rejected_incomplete: bool,
}

/// One line the server did not write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedLine {
    /// 1-based line number in the input (physical lines, blank and comment lines counted).
    pub line: u64,
    /// The line as the server quotes it (it may cut long lines).
    pub text: String,
    pub error: String,
}

/// A blocking client for one server; reuses its connections (keep-alive)
/// across requests.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::blocking::Client,
    base: Url,
    auth: Option<HeaderValue>,
}

impl Client {
    /// A client for the server at `host` (`http://host:port`, optionally with
    /// a path prefix), sending `token` as `Authorization: Bearer <token>`.
    pub fn new(host: &str, token: Option<&str>) -> Result<Client, ClientError> {
        let invalid = |reason: &str| ClientError::InvalidUrl { url: host.to_owned(), reason: reason.to_owned() };
        let mut base = Url::parse(host).map_err(|e| invalid(&e.to_string()))?;
        match base.scheme() {
            "http" => {}
            "https" => return Err(invalid("https is not supported by this build (no TLS); use http://")),
            _ => return Err(invalid("expected http://host:port")),
        }
        if base.host_str().is_none_or(str::is_empty) {
            return Err(invalid("no host"));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(invalid("a server URL has no query or fragment"));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let auth = match token.filter(|t| !t.is_empty()) {
            None => None,
            Some(t) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {t}")).map_err(|_| ClientError::InvalidToken)?;
                value.set_sensitive(true);
                Some(value)
            }
        };
        let http = reqwest::blocking::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|source| ClientError::Http { url: base.to_string(), source })?;
        Ok(Client { http, base, auth })
    }

    /// The server's base URL (with a trailing `/`).
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// Sends `reader`'s line protocol to database `db` in batches of at most
    /// `batch_lines` lines and `batch_bytes` bytes, gzip-compressed when
    /// `opts.gzip`, and calls `progress` with the number of input bytes read
    /// so far after each batch (the last call is the input's total size).
    ///
    /// Batches never split a logical line. A logical line ends at the first
    /// newline that is neither escaped by a backslash nor inside a quoted
    /// string field value, where a `"` opens or closes such a value only
    /// after the line's first space and when more `=` than `,` have been seen
    /// outside quotes since then (Go's `scanLine`, which the server follows).
    /// Blank lines and lines whose first non-blank character is `#` are
    /// sent as they are (they keep the server's line numbers aligned with the
    /// input's) but not counted as lines.
    ///
    /// Rejected lines are collected in the report with input line numbers
    /// when `accept_partial` is true. When it is false, the first batch with
    /// a bad line stops the upload with [`ClientError::BatchRejected`]: that
    /// batch is not written, the batches before it stay written.
    ///
    /// A 413 answer halves the batch and retries each half (and lowers the
    /// byte budget for the rest of the upload); a single line the server
    /// still refuses is [`ClientError::LineTooLarge`].
    pub fn write_lp(
        &self,
        db: &str,
        precision: &str,
        mut reader: impl BufRead,
        opts: &WriteBatchOptions,
        progress: &dyn Fn(u64),
    ) -> Result<WriteReport, ClientError> {
        let mut url = self
            .base
            .join("api/v3/write_lp")
            .map_err(|e| ClientError::InvalidUrl { url: self.base.to_string(), reason: e.to_string() })?;
        url.query_pairs_mut()
            .append_pair("db", db)
            .append_pair("precision", precision)
            .append_pair("accept_partial", if opts.accept_partial { "true" } else { "false" })
            .append_pair("no_sync", if opts.no_sync { "true" } else { "false" });
        let batch_lines = opts.batch_lines.max(1);
        let mut upload =
            Upload { client: self, url, opts, byte_budget: opts.batch_bytes.max(1), report: WriteReport::default() };
        let mut splitter = LineSplitter::new();
        let mut body = Vec::new();
        let mut units: Vec<Unit> = Vec::new();
        let mut data_lines = 0_usize;
        loop {
            let start = body.len();
            let Some(unit) = splitter.next_unit(&mut reader, &mut body, opts.batch_bytes.max(1))? else { break };
            let len = body.len() - start;
            let full = start + len > upload.byte_budget || (unit.is_data && data_lines == batch_lines);
            if full && !units.is_empty() {
                if data_lines > 0 {
                    upload.send_batch(&body[..start], &units)?;
                    progress(splitter.bytes_read - len as u64);
                }
                body.drain(..start);
                units.clear();
                data_lines = 0;
            }
            units.push(Unit { end: body.len(), first_line: unit.first_line, is_data: unit.is_data });
            data_lines += usize::from(unit.is_data);
        }
        if data_lines > 0 {
            upload.send_batch(&body, &units)?;
        }
        progress(splitter.bytes_read);
        Ok(upload.report)
    }

    /// One POST, retried on connection failures and 503; returns the status
    /// and body text of the answer.
    fn post(&self, url: &Url, body: &[u8], gzip: bool) -> Result<(u16, String), ClientError> {
        let attempt = || -> Result<(u16, String), Attempt> {
            let mut request = self.http.post(url.clone()).header(CONTENT_TYPE, "text/plain; charset=utf-8");
            if gzip {
                request = request.header(CONTENT_ENCODING, "gzip");
            }
            if let Some(auth) = &self.auth {
                request = request.header(AUTHORIZATION, auth.clone());
            }
            let http_error = |source: reqwest::Error| {
                let transient = is_transient(&source);
                let error = ClientError::Http { url: url.to_string(), source };
                if transient { Attempt::Transient(error) } else { Attempt::Fatal(error) }
            };
            let response = request.body(body.to_vec()).send().map_err(http_error)?;
            let status = response.status().as_u16();
            let text = response.text().map_err(http_error)?;
            if status == 503 {
                return Err(Attempt::Transient(ClientError::Status { status, body: text }));
            }
            Ok((status, text))
        };
        with_retries(attempt)
    }
}

/// A compacted window as `GET /api/v3/export/windows` lists it.
pub use crate::export::WindowInfo as ExportWindow;

/// One Parquet file written by [`Client::export`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedFile {
    pub path: PathBuf,
    pub bytes: u64,
}

impl Client {
    fn url(&self, path: &str, query: &[(&str, &str)]) -> Result<Url, ClientError> {
        let mut url = self
            .base
            .join(path)
            .map_err(|e| ClientError::InvalidUrl { url: self.base.to_string(), reason: e.to_string() })?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    /// A GET, retried like writes; a non-2xx answer becomes the matching error.
    fn get(&self, url: &Url, timeout: Duration) -> Result<reqwest::blocking::Response, ClientError> {
        self.read_request(reqwest::Method::GET, url, timeout, None)
    }

    /// A request that changes nothing on the server (so it is retried like
    /// a GET), its answer to be read as it streams in.
    fn read_request(
        &self,
        method: reqwest::Method,
        url: &Url,
        timeout: Duration,
        body: Option<&serde_json::Value>,
    ) -> Result<reqwest::blocking::Response, ClientError> {
        let attempt = || -> Result<reqwest::blocking::Response, Attempt> {
            let mut request = self.http.request(method.clone(), url.clone()).timeout(timeout);
            if let Some(auth) = &self.auth {
                request = request.header(AUTHORIZATION, auth.clone());
            }
            if let Some(body) = body {
                request = request.header(CONTENT_TYPE, "application/json").body(body.to_string());
            }
            let response = request.send().map_err(|source| {
                let transient = is_transient(&source);
                let error = ClientError::Http { url: url.to_string(), source };
                if transient { Attempt::Transient(error) } else { Attempt::Fatal(error) }
            })?;
            let status = response.status().as_u16();
            if (200..300).contains(&status) {
                return Ok(response);
            }
            let text = error_text(&response.text().unwrap_or_default());
            Err(match status {
                503 => Attempt::Transient(ClientError::Status { status, body: text }),
                401 => Attempt::Fatal(ClientError::Unauthorized(text)),
                404 => Attempt::Fatal(ClientError::NotFound(text)),
                _ => Attempt::Fatal(ClientError::Status { status, body: text }),
            })
        };
        with_retries(attempt)
    }

    /// The compacted windows of `db`.`table`, oldest first.
    pub fn export_windows(&self, db: &str, table: &str) -> Result<Vec<ExportWindow>, ClientError> {
        #[derive(serde::Deserialize)]
        struct Answer {
            windows: Vec<ExportWindow>,
        }
        let url = self.url("api/v3/export/windows", &[("db", db), ("table", table)])?;
        let text = self
            .get(&url, REQUEST_TIMEOUT)?
            .text()
            .map_err(|source| ClientError::Http { url: url.to_string(), source })?;
        let answer: Answer = serde_json::from_str(&text)
            .map_err(|e| ClientError::BadAnswer { what: "GET /api/v3/export/windows", reason: e.to_string() })?;
        Ok(answer.windows)
    }

    /// Downloads `windows` (all when empty) of `db`.`table` as Parquet files
    /// into `out` (`<out>/<table>/<YYYY-MM-DD>.parquet`, the server's tar
    /// entry names), unpacking the tar as it streams in. `progress` gets the
    /// bytes received so far. Each file is written under a temporary name
    /// and renamed when complete, so an interrupted export leaves no
    /// half-written Parquet file behind. Entry names that would leave `out`
    /// (absolute, `..`) are refused.
    pub fn export(
        &self,
        db: &str,
        table: &str,
        windows: &[String],
        out: &Path,
        progress: &dyn Fn(u64),
    ) -> Result<Vec<ExportedFile>, ClientError> {
        let list = windows.join(",");
        let mut query = vec![("db", db), ("table", table)];
        if !list.is_empty() {
            query.push(("windows", list.as_str()));
        }
        let url = self.url("api/v3/export/window_data", &query)?;
        let response = self.get(&url, EXPORT_TIMEOUT)?;
        unpack_export(Counting { inner: response, read: 0, progress }, url.as_str(), out)
    }
}

impl Client {
    /// Runs `sql` on `db` (`POST /api/v3/query_sql`) and copies the answer
    /// in `format` (json, jsonl, csv, parquet, pretty) to `out` as it
    /// streams in; `params` fill `$name` placeholders. Returns the bytes
    /// copied. Bad SQL is [`ClientError::Status`] 400 with the planner's
    /// message; an unknown database is [`ClientError::NotFound`].
    pub fn query_sql(
        &self,
        db: &str,
        sql: &str,
        format: &str,
        params: Option<&serde_json::Value>,
        out: &mut dyn Write,
    ) -> Result<u64, ClientError> {
        let url = self.url("api/v3/query_sql", &[])?;
        let mut body = serde_json::json!({ "db": db, "q": sql, "format": format });
        if let Some(p) = params {
            body["params"] = p.clone();
        }
        let mut response = self.read_request(reqwest::Method::POST, &url, EXPORT_TIMEOUT, Some(&body))?;
        io::copy(&mut response, out).map_err(|source| ClientError::Stream { url: url.to_string(), source })
    }
}

/// `POST /api/v3/enterprise/backup`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct BackupStarted {
    pub backup_name: String,
    pub status: String,
}

impl Client {
    /// `/api/v3/enterprise/backup` plus optional path segments (percent-encoded).
    fn backup_url(&self, segments: &[&str]) -> Result<Url, ClientError> {
        let mut url = self.url("api/v3/enterprise/backup", &[])?;
        if !segments.is_empty() {
            let base = url.to_string();
            url.path_segments_mut()
                .map_err(|()| ClientError::InvalidUrl { url: base, reason: "cannot hold a path".into() })?
                .extend(segments);
        }
        Ok(url)
    }

    /// A JSON request; GET and DELETE are retried like writes (they are
    /// idempotent), POST is sent once. A non-2xx answer becomes the
    /// matching error.
    fn json_request<T: serde::de::DeserializeOwned>(
        &self,
        method: reqwest::Method,
        url: &Url,
        body: Option<&serde_json::Value>,
        what: &'static str,
    ) -> Result<T, ClientError> {
        let retry = method != reqwest::Method::POST;
        let attempt = || -> Result<String, Attempt> {
            let mut request = self.http.request(method.clone(), url.clone());
            if let Some(auth) = &self.auth {
                request = request.header(AUTHORIZATION, auth.clone());
            }
            if let Some(body) = body {
                request = request.header(CONTENT_TYPE, "application/json").body(body.to_string());
            }
            let response = request.send().map_err(|source| {
                let transient = retry && is_transient(&source);
                let error = ClientError::Http { url: url.to_string(), source };
                if transient { Attempt::Transient(error) } else { Attempt::Fatal(error) }
            })?;
            let status = response.status().as_u16();
            let text =
                response.text().map_err(|source| Attempt::Fatal(ClientError::Http { url: url.to_string(), source }))?;
            if (200..300).contains(&status) {
                return Ok(text);
            }
            let text = error_text(&text);
            Err(match status {
                503 if retry => Attempt::Transient(ClientError::Status { status, body: text }),
                401 => Attempt::Fatal(ClientError::Unauthorized(text)),
                404 => Attempt::Fatal(ClientError::NotFound(text)),
                _ => Attempt::Fatal(ClientError::Status { status, body: text }),
            })
        };
        let text = with_retries(attempt)?;
        // A 204 has no body: it reads as null (`()` and `Option`s take it).
        let text = if text.is_empty() { "null".to_owned() } else { text };
        serde_json::from_str(&text).map_err(|e| ClientError::BadAnswer { what, reason: e.to_string() })
    }

    /// Starts a backup: `full`, or `incremental` after `parent` (the newest
    /// completed backup when `None`).
    pub fn backup_create(
        &self,
        name: Option<&str>,
        force: bool,
        incremental: bool,
        parent: Option<&str>,
    ) -> Result<BackupStarted, ClientError> {
        let mut body = serde_json::json!({ "type": if incremental { "incremental" } else { "full" }, "force": force });
        if let Some(name) = name {
            body["name"] = name.into();
        }
        if let Some(parent) = parent {
            body["parent"] = parent.into();
        }
        let url = self.backup_url(&[])?;
        self.json_request(reqwest::Method::POST, &url, Some(&body), "POST /api/v3/enterprise/backup")
    }

    /// Every backup the server knows.
    pub fn backup_list(&self) -> Result<Vec<crate::backup::BackupInfo>, ClientError> {
        #[derive(serde::Deserialize)]
        struct Answer {
            backups: Vec<crate::backup::BackupInfo>,
        }
        let url = self.backup_url(&[])?;
        let answer: Answer = self.json_request(reqwest::Method::GET, &url, None, "GET /api/v3/enterprise/backup")?;
        Ok(answer.backups)
    }

    /// One backup.
    pub fn backup_get(&self, name: &str) -> Result<crate::backup::BackupInfo, ClientError> {
        let url = self.backup_url(&[name])?;
        self.json_request(reqwest::Method::GET, &url, None, "GET /api/v3/enterprise/backup/{name}")
    }

    /// Deletes a backup; returns its type.
    pub fn backup_delete(&self, name: &str) -> Result<String, ClientError> {
        #[derive(serde::Deserialize)]
        struct Answer {
            #[serde(rename = "type")]
            backup_type: String,
        }
        let url = self.backup_url(&[name])?;
        let answer: Answer =
            self.json_request(reqwest::Method::DELETE, &url, None, "DELETE /api/v3/enterprise/backup/{name}")?;
        Ok(answer.backup_type)
    }

    /// Cancels a running backup.
    pub fn backup_cancel(&self, name: &str) -> Result<(), ClientError> {
        let url = self.backup_url(&[])?;
        let body = serde_json::json!({ "name": name });
        let _: serde_json::Value =
            self.json_request(reqwest::Method::DELETE, &url, Some(&body), "DELETE /api/v3/enterprise/backup")?;
        Ok(())
    }

    /// Re-hashes every object of a backup on the server.
    pub fn backup_verify(&self, name: &str) -> Result<crate::backup::VerifyReport, ClientError> {
        let url = self.backup_url(&[name, "verify"])?;
        self.json_request(reqwest::Method::POST, &url, None, "POST /api/v3/enterprise/backup/{name}/verify")
    }

    fn restore_url(&self, id: Option<&str>) -> Result<Url, ClientError> {
        let mut url = self.url("api/v3/enterprise/restore", &[])?;
        if let Some(id) = id {
            let base = url.to_string();
            url.path_segments_mut()
                .map_err(|()| ClientError::InvalidUrl { url: base, reason: "cannot hold a path".into() })?
                .push(id);
        }
        Ok(url)
    }

    /// Starts restoring backup `backup_name`; returns the restore's id.
    pub fn restore_start(
        &self,
        backup_name: &str,
        verify: crate::backup::RestoreVerify,
    ) -> Result<RestoreStarted, ClientError> {
        let body = serde_json::json!({ "backup_name": backup_name, "verify": verify });
        let url = self.restore_url(None)?;
        self.json_request(reqwest::Method::POST, &url, Some(&body), "POST /api/v3/enterprise/restore")
    }

    /// Every restore the server knows, newest first.
    pub fn restore_list(&self) -> Result<Vec<crate::backup::RestoreInfo>, ClientError> {
        #[derive(serde::Deserialize)]
        struct Answer {
            restores: Vec<crate::backup::RestoreInfo>,
        }
        let url = self.restore_url(None)?;
        let answer: Answer = self.json_request(reqwest::Method::GET, &url, None, "GET /api/v3/enterprise/restore")?;
        Ok(answer.restores)
    }

    /// One restore.
    pub fn restore_get(&self, id: &str) -> Result<crate::backup::RestoreInfo, ClientError> {
        let url = self.restore_url(Some(id))?;
        self.json_request(reqwest::Method::GET, &url, None, "GET /api/v3/enterprise/restore/{id}")
    }

    /// Cancels a running restore (before its swap).
    pub fn restore_cancel(&self, id: &str) -> Result<(), ClientError> {
        let url = self.restore_url(Some(id))?;
        self.json_request(reqwest::Method::DELETE, &url, None, "DELETE /api/v3/enterprise/restore/{id}")
    }
}

/// The answer to starting a restore.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct RestoreStarted {
    pub restore_id: String,
    pub status: String,
}

/// Unpacks an export tar (`GET /api/v3/export/window_data`) from `stream`
/// into `out`, as [`Client::export`] does: each regular entry written under
/// a temporary name, synced and renamed; names that would leave `out`
/// refused; other entry kinds skipped. `source` names the stream in errors.
pub fn unpack_export(stream: impl io::Read, source: &str, out: &Path) -> Result<Vec<ExportedFile>, ClientError> {
    let stream_error = |e: io::Error| ClientError::Export { url: source.to_owned(), source: e };
    let mut archive = tar::Archive::new(stream);
    let mut files = Vec::new();
    for entry in archive.entries().map_err(stream_error)? {
        let mut entry = entry.map_err(stream_error)?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let name = entry.path().map_err(stream_error)?.into_owned();
        if name.as_os_str().is_empty() || !name.components().all(|c| matches!(c, std::path::Component::Normal(_))) {
            return Err(stream_error(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("entry name {} leaves the output folder", name.display()),
            )));
        }
        let path = out.join(&name);
        let write_error = |source| ClientError::Write { path: path.clone(), source };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(write_error)?;
        }
        let partial = crate::fs::temp_path(&path);
        let copied = copy_entry(&mut entry, &partial);
        if copied.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        let bytes = match copied {
            Ok(n) => n,
            Err(Copy::Read(e)) => return Err(stream_error(e)),
            Err(Copy::Write(e)) => return Err(write_error(e)),
        };
        std::fs::rename(&partial, &path).map_err(write_error)?;
        files.push(ExportedFile { path, bytes });
    }
    Ok(files)
}

enum Copy {
    Read(io::Error),
    Write(io::Error),
}

/// Copies a tar entry into a new file at `path`, synced.
fn copy_entry(entry: &mut impl io::Read, path: &Path) -> Result<u64, Copy> {
    let mut file = File::create(path).map_err(Copy::Write)?;
    let mut buf = vec![0u8; 256 << 10];
    let mut total = 0u64;
    loop {
        let n = match entry.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Copy::Read(e)),
        };
        file.write_all(&buf[..n]).map_err(Copy::Write)?;
        total += n as u64;
    }
    file.sync_all().map_err(Copy::Write)?;
    Ok(total)
}

/// Counts the bytes read through it for a progress callback.
struct Counting<'a, R> {
    inner: R,
    read: u64,
    progress: &'a dyn Fn(u64),
}

impl<R: io::Read> io::Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        (self.progress)(self.read);
        Ok(n)
    }
}

enum Attempt {
    Transient(ClientError),
    Fatal(ClientError),
}

/// Runs `attempt` until it succeeds, fails fatally or has been tried
/// [`MAX_ATTEMPTS`] times (exponential backoff with jitter between tries).
fn with_retries<T>(attempt: impl FnMut() -> Result<T, Attempt>) -> Result<T, ClientError> {
    let backoff = ExponentialBuilder::default()
        .with_min_delay(FIRST_RETRY_DELAY)
        .with_max_delay(MAX_RETRY_DELAY)
        .with_max_times(MAX_ATTEMPTS - 1)
        .with_jitter();
    attempt.retry(backoff).when(|e| matches!(e, Attempt::Transient(_))).call().map_err(|e| match e {
        Attempt::Transient(e) | Attempt::Fatal(e) => e,
    })
}

/// Connection refused, reset or closed before the answer: the request may be
/// sent again. A timeout is not retried: the server may still be writing.
fn is_transient(e: &reqwest::Error) -> bool {
    if e.is_timeout() {
        return false;
    }
    if e.is_connect() || e.is_request() {
        return true;
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<io::Error>() {
            return matches!(
                io.kind(),
                io::ErrorKind::ConnectionRefused
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::UnexpectedEof
            );
        }
        source = s.source();
    }
    false
}

/// One logical line (or blank/comment line) in a batch body.
#[derive(Debug, Clone, Copy)]
struct Unit {
    /// Offset just past it in the body.
    end: usize,
    /// Input line where it starts.
    first_line: u64,
    is_data: bool,
}

struct Upload<'a> {
    client: &'a Client,
    url: Url,
    opts: &'a WriteBatchOptions,
    /// Bytes per batch; lowered when the server answers 413.
    byte_budget: usize,
    report: WriteReport,
}

impl Upload<'_> {
    /// Sends `body`, whose units are `units`, halving it on 413.
    fn send_batch(&mut self, body: &[u8], units: &[Unit]) -> Result<(), ClientError> {
        let Some(first) = units.first() else { return Ok(()) };
        if let Err(e) = std::str::from_utf8(body) {
            let offset = e.valid_up_to();
            let line = first.first_line + body[..offset].iter().filter(|&&b| b == b'\n').count() as u64;
            return Err(ClientError::NotUtf8 { line, offset: offset as u64 });
        }
        let compressed;
        let payload = if self.opts.gzip {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 4), flate2::Compression::fast());
            encoder.write_all(body).map_err(ClientError::Compress)?;
            compressed = encoder.finish().map_err(ClientError::Compress)?;
            &compressed[..]
        } else {
            body
        };
        let (status, text) = self.client.post(&self.url, payload, self.opts.gzip)?;
        let data_lines = units.iter().filter(|u| u.is_data).count() as u64;
        match status {
            200..=299 => {}
            400 => self.rejected(&text, first.first_line, units, data_lines)?,
            401 | 403 => return Err(ClientError::Unauthorized(error_text(&text))),
            413 => {
                if units.len() == 1 {
                    return Err(ClientError::LineTooLarge { line: first.first_line, body: text });
                }
                self.byte_budget = self.byte_budget.min((body.len() / 2).max(1));
                let mid = units.len() / 2;
                let split = units[mid - 1].end;
                self.send_batch(&body[..split], &units[..mid])?;
                let rest: Vec<Unit> = units[mid..].iter().map(|u| Unit { end: u.end - split, ..*u }).collect();
                return self.send_batch(&body[split..], &rest);
            }
            _ => return Err(ClientError::Status { status, body: text }),
        }
        self.report.batches += 1;
        self.report.lines_sent += data_lines;
        Ok(())
    }

    /// Handles a 400: rejected lines (collected, or an error without
    /// `accept_partial`), or a request the server refused as a whole.
    fn rejected(&mut self, text: &str, first_line: u64, units: &[Unit], data_lines: u64) -> Result<(), ClientError> {
        let json: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
        let to_input = |server_line: u64| first_line + server_line.saturating_sub(1);
        let (lines, whole_batch) = match json.get("data") {
            Some(serde_json::Value::Array(items)) => {
                (items.iter().filter_map(|v| rejected_line(v, to_input)).collect::<Vec<_>>(), false)
            }
            Some(item @ serde_json::Value::Object(_)) => (rejected_line(item, to_input).into_iter().collect(), true),
            _ => (Vec::new(), false),
        };
        if lines.is_empty() {
            // Not about lines: bad database name, precision, body...
            return Err(ClientError::Status { status: 400, body: text.to_owned() });
        }
        if !self.opts.accept_partial {
            let last_line = units.last().map_or(first_line, |u| u.first_line);
            return Err(ClientError::BatchRejected { first_line, last_line, rejected: lines });
        }
        if (whole_batch && data_lines > 1) || lines.len() >= SERVER_MAX_REJECTED_LINES {
            self.report.rejected_incomplete = true;
        }
        self.report.rejected.extend(lines);
        Ok(())
    }
}

fn rejected_line(v: &serde_json::Value, to_input: impl Fn(u64) -> u64) -> Option<RejectedLine> {
    Some(RejectedLine {
        line: to_input(v.get("line_number")?.as_u64()?),
        text: v.get("original_line").and_then(|t| t.as_str()).unwrap_or_default().to_owned(),
        error: v.get("error_message").and_then(|t| t.as_str()).unwrap_or_default().to_owned(),
    })
}

/// The `error` string of a JSON error body, or the body itself.
fn error_text(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| body.to_owned())
}

/// A unit read by [`LineSplitter::next_unit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct UnitInfo {
    first_line: u64,
    is_data: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first non-blank byte of a physical line.
    Leading,
    /// After a leading `\r`: blank if a newline follows.
    LeadingCr,
    Comment,
    Data,
}

/// Cuts a byte stream into logical lines (see [`Client::write_lp`]).
struct LineSplitter {
    /// Input line of the next byte.
    line: u64,
    bytes_read: u64,
}

impl LineSplitter {
    fn new() -> Self {
        Self { line: 1, bytes_read: 0 }
    }

    /// Appends the next logical line, with its newline if it has one, to
    /// `out`; `None` at the end of the input. A line longer than `max_len`
    /// is an error.
    fn next_unit(
        &mut self,
        reader: &mut impl BufRead,
        out: &mut Vec<u8>,
        max_len: usize,
    ) -> Result<Option<UnitInfo>, ClientError> {
        let first_line = self.line;
        let start = out.len();
        let mut state = State::Leading;
        let (mut escaped, mut quoted, mut in_field_set) = (false, false, false);
        let (mut equals, mut commas) = (0_usize, 0_usize);
        loop {
            let chunk = match reader.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(ClientError::Read { line: self.line, source }),
            };
            if chunk.is_empty() {
                // The last line may lack its newline.
                return Ok((out.len() > start).then_some(UnitInfo { first_line, is_data: state == State::Data }));
            }
            let mut taken = chunk.len();
            let mut done = false;
            for (i, &b) in chunk.iter().enumerate() {
                if b == b'\n' {
                    self.line += 1;
                }
                let ends = match state {
                    State::Leading => match b {
                        b' ' | b'\t' => false,
                        b'\r' => {
                            state = State::LeadingCr;
                            false
                        }
                        b'\n' => true,
                        b'#' => {
                            state = State::Comment;
                            false
                        }
                        _ => {
                            state = State::Data;
                            data_byte(b, &mut escaped, &mut quoted, &mut in_field_set, &mut equals, &mut commas)
                        }
                    },
                    State::LeadingCr => {
                        if b == b'\n' {
                            state = State::Leading;
                            true
                        } else {
                            state = State::Data;
                            data_byte(b, &mut escaped, &mut quoted, &mut in_field_set, &mut equals, &mut commas)
                        }
                    }
                    State::Comment => b == b'\n',
                    State::Data => data_byte(b, &mut escaped, &mut quoted, &mut in_field_set, &mut equals, &mut commas),
                };
                if ends {
                    taken = i + 1;
                    done = true;
                    break;
                }
            }
            out.extend_from_slice(&chunk[..taken]);
            reader.consume(taken);
            self.bytes_read += taken as u64;
            if out.len() - start > max_len {
                return Err(ClientError::LineTooLong { line: first_line, limit: max_len });
            }
            if done {
                return Ok(Some(UnitInfo { first_line, is_data: state == State::Data }));
            }
        }
    }
}

/// One byte of a data line; true when it is the newline that ends the line.
fn data_byte(
    b: u8,
    escaped: &mut bool,
    quoted: &mut bool,
    in_field_set: &mut bool,
    equals: &mut usize,
    commas: &mut usize,
) -> bool {
    if *escaped {
        *escaped = false;
        return false;
    }
    match b {
        b'\\' => *escaped = true,
        b' ' => *in_field_set = true,
        b'=' if *in_field_set && !*quoted => *equals += 1,
        b',' if *in_field_set && !*quoted => *commas += 1,
        b'"' if *in_field_set && *equals > *commas => *quoted = !*quoted,
        b'\n' => return !*quoted,
        _ => {}
    }
    false
}

/// Opens `quipu write`'s input: a file, or standard input for `-`. Returns
/// the reader and the input's size when known (for [`progress_bar`]).
pub fn open_input(path: &Path) -> Result<(Box<dyn BufRead>, Option<u64>), ClientError> {
    if path == Path::new("-") {
        return Ok((Box::new(io::stdin().lock()), None));
    }
    let io_error = |source| ClientError::Io { path: path.to_owned(), source };
    let file = File::open(path).map_err(io_error)?;
    let size = file.metadata().map_err(io_error)?.len();
    Ok((Box::new(BufReader::with_capacity(256 << 10, file)), Some(size)))
}

/// A progress bar counting bytes, with rate and ETA (a spinner when the
/// total is unknown). It draws on stderr and stays hidden when stderr is not
/// a terminal.
pub fn progress_bar(total: Option<u64>) -> indicatif::ProgressBar {
    let (bar, template) = match total {
        Some(n) => (
            indicatif::ProgressBar::new(n),
            "{elapsed_precise} [{wide_bar}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
        ),
        None => (indicatif::ProgressBar::new_spinner(), "{spinner} {elapsed_precise} {bytes} {binary_bytes_per_sec}"),
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (text, first line, is data) of every unit of `input`.
    fn units(input: &str, chunk: usize) -> Vec<(String, u64, bool)> {
        let mut reader = BufReader::with_capacity(chunk, input.as_bytes());
        let mut splitter = LineSplitter::new();
        let mut out = Vec::new();
        let mut all = Vec::new();
        while let Some(u) = splitter.next_unit(&mut reader, &mut out, 1 << 20).unwrap() {
            all.push((String::from_utf8(std::mem::take(&mut out)).unwrap(), u.first_line, u.is_data));
        }
        assert_eq!(splitter.bytes_read, input.len() as u64);
        all
    }

    #[test]
    fn splits_like_scan_line() {
        let input = "m f=1 1\n\n  # c \"x\n m,t=a\\ b s=\"a\nb,c=1\" 2\nm f=\"x\\\"\n\" 3\nm\\\nx f=1\r\n\r\nm,t=\"q f=1\nlast f=1";
        for chunk in [1, 2, 3, 7, 1024] {
            let got = units(input, chunk);
            let want = vec![
                ("m f=1 1\n".to_owned(), 1, true),
                ("\n".to_owned(), 2, false),
                ("  # c \"x\n".to_owned(), 3, false),
                (" m,t=a\\ b s=\"a\nb,c=1\" 2\n".to_owned(), 4, true),
                ("m f=\"x\\\"\n\" 3\n".to_owned(), 6, true),
                ("m\\\nx f=1\r\n".to_owned(), 8, true),
                ("\r\n".to_owned(), 10, false),
                // A quote in the tag set does not open a string.
                ("m,t=\"q f=1\n".to_owned(), 11, true),
                ("last f=1".to_owned(), 12, true),
            ];
            assert_eq!(got, want, "chunk {chunk}");
        }
    }

    #[test]
    fn unclosed_quote_runs_to_the_end_and_is_bounded() {
        let input = "a f=1\nb s=\"open\nc f=1\nd f=1\n";
        assert_eq!(units(input, 4)[1], ("b s=\"open\nc f=1\nd f=1\n".to_owned(), 2, true));
        let mut splitter = LineSplitter::new();
        let mut reader = input.as_bytes();
        let mut out = Vec::new();
        splitter.next_unit(&mut reader, &mut out, 8).unwrap();
        let err = splitter.next_unit(&mut reader, &mut out, 8).unwrap_err();
        assert!(matches!(err, ClientError::LineTooLong { line: 2, limit: 8 }), "{err:?}");
    }

    #[test]
    fn url_validation() {
        assert!(Client::new("http://127.0.0.1:8181", None).is_ok());
        let c = Client::new("http://h:1/prefix", Some("t")).unwrap();
        assert_eq!(c.base_url().join("api/v3/write_lp").unwrap().as_str(), "http://h:1/prefix/api/v3/write_lp");
        for bad in ["127.0.0.1:8181", "https://h", "ftp://h", "http://h/?q=1", "not a url"] {
            assert!(matches!(Client::new(bad, None), Err(ClientError::InvalidUrl { .. })), "{bad}");
        }
        assert!(matches!(Client::new("http://h", Some("a\nb")), Err(ClientError::InvalidToken)));
    }
}
