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
use crate::data_dir::{CATALOG_DIR, DataDir};
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

/// Configures and opens an [`Engine`].
#[derive(Debug)]
pub struct EngineBuilder {
    dir: PathBuf,
    config: Config,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdSource>,
}

impl EngineBuilder {
    /// Flush the buffer once it holds about this many bytes. Default 64 MiB.
    /// Writes wait while it holds [`STALL_FACTOR`] times this.
    #[must_use]
    pub fn flush_bytes(mut self, bytes: usize) -> Self {
        self.config.flush_bytes = bytes.max(1);
        self
    }

    /// The most memory the write buffer (active and flushing) may hold, as
    /// [`Engine::buffer_usage`] counts it. A write that alone would need more
    /// is refused with [`Error::BufferFull`] (HTTP 413); one that would push
    /// a full buffer over it while flushes catch up, with the same error
    /// (HTTP 503). Either is refused before it reaches the WAL. Default
    /// [`BUFFER_LIMIT_FACTOR`] times `flush_bytes` (512 MiB).
    #[must_use]
    pub fn max_buffer_bytes(mut self, bytes: usize) -> Self {
        self.config.max_buffer_bytes = Some(bytes.max(1));
        self
    }

    /// Flush the buffer once its oldest write is this old. Default 60 s.
    #[must_use]
    pub fn flush_age(mut self, age: Duration) -> Self {
        self.config.flush_age = age;
        self
    }

    /// WAL durability. Default [`Durability::Sync`].
    #[must_use]
    pub fn durability(mut self, durability: Durability) -> Self {
        self.config.durability = durability;
        self
    }

    /// Run background flushes and compactions. Default true; with false only
    /// explicit [`Engine::flush`] and [`Engine::compact`] calls do that work.
    #[must_use]
    pub fn background(mut self, on: bool) -> Self {
        self.config.background = on;
        self
    }

    /// Compact in the background. Default true.
    #[must_use]
    pub fn compaction(mut self, on: bool) -> Self {
        self.config.compaction = on;
        self
    }

    /// Compact once one table's 24h window has this many flushed (gen0)
    /// files waiting, or [`GEN0_FILES_LIMIT`] flushed files wait in all.
    /// Default 8. Flushes write a file per table and window, so a backfill
    /// that flushes ten windows at a time is compacted after 8 flushes,
    /// like a day of live data, not after every flush.
    #[must_use]
    pub fn compact_after_gen0_files(mut self, n: usize) -> Self {
        self.config.compact_gen0_files = n.max(1);
        self
    }

    /// Also compact once the oldest gen0 file has waited this long, however
    /// few there are, so that a slow trickle of writes still reaches the
    /// compacted 24h windows (which export reads). Default 10 minutes.
    #[must_use]
    pub fn compact_after_age(mut self, age: Duration) -> Self {
        self.config.compact_age = age;
        self
    }

    /// zstd level of flushed files (default 1) and compacted files (default 3).
    #[must_use]
    pub fn zstd_levels(mut self, gen0: i32, compacted: i32) -> Self {
        self.config.gen0.zstd_level = gen0;
        self.config.compacted.zstd_level = compacted;
        self
    }

    /// Rows per block in segment files. Default 65,536.
    #[must_use]
    pub fn block_rows(mut self, rows: u32) -> Self {
        let rows = rows.clamp(1, crate::segment::format::MAX_BLOCK_ROWS);
        self.config.gen0.block_rows = rows;
        self.config.compacted.block_rows = rows;
        self
    }

    /// The memory compaction may use for its merges, in bytes (default
    /// [`compact::DEFAULT_MEMORY`], 128 MiB). Compaction streams: it holds
    /// one decoded block per input file of the window being merged plus the
    /// output block being filled, and merges as many windows at once as
    /// fit. A window whose blocks alone need more is merged by itself (the
    /// budget is then exceeded by that window's blocks; see
    /// docs/ARCHITECTURE.md, "Compaction").
    #[must_use]
    pub fn compaction_memory(mut self, bytes: usize) -> Self {
        self.config.compaction_memory = bytes.max(1);
        self
    }

    /// Tells `hook` about every version the engine installs: at open, after
    /// each flush, compaction and restore (see [`InstallHook`]). The export
    /// cache keeps up with the compacted files this way
    /// ([`crate::export::cache::ExportCache::hook`]).
    #[must_use]
    pub fn on_install(mut self, hook: Arc<dyn InstallHook>) -> Self {
        self.config.hooks.0.push(hook);
        self
    }

