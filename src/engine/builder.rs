//! The engine's settings: [`EngineBuilder`].

use super::*;

/// Configures and opens an [`Engine`].
#[derive(Debug)]
pub struct EngineBuilder {
    pub(super) dir: PathBuf,
    pub(super) config: Config,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) ids: Arc<dyn IdSource>,
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
