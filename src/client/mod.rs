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
}

/// A compacted window as `GET /api/v3/export/windows` lists it.
pub use crate::export::WindowInfo as ExportWindow;

mod admin;
mod export;
mod lines;
mod write;

#[cfg(feature = "remote")]
pub use admin::TransferTarget;
pub use admin::{BackupStarted, RestoreStarted};
pub use export::{ExportedFile, unpack_export};
use lines::*;
use write::*;
pub use write::{RejectedLine, WriteBatchOptions, WriteReport};

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