    /// At most this many columns per table (tags, fields and `time`); a line
    /// or batch that would add more is rejected (existing columns stay
    /// writable). Default [`crate::catalog::DEFAULT_COLUMNS_PER_TABLE`] (500,
    /// as InfluxDB 3).
    #[must_use]
    pub fn columns_per_table(mut self, columns: usize) -> Self {
        self.config.limits.columns_per_table = columns;
        self
    }

    /// At most this many tables per database; a line or batch that would
    /// create one more is rejected (existing tables stay writable). Default
    /// [`crate::catalog::DEFAULT_TABLES_PER_DATABASE`] (10,000).
    #[must_use]
    pub fn tables_per_database(mut self, tables: usize) -> Self {
        self.config.limits.tables_per_database = tables;
        self
    }

    /// The catalog log is folded into a new catalog snapshot when it would
    /// pass this many bytes or the snapshot's size, whichever is larger.
    /// Default [`crate::catalog::CHECKPOINT_BYTES`] (4 MiB).
    #[must_use]
    pub fn catalog_checkpoint_bytes(mut self, bytes: u64) -> Self {
        self.config.catalog_checkpoint_bytes = bytes;
        self
    }

    /// The clock for lines without a timestamp and for flush ages. Default: the system clock.
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The id source. Default: [`RandomIds`].
    #[must_use]
    pub fn ids(mut self, ids: Arc<dyn IdSource>) -> Self {
        self.ids = ids;
        self
    }

