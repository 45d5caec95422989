//! The tree: which segment files make up the data, as numbered immutable
//! versions. A version lists every live file with its size and blake3 (hash
//! at birth), level (0 = flushed from the buffer, 1 = compacted into a 24h
//! UTC window), table and time range, plus the WAL file replay starts from.
//!
//! Installing a version writes `versions/<n>.ver`, then points `CURRENT` at
//! it, both atomically; only then are replaced files marked obsolete. An
//! obsolete file is unlinked when the last pinned [`Version`] that lists it
//! is dropped, so a running scan or snapshot never loses a file under it.

pub mod compact;

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::envelope;
use crate::error::{Error, IoContext, Result};
use crate::segment::SegmentReader;
use crate::segment::writer::FamilyRows;

const VERSION_MAGIC: [u8; 4] = *b"QVER";
const CURRENT_MAGIC: [u8; 4] = *b"QCUR";
const FORMAT_VERSION: u16 = 1;

/// Folder of segment files, relative to the data folder.
pub const SEGMENTS_DIR: &str = "segments";
/// Folder of version files, relative to the data folder.
pub const VERSIONS_DIR: &str = "versions";
/// The pointer to the current version.
pub const CURRENT_FILE: &str = "CURRENT";

/// Level of files written by a buffer flush.
pub const LEVEL_GEN0: u8 = 0;
/// Level of files written by compaction, one per table per 24h UTC window.
pub const LEVEL_COMPACTED: u8 = 1;
/// Length of a compaction window.
pub const WINDOW_NS: i64 = 86_400 * 1_000_000_000;

/// The start of the 24h UTC window holding `t`. The first window
/// (1677-09-21) begins before `i64::MIN`, so its start is clamped to
/// `i64::MIN`; every window still has its own start, and the start's UTC
/// date is the window's day.
pub fn window_start(t: i64) -> i64 {
    window_start_of_day(t.div_euclid(WINDOW_NS))
}

/// The end of the window holding `t`: the next window's start, so windows
/// are half-open `[start, end)`; the last window (2262-04-11) ends at
/// `i64::MAX` and holds `i64::MAX` too.
pub fn window_end(t: i64) -> i64 {
    window_start_of_day(t.div_euclid(WINDOW_NS).saturating_add(1))
}

/// The start of UTC day `day` (days since 1970-01-01), clamped to the
/// `i64` range: only the first day (-106,752) needs it, as it begins before
/// `i64::MIN`.
pub fn window_start_of_day(day: i64) -> i64 {
    let start = i128::from(day) * i128::from(WINDOW_NS);
    i64::try_from(start).unwrap_or(if start < 0 { i64::MIN } else { i64::MAX })
}

/// The rows of one family in one window: the family's index and the rows'.
pub type WindowPart = (usize, Vec<u32>);

/// Where the rows of `families` fall by 24h window: per window (in time
/// order), per family with rows there, its index in `families` and the
/// rows' indices (ascending, so each part stays sorted). Row indices cost 4
/// bytes a row where copies of the parts would cost the rows again: a flush
/// takes one window's rows at a time ([`crate::rows::Rows::take`]).
pub fn window_parts(families: &[FamilyRows]) -> Vec<(i64, Vec<WindowPart>)> {
    let mut windows: BTreeMap<i64, Vec<WindowPart>> = BTreeMap::new();
    for (f, (_, rows)) in families.iter().enumerate() {
        let mut parts: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
        for (i, &t) in rows.time.iter().enumerate() {
            parts.entry(window_start(t)).or_default().push(i as u32);
        }
        for (w, idx) in parts {
            windows.entry(w).or_default().push((f, idx));
        }
    }
    windows.into_iter().collect()
}

/// One live segment file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMeta {
    pub id: u64,
    pub db_id: u32,
    pub table_id: u32,
    pub level: u8,
    /// The 24h window of a compacted file.
    pub window_start_ns: Option<i64>,
    pub size: u64,
    pub blake3: [u8; 32],
    pub rows: u64,
    pub time_min: i64,
    pub time_max: i64,
}

impl FileMeta {
    /// The entry of segment file `id`, just written by `write_segment`.
    pub fn written(
        id: u64,
        (db_id, table_id): (u32, u32),
        level: u8,
        window_start_ns: Option<i64>,
        written: &crate::segment::Written,
    ) -> FileMeta {
        FileMeta {
            id,
            db_id,
            table_id,
            level,
            window_start_ns,
            size: written.size,
            blake3: written.blake3,
            rows: written.rows,
            time_min: written.time_min,
            time_max: written.time_max,
        }
    }

