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
pub mod restore;

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
use crate::{Engine, tree};
pub use manifest::{BackupType, Manifest, ManifestFile, ObjectRef, ParentRef, PlaceMode};
pub use repo::{CheckReport, JobRecord, ObjectProblem, Repository};
pub use restore::{OfflineRestore, RestoreInfo, RestoreVerify, restore_into};

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

/// Where a backup stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupStatus {
    InProgress,
    Completed,
    Failed,
    /// An extension of the reference's values: stopped by a cancel request.
    Cancelled,
}

impl BackupStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BackupStatus::InProgress => "in_progress",
            BackupStatus::Completed => "completed",
            BackupStatus::Failed => "failed",
            BackupStatus::Cancelled => "cancelled",
        }
    }
}

/// How objects get into the repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ModeChoice {
    /// Link when the repository is on the data folder's filesystem, else copy.
    #[default]
    Auto,
    Link,
    Copy,
}

impl std::str::FromStr for ModeChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(ModeChoice::Auto),
            "link" => Ok(ModeChoice::Link),
            "copy" => Ok(ModeChoice::Copy),
            other => Err(format!("unknown backup mode {other:?}; expected auto, link or copy")),
        }
    }
}

/// Settings of a [`BackupService`].
#[derive(Debug, Clone)]
pub struct BackupConfig {
    pub mode: ModeChoice,
    /// Files copied at once in copy mode. Bytes in flight stay bounded: each
    /// copy moves at most 8 MiB between two looks at its cancel flag, in the
    /// kernel where it can (copy_file_range).
    pub copy_threads: usize,
    /// Hash every byte while copying and fail on a mismatch with the hash
    /// recorded at the segment's birth (costs a read through user space).
    pub rehash_on_copy: bool,
    /// Called as a restore enters each phase (`staging`, `rebuilding`,
    /// `swapping`), on the restore's thread: instrumentation, and the way
    /// tests hold a restore at a phase.
    pub restore_hook: Option<RestoreHook>,
}

impl Default for BackupConfig {
    fn default() -> Self {
        BackupConfig { mode: ModeChoice::Auto, copy_threads: 4, rehash_on_copy: false, restore_hook: None }
    }
}

/// A function of the restore id and the phase it enters.
pub type RestorePhaseFn = dyn Fn(&str, &str) + Send + Sync;

/// See [`BackupConfig::restore_hook`].
#[derive(Clone)]
pub struct RestoreHook(pub Arc<RestorePhaseFn>);

impl std::fmt::Debug for RestoreHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RestoreHook")
    }
}

/// A request to start a backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupRequest {
    pub backup_type: BackupType,
    /// A generated, sortable UTC timestamp when `None`.
    pub name: Option<String>,
    /// Replace a completed backup of the same name (it stays valid until the
    /// new one completes).
    pub force: bool,
    /// For an incremental backup: the backup it follows (default: the newest
    /// completed one).
    pub parent: Option<String>,
}

impl BackupRequest {
    pub fn full() -> Self {
        BackupRequest { backup_type: BackupType::Full, name: None, force: false, parent: None }
    }

    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    #[must_use]
    pub fn force(mut self, force: bool) -> Self {
        self.force = force;
        self
    }

    /// An incremental backup after `parent` (`None`: the newest completed).
    #[must_use]
    pub fn incremental(mut self, parent: Option<String>) -> Self {
        self.backup_type = BackupType::Incremental;
        self.parent = parent;
        self
    }
}

/// A running job's progress (an extension of the reference's answer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub phase: String,
    pub files_done: u64,
    pub files_total: u64,
    pub bytes_done: u64,
    pub bytes_total: u64,
}

/// A later attempt under a completed backup's name that did not complete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub status: BackupStatus,
    pub created_at: String,
    pub error: Option<String>,
}

/// One backup as the API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupInfo {
    pub name: String,
    #[serde(rename = "type")]
    pub backup_type: BackupType,
    pub status: BackupStatus,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    pub total_files: u64,
    pub total_size_bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Bytes only this backup references: what deleting it would free.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    pub mode: PlaceMode,
    /// Objects (and their bytes) this backup added; the rest were present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub added_objects: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub added_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt: Option<Attempt>,
}

/// A problem object and the backups that use it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProblemReport {
    #[serde(flatten)]
    pub problem: ObjectProblem,
    pub backups: Vec<String>,
}

