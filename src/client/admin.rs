//! The backup and restore endpoints, as JSON calls.

use super::*;

/// `POST /api/v3/enterprise/backup`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct BackupStarted {
    pub backup_name: String,
    pub status: String,
}

/// The answer to starting a restore.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct RestoreStarted {
    pub restore_id: String,
    pub status: String,
}

impl Client {
    /// `/api/v3/enterprise/backup` plus optional path segments (percent-encoded).
    pub(super) fn backup_url(&self, segments: &[&str]) -> Result<Url, ClientError> {
        self.endpoint_url("api/v3/enterprise/backup", segments)
    }

    /// `path` plus optional path segments (percent-encoded).
    fn endpoint_url(&self, path: &str, segments: &[&str]) -> Result<Url, ClientError> {
        let mut url = self.url(path, &[])?;
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
    pub(super) fn json_request<T: serde::de::DeserializeOwned>(
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

    pub(super) fn restore_url(&self, id: Option<&str>) -> Result<Url, ClientError> {
        self.endpoint_url("api/v3/enterprise/restore", id.as_slice())
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

/// Where a server's push or pull goes: the remote and how to reach it
/// (unset fields: the server's own AWS environment).
#[cfg(feature = "remote")]
#[derive(Clone, Default, serde::Serialize)]
pub struct TransferTarget {
    pub remote: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_token: Option<String>,
    pub accept_unconditional: bool,
}

#[cfg(feature = "remote")]
impl std::fmt::Debug for TransferTarget {
    // Credentials never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |v: &Option<String>| v.as_ref().map(|_| "<set>");
        f.debug_struct("TransferTarget")
            .field("remote", &self.remote)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &set(&self.access_key_id))
            .field("secret_access_key", &set(&self.secret_access_key))
            .field("session_token", &set(&self.session_token))
            .field("accept_unconditional", &self.accept_unconditional)
            .finish()
    }
}

#[cfg(feature = "remote")]
impl Client {
    fn transfer_url(&self, id: Option<&str>) -> Result<Url, ClientError> {
        self.endpoint_url("api/v3/enterprise/transfer", id.as_slice())
    }

    /// Starts a push (or pull) of backup `name` on the server; its id.
    pub fn transfer_start(
        &self,
        kind: crate::remote::TransferKind,
        name: &str,
        target: &TransferTarget,
    ) -> Result<String, ClientError> {
        #[derive(serde::Deserialize)]
        struct Answer {
            transfer_id: String,
        }
        let url = self.backup_url(&[name, kind.as_str()])?;
        let body = serde_json::to_value(target)
            .map_err(|e| ClientError::BadAnswer { what: "transfer request", reason: e.to_string() })?;
        let answer: Answer =
            self.json_request(reqwest::Method::POST, &url, Some(&body), "POST /api/v3/enterprise/backup/{name}/push")?;
        Ok(answer.transfer_id)
    }

    /// One push or pull.
    pub fn transfer_get(&self, id: &str) -> Result<crate::remote::TransferInfo, ClientError> {
        let url = self.transfer_url(Some(id))?;
        self.json_request(reqwest::Method::GET, &url, None, "GET /api/v3/enterprise/transfer/{id}")
    }

    /// Every push and pull the server knows, newest first.
    pub fn transfer_list(&self) -> Result<Vec<crate::remote::TransferInfo>, ClientError> {
        #[derive(serde::Deserialize)]
        struct Answer {
            transfers: Vec<crate::remote::TransferInfo>,
        }
        let url = self.transfer_url(None)?;
        let answer: Answer = self.json_request(reqwest::Method::GET, &url, None, "GET /api/v3/enterprise/transfer")?;
        Ok(answer.transfers)
    }

    /// Asks a running push or pull to stop.
    pub fn transfer_cancel(&self, id: &str) -> Result<(), ClientError> {
        let url = self.transfer_url(Some(id))?;
        self.json_request(reqwest::Method::DELETE, &url, None, "DELETE /api/v3/enterprise/transfer/{id}")
    }
}
