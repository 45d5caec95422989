//! Pushes and pulls of backups to and from remote repositories, as jobs
//! (quipu extensions of the backup API; jobs run in
//! [`crate::remote::TransferService`]).
//!
//! | request | answer |
//! |---|---|
//! | `POST /api/v3/enterprise/backup/{name}/push` `{remote, endpoint?, region?, access_key_id?, secret_access_key?, session_token?, accept_unconditional?}` | 202 `{transfer_id, status: "in_progress"}`; 400 malformed body or remote; 404 no completed backup of that name; 409 as many transfers run as allowed |
//! | `POST /api/v3/enterprise/backup/{name}/pull` (same body) | 202 `{transfer_id, status}`; 400; 409 a backup of that name runs or is being pulled |
//! | `GET /api/v3/enterprise/transfer` | 200 `{transfers: [...]}`, newest first |
//! | `GET /api/v3/enterprise/transfer/{id}` | 200 the transfer with its progress; 404 |
//! | `DELETE /api/v3/enterprise/transfer/{id}` | 204 once asked to stop; 404 unknown; 409 already ended |
//!
//! A remote's credentials come in the body (or from the server's AWS
//! environment variables when absent) and are kept only by the job.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::backup::{blocking, json_body};
use super::error::ApiError;
use crate::remote::{RemoteOptions, TransferKind, TransferRequest, TransferService};

pub(super) fn service(state: &AppState) -> Result<TransferService, ApiError> {
    state.transfers().cloned().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "pushes and pulls are not available: the server runs without a backup repository (--no-backup)",
        )
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransferBody {
    remote: Option<String>,
    endpoint: Option<String>,
    region: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    session_token: Option<String>,
    #[serde(default)]
    accept_unconditional: bool,
}

async fn start(state: AppState, kind: TransferKind, backup: String, body: Bytes) -> Result<Response, ApiError> {
    let transfers = service(&state)?;
    let body: TransferBody = json_body(&body)?;
    let url = body.remote.filter(|r| !r.is_empty()).ok_or_else(|| ApiError::bad_request("missing field `remote`"))?;
    let options = RemoteOptions {
        endpoint: body.endpoint,
        region: body.region,
        access_key_id: body.access_key_id,
        secret_access_key: body.secret_access_key,
        session_token: body.session_token,
        accept_unconditional: body.accept_unconditional,
        ..RemoteOptions::default()
    };
    let request = TransferRequest { kind, backup, url, options };
    let id = blocking(move || transfers.start(request)).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "transfer_id": id, "status": "in_progress" }))).into_response())
}

/// `POST /api/v3/enterprise/backup/{name}/push`.
pub async fn push(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Result<Response, ApiError> {
    start(state, TransferKind::Push, name, body).await
}

/// `POST /api/v3/enterprise/backup/{name}/pull`.
pub async fn pull(State(state): State<AppState>, Path(name): Path<String>, body: Bytes) -> Result<Response, ApiError> {
    start(state, TransferKind::Pull, name, body).await
}

/// `GET /api/v3/enterprise/transfer`.
pub async fn list(State(state): State<AppState>) -> Result<Response, ApiError> {
    let transfers = service(&state)?;
    let list = blocking(move || transfers.list()).await?;
    Ok(Json(json!({ "transfers": list })).into_response())
}

/// `GET /api/v3/enterprise/transfer/{id}`.
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let transfers = service(&state)?;
    let info = blocking(move || transfers.get(&id)).await?;
    Ok(Json(info).into_response())
}

/// `DELETE /api/v3/enterprise/transfer/{id}`.
pub async fn cancel(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let transfers = service(&state)?;
    blocking(move || transfers.cancel(&id)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