/// The outcome of [`BackupService::verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    pub backup_name: String,
    /// `ok` or `corrupt`.
    pub status: String,
    pub objects_checked: u64,
    pub bytes_checked: u64,
    pub problems: Vec<ProblemReport>,
}

/// A backup's consistent point: the pinned version, the catalog as stored,
/// and the manifest entries of the version's files.
struct Snapshot {
    version: Arc<tree::Version>,
    catalog_bytes: Vec<u8>,
    catalog_sequence: u64,
    files: Vec<ManifestFile>,
}

const PHASES: [&str; 4] = ["starting", "copying", "committing", "done"];

#[derive(Debug, Default)]
struct Counters {
    phase: AtomicU8,
    files_done: AtomicU64,
    files_total: AtomicU64,
    bytes_done: AtomicU64,
    bytes_total: AtomicU64,
    added_objects: AtomicU64,
    added_bytes: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> Progress {
        self.progress(&PHASES)
    }

    fn progress(&self, phases: &[&str]) -> Progress {
        Progress {
            phase: phases.get(usize::from(self.phase.load(Ordering::Relaxed))).unwrap_or(&"done").to_string(),
            files_done: self.files_done.load(Ordering::Relaxed),
            files_total: self.files_total.load(Ordering::Relaxed),
            bytes_done: self.bytes_done.load(Ordering::Relaxed),
            bytes_total: self.bytes_total.load(Ordering::Relaxed),
        }
    }
}

#[derive(Debug)]
struct Job {
    name: String,
    backup_type: BackupType,
    parent: Option<ParentRef>,
    created_at: String,
    mode: PlaceMode,
    cancel: AtomicBool,
    cancel_reason: Mutex<Option<String>>,
    counters: Counters,
    /// Everything the job will reference, for GC's mark phase.
    objects: Mutex<Vec<String>>,
}

#[derive(Debug, Default)]
struct State {
    running: BTreeMap<String, Arc<Job>>,
    restore: Option<Arc<restore::RestoreJob>>,
    /// The newest restore id handed out, so ids sort by start even within a millisecond.
    last_restore_id: Option<ulid::Ulid>,
    /// Ended restores whose final record could not be written (its file
    /// still says in progress): answered from here, and written again
    /// when the next restore ends. After a restart the record is judged by
    /// the data folder instead ([`BackupService::recover_restores`]).
    unrecorded_restores: BTreeMap<String, restore::RestoreInfo>,
    /// The same for backups: ended jobs whose failed or cancelled record
    /// could not be written (a full disk, an I/O error). Answered from here
    /// and written again at every later job end; after a restart,
    /// [`BackupService::recover`] marks the record on disk interrupted.
    unrecorded_backups: BTreeMap<String, JobRecord>,
    threads: Vec<JoinHandle<()>>,
    shutting_down: bool,
}

/// Objects this process placed whose shard folder may not have been fsynced
/// since. A job must make durable the folder entry of every object its
/// manifest references; an object that was already there needs nothing
/// unless some job of this process placed it and has not synced it yet (it
/// may still be running, or have failed before syncing). Objects from
/// before this process are either referenced by a committed manifest, and
/// so durable, or swept at open.
#[derive(Debug, Default)]
struct UnsyncedObjects(Mutex<HashSet<String>>);

impl UnsyncedObjects {
    fn set(&self) -> MutexGuard<'_, HashSet<String>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a job referencing `object` must sync its shard folder. An
    /// object about to be placed is registered first, so that another job
    /// seeing it on disk also sees it here until its entry is durable.
    fn claim(&self, repo: &Repository, object: &ObjectRef) -> bool {
        if repo.has_object(object) && !self.set().contains(&object.blake3) {
            return false;
        }
        self.set().insert(object.blake3.clone());
        true
    }

    /// After a sync that began once `objects` were on disk.
    fn settled<'a>(&self, objects: impl IntoIterator<Item = &'a str>) {
        let mut set = self.set();
        for object in objects {
            set.remove(object);
        }
    }
}

struct Inner {
    engine: Engine,
    repo: Repository,
    config: BackupConfig,
    mode: PlaceMode,
    owner: String,
    pool: rayon::ThreadPool,
    nonce: AtomicU64,
    unsynced: UnsyncedObjects,
    state: Mutex<State>,
    job_ended: Condvar,
    _lock: File,
}

