//! The [`Engine`] handle: opening a data folder, the write path (parse,
//! resolve against the catalog, WAL, buffer), flushes, compactions, scans,
//! and the background threads that flush by size and age and compact. The
//! data folder's layout is [`crate::data_dir`]'s.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::mem;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use arrow::array::RecordBatch;
use rayon::prelude::*;

use crate::buffer::{Buffer, Selection};
use crate::catalog::{Catalog, CatalogStore, Table};
use crate::clock::{Clock, IdSource, RandomIds, SystemClock};
use crate::data_dir::DataDir;
use crate::error::{Error, IoContext, Result};
use crate::lp::{LineError, Precision};
use crate::query::{self, Plan, ScanRequest, ScanStats};
use crate::rows::Rows;
use crate::segment::SegmentReader;
use crate::segment::reader::FamilyPlan;
use crate::segment::writer::FamilyRows;
use crate::segment::{TableInfo, WriteConfig, write_segment};
use crate::snapshot::{Frozen, InstallCause, InstallHook, Installed, Snapshot};
use crate::swap::{self, SwapRecord};
use crate::time_range::TimeRange;
use crate::tree::{Edit, FileMeta, LEVEL_GEN0, Tree, Version, VersionRecord, compact};
use crate::wal::{Wal, WalError, WalOptions};
use crate::write::{self, Resolved, WriteBatch};

mod background;
mod builder;
mod compaction;
mod flush;
mod scan;
mod swap_in;
mod write_path;

use background::Background;
pub use builder::EngineBuilder;
pub use scan::ScanIter;

/// Flushed files in all that start a compaction, however few reach any one
/// window (a flush of many tables or windows writes many files).
pub const GEN0_FILES_LIMIT: usize = 1024;

/// Writes wait while the active buffer holds this many times `flush_bytes`.
pub const STALL_FACTOR: usize = 4;
/// The write buffer's hard limit, unless set: this many times `flush_bytes`.
pub const BUFFER_LIMIT_FACTOR: usize = 8;

/// When an acknowledged write is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Every write is fsynced (group commit) before it is acknowledged,
    /// unless the write asks for `no_sync`.
    #[default]
    Sync,
    /// Writes are acknowledged once in the OS page cache; a power loss may
    /// lose the last ones, a process crash does not.
    Buffer,
}

/// Options of one write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// Apply the good lines and report the bad ones, instead of rejecting all.
    pub accept_partial: bool,
    /// Acknowledge before the WAL is fsynced.
    pub no_sync: bool,
}

/// The outcome of a write.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriteSummary {
    /// Lines (or rows of a batch) applied.
    pub lines_written: usize,
    /// Lines rejected, with line number and reason (only with `accept_partial`).
    pub errors: Vec<LineError>,
}

/// A live segment file as backups see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveFileInfo {
    /// Absolute path.
    pub path: PathBuf,
    pub meta: FileMeta,
}

#[derive(Debug, Clone)]
struct Config {
    flush_bytes: usize,
    max_buffer_bytes: Option<usize>,
    flush_age: Duration,
    durability: Durability,
    background: bool,
    compaction: bool,
    compact_gen0_files: usize,
    compact_age: Duration,
    gen0: WriteConfig,
    compacted: WriteConfig,
    compaction_memory: usize,
    hooks: Hooks,
    limits: crate::catalog::Limits,
    catalog_checkpoint_bytes: u64,
}

impl Config {
    fn buffer_limit(&self) -> usize {
        self.max_buffer_bytes.unwrap_or_else(|| self.flush_bytes.saturating_mul(BUFFER_LIMIT_FACTOR))
    }
}

/// The [`InstallHook`]s of an engine.
#[derive(Clone, Default)]
struct Hooks(Vec<Arc<dyn InstallHook>>);

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} install hook(s)", self.0.len())
    }
}

#[derive(Default)]
struct Signal {
    shutdown: bool,
    flush_wanted: bool,
}

/// What the write buffer holds; see [`Engine::buffer_usage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BufferUsage {
    pub rows: u64,
    /// Approximate memory, in bytes.
    pub bytes: u64,
}

