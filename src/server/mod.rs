//! `quipu serve`: the HTTP face of an [`Engine`](crate::Engine), speaking the
//! InfluxDB 3 Enterprise HTTP API (reference:
//! `influxdb3-enterprise-openapi.yaml`, v3.10.0). This module owns the
//! listener, routing, authentication with the admin token, request body
//! handling (size limit, gzip) and the mapping of engine outcomes to HTTP
//! statuses and JSON error bodies. The engine stays synchronous; handlers call
//! it through `spawn_blocking`.
//!
//! Endpoints: `POST /api/v3/write_lp`, `POST /api/v2/write`, `POST /write`
//! ([`write`]), `GET /api/v3/export/{databases,tables,windows,window_data}`
//! ([`export`]), `GET /health`, `GET /api/v1/health`, `GET|POST /ping`,
//! `GET /metrics` ([`metrics`]), `/api/v3/enterprise/backup[/{name}[/verify]]`
//! ([`backup`]), `/api/v3/enterprise/restore[/{id}]` ([`restore`]),
//! `/api/v3/enterprise/backup/{name}/{push,pull}` and
//! `/api/v3/enterprise/transfer[/{id}]` ([`transfer`], quipu extensions);
//! the ArangoDB hot-backup API, `/_admin/backup/{action}` and
//! `/_db/_system/_admin/backup/{action}` ([`arango`]); and of InfluxDB 2's
//! backup and restore API so far `GET /api/v2/backup/kv` and `POST
//! /api/v2/restore/bucket[s]/{id}`, 501 ([`influxdb2`]).
//!
//! Every request needs the admin token: the reference declares one global
//! `security` requirement and overrides it nowhere, and notes for `/health`,
//! `/api/v1/health` and `/ping` that they require authentication "by default
//! in InfluxDB 3 Enterprise". The token is checked before routing, so a
//! request without it gets 401 also on an unknown path (not 404) or with a
//! wrong method (not 405): which endpoints exist is not told to a client
//! that cannot use them. See [`auth`] for the accepted schemes.
//!
//! Every error answer is the reference's `ErrorMessage` schema,
//! `{"error": string, "data": object|null}`, also for unknown paths (404),
//! wrong methods (405), bodies over the limit (413) and the rejections of
//! axum's extractors (rewritten by [`json_errors`]).
//!
//! Connections ([`ConnectionLimits`]): at most `max_connections` at once
//! (past it the listener stops accepting and new connections wait in the
//! kernel's backlog), by default the open-file limit less a reserve kept for
//! the engine's own files ([`ENGINE_FD_RESERVE`]), so that a crowd of clients
//! cannot make a WAL rotation or a flush fail with EMFILE. A connection has
//! `header_read_timeout` to send each request's headers, counted from when
//! it connects or from its previous answer, so idle connections are closed
//! too. A connection closed while its client is still sending a body that
//! will not be read (after an early 401 or 413) is first half-closed and
//! drained, up to four times the body limit and for at most the header
//! timeout, so that the client receives its answer instead of a reset. On shutdown, requests in flight get
//! `shutdown_timeout` to finish; then their connections are dropped.

pub mod arango;
pub mod auth;
mod backup;
mod error;
mod export;
pub mod influxdb2;
pub mod metrics;
mod query;
mod restore;
mod transfer;
mod write;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use http_body_util::BodyExt;

pub use auth::{ADMIN_TOKEN_HASH_FILE, AdminToken, SERVER_DIR, resolve_admin_token};
pub use error::ApiError;
pub use write::{WriteEndpoint, write_body};

/// Default limit of a request body, before and after gzip decompression.
pub const DEFAULT_MAX_BODY_BYTES: usize = 10 << 20;

/// The version reported by `/ping`: quipu's package version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Default of [`ConnectionLimits::header_read_timeout`].
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Default of [`ConnectionLimits::shutdown_timeout`].
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// File descriptors the default connection limit leaves to the engine (or
/// half the open-file limit, if that is smaller): the WAL, the segment and
/// catalog files a flush or compaction writes, backup and export files, and
/// the directories fsynced on the way. Mapped segments hold no descriptor.
pub const ENGINE_FD_RESERVE: usize = 128;

/// The default connection limit never exceeds this, however high the
/// open-file limit.
pub const MAX_DEFAULT_CONNECTIONS: usize = 4096;

