//! Hot backup: a content-addressed repository of segment files, one manifest
//! per backup (the commit point, a full listing), backup jobs that run while
//! writes continue, cancellation, reachability garbage collection and verify.
//!
//! A backup is taken at one consistent point: the buffer is flushed and a
//! tree version is pinned before [`BackupService::start`] returns, so the
//! backup holds every write acknowledged before that. The pinned version
//! keeps its files on disk while the job links or copies them into the
//! repository; writes, flushes and compactions go on meanwhile.
//!
//! ```no_run
//! use quipu::backup::{BackupConfig, BackupRequest, BackupService};
//!
//! let engine = quipu::Engine::open("./quipu-data")?;
//! let backups = BackupService::open(engine.clone(), "./quipu-backups", BackupConfig::default())?;
//! let name = backups.start(BackupRequest::full())?;
//! let info = backups.wait(&name)?;
//! println!("{} {} files", info.status.as_str(), info.total_files);
//! # Ok::<(), quipu::Error>(())
//! ```

pub mod manifest;
pub mod repo;
pub mod v2_ids;
pub mod v2_manifest;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
pub use crate::restore::{OfflineRestore, RestoreError, RestoreInfo, RestoreVerify, restore_into};
use crate::{Engine, tree};
pub use manifest::{BackupType, Manifest, ManifestFile, ObjectRef, ParentRef, PlaceMode};
pub use repo::{CheckReport, JobRecord, Repository};

mod api;
pub(crate) mod error;
mod gc;
mod hold;
mod job;
mod listing;
mod verify;

pub use api::*;
pub use error::{BackupError, ObjectProblem};
pub use hold::Hold;
use job::*;
pub(crate) use job::{Counters, place_mode, placing_pool};

#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) running: BTreeMap<String, Arc<Job>>,
    pub(crate) restore: Option<Arc<crate::restore::RestoreJob>>,
    /// The newest restore id handed out, so ids sort by start even within a millisecond.
    pub(crate) last_restore_id: Option<ulid::Ulid>,
    /// Ended restores whose final record could not be written (its file
    /// still says in progress): answered from here, and written again
    /// when the next restore ends. After a restart the record is judged by
    /// the data folder instead ([`BackupService::recover_restores`]).
    pub(crate) unrecorded_restores: BTreeMap<String, RestoreInfo>,
    /// The same for backups: ended jobs whose failed or cancelled record
    /// could not be written (a full disk, an I/O error). Answered from here
    /// and written again at every later job end; after a restart,
    /// [`BackupService::recover`] marks the record on disk interrupted.
    pub(crate) unrecorded_backups: BTreeMap<String, JobRecord>,
    pub(crate) threads: Vec<JoinHandle<()>>,
    pub(crate) shutting_down: bool,
    /// Uses of the repository by remote pushes and pulls ([`Hold`]).
    pub(crate) holds: BTreeMap<u64, hold::Held>,
    pub(crate) next_hold: u64,
}

pub(crate) struct Inner {
    pub(crate) engine: Engine,
    pub(crate) repo: Repository,
    pub(crate) config: BackupConfig,
    pub(crate) mode: PlaceMode,
    pub(crate) owner: String,
    pub(crate) pool: rayon::ThreadPool,
    pub(crate) nonce: AtomicU64,
    pub(crate) unsynced: UnsyncedObjects,
    pub(crate) state: Mutex<State>,
    pub(crate) job_ended: Condvar,
    pub(crate) _lock: File,
}

/// Runs backups of one engine into one repository. Cheap to clone.
#[derive(Clone)]
pub struct BackupService {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for BackupService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupService").field("repo", &self.inner.repo.dir()).finish_non_exhaustive()
    }
}

pub(crate) fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(unix)]
fn same_filesystem(a: &Path, b: &Path) -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    Ok(std::fs::metadata(a)?.dev() == std::fs::metadata(b)?.dev())
}

#[cfg(not(unix))]
fn same_filesystem(_: &Path, _: &Path) -> std::io::Result<bool> {
    Ok(false)
}