    /// Opens the data folder (creating it), replays the WAL and starts the
    /// background threads.
    pub fn open(self) -> Result<Engine> {
        Engine::open_with(self)
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

/// Stops and joins the background threads when the last [`Engine`] clone goes.
struct Background {
    inner: Arc<Inner>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Ok(mut s) = self.inner.signal.lock() {
            s.shutdown = true;
        }
        self.inner.wake.notify_all();
        if let Ok(mut threads) = self.threads.lock() {
            for t in threads.drain(..) {
                let _ = t.join();
            }
        }
    }
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

    /// Reads `db`.`table`: buffered rows and files merged, newest write
    /// winning per value. See [`query`] for the output shape.
    pub fn scan(&self, db: &str, table: &str, req: &ScanRequest) -> Result<Vec<RecordBatch>> {
        self.scan_iter(db, table, req)?.collect()
    }

    /// [`Engine::scan`] as an iterator of batches. When the scan reads a
    /// single file section (the common case after compaction), blocks are
    /// decoded as the iterator is advanced, so memory stays at one batch; the
    /// pinned version keeps the files alive until the iterator is dropped.
    pub fn scan_iter(&self, db: &str, table: &str, req: &ScanRequest) -> Result<ScanIter> {
        self.scan_iter_counted(db, table, req, Arc::default())
    }

    /// [`Engine::scan_iter`], counting what it reads into `stats` as it
    /// goes (files, blocks, rows, bytes, and with
    /// [`ScanStats::probing_cache`] page-cache hits): the figures of query
    /// telemetry.
    pub fn scan_iter_counted(
        &self,
        db: &str,
        table: &str,
        req: &ScanRequest,
        stats: Arc<ScanStats>,
    ) -> Result<ScanIter> {
        let mut g = self.gather(db, table, req, &stats)?;
        if g.buffered.is_empty() && g.file_plans.len() == 1 {
            let scan = BlockScan::new(vec![g.file_plans.remove(0)], Arc::new(g.plan), g.table);
            return Ok(ScanIter { state: ScanState::Blocks(Box::new(scan)), stats });
        }
        g.merged(stats)
    }

    /// The scan of [`Engine::scan_iter_counted`] as at most `n` iterators
    /// that together return its rows, for readers that decode in parallel
    /// and need no order across them (SQL). When nothing is buffered and the
    /// files read do not overlap in time (compacted windows, or one file),
    /// their blocks are dealt out in contiguous runs of about equal rows,
    /// decoded lazily; each iterator's rows are sorted by series then time
    /// within a file. Otherwise the sources must be merged, and one iterator
    /// does it.
    pub fn scan_partitions(
        &self,
        db: &str,
        table: &str,
        req: &ScanRequest,
        n: usize,
        stats: Arc<ScanStats>,
    ) -> Result<Vec<ScanIter>> {
        let g = self.gather(db, table, req, &stats)?;
        if !g.buffered.is_empty() || !disjoint(&g.file_plans) {
            return Ok(vec![g.merged(stats)?]);
        }
        let plan = Arc::new(g.plan);
        let parts = deal_blocks(g.file_plans, n.max(1));
        Ok(parts
            .into_iter()
            .map(|sections| ScanIter {
                state: ScanState::Blocks(Box::new(BlockScan::new(sections, plan.clone(), g.table.clone()))),
                stats: stats.clone(),
            })
            .collect())
    }

    /// Resolves a scan and gathers its sources: the active buffer's rows,
    /// then a snapshot's frozen rows and planned file sections.
    fn gather(&self, db: &str, table: &str, req: &ScanRequest, stats: &ScanStats) -> Result<Gathered> {
        loop {
            stats.reset();
            if let Some(g) = self.gather_once(db, table, req, stats)? {
                return Ok(g);
            }
        }
    }

    /// None when a restore swapped in while the sources were gathered:
    /// they may mix the old and the restored data.
    fn gather_once(&self, db: &str, table: &str, req: &ScanRequest, stats: &ScanStats) -> Result<Option<Gathered>> {
        let first = self.snapshot();
        let database = first.catalog.database(db).ok_or_else(|| Error::DatabaseNotFound { db: db.to_string() })?;
        let table_def = database
            .table(table)
            .ok_or_else(|| Error::TableNotFound { db: db.to_string(), table: table.to_string() })?
            .clone();
        let plan = Plan::new(db, &table_def, req)?;

        // Data moves active -> frozen -> files; reading the active buffer
        // before the snapshot means a concurrent flush can only make us see
        // a row twice (merged away), never miss it.
        let active = {
            let buffer = lock(&self.inner.active);
            buffer_rows(&buffer, &plan, database.id, &table_def)?
        };
        let snapshot = self.snapshot();
        if snapshot.epoch != first.epoch {
            return Ok(None);
        }

        let mut buffered = Vec::new();
        for buffer in snapshot.frozen_buffers() {
            buffered.extend(buffer_rows(buffer, &plan, database.id, &table_def)?);
        }
        buffered.extend(active);
        let file_plans = query::plan_files(&plan, &table_def, database.id, &snapshot.version);
        let files: HashSet<u64> = file_plans.iter().map(|(f, _)| f.meta.id).collect();
        stats.add_files(files.len() as u64);
        stats.add_buffer_rows(buffered.iter().map(|r| r.len() as u64).sum());
        Ok(Some(Gathered { plan, table: table_def, file_plans, buffered }))
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

/// The batches of a scan; see [`Engine::scan_iter`].
pub struct ScanIter {
    state: ScanState,
    stats: Arc<ScanStats>,
}

enum ScanState {
    /// Batches computed up front (merges of several sources).
    Ready(std::vec::IntoIter<RecordBatch>),
    /// One file section, decoded block by block.
    Blocks(Box<BlockScan>),
}

struct BlockScan {
    /// File sections to read in turn; holding a file keeps it on disk.
    sections: std::vec::IntoIter<(Arc<crate::tree::LiveFile>, FamilyPlan)>,
    section: Option<(Arc<crate::tree::LiveFile>, FamilyPlan)>,
    next: usize,
    plan: Arc<Plan>,
    table: Arc<Table>,
    pending: std::vec::IntoIter<RecordBatch>,
}

impl BlockScan {
    fn new(sections: Vec<(Arc<crate::tree::LiveFile>, FamilyPlan)>, plan: Arc<Plan>, table: Arc<Table>) -> BlockScan {
        let mut sections = sections.into_iter();
        let section = sections.next();
        BlockScan { sections, section, next: 0, plan, table, pending: Vec::new().into_iter() }
    }
}

/// What a scan reads, gathered from one view of the engine.
struct Gathered {
    plan: Plan,
    table: Arc<Table>,
    file_plans: Vec<(Arc<crate::tree::LiveFile>, FamilyPlan)>,
    buffered: Vec<Rows>,
}

impl Gathered {
    /// Reads every source and merges them (newest write wins) into batches.
    fn merged(self, stats: Arc<ScanStats>) -> Result<ScanIter> {
        let mut sources = query::read_files(&self.file_plans, &stats)?;
        sources.extend(self.buffered.into_iter().map(|r| vec![r]));
        let batches = query::finish(&self.plan, &self.table, sources)?;
        Ok(ScanIter { state: ScanState::Ready(batches.into_iter()), stats })
    }
}

/// True when the planned sections can be read without a merge: one section
/// per file, files not overlapping in time (so no row key is in two).
fn disjoint(plans: &[(Arc<crate::tree::LiveFile>, FamilyPlan)]) -> bool {
    let mut ranges: Vec<(i64, i64, u64)> =
        plans.iter().map(|(f, _)| (f.meta.time_min, f.meta.time_max, f.meta.id)).collect();
    ranges.sort_unstable();
    ranges.windows(2).all(|w| w[0].2 != w[1].2 && w[0].1 < w[1].0)
}

/// Splits the blocks of `plans` into at most `n` runs of contiguous blocks
/// with about equal rows; each run is a list of sections.
fn deal_blocks(
    plans: Vec<(Arc<crate::tree::LiveFile>, FamilyPlan)>,
    n: usize,
) -> Vec<Vec<(Arc<crate::tree::LiveFile>, FamilyPlan)>> {
    let block_rows = |f: &crate::tree::LiveFile, p: &FamilyPlan| -> u64 {
        let fam = &f.reader.footer().families[p.family];
        u64::from(fam.block_rows).max(1)
    };
    let total: u64 = plans.iter().map(|(f, p)| block_rows(f, p) * p.blocks.len() as u64).sum();
    let share = total.div_ceil(n as u64).max(1);
    let mut parts: Vec<Vec<(Arc<crate::tree::LiveFile>, FamilyPlan)>> = vec![Vec::new()];
    let mut filled = 0u64;
    for (file, plan) in plans {
        let rows = block_rows(&file, &plan);
        let emptied = || {
            let mut p = plan.clone();
            p.blocks.clear();
            p
        };
        let mut current = emptied();
        for pick in &plan.blocks {
            if filled >= share && parts.len() < n {
                if !current.blocks.is_empty() {
                    let done = std::mem::replace(&mut current, emptied());
                    if let Some(p) = parts.last_mut() {
                        p.push((file.clone(), done));
                    }
                }
                parts.push(Vec::new());
                filled = 0;
            }
            current.blocks.push(*pick);
            filled += rows;
        }
        if !current.blocks.is_empty()
            && let Some(p) = parts.last_mut()
        {
            p.push((file.clone(), current));
        }
    }
    parts.retain(|p| !p.is_empty());
    parts
}

impl Iterator for ScanIter {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        let batch = self.next_batch();
        if let Some(Ok(b)) = &batch {
            self.stats.add_returned(b.num_rows() as u64);
        }
        batch
    }
}

impl std::fmt::Debug for ScanIter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanIter").field("read", &self.stats.figures()).finish_non_exhaustive()
    }
}