/// The git revision reported by `/ping`, if the build sets
/// `QUIPU_GIT_REVISION`.
pub const REVISION: &str = match option_env!("QUIPU_GIT_REVISION") {
    Some(r) => r,
    None => "unknown",
};

/// The `x-influxdb-build` value. The reference allows `Core` or
/// `Enterprise`; quipu implements the Enterprise API surface, so it says so.
pub const BUILD: &str = "Enterprise";

/// How `serve` listens.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub bind: SocketAddr,
    /// Largest request body accepted, checked on the bytes received and again
    /// on the decompressed body; above it the answer is 413.
    /// Default [`DEFAULT_MAX_BODY_BYTES`] (10 MiB).
    pub max_body_bytes: usize,
    pub admin_token: AdminToken,
    pub limits: ConnectionLimits,
}

impl ServerConfig {
    /// A config with the default body and connection limits.
    pub fn new(bind: SocketAddr, admin_token: AdminToken) -> Self {
        ServerConfig { bind, max_body_bytes: DEFAULT_MAX_BODY_BYTES, admin_token, limits: ConnectionLimits::default() }
    }
}

/// What the listener allows its clients (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Most connections open at once; past it no more are accepted until
    /// one closes. Default [`default_max_connections`].
    pub max_connections: usize,
    /// How long a connection may take to send a request's headers, counted
    /// from when it is accepted or from the end of its previous answer; a
    /// connection that sends nothing for this long is closed. Default
    /// [`DEFAULT_HEADER_READ_TIMEOUT`].
    pub header_read_timeout: Duration,
    /// On shutdown, how long requests in flight may still take; then their
    /// connections are dropped. Default [`DEFAULT_SHUTDOWN_TIMEOUT`].
    pub shutdown_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: default_max_connections(),
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
        }
    }
}

/// The process's soft open-file limit (RLIMIT_NOFILE), if it has one.
pub fn open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit only writes the struct it is given.
    #[allow(unsafe_code)]
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 || limit.rlim_cur == libc::RLIM_INFINITY {
        return None;
    }
    Some(limit.rlim_cur)
}

/// Raises the soft open-file limit to the hard one (as Go programs do at
/// start) and returns the soft limit then in force. A server's descriptors
/// are its connections plus the engine's files; the soft limit is often far
/// below what the system allows.
pub fn raise_open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read or write the struct given.
    #[allow(unsafe_code)]
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0
            && limit.rlim_cur != limit.rlim_max
            && limit.rlim_max != libc::RLIM_INFINITY
        {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
                tracing::debug!("cannot raise the open-file limit to its hard limit");
            }
        }
    }
    open_file_limit()
}

/// The descriptors kept for the engine under an open-file limit of `nofile`:
/// [`ENGINE_FD_RESERVE`], or half the limit if that is smaller.
pub fn engine_fd_reserve(nofile: u64) -> usize {
    ENGINE_FD_RESERVE.min(usize::try_from(nofile / 2).unwrap_or(usize::MAX))
}

/// The most connections that leave [`engine_fd_reserve`] descriptors to the
/// engine under the current open-file limit (None: no limit).
pub fn max_connections_allowed() -> Option<usize> {
    let nofile = open_file_limit()?;
    let nofile_usize = usize::try_from(nofile).unwrap_or(usize::MAX);
    Some(nofile_usize.saturating_sub(engine_fd_reserve(nofile)).max(1))
}

/// The open-file limit less the engine's reserve, at most
/// [`MAX_DEFAULT_CONNECTIONS`].
pub fn default_max_connections() -> usize {
    max_connections_allowed().map_or(MAX_DEFAULT_CONNECTIONS, |n| n.min(MAX_DEFAULT_CONNECTIONS))
}