    /// The file's path relative to the data folder.
    pub fn relative_path(&self) -> PathBuf {
        Path::new(SEGMENTS_DIR).join(segment_file_name(self.id))
    }

    /// The blake3 as lowercase hex.
    pub fn blake3_hex(&self) -> String {
        blake3::Hash::from_bytes(self.blake3).to_hex().to_string()
    }
}

/// `<id, 20 digits>.seg`.
pub fn segment_file_name(id: u64) -> String {
    format!("{id:020}.seg")
}

/// The persisted content of a version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRecord {
    pub number: u64,
    /// The catalog snapshot this version's files were written against (at least).
    pub catalog_sequence: u64,
    /// WAL files numbered below this are fully in segments.
    pub wal_replay_from: u64,
    /// The next segment file id to hand out.
    pub next_file_id: u64,
    pub files: Vec<FileMeta>,
}

/// A segment file in use, open for reading.
#[derive(Debug)]
pub struct LiveFile {
    pub meta: FileMeta,
    pub path: PathBuf,
    pub reader: SegmentReader,
    obsolete: AtomicBool,
}

impl Drop for LiveFile {
    fn drop(&mut self) {
        if self.obsolete.load(Ordering::SeqCst)
            && let Err(e) = fs::remove_file(&self.path)
        {
            tracing::warn!(path = %self.path.display(), error = %e, "could not delete obsolete segment");
        }
    }
}

/// A pinned version: while it is held, none of its files is deleted.
#[derive(Debug)]
pub struct Version {
    pub record: VersionRecord,
    pub files: Vec<Arc<LiveFile>>,
}

impl Version {
    /// The files of one table, oldest data first: compacted files, then
    /// flushed files in flush order (so later files win on equal keys).
    pub fn table_files(&self, db_id: u32, table_id: u32) -> Vec<&Arc<LiveFile>> {
        let mut files: Vec<&Arc<LiveFile>> =
            self.files.iter().filter(|f| f.meta.db_id == db_id && f.meta.table_id == table_id).collect();
        files.sort_by_key(|f| (f.meta.level != LEVEL_COMPACTED, f.meta.id));
        files
    }
}

/// A change to the tree.
#[derive(Debug, Default)]
pub struct Edit {
    pub add: Vec<FileMeta>,
    pub remove: Vec<u64>,
    pub wal_replay_from: Option<u64>,
    pub catalog_sequence: Option<u64>,
}

/// Owns the version files, CURRENT and the segment folder.
#[derive(Debug)]
pub struct Tree {
    dir: PathBuf,
    current: RwLock<Arc<Version>>,
    install: Mutex<()>,
    next_file_id: AtomicU64,
    /// Set when a restore's swap may have committed without being applied:
    /// no version may be installed over the state it replaces.
    sealed: AtomicBool,
}

impl Tree {
    /// Opens the tree in data folder `dir` (creating an empty one), deleting
    /// files no version references (left by a crash).
    pub fn open(dir: &Path) -> Result<Tree> {
        let seg_dir = dir.join(SEGMENTS_DIR);
        let ver_dir = dir.join(VERSIONS_DIR);
        crate::fs::create_dir_durable(&seg_dir).at(&seg_dir)?;
        crate::fs::create_dir_durable(&ver_dir).at(&ver_dir)?;
        crate::fs::remove_temp_files(dir).at(dir)?;
        crate::fs::remove_temp_files(&seg_dir).at(&seg_dir)?;
        crate::fs::remove_temp_files(&ver_dir).at(&ver_dir)?;

        let record = read_current(dir)?;

        // In parallel: each open is a few syscalls and page faults, and a
        // folder may hold thousands of files (10,000: 1.01 s one by one,
        // 0.59 s on 4 threads).
        let files =
            record.files.par_iter().map(|meta| open_live(dir, meta).map(Arc::new)).collect::<Result<Vec<_>>>()?;
        // Anything else in the folders is an orphan of an interrupted flush,
        // compaction or install.
        let live: HashSet<String> = record.files.iter().map(|m| segment_file_name(m.id)).collect();
        remove_except(&seg_dir, |name| live.contains(name))?;
        let keep_version = version_file_name(record.number);
        remove_except(&ver_dir, |name| name == keep_version)?;

        let next = record.next_file_id.max(record.files.iter().map(|f| f.id + 1).max().unwrap_or(1));
        Ok(Tree {
            dir: dir.to_path_buf(),
            current: RwLock::new(Arc::new(Version { record, files })),
            install: Mutex::new(()),
            next_file_id: AtomicU64::new(next.max(1)),
            sealed: AtomicBool::new(false),
        })
    }

