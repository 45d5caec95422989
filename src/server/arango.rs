//! The ArangoDB hot-backup API (reference: `arangodb-hot-backup-api.md`) over
//! the same backup service as the InfluxDB face: `POST
//! /_admin/backup/{create,list,delete,restore,upload,download}`, also under
//! `/_db/_system/` (the prefix python-arango always sends; any other
//! database is 404). Answers wear ArangoDB's envelope,
//! `{"error": false, "code": N, "result": {...}}`, errors
//! `{"error": true, "code": N, "errorNum": N, "errorMessage": "..."}` with
//! ArangoDB's error numbers; an empty body counts as `{}`.
//!
//! | action | quipu |
//! |---|---|
//! | `create` `{label?, timeout?, allowInconsistent?, force?}` | a full backup named `YYYY-MM-DDTHH.MM.SSZ_<label or UUID>`, answered 201 once committed. The consistent point never waits for a lock (a flush and a pinned version), so `timeout` is never reached (no 408) and `allowInconsistent`/`force` change nothing: every backup is consistent |
//! | `list` `{id?}` | the completed backups (404 for an unknown `id`); 405 for a method other than POST |
//! | `delete` `{id}` | deletes it (404 unknown; 409 while it is being taken) |
//! | `restore` `{id}` | first a backup of the current data (its id is `previous`, so the restore can be undone), then the in-place restore; answered once swapped in |
//! | `upload` `{id, remoteRepository, config}` / `{uploadId[, abort]}` | a push job (202 `uploadId`), its progress record, or its cancel (200; 404 unknown id, 403 ended) |
//! | `download` `{id, remoteRepository, config}` / `{downloadId[, abort]}` | a pull job, the same way |
//!
//! `remoteRepository` is `<name>:<path>`, `<name>` a key of `config`, whose
//! value is rclone's: `{"type": "s3", "endpoint", "access_key_id",
//! "secret_access_key", "session_token", "region", "provider"}` (path
//! `bucket/prefix`) or `{"type": "local"}` (an absolute path). Credentials
//! go to the transfer job only: never to a record or a log line.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::AppState;
use crate::backup::{BackupError, BackupRequest, BackupService, BackupStatus, RestoreError, RestoreVerify};
use crate::remote::{RemoteError, RemoteOptions, TransferInfo, TransferKind, TransferRequest, TransferService};

/// ArangoDB's error numbers used here (its `errors.dat`).
pub mod error_num {
    pub const BAD_PARAMETER: u32 = 10;
    pub const FORBIDDEN: u32 = 11;
    pub const HTTP_BAD_PARAMETER: u32 = 400;
    pub const HTTP_UNAUTHORIZED: u32 = 401;
    pub const HTTP_NOT_FOUND: u32 = 404;
    pub const HTTP_METHOD_NOT_ALLOWED: u32 = 405;
    pub const HTTP_CORRUPTED_JSON: u32 = 600;
    pub const DATABASE_NOT_FOUND: u32 = 1228;
    pub const HOT_BACKUP_INTERNAL: u32 = 7001;
    pub const HOT_RESTORE_INTERNAL: u32 = 7002;
    pub const NO_SPACE_LEFT_ON_DEVICE: u32 = 7004;
    pub const FAILED_TO_UPLOAD_BACKUP: u32 = 7005;
    pub const FAILED_TO_DOWNLOAD_BACKUP: u32 = 7006;
    pub const NO_SUCH_HOT_BACKUP: u32 = 7007;
    pub const REMOTE_REPOSITORY_CONFIG_BAD: u32 = 7008;
    pub const HOT_BACKUP_CONFLICT: u32 = 7011;
}
use error_num as num;

/// The DB server name a single server reports in progress records.
const SINGLE_SERVER: &str = "SNGL";

/// An error in ArangoDB's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArangoError {
    pub status: StatusCode,
    pub num: u32,
    pub message: String,
}