/// Why the server could not start or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
    #[error("admin token from QUIPU_ADMIN_TOKEN is empty")]
    EmptyEnvToken,
    #[error("cannot read admin token file {path}: {source}")]
    ReadTokenFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("admin token file {path} is empty")]
    EmptyTokenFile { path: PathBuf },
    #[error("corrupt admin token hash file {path}: {why}; delete it to generate a new token")]
    CorruptTokenHash { path: PathBuf, why: String },
    #[error("cannot store admin token hash in {path}: {source}")]
    StoreTokenHash {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read admin token hash file {path}: {source}")]
    ReadTokenHash {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no OS randomness to generate an admin token: {0}")]
    Random(String),
}

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

#[derive(Clone)]
struct Shared {
    engine: crate::Engine,
    backups: Option<crate::backup::BackupService>,
    transfers: Option<crate::remote::TransferService>,
    /// Where exports keep their conversions.
    export_cache: Arc<crate::export::cache::ExportCache>,
    admin_token: AdminToken,
    max_body_bytes: usize,
    process_id: String,
    /// The telemetry of the query started last.
    last_query: Arc<std::sync::Mutex<Option<Arc<crate::sql::QueryTelemetry>>>>,
    /// The memory, spill and time limits of queries.
    query_runtime: Option<Arc<crate::sql::QueryRuntime>>,
}

impl AppState {
    pub fn new(engine: crate::Engine, admin_token: AdminToken, max_body_bytes: usize) -> Self {
        // The engine's id source makes the process id random in production
        // and deterministic under an injected `IdSource`.
        let process_id = uuid_text(engine.next_id());
        AppState {
            inner: Arc::new(Shared {
                engine,
                backups: None,
                transfers: None,
                export_cache: Arc::new(crate::export::cache::ExportCache::disabled()),
                admin_token,
                max_body_bytes,
                process_id,
                last_query: Arc::default(),
                query_runtime: default_query_runtime(),
            }),
        }
    }

    /// Runs queries within `runtime`'s limits instead of the defaults
    /// ([`crate::sql::QueryLimits::default`]).
    #[must_use]
    pub fn with_query_runtime(mut self, runtime: Arc<crate::sql::QueryRuntime>) -> Self {
        Arc::make_mut(&mut self.inner).query_runtime = Some(runtime);
        self
    }

    /// The limits queries run within.
    pub fn query_runtime(&self) -> Option<&Arc<crate::sql::QueryRuntime>> {
        self.inner.query_runtime.as_ref()
    }

    pub fn engine(&self) -> &crate::Engine {
        &self.inner.engine
    }

    /// Exports keep their conversions in `cache` (give its
    /// [`crate::export::cache::ExportCache::hook`] to the engine's builder);
    /// without it every export converts.
    #[must_use]
    pub fn with_export_cache(mut self, cache: Arc<crate::export::cache::ExportCache>) -> Self {
        Arc::make_mut(&mut self.inner).export_cache = cache;
        self
    }

    /// The export cache exports use.
    pub fn export_cache(&self) -> &Arc<crate::export::cache::ExportCache> {
        &self.inner.export_cache
    }

    /// Serves the backup endpoints from `backups`; without it they answer 503.
    #[must_use]
    pub fn with_backups(mut self, backups: crate::backup::BackupService) -> Self {
        Arc::make_mut(&mut self.inner).backups = Some(backups);
        self
    }

    /// The backup service, when the server has a repository.
    pub fn backups(&self) -> Option<&crate::backup::BackupService> {
        self.inner.backups.as_ref()
    }

    /// Serves pushes and pulls (and the ArangoDB upload and download) from
    /// `transfers`; without it they answer 503.
    #[must_use]
    pub fn with_transfers(mut self, transfers: crate::remote::TransferService) -> Self {
        Arc::make_mut(&mut self.inner).transfers = Some(transfers);
        self
    }

    pub fn transfers(&self) -> Option<&crate::remote::TransferService> {
        self.inner.transfers.as_ref()
    }

    /// The telemetry of the query started last, if any.
    pub fn last_query(&self) -> Option<Arc<crate::sql::QueryTelemetry>> {
        self.inner.last_query.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_last_query(&self, telemetry: Arc<crate::sql::QueryTelemetry>) {
        *self.inner.last_query.lock().unwrap_or_else(|p| p.into_inner()) = Some(telemetry);
    }

    /// The id `/ping` reports for this server process.
    pub fn process_id(&self) -> &str {
        &self.inner.process_id
    }
}

/// The default limits; their runtime needs no folder, so it only fails if
/// DataFusion cannot set up at all, and then queries run unbounded.
fn default_query_runtime() -> Option<Arc<crate::sql::QueryRuntime>> {
    crate::sql::QueryRuntime::new(crate::sql::QueryLimits::default())
        .inspect_err(|e| tracing::error!(error = %e, "queries run without memory and time limits"))
        .ok()
}

/// A u128 as RFC 9562 text with the version-4 and variant bits set.
fn uuid_text(id: u128) -> String {
    let id = (id & !(0xF << 76) & !(0x3 << 62)) | (0x4 << 76) | (0x2 << 62);
    let h = format!("{id:032x}");
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// The API's routes with authentication, body handling and request logging.
pub fn router(state: AppState) -> Router {
    let max_body_bytes = state.inner.max_body_bytes;
    Router::new()
        .route("/api/v3/write_lp", post(write::write_v3))
        .route("/api/v2/write", post(write::write_v2))
        .route("/write", post(write::write_v1))
        .route("/health", get(health))
        .route("/api/v1/health", get(health))
        .route("/metrics", get(metrics::metrics))
        .route("/api/v3/query_sql", get(query::sql_get).post(query::sql_post))
        .route("/api/v3/query_sql_telemetry", get(query::telemetry))
        .route("/query", get(query::v1_get).post(query::v1_post))
        .route("/api/v3/export/databases", get(export::databases))
        .route("/api/v3/export/tables", get(export::tables))
        .route("/api/v3/export/windows", get(export::windows))
        .route("/api/v3/export/window_data", get(export::window_data))
        .route("/api/v3/enterprise/backup", get(backup::list).post(backup::create).delete(backup::cancel))
        .route("/api/v3/enterprise/backup/{name}", get(backup::get).delete(backup::delete))
        .route("/api/v3/enterprise/backup/{name}/verify", post(backup::verify))
        .route("/api/v3/enterprise/backup/{name}/push", post(transfer::push))
        .route("/api/v3/enterprise/backup/{name}/pull", post(transfer::pull))
        .route("/api/v3/enterprise/transfer", get(transfer::list))
        .route("/api/v3/enterprise/transfer/{id}", get(transfer::get).delete(transfer::cancel))
        .route("/api/v3/enterprise/restore", get(restore::list).post(restore::start))
        .route("/api/v2/backup/kv", get(influxdb2::backup_kv))
        .route("/api/v2/restore/bucket/{id}", post(influxdb2::restore_bucket_legacy))
        .route("/api/v2/restore/buckets/{id}", post(influxdb2::restore_bucket_legacy))
        .route("/_admin/backup/{action}", any(arango::admin))
        .route("/_db/{db}/_admin/backup/{action}", any(arango::in_database))
        .route("/api/v3/enterprise/restore/{id}", get(restore::get).delete(restore::cancel))
        // The reference: "HEAD requests return `404 Not Found`".
        .route("/ping", get(ping).post(ping).head(ping_head))
        .route_layer(middleware::from_fn_with_state(state.clone(), write::check_body_headers))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // After the fallbacks, so that it guards them too (see the module doc).
        .layer(middleware::from_fn_with_state(state.clone(), auth::require_token))
        // The `Bytes` extractor's own limit (2 MiB by default) is ours.
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// Rewrites an error answer that is not JSON (axum's extractors answer
/// their rejections, such as a body over the limit or a malformed path, in
/// plain text) into the `ErrorMessage` schema, its text as the `error`.
async fn json_errors(req: Request, next: Next) -> Response {
    /// An extractor's rejection text is a line or two.
    const MAX_TEXT: usize = 4096;
    let response = next.run(req).await;
    let status = response.status();
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = match http_body_util::Limited::new(body, MAX_TEXT).collect().await {
        Ok(collected) => String::from_utf8_lossy(&collected.to_bytes()).trim().to_owned(),
        Err(_) => String::new(),
    };
    let text = if text.is_empty() { status.canonical_reason().unwrap_or("error").to_owned() } else { text };
    let mut rewritten = ApiError::new(status, text).into_response();
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rewritten.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rewritten
}

/// Binds `config.bind` and serves until `shutdown` resolves; requests in
/// flight then finish before this returns. The caller flushes and closes
/// the engine afterwards.
pub async fn serve(
    engine: crate::Engine,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|source| ServerError::Bind { addr: config.bind, source })?;
    let state = AppState::new(engine, config.admin_token, config.max_body_bytes);
    serve_listener_with(listener, state, config.limits, shutdown).await
}

/// [`serve`] on a listener bound by the caller (tests bind port 0 and read
/// the port back), with the default [`ConnectionLimits`].
pub async fn serve_listener(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    serve_listener_with(listener, state, ConnectionLimits::default(), shutdown).await
}

/// [`serve_listener`] with the given connection limits.
pub async fn serve_listener_with(
    listener: tokio::net::TcpListener,
    state: AppState,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, max_connections = limits.max_connections, "quipu serve listening");
    }
    let linger =
        Linger { max_bytes: state.inner.max_body_bytes.saturating_mul(4), timeout: limits.header_read_timeout };
    let app = router(state);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        // The permit is taken before accepting: at the limit, new
        // connections wait in the kernel's backlog and cost us no descriptor.
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // EMFILE and the like: give closing connections a moment.
                    tracing::error!(error = %e, "cannot accept a connection");
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            },
        };
        connections.spawn(serve_connection(http.clone(), stream, app.clone(), stop_rx.clone(), permit, linger));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained =
        tokio::time::timeout(limits.shutdown_timeout, async { while connections.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            timeout = ?limits.shutdown_timeout,
            "shutdown timeout: dropping the connections still open"
        );
        connections.shutdown().await;
    }
    Ok(())
}