    /// The current version, pinned.
    pub fn current(&self) -> Arc<Version> {
        match self.current.read() {
            Ok(v) => v.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// A fresh segment id and the path to write it at.
    pub fn allocate(&self) -> (u64, PathBuf) {
        let id = self.next_file_id.fetch_add(1, Ordering::SeqCst);
        (id, self.dir.join(SEGMENTS_DIR).join(segment_file_name(id)))
    }

    /// Applies `edit` durably and makes it current. Files removed by it are
    /// deleted once no pinned version lists them.
    ///
    /// When it fails, the files it would add are removed unless CURRENT on
    /// disk already lists them (a failed folder fsync after CURRENT's
    /// rename, or CURRENT unreadable): a caller's retry writes them anew,
    /// and would otherwise leave one more set of orphans each time.
    pub fn install(&self, edit: Edit) -> Result<Arc<Version>> {
        let added: Vec<FileMeta> = edit.add.clone();
        let installed = self.install_edit(edit);
        if installed.is_err() && !added.is_empty() {
            let ids: HashSet<u64> = added.iter().map(|m| m.id).collect();
            let published = read_current(&self.dir).map_or(true, |r| r.files.iter().any(|f| ids.contains(&f.id)));
            if !published {
                remove_unlisted(added.iter().map(|m| self.dir.join(m.relative_path())));
            }
        }
        installed
    }

    fn install_edit(&self, edit: Edit) -> Result<Arc<Version>> {
        let _serial = self.install_lock()?;
        if self.sealed.load(Ordering::SeqCst) {
            return Err(Error::Poisoned {
                reason: "a restore committed without being applied; reopen the engine to finish it".into(),
            });
        }
        let old = self.current();
        let removed: HashSet<u64> = edit.remove.iter().copied().collect();
        let mut record = old.record.clone();
        record.number += 1;
        record.files.retain(|f| !removed.contains(&f.id));
        let mut files: Vec<Arc<LiveFile>> =
            old.files.iter().filter(|f| !removed.contains(&f.meta.id)).cloned().collect();
        let opened: Result<Vec<LiveFile>> = edit.add.iter().map(|meta| open_live(&self.dir, meta)).collect();
        let opened = opened?;
        for (meta, live) in edit.add.into_iter().zip(opened) {
            files.push(Arc::new(live));
            record.files.push(meta);
        }
        if let Some(w) = edit.wal_replay_from {
            record.wal_replay_from = record.wal_replay_from.max(w);
        }
        if let Some(c) = edit.catalog_sequence {
            record.catalog_sequence = record.catalog_sequence.max(c);
        }
        record.next_file_id = self.next_file_id.load(Ordering::SeqCst);
        write_current(&self.dir, &record)?;

        // The new version is durable: retire what it dropped.
        for f in old.files.iter().filter(|f| removed.contains(&f.meta.id)) {
            f.obsolete.store(true, Ordering::SeqCst);
        }
        Ok(self.publish(old.record.number, Version { record, files }))
    }

    /// Refuses every later install (see [`Tree::install`]).
    pub fn seal(&self) {
        self.sealed.store(true, Ordering::SeqCst);
    }

    /// The lock that serializes version installs; a restore's swap holds it
    /// from before its commit to [`Tree::replace`].
    pub fn install_lock(&self) -> Result<std::sync::MutexGuard<'_, ()>> {
        self.install.lock().map_err(|_| Error::Poisoned { reason: "version install lock".into() })
    }

    /// Makes `record`, already durable (a restore's swap wrote it), the
    /// current version, with `readers` opened on its files; every file of the
    /// old version is retired. The caller holds [`Tree::install_lock`].
    pub fn replace(&self, record: VersionRecord, readers: Vec<(FileMeta, SegmentReader)>) -> Arc<Version> {
        let old = self.current();
        let files = readers
            .into_iter()
            .map(|(meta, reader)| {
                let path = self.dir.join(meta.relative_path());
                Arc::new(LiveFile { meta, path, reader, obsolete: AtomicBool::new(false) })
            })
            .collect();
        let kept: HashSet<u64> = record.files.iter().map(|f| f.id).collect();
        for f in old.files.iter().filter(|f| !kept.contains(&f.meta.id)) {
            f.obsolete.store(true, Ordering::SeqCst);
        }
        self.next_file_id.fetch_max(record.next_file_id, Ordering::SeqCst);
        self.publish(old.record.number, Version { record, files })
    }

    fn publish(&self, old_number: u64, version: Version) -> Arc<Version> {
        let old_path = self.dir.join(VERSIONS_DIR).join(version_file_name(old_number));
        if old_number != version.record.number
            && let Err(e) = fs::remove_file(&old_path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            // Harmless: the next open removes version files CURRENT does not name.
            tracing::warn!(path = %old_path.display(), error = %e, "could not remove a replaced version file");
        }
        let version = Arc::new(version);
        match self.current.write() {
            Ok(mut cur) => *cur = version.clone(),
            Err(poisoned) => *poisoned.into_inner() = version.clone(),
        }
        version
    }
}

/// The outcome of writing new segment files in parallel (a flush's, a
/// compaction's), each with the path it was allocated once it got that
/// far: every value, or, when any failed, the first error after removing
/// every file of the run, written or half written (a failed folder fsync
/// leaves a whole file under its name). Without that each failed retry
/// would leave more files no version lists, until the next open's sweep.
pub(crate) fn keep_all_or_discard<T>(results: Vec<(Option<PathBuf>, Result<T>)>) -> Result<Vec<T>> {
    let mut kept = Vec::with_capacity(results.len());
    let mut paths = Vec::with_capacity(results.len());
    let mut failed = None;
    for (path, result) in results {
        paths.extend(path);
        match result {
            Ok(value) => kept.push(value),
            Err(e) => {
                failed.get_or_insert(e);
            }
        }
    }
    let Some(error) = failed else { return Ok(kept) };
    remove_unlisted(paths);
    Err(error)
}

/// Removes segment files no version lists (of a failed run).
fn remove_unlisted(paths: impl IntoIterator<Item = PathBuf>) {
    for path in paths {
        if let Err(e) = fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            // Harmless: the next open removes files no version lists.
            tracing::warn!(path = %path.display(), error = %e, "could not remove a file of a failed run");
        }
    }
}

