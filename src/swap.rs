//! The commit record of a restore's swap: `RESTORE` in the data folder, and
//! finishing it. A restore replaces three things that live in different
//! files (the catalog snapshot, the tree version that CURRENT points at and,
//! through the version, where WAL replay starts); no single rename covers
//! them, so the swap is a redo record. Writing `RESTORE` is the commit point;
//! applying it writes the catalog snapshot, the version and CURRENT, notes
//! the restore in `LAST_RESTORE` and removes `RESTORE`. Every step is safe
//! to repeat, and [`finish_pending`] repeats them when a data folder is
//! opened with a `RESTORE` in it, so a crash at any point leaves either the
//! old state (no `RESTORE` yet) or the restored one, never a mix.
//!
//! `RESTORE` layout: envelope `QRST` version 1 around the postcard encoding
//! of [`SwapRecord`]. `LAST_RESTORE`: envelope `QLRS` version 1 around the
//! restore id as UTF-8.

use std::fs;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::data_dir::DataDir;
use crate::envelope;
use crate::error::{Error, IoContext, Result};
use crate::tree::{self, VersionRecord};

/// The commit record in the data folder.
pub const SWAP_FILE: &str = "RESTORE";
/// The id of the last restore applied to the data folder.
pub const LAST_RESTORE_FILE: &str = "LAST_RESTORE";

const SWAP_MAGIC: [u8; 4] = *b"QRST";
const LAST_MAGIC: [u8; 4] = *b"QLRS";
const FORMAT_VERSION: u16 = 1;

/// Everything a restore changes, decided before the commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwapRecord {
    pub restore_id: String,
    /// The catalog snapshot to install, encoded (its sequence is above every
    /// snapshot the data folder held when the record was written).
    pub catalog: Vec<u8>,
    /// The version to install: the restored files, and a WAL replay start
    /// past every WAL file that held data the restore rolls back.
    pub version: VersionRecord,
}

impl SwapRecord {
    pub fn encode(&self) -> Result<Vec<u8>> {
        let body =
            postcard::to_allocvec(self).map_err(|e| Error::InvalidArgument(format!("restore record encoding: {e}")))?;
        Ok(envelope::seal(SWAP_MAGIC, FORMAT_VERSION, &body))
    }

    pub fn decode(path: &Path, bytes: &[u8]) -> Result<SwapRecord> {
        let body = envelope::open(path, SWAP_MAGIC, FORMAT_VERSION, bytes)?;
        postcard::from_bytes(body)
            .map_err(|e| Error::Corrupt { path: path.to_path_buf(), what: format!("undecodable restore record: {e}") })
    }
}

/// Writes the commit record durably: from here on the restore has happened.
pub fn commit(dir: &Path, record: &SwapRecord) -> Result<()> {
    let path = dir.join(SWAP_FILE);
    crate::fs::atomic_write(&path, &record.encode()?).at(&path)
}

/// Applies a committed record to the files of data folder `dir`: the
/// catalog snapshot and the version with CURRENT, each unless the folder
/// already holds exactly it, then `LAST_RESTORE`, then removes the record.
/// A folder whose CURRENT is past the record's version went on after the
/// record was applied (the record's removal is all that failed): it is
/// left as it is.
pub fn apply(dir: &Path, record: &SwapRecord) -> Result<()> {
    let current = tree::read_current(dir)?;
    if current.number <= record.version.number {
        let paths = DataDir::new(dir);
        let catalog_path = paths.catalog_dir().join(format!("{:020}.cat", record.version.catalog_sequence));
        let catalog = Catalog::decode(&catalog_path, &record.catalog)?;
        paths.write_state(&catalog, &record.version)?;
    }
    let last = dir.join(LAST_RESTORE_FILE);
    crate::fs::atomic_write(&last, &envelope::seal(LAST_MAGIC, FORMAT_VERSION, record.restore_id.as_bytes()))
        .at(&last)?;
    let path = dir.join(SWAP_FILE);
    fs::remove_file(&path).at(&path)?;
    crate::fs::sync_dir(dir).at(dir)
}

/// The commit record in data folder `dir`, if there is one.
pub fn pending(dir: &Path) -> Result<Option<SwapRecord>> {
    let path = dir.join(SWAP_FILE);
    match fs::read(&path) {
        Ok(bytes) => SwapRecord::decode(&path, &bytes).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Io { path, source: e }),
    }
}

/// Finishes a restore that committed before its process stopped. Called
/// when a data folder is opened, before anything else reads it.
pub fn finish_pending(dir: &Path) -> Result<Option<String>> {
    let Some(record) = pending(dir)? else { return Ok(None) };
    tracing::info!(restore = %record.restore_id, "finishing a restore committed before the last stop");
    apply(dir, &record)?;
    Ok(Some(record.restore_id))
}

/// The id of the last restore applied to data folder `dir`.
pub fn last_restore(dir: &Path) -> Result<Option<String>> {
    let path = dir.join(LAST_RESTORE_FILE);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::Io { path, source: e }),
    };
    let body = envelope::open(&path, LAST_MAGIC, FORMAT_VERSION, &bytes)?;
    String::from_utf8(body.to_vec())
        .map(Some)
        .map_err(|_| Error::Corrupt { path, what: "restore id is not UTF-8".into() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn records_round_trip(id in "[0-9A-Z]{26}", catalog in proptest::collection::vec(any::<u8>(), 0..64), number in any::<u64>(), wal in any::<u64>()) {
            let record = SwapRecord {
                restore_id: id,
                catalog,
                version: VersionRecord { number, wal_replay_from: wal, ..VersionRecord::default() },
            };
            let bytes = record.encode().unwrap();
            prop_assert_eq!(SwapRecord::decode(Path::new("RESTORE"), &bytes).unwrap(), record);
        }

        #[test]
        fn damaged_records_are_errors_not_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200), flip in any::<usize>()) {
            let _ = SwapRecord::decode(Path::new("RESTORE"), &bytes);
            let record = SwapRecord { restore_id: "r".into(), catalog: vec![1, 2, 3], version: VersionRecord::default() };
            let mut good = record.encode().unwrap();
            let at = flip % good.len();
            good[at] ^= 0x40;
            prop_assert!(SwapRecord::decode(Path::new("RESTORE"), &good).is_err());
        }
    }
}
