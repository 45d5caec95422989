//! The vocabulary of restore failures: [`RestoreError`]. Like the backup
//! vocabulary it depends on nothing of quipu beyond it, so the crate's root
//! error carries it without depending on the restore machinery.

use std::path::PathBuf;

use crate::backup::error::ObjectProblem;

/// What can go wrong with a restore, beyond I/O and corruption (which are
/// `quipu::Error::Io` and `quipu::Error::Corrupt` with the path), a backup
/// that does not exist or a bad request (`quipu::Error::Backup`) and a
/// cancelled restore (`quipu::Error::Interrupted`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RestoreError {
    #[error("restore {id} is running; one restore runs at a time")]
    Running { id: String },
    #[error("no restore with id {id}")]
    NotFound { id: String },
    #[error("no restore with id {id} is running (or it is already swapping in)")]
    NotRunning { id: String },
    /// An object the restore needs is missing or damaged; nothing was swapped in.
    #[error("backup {backup}: {problem}")]
    BadObject { backup: String, problem: ObjectProblem },
    /// An offline restore's target folder already holds something.
    #[error("cannot restore into {path}: it exists and is not empty")]
    TargetNotEmpty { path: PathBuf },
}
