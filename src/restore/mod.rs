//! Restore: a rollback of the engine to a backup's point, in place and
//! without a restart, one at a time; and the offline build of a data folder
//! from a repository ([`restore_into`]).
//!
//! A restore stages every file of the backup's manifest into the live
//! segments folder under fresh ids (hard links in link mode, copies in copy
//! mode), verifies each against its blake3, opens each (header and footer
//! checksums, and the footer must agree with the manifest), decodes the
//! catalog, and only then asks the engine to swap the staged state in
//! ([`crate::Engine::swap_in`], crash safe through [`crate::swap`]). Until
//! the swap the staged files are no version's: a cancel or failure removes
//! them, a crash leaves them to the next open's sweep, and the live data is
//! never touched. Each phase is recorded in `restores/<id>.json` in the
//! repository, so status answers after completion and after a restart.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::backup::error::ObjectProblem;
use crate::backup::manifest::{Manifest, ManifestFile, ObjectRef, PlaceMode};
use crate::backup::repo::{self, Repository};
use crate::backup::{BackupError, BackupService, BackupStatus, Counters, ModeChoice, Progress, lock, rfc3339};
use crate::catalog::Catalog;
use crate::error::{Error, IoContext, Result};
use crate::segment::SegmentReader;
use crate::tree::{self, FileMeta, VersionRecord};

pub(crate) mod error;
pub use error::RestoreError;

const RESTORE_PHASES: [&str; 4] = ["staging", "rebuilding", "swapping", "done"];
const PHASE_STAGING: u8 = 0;
const PHASE_REBUILDING: u8 = 1;
const PHASE_SWAPPING: u8 = 2;
const PHASE_DONE: u8 = 3;

/// How much of each object a restore reads to verify it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestoreVerify {
    /// Copy mode hashes every byte on its way (the copy reads them anyway);
    /// link mode, which reads no bytes, checks each object's size and the
    /// segment's header and footer checksums, so its time grows with the
    /// number of files, not bytes. Data blocks carry their own checksums,
    /// checked whenever they are read.
    #[default]
    Auto,
    /// Hash every byte of every object against its name, in both modes.
    Full,
}

impl std::str::FromStr for RestoreVerify {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(RestoreVerify::Auto),
            "full" => Ok(RestoreVerify::Full),
            other => Err(format!("unknown verify level {other:?}; expected auto or full")),
        }
    }
}

/// One restore as the API lists it; also its record on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreInfo {
    pub restore_id: String,
    pub backup_name: String,
    pub status: BackupStatus,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    pub total_files: u64,
    pub total_size_bytes: u64,
    /// Extension: where a restore stands (also kept once it ended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    /// Extension: why a restore failed or was cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub mode: PlaceMode,
    pub verify: RestoreVerify,
}

#[derive(Debug)]
pub(super) struct RestoreJob {
    id: String,
    backup_name: String,
    created_at: String,
    mode: PlaceMode,
    verify: RestoreVerify,
    total_files: u64,
    total_size_bytes: u64,
    cancel: AtomicBool,
    counters: Counters,
    /// The objects it reads, for GC's mark phase.
    pub(super) objects: Vec<String>,
    /// Files staged so far, removed if it ends before the swap.
    staged: Mutex<Vec<PathBuf>>,
}

impl RestoreJob {
    /// Stops it before its swap, if it has not begun the swap.
    pub(super) fn cancel_for_shutdown(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }

    fn info(&self, status: BackupStatus, completed_at: Option<String>, error: Option<String>) -> RestoreInfo {
        RestoreInfo {
            restore_id: self.id.clone(),
            backup_name: self.backup_name.clone(),
            status,
            created_at: self.created_at.clone(),
            completed_at,
            total_files: self.total_files,
            total_size_bytes: self.total_size_bytes,
            progress: Some(self.counters.progress(&RESTORE_PHASES)),
            error,
            mode: self.mode,
            verify: self.verify,
        }
    }
}