impl ArangoError {
    pub fn new(status: StatusCode, num: u32, message: impl Into<String>) -> Self {
        ArangoError { status, num, message: message.into() }
    }

    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, num::BAD_PARAMETER, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, num::HTTP_UNAUTHORIZED, message)
    }

    /// `err` as this API answers it; `failed` is the number of the
    /// operation's own failure (7001 create, 7002 restore, ...).
    fn from_engine(err: crate::Error, failed: u32) -> Self {
        use StatusCode as S;
        let (status, n) = match &err {
            crate::Error::Backup(b) => match b {
                BackupError::NotFound { .. } => (S::NOT_FOUND, num::NO_SUCH_HOT_BACKUP),
                BackupError::InvalidName { .. } | BackupError::InvalidRequest(_) => {
                    (S::BAD_REQUEST, num::BAD_PARAMETER)
                }
                BackupError::Exists { .. } | BackupError::Running { .. } => (S::CONFLICT, num::HOT_BACKUP_CONFLICT),
                BackupError::ShuttingDown => (S::SERVICE_UNAVAILABLE, failed),
                _ => (S::INTERNAL_SERVER_ERROR, failed),
            },
            crate::Error::Restore(r) => match r {
                RestoreError::NotFound { .. } => (S::NOT_FOUND, num::NO_SUCH_HOT_BACKUP),
                RestoreError::Running { .. } => (S::CONFLICT, num::HOT_BACKUP_CONFLICT),
                _ => (S::INTERNAL_SERVER_ERROR, failed),
            },
            crate::Error::Remote(r) => match r {
                RemoteError::InvalidUrl { .. } => (S::BAD_REQUEST, num::REMOTE_REPOSITORY_CONFIG_BAD),
                RemoteError::TransferNotFound { .. } => (S::NOT_FOUND, num::HTTP_NOT_FOUND),
                RemoteError::TransferEnded { .. } => (S::FORBIDDEN, num::FORBIDDEN),
                RemoteError::TooManyTransfers { .. } => (S::CONFLICT, num::HOT_BACKUP_CONFLICT),
                _ => (S::BAD_REQUEST, failed),
            },
            crate::Error::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull => {
                (S::INTERNAL_SERVER_ERROR, num::NO_SPACE_LEFT_ON_DEVICE)
            }
            _ => (S::INTERNAL_SERVER_ERROR, failed),
        };
        if status.is_server_error() {
            tracing::error!(error = %err, "hot backup API");
        }
        ArangoError::new(status, n, err.to_string())
    }
}

impl IntoResponse for ArangoError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": true,
            "code": self.status.as_u16(),
            "errorNum": self.num,
            "errorMessage": self.message,
        });
        (self.status, Json(body)).into_response()
    }
}

fn answer(status: StatusCode, result: Value) -> Response {
    (status, Json(json!({ "error": false, "code": status.as_u16(), "result": result }))).into_response()
}

/// The id of a hot backup taken at `ns` with `label`:
/// `YYYY-MM-DDTHH.MM.SSZ_<label>` (ArangoDB's form, which is also a valid
/// quipu backup name for a valid label).
pub fn hot_backup_id(ns: i64, label: &str) -> String {
    let time = chrono::DateTime::from_timestamp_nanos(ns).format("%Y-%m-%dT%H.%M.%SZ");
    format!("{time}_{label}")
}

/// The time (whole seconds since the epoch) and label of a hot backup id;
/// `None` for a name not of that form.
pub fn parse_hot_backup_id(id: &str) -> Option<(i64, &str)> {
    let (time, label) = id.split_once('_')?;
    let parsed = chrono::NaiveDateTime::parse_from_str(time, "%Y-%m-%dT%H.%M.%SZ").ok()?;
    if label.is_empty() || time.len() != "YYYY-MM-DDTHH.MM.SSZ".len() {
        return None;
    }
    Some((parsed.and_utc().timestamp(), label))
}

/// An RFC 3339 time cut to whole seconds, as ArangoDB writes `datetime`.
fn seconds(rfc3339: &str) -> String {
    match rfc3339.split_once('.') {
        Some((whole, _)) => format!("{whole}Z"),
        None => rfc3339.to_string(),
    }
}

