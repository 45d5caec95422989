//! The admin token: where it comes from ([`resolve_admin_token`]), how it is
//! kept (only its blake3 hash, in memory and on disk) and how requests prove
//! they hold it ([`require_token`]).
//!
//! Accepted credentials, following the reference's security schemes:
//! - `Authorization: Bearer <token>`: every endpoint ("works with all endpoints").
//! - `Authorization: Token <token>`: every endpoint. The scheme's description
//!   names the v1 and v2 endpoints, but the global `security` block lists it
//!   as an alternative for every operation; we accept it everywhere.
//! - `Authorization: Basic base64(<user>:<token>)` and the query string
//!   `p=<token>` (`u=` ignored): only on the v1 `/write` endpoint, the one v1
//!   endpoint of this slice (the schemes say "v1 endpoints", `/write` and
//!   `/query`). When `p` is present it is the credential checked, whatever
//!   the header says.
//! - On the ArangoDB face (`/_admin/...`, `/_db/...`): `Basic` with any user
//!   name and the token as password (what ArangoDB clients send), or
//!   `bearer <token>`; a refusal there is 401 in ArangoDB's error shape.
//!
//! Scheme words are case-insensitive, as RFC 7235 (section 2.1) has them:
//! `bearer` is `Bearer` (python-arango, for one, sends it in lower case). The
//! reference calls `Token` case-sensitive; a client that sends `token` means
//! the same scheme, and refusing it would protect nothing. A missing or
//! wrong credential gets 401 with an `ErrorMessage` body. Tokens never reach
//! a log or an error message.

use std::fmt;
use std::path::{Path, PathBuf};

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use super::error::ApiError;
use super::{AppState, ServerError};

/// The folder under the data folder where the server keeps its own files.
pub const SERVER_DIR: &str = "server";
/// The file (in [`SERVER_DIR`]) holding the hex blake3 hash of a generated admin token.
pub const ADMIN_TOKEN_HASH_FILE: &str = "admin_token.blake3";
/// Prefix of generated tokens (InfluxDB 3's).
pub const TOKEN_PREFIX: &str = "apiv3_";

/// The admin token, held as its blake3 hash only.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken {
    hash: blake3::Hash,
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

impl AdminToken {
    /// The token `token` (hashed at once; the text is not kept).
    pub fn from_token(token: &str) -> Self {
        AdminToken { hash: blake3::hash(token.as_bytes()) }
    }

    /// A token known by its hash.
    pub fn from_hash(hash: blake3::Hash) -> Self {
        AdminToken { hash }
    }

    /// Whether `presented` is the token. Compares hashes in constant time
    /// (`blake3::Hash`'s `==`), so timing does not reveal a matching prefix.
    pub fn verify(&self, presented: &str) -> bool {
        blake3::hash(presented.as_bytes()) == self.hash
    }

    /// The hash as 64 hex digits (what the hash file holds).
    pub fn hash_hex(&self) -> String {
        self.hash.to_hex().to_string()
    }
}

/// Finds the admin token, in this order:
/// 1. `env_token` (the caller passes `QUIPU_ADMIN_TOKEN`), trimmed; empty is an error;
/// 2. `token_file`, its content trimmed; an empty file is an error;
/// 3. the hash stored in `<data_dir>/server/admin_token.blake3`;
/// 4. none of these: a new random token (`apiv3_` + 43 base64url characters
///    from 32 bytes of OS randomness) whose hash is stored atomically in that
///    file. Only then is the token itself returned, for the caller to print
///    once; it is not stored anywhere.
pub fn resolve_admin_token(
    data_dir: &Path,
    env_token: Option<String>,
    token_file: Option<&Path>,
) -> Result<(AdminToken, Option<String>), ServerError> {
    if let Some(token) = env_token {
        let token = token.trim();
        if token.is_empty() {
            return Err(ServerError::EmptyEnvToken);
        }
        return Ok((AdminToken::from_token(token), None));
    }
    if let Some(path) = token_file {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ServerError::ReadTokenFile { path: path.to_path_buf(), source })?;
        let token = text.trim();
        if token.is_empty() {
            return Err(ServerError::EmptyTokenFile { path: path.to_path_buf() });
        }
        return Ok((AdminToken::from_token(token), None));
    }
    let dir = data_dir.join(SERVER_DIR);
    let hash_path = dir.join(ADMIN_TOKEN_HASH_FILE);
    match std::fs::read(&hash_path) {
        Ok(bytes) => return load_hash(&hash_path, &bytes).map(|t| (t, None)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(ServerError::ReadTokenHash { path: hash_path, source }),
    }
    let token = generate_token()?;
    let admin = AdminToken::from_token(&token);
    let store = |path: &PathBuf, source| ServerError::StoreTokenHash { path: path.clone(), source };
    crate::fs::create_dir_durable(&dir).map_err(|e| store(&dir, e))?;
    crate::fs::atomic_write(&hash_path, format!("{}\n", admin.hash_hex()).as_bytes())
        .map_err(|e| store(&hash_path, e))?;
    Ok((admin, Some(token)))
}