/// Where one manifest file goes: a segment id and its path.
struct Target<'a> {
    file: &'a ManifestFile,
    id: u64,
    path: PathBuf,
}

impl BackupService {
    /// Starts restoring the completed backup `backup_name` and returns the
    /// restore's id (a ULID). One restore runs at a time.
    pub fn start_restore(&self, backup_name: &str, verify: RestoreVerify) -> Result<String> {
        if backup_name.is_empty() {
            return Err(BackupError::InvalidRequest("backup_name must not be empty".into()).into());
        }
        if crate::backup::validate_name(backup_name).is_err() {
            return Err(BackupError::NotFound { name: backup_name.into() }.into());
        }
        let repo = &self.inner.repo;
        let engine = &self.inner.engine;
        let now_ns = engine.now_ns();
        let ms = u64::try_from(now_ns / 1_000_000).unwrap_or(0);
        let (job, manifest) = {
            let mut state = lock(&self.inner.state);
            if state.shutting_down {
                return Err(BackupError::ShuttingDown.into());
            }
            if let Some(running) = &state.restore {
                return Err(RestoreError::Running { id: running.id.clone() }.into());
            }
            // Under the state lock: a delete of the backup and the GC after
            // it either come before (no such backup) or see this restore's
            // objects as in use.
            let (manifest, _) =
                repo.read_manifest(backup_name)?.ok_or_else(|| BackupError::NotFound { name: backup_name.into() })?;
            let supported = crate::segment::format::FORMAT_VERSION;
            if manifest.engine_format != supported {
                return Err(BackupError::InvalidRequest(format!(
                    "backup {backup_name} holds segment format {}; this build reads format {supported}",
                    manifest.engine_format
                ))
                .into());
            }
            let mut ulid = ulid::Ulid::from_parts(ms, engine.next_id());
            if let Some(last) = state.last_restore_id.filter(|last| ulid <= *last) {
                ulid = last.increment().unwrap_or(ulid);
            }
            state.last_restore_id = Some(ulid);
            let id = ulid.to_string();
            let job = Arc::new(RestoreJob {
                id: id.clone(),
                backup_name: backup_name.into(),
                created_at: rfc3339(now_ns),
                mode: self.inner.mode,
                verify,
                total_files: manifest.total_files,
                total_size_bytes: manifest.total_size_bytes,
                cancel: AtomicBool::new(false),
                counters: Counters::default(),
                objects: manifest.objects().map(|o| o.blake3).collect(),
                staged: Mutex::new(Vec::new()),
            });
            job.counters.files_total.store(manifest.files.len() as u64, Ordering::Relaxed);
            job.counters.bytes_total.store(manifest.total_size_bytes, Ordering::Relaxed);
            state.restore = Some(job.clone());
            (job, manifest)
        };
        let id = job.id.clone();
        if let Err(e) = repo.write_restore_record(&job.info(BackupStatus::InProgress, None, None)) {
            let mut state = lock(&self.inner.state);
            state.restore = None;
            // A failed folder fsync leaves the record in place, saying in
            // progress: answered as failed, and written so by the next end.
            if repo.read_restore_record(&id).ok().flatten().is_some() {
                let ended =
                    job.info(BackupStatus::Failed, Some(self.now()), Some(format!("{e}; the live data is unchanged")));
                state.unrecorded_restores.insert(id, ended);
            }
            return Err(e);
        }
        let service = self.clone();
        let for_thread = job.clone();
        let spawned = std::thread::Builder::new()
            .name("quipu-restore".into())
            .spawn(move || service.run_restore(&for_thread, &manifest));
        match spawned {
            Ok(handle) => {
                let mut state = lock(&self.inner.state);
                state.threads.retain(|t| !t.is_finished());
                state.threads.push(handle);
                Ok(id)
            }
            Err(e) => {
                let e = Error::Io { path: repo.dir().into(), source: e };
                self.end_restore(&job, BackupStatus::Failed, Some(e.to_string()));
                Err(e)
            }
        }
    }

