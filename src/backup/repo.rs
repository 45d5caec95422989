//! The repository on disk: its layout, objects named by their blake3,
//! manifests, job records and the lock. Nothing here knows about the engine
//! or about running jobs; [`super::BackupService`] drives it.
//!
//! ```text
//! <repo>/QUIPU-REPO             format version, repository id (JSON)
//! <repo>/objects/ab/abcdef...   immutable, named by the blake3 of the content
//! <repo>/manifests/<name>.json  one per completed backup, written last
//! <repo>/jobs/<name>.json       a running, failed or cancelled backup
//! <repo>/lock                   held exclusively by the process that runs jobs
//! ```

use std::collections::{BTreeSet, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::error::{BackupError, ObjectProblem};
use super::manifest::{self, Manifest, ObjectRef};
use crate::error::{Error, IoContext, Result};
use crate::failpoint;

/// The file that marks a folder as a repository.
pub const REPO_FILE: &str = "QUIPU-REPO";
pub const OBJECTS_DIR: &str = "objects";
pub const MANIFESTS_DIR: &str = "manifests";
pub const JOBS_DIR: &str = "jobs";
pub const RESTORES_DIR: &str = "restores";
pub const LOCK_FILE: &str = "lock";
/// The repository layout this build writes and reads.
pub const REPO_FORMAT: u16 = 1;

/// Bytes copied between two looks at the cancel flag.
const COPY_CHUNK: u64 = 8 << 20;

/// The content of `QUIPU-REPO`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoInfo {
    pub format: u16,
    pub repo_id: String,
    pub created_at: String,
}

/// Why bytes are not a `QUIPU-REPO` this build reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepoInfoProblem {
    /// Not the JSON of a repository marker.
    Malformed(String),
    /// A marker of another format version.
    Format(u16),
}

impl RepoInfo {
    /// The marker of a new repository.
    pub fn new(repo_id: u128, created_at: &str) -> RepoInfo {
        RepoInfo { format: REPO_FORMAT, repo_id: format!("{repo_id:032x}"), created_at: created_at.into() }
    }

    pub fn encode(&self) -> Vec<u8> {
        // A struct of strings and a number always serializes.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Reads a marker, its format version first (a later format may have
    /// other fields). Local repositories and remote ones read it the same way.
    pub fn decode(bytes: &[u8]) -> Result<RepoInfo, RepoInfoProblem> {
        #[derive(Deserialize)]
        struct FormatOnly {
            format: u16,
        }
        let malformed = |e: serde_json::Error| RepoInfoProblem::Malformed(format!("repository info: {e}"));
        let format: FormatOnly = serde_json::from_slice(bytes).map_err(malformed)?;
        if format.format != REPO_FORMAT {
            return Err(RepoInfoProblem::Format(format.format));
        }
        serde_json::from_slice(bytes).map_err(malformed)
    }
}

/// Whether placing an object added it or found it present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    Added,
    Present,
}

/// The outcome of [`Repository::check`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckReport {
    pub manifests: usize,
    /// Manifests that cannot be read, with the reason.
    pub bad_manifests: Vec<(String, String)>,
    pub objects_checked: usize,
    pub bytes_checked: u64,
    /// Each problem object with the backups that use it.
    pub problems: Vec<(ObjectProblem, Vec<String>)>,
    /// Objects no manifest references (swept by the next GC).
    pub unreferenced_objects: usize,
}

impl CheckReport {
    pub fn is_clean(&self) -> bool {
        self.bad_manifests.is_empty() && self.problems.is_empty()
    }
}

/// What a sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    pub objects: u64,
    pub bytes: u64,
}

/// An open repository.
#[derive(Debug, Clone)]
pub struct Repository {
    dir: PathBuf,
    info: RepoInfo,
}