/// Counters for metrics and tests.
#[derive(Debug, Default)]
pub struct Stats {
    pub writes: AtomicU64,
    pub rows_written: AtomicU64,
    pub lines_rejected: AtomicU64,
    pub flushes: AtomicU64,
    pub compactions: AtomicU64,
    /// Writes that waited for a flush (backpressure).
    pub write_stalls: AtomicU64,
    /// Rounds of the background flush thread: each looked at the buffer's
    /// size and age (and flushed when due) before it was counted.
    pub flush_checks: AtomicU64,
    /// Rounds of the background compaction thread: each looked at the gen0
    /// files (and compacted when due) before it was counted.
    pub compaction_checks: AtomicU64,
}

struct Inner {
    dir: PathBuf,
    config: Config,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdSource>,
    _lock: File,
    catalog_store: CatalogStore,
    /// Catalog, version, frozen buffers and epoch: replaced whole under
    /// `publish` (see [`crate::snapshot`]).
    snapshot: RwLock<Arc<Snapshot>>,
    /// Serializes snapshot changes, from reading the current one to
    /// installing the next (a version install happens inside).
    publish: Mutex<()>,
    catalog_change: Mutex<()>,
    wal: Wal,
    tree: Tree,
    active: Mutex<Buffer>,
    flush_serial: Mutex<()>,
    compact_serial: Mutex<()>,
    poisoned: Mutex<Option<String>>,
    closed: AtomicBool,
    signal: Mutex<Signal>,
    wake: Condvar,
    stats: Stats,
}

