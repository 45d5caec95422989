//! The backup endpoints of the reference (`/api/v3/enterprise/backup`), plus
//! our `verify` extension. Jobs run in [`crate::backup::BackupService`];
//! this module parses requests and maps outcomes to statuses.
//!
//! | request | answer |
//! |---|---|
//! | `POST /api/v3/enterprise/backup` `{type, name?, force?, parent?}` | 202 `{backup_name, status: "in_progress"}`; 400 malformed or bad type/name; 409 name exists (no force) or running |
//! | `GET /api/v3/enterprise/backup` | 200 `{backups: [...]}` |
//! | `GET /api/v3/enterprise/backup/{name}` | 200 the backup; 404 |
//! | `DELETE /api/v3/enterprise/backup` `{name}` | 200 `{backup_name}` once cancelled; 404 none running |
//! | `DELETE /api/v3/enterprise/backup/{name}` | 200 `{backup_name, type}`; 404; 409 running |
//! | `POST /api/v3/enterprise/backup/{name}/verify` | 200 verify report; 404; 409 running |
//!
//! Every one answers 503 when the server runs without a repository.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::error::ApiError;
use crate::backup::{BackupRequest, BackupService, BackupType};

pub(super) fn service(state: &AppState) -> Result<BackupService, ApiError> {
    state.backups().cloned().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "backups are not available: the server runs without a backup repository (--no-backup)",
        )
    })
}

pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> crate::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(ApiError::from_engine),
        Err(e) => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("backup or restore task failed: {e}"))),
    }
}

pub(super) fn json_body<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("malformed request body: {e}")))
}

#[derive(Deserialize)]
struct CreateBody {
    #[serde(rename = "type")]
    backup_type: Option<String>,
    name: Option<String>,
    #[serde(default)]
    force: bool,
    parent: Option<String>,
}

/// `POST /api/v3/enterprise/backup`.
pub async fn create(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let backups = service(&state)?;
    let body: CreateBody = json_body(&body)?;
    let backup_type = match body.backup_type.as_deref() {
        Some("full") => BackupType::Full,
        Some("incremental") => BackupType::Incremental,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unsupported backup type {other:?}: use \"full\" (or \"incremental\", a quipu extension)"
            )));
        }
        None => return Err(ApiError::bad_request("missing field `type`")),
    };
    let request = BackupRequest { backup_type, name: body.name, force: body.force, parent: body.parent };
    let name = blocking(move || backups.start(request)).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "backup_name": name, "status": "in_progress" }))).into_response())
}

/// `GET /api/v3/enterprise/backup`.
pub async fn list(State(state): State<AppState>) -> Result<Response, ApiError> {
    let backups = service(&state)?;
    let list = blocking(move || backups.list()).await?;
    Ok(Json(json!({ "backups": list })).into_response())
}

/// `GET /api/v3/enterprise/backup/{name}`.
pub async fn get(State(state): State<AppState>, Path(name): Path<String>) -> Result<Response, ApiError> {
    let backups = service(&state)?;
    let info = blocking(move || backups.get(&name)).await?;
    Ok(Json(info).into_response())
}

#[derive(Deserialize)]
struct CancelBody {
    name: Option<String>,
}

/// `DELETE /api/v3/enterprise/backup`: cancels a running backup.
pub async fn cancel(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let backups = service(&state)?;
    let body: CancelBody = json_body(&body)?;
    let name = body.name.filter(|n| !n.is_empty()).ok_or_else(|| ApiError::bad_request("missing field `name`"))?;
    let answer = name.clone();
    blocking(move || backups.cancel(&name)).await?;
    Ok(Json(json!({ "backup_name": answer })).into_response())
}

/// `DELETE /api/v3/enterprise/backup/{name}`.
pub async fn delete(State(state): State<AppState>, Path(name): Path<String>) -> Result<Response, ApiError> {
    let backups = service(&state)?;
    let answer = name.clone();
    let backup_type = blocking(move || backups.delete(&name)).await?;
    Ok(Json(json!({ "backup_name": answer, "type": backup_type.as_str() })).into_response())
}

/// `POST /api/v3/enterprise/backup/{name}/verify` (extension).
pub async fn verify(State(state): State<AppState>, Path(name): Path<String>) -> Result<Response, ApiError> {
    let backups = service(&state)?;
    let report = blocking(move || backups.verify(&name)).await?;
    Ok(Json(report).into_response())
}