/// Writes `record` as `versions/<n>.ver` and points CURRENT at it, both
/// atomically: the one way a version becomes current on disk.
pub fn write_current(dir: &Path, record: &VersionRecord) -> Result<()> {
    let path = dir.join(VERSIONS_DIR).join(version_file_name(record.number));
    let body = postcard::to_allocvec(record).map_err(|e| Error::InvalidArgument(format!("version encoding: {e}")))?;
    crate::fs::atomic_write(&path, &envelope::seal(VERSION_MAGIC, FORMAT_VERSION, &body)).at(&path)?;
    let current_path = dir.join(CURRENT_FILE);
    crate::fs::atomic_write(&current_path, &envelope::seal(CURRENT_MAGIC, FORMAT_VERSION, &record.number.to_le_bytes()))
        .at(&current_path)
}

/// Reads the current version record of data folder `dir` without opening
/// (or changing) anything else: an empty record when there is no CURRENT.
pub fn read_current(dir: &Path) -> Result<VersionRecord> {
    let current_path = dir.join(CURRENT_FILE);
    if !current_path.exists() {
        return Ok(VersionRecord::default());
    }
    let bytes = fs::read(&current_path).at(&current_path)?;
    let body = envelope::open(&current_path, CURRENT_MAGIC, FORMAT_VERSION, &bytes)?;
    let number = <[u8; 8]>::try_from(body)
        .map(u64::from_le_bytes)
        .map_err(|_| Error::Corrupt { path: current_path.clone(), what: "body is not a version number".into() })?;
    let path = dir.join(VERSIONS_DIR).join(version_file_name(number));
    let bytes = fs::read(&path).at(&path)?;
    let body = envelope::open(&path, VERSION_MAGIC, FORMAT_VERSION, &bytes)?;
    let record: VersionRecord = postcard::from_bytes(body)
        .map_err(|e| Error::Corrupt { path: path.clone(), what: format!("undecodable version: {e}") })?;
    if record.number != number {
        return Err(Error::Corrupt { path, what: format!("holds version {}, CURRENT says {number}", record.number) });
    }
    Ok(record)
}

fn version_file_name(number: u64) -> String {
    format!("{number:020}.ver")
}

