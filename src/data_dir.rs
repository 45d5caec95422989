//! A data folder: the paths of what the engine keeps in it, and the one way
//! to write a folder's state, a catalog and the version record that goes
//! with it, used by the restore swap (redone at open) and by the offline
//! restore that builds a new folder.
//!
//! ```text
//! LOCK                 advisory lock held while open
//! CURRENT              pointer to the current tree version
//! catalog/<seq>.cat    catalog snapshots
//! catalog/<seq>.log    catalog log: changes since snapshot <seq>
//! wal/<n>.wal          write-ahead log files
//! versions/<n>.ver     tree versions
//! segments/<id>.seg    segment files
//! RESTORE              a restore's commit record, while it is applied (see [`crate::swap`])
//! LAST_RESTORE         the id of the last restore applied
//! export/              the export cache (derived; see [`crate::export::cache`])
//! server/              the server's admin token hash
//! ```
//!
//! The names of the tree's files are the tree's ([`crate::tree`]), of the
//! restore records the swap's; this module puts them together.

use std::path::{Path, PathBuf};

use crate::catalog::{Catalog, CatalogStore};
use crate::error::{IoContext, Result};
use crate::tree::{self, VersionRecord};

/// The lock file in the data folder.
pub const LOCK_FILE: &str = "LOCK";
/// The WAL folder in the data folder.
pub const WAL_DIR: &str = "wal";
/// The catalog folder in the data folder.
pub const CATALOG_DIR: &str = "catalog";

/// The paths of one data folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> DataDir {
        DataDir { root: root.into() }
    }

    /// The folder itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn lock_file(&self) -> PathBuf {
        self.root.join(LOCK_FILE)
    }

    pub fn catalog_dir(&self) -> PathBuf {
        self.root.join(CATALOG_DIR)
    }

    pub fn wal_dir(&self) -> PathBuf {
        self.root.join(WAL_DIR)
    }

    pub fn segments_dir(&self) -> PathBuf {
        self.root.join(tree::SEGMENTS_DIR)
    }

    pub fn versions_dir(&self) -> PathBuf {
        self.root.join(tree::VERSIONS_DIR)
    }

    /// The restore commit record (present only while a swap is applied).
    pub fn swap_record(&self) -> PathBuf {
        self.root.join(crate::swap::SWAP_FILE)
    }

    /// Writes the folder's state: `catalog` as a catalog snapshot, unless
    /// the newest one on disk is already it (or newer), then `record` as
    /// the current version, unless it already is. Each step is atomic and
    /// the whole is idempotent, so a swap interrupted at any point is
    /// finished by doing it again. `record.catalog_sequence` names the
    /// catalog's sequence.
    pub(crate) fn write_state(&self, catalog: &Catalog, record: &VersionRecord) -> Result<()> {
        let store = CatalogStore::open(self.catalog_dir())?;
        let latest = store.load_latest()?;
        // Equal sequence but other content: a snapshot written by a process
        // that did not know about this state (a swap's redo). This one wins.
        if latest.sequence < catalog.sequence || (latest.sequence == catalog.sequence && latest != *catalog) {
            store.checkpoint(catalog)?;
        }
        let versions = self.versions_dir();
        crate::fs::create_dir_durable(&versions).at(&versions)?;
        if tree::read_current(&self.root)? != *record {
            tree::write_current(&self.root, record)?;
        }
        Ok(())
    }
}