/// A request body: empty is `{}`; anything but a JSON object is refused.
pub fn parse_body(body: &[u8]) -> Result<Map<String, Value>, ArangoError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ArangoError::bad("the request body must be a JSON object")),
        Err(e) => {
            Err(ArangoError::new(StatusCode::BAD_REQUEST, num::HTTP_CORRUPTED_JSON, format!("malformed JSON: {e}")))
        }
    }
}

/// An optional string field (`null` counts as absent).
fn opt_str<'a>(body: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, ArangoError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ArangoError::bad(format!("`{key}` must be a string"))),
    }
}

fn opt_bool(body: &Map<String, Value>, key: &str) -> Result<Option<bool>, ArangoError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ArangoError::bad(format!("`{key}` must be a boolean"))),
    }
}

fn required_id(body: &Map<String, Value>) -> Result<&str, ArangoError> {
    opt_str(body, "id")?.filter(|s| !s.is_empty()).ok_or_else(|| ArangoError::bad("`id` is required"))
}

/// `remoteRepository` and `config` as a remote URL and its options. See
/// the module doc; the path is normalized as the reference says (slashes
/// collapsed, `.` and `..` applied, no trailing slash).
pub fn parse_remote_repository(
    repository: &str,
    config: &Map<String, Value>,
) -> Result<(String, RemoteOptions), ArangoError> {
    let bad = |why: String| ArangoError::new(StatusCode::BAD_REQUEST, num::REMOTE_REPOSITORY_CONFIG_BAD, why);
    let (name, path) = repository.split_once(':').ok_or_else(|| {
        bad(format!("remoteRepository {repository:?} has no ':' between the config name and the path"))
    })?;
    if path.contains(':') {
        return Err(bad(format!("remoteRepository {repository:?} has more than one ':'")));
    }
    if name.is_empty() || name.contains('/') {
        return Err(bad(format!("remoteRepository {repository:?}: the config name before ':' is empty or has a '/'")));
    }
    let section = config
        .get(name)
        .and_then(Value::as_object)
        .ok_or_else(|| bad(format!("remoteRepository names config {name:?}, which `config` does not hold")))?;
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(bad(format!("remoteRepository {repository:?} climbs above its root")));
                }
            }
            part => parts.push(part),
        }
    }
    let field = |key: &str| -> Result<Option<String>, ArangoError> {
        match section.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(bad(format!("config {name:?}: `{key}` must be a string"))),
        }
    };
    match field("type")?.as_deref() {
        Some("local") => {
            if !path.starts_with('/') {
                return Err(bad(format!("a local repository must be an absolute path, not {path:?}")));
            }
            Ok((format!("/{}", parts.join("/")), RemoteOptions::default()))
        }
        Some("s3") => {
            if parts.is_empty() {
                return Err(bad(format!("remoteRepository {repository:?} names no bucket")));
            }
            let options = RemoteOptions {
                endpoint: field("endpoint")?,
                region: field("region")?,
                access_key_id: field("access_key_id")?,
                secret_access_key: field("secret_access_key")?,
                session_token: field("session_token")?,
                ..RemoteOptions::default()
            };
            Ok((format!("s3://{}", parts.join("/")), options))
        }
        Some(other) => Err(bad(format!("config {name:?}: remote type {other:?} is not supported (s3 or local)"))),
        None => Err(bad(format!("config {name:?} has no `type`"))),
    }
}

/// `POST /_admin/backup/{action}` (and every other method, refused).
pub async fn admin(
    State(state): State<AppState>,
    method: Method,
    Path(action): Path<String>,
    body: Bytes,
) -> Result<Response, ArangoError> {
    dispatch(state, method, &action, &body).await
}

