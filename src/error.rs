//! The one public error type. Each module has its own thiserror enum; they
//! meet here, and every variant that concerns a file or an object carries its
//! path or name so an operator can act on the message alone.

use std::path::PathBuf;

use crate::backup::error::BackupError;
use crate::lp::LineError;
#[cfg(feature = "remote")]
use crate::remote::error::RemoteError;
use crate::restore::error::RestoreError;
use crate::wal::WalError;

/// Everything that can go wrong in quipu.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Another process holds the data folder.
    #[error("data folder {path} is locked by another process")]
    Locked { path: PathBuf },
    /// An I/O error on a file or folder.
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file failed validation (magic, lengths, checksums, structure).
    #[error("corrupt file {path}: {what}")]
    Corrupt { path: PathBuf, what: String },
    /// A file written by a format version this build cannot read.
    #[error("{path} has format version {found}; this build reads version {supported}")]
    UnsupportedVersion { path: PathBuf, found: u16, supported: u16 },
    /// A durable write failed earlier (an fsync error, or a write error that
    /// could not be rolled back): the engine no longer acknowledges writes,
    /// because it can no longer promise they are on disk.
    #[error("write path poisoned by an earlier I/O failure ({reason}); restart the engine")]
    Poisoned { reason: String },
    /// A write failed before anything of it was acknowledged (a full disk,
    /// too many open files, an I/O error while logging it or its catalog
    /// change) and was rolled back: the engine still accepts writes, and the
    /// same write can be retried once the cause is gone (space freed).
    #[error(
        "write not stored, nothing of it was acknowledged; retry it once the cause is fixed: I/O error on {path}: {source}"
    )]
    WriteNotStored {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The engine was closed.
    #[error("engine is closed")]
    Closed,
    /// A write that was being logged when a restore swapped in: the restore
    /// rolled it back with everything after the backup's point. Retry it.
    #[error("a restore rolled this write back while it was in flight; retry it")]
    RolledBack,
    /// A write whose lines were rejected; nothing of it was applied.
    #[error("write to {db} rejected: {} bad line(s), first: line {}: {}", errors.len(), errors.first().map_or(0, |e| e.line), errors.first().map_or("", |e| e.message.as_str()))]
    WriteRejected { db: String, errors: Vec<LineError> },
    /// An Arrow batch that cannot be written (schema or type conflict); nothing was applied.
    #[error("batch for {db}.{table} rejected: {reason}")]
    BatchRejected { db: String, table: String, reason: String },
    /// A write the write buffer cannot take within its memory limit
    /// (`--max-buffer-bytes`); nothing of it was applied or logged. When the
    /// write alone needs more than the limit it must be split (HTTP 413);
    /// otherwise the buffer is full while flushes catch up: retry (HTTP 503).
    #[error("{}", buffer_full_message(*request_bytes, *buffered_bytes, *limit_bytes))]
    BufferFull { request_bytes: usize, buffered_bytes: usize, limit_bytes: usize },
    /// A bad argument (precision, name, request).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A SQL statement could not be planned or run (the planner's message:
    /// bad syntax, an unknown table or column, a type error).
    #[error("query: {0}")]
    Query(String),
    /// A query stopped by a limit it cannot run within: more memory than
    /// one query may use, or longer than the query timeout. The same query
    /// fails again.
    #[error("query stopped: {0}")]
    QueryLimit(String),
    /// A query refused memory because the queries running at the same time
    /// hold what all queries share; it may succeed later.
    #[error("query refused for now: {0}")]
    QueryBusy(String),
    #[error("database {db} not found")]
    DatabaseNotFound { db: String },
    #[error("table {table} not found in database {db}")]
    TableNotFound { db: String, table: String },
    #[error("column {column} not found in {db}.{table}")]
    ColumnNotFound { db: String, table: String, column: String },
    /// A window asked for export that has no compacted data.
    #[error("window {window} of {db}.{table} has no compacted data")]
    WindowNotFound { db: String, table: String, window: String },
    /// Writing an export of segment file `path` failed (Parquet encoding or the output).
    #[error("export of {path} failed: {what}")]
    Export { path: PathBuf, what: String },
    /// Long work (a backup, a restore, a repository check) stopped because
    /// it was cancelled, by a user or by a shutdown.
    #[error("interrupted")]
    Interrupted,
    /// A backup request or the backup repository.
    #[error(transparent)]
    Backup(#[from] BackupError),
    /// A restore request or a running restore.
    #[error(transparent)]
    Restore(#[from] RestoreError),
    /// A remote repository: unreachable, refused, or holding something unexpected.
    #[cfg(feature = "remote")]
    #[error(transparent)]
    Remote(#[from] RemoteError),
    /// The WAL failed.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// An Arrow error while building results.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}

fn buffer_full_message(request: usize, buffered: usize, limit: usize) -> String {
    if request > limit {
        format!(
            "write refused: it needs about {request} bytes of write buffer, more than the limit of {limit} bytes \
             (--max-buffer-bytes); split it into smaller writes"
        )
    } else {
        format!(
            "write refused: the write buffer holds {buffered} bytes and this write needs about {request} more, \
             over the limit of {limit} bytes (--max-buffer-bytes), while flushes catch up; retry shortly"
        )
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches a path to an `io::Error`.
pub(crate) trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| Error::Io { path: path.into(), source })
    }
}
