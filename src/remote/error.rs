//! The vocabulary of remote-repository failures: [`RemoteError`]. It
//! depends on nothing of quipu beyond the backup vocabulary, so the crate's
//! root error carries it from below.

use crate::backup::error::ObjectProblem;

/// What can go wrong with a remote repository. Every variant but
/// `BadObject` (whose caller named the remote) names the remote by its URL,
/// credentials never included.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    /// The remote's address cannot be used.
    #[error("remote {url}: {why}")]
    InvalidUrl { url: String, why: String },
    /// The object store answered an error (network, credentials, a missing
    /// bucket, a throttled request): its message, which names the object.
    #[error("remote {url}: {what}")]
    Store { url: String, what: String },
    /// The remote holds something that is not a quipu repository, or one of
    /// a format this build cannot read.
    #[error("remote {url} is not a quipu repository: {why}")]
    NotARepository { url: String, why: String },
    /// The remote accepted a second create of the same object: it ignores
    /// conditional puts (`If-None-Match: *`), so the manifest cannot be the
    /// commit point there.
    #[error(
        "remote {url} ignores conditional creates (If-None-Match: *): a manifest written there could silently \
         replace another push's; refused. Use a store that honours them, or accept the risk explicitly \
         (--accept-unconditional-remote)"
    )]
    NoConditionalPut { url: String },
    /// The remote holds a different backup under this name.
    #[error("remote {url} already holds a different backup named {name}")]
    ManifestExists { url: String, name: String },
    #[error("remote {url} has no backup named {name}")]
    NotFound { url: String, name: String },
    /// An object of a remote backup is missing or damaged (found by a pull,
    /// which then installs nothing).
    #[error("remote backup {backup}: {problem}")]
    BadObject { backup: String, problem: ObjectProblem },
    /// No push or pull job has this id.
    #[error("no transfer {id}")]
    TransferNotFound { id: String },
    /// The job has ended: nothing to cancel.
    #[error("transfer {id} has already ended ({status})")]
    TransferEnded { id: String, status: String },
    /// As many pushes and pulls run as the server allows at once.
    #[error("{limit} transfers are running already; try again when one has ended")]
    TooManyTransfers { limit: usize },
}