/// Accept errors about one connection only (the peer gave up before we
/// took it); the listener carries on at once.
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// How much of an unread request body is drained before a connection closes.
#[derive(Debug, Clone, Copy)]
struct Linger {
    max_bytes: usize,
    timeout: Duration,
}

/// Serves one connection until it ends, or until shutdown is signalled and
/// its request in flight is answered. Holds its permit throughout.
async fn serve_connection(
    http: hyper::server::conn::http1::Builder,
    stream: tokio::net::TcpStream,
    app: Router,
    mut stop: tokio::sync::watch::Receiver<bool>,
    _permit: tokio::sync::OwnedSemaphorePermit,
    linger: Linger,
) {
    let app = hyper_util::service::TowerToHyperService::new(app);
    let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        // Boxed: the connection is Unpin (needed to take its socket back at
        // the end) only with an Unpin future.
        Box::pin(hyper::service::Service::call(&app, req))
    });
    let mut conn = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
    let mut stop = Box::pin(async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
    });
    let mut stopping = false;
    let served = std::future::poll_fn(|cx| {
        if !stopping && stop.as_mut().poll(cx).is_ready() {
            stopping = true;
            Pin::new(&mut conn).graceful_shutdown();
        }
        conn.poll_without_shutdown(cx)
    })
    .await;
    match served {
        Ok(()) => drain_and_close(conn.into_parts().io.into_inner(), linger).await,
        Err(e) => tracing::debug!(error = %e, "connection ended"),
    }
}