/// Runs backups of one engine into one repository. Cheap to clone.
#[derive(Clone)]
pub struct BackupService {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for BackupService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupService").field("repo", &self.inner.repo.dir()).finish_non_exhaustive()
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// RFC 3339 with milliseconds, UTC.
pub fn rfc3339(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The name given to a backup started without one: its UTC start time,
/// sortable as text (`20261123T101530.123Z`).
pub fn generated_name(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns).format("%Y%m%dT%H%M%S%.3fZ").to_string()
}

/// Backup names become file names: 1 to 128 of `A-Z a-z 0-9 . _ -`, not
/// starting with a dot.
pub fn validate_name(name: &str) -> Result<(), BackupError> {
    let bad = |why: &str| Err(BackupError::InvalidName { name: name.into(), why: why.into() });
    if name.is_empty() || name.len() > 128 {
        return bad("must be 1 to 128 characters");
    }
    if name.starts_with('.') {
        return bad("must not start with a dot");
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
        return bad("may hold only letters, digits, '.', '_' and '-'");
    }
    Ok(())
}

/// How objects move between `repo` and the data folder `data` (its
/// segments folder, which must exist): `choice`, with `Auto` meaning link
/// on one filesystem and copy across two.
fn place_mode(choice: ModeChoice, repo: &Repository, data: &Path) -> Result<PlaceMode> {
    let objects = repo.dir().join(repo::OBJECTS_DIR);
    let segments = data.join(tree::SEGMENTS_DIR);
    let same = same_filesystem(&objects, &segments).map_err(|e| Error::Io { path: objects.clone(), source: e })?;
    match choice {
        ModeChoice::Copy => Ok(PlaceMode::Copy),
        ModeChoice::Auto if !same => Ok(PlaceMode::Copy),
        ModeChoice::Auto => Ok(PlaceMode::Link),
        ModeChoice::Link if same => Ok(PlaceMode::Link),
        ModeChoice::Link => Err(BackupError::CrossDevice { repo: repo.dir().into(), data: data.into() }.into()),
    }
}

/// The threads that place objects (copies wait on the disk, so more than
/// the cores), named `<name>-<i>`; `path` names a failure to start them.
fn placing_pool(threads: usize, name: &'static str, path: &Path) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .thread_name(move |i| format!("{name}-{i}"))
        .build()
        .map_err(|e| Error::Io { path: path.to_path_buf(), source: std::io::Error::other(e) })
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

    fn now(&self) -> String {
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

    /// Starts a backup and returns its name once the consistent point is
    /// taken (the buffer flushed, a version pinned); the copying goes on in
    /// the background.
    pub fn start(&self, request: BackupRequest) -> Result<String> {
        if let Some(name) = &request.name {
            validate_name(name)?;
        }
        if request.backup_type == BackupType::Full && request.parent.is_some() {
            return Err(BackupError::InvalidRequest("a full backup has no parent; use type incremental".into()).into());
        }
        let repo = &self.inner.repo;
        let parent = match request.backup_type {
            BackupType::Full => None,
            BackupType::Incremental => Some(self.resolve_parent(request.parent.as_deref())?),
        };
        let now_ns = self.inner.engine.now_ns();
        let job = {
            let mut state = lock(&self.inner.state);
            if state.shutting_down {
                return Err(BackupError::ShuttingDown.into());
            }
            let name = match request.name {
                Some(name) => {
                    if state.running.contains_key(&name) {
                        return Err(BackupError::Running { name }.into());
                    }
                    if !request.force && repo.read_manifest(&name)?.is_some() {
                        return Err(BackupError::Exists { name }.into());
                    }
                    name
                }
                None => {
                    let base = generated_name(now_ns);
                    let mut name = base.clone();
                    let mut n = 1;
                    while state.running.contains_key(&name) || repo.read_manifest(&name)?.is_some() {
                        name = format!("{base}-{n}");
                        n += 1;
                    }
                    name
                }
            };
            let job = Arc::new(Job {
                name: name.clone(),
                backup_type: request.backup_type,
                parent,
                created_at: rfc3339(now_ns),
                mode: self.inner.mode,
                cancel: AtomicBool::new(false),
                cancel_reason: Mutex::new(None),
                counters: Counters::default(),
                objects: Mutex::new(Vec::new()),
            });
            // A retry under the name of a job whose end was never recorded:
            // the new job's records replace that one's.
            state.unrecorded_backups.remove(&name);
            state.running.insert(name, job.clone());
            job
        };
        let record = self.record_of(&job, BackupStatus::InProgress, None);
        let snapshot = repo.write_job_record(&record).and_then(|()| self.consistent_point(&job));
        let snapshot = match snapshot {
            Ok(s) => s,
            Err(e) => {
                self.finish_failed(&job, &e);
                return Err(e);
            }
        };
        let service = self.clone();
        let job_for_thread = job.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("quipu-backup-{}", job.name))
            .spawn(move || service.run(job_for_thread, snapshot));
        match spawned {
            Ok(handle) => {
                let mut state = lock(&self.inner.state);
                state.threads.retain(|t| !t.is_finished());
                state.threads.push(handle);
                Ok(job.name.clone())
            }
            Err(e) => {
                let e = Error::Io { path: repo.dir().into(), source: e };
                self.finish_failed(&job, &e);
                Err(e)
            }
        }
    }

    fn resolve_parent(&self, parent: Option<&str>) -> Result<ParentRef> {
        let repo = &self.inner.repo;
        let found =
            match parent {
                Some(name) => {
                    validate_name(name)?;
                    repo.read_manifest(name)?.ok_or_else(|| {
                        BackupError::InvalidRequest(format!("parent backup {name} does not exist or has not completed"))
                    })?
                }
                None => repo.manifests()?.into_iter().max_by(|a, b| a.0.created_at.cmp(&b.0.created_at)).ok_or_else(
                    || BackupError::InvalidRequest("an incremental backup needs a completed backup to follow".into()),
                )?,
            };
        Ok(ParentRef { name: found.0.name, blake3: found.1 })
    }

    /// Flushes the buffer and pins a version: everything acknowledged before
    /// this call is in the pinned files, and the engine's snapshot pairs
    /// them with the catalog that knows every table they hold.
    fn consistent_point(&self, job: &Job) -> Result<Snapshot> {
        let engine = &self.inner.engine;
        engine.flush()?;
        let pinned = engine.snapshot();
        let (version, catalog) = (pinned.version().clone(), pinned.catalog().clone());
        let catalog_bytes = catalog.encode();
        let mut files = Vec::with_capacity(version.files.len());
        for f in &version.files {
            let m = &f.meta;
            let db = catalog.database_by_id(m.db_id);
            let table = db.and_then(|d| d.table_by_id(m.table_id));
            let (Some(db), Some(table)) = (db, table) else {
                return Err(Error::Corrupt {
                    path: f.path.clone(),
                    what: format!("table id {}.{} is not in the catalog", m.db_id, m.table_id),
                });
            };
            files.push(ManifestFile {
                path: m.relative_path().to_string_lossy().into_owned(),
                blake3: m.blake3_hex(),
                size: m.size,
                file_id: m.id,
                level: m.level,
                db: db.name.clone(),
                db_id: m.db_id,
                table: table.name.clone(),
                table_id: m.table_id,
                window_start_ns: m.window_start_ns,
                rows: m.rows,
                time_min_ns: m.time_min,
                time_max_ns: m.time_max,
            });
        }
        let catalog_hash = blake3::hash(&catalog_bytes).to_hex().to_string();
        {
            // Under the state lock, so a GC sees either none or all of them.
            let _state = lock(&self.inner.state);
            let mut objects = job.objects.lock().unwrap_or_else(|p| p.into_inner());
            objects.push(catalog_hash);
            objects.extend(files.iter().map(|f| f.blake3.clone()));
        }
        job.counters.files_total.store(files.len() as u64, Ordering::Relaxed);
        job.counters.bytes_total.store(files.iter().map(|f| f.size).sum(), Ordering::Relaxed);
        Ok(Snapshot { version, catalog_bytes, catalog_sequence: catalog.sequence, files })
    }

    fn run(&self, job: Arc<Job>, snapshot: Snapshot) {
        let result = self.copy_and_commit(&job, &snapshot);
        let files = snapshot.files.len();
        // Unpins the version: compaction may now delete the files it replaced.
        drop(snapshot);
        match result {
            Ok(()) => {
                let mut state = lock(&self.inner.state);
                state.running.remove(&job.name);
                drop(state);
                self.record_unrecorded_backups();
                self.inner.job_ended.notify_all();
                tracing::info!(backup = %job.name, files, "backup completed");
            }
            Err(e) => self.finish_failed(&job, &e),
        }
    }

    fn copy_and_commit(&self, job: &Job, snapshot: &Snapshot) -> Result<()> {
        let Snapshot { version, catalog_bytes, catalog_sequence, files } = snapshot;
        let repo = &self.inner.repo;
        let unsynced = &self.inner.unsynced;
        let counters = &job.counters;
        counters.phase.store(1, Ordering::Relaxed);
        let catalog = ObjectRef::of_bytes(catalog_bytes);
        let mut to_sync = Vec::new();
        if unsynced.claim(repo, &catalog) {
            to_sync.push(catalog.blake3.as_str());
            if repo.put_bytes(&catalog, catalog_bytes)? == repo::Placed::Added {
                counters.added_objects.fetch_add(1, Ordering::Relaxed);
                counters.added_bytes.fetch_add(catalog.size, Ordering::Relaxed);
            }
        }
        let sources: HashMap<u64, &Path> = version.files.iter().map(|f| (f.meta.id, f.path.as_path())).collect();
        let nonce = self.inner.nonce.fetch_add(1, Ordering::Relaxed);
        // Whether the file's object has a folder entry to sync.
        let place = |file: &ManifestFile| -> Result<bool> {
            if job.cancel.load(Ordering::Relaxed) {
                return Err(BackupError::Interrupted.into());
            }
            let object = ObjectRef { blake3: file.blake3.clone(), size: file.size };
            if !unsynced.claim(repo, &object) {
                counters.bytes_done.fetch_add(file.size, Ordering::Relaxed);
                counters.files_done.fetch_add(1, Ordering::Relaxed);
                return Ok(false);
            }
            let src = sources.get(&file.file_id).copied().ok_or_else(|| Error::Corrupt {
                path: PathBuf::from(&file.path),
                what: "not in the pinned version".into(),
            })?;
            let placed = match job.mode {
                PlaceMode::Link => {
                    let placed = repo.link_object(src, &object)?;
                    counters.bytes_done.fetch_add(file.size, Ordering::Relaxed);
                    placed
                }
                PlaceMode::Copy => {
                    let on_bytes = |n: u64| {
                        counters.bytes_done.fetch_add(n, Ordering::Relaxed);
                    };
                    repo.copy_object(src, &object, self.inner.config.rehash_on_copy, nonce, &job.cancel, &on_bytes)?
                }
            };
            if placed == repo::Placed::Added {
                counters.added_objects.fetch_add(1, Ordering::Relaxed);
                counters.added_bytes.fetch_add(file.size, Ordering::Relaxed);
            }
            counters.files_done.fetch_add(1, Ordering::Relaxed);
            Ok(true)
        };
        let pool = &self.inner.pool;
        let placed: Vec<bool> = pool.install(|| files.par_iter().map(place).collect::<Result<_>>())?;
        to_sync.extend(files.iter().zip(placed).filter(|(_, p)| *p).map(|(f, _)| f.blake3.as_str()));
        if !to_sync.is_empty() {
            pool.install(|| repo.sync_shards(to_sync.iter().copied()))?;
            unsynced.settled(to_sync.iter().copied());
        }
        if job.cancel.load(Ordering::Relaxed) {
            return Err(BackupError::Interrupted.into());
        }
        counters.phase.store(2, Ordering::Relaxed);
        let record = &version.record;
        let manifest = Manifest {
            format: manifest::MANIFEST_FORMAT,
            name: job.name.clone(),
            backup_type: job.backup_type,
            parent: job.parent.clone(),
            created_at: job.created_at.clone(),
            completed_at: self.now(),
            status: BackupStatus::Completed.as_str().into(),
            engine_format: crate::segment::format::FORMAT_VERSION,
            mode: job.mode,
            catalog: manifest::CatalogRef { blake3: catalog.blake3, size: catalog.size, sequence: *catalog_sequence },
            tree: manifest::TreeRef {
                version: record.number,
                next_file_id: record.next_file_id,
                catalog_sequence: record.catalog_sequence,
            },
            total_files: files.len() as u64,
            total_size_bytes: files.iter().map(|f| f.size).sum(),
            files: files.to_vec(),
            added_objects: counters.added_objects.load(Ordering::Relaxed),
            added_bytes: counters.added_bytes.load(Ordering::Relaxed),
        };
        if let Err(e) = repo.write_manifest(&manifest) {
            // Only a failed folder fsync leaves the manifest published, but
            // not durable: withdrawn, so that the backup is failed for
            // status, list and GC alike instead of completed now and
            // perhaps gone after a crash.
            let published = repo.read_manifest(&job.name).ok().flatten().is_some_and(|(m, _)| m == manifest);
            if published && let Err(removal) = repo.delete_manifest(&job.name) {
                tracing::error!(backup = %job.name, error = %removal, "could not withdraw the manifest of a failed backup");
            }
            return Err(e);
        }
        counters.phase.store(3, Ordering::Relaxed);
        // The manifest is the commit point: a failure from here on must not
        // turn a committed backup into a failed one.
        if let Err(e) = repo.delete_job_record(&job.name) {
            tracing::warn!(backup = %job.name, error = %e, "could not remove the job record of a completed backup");
        }
        Ok(())
    }

    /// The job's record with `status` (and `error`, which ends it).
    fn record_of(&self, job: &Job, status: BackupStatus, error: Option<String>) -> JobRecord {
        JobRecord {
            name: job.name.clone(),
            backup_type: job.backup_type,
            parent: job.parent.as_ref().map(|p| p.name.clone()),
            status,
            created_at: job.created_at.clone(),
            completed_at: error.is_some().then(|| self.now()),
            error,
            mode: job.mode,
            owner: self.inner.owner.clone(),
        }
    }

    fn finish_failed(&self, job: &Job, error: &Error) {
        let cancelled = matches!(error, Error::Backup(BackupError::Interrupted));
        let (status, message) = if cancelled {
            let reason = job.cancel_reason.lock().ok().and_then(|r| r.clone());
            (BackupStatus::Cancelled, reason.unwrap_or_else(|| "cancelled".into()))
        } else {
            tracing::error!(backup = %job.name, %error, "backup failed");
            (BackupStatus::Failed, error.to_string())
        };
        let record = self.record_of(job, status, Some(message));
        let recorded = self.inner.repo.write_job_record(&record);
        {
            // In one step with the job's end, so no listing reads the record
            // on disk (still in progress) without the memory copy over it.
            let mut state = lock(&self.inner.state);
            state.running.remove(&job.name);
            if let Err(e) = recorded {
                tracing::warn!(backup = %job.name, error = %e, "could not record the end of a backup; trying again after garbage collection");
                state.unrecorded_backups.insert(job.name.clone(), record);
            }
        }
        // Swept before anyone waiting looks, so a failed job is over, leftovers
        // and all, when `wait` returns. A full disk (the usual reason a backup
        // fails) may also have left no room for the record while the one on
        // disk still says in progress: the sweep makes room to write it again.
        let swept = self.collect_garbage();
        self.record_unrecorded_backups();
        self.inner.job_ended.notify_all();
        if let Err(e) = swept {
            tracing::warn!(error = %e, "garbage collection after a failed backup failed");
        }
    }

    /// Writes the records of ended backups that could not be written when
    /// they ended; what fails again stays answered from memory. Under the
    /// state lock, so a `delete` cannot interleave and see its record return.
    fn record_unrecorded_backups(&self) {
        let mut state = lock(&self.inner.state);
        state.unrecorded_backups.retain(|name, record| match self.inner.repo.write_job_record(record) {
            Ok(()) => false,
            Err(e) => {
                tracing::error!(backup = %name, error = %e, "could not record the end of a backup; its status is answered from memory until a restart");
                true
            }
        });
    }

    /// Removes every object that no manifest and no running job references.
    /// Never runs on a partial picture: an unreadable manifest stops it.
    pub fn collect_garbage(&self) -> Result<repo::Swept> {
        let state = lock(&self.inner.state);
        let mut keep: HashSet<String> = HashSet::new();
        for (manifest, _) in self.inner.repo.manifests()? {
            keep.extend(manifest.objects().map(|o| o.blake3));
        }
        for job in state.running.values() {
            keep.extend(job.objects.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned());
        }
        if let Some(restore) = &state.restore {
            keep.extend(restore.objects.iter().cloned());
        }
        let swept = self.inner.repo.sweep(&keep, state.running.is_empty())?;
        if swept.objects > 0 {
            tracing::info!(objects = swept.objects, bytes = swept.bytes, "swept unreferenced backup objects");
        }
        Ok(swept)
    }

    /// Asks a running backup to stop. It stops promptly (within a file's
    /// next 8 MiB), writes no manifest and ends `cancelled`; this waits up
    /// to ten seconds for that.
    pub fn cancel(&self, name: &str) -> Result<()> {
        self.cancel_with(name, "cancelled by request")?;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut state = lock(&self.inner.state);
        while state.running.contains_key(name) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            state = self.inner.job_ended.wait_timeout(state, left).unwrap_or_else(|p| p.into_inner()).0;
        }
        Ok(())
    }

