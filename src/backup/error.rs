//! What can go wrong with backups beyond I/O and corruption: [`BackupError`].

use super::*;

/// What can go wrong with backups, beyond I/O and corruption (which are
/// [`Error::Io`] and [`Error::Corrupt`] with the path).
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
    /// The job's cancel flag was raised (by a user or a shutdown).
    #[error("interrupted")]
    Interrupted,
    #[error("restore {id} is running; one restore runs at a time")]
    RestoreRunning { id: String },
    #[error("no restore with id {id}")]
    RestoreNotFound { id: String },
    #[error("no restore with id {id} is running (or it is already swapping in)")]
    RestoreNotRunning { id: String },
    /// An object a restore needs is missing or damaged.
    #[error("backup {backup}: {problem}")]
    BadObject { backup: String, problem: ObjectProblem },
}