/// Closes a connection whose answer is sent. When the client is still
/// sending (a body the server did not read, as after an early 401 or 413),
/// closing at once would make the kernel answer its data with a reset, and
/// the client would lose the answer waiting in its buffers; so the socket is
/// half-closed and read to its end first, within `linger`'s bounds.
async fn drain_and_close(mut stream: tokio::net::TcpStream, linger: Linger) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 << 10];
    // A client still sending may be between two writes (a loaded machine
    // made that gap tens of ms): wait a moment for its next bytes before
    // deciding it has nothing more to send.
    let wait = linger.timeout.min(Duration::from_millis(250));
    let _ = tokio::time::timeout(wait, stream.readable()).await;
    match stream.try_read(&mut buf) {
        Ok(n) if n > 0 => {}
        _ => return,
    }
    let _ = stream.shutdown().await;
    let mut left = linger.max_bytes;
    let _ = tokio::time::timeout(linger.timeout, async {
        while left > 0 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}

/// The API served from a thread with its own tokio runtime, for a program
/// that is not async itself (an embedding application, tests, benchmarks).
/// Dropping it shuts the server down gracefully and waits for it.
///
/// ```no_run
/// use quipu::server::{AdminToken, AppState, BackgroundServer};
///
/// let engine = quipu::Engine::open("./quipu-data")?;
/// let state = AppState::new(engine, AdminToken::from_token("apiv3_secret"), quipu::server::DEFAULT_MAX_BODY_BYTES);
/// let server = BackgroundServer::start(state, "127.0.0.1:0".parse()?)?;
/// println!("serving on {}", server.addr());
/// server.stop()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct BackgroundServer {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), ServerError>>>,
}