/// `/_db/{db}/_admin/backup/{action}`: only `_system` exists.
pub async fn in_database(
    State(state): State<AppState>,
    method: Method,
    Path((db, action)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ArangoError> {
    if db != "_system" {
        return Err(ArangoError::new(
            StatusCode::NOT_FOUND,
            num::DATABASE_NOT_FOUND,
            format!("database not found: {db}"),
        ));
    }
    dispatch(state, method, &action, &body).await
}

async fn dispatch(state: AppState, method: Method, action: &str, body: &[u8]) -> Result<Response, ArangoError> {
    const ACTIONS: [&str; 6] = ["create", "list", "delete", "restore", "upload", "download"];
    if !ACTIONS.contains(&action) {
        return Err(ArangoError::new(
            StatusCode::NOT_FOUND,
            num::HTTP_NOT_FOUND,
            format!("unknown path /_admin/backup/{action}"),
        ));
    }
    if method != Method::POST {
        // The reference: 405 for list, 400 for the others.
        let (status, n) = if action == "list" {
            (StatusCode::METHOD_NOT_ALLOWED, num::HTTP_METHOD_NOT_ALLOWED)
        } else {
            (StatusCode::BAD_REQUEST, num::HTTP_BAD_PARAMETER)
        };
        return Err(ArangoError::new(status, n, format!("/_admin/backup/{action} takes POST, not {method}")));
    }
    let body = parse_body(body)?;
    let backups = state.backups().cloned().ok_or_else(|| {
        ArangoError::new(
            StatusCode::NOT_IMPLEMENTED,
            num::HOT_BACKUP_INTERNAL,
            "hot backups are not available: the server runs without a backup repository (--no-backup)",
        )
    })?;
    match action {
        "create" => create(&state, backups, &body).await,
        "list" => list(backups, &body).await,
        "delete" => delete(backups, &body).await,
        "restore" => restore(&state, backups, &body).await,
        "upload" => transfer(&state, TransferKind::Push, &body).await,
        _ => transfer(&state, TransferKind::Pull, &body).await,
    }
}

async fn blocking<T: Send + 'static>(
    failed: u32,
    f: impl FnOnce() -> Result<T, ArangoError> + Send + 'static,
) -> Result<T, ArangoError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) => Err(ArangoError::new(StatusCode::INTERNAL_SERVER_ERROR, failed, format!("task failed: {e}"))),
    }
}

/// Takes a full backup with `label` (a UUID when `None`) and waits for it.
fn take_backup(backups: &BackupService, now_ns: i64, label: Option<&str>, uuid: u128) -> Result<Value, ArangoError> {
    let fail = |e| ArangoError::from_engine(e, num::HOT_BACKUP_INTERNAL);
    let label = match label {
        Some(label) => {
            crate::backup::validate_name(label)
                .map_err(|_| ArangoError::bad(format!("label {label:?}: use 1 to 100 of A-Z a-z 0-9 . _ -")))?;
            if label.len() > 100 {
                return Err(ArangoError::bad("label: at most 100 characters"));
            }
            label.to_string()
        }
        None => super::uuid_text(uuid),
    };
    let id = hot_backup_id(now_ns, &label);
    backups.start(BackupRequest::full().named(id.clone())).map_err(fail)?;
    let info = backups.wait(&id).map_err(fail)?;
    if info.status != BackupStatus::Completed {
        let why = info.error.unwrap_or_else(|| info.status.as_str().to_string());
        return Err(ArangoError::new(StatusCode::INTERNAL_SERVER_ERROR, num::HOT_BACKUP_INTERNAL, why));
    }
    Ok(json!({
        "id": id,
        "potentiallyInconsistent": false,
        "sizeInBytes": info.total_size_bytes,
        "nrFiles": info.total_files,
        "nrDBServers": 1,
        "datetime": seconds(&info.created_at),
    }))
}

async fn create(state: &AppState, backups: BackupService, body: &Map<String, Value>) -> Result<Response, ArangoError> {
    let label = opt_str(body, "label")?.filter(|l| !l.is_empty()).map(str::to_string);
    // Checked for type only: see the module doc.
    if let Some(t) = body.get("timeout").filter(|t| !t.is_null())
        && !t.as_f64().is_some_and(|t| t.is_finite() && t >= 0.0)
    {
        return Err(ArangoError::bad("`timeout` must be a non-negative number of seconds"));
    }
    opt_bool(body, "allowInconsistent")?;
    opt_bool(body, "force")?;
    let (now, uuid) = (state.engine().now_ns(), state.engine().next_id());
    let result = blocking(num::HOT_BACKUP_INTERNAL, move || take_backup(&backups, now, label.as_deref(), uuid)).await?;
    Ok(answer(StatusCode::CREATED, result))
}