impl Repository {
    /// Opens the repository in `dir`, creating it when `dir` is missing or
    /// empty. A non-empty folder without `QUIPU-REPO` is refused, so a typo
    /// never scatters objects into someone's files; one that holds only
    /// what an interrupted creation leaves (the repository's empty folders,
    /// the marker's temp file) is a creation to finish.
    pub fn open_or_create(dir: &Path, repo_id: u128, created_at: &str) -> Result<Repository> {
        let marker = dir.join(REPO_FILE);
        if !marker.exists() {
            let empty = match fs::read_dir(dir) {
                Ok(entries) => holds_only_an_unfinished_creation(dir, entries)?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => true,
                Err(e) => return Err(Error::Io { path: dir.to_path_buf(), source: e }),
            };
            if !empty {
                return Err(BackupError::NotARepository {
                    path: dir.to_path_buf(),
                    why: format!("it is not empty and has no {REPO_FILE}"),
                }
                .into());
            }
            crate::fs::create_dir_durable(dir).at(dir)?;
            for sub in [OBJECTS_DIR, MANIFESTS_DIR, JOBS_DIR] {
                let path = dir.join(sub);
                crate::fs::create_dir_durable(&path).at(&path)?;
            }
            let bytes = RepoInfo::new(repo_id, created_at).encode();
            // Written last: a folder with QUIPU-REPO has all its folders.
            crate::fs::atomic_write(&marker, &bytes).at(&marker)?;
        }
        Repository::open(dir)
    }