impl ScanIter {
    /// What the scan has read so far.
    pub fn stats(&self) -> &Arc<ScanStats> {
        &self.stats
    }

    fn next_batch(&mut self) -> Option<Result<RecordBatch>> {
        match &mut self.state {
            ScanState::Ready(batches) => batches.next().map(Ok),
            ScanState::Blocks(scan) => loop {
                if let Some(batch) = scan.pending.next() {
                    return Some(Ok(batch));
                }
                let (file, family) = scan.section.as_ref()?;
                let Some(&pick) = family.blocks.get(scan.next) else {
                    scan.section = scan.sections.next();
                    scan.next = 0;
                    continue;
                };
                scan.next += 1;
                self.stats.add_block(file.meta.level, file.reader.block_cost(family, &pick, self.stats.probes_cache()));
                let rows = match file.reader.read_block(family, &pick) {
                    Ok(Some(rows)) => rows,
                    Ok(None) => continue,
                    Err(e) => return Some(Err(e)),
                };
                match query::batches_of(&scan.plan, &scan.table, rows) {
                    Ok(batches) => scan.pending = batches.into_iter(),
                    Err(e) => return Some(Err(e)),
                }
            },
        }
    }
}

fn buffer_rows(buffer: &Buffer, plan: &Plan, db_id: u32, table: &Table) -> Result<Option<Rows>> {
    let Some(tb) = buffer.table(db_id, table.id) else { return Ok(None) };
    if plan.tag_filter.is_none() {
        return Ok(None);
    }
    let (lo, hi) = tb.time_range();
    if !plan.time.overlaps(lo, hi) {
        return Ok(None);
    }
    let filter = |k: &crate::series::SeriesKey| plan.series_matches(k);
    let series: Option<&dyn Fn(&crate::series::SeriesKey) -> bool> =
        if plan.tag_filter.as_ref().is_some_and(|f| f.is_empty()) { None } else { Some(&filter) };
    let rows =
        tb.rows(&Selection { columns: &plan.fields, time: plan.time, series, keep_null_rows: plan.keep_null_rows })?;
    Ok((!rows.is_empty()).then_some(rows))
}