/// An open quipu engine. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
    _background: Arc<Background>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("dir", &self.inner.dir).finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock leaves state we still own; keep going.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Engine {
    /// A builder for the data folder `dir`.
    pub fn builder(dir: impl AsRef<Path>) -> EngineBuilder {
        EngineBuilder {
            dir: dir.as_ref().to_path_buf(),
            config: Config {
                flush_bytes: 64 << 20,
                max_buffer_bytes: None,
                flush_age: Duration::from_secs(60),
                durability: Durability::Sync,
                background: true,
                compaction: true,
                compact_gen0_files: 8,
                compact_age: Duration::from_secs(600),
                gen0: WriteConfig { zstd_level: 1, ..WriteConfig::default() },
                compacted: WriteConfig { zstd_level: 3, ..WriteConfig::default() },
                compaction_memory: compact::DEFAULT_MEMORY,
                hooks: Hooks::default(),
                limits: crate::catalog::Limits::default(),
                catalog_checkpoint_bytes: crate::catalog::CHECKPOINT_BYTES,
            },
            clock: Arc::new(SystemClock),
            ids: Arc::new(RandomIds::default()),
        }
    }

    /// Opens `dir` with default settings.
    pub fn open(dir: impl AsRef<Path>) -> Result<Engine> {
        Engine::builder(dir).open()
    }

    fn open_with(b: EngineBuilder) -> Result<Engine> {
        let dir = b.dir;
        crate::fs::create_dir_durable(&dir).at(&dir)?;
        let paths = DataDir::new(&dir);
        let lock_path = paths.lock_file();
        let Some(lock_file) = crate::fs::lock_exclusive(&lock_path).at(&lock_path)? else {
            return Err(Error::Locked { path: dir });
        };

        // A restore that committed before the last stop is finished first:
        // nothing below may see half of it.
        swap::finish_pending(&dir)?;
        let catalog_store =
            CatalogStore::open(paths.catalog_dir())?.checkpoint_bytes(b.config.catalog_checkpoint_bytes);
        let catalog = catalog_store.load_latest()?;
        let tree = Tree::open(&dir)?;
        let replay_from = tree.current().record.wal_replay_from;

        let wal_dir = paths.wal_dir();
        let mut buffer = Buffer::default();
        let now = b.clock.now_ns();
        let wal_options = WalOptions { first_file_number: replay_from.max(1), ..WalOptions::default() };
        let wal = Wal::open::<Error>(&wal_dir, wal_options, |pos, payload| {
            if pos.file < replay_from {
                return Ok(());
            }
            let path = wal_dir.join(format!("{:020}.wal", pos.file));
            let batch = WriteBatch::decode(&path, pos.offset, payload)?;
            buffer.insert(&batch, now);
            Ok(())
        })?;
        // Open always starts a new WAL file; with nothing replayed, the older
        // ones hold nothing the version lacks.
        let keep_from = if buffer.rows() == 0 { wal.current_file() } else { replay_from };
        wal.remove_files_before(keep_from.min(wal.current_file()))?;

        let inner = Arc::new(Inner {
            dir,
            config: b.config,
            clock: b.clock,
            ids: b.ids,
            _lock: lock_file,
            catalog_store,
            snapshot: RwLock::new(Arc::new(Snapshot::new(catalog, tree.current()))),
            publish: Mutex::new(()),
            catalog_change: Mutex::new(()),
            wal,
            tree,
            active: Mutex::new(buffer),
            flush_serial: Mutex::new(()),
            compact_serial: Mutex::new(()),
            poisoned: Mutex::new(None),
            closed: AtomicBool::new(false),
            signal: Mutex::new(Signal::default()),
            wake: Condvar::new(),
            stats: Stats::default(),
        });
        inner.installed(InstallCause::Open);
        let background = Arc::new(Background { inner: inner.clone(), threads: Mutex::new(Vec::new()) });
        if inner.config.background {
            let mut threads = lock(&background.threads);
            let flusher = inner.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("quipu-flush".into())
                    .spawn(move || flusher.flush_loop())
                    .at(&inner.dir)?,
            );
            if inner.config.compaction {
                let compactor = inner.clone();
                threads.push(
                    std::thread::Builder::new()
                        .name("quipu-compact".into())
                        .spawn(move || compactor.compact_loop())
                        .at(&inner.dir)?,
                );
            }
        }
        Ok(Engine { inner, _background: background })
    }

    /// The data folder.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The current catalog, version and frozen buffers, read together:
    /// the one way to see files with the catalog that describes them (see
    /// [`crate::snapshot`]).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.inner.snapshot()
    }

    /// The current catalog (of a new [`Engine::snapshot`]).
    pub fn catalog(&self) -> Arc<Catalog> {
        self.inner.catalog()
    }

    /// Counters since open.
    pub fn stats(&self) -> &Stats {
        &self.inner.stats
    }

    /// What the write buffer holds now (active and frozen, not yet in files).
    pub fn buffer_usage(&self) -> BufferUsage {
        let (mut rows, mut bytes) = {
            let active = lock(&self.inner.active);
            (active.rows() as u64, active.bytes() as u64)
        };
        let (frozen_rows, frozen_bytes) = self.inner.snapshot().frozen_usage();
        rows += frozen_rows as u64;
        bytes += frozen_bytes as u64;
        BufferUsage { rows, bytes }
    }

    /// A new id from the engine's id source.
    pub fn next_id(&self) -> u128 {
        self.inner.ids.next_id()
    }

    /// Writes line protocol to database `db`.
    ///
    /// Without `accept_partial`, any bad line rejects the whole body with
    /// [`Error::WriteRejected`] and nothing is applied. With it, good lines are
    /// applied and bad ones reported in the summary. Databases, tables and
    /// columns are created on first write.
    pub fn write_lp(&self, db: &str, body: &str, precision: Precision, opts: WriteOptions) -> Result<WriteSummary> {
        self.inner.check_writable()?;
        let now = self.inner.clock.now_ns();
        loop {
            let epoch = self.inner.snapshot().epoch;
            let mut resolved = self.inner.resolve(
                |catalog| write::resolve_lp(catalog, db, body, precision, now, self.inner.config.limits),
                opts.accept_partial,
                db,
            )?;
            let mut errors = mem::take(&mut resolved.errors);
            errors.sort_by_key(|e| e.line);
            let accepted = resolved.accepted;
            if self.inner.apply(resolved.batch, opts.no_sync, epoch)? {
                self.inner.stats.lines_rejected.fetch_add(errors.len() as u64, Ordering::Relaxed);
                return Ok(WriteSummary { lines_written: accepted, errors });
            }
        }
    }

    /// Writes an Arrow batch to `db`.`table` (see
    /// [`write::resolve_record_batch`] for the schema rules). All or nothing.
    pub fn write_batch(&self, db: &str, table: &str, batch: &RecordBatch) -> Result<WriteSummary> {
        self.write_batch_with(db, table, batch, WriteOptions::default())
    }

    /// [`Engine::write_batch`] with options (`accept_partial` has no effect).
    pub fn write_batch_with(
        &self,
        db: &str,
        table: &str,
        batch: &RecordBatch,
        opts: WriteOptions,
    ) -> Result<WriteSummary> {
        self.inner.check_writable()?;
        loop {
            let epoch = self.inner.snapshot().epoch;
            let limit = self.inner.config.limits;
            let resolved = self.inner.resolve(
                |catalog| write::resolve_record_batch(catalog, db, table, batch, limit),
                false,
                db,
            )?;
            let accepted = resolved.accepted;
            if self.inner.apply(resolved.batch, opts.no_sync, epoch)? {
                return Ok(WriteSummary { lines_written: accepted, errors: Vec::new() });
            }
        }
    }

    /// Writes the buffer to gen0 segment files now.
    pub fn flush(&self) -> Result<()> {
        self.inner.flush_and_tell()
    }

    /// Compacts all gen0 files into 24h windows now.
    pub fn compact(&self) -> Result<()> {
        self.inner.compact()
    }

    /// The current tree version (of a new [`Engine::snapshot`]), pinned:
    /// its files stay on disk while it is held.
    pub fn version(&self) -> Arc<Version> {
        self.inner.snapshot().version.clone()
    }

    /// Now, by the engine's clock (the injected one in tests).
    pub fn now_ns(&self) -> i64 {
        self.inner.clock.now_ns()
    }

    /// Every live segment file with its path, size, blake3, level, table and time range.
    pub fn live_files(&self) -> Vec<LiveFileInfo> {
        self.version().files.iter().map(|f| LiveFileInfo { path: f.path.clone(), meta: f.meta.clone() }).collect()
    }

    /// A fresh segment id and its path in the live segments folder, for a
    /// restore to stage a file at. Until [`Engine::swap_in`] lists it, the
    /// file is no version's: if the process stops first, the next open
    /// removes it.
    #[doc(hidden)] // the restore's part; tests drive it directly
    pub fn allocate_segment(&self) -> (u64, PathBuf) {
        self.inner.tree.allocate()
    }

    /// Replaces all the engine's data with a restored state, in place:
    /// writes are fenced (held on the buffer lock) for the few file writes
    /// of the swap, flushes and compactions wait, the buffered writes and
    /// the WAL that holds them are rolled back, and the restored catalog and
    /// files become current. Crash safe through [`crate::swap`]: after a stop
    /// at any point the folder opens either as it was or as restored.
    ///
    /// `files` must be durable in the segments folder under ids from
    /// [`Engine::allocate_segment`], opened and checked by the caller.
    #[doc(hidden)] // the restore's part; tests drive it directly
    pub fn swap_in(&self, restore_id: &str, catalog: Catalog, files: Vec<(FileMeta, SegmentReader)>) -> Result<()> {
        self.inner.swap_in(restore_id, catalog, files)?;
        self.inner.installed(InstallCause::Restore);
        Ok(())
    }

    /// The id of the last restore applied to this data folder.
    pub fn last_restore(&self) -> Result<Option<String>> {
        swap::last_restore(&self.inner.dir)
    }

    /// Flushes the buffer and stops accepting writes. Other clones see
    /// [`Error::Closed`] afterwards; the folder is unlocked when the last clone drops.
    pub fn close(&self) -> Result<()> {
        let result = self.flush();
        self.inner.closed.store(true, Ordering::SeqCst);
        result
    }
}