    fn run_restore(&self, job: &RestoreJob, manifest: &Manifest) {
        match self.restore_and_swap(job, manifest) {
            Ok(()) => {
                job.counters.phase.store(PHASE_DONE, Ordering::Relaxed);
                tracing::info!(restore = %job.id, backup = %job.backup_name, "restore completed");
                self.end_restore(job, BackupStatus::Completed, None);
            }
            Err(e) => {
                let committed = self.committed(job);
                if !committed {
                    remove_staged(job);
                }
                if matches!(e, Error::Interrupted) && !committed {
                    let message = "cancelled; the live data is unchanged".to_string();
                    self.end_restore(job, BackupStatus::Cancelled, Some(message));
                    return;
                }
                tracing::error!(restore = %job.id, error = %e, "restore failed");
                let message = if committed {
                    // The next open finishes it and marks this record completed.
                    format!(
                        "{e}: the restore committed but could not be applied; the engine takes no more writes \
                         until it is reopened, which finishes the restore"
                    )
                } else {
                    format!("{e}; the live data is unchanged")
                };
                self.end_restore(job, BackupStatus::Failed, Some(message));
            }
        }
    }

    fn enter_phase(&self, job: &RestoreJob, phase: u8) {
        job.counters.phase.store(phase, Ordering::Relaxed);
        self.record_phase(job);
        if let Some(hook) = &self.inner.config.restore_hook {
            (hook.0)(&job.id, RESTORE_PHASES.get(usize::from(phase)).unwrap_or(&"done"));
        }
    }

    fn restore_and_swap(&self, job: &RestoreJob, manifest: &Manifest) -> Result<()> {
        let repo = &self.inner.repo;
        let engine = &self.inner.engine;
        self.enter_phase(job, PHASE_STAGING);
        let targets: Vec<Target<'_>> = manifest
            .files
            .iter()
            .map(|file| {
                let (id, path) = engine.allocate_segment();
                Target { file, id, path }
            })
            .collect();
        let staged = self.inner.pool.install(|| {
            targets
                .par_iter()
                .map(|t| {
                    lock_staged(job).push(t.path.clone());
                    stage(repo, manifest, t, job.mode, job.verify, &job.cancel, &job.counters)
                })
                .collect::<Result<Vec<_>>>()
        })?;
        let segments = engine.dir().join(tree::SEGMENTS_DIR);
        crate::fs::sync_dir(&segments).at(&segments)?;

        self.enter_phase(job, PHASE_REBUILDING);
        let catalog = read_catalog(repo, manifest)?;
        check_tables(&catalog, manifest)?;
        if job.cancel.load(Ordering::SeqCst) {
            return Err(Error::Interrupted);
        }
        {
            // Under the state lock, so a cancel either came before (and
            // stopped it) or finds it past the point of no return.
            let _state = lock(&self.inner.state);
            if job.cancel.load(Ordering::SeqCst) {
                return Err(Error::Interrupted);
            }
            job.counters.phase.store(PHASE_SWAPPING, Ordering::Relaxed);
        }
        self.enter_phase(job, PHASE_SWAPPING);
        engine.swap_in(&job.id, catalog, staged)
    }

    /// Whether the restore's swap committed: its record is in the data
    /// folder, or was applied. When that cannot be read, it may have.
    fn committed(&self, job: &RestoreJob) -> bool {
        if job.counters.phase.load(Ordering::Relaxed) < PHASE_SWAPPING {
            return false;
        }
        let dir = self.inner.engine.dir();
        let pending = crate::swap::pending(dir).map(|r| r.is_some_and(|r| r.restore_id == job.id));
        let applied = crate::swap::last_restore(dir).map(|id| id.as_deref() == Some(job.id.as_str()));
        !matches!((pending, applied), (Ok(false), Ok(false)))
    }

