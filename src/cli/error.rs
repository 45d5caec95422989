//! What stops a `quipu` command: [`CliError`].

use std::io;
#[cfg(feature = "server")]
use std::path::PathBuf;

use quipu::tsbs;

/// What stops a `quipu` command; printed after `error: `.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// The engine, a repository, an export or a restore.
    #[error(transparent)]
    Engine(#[from] quipu::Error),
    #[cfg(feature = "client")]
    #[error(transparent)]
    Client(#[from] quipu::client::ClientError),
    #[cfg(feature = "server")]
    #[error(transparent)]
    Server(#[from] quipu::server::ServerError),
    #[error(transparent)]
    Generator(#[from] tsbs::GenError),
    /// The backup repository `quipu serve` was given.
    #[cfg(feature = "server")]
    #[error("backup repository {}: {source}", dir.display())]
    Repository { dir: PathBuf, source: quipu::Error },
    /// A local file or stream.
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    /// Arguments that do not go together, or a value that does not parse.
    #[error("{0}")]
    Usage(String),
    /// The command ran and reports a failure: rejected lines, a failed
    /// backup or restore, a damaged repository.
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> CliError {
        CliError::Io { what: what.into(), source }
    }

    /// The kind of the I/O error that stopped the command, if one did.
    pub(crate) fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            CliError::Io { source, .. } | CliError::Generator(tsbs::GenError::Io { source, .. }) => Some(source.kind()),
            _ => None,
        }
    }
}