    /// Opens an existing repository.
    pub fn open(dir: &Path) -> Result<Repository> {
        let marker = dir.join(REPO_FILE);
        let bytes = match fs::read(&marker) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(
                    BackupError::NotARepository { path: dir.to_path_buf(), why: format!("no {REPO_FILE}") }.into()
                );
            }
            Err(e) => return Err(Error::Io { path: marker, source: e }),
        };
        let info = RepoInfo::decode(&bytes).map_err(|problem| match problem {
            RepoInfoProblem::Malformed(what) => Error::Corrupt { path: marker.clone(), what },
            RepoInfoProblem::Format(found) => {
                Error::UnsupportedVersion { path: marker.clone(), found, supported: REPO_FORMAT }
            }
        })?;
        // `jobs/` may be missing (an empty folder does not survive every
        // copy, git included); it is made again when a job starts.
        for sub in [OBJECTS_DIR, MANIFESTS_DIR] {
            let path = dir.join(sub);
            if !path.is_dir() {
                return Err(Error::Corrupt { path, what: "repository folder is missing".into() });
            }
        }
        Ok(Repository { dir: dir.to_path_buf(), info })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn info(&self) -> &RepoInfo {
        &self.info
    }

    /// Takes the repository's lock for this process: one process runs jobs
    /// and collects garbage at a time. The lock lasts as long as the file.
    pub fn lock(&self) -> Result<File> {
        let path = self.dir.join(LOCK_FILE);
        match crate::fs::lock_exclusive(&path).at(&path)? {
            Some(file) => Ok(file),
            None => Err(BackupError::RepoLocked { path: self.dir.clone() }.into()),
        }
    }

    /// `objects/<first two hex digits>/<hex>`.
    pub fn object_path(&self, blake3: &str) -> PathBuf {
        self.dir.join(OBJECTS_DIR).join(shard_of(blake3)).join(blake3)
    }

    /// True when the object is there with the expected size. Content is
    /// trusted here; [`Repository::verify_objects`] re-reads it.
    pub fn has_object(&self, object: &ObjectRef) -> bool {
        fs::metadata(self.object_path(&object.blake3)).is_ok_and(|m| m.is_file() && m.len() == object.size)
    }

    fn shard_dir(&self, blake3: &str) -> Result<PathBuf> {
        let shard = self.dir.join(OBJECTS_DIR).join(shard_of(blake3));
        match fs::create_dir(&shard) {
            Ok(()) => Ok(shard),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(shard),
            Err(e) => Err(Error::Io { path: shard, source: e }),
        }
    }

    /// Hard-links `src` as `object`. The folder entry is made durable by
    /// [`Repository::sync_shards`].
    pub fn link_object(&self, src: &Path, object: &ObjectRef) -> Result<Placed> {
        if self.has_object(object) {
            return Ok(Placed::Present);
        }
        self.shard_dir(&object.blake3)?;
        let target = self.object_path(&object.blake3);
        match failpoint::check("backup-object", "link").and_then(|()| fs::hard_link(src, &target)) {
            Ok(()) => Ok(Placed::Added),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                // A wrong-sized leftover under the name: replace it.
                if self.has_object(object) {
                    return Ok(Placed::Present);
                }
                let tmp = temp_object_path(&target, &unique_nonce());
                let _ = fs::remove_file(&tmp);
                fs::hard_link(src, &tmp).at(&tmp)?;
                fs::rename(&tmp, &target).at(&target)?;
                Ok(Placed::Added)
            }
            Err(e) => Err(Error::Io { path: target, source: e }),
        }
    }

    /// Copies `src` in as `object` (temp file, fsync, rename), looking at
    /// `cancel` every few MB and reporting bytes to `on_bytes`. With
    /// `rehash` the bytes are hashed on the way and must match the name.
    pub fn copy_object(
        &self,
        src: &Path,
        object: &ObjectRef,
        rehash: bool,
        nonce: u64,
        cancel: &AtomicBool,
        on_bytes: &(dyn Fn(u64) + Sync),
    ) -> Result<Placed> {
        if self.has_object(object) {
            on_bytes(object.size);
            return Ok(Placed::Present);
        }
        self.shard_dir(&object.blake3)?;
        let target = self.object_path(&object.blake3);
        let tmp = temp_object_path(&target, &nonce.to_string());
        let result = copy_file(src, &tmp, object, rehash, cancel, on_bytes, "backup-object")
            .and_then(|hashed| match hashed {
                Some(actual) if actual != object.blake3 => Err(Error::Corrupt {
                    path: src.to_path_buf(),
                    what: format!("content hashes to {actual}, the version records {}", object.blake3),
                }),
                _ => Ok(()),
            })
            .and_then(|()| {
                failpoint::check("backup-object", "rename").and_then(|()| fs::rename(&tmp, &target)).at(&target)
            });
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map(|()| Placed::Added)
    }

    /// Stores `bytes` as `object` (for the catalog; see [`ObjectRef::of_bytes`]).
    pub fn put_bytes(&self, object: &ObjectRef, bytes: &[u8]) -> Result<Placed> {
        if self.has_object(object) {
            return Ok(Placed::Present);
        }
        self.shard_dir(&object.blake3)?;
        let target = self.object_path(&object.blake3);
        // Two jobs may store the same catalog at once: each its own temp file.
        let tmp = temp_object_path(&target, &unique_nonce());
        let result = (|| {
            let mut file = File::create(&tmp)?;
            file.write_all(bytes)?;
            failpoint::check("backup-catalog", "write")?;
            failpoint::check("backup-catalog", "fsync")?;
            file.sync_all()?;
            failpoint::check("backup-catalog", "rename")?;
            fs::rename(&tmp, &target)
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            if self.has_object(object) {
                return Ok(Placed::Present);
            }
            return Err(Error::Io { path: target, source: e });
        }
        Ok(Placed::Added)
    }

    /// Makes the folder entries of the given objects durable, the shard
    /// folders in parallel (on the caller's rayon pool).
    pub fn sync_shards<'a>(&self, objects: impl IntoIterator<Item = &'a str>) -> Result<()> {
        let shards: BTreeSet<&str> = objects.into_iter().map(shard_of).collect();
        shards.into_par_iter().try_for_each(|shard| {
            let path = self.dir.join(OBJECTS_DIR).join(shard);
            failpoint::check("backup-object", "dirsync").and_then(|()| crate::fs::sync_dir(&path)).at(&path)
        })?;
        let objects = self.dir.join(OBJECTS_DIR);
        crate::fs::sync_dir(&objects).at(&objects)
    }

    fn manifest_path(&self, name: &str) -> PathBuf {
        self.dir.join(MANIFESTS_DIR).join(format!("{name}.json"))
    }

    /// The names of every completed backup, sorted.
    pub fn manifest_names(&self) -> Result<Vec<String>> {
        json_stems(&self.dir.join(MANIFESTS_DIR))
    }

    /// A backup's manifest and its content hash, or `None`.
    pub fn read_manifest(&self, name: &str) -> Result<Option<(Manifest, String)>> {
        self.read_manifest_bytes(name)?.map(|bytes| self.decode_manifest(name, &bytes)).transpose()
    }

    /// `bytes` (read by [`read_manifest_bytes`](Self::read_manifest_bytes))
    /// decoded as backup `name`'s manifest: errors name its file.
    pub fn decode_manifest(&self, name: &str, bytes: &[u8]) -> Result<(Manifest, String)> {
        manifest::decode(&self.manifest_path(name), bytes)
    }

    /// A backup's manifest file as stored (sealed JSON), or `None`: what a
    /// push sends, byte for byte.
    pub fn read_manifest_bytes(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let path = self.manifest_path(name);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::Io { path, source: e }),
        }
    }

    /// Publishes a sealed manifest as received (a pull), after checking its
    /// seal and that it is the manifest of backup `name`: the commit point
    /// of a pulled backup. Returns its content hash.
    pub fn write_manifest_bytes(&self, name: &str, bytes: &[u8]) -> Result<String> {
        let path = self.manifest_path(name);
        let (manifest, hash) = manifest::decode(&path, bytes)?;
        if manifest.name != name {
            return Err(Error::Corrupt { path, what: format!("the manifest is backup {:?}'s", manifest.name) });
        }
        crate::fs::atomic_write(&path, bytes).at(&path)?;
        Ok(hash)
    }

    /// Makes the shard folders of `objects`, each once: then
    /// [`Repository::incoming_path`] gives their temp files.
    pub fn make_shards<'a>(&self, objects: impl IntoIterator<Item = &'a str>) -> Result<()> {
        let shards: BTreeSet<&str> = objects.into_iter().map(shard_of).collect();
        shards.into_iter().try_for_each(|shard| self.shard_dir(shard).map(drop))
    }

    /// Where an object arriving from elsewhere (a pull) is written before
    /// it is checked, and its final path: a temp file no other writer uses,
    /// in the object's shard folder ([`Repository::make_shards`] makes it).
    pub fn incoming_path(&self, blake3: &str) -> (PathBuf, PathBuf) {
        let target = self.object_path(blake3);
        (temp_object_path(&target, &unique_nonce()), target)
    }

    /// Every manifest; fails on the first unreadable one, because callers
    /// (GC above all) must not act on a partial picture.
    pub fn manifests(&self) -> Result<Vec<(Manifest, String)>> {
        let mut out = Vec::new();
        for name in self.manifest_names()? {
            if let Some(m) = self.read_manifest(&name)? {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// Publishes a manifest atomically (replacing one of the same name):
    /// the commit point of a backup. Returns its content hash.
    pub fn write_manifest(&self, manifest: &Manifest) -> Result<String> {
        let (bytes, hash) = manifest::encode(manifest)?;
        let path = self.manifest_path(&manifest.name);
        crate::fs::atomic_write(&path, &bytes).at(&path)?;
        Ok(hash)
    }

    /// Removes a manifest; false when there was none.
    pub fn delete_manifest(&self, name: &str) -> Result<bool> {
        remove_durably(&self.manifest_path(name))
    }

    fn job_path(&self, name: &str) -> PathBuf {
        self.dir.join(JOBS_DIR).join(format!("{name}.json"))
    }

    /// Every job record. An unreadable one is logged and skipped: job
    /// records are status, not data.
    pub fn job_records(&self) -> Result<Vec<JobRecord>> {
        let mut out = Vec::new();
        if !self.dir.join(JOBS_DIR).is_dir() {
            return Ok(out);
        }
        for name in json_stems(&self.dir.join(JOBS_DIR))? {
            let path = self.job_path(&name);
            let bytes = match fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::Io { path, source: e }),
            };
            match serde_json::from_slice::<JobRecord>(&bytes) {
                Ok(r) => out.push(r),
                Err(e) => tracing::warn!(path = %path.display(), error = %e, "unreadable backup job record"),
            }
        }
        Ok(out)
    }

    pub fn write_job_record(&self, record: &JobRecord) -> Result<()> {
        let jobs = self.dir.join(JOBS_DIR);
        crate::fs::create_dir_durable(&jobs).at(&jobs)?;
        let path = self.job_path(&record.name);
        let bytes = serde_json::to_vec_pretty(record)
            .map_err(|e| Error::InvalidArgument(format!("job record encoding: {e}")))?;
        crate::fs::atomic_write(&path, &bytes).at(&path)
    }

    pub fn delete_job_record(&self, name: &str) -> Result<bool> {
        remove_durably(&self.job_path(name))
    }

    fn restore_path(&self, id: &str) -> PathBuf {
        self.dir.join(RESTORES_DIR).join(format!("{id}.json"))
    }

    /// Every restore record, in no particular order. An unreadable one is
    /// logged and skipped, as job records are.
    pub fn restore_records(&self) -> Result<Vec<crate::restore::RestoreInfo>> {
        let dir = self.dir.join(RESTORES_DIR);
        let mut out = Vec::new();
        if !dir.is_dir() {
            return Ok(out);
        }
        for id in json_stems(&dir)? {
            match self.read_restore_record(&id)? {
                Some(record) if record.restore_id == id => out.push(record),
                Some(_) => tracing::warn!(id, "restore record names another restore; skipped"),
                None => {}
            }
        }
        Ok(out)
    }

    /// One restore record; `None` when there is none (or it is unreadable).
    pub fn read_restore_record(&self, id: &str) -> Result<Option<crate::restore::RestoreInfo>> {
        let path = self.restore_path(id);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::Io { path, source: e }),
        };
        match serde_json::from_slice(&bytes) {
            Ok(r) => Ok(Some(r)),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "unreadable restore record");
                Ok(None)
            }
        }
    }

    pub fn write_restore_record(&self, record: &crate::restore::RestoreInfo) -> Result<()> {
        // Ids become file names: only ULIDs are.
        if ulid::Ulid::from_string(&record.restore_id).is_err() {
            return Err(BackupError::InvalidRequest(format!("{:?} is not a restore id", record.restore_id)).into());
        }
        let dir = self.dir.join(RESTORES_DIR);
        crate::fs::create_dir_durable(&dir).at(&dir)?;
        let path = self.restore_path(&record.restore_id);
        let bytes = serde_json::to_vec_pretty(record)
            .map_err(|e| Error::InvalidArgument(format!("restore record encoding: {e}")))?;
        crate::fs::atomic_write(&path, &bytes).at(&path)
    }

    /// The shard folders under `objects/`.
    fn shard_dirs(&self) -> Result<Vec<PathBuf>> {
        let objects = self.dir.join(OBJECTS_DIR);
        let mut out = Vec::new();
        for shard in fs::read_dir(&objects).at(&objects)? {
            let shard = shard.at(&objects)?.path();
            if shard.is_dir() {
                out.push(shard);
            }
        }
        Ok(out)
    }

    /// Every object file on disk (name, size). Temp files are not objects.
    pub fn object_files(&self) -> Result<Vec<(String, u64)>> {
        let mut out = Vec::new();
        for shard in self.shard_dirs()? {
            for entry in fs::read_dir(&shard).at(&shard)? {
                let entry = entry.at(&shard)?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if manifest::is_object_name(&name) {
                    out.push((name, entry.metadata().at(entry.path())?.len()));
                }
            }
        }
        Ok(out)
    }

    /// Removes every object not in `keep`, and temp files when
    /// `remove_temp` (no job is writing any).
    pub fn sweep(&self, keep: &HashSet<String>, remove_temp: bool) -> Result<Swept> {
        let mut swept = Swept::default();
        for shard in self.shard_dirs()? {
            let mut removed_any = false;
            for entry in fs::read_dir(&shard).at(&shard)? {
                let entry = entry.at(&shard)?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let is_object = manifest::is_object_name(&name);
                let doomed = if is_object { !keep.contains(&name) } else { remove_temp && name.ends_with(".tmp") };
                if doomed {
                    let path = entry.path();
                    let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
                    match fs::remove_file(&path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(Error::Io { path, source: e }),
                    }
                    removed_any = true;
                    if is_object {
                        swept.objects += 1;
                        swept.bytes += len;
                    }
                }
            }
            if removed_any {
                crate::fs::sync_dir(&shard).at(&shard)?;
            }
        }
        Ok(swept)
    }

    /// Checks `objects` in parallel: present with the right size, and with
    /// `read_data`, content hashing to the name.
    pub fn verify_objects(&self, objects: &[ObjectRef], read_data: bool) -> Vec<ObjectProblem> {
        let mut problems: Vec<ObjectProblem> =
            objects.par_iter().filter_map(|o| self.verify_object(o, read_data)).collect();
        problems.sort_by(|a, b| a.blake3().cmp(b.blake3()));
        problems
    }

    fn verify_object(&self, object: &ObjectRef, read_data: bool) -> Option<ObjectProblem> {
        let blake3 = object.blake3.clone();
        let path = self.object_path(&object.blake3);
        let meta = match fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Some(ObjectProblem::Missing { blake3 }),
            Err(e) => return Some(ObjectProblem::Unreadable { blake3, error: e.to_string() }),
        };
        if meta.len() != object.size {
            return Some(ObjectProblem::WrongSize { blake3, expected: object.size, found: meta.len() });
        }
        if !read_data {
            return None;
        }
        match hash_file(&path) {
            Ok(actual) if actual == object.blake3 => None,
            Ok(actual) => Some(ObjectProblem::Corrupt { blake3, actual }),
            Err(e) => Some(ObjectProblem::Unreadable { blake3, error: e.to_string() }),
        }
    }

    /// Checks the whole repository: every manifest readable, every object a
    /// manifest lists present (and with `read_data`, intact), each problem
    /// named with the backups it breaks.
    pub fn check(&self, read_data: bool) -> Result<CheckReport> {
        let mut report = CheckReport::default();
        let mut manifests = Vec::new();
        for name in self.manifest_names()? {
            report.manifests += 1;
            match self.read_manifest(&name) {
                Ok(Some((m, _))) => manifests.push(m),
                Ok(None) => {}
                Err(e) => report.bad_manifests.push((name, e.to_string())),
            }
        }
        let users = manifest::object_users(&manifests);
        let objects: Vec<ObjectRef> = users.values().map(|(o, _)| o.clone()).collect();
        report.objects_checked = objects.len();
        report.bytes_checked = if read_data { objects.iter().map(|o| o.size).sum() } else { 0 };
        for problem in self.verify_objects(&objects, read_data) {
            let backups = users.get(problem.blake3()).map(|(_, b)| b.clone()).unwrap_or_default();
            report.problems.push((problem, backups));
        }
        report.unreferenced_objects = self.object_files()?.iter().filter(|(n, _)| !users.contains_key(n)).count();
        Ok(report)
    }
}