    fn record_phase(&self, job: &RestoreJob) {
        if let Err(e) = self.inner.repo.write_restore_record(&job.info(BackupStatus::InProgress, None, None)) {
            tracing::warn!(restore = %job.id, error = %e, "could not record a restore's phase");
        }
    }

    fn end_restore(&self, job: &RestoreJob, status: BackupStatus, error: Option<String>) {
        let record = job.info(status, Some(self.now()), error);
        // Earlier ends that could not be recorded, then this one; the
        // memory copies stay until their record is on disk.
        let earlier: Vec<RestoreInfo> = lock(&self.inner.state).unrecorded_restores.values().cloned().collect();
        let mut written = Vec::new();
        let mut failed = Vec::new();
        for record in earlier.into_iter().chain([record]) {
            match self.inner.repo.write_restore_record(&record) {
                Ok(()) => written.push(record.restore_id),
                Err(e) => {
                    tracing::error!(restore = %record.restore_id, error = %e, "could not record the end of a restore; its status is answered from memory until a restart");
                    failed.push(record);
                }
            }
        }
        let mut state = lock(&self.inner.state);
        for id in written {
            state.unrecorded_restores.remove(&id);
        }
        for record in failed {
            state.unrecorded_restores.insert(record.restore_id.clone(), record);
        }
        if state.restore.as_ref().is_some_and(|r| r.id == job.id) {
            state.restore = None;
        }
        drop(state);
        self.inner.job_ended.notify_all();
    }

    /// Restores whose record says in progress were running in a process
    /// that stopped: completed if the data folder had the restore applied
    /// (the engine finishes a committed one when it opens), failed otherwise.
    pub(super) fn recover_restores(&self) -> Result<()> {
        let repo = &self.inner.repo;
        let applied = self.inner.engine.last_restore()?;
        let records = repo.restore_records()?;
        lock(&self.inner.state).last_restore_id =
            records.iter().filter_map(|r| ulid::Ulid::from_string(&r.restore_id).ok()).max();
        for mut record in records {
            let is_applied = applied.as_deref() == Some(record.restore_id.as_str());
            if record.status == BackupStatus::Completed || (record.status != BackupStatus::InProgress && !is_applied) {
                continue;
            }
            record.completed_at = Some(self.now());
            if is_applied {
                tracing::info!(restore = %record.restore_id, "restore had swapped in before the process stopped");
                record.status = BackupStatus::Completed;
                record.error = None;
                if let Some(p) = &mut record.progress {
                    p.phase = "done".into();
                }
            } else {
                tracing::warn!(restore = %record.restore_id, "restore was interrupted before its swap");
                record.status = BackupStatus::Failed;
                record.error =
                    Some("interrupted: the process stopped before the swap; the data is as it was before".into());
            }
            repo.write_restore_record(&record)?;
        }
        Ok(())
    }