fn listed(info: &crate::backup::BackupInfo) -> Value {
    json!({
        "id": info.name,
        "version": super::VERSION,
        "datetime": seconds(&info.created_at),
        "keys": [],
        "sizeInBytes": info.total_size_bytes,
        "nrFiles": info.total_files,
        "nrDBServers": 1,
        "nrPiecesPresent": 1,
        "available": true,
        "potentiallyInconsistent": false,
        "countIncludesFilesOnly": true,
    })
}

async fn list(backups: BackupService, body: &Map<String, Value>) -> Result<Response, ArangoError> {
    let id = opt_str(body, "id")?.map(str::to_string);
    let entries = blocking(num::HOT_BACKUP_INTERNAL, move || {
        let all = backups.list().map_err(|e| ArangoError::from_engine(e, num::HOT_BACKUP_INTERNAL))?;
        let completed = all.into_iter().filter(|b| b.status == BackupStatus::Completed);
        let chosen: Vec<_> = match &id {
            Some(id) => completed.filter(|b| &b.name == id).collect(),
            None => completed.collect(),
        };
        if let (Some(id), true) = (&id, chosen.is_empty()) {
            return Err(ArangoError::new(
                StatusCode::NOT_FOUND,
                num::NO_SUCH_HOT_BACKUP,
                format!("no such hot backup set can be found: {id}"),
            ));
        }
        Ok(chosen)
    })
    .await?;
    let list: Map<String, Value> = entries.iter().map(|b| (b.name.clone(), listed(b))).collect();
    Ok(answer(StatusCode::OK, json!({ "server": SINGLE_SERVER, "list": list })))
}

async fn delete(backups: BackupService, body: &Map<String, Value>) -> Result<Response, ArangoError> {
    let id = required_id(body)?.to_string();
    blocking(num::HOT_BACKUP_INTERNAL, move || {
        backups.delete(&id).map(drop).map_err(|e| ArangoError::from_engine(e, num::HOT_BACKUP_INTERNAL))
    })
    .await?;
    Ok(answer(StatusCode::OK, json!({})))
}

async fn restore(state: &AppState, backups: BackupService, body: &Map<String, Value>) -> Result<Response, ArangoError> {
    let id = required_id(body)?.to_string();
    let (now, uuid) = (state.engine().now_ns(), state.engine().next_id());
    let previous = blocking(num::HOT_RESTORE_INTERNAL, move || {
        let fail = |e| ArangoError::from_engine(e, num::HOT_RESTORE_INTERNAL);
        let found = backups.get(&id).map_err(fail)?;
        if found.status != BackupStatus::Completed {
            return Err(ArangoError::new(
                StatusCode::NOT_FOUND,
                num::NO_SUCH_HOT_BACKUP,
                format!("backup {id} has not completed ({})", found.status.as_str()),
            ));
        }
        // The undo point: the data as it is now.
        let taken = take_backup(&backups, now, Some("before-restore"), uuid).or_else(|e| {
            if e.num == num::HOT_BACKUP_CONFLICT {
                take_backup(&backups, now, Some(&format!("before-restore-{}", super::uuid_text(uuid))), uuid)
            } else {
                Err(e)
            }
        })?;
        let previous = taken.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
        // A failure from here on names the undo backup, which stays (it
        // holds the data as it is, and deleting it is the client's call).
        let kept = |e: crate::Error| {
            let mut e = fail(e);
            e.message =
                format!("{} (backup {previous}, taken before the restore, holds the data as it was)", e.message);
            e
        };
        let restore_id = backups.start_restore(&id, RestoreVerify::default()).map_err(kept)?;
        let ended = backups.wait_restore(&restore_id).map_err(kept)?;
        if ended.status != BackupStatus::Completed {
            let why = ended.error.unwrap_or_else(|| ended.status.as_str().to_string());
            return Err(ArangoError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                num::HOT_RESTORE_INTERNAL,
                format!("restore of {id} did not complete: {why} (the data is as it was; backup {previous} holds it)"),
            ));
        }
        Ok(previous)
    })
    .await?;
    Ok(answer(StatusCode::OK, json!({ "previous": previous, "isCluster": false })))
}