/// The state of a backup that has no manifest (yet): running, failed or
/// cancelled. `jobs/<name>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    pub name: String,
    #[serde(rename = "type")]
    pub backup_type: manifest::BackupType,
    pub parent: Option<String>,
    pub status: super::BackupStatus,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub mode: manifest::PlaceMode,
    /// The process that ran it (to tell an interrupted job after a crash).
    pub owner: String,
}

/// True when the entries of `dir` are at most what creating a repository
/// writes before its marker: the empty `objects/`, `manifests/` and `jobs/`
/// folders and the marker's temp file.
fn holds_only_an_unfinished_creation(dir: &Path, entries: fs::ReadDir) -> Result<bool> {
    let marker_temp = crate::fs::temp_path(&dir.join(REPO_FILE));
    for entry in entries {
        let entry = entry.at(dir)?;
        let path = entry.path();
        let name = entry.file_name();
        let folder = [OBJECTS_DIR, MANIFESTS_DIR, JOBS_DIR].iter().any(|sub| name == *sub);
        let empty_folder = folder && fs::read_dir(&path).at(&path)?.next().is_none();
        if !(empty_folder || path == marker_temp) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A temp-file suffix no other writer in this process uses.
fn unique_nonce() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!("{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

fn shard_of(blake3: &str) -> &str {
    blake3.get(..2).unwrap_or("00")
}

fn temp_object_path(target: &Path, nonce: &str) -> PathBuf {
    let mut name = target.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".{nonce}.tmp"));
    target.with_file_name(name)
}

fn json_stems(dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let name = entry.file_name();
        if let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".json")) {
            out.push(stem.to_string());
        }
    }
    out.sort();
    Ok(out)
}