    fn cancel_with(&self, name: &str, reason: &str) -> Result<()> {
        let state = lock(&self.inner.state);
        let job = state.running.get(name).ok_or_else(|| BackupError::NotRunning { name: name.into() })?;
        if let Ok(mut r) = job.cancel_reason.lock() {
            r.get_or_insert_with(|| reason.to_string());
        }
        job.cancel.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Waits until the named backup is no longer running and returns it.
    pub fn wait(&self, name: &str) -> Result<BackupInfo> {
        let mut state = lock(&self.inner.state);
        while state.running.contains_key(name) {
            state = self.inner.job_ended.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        drop(state);
        self.get(name)
    }

    /// Deletes a backup (its manifest, or the record of a failed or
    /// cancelled one), then collects garbage. Other backups are untouched.
    pub fn delete(&self, name: &str) -> Result<BackupType> {
        // Names become paths (`manifests/<name>.json`): one that is not a
        // backup name (`../x`) never reaches the file system; no backup has it.
        if validate_name(name).is_err() {
            return Err(BackupError::NotFound { name: name.into() }.into());
        }
        let repo = &self.inner.repo;
        let backup_type = {
            let mut state = lock(&self.inner.state);
            if state.running.contains_key(name) {
                return Err(BackupError::Running { name: name.into() }.into());
            }
            let manifest = match repo.read_manifest(name) {
                Ok(m) => m.map(|(m, _)| m.backup_type),
                // A manifest that no longer decodes can still be deleted.
                Err(Error::Corrupt { .. } | Error::UnsupportedVersion { .. }) => Some(BackupType::Full),
                Err(e) => return Err(e),
            };
            let record = repo.job_records()?.into_iter().find(|r| r.name == name).map(|r| r.backup_type);
            let unrecorded = state.unrecorded_backups.get(name).map(|r| r.backup_type);
            let Some(backup_type) = manifest.or(unrecorded).or(record) else {
                return Err(BackupError::NotFound { name: name.into() }.into());
            };
            repo.delete_manifest(name)?;
            repo.delete_job_record(name)?;
            state.unrecorded_backups.remove(name);
            backup_type
        };
        self.collect_garbage()?;
        Ok(backup_type)
    }

    /// One backup, running or finished.
    pub fn get(&self, name: &str) -> Result<BackupInfo> {
        self.list()?
            .into_iter()
            .find(|b| b.name == name)
            .ok_or_else(|| BackupError::NotFound { name: name.into() }.into())
    }

    /// Every backup: running, completed, failed and cancelled, oldest first.
    pub fn list(&self) -> Result<Vec<BackupInfo>> {
        let repo = &self.inner.repo;
        let (running, unrecorded) = {
            let state = lock(&self.inner.state);
            (state.running.values().cloned().collect::<Vec<Arc<Job>>>(), state.unrecorded_backups.clone())
        };
        let mut manifests = Vec::new();
        let mut out: BTreeMap<String, BackupInfo> = BTreeMap::new();
        for name in repo.manifest_names()? {
            match repo.read_manifest(&name) {
                Ok(Some((m, _))) => manifests.push(m),
                Ok(None) => {}
                Err(e) => {
                    let path = repo.dir().join(repo::MANIFESTS_DIR).join(format!("{name}.json"));
                    let modified = std::fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
                    out.insert(name.clone(), unreadable(&name, rfc3339(modified), &e));
                }
            }
        }
        // Bytes only one backup references: what deleting it frees.
        let mut unique: HashMap<&str, u64> = HashMap::new();
        let users = manifest::object_users(&manifests);
        for (object, names) in users.values() {
            if let [only] = names.as_slice() {
                *unique.entry(only.as_str()).or_default() += object.size;
            }
        }
        for m in &manifests {
            out.insert(m.name.clone(), from_manifest(m, unique.get(m.name.as_str()).copied().unwrap_or(0)));
        }
        let mut records = repo.job_records()?;
        records.retain(|r| !unrecorded.contains_key(&r.name));
        records.extend(unrecorded.into_values());
        for record in records {
            if running.iter().any(|j| j.name == record.name) {
                continue;
            }
            match out.get_mut(&record.name) {
                Some(info) if info.status == BackupStatus::Completed => {
                    if record.created_at > info.created_at {
                        info.last_attempt =
                            Some(Attempt { status: record.status, created_at: record.created_at, error: record.error });
                    }
                }
                _ => {
                    out.insert(record.name.clone(), from_record(record));
                }
            }
        }
        for job in running {
            let progress = job.counters.snapshot();
            out.insert(
                job.name.clone(),
                BackupInfo {
                    name: job.name.clone(),
                    backup_type: job.backup_type,
                    status: BackupStatus::InProgress,
                    created_at: job.created_at.clone(),
                    completed_at: None,
                    total_files: progress.files_total,
                    total_size_bytes: progress.bytes_total,
                    progress: Some(progress),
                    error: None,
                    unique_bytes: None,
                    parent: job.parent.as_ref().map(|p| p.name.clone()),
                    mode: job.mode,
                    added_objects: Some(job.counters.added_objects.load(Ordering::Relaxed)),
                    added_bytes: Some(job.counters.added_bytes.load(Ordering::Relaxed)),
                    last_attempt: None,
                },
            );
        }
        let mut list: Vec<BackupInfo> = out.into_values().collect();
        list.sort_by(|a, b| (&a.created_at, &a.name).cmp(&(&b.created_at, &b.name)));
        Ok(list)
    }

    /// Re-hashes every object of a backup (in parallel) and names each
    /// missing or corrupt one with every backup that uses it.
    pub fn verify(&self, name: &str) -> Result<VerifyReport> {
        if validate_name(name).is_err() {
            return Err(BackupError::NotFound { name: name.into() }.into());
        }
        if lock(&self.inner.state).running.contains_key(name) {
            return Err(BackupError::Running { name: name.into() }.into());
        }
        let repo = &self.inner.repo;
        let (manifest, _) = repo.read_manifest(name)?.ok_or_else(|| BackupError::NotFound { name: name.into() })?;
        let mut objects: Vec<ObjectRef> = manifest.objects().collect();
        objects.sort_by(|a, b| a.blake3.cmp(&b.blake3));
        objects.dedup_by(|a, b| a.blake3 == b.blake3);
        let problems = self.inner.pool.install(|| repo.verify_objects(&objects, true));
        let mut reports = Vec::with_capacity(problems.len());
        if !problems.is_empty() {
            // Unreadable manifests are `check`'s to report; here they name no one.
            let others: Vec<Manifest> = repo
                .manifest_names()?
                .iter()
                .filter_map(|n| repo.read_manifest(n).ok().flatten())
                .map(|(m, _)| m)
                .collect();
            let users = manifest::object_users(&others);
            for problem in problems {
                let backups = users.get(problem.blake3()).map(|(_, names)| names.clone()).unwrap_or_default();
                reports.push(ProblemReport { problem, backups });
            }
        }
        Ok(VerifyReport {
            backup_name: name.into(),
            status: if reports.is_empty() { "ok" } else { "corrupt" }.into(),
            objects_checked: objects.len() as u64,
            bytes_checked: objects.iter().map(|o| o.size).sum(),
            problems: reports,
        })
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

fn from_manifest(m: &Manifest, unique_bytes: u64) -> BackupInfo {
    BackupInfo {
        name: m.name.clone(),
        backup_type: m.backup_type,
        status: BackupStatus::Completed,
        created_at: m.created_at.clone(),
        completed_at: Some(m.completed_at.clone()),
        total_files: m.total_files,
        total_size_bytes: m.total_size_bytes,
        progress: None,
        error: None,
        unique_bytes: Some(unique_bytes),
        parent: m.parent.as_ref().map(|p| p.name.clone()),
        mode: m.mode,
        added_objects: Some(m.added_objects),
        added_bytes: Some(m.added_bytes),
        last_attempt: None,
    }
}

fn from_record(r: JobRecord) -> BackupInfo {
    BackupInfo {
        name: r.name,
        backup_type: r.backup_type,
        status: r.status,
        created_at: r.created_at,
        completed_at: r.completed_at,
        total_files: 0,
        total_size_bytes: 0,
        progress: None,
        error: r.error,
        unique_bytes: None,
        parent: r.parent,
        mode: r.mode,
        added_objects: None,
        added_bytes: None,
        last_attempt: None,
    }
}

/// A manifest that no longer decodes: listed as failed, dated by its file.
fn unreadable(name: &str, created_at: String, e: &Error) -> BackupInfo {
    BackupInfo {
        name: name.into(),
        backup_type: BackupType::Full,
        status: BackupStatus::Failed,
        created_at,
        completed_at: None,
        total_files: 0,
        total_size_bytes: 0,
        progress: None,
        error: Some(format!("unreadable manifest: {e}")),
        unique_bytes: None,
        parent: None,
        mode: PlaceMode::Copy,
        added_objects: None,
        added_bytes: None,
        last_attempt: None,
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