    /// Asks the running restore `id` to stop before its swap. Once this
    /// returns the swap will not happen: the restore ends `cancelled`
    /// within a file's next 8 MiB (see [`BackupService::wait_restore`]) and
    /// the live data is untouched. [`RestoreError::NotRunning`] when
    /// no restore of that id is running or it is already swapping in.
    pub fn cancel_restore(&self, id: &str) -> Result<()> {
        let state = lock(&self.inner.state);
        let job = state
            .restore
            .as_ref()
            .filter(|r| r.id == id && r.counters.phase.load(Ordering::SeqCst) < PHASE_SWAPPING)
            .ok_or_else(|| RestoreError::NotRunning { id: id.into() })?;
        job.cancel.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Waits until restore `id` is no longer running and returns it.
    pub fn wait_restore(&self, id: &str) -> Result<RestoreInfo> {
        let mut state = lock(&self.inner.state);
        while state.restore.as_ref().is_some_and(|r| r.id == id) {
            state = self.inner.job_ended.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        drop(state);
        self.restore_info(id)
    }

    /// One restore, running or ended.
    pub fn restore_info(&self, id: &str) -> Result<RestoreInfo> {
        let (running, unrecorded) = {
            let state = lock(&self.inner.state);
            (state.restore.clone(), state.unrecorded_restores.get(id).cloned())
        };
        if let Some(job) = running.filter(|r| r.id == id) {
            return Ok(job.info(BackupStatus::InProgress, None, None));
        }
        if let Some(info) = unrecorded {
            return Ok(info);
        }
        // Ids become file names: anything but a ULID is no restore's.
        if ulid::Ulid::from_string(id).is_err() {
            return Err(RestoreError::NotFound { id: id.into() }.into());
        }
        self.inner.repo.read_restore_record(id)?.ok_or_else(|| RestoreError::NotFound { id: id.into() }.into())
    }

    /// Every restore, newest first.
    pub fn list_restores(&self) -> Result<Vec<RestoreInfo>> {
        let (running, unrecorded) = {
            let state = lock(&self.inner.state);
            (state.restore.clone(), state.unrecorded_restores.clone())
        };
        let mut list = self.inner.repo.restore_records()?;
        list.retain(|r| !unrecorded.contains_key(&r.restore_id));
        list.extend(unrecorded.into_values());
        if let Some(job) = running {
            list.retain(|r| r.restore_id != job.id);
            list.push(job.info(BackupStatus::InProgress, None, None));
        }
        // ULIDs sort by their start time.
        list.sort_by(|a, b| b.restore_id.cmp(&a.restore_id));
        Ok(list)
    }
}

fn lock_staged(job: &RestoreJob) -> std::sync::MutexGuard<'_, Vec<PathBuf>> {
    job.staged.lock().unwrap_or_else(|p| p.into_inner())
}

fn remove_staged(job: &RestoreJob) {
    for path in lock_staged(job).drain(..) {
        if let Err(e) = fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), error = %e, "could not remove a staged file; the next open removes it");
        }
    }
}

fn bad_object(manifest: &Manifest, problem: ObjectProblem) -> Error {
    RestoreError::BadObject { backup: manifest.name.clone(), problem }.into()
}

/// Places one file of the backup at its target, verifies it and opens it.
fn stage(
    repo: &Repository,
    manifest: &Manifest,
    t: &Target<'_>,
    mode: PlaceMode,
    verify: RestoreVerify,
    cancel: &AtomicBool,
    counters: &Counters,
) -> Result<(FileMeta, SegmentReader)> {
    if cancel.load(Ordering::Relaxed) {
        return Err(Error::Interrupted);
    }
    let file = t.file;
    let object = ObjectRef { blake3: file.blake3.clone(), size: file.size };
    let src = repo.object_path(&object.blake3);
    let found = match fs::metadata(&src) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(bad_object(manifest, ObjectProblem::Missing { blake3: object.blake3 }));
        }
        Err(e) => return Err(Error::Io { path: src, source: e }),
    };
    if found != object.size {
        return Err(bad_object(
            manifest,
            ObjectProblem::WrongSize { blake3: object.blake3, expected: object.size, found },
        ));
    }
    match mode {
        PlaceMode::Link => {
            crate::failpoint::check("restore-stage", "link").and_then(|()| fs::hard_link(&src, &t.path)).at(&t.path)?;
            if verify == RestoreVerify::Full {
                let actual = repo::hash_file(&t.path).at(&t.path)?;
                if actual != object.blake3 {
                    return Err(bad_object(manifest, ObjectProblem::Corrupt { blake3: object.blake3, actual }));
                }
            }
            counters.bytes_done.fetch_add(file.size, Ordering::Relaxed);
        }
        PlaceMode::Copy => {
            let on_bytes = |n: u64| {
                counters.bytes_done.fetch_add(n, Ordering::Relaxed);
            };
            let actual = repo::copy_file(&src, &t.path, &object, true, cancel, &on_bytes, "restore-stage")?;
            if let Some(actual) = actual.filter(|a| *a != object.blake3) {
                return Err(bad_object(manifest, ObjectProblem::Corrupt { blake3: object.blake3, actual }));
            }
        }
    }
    let reader = SegmentReader::open(&t.path)?;
    let meta = file_meta(t, &reader)?;
    counters.files_done.fetch_add(1, Ordering::Relaxed);
    Ok((meta, reader))
}

