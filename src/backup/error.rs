//! The vocabulary of backup failures: [`BackupError`] and [`ObjectProblem`].
//! It depends on nothing else of quipu, so the crate's root error can carry
//! it without the root depending on the backup service.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What can go wrong with backups, beyond I/O and corruption (which are
/// `quipu::Error::Io` and `quipu::Error::Corrupt` with the path) and a
/// cancelled job (`quipu::Error::Interrupted`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    #[error("{path} is not a quipu backup repository: {why}")]
    NotARepository { path: PathBuf, why: String },
    #[error("backup repository {path} is in use by another process")]
    RepoLocked { path: PathBuf },
    #[error("invalid backup name {name:?}: {why}")]
    InvalidName { name: String, why: String },
    #[error("backup {name} already exists; set force to replace it")]
    Exists { name: String },
    #[error("backup {name} is in progress")]
    Running { name: String },
    #[error("no backup named {name}")]
    NotFound { name: String },
    #[error("no backup named {name} is running")]
    NotRunning { name: String },
    #[error("invalid backup request: {0}")]
    InvalidRequest(String),
    #[error("link mode needs the repository {repo} on the filesystem of the data folder {data}")]
    CrossDevice { repo: PathBuf, data: PathBuf },
    #[error("backups are shutting down")]
    ShuttingDown,
}

/// What is wrong with one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "problem")]
pub enum ObjectProblem {
    Missing { blake3: String },
    WrongSize { blake3: String, expected: u64, found: u64 },
    Corrupt { blake3: String, actual: String },
    Unreadable { blake3: String, error: String },
}

impl ObjectProblem {
    pub fn blake3(&self) -> &str {
        match self {
            ObjectProblem::Missing { blake3 }
            | ObjectProblem::WrongSize { blake3, .. }
            | ObjectProblem::Corrupt { blake3, .. }
            | ObjectProblem::Unreadable { blake3, .. } => blake3,
        }
    }
}

impl std::fmt::Display for ObjectProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ObjectProblem::Missing { blake3 } => write!(f, "object {blake3} is missing"),
            ObjectProblem::WrongSize { blake3, expected, found } => {
                write!(f, "object {blake3} has {found} bytes, {expected} expected")
            }
            ObjectProblem::Corrupt { blake3, actual } => {
                write!(f, "object {blake3} is corrupt (content hashes to {actual})")
            }
            ObjectProblem::Unreadable { blake3, error } => write!(f, "object {blake3} cannot be read: {error}"),
        }
    }
}