/// A transfer as ArangoDB reports an upload's or download's progress.
pub fn progress_record(info: &TransferInfo, now: &str) -> Value {
    let status = match info.status {
        BackupStatus::InProgress => "STARTED",
        BackupStatus::Completed => "COMPLETED",
        BackupStatus::Failed => "FAILED",
        BackupStatus::Cancelled => "CANCELLED",
    };
    let mut server = json!({
        "Status": status,
        "Progress": {
            "Total": info.objects_total,
            "Done": info.objects_done,
            "Time": seconds(info.completed_at.as_deref().unwrap_or(now)),
        },
    });
    if info.status == BackupStatus::Failed {
        let n = match info.kind {
            TransferKind::Push => num::FAILED_TO_UPLOAD_BACKUP,
            TransferKind::Pull => num::FAILED_TO_DOWNLOAD_BACKUP,
        };
        server["Error"] = json!(n);
        server["ErrorMessage"] = json!(info.error.clone().unwrap_or_default());
    }
    let id_key = match info.kind {
        TransferKind::Push => "UploadId",
        TransferKind::Pull => "DownloadId",
    };
    json!({
        "Timestamp": seconds(&info.created_at),
        id_key: info.id,
        "BackupId": info.backup,
        "Cancelled": info.status == BackupStatus::Cancelled,
        "DBServers": { SINGLE_SERVER: server },
    })
}

async fn transfer(state: &AppState, kind: TransferKind, body: &Map<String, Value>) -> Result<Response, ArangoError> {
    let failed = match kind {
        TransferKind::Push => num::FAILED_TO_UPLOAD_BACKUP,
        TransferKind::Pull => num::FAILED_TO_DOWNLOAD_BACKUP,
    };
    let transfers: TransferService = state.transfers().cloned().ok_or_else(|| {
        ArangoError::new(StatusCode::NOT_IMPLEMENTED, failed, "uploads and downloads are not available on this server")
    })?;
    let (id_key, answer_key) = match kind {
        TransferKind::Push => ("uploadId", "uploadId"),
        TransferKind::Pull => ("downloadId", "downloadId"),
    };
    let now = crate::backup::rfc3339(state.engine().now_ns());
    if let Some(job) = opt_str(body, id_key)? {
        let job = job.to_string();
        let abort = opt_bool(body, "abort")?.unwrap_or(false);
        let record = blocking(failed, move || {
            let fail = |e| ArangoError::from_engine(e, failed);
            let info = transfers.get(&job).map_err(fail)?;
            if info.kind != kind {
                return Err(ArangoError::from_engine(RemoteError::TransferNotFound { id: job }.into(), failed));
            }
            if abort {
                transfers.cancel(&job).map_err(fail)?;
                // Answered once it has stopped, so that the remote is quiet.
                let ended = wait_briefly(&transfers, &job).map_err(fail)?;
                return Ok(progress_record(&ended, &now));
            }
            Ok(progress_record(&info, &now))
        })
        .await?;
        return Ok(answer(StatusCode::OK, record));
    }
    let backup = required_id(body)?.to_string();
    if kind == TransferKind::Push && crate::backup::validate_name(&backup).is_err() {
        // No backup can have that name.
        return Err(ArangoError::new(
            StatusCode::NOT_FOUND,
            num::NO_SUCH_HOT_BACKUP,
            format!("no such hot backup set can be found: {backup}"),
        ));
    }
    let repository = opt_str(body, "remoteRepository")?
        .filter(|r| !r.is_empty())
        .ok_or_else(|| ArangoError::bad("`remoteRepository` is required"))?;
    let config = match body.get("config") {
        Some(Value::Object(config)) => config,
        _ => return Err(ArangoError::bad("`config` is required and must be an object")),
    };
    let (url, options) = parse_remote_repository(repository, config)?;
    let request = TransferRequest { kind, backup, url, options };
    let id =
        blocking(failed, move || transfers.start(request).map_err(|e| ArangoError::from_engine(e, failed))).await?;
    Ok(answer(StatusCode::ACCEPTED, json!({ answer_key: id })))
}