fn load_hash(path: &Path, bytes: &[u8]) -> Result<AdminToken, ServerError> {
    let corrupt = |why: &str| ServerError::CorruptTokenHash { path: path.to_path_buf(), why: why.to_string() };
    let text = std::str::from_utf8(bytes).map_err(|_| corrupt("not UTF-8 text"))?.trim();
    if text.len() != 64 {
        return Err(corrupt(&format!("expected 64 hex digits, found {} characters", text.chars().count())));
    }
    let hash = blake3::Hash::from_hex(text).map_err(|_| corrupt("not a hex blake3 hash"))?;
    Ok(AdminToken::from_hash(hash))
}

fn generate_token() -> Result<String, ServerError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| ServerError::Random(e.to_string()))?;
    Ok(format!("{TOKEN_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)))
}

/// Middleware: answers 401 unless the request carries the admin token in a
/// form its endpoint accepts (see the module doc).
pub async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    // The ArangoDB face: Basic as ArangoDB clients send it, and errors in its shape.
    let arango = path.starts_with("/_admin/") || path.starts_with("/_db/");
    let v1 = path == "/write";
    // The InfluxDB 2 backup face: errors in InfluxDB 2's shape.
    let v2_backup = super::influxdb2::is_v2_backup_path(path);
    match presented_token(&req, v1 || arango, v1) {
        Ok(token) if state.inner.admin_token.verify(&token) => next.run(req).await,
        Ok(_) if arango => {
            super::arango::ArangoError::unauthorized("not authorized to execute this request").into_response()
        }
        Ok(_) if v2_backup => super::influxdb2::V2Error::unauthorized("invalid token").into_response(),
        Ok(_) => ApiError::unauthorized("invalid token").into_response(),
        Err(e) if arango => super::arango::ArangoError::unauthorized(e.error).into_response(),
        Err(e) if v2_backup => super::influxdb2::V2Error::unauthorized(e.error).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The token a request presents; `basic` allows `Authorization: Basic`
/// (the password is the token), `v1` also the `p` query parameter.
fn presented_token(req: &Request, basic: bool, v1: bool) -> Result<String, ApiError> {
    if v1 && let Some(p) = query_password(req) {
        return Ok(p);
    }
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        let hint = match (basic, v1) {
            (_, true) => ", `Authorization: Basic`, or `p=<token>`",
            (true, false) => ", or `Authorization: Basic` with the token as password",
            _ => "",
        };
        return Err(ApiError::unauthorized(format!(
            "missing token: send `Authorization: Bearer <token>`, `Authorization: Token <token>`{hint}"
        )));
    };
    let value = value.to_str().map_err(|_| ApiError::unauthorized("malformed Authorization header"))?;
    let (scheme, credential) =
        value.split_once(' ').ok_or_else(|| ApiError::unauthorized("malformed Authorization header"))?;
    let credential = credential.trim();
    let is = |word: &str| scheme.eq_ignore_ascii_case(word);
    match () {
        _ if is("Bearer") || is("Token") => Ok(credential.to_owned()),
        _ if is("Basic") && basic => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(credential)
                .map_err(|_| ApiError::unauthorized("malformed Basic credential"))?;
            let text = String::from_utf8(decoded).map_err(|_| ApiError::unauthorized("malformed Basic credential"))?;
            // The username is ignored; the password is the token.
            let (_, password) =
                text.split_once(':').ok_or_else(|| ApiError::unauthorized("malformed Basic credential"))?;
            Ok(password.to_owned())
        }
        _ => Err(ApiError::unauthorized(format!(
            "unsupported Authorization scheme on this endpoint: use `Bearer <token>` or `Token <token>`{}",
            if basic { " or `Basic`" } else { "" }
        ))),
    }
}

/// The `p` query parameter (the last one if repeated).
fn query_password(req: &Request) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(req.uri().query()?).ok()?;
    pairs.into_iter().rev().find(|(k, _)| k == "p").map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_matches_only_the_token() {
        let t = AdminToken::from_token("apiv3_secret");
        assert!(t.verify("apiv3_secret"));
        assert!(!t.verify("apiv3_secreT"));
        assert!(!t.verify(""));
        assert_eq!(format!("{t:?}"), "AdminToken(<redacted>)");
    }

    #[test]
    fn generated_tokens_are_long_and_distinct() {
        let a = generate_token().unwrap();
        let b = generate_token().unwrap();
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 43);
        assert_ne!(a, b);
    }

    #[test]
    fn load_hash_rejects_garbage() {
        let p = Path::new("x");
        assert!(load_hash(p, b"zz").is_err());
        assert!(load_hash(p, &[0xff; 64]).is_err());
        assert!(load_hash(p, "g".repeat(64).as_bytes()).is_err());
        let t = AdminToken::from_token("a");
        assert_eq!(load_hash(p, format!(" {}\n", t.hash_hex()).as_bytes()).unwrap(), t);
    }
}