fn open_live(dir: &Path, meta: &FileMeta) -> Result<LiveFile> {
    let path = dir.join(meta.relative_path());
    let reader = SegmentReader::open(&path)?;
    if reader.len() != meta.size {
        return Err(Error::Corrupt {
            path,
            what: format!("{} bytes, the version records {}", reader.len(), meta.size),
        });
    }
    Ok(LiveFile { meta: meta.clone(), path, reader, obsolete: AtomicBool::new(false) })
}

fn remove_except(dir: &Path, keep: impl Fn(&str) -> bool) -> Result<()> {
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let name = entry.file_name();
        if !name.to_str().is_some_and(&keep) {
            let path = entry.path();
            tracing::info!(path = %path.display(), "removing file no version references");
            fs::remove_file(&path).at(&path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn file_meta() -> impl Strategy<Value = FileMeta> {
        (
            any::<u64>(),
            any::<u32>(),
            any::<u32>(),
            0u8..2,
            proptest::option::of(any::<i64>()),
            any::<u64>(),
            any::<[u8; 32]>(),
            any::<u64>(),
            any::<i64>(),
            any::<i64>(),
        )
            .prop_map(
                |(id, db_id, table_id, level, window_start_ns, size, blake3, rows, time_min, time_max)| FileMeta {
                    id,
                    db_id,
                    table_id,
                    level,
                    window_start_ns,
                    size,
                    blake3,
                    rows,
                    time_min,
                    time_max,
                },
            )
    }

    proptest! {
        #[test]
        fn version_records_round_trip(number in any::<u64>(), catalog_sequence in any::<u64>(), wal in any::<u64>(), next in any::<u64>(), files in proptest::collection::vec(file_meta(), 0..20)) {
            let record = VersionRecord { number, catalog_sequence, wal_replay_from: wal, next_file_id: next, files };
            let body = postcard::to_allocvec(&record).unwrap();
            let sealed = envelope::seal(VERSION_MAGIC, FORMAT_VERSION, &body);
            let opened = envelope::open(Path::new("v"), VERSION_MAGIC, FORMAT_VERSION, &sealed).unwrap();
            prop_assert_eq!(postcard::from_bytes::<VersionRecord>(opened).unwrap(), record);
        }

        #[test]
        fn arbitrary_version_bodies_are_errors_not_panics(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = postcard::from_bytes::<VersionRecord>(&body);
        }
    }

    #[test]
    fn window_start_is_utc_day() {
        assert_eq!(window_start(0), 0);
        assert_eq!(window_start(WINDOW_NS - 1), 0);
        assert_eq!(window_start(WINDOW_NS), WINDOW_NS);
        assert_eq!(window_start(-1), -WINDOW_NS);
    }

    #[test]
    fn window_start_does_not_overflow_at_the_ends() {
        // The first day begins before i64::MIN: its start is clamped, and the
        // next day's start is the real one.
        assert_eq!(window_start(i64::MIN), i64::MIN);
        assert_eq!(window_start(i64::MIN + 763 * 1_000_000_000), i64::MIN);
        let next = i64::MIN.div_euclid(WINDOW_NS) + 1;
        assert_eq!(window_start(i64::MIN + WINDOW_NS), next * WINDOW_NS);
        assert_eq!(window_start(i64::MAX), i64::MAX.div_euclid(WINDOW_NS) * WINDOW_NS);
        assert_eq!(window_end(i64::MIN), next * WINDOW_NS);
        assert_eq!(window_end(i64::MAX), i64::MAX);
        assert_eq!(window_end(0), WINDOW_NS);
        assert_eq!(window_start_of_day(i64::MIN), i64::MIN);
        assert_eq!(window_start_of_day(i64::MAX), i64::MAX);
    }

    #[test]
    fn empty_tree_opens_and_corrupt_current_is_typed() {
        let dir = tempfile::tempdir().unwrap();
        let tree = Tree::open(dir.path()).unwrap();
        assert_eq!(tree.current().record, VersionRecord::default());
        let v = tree.install(Edit { wal_replay_from: Some(3), ..Edit::default() }).unwrap();
        assert_eq!(v.record.number, 1);
        drop(tree);
        let tree = Tree::open(dir.path()).unwrap();
        assert_eq!(tree.current().record.wal_replay_from, 3);
        drop(tree);
        let current = dir.path().join(CURRENT_FILE);
        let mut bytes = fs::read(&current).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&current, bytes).unwrap();
        assert!(matches!(Tree::open(dir.path()), Err(Error::Corrupt { path, .. }) if path == current));
    }
}
