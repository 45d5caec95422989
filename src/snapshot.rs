//! The consistent view of an engine's data: the catalog, the tree version
//! and the frozen write buffers (rows taken from the active buffer for a
//! flush that has not installed their files yet), as they were at one
//! moment, and the restore epoch they belong to.
//!
//! The engine holds the current [`Snapshot`] in one `Arc` and replaces it
//! whole, under one lock, at every catalog change, buffer freeze, flush or
//! compaction install and restore swap. A reader takes it with
//! [`crate::Engine::snapshot`] and sees the catalog that goes with the files
//! it lists: within an epoch the catalog only grows, so it knows every
//! column and table of the version's files and frozen rows; a restore
//! replaces catalog, version and buffers together and bumps the epoch.
//!
//! Only the active buffer is outside: it changes with every write. A reader
//! that needs it (a scan) reads it first and the snapshot after, and starts
//! again when the epoch moved in between (see `Engine::scan_iter`).

use std::sync::Arc;

use crate::buffer::Buffer;
use crate::catalog::Catalog;
use crate::tree::Version;

/// A write buffer frozen for a flush.
#[derive(Clone)]
pub(crate) struct Frozen {
    pub(crate) buffer: Arc<Buffer>,
    /// WAL files below this number hold only this buffer's (and older) writes.
    pub(crate) wal_next: u64,
}

/// One moment of an engine's data; see the module documentation. Holding
/// it pins the version's files on disk and the frozen buffers in memory.
#[derive(Clone)]
pub struct Snapshot {
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) version: Arc<Version>,
    /// Oldest first, as they are flushed.
    pub(crate) frozen: Vec<Frozen>,
    pub(crate) epoch: u64,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("catalog_sequence", &self.catalog.sequence)
            .field("version", &self.version.record.number)
            .field("frozen_buffers", &self.frozen.len())
            .field("epoch", &self.epoch)
            .finish()
    }
}

impl Snapshot {
    pub(crate) fn new(catalog: Catalog, version: Arc<Version>) -> Snapshot {
        Snapshot { catalog: Arc::new(catalog), version, frozen: Vec::new(), epoch: 0 }
    }

    /// The catalog: every database, table and column the version's files
    /// and the frozen rows use.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// The tree version: the live segment files, pinned while this is held.
    pub fn version(&self) -> &Arc<Version> {
        &self.version
    }

    /// How many restores were swapped in since the engine opened.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The frozen buffers, oldest first.
    pub(crate) fn frozen_buffers(&self) -> impl Iterator<Item = &Arc<Buffer>> {
        self.frozen.iter().map(|f| &f.buffer)
    }

    /// Rows and approximate bytes of the frozen buffers.
    pub(crate) fn frozen_usage(&self) -> (usize, usize) {
        self.frozen_buffers().fold((0, 0), |(rows, bytes), b| (rows + b.rows(), bytes + b.bytes()))
    }
}

/// What installed a new version of an engine's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InstallCause {
    /// The engine opened: the version found on disk.
    Open,
    /// A flush added files of the write buffer.
    Flush,
    /// A compaction replaced files by their 24h windows.
    Compaction,
    /// A restore replaced everything.
    Restore,
}

/// What an [`InstallHook`] is told.
pub struct Installed<'a> {
    /// The engine's snapshot once the version was installed.
    pub snapshot: &'a Arc<Snapshot>,
    pub cause: InstallCause,
    /// Now, by the engine's clock.
    pub now_ns: i64,
    pub(crate) stopping: &'a dyn Fn() -> bool,
}

impl Installed<'_> {
    /// True once the engine is closing: long work in a hook should stop.
    pub fn stopping(&self) -> bool {
        (self.stopping)()
    }
}

/// Told about every version an engine installs (given to
/// [`crate::EngineBuilder::on_install`]): once at open, then after each
/// flush, compaction and restore, on the thread that did it, once the
/// engine's locks are released. What derives data from the segment files
/// (the export cache) keeps up with them this way instead of the engine
/// knowing it. A hook may read from the engine; a slow one delays the next
/// flush or compaction of that thread.
pub trait InstallHook: Send + Sync {
    fn installed(&self, event: &Installed<'_>);
}