fn remove_durably(path: &Path) -> Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => {
            if let Some(dir) = path.parent() {
                crate::fs::sync_dir(dir).at(dir)?;
            }
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::Io { path: path.to_path_buf(), source: e }),
    }
}

/// The blake3 of a file's content, hex.
pub fn hash_file(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = blake3::Hasher::new();
    // Large reads let blake3 hash several chunks at once (SIMD).
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hasher.finalize().to_hex().to_string());
        }
        hasher.update(&buf[..n]);
    }
}

/// Copies `src` to `tmp` (fsynced), checking `cancel` between chunks and
/// that exactly `object.size` bytes came. With `rehash` the bytes go through
/// user space and their blake3 is returned, for the caller to judge.
/// `kind` names the fail points `<kind>.write` (after the bytes were
/// written) and `<kind>.fsync`.
pub(crate) fn copy_file(
    src: &Path,
    tmp: &Path,
    object: &ObjectRef,
    rehash: bool,
    cancel: &AtomicBool,
    on_bytes: &(dyn Fn(u64) + Sync),
    kind: &str,
) -> Result<Option<String>> {
    let mut from = File::open(src).at(src)?;
    let mut to = OpenOptions::new().write(true).create(true).truncate(true).open(tmp).at(tmp)?;
    let cancelled = || Err(Error::Interrupted);
    let mut copied = 0u64;
    let mut hashed = None;
    if rehash {
        let mut hasher = blake3::Hasher::new();
        // Small enough for the CPU cache: each write() copies the buffer into
        // fresh page-cache pages, and with 1 MiB that copy cost more than the
        // hashing (a 64 x 16 MiB copy: 1.09 s with 1 MiB, 0.64-0.81 s with 128 KiB).
        let mut buf = vec![0u8; 128 << 10];
        loop {
            if cancel.load(Ordering::Relaxed) {
                return cancelled();
            }
            let n = from.read(&mut buf).at(src)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            to.write_all(&buf[..n]).at(tmp)?;
            copied += n as u64;
            on_bytes(n as u64);
        }
        hashed = Some(hasher.finalize().to_hex().to_string());
    } else {
        // `io::copy` between files uses copy_file_range where it can; a
        // bounded `take` keeps the cancel flag within one chunk's reach.
        loop {
            if cancel.load(Ordering::Relaxed) {
                return cancelled();
            }
            let n = io::copy(&mut (&mut from).take(COPY_CHUNK), &mut to).at(tmp)?;
            if n == 0 {
                break;
            }
            copied += n;
            on_bytes(n);
        }
    }
    if copied != object.size {
        return Err(Error::Corrupt {
            path: src.to_path_buf(),
            what: format!("{copied} bytes, {} expected", object.size),
        });
    }
    failpoint::check(kind, "write").at(tmp)?;
    failpoint::check(kind, "fsync").at(tmp)?;
    to.sync_all().at(tmp)?;
    Ok(hashed)
}