/// An I/O error that kept a write from being logged, nothing of it applied.
fn not_stored(e: Error) -> Error {
    match e {
        Error::Io { path, source } => Error::WriteNotStored { path, source },
        e => e,
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

    /// Resolves a write against the catalog; persists a changed catalog
    /// before the write can reach the WAL, so replay always finds its ids.
    fn resolve(&self, f: impl Fn(&Catalog) -> Result<Resolved>, accept_partial: bool, db: &str) -> Result<Resolved> {
        let first = f(&self.catalog())?;
        // Before a new column reaches the catalog or a row the WAL.
        let request_bytes = Buffer::cost(&first.batch);
        if request_bytes > self.config.buffer_limit() {
            return Err(Error::BufferFull {
                request_bytes,
                buffered_bytes: 0,
                limit_bytes: self.config.buffer_limit(),
            });
        }
        if first.catalog.is_none() {
            return self.reject_unless_partial(first, accept_partial, db);
        }
        // New tables or columns: resolve again under the change lock so two
        // writers cannot both add conflicting columns.
        let _change = lock(&self.catalog_change);
        // A swap that failed after its commit poisoned the engine while this
        // waited: its catalog must not be written over.
        self.check_writable()?;
        let current = self.catalog();
        let mut resolved = f(&current)?;
        if !accept_partial && !resolved.errors.is_empty() {
            return self.reject_unless_partial(resolved, accept_partial, db);
        }
        if let Some(changed) = resolved.catalog.take() {
            self.catalog_store.persist(&changed).map_err(not_stored)?;
            self.publish(|s| Ok((Snapshot { catalog: Arc::new(changed), ..s.clone() }, ())))?;
        }
        Ok(resolved)
    }

    fn reject_unless_partial(&self, resolved: Resolved, accept_partial: bool, db: &str) -> Result<Resolved> {
        if !accept_partial && !resolved.errors.is_empty() {
            self.stats.lines_rejected.fetch_add(resolved.errors.len() as u64, Ordering::Relaxed);
            return Err(Error::WriteRejected { db: db.to_string(), errors: resolved.errors });
        }
        Ok(resolved)
    }

    /// Backpressure: while the active buffer holds [`STALL_FACTOR`] times
    /// `flush_bytes` (writers outpace the flush thread), a write waits for a
    /// flush to take the buffer. The wait is bounded, so a flush that keeps
    /// failing slows writers down instead of hanging them.
    fn throttle(&self) {
        if !self.config.background {
            return;
        }
        let stall = self.config.flush_bytes.saturating_mul(STALL_FACTOR);
        if lock(&self.active).bytes() < stall {
            return;
        }
        self.stats.write_stalls.fetch_add(1, Ordering::Relaxed);
        for _ in 0..50 {
            {
                let mut signal = lock(&self.signal);
                if signal.shutdown {
                    return;
                }
                signal.flush_wanted = true;
                self.wake.notify_all();
                let _ = self.wake.wait_timeout(signal, Duration::from_millis(20));
            }
            if lock(&self.active).bytes() < stall {
                return;
            }
        }
    }

    /// WAL append and buffer insert in one critical section (so the buffer
    /// holds writes in WAL order), then the group-commit fsync outside it.
    /// False, with nothing applied, when a restore swapped the data in since
    /// `epoch` (the batch was resolved against a catalog that is gone):
    /// resolve it again.
    fn apply(&self, batch: WriteBatch, no_sync: bool, epoch: u64) -> Result<bool> {
        let rows = batch.row_count();
        if rows == 0 {
            return Ok(true);
        }
        self.throttle();
        let payload = batch.encode();
        let request_bytes = Buffer::cost(&batch);
        let (pos, flush_due) = {
            let mut active = lock(&self.active);
            self.check_writable()?;
            let snapshot = self.snapshot();
            if snapshot.epoch != epoch {
                return Ok(false);
            }
            // Flushes that fail or fall behind keep their buffers frozen:
            // count them too, so memory stays bounded either way.
            let (_, frozen) = snapshot.frozen_usage();
            drop(snapshot);
            let buffered_bytes = active.bytes() + frozen;
            let limit_bytes = self.config.buffer_limit();
            if request_bytes.saturating_add(buffered_bytes) > limit_bytes {
                drop(active);
                lock(&self.signal).flush_wanted = true;
                self.wake.notify_all();
                return Err(Error::BufferFull { request_bytes, buffered_bytes, limit_bytes });
            }
            let pos = self.wal.append(&payload).map_err(|e| self.append_failed(e))?;
            active.insert(&batch, self.clock.now_ns());
            (pos, active.bytes() >= self.config.flush_bytes)
        };
        if flush_due {
            lock(&self.signal).flush_wanted = true;
            self.wake.notify_all();
        }
        if !no_sync
            && self.config.durability == Durability::Sync
            && let Err(e) = self.wal.sync(pos)
        {
            self.poison(e.to_string());
            return Err(e.into());
        }
        // Logged before a restore's swap, which rolled it back with the rest:
        // say so rather than acknowledge data that is gone.
        if self.snapshot().epoch != epoch {
            return Err(Error::RolledBack);
        }
        self.stats.writes.fetch_add(1, Ordering::Relaxed);
        self.stats.rows_written.fetch_add(rows as u64, Ordering::Relaxed);
        Ok(true)
    }

    fn swap_in(&self, restore_id: &str, mut catalog: Catalog, files: Vec<(FileMeta, SegmentReader)>) -> Result<()> {
        self.check_writable()?;
        // Lock order: compaction, flush, catalog changes, the buffer (which
        // fences writes), version installs.
        let _compact = lock(&self.compact_serial);
        let _flush = lock(&self.flush_serial);
        let _change = lock(&self.catalog_change);
        let mut active = lock(&self.active);
        let _publish = lock(&self.publish);
        let _install = self.tree.install_lock()?;
        self.check_writable()?;
        let wal_from = self.wal.rotate().map_err(|e| self.wal_failed(e))?;
        let old = self.tree.current();
        // Above every snapshot on disk too: one a failed persist left behind
        // must not outrank the restored catalog at the next open.
        let on_disk = self.catalog_store.load_latest()?.sequence;
        catalog.sequence = self.snapshot().catalog.sequence.max(old.record.catalog_sequence).max(on_disk) + 1;
        let next_file_id =
            files.iter().map(|(m, _)| m.id.saturating_add(1)).max().unwrap_or(1).max(old.record.next_file_id);
        let record = SwapRecord {
            restore_id: restore_id.to_string(),
            catalog: catalog.encode(),
            version: VersionRecord {
                number: old.record.number + 1,
                catalog_sequence: catalog.sequence,
                wal_replay_from: wal_from,
                next_file_id,
                files: files.iter().map(|(m, _)| m.clone()).collect(),
            },
        };
        // From the first byte of the commit record on, the restore may have
        // happened (a failed commit may still have left the record): if this
        // does not finish, nothing may change the old state any more, since
        // the next open applies the record over it.
        if let Err(e) = swap::commit(&self.dir, &record) {
            let path = self.dir.join(swap::SWAP_FILE);
            if matches!(std::fs::symlink_metadata(&path), Err(ref m) if m.kind() == std::io::ErrorKind::NotFound) {
                // Nothing was published: the old state stands.
                return Err(e);
            }
            self.tree.seal();
            self.poison(format!("restore {restore_id} may have committed ({e}); reopen to finish it"));
            return Err(e);
        }
        // The swap wrote the catalog folder through a store of its own: the
        // next change here starts a snapshot rather than append to a log it
        // may have replaced.
        self.catalog_store.forget();
        if let Err(e) = swap::apply(&self.dir, &record) {
            self.tree.seal();
            self.poison(format!("restore {restore_id} committed but was not applied ({e}); reopen to finish it"));
            return Err(e);
        }
        // Catalog, files and epoch at once: a writer that resolved against
        // the old catalog finds the epoch moved and resolves again.
        let version = self.tree.replace(record.version, files);
        let rolled_back = mem::take(&mut *active);
        let old_snapshot = self.snapshot();
        self.publish_locked(|s| {
            Ok((Snapshot { catalog: Arc::new(catalog), version, frozen: Vec::new(), epoch: s.epoch + 1 }, ()))
        })?;
        drop(active);
        // Freed outside the fence: large buffers take a while to drop.
        drop(rolled_back);
        drop(old_snapshot);
        if let Err(e) = self.wal.remove_files_before(wal_from) {
            tracing::warn!(error = %e, "could not remove WAL files a restore rolled back; the next open skips them");
        }
        tracing::info!(restore = restore_id, "restore swapped in");
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        let _serial = lock(&self.flush_serial);
        {
            let mut active = lock(&self.active);
            if active.rows() > 0 {
                let wal_next = self.wal.rotate().map_err(|e| self.wal_failed(e))?;
                let buffer = Arc::new(mem::take(&mut *active));
                self.publish(|s| {
                    let mut next = s.clone();
                    next.frozen.push(Frozen { buffer, wal_next });
                    Ok((next, ()))
                })?;
            }
        }
        loop {
            let snapshot = self.snapshot();
            let Some(Frozen { buffer, wal_next }) = snapshot.frozen.first().cloned() else { break };
            let catalog = snapshot.catalog.clone();
            drop(snapshot);
            let files = self.write_gen0(&buffer, &catalog)?;
            // The files and the buffer's leaving in one snapshot: a reader
            // sees the rows in one or the other.
            self.publish(|s| {
                let version = self.tree.install(Edit {
                    add: files,
                    wal_replay_from: Some(wal_next),
                    catalog_sequence: Some(catalog.sequence),
                    ..Edit::default()
                })?;
                let frozen = s.frozen.iter().filter(|f| !Arc::ptr_eq(&f.buffer, &buffer)).cloned().collect();
                Ok((Snapshot { version, frozen, ..s.clone() }, ()))
            })?;
            self.wal.remove_files_before(wal_next)?;
            self.stats.flushes.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Writes the buffer's rows as gen0 files: one per table and 24h window,
    /// so a compaction reads only the files of the windows it merges (a
    /// backfill in series order would otherwise flush files that each
    /// span every window it covers).
    fn write_gen0(&self, buffer: &Buffer, catalog: &Catalog) -> Result<Vec<FileMeta>> {
        let now = self.clock.now_ns();
        let tables: Vec<_> = buffer.tables().collect();
        let results: Vec<(Option<PathBuf>, Result<FileMeta>)> = tables
            .par_iter()
            .flat_map_iter(|&((db_id, table_id), tb)| {
                let mut out = Vec::new();
                let prepared = (|| -> Result<(TableInfo, &crate::catalog::Table, Vec<FamilyRows>)> {
                    let database = catalog.database_by_id(db_id).ok_or_else(|| Error::Corrupt {
                        path: self.dir.join(CATALOG_DIR),
                        what: format!("buffered rows for database id {db_id}, which the catalog lacks"),
                    })?;
                    let table = database.table_by_id(table_id).ok_or_else(|| Error::Corrupt {
                        path: self.dir.join(CATALOG_DIR),
                        what: format!(
                            "buffered rows for table id {table_id} of {}, which the catalog lacks",
                            database.name
                        ),
                    })?;
                    // Buffered columns by family in one pass: a wide table has
                    // hundreds of families.
                    let mut by_family: Vec<Vec<u32>> = vec![Vec::new(); table.families.len()];
                    for id in tb.column_ids() {
                        if let Some(ids) =
                            table.column_by_id(id).and_then(|c| c.family).and_then(|f| by_family.get_mut(f as usize))
                        {
                            ids.push(id);
                        }
                    }
                    let mut families = Vec::new();
                    for (family, ids) in table.families.iter().zip(by_family) {
                        if ids.is_empty() {
                            continue;
                        }
                        let rows = tb.rows(&Selection {
                            columns: &ids,
                            time: TimeRange::ALL,
                            series: None,
                            keep_null_rows: false,
                        })?;
                        families.push((family.clone(), rows));
                    }
                    let info = TableInfo { db_id, db: database.name.clone(), table_id, table: table.name.clone() };
                    Ok((info, table, families))
                })();
                match prepared {
                    Err(e) => out.push((None, Err(e))),
                    Ok((info, table, families)) => {
                        let write = |families: Result<Vec<FamilyRows>>| {
                            let (id, path) = self.tree.allocate();
                            let written = families.and_then(|families| {
                                write_segment(&path, &info, &table.columns, families, self.config.gen0, now)
                            });
                            (
                                Some(path),
                                written.map(|w| FileMeta::written(id, (db_id, table_id), LEVEL_GEN0, None, &w)),
                            )
                        };
                        let parts = crate::tree::window_parts(&families);
                        if parts.len() == 1 {
                            out.push(write(Ok(families)));
                        } else {
                            for (_, part) in &parts {
                                // One window at a time: only its rows are copied.
                                let taken = part
                                    .iter()
                                    .map(|(f, idx)| Ok((families[*f].0.clone(), families[*f].1.take(idx)?)))
                                    .collect();
                                out.push(write(taken));
                                if out.last().is_some_and(|(_, r)| r.is_err()) {
                                    break;
                                }
                            }
                        }
                    }
                }
                out
            })
            .collect();
        crate::tree::keep_all_or_discard(results)
    }

    fn compact(&self) -> Result<()> {
        let compacted = self.compact_serially();
        // Outside the compaction lock, which a restore swap takes first;
        // also after a failed job, which may follow installed ones.
        if compacted.as_ref().is_ok_and(|&n| n > 0) || compacted.is_err() {
            self.installed(InstallCause::Compaction);
        }
        compacted.map(|_| ())
    }

    /// Runs the compaction jobs; returns how many installed.
    fn compact_serially(&self) -> Result<usize> {
        let _serial = lock(&self.compact_serial);
        let snapshot = self.snapshot();
        let jobs = compact::plan(&snapshot.version);
        let mut installed = 0;
        let catalog = snapshot.catalog.clone();
        drop(snapshot);
        for job in jobs {
            let Some(database) = catalog.database_by_id(job.db_id) else { continue };
            let Some(table) = database.table_by_id(job.table_id) else { continue };
            let edit = compact::run(
                &job,
                &self.tree,
                &database.name,
                table,
                self.config.compacted,
                self.clock.now_ns(),
                self.config.compaction_memory,
            )?;
            drop(job);
            self.publish(|s| {
                let version = self.tree.install(edit)?;
                Ok((Snapshot { version, ..s.clone() }, ()))
            })?;
            self.stats.compactions.fetch_add(1, Ordering::Relaxed);
            installed += 1;
        }
        Ok(installed)
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

    /// A flush, and the hooks told when it installed files.
    fn flush_and_tell(&self) -> Result<()> {
        let before = self.stats.flushes.load(Ordering::SeqCst);
        let flushed = self.flush();
        if self.stats.flushes.load(Ordering::SeqCst) != before {
            self.installed(InstallCause::Flush);
        }
        flushed
    }

    /// Flushed files waiting for compaction: in all, and the most that
    /// reach one table's window.
    fn gen0_pressure(&self) -> (usize, usize) {
        let version = self.tree.current();
        let mut per_window: HashMap<(u32, u32, i64), usize> = HashMap::new();
        let mut total = 0;
        for f in version.files.iter().filter(|f| f.meta.level == LEVEL_GEN0) {
            total += 1;
            let m = &f.meta;
            let (first, last) = (crate::tree::window_start(m.time_min), crate::tree::window_start(m.time_max));
            // Files written before flushes split by window may span many;
            // each counts for its first and last.
            let windows: &[i64] = if first == last { &[first] } else { &[first, last] };
            for &w in windows {
                *per_window.entry((m.db_id, m.table_id, w)).or_default() += 1;
            }
        }
        (total, per_window.into_values().max().unwrap_or(0))
    }

    /// Waits up to `timeout` for a wake-up; false on shutdown.
    fn wait(&self, timeout: Duration) -> bool {
        let signal = lock(&self.signal);
        if signal.shutdown {
            return false;
        }
        let (signal, _) = self.wake.wait_timeout(signal, timeout).unwrap_or_else(|p| p.into_inner());
        !signal.shutdown
    }

    fn flush_loop(&self) {
        let tick = (self.config.flush_age / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        while self.wait(tick) {
            let wanted = mem::take(&mut lock(&self.signal).flush_wanted);
            let due = {
                let active = lock(&self.active);
                let age_due = active
                    .first_write_ns()
                    .is_some_and(|t| self.clock.now_ns().saturating_sub(t) >= self.config.flush_age.as_nanos() as i64);
                active.bytes() >= self.config.flush_bytes || age_due
            };
            if (wanted || due) && !self.closed.load(Ordering::SeqCst) {
                if let Err(e) = self.flush_and_tell() {
                    tracing::error!(error = %e, "background flush failed; the data stays in the WAL and will be retried");
                    std::thread::sleep(Duration::from_secs(1));
                }
                self.wake.notify_all();
            }
            self.stats.flush_checks.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn compact_loop(&self) {
        let tick = (self.config.compact_age / 4).clamp(Duration::from_millis(50), Duration::from_millis(500));
        // When this loop first saw gen0 files waiting (by the engine's clock).
        let mut waiting_since: Option<i64> = None;
        while self.wait(tick) {
            let (gen0, deepest) = self.gen0_pressure();
            let now = self.clock.now_ns();
            let since = match gen0 {
                0 => None,
                _ => Some(*waiting_since.get_or_insert(now)),
            };
            waiting_since = since;
            let aged = since.is_some_and(|t| now.saturating_sub(t) >= self.config.compact_age.as_nanos() as i64);
            let due = deepest >= self.config.compact_gen0_files || gen0 >= GEN0_FILES_LIMIT;
            if gen0 > 0 && (due || aged) {
                match self.compact() {
                    Ok(()) => waiting_since = None,
                    Err(e) => {
                        tracing::error!(error = %e, "background compaction failed; will retry");
                        std::thread::sleep(Duration::from_secs(5));
                    }
                }
            }
            self.stats.compaction_checks.fetch_add(1, Ordering::Relaxed);
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