impl BackgroundServer {
    /// Binds `bind` (port 0 picks a free port; see [`BackgroundServer::addr`])
    /// and serves `state` until stopped.
    pub fn start(state: AppState, bind: SocketAddr) -> Result<BackgroundServer, ServerError> {
        Self::start_with(state, bind, ConnectionLimits::default())
    }

    /// [`BackgroundServer::start`] with the given connection limits.
    pub fn start_with(
        state: AppState,
        bind: SocketAddr,
        limits: ConnectionLimits,
    ) -> Result<BackgroundServer, ServerError> {
        let listener = std::net::TcpListener::bind(bind).map_err(|source| ServerError::Bind { addr: bind, source })?;
        listener.set_nonblocking(true).map_err(ServerError::Serve)?;
        let addr = listener.local_addr().map_err(ServerError::Serve)?;
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(ServerError::Serve)?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("quipu-http".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).map_err(ServerError::Serve)?;
                    serve_listener_with(listener, state, limits, async move {
                        let _ = rx.await;
                    })
                    .await
                })
            })
            .map_err(ServerError::Serve)?;
        Ok(BackgroundServer { addr, shutdown: Some(tx), thread: Some(thread) })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Asks for a graceful shutdown without waiting for it.
    pub fn signal_stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Shuts down gracefully (requests in flight finish) and waits.
    pub fn stop(mut self) -> Result<(), ServerError> {
        self.join()
    }

    fn join(&mut self) -> Result<(), ServerError> {
        self.signal_stop();
        match self.thread.take() {
            Some(t) => {
                t.join().unwrap_or_else(|_| Err(ServerError::Serve(std::io::Error::other("server thread panicked"))))
            }
            None => Ok(()),
        }
    }
}

impl Drop for BackgroundServer {
    fn drop(&mut self) {
        if let Err(e) = self.join() {
            tracing::error!(error = %e, "background server failed");
        }
    }
}

/// Logs method, path (never the query: `p=` carries a token), status and
/// duration. Headers are not logged at all.
async fn log_request(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let response = next.run(req).await;
    tracing::debug!(
        %method,
        path,
        status = response.status().as_u16(),
        duration_us = start.elapsed().as_micros() as u64,
        "http request"
    );
    response
}

/// `GET /health`, `GET /api/v1/health`: `OK` as text/plain while serving.
async fn health() -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"))], "OK").into_response()
}

#[derive(serde::Serialize)]
struct PingBody<'a> {
    version: &'a str,
    revision: &'a str,
    process_id: &'a str,
}

/// `GET|POST /ping`: version in the `x-influxdb-version` and
/// `x-influxdb-build` headers and in the JSON body.
async fn ping(State(state): State<AppState>) -> Response {
    let body = PingBody { version: VERSION, revision: REVISION, process_id: state.process_id() };
    (
        [
            ("x-influxdb-version", HeaderValue::from_static(VERSION)),
            ("x-influxdb-build", HeaderValue::from_static(BUILD)),
        ],
        axum::Json(body),
    )
        .into_response()
}

async fn ping_head() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "HEAD is not supported on /ping; use GET")
}

async fn not_found(req: Request) -> Response {
    let message = format!("no endpoint at {}", req.uri().path());
    if influxdb2::is_v2_backup_path(req.uri().path()) {
        return influxdb2::V2Error::not_found(message).into_response();
    }
    ApiError::new(StatusCode::NOT_FOUND, message).into_response()
}

async fn method_not_allowed(req: Request) -> Response {
    let message = format!("method {} not allowed on {}", req.method(), req.uri().path());
    if influxdb2::is_v2_backup_path(req.uri().path()) {
        return influxdb2::V2Error::method_not_allowed(message).into_response();
    }
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, message).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_text_is_version_4() {
        let text = uuid_text(u128::MAX);
        assert_eq!(text.len(), 36);
        assert_eq!(&text[14..15], "4");
        assert!(matches!(&text[19..20], "8" | "9" | "a" | "b"));
        assert_eq!(uuid_text(0), "00000000-0000-4000-8000-000000000000");
    }
}
