//! The restore endpoints of the reference (`/api/v3/enterprise/restore`).
//! Restores run in [`crate::backup::BackupService`] (one at a time); this
//! module parses requests and maps outcomes to statuses.
//!
//! | request | answer |
//! |---|---|
//! | `POST /api/v3/enterprise/restore` `{backup_name, verify?}` | 202 `{restore_id, status: "in_progress"}`; 400 missing or empty name; 404 no completed backup of that name; 409 a restore is running |
//! | `GET /api/v3/enterprise/restore` | 200 `{restores: [...]}`, newest first |
//! | `GET /api/v3/enterprise/restore/{id}` | 200 the restore (`completed_at` null until it ends); 404 |
//! | `DELETE /api/v3/enterprise/restore/{id}` | 204 once cancelled; 404 unknown, ended or already swapping in |
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
use super::backup::{blocking, json_body, service};
use super::error::ApiError;
use crate::backup::RestoreVerify;

#[derive(Deserialize)]
struct StartBody {
    backup_name: Option<String>,
    /// Extension: `auto` (default) or `full`.
    #[serde(default)]
    verify: RestoreVerify,
}

/// `POST /api/v3/enterprise/restore`.
pub async fn start(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let backups = service(&state)?;
    let body: StartBody = json_body(&body)?;
    let name = body
        .backup_name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad_request("backup_name is required and must not be empty"))?;
    let id = blocking(move || backups.start_restore(&name, body.verify)).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "restore_id": id, "status": "in_progress" }))).into_response())
}

/// `GET /api/v3/enterprise/restore`.
pub async fn list(State(state): State<AppState>) -> Result<Response, ApiError> {
    let backups = service(&state)?;
    let list = blocking(move || backups.list_restores()).await?;
    Ok(Json(json!({ "restores": list })).into_response())
}

/// `GET /api/v3/enterprise/restore/{id}`: `completed_at` is null, not
/// absent, while it runs (the reference's `GetRestoreResponse`).
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let backups = service(&state)?;
    let info = blocking(move || backups.restore_info(&id)).await?;
    let mut body = serde_json::to_value(info)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("restore encoding: {e}")))?;
    if let Some(fields) = body.as_object_mut() {
        fields.entry("completed_at").or_insert(serde_json::Value::Null);
    }
    Ok(Json(body).into_response())
}

/// `DELETE /api/v3/enterprise/restore/{id}`.
pub async fn cancel(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let backups = service(&state)?;
    blocking(move || backups.cancel_restore(&id)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