/// The staged file's entry in the restored version: the manifest's, checked
/// against the segment's own footer.
fn file_meta(t: &Target<'_>, reader: &SegmentReader) -> Result<FileMeta> {
    let f = t.file;
    let footer = reader.footer();
    let disagree = |what: String| Error::Corrupt { path: t.path.clone(), what };
    if reader.len() != f.size {
        return Err(disagree(format!("{} bytes, the manifest records {}", reader.len(), f.size)));
    }
    if (footer.db_id, footer.table_id) != (f.db_id, f.table_id) {
        return Err(disagree(format!(
            "holds table {}.{}, the manifest records {}.{}",
            footer.db_id, footer.table_id, f.db_id, f.table_id
        )));
    }
    if (footer.rows, footer.time_min, footer.time_max) != (f.rows, f.time_min_ns, f.time_max_ns) {
        return Err(disagree("rows or time range differ from the manifest".into()));
    }
    let blake3 = blake3::Hash::from_hex(&f.blake3)
        .map_err(|e| disagree(format!("manifest blake3 {:?}: {e}", f.blake3)))?
        .as_bytes()
        .to_owned();
    Ok(FileMeta {
        id: t.id,
        db_id: f.db_id,
        table_id: f.table_id,
        level: f.level,
        window_start_ns: f.window_start_ns,
        size: f.size,
        blake3,
        rows: f.rows,
        time_min: f.time_min_ns,
        time_max: f.time_max_ns,
    })
}

/// The backup's catalog, hashed against its name (it is small) and decoded.
fn read_catalog(repo: &Repository, manifest: &Manifest) -> Result<Catalog> {
    let object = &manifest.catalog;
    let path = repo.object_path(&object.blake3);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(bad_object(manifest, ObjectProblem::Missing { blake3: object.blake3.clone() }));
        }
        Err(e) => return Err(Error::Io { path, source: e }),
    };
    let actual = blake3::hash(&bytes).to_hex().to_string();
    if actual != object.blake3 {
        return Err(bad_object(manifest, ObjectProblem::Corrupt { blake3: object.blake3.clone(), actual }));
    }
    Catalog::decode(&path, &bytes)
}

/// Every file's table must be in the catalog, or the restored engine could
/// not read it.
fn check_tables(catalog: &Catalog, manifest: &Manifest) -> Result<()> {
    for f in &manifest.files {
        let known = catalog.database_by_id(f.db_id).and_then(|d| d.table_by_id(f.table_id)).is_some();
        if !known {
            return Err(Error::Corrupt {
                path: PathBuf::from(&f.path),
                what: format!("table {}.{} of backup {} is not in its catalog", f.db, f.table, manifest.name),
            });
        }
    }
    Ok(())
}

/// What [`restore_into`] built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineRestore {
    pub backup_name: String,
    pub files: u64,
    pub bytes: u64,
    pub mode: PlaceMode,
}

/// Refuses a target for [`restore_into`] that exists and holds something
/// ([`RestoreError::TargetNotEmpty`]): callers that fetch a backup first ask
/// before fetching.
pub fn check_restore_target(into: &Path) -> Result<()> {
    if into.exists() && fs::read_dir(into).at(into)?.next().is_some() {
        return Err(RestoreError::TargetNotEmpty { path: into.to_path_buf() }.into());
    }
    Ok(())
}