impl BackupService {
    /// Opens (creating) the repository at `repo_dir` for `engine`'s backups.
    /// Takes the repository's lock; marks jobs a crash interrupted as failed
    /// and sweeps what they left.
    pub fn open(engine: Engine, repo_dir: impl AsRef<Path>, config: BackupConfig) -> Result<BackupService> {
        let repo_dir = repo_dir.as_ref();
        let now = engine.now_ns();
        let repo = Repository::open_or_create(repo_dir, engine.next_id(), &rfc3339(now))?;
        let lock_file = repo.lock()?;
        let mode = place_mode(config.mode, &repo, engine.dir())?;
        let pool = placing_pool(config.copy_threads, "quipu-backup", repo.dir())?;
        let owner = format!("{:032x}", engine.next_id());
        let service = BackupService {
            inner: Arc::new(Inner {
                engine,
                repo,
                config,
                mode,
                owner,
                pool,
                nonce: AtomicU64::new(1),
                unsynced: UnsyncedObjects::default(),
                state: Mutex::new(State::default()),
                job_ended: Condvar::new(),
                _lock: lock_file,
            }),
        };
        service.recover()?;
        Ok(service)
    }

    /// The repository.
    pub fn repository(&self) -> &Repository {
        &self.inner.repo
    }

    /// How this service places objects.
    pub fn mode(&self) -> PlaceMode {
        self.inner.mode
    }

    pub(crate) fn now(&self) -> String {
        rfc3339(self.inner.engine.now_ns())
    }

    /// Jobs whose record says in progress were running in a process that
    /// died (we hold the lock now): failed, reason interrupted. Then GC.
    fn recover(&self) -> Result<()> {
        let repo = &self.inner.repo;
        for mut record in repo.job_records()? {
            if record.status != BackupStatus::InProgress {
                continue;
            }
            let committed =
                repo.read_manifest(&record.name).ok().flatten().is_some_and(|(m, _)| m.created_at >= record.created_at);
            if committed {
                // The manifest made it; only the record's removal did not.
                repo.delete_job_record(&record.name)?;
                continue;
            }
            tracing::warn!(backup = %record.name, "backup was interrupted by a stop of its process");
            record.status = BackupStatus::Failed;
            record.completed_at = Some(self.now());
            record.error = Some("interrupted: the process running the backup stopped before it completed".into());
            repo.write_job_record(&record)?;
        }
        // Half-written manifests and records of a killed process: at open,
        // under the lock, nothing else can be writing them.
        for sub in [repo::MANIFESTS_DIR, repo::JOBS_DIR] {
            let dir = repo.dir().join(sub);
            if dir.is_dir() {
                crate::fs::remove_temp_files(&dir).map_err(|e| Error::Io { path: dir.clone(), source: e })?;
            }
        }
        self.recover_restores()?;
        self.collect_garbage()?;
        Ok(())
    }

    /// Cancels running backups and waits for their threads; new ones are
    /// refused. Their records say cancelled (reason: shutdown).
    pub fn shutdown(&self) {
        let (names, threads) = {
            let mut state = lock(&self.inner.state);
            state.shutting_down = true;
            if let Some(restore) = &state.restore {
                restore.cancel_for_shutdown();
            }
            (state.running.keys().cloned().collect::<Vec<_>>(), std::mem::take(&mut state.threads))
        };
        for name in names {
            let _ = self.cancel_with(&name, "cancelled: the server shut down");
        }
        for t in threads {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(validate_name("nightly-2026.11_23").is_ok());
        for bad in ["", ".hidden", "a/b", "..", "sp ace", &"x".repeat(129)] {
            assert!(matches!(validate_name(bad), Err(BackupError::InvalidName { .. })), "{bad:?}");
        }
    }

    #[test]
    fn generated_names_sort_by_time_and_are_valid() {
        let a = generated_name(1_700_000_000_000_000_000);
        let b = generated_name(1_700_000_000_001_000_000);
        assert_eq!(a, "20231114T221320.000Z");
        assert!(a < b);
        assert!(validate_name(&a).is_ok());
    }

    #[test]
    fn an_object_another_job_placed_is_synced_until_settled() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::Io { path: "tempdir".into(), source: e })?;
        let repo = Repository::open_or_create(dir.path(), 7, "2026-11-23T00:00:00.000Z")?;
        let unsynced = UnsyncedObjects::default();
        let bytes = b"catalog bytes";
        let object = ObjectRef::of_bytes(bytes);
        // Job A: not there yet, so it must sync; it places the object.
        assert!(unsynced.claim(&repo, &object));
        assert_eq!(repo.put_bytes(&object, bytes)?, repo::Placed::Added);
        // Job B finds it on disk before A synced: B must sync too.
        assert!(unsynced.claim(&repo, &object));
        unsynced.settled([object.blake3.as_str()]);
        // Once a sync after its placement settled it, finding it needs nothing.
        assert!(!unsynced.claim(&repo, &object));
        // A wrong-sized leftover under the name is not the object.
        let other = ObjectRef { blake3: object.blake3.clone(), size: object.size + 1 };
        assert!(unsynced.claim(&repo, &other));
        Ok(())
    }
}