/// Waits for a cancelled transfer to stop (it looks at its flag between
/// chunks), at most a few seconds; its state then.
fn wait_briefly(transfers: &TransferService, id: &str) -> crate::Result<TransferInfo> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let info = transfers.get(id)?;
        if info.status != BackupStatus::InProgress || std::time::Instant::now() >= deadline {
            return Ok(info);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_arangodb_form() {
        assert_eq!(hot_backup_id(1_556_452_800_000_000_000, "foo"), "2019-04-28T12.00.00Z_foo");
        assert_eq!(parse_hot_backup_id("2019-04-28T12.00.00Z_foo"), Some((1_556_452_800, "foo")));
        assert_eq!(parse_hot_backup_id("2019-04-28T12:00:00Z_foo"), None);
        assert_eq!(parse_hot_backup_id("2019-04-28T12.00.00Z_"), None);
        assert_eq!(parse_hot_backup_id("nightly"), None);
    }

    #[test]
    fn remote_repositories_are_normalized() {
        let config: Map<String, Value> = serde_json::from_str(
            r#"{"local": {"type": "local"}, "s3": {"type": "s3", "endpoint": "http://127.0.0.1:9000",
                "access_key_id": "k", "secret_access_key": "s", "provider": "Other"}}"#,
        )
        .unwrap_or_default();
        let url = |repo: &str| parse_remote_repository(repo, &config).map(|(url, _)| url);
        assert_eq!(url("local://tmp/backups"), Ok("/tmp/backups".into()));
        assert_eq!(url("local:/tmp//a/./b/../c/"), Ok("/tmp/a/c".into()));
        assert_eq!(url("s3:bucket/some/prefix"), Ok("s3://bucket/some/prefix".into()));
        assert_eq!(url("s3:/bucket"), Ok("s3://bucket".into()));
        let (_, options) = parse_remote_repository("s3:b/p", &config).unwrap_or_default();
        assert_eq!(options.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(options.access_key_id.as_deref(), Some("k"));
        for bad in ["nocolon", "local:relative/path", "other:/x", "s3:", "a/b:/x", "local:/x:y", "local:/.."] {
            let refused = parse_remote_repository(bad, &config);
            assert!(refused.as_ref().is_err_and(|e| e.status == StatusCode::BAD_REQUEST), "{bad}: {refused:?}");
        }
    }

    proptest::proptest! {
        /// Any time in the nanosecond range and any valid label: the id is a
        /// backup name and parses back to the whole second and the label.
        #[test]
        fn ids_parse_back(ns: i64, label in "[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}") {
            let id = hot_backup_id(ns, &label);
            proptest::prop_assert!(crate::backup::validate_name(&id).is_ok(), "{}", id);
            proptest::prop_assert_eq!(parse_hot_backup_id(&id), Some((ns.div_euclid(1_000_000_000), label.as_str())));
        }

        /// Whatever parses as an id is the id its parts write.
        #[test]
        fn a_parsed_id_is_the_one_written(id in "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}\\.[0-9]{2}\\.[0-9]{2}Z_[a-z_.]{0,4}") {
            if let Some((secs, label)) = parse_hot_backup_id(&id)
                && let Some(ns) = secs.checked_mul(1_000_000_000)
            {
                proptest::prop_assert_eq!(hot_backup_id(ns, label), id.clone());
            }
        }
    }

    #[test]
    fn bodies_must_be_objects() {
        assert_eq!(parse_body(b""), Ok(Map::new()));
        assert_eq!(parse_body(b" \n"), Ok(Map::new()));
        assert!(parse_body(b"[]").is_err());
        assert!(parse_body(b"{").is_err_and(|e| e.num == num::HTTP_CORRUPTED_JSON));
    }
}
