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
//! ([`backup`]), `/api/v3/enterprise/restore[/{id}]` ([`restore`]).
//!
//! Every endpoint requires the admin token: the reference declares one global
//! `security` requirement and overrides it nowhere, and notes for `/health`,
//! `/api/v1/health` and `/ping` that they require authentication "by default
//! in InfluxDB 3 Enterprise". See [`auth`] for the accepted schemes.
//!
//! Every error answer is the reference's `ErrorMessage` schema,
//! `{"error": string, "data": object|null}`, also for unknown paths (404),
//! wrong methods (405) and bodies over the limit (413).

pub mod auth;
mod backup;
mod error;
mod export;
pub mod metrics;
mod query;
mod restore;
mod write;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

pub use auth::{ADMIN_TOKEN_HASH_FILE, AdminToken, SERVER_DIR, resolve_admin_token};
pub use error::ApiError;

/// Default limit of a request body, before and after gzip decompression.
pub const DEFAULT_MAX_BODY_BYTES: usize = 10 << 20;

/// The version reported by `/ping`: quipu's package version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

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
}

impl ServerConfig {
    /// A config with the default body limit.
    pub fn new(bind: SocketAddr, admin_token: AdminToken) -> Self {
        ServerConfig { bind, max_body_bytes: DEFAULT_MAX_BODY_BYTES, admin_token }
    }
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
        .route("/api/v3/enterprise/restore", get(restore::list).post(restore::start))
        .route("/api/v3/enterprise/restore/{id}", get(restore::get).delete(restore::cancel))
        // The reference: "HEAD requests return `404 Not Found`".
        .route("/ping", get(ping).post(ping).head(ping_head))
        .route_layer(middleware::from_fn_with_state(state.clone(), write::check_body_headers))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::require_token))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(log_request))
        .with_state(state)
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
    serve_listener(listener, state, shutdown).await
}

/// [`serve`] on a listener bound by the caller (tests bind port 0 and read
/// the port back).
pub async fn serve_listener(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "quipu serve listening");
    }
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await.map_err(ServerError::Serve)
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
                    serve_listener(listener, state, async move {
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

async fn not_found(req: Request) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("no endpoint at {}", req.uri().path()))
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method {} not allowed on {}", req.method(), req.uri().path()),
    )
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