impl Inner {
    fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.read().map(|s| s.clone()).unwrap_or_else(|p| p.into_inner().clone())
    }

    fn catalog(&self) -> Arc<Catalog> {
        self.snapshot().catalog.clone()
    }

    /// Replaces the snapshot by what `change` makes of the current one
    /// (it may install a version meanwhile); nothing when it fails.
    fn publish<T>(&self, change: impl FnOnce(&Snapshot) -> Result<(Snapshot, T)>) -> Result<T> {
        let _publish = lock(&self.publish);
        self.publish_locked(change)
    }

    /// [`Inner::publish`] for a caller that holds the publish lock.
    fn publish_locked<T>(&self, change: impl FnOnce(&Snapshot) -> Result<(Snapshot, T)>) -> Result<T> {
        let (next, out) = change(&self.snapshot())?;
        let next = Arc::new(next);
        match self.snapshot.write() {
            Ok(mut s) => *s = next,
            Err(p) => *p.into_inner() = next,
        }
        Ok(out)
    }

    fn check_writable(&self) -> Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::Closed);
        }
        if let Some(reason) = lock(&self.poisoned).clone() {
            return Err(Error::Poisoned { reason });
        }
        Ok(())
    }

    fn poison(&self, reason: String) {
        tracing::error!(%reason, "write path poisoned");
        lock(&self.poisoned).get_or_insert(reason);
    }

    /// A failed WAL step poisons the engine only if it poisoned the WAL (an
    /// fsync failed, or a failed step could not be undone); otherwise the
    /// WAL undid it and writes go on (see ARCHITECTURE.md, "I/O errors").
    fn wal_failed(&self, e: WalError) -> Error {
        if self.wal.is_poisoned() {
            self.poison(e.to_string());
        }
        e.into()
    }

    /// A failed append: [`Error::WriteNotStored`] when the WAL cut the
    /// record off again.
    fn append_failed(&self, e: WalError) -> Error {
        match e {
            WalError::Io { path, source } if !self.wal.is_poisoned() => Error::WriteNotStored { path, source },
            e => self.wal_failed(e),
        }
    }

    /// Tells the hooks about the current snapshot.
    fn installed(&self, cause: InstallCause) {
        if self.config.hooks.0.is_empty() {
            return;
        }
        let snapshot = self.snapshot();
        let stopping = || self.closed.load(Ordering::SeqCst) || lock(&self.signal).shutdown;
        let event = Installed { snapshot: &snapshot, cause, now_ns: self.clock.now_ns(), stopping: &stopping };
        for hook in &self.config.hooks.0 {
            hook.installed(&event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_fsync_poisons_the_write_path_and_keeps_acknowledged_data() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::builder(dir.path()).background(false).open().unwrap();
        engine.write_lp("db", "m v=1i 1", Precision::Nanosecond, WriteOptions::default()).unwrap();
        engine.inner.wal.fail_next_sync();
        let err = engine.write_lp("db", "m v=2i 2", Precision::Nanosecond, WriteOptions::default()).unwrap_err();
        assert!(matches!(err, Error::Wal(_)), "{err:?}");
        for _ in 0..2 {
            let err = engine.write_lp("db", "m v=3i 3", Precision::Nanosecond, WriteOptions::default()).unwrap_err();
            assert!(matches!(err, Error::Poisoned { .. }), "{err:?}");
        }
        let batch = arrow::array::RecordBatch::new_empty(Arc::new(arrow::datatypes::Schema::empty()));
        assert!(matches!(engine.write_batch("db", "m", &batch), Err(Error::Poisoned { .. })));
        // Reads still work; the acknowledged write is there after a reopen.
        assert!(!engine.scan("db", "m", &ScanRequest::all()).unwrap().is_empty());
        drop(engine);
        let engine = Engine::builder(dir.path()).background(false).open().unwrap();
        let rows: usize = engine.scan("db", "m", &ScanRequest::all()).unwrap().iter().map(|b| b.num_rows()).sum();
        assert!(rows >= 1);
        engine.write_lp("db", "m v=4i 4", Precision::Nanosecond, WriteOptions::default()).unwrap();
    }
}