/// Builds a new data folder `into` from backup `backup_name` of the
/// repository at `repo_dir`, with no engine running: disaster recovery.
/// `into` must not exist or be empty. The folder is built beside `into` and
/// renamed into place when complete, so an interrupted run leaves nothing
/// at `into`. Takes the repository's lock (a server using it must stop).
pub fn restore_into(
    repo_dir: &Path,
    backup_name: &str,
    into: &Path,
    mode: ModeChoice,
    verify: RestoreVerify,
    on_bytes: &(dyn Fn(u64) + Sync),
) -> Result<OfflineRestore> {
    let repo = Repository::open(repo_dir)?;
    let _lock = repo.lock()?;
    if crate::backup::validate_name(backup_name).is_err() {
        return Err(BackupError::NotFound { name: backup_name.into() }.into());
    }
    let (manifest, _) =
        repo.read_manifest(backup_name)?.ok_or_else(|| BackupError::NotFound { name: backup_name.into() })?;
    check_restore_target(into)?;
    let parent = match into.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    crate::fs::create_dir_durable(&parent).at(&parent)?;
    let name = into.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "data".into());
    let staging = parent.join(format!(".{name}.restoring-{}", std::process::id()));
    if staging.exists() {
        fs::remove_dir_all(&staging).at(&staging)?;
    }
    let result = build_folder(&repo, &manifest, &staging, mode, verify, on_bytes);
    let built = match result {
        Ok(built) => built,
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    if into.exists() {
        fs::remove_dir(into).at(into)?;
    }
    fs::rename(&staging, into).at(into)?;
    crate::fs::sync_dir(&parent).at(&parent)?;
    Ok(built)
}

fn build_folder(
    repo: &Repository,
    manifest: &Manifest,
    dir: &Path,
    mode: ModeChoice,
    verify: RestoreVerify,
    on_bytes: &(dyn Fn(u64) + Sync),
) -> Result<OfflineRestore> {
    let segments = dir.join(tree::SEGMENTS_DIR);
    crate::fs::create_dir_durable(&segments).at(&segments)?;
    let mode = crate::backup::place_mode(mode, repo, dir)?;
    let mut ids = std::collections::HashSet::new();
    if let Some(dup) = manifest.files.iter().find(|f| !ids.insert(f.file_id) || f.file_id == u64::MAX) {
        return Err(Error::Corrupt {
            path: repo.dir().join(repo::MANIFESTS_DIR).join(format!("{}.json", manifest.name)),
            what: format!("file id {} is listed twice or out of range", dup.file_id),
        });
    }
    let targets: Vec<Target<'_>> = manifest
        .files
        .iter()
        .map(|file| Target { file, id: file.file_id, path: segments.join(tree::segment_file_name(file.file_id)) })
        .collect();
    let counters = Counters::default();
    let never = AtomicBool::new(false);
    // As many threads as a live restore uses (BackupConfig::copy_threads'
    // default), not the machine's core count: staging waits on the disk.
    let pool = crate::backup::placing_pool(crate::backup::BackupConfig::default().copy_threads, "quipu-restore", dir)?;
    let staged: Vec<(FileMeta, SegmentReader)> = pool.install(|| {
        targets
            .par_iter()
            .map(|t| {
                let staged = stage(repo, manifest, t, mode, verify, &never, &counters)?;
                on_bytes(t.file.size);
                Ok(staged)
            })
            .collect::<Result<_>>()
    })?;
    crate::fs::sync_dir(&segments).at(&segments)?;
    let catalog = read_catalog(repo, manifest)?;
    check_tables(&catalog, manifest)?;
    let files: Vec<FileMeta> = staged.into_iter().map(|(m, _)| m).collect();
    let next_file_id = files.iter().map(|f| f.id.saturating_add(1)).max().unwrap_or(1).max(manifest.tree.next_file_id);
    let record = VersionRecord {
        number: manifest.tree.version.max(1),
        catalog_sequence: catalog.sequence,
        wal_replay_from: 0,
        next_file_id,
        files,
    };
    crate::data_dir::DataDir::new(dir).write_state(&catalog, &record)?;
    Ok(OfflineRestore {
        backup_name: manifest.name.clone(),
        files: manifest.files.len() as u64,
        bytes: manifest.total_size_bytes,
        mode,
    })
}
