//! Export of compacted data as Parquet: which databases, tables and 24h UTC
//! windows can be exported, and the writing of one window as a Parquet file
//! or of several as a tar of Parquet files. This is what the
//! `/api/v3/export/*` endpoints and `quipu export` are built on, and an
//! embedder can call it directly.
//!
//! As in the reference, only compacted data is exported: a window is
//! exportable once compaction has written its file, and the export holds
//! exactly that file's rows (writes still in the buffer or in flushed files
//! appear after the next compaction).
//!
//! A [`TableExport`] pins the version it was made from, so its files stay on
//! disk until it is dropped, whatever compaction does meanwhile. Memory stays
//! bounded: a window is read block by block (a group of series at a time when
//! the table has several column families) and written as Parquet row groups.
//! In a tar, each Parquet file is first written to a file, because a tar
//! header needs the size before the bytes: an entry of the export cache
//! ([`cache`]), which the next export of the same window streams instead of
//! converting again.
//!
//! The Parquet layout (one file per window, zstd, tags dictionary-encoded,
//! `time` as `timestamp[ns, UTC]`) is specified in docs/FORMAT.md.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::{self, Read as _, Seek, SeekFrom, Write};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, TimestampNanosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use chrono::{DateTime, NaiveDate};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::{ArrowColumnChunk, ArrowColumnWriter, ArrowRowGroupWriterFactory, compute_leaves};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::column::writer::ColumnCloseResult;
use parquet::errors::ParquetError;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::ColumnPath;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, ColumnKind, FieldType, TIME_COLUMN, Table};
use crate::error::{Error, IoContext, Result};
use crate::hash::{HashingReader, HashingWriter};
use crate::query::{self, Plan};
use crate::rows::Rows;
use crate::segment::Read;
use crate::series::SeriesKey;
use crate::time_range::TimeRange;
use crate::tree::{LEVEL_COMPACTED, LiveFile, Version, window_end, window_start, window_start_of_day};
use crate::write::TAG_METADATA_KEY;
use crate::{Engine, ScanRequest};

pub mod cache;
mod tag_chunk;
mod warm;
use cache::{CacheKey, ExportCache, Spool};
use tag_chunk::TagChunk;

/// The zstd level of exported Parquet.
pub const PARQUET_ZSTD_LEVEL: i32 = 1;
/// Read size when streaming a spooled or cached Parquet file.
const CACHE_READ_BYTES: usize = 256 << 10;
/// Rows per Parquet row group, by default.
pub const ROW_GROUP_ROWS: usize = 1 << 20;
/// Batches decoded ahead of the Parquet encoder.
const DECODE_AHEAD: usize = 4;
/// Rows merged at once when a table has several column families, by default.
const SERIES_GROUP_ROWS: usize = 1 << 18;
/// Changes whenever the bytes of an export change for the same input
/// (writer settings, layout): part of every export cache key.
const LAYOUT: &str = "quipu export parquet 1";
/// Format of a window's name: its first day, UTC.
const WINDOW_FORMAT: &str = "%Y-%m-%d";

/// One compacted 24h UTC window of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowInfo {
    /// The window's UTC date, `YYYY-MM-DD`: what `windows=` takes.
    pub window: String,
    /// First nanosecond of the window (inclusive; `i64::MIN` for the
    /// first window, 1677-09-21, which begins before it).
    pub start_ns: i64,
    /// End of the window (exclusive), except for the last window,
    /// 2262-04-11, which ends at `i64::MAX` and holds it too.
    pub end_ns: i64,
    /// Rows in the compacted file.
    pub rows: u64,
    /// Oldest and newest timestamp in the window.
    pub time_min_ns: i64,
    pub time_max_ns: i64,
    /// Size of the compacted segment file (the Parquet size differs).
    pub segment_bytes: u64,
}

/// The date name of the window starting at `start_ns`.
pub fn window_name(start_ns: i64) -> String {
    DateTime::from_timestamp_nanos(start_ns).format(WINDOW_FORMAT).to_string()
}

/// Parses a window name (`YYYY-MM-DD`) into the window's start in ns.
pub fn parse_window(name: &str) -> Result<i64> {
    let bad = |why: &str| Error::InvalidArgument(format!("window {name:?}: {why}"));
    // chrono accepts unpadded fields; a window has exactly one spelling.
    if name.len() != 10 {
        return Err(bad("expected a UTC date as YYYY-MM-DD"));
    }
    let date = NaiveDate::parse_from_str(name, WINDOW_FORMAT).map_err(|_| bad("expected a UTC date as YYYY-MM-DD"))?;
    let day = (date - DateTime::UNIX_EPOCH.date_naive()).num_days();
    let start = window_start_of_day(day);
    // The first and last windows are cut by the i64 range; a day beyond them
    // holds no timestamp at all.
    if window_start(start) == start && window_name(start) == name {
        Ok(start)
    } else {
        Err(bad("outside the nanosecond timestamp range (1677-09-21 to 2262-04-11)"))
    }
}

/// Parses the `windows=` list: comma-separated window names, blanks
/// ignored, duplicates removed, in time order. An empty list means all.
pub fn parse_window_list(list: &str) -> Result<Vec<i64>> {
    let set: BTreeSet<i64> =
        list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(parse_window).collect::<Result<_>>()?;
    Ok(set.into_iter().collect())
}

fn compacted(version: &Version) -> impl Iterator<Item = &Arc<LiveFile>> {
    version.files.iter().filter(|f| f.meta.level == LEVEL_COMPACTED && f.meta.window_start_ns.is_some())
}

/// Databases with at least one compacted window, sorted.
pub fn databases(engine: &Engine) -> Vec<String> {
    let snapshot = engine.snapshot();
    let catalog = snapshot.catalog();
    let ids: BTreeSet<u32> = compacted(snapshot.version()).map(|f| f.meta.db_id).collect();
    let mut names: Vec<String> =
        ids.into_iter().filter_map(|id| catalog.database_by_id(id).map(|d| d.name.clone())).collect();
    names.sort();
    names
}

/// Tables of `db` with at least one compacted window, sorted.
/// [`Error::DatabaseNotFound`] when `db` does not exist.
pub fn tables(engine: &Engine, db: &str) -> Result<Vec<String>> {
    let snapshot = engine.snapshot();
    let database = snapshot.catalog().database(db).ok_or_else(|| Error::DatabaseNotFound { db: db.to_string() })?;
    let ids: BTreeSet<u32> =
        compacted(snapshot.version()).filter(|f| f.meta.db_id == database.id).map(|f| f.meta.table_id).collect();
    let mut names: Vec<String> =
        ids.into_iter().filter_map(|id| database.table_by_id(id).map(|t| t.name.clone())).collect();
    names.sort();
    Ok(names)
}

/// The compacted windows of `db`.`table`, oldest first.
/// [`Error::DatabaseNotFound`] / [`Error::TableNotFound`] when they do not exist.
pub fn windows(engine: &Engine, db: &str, table: &str) -> Result<Vec<WindowInfo>> {
    let snapshot = engine.snapshot();
    let cache = Arc::new(ExportCache::disabled());
    let export = TableExport::pinned(snapshot.version().clone(), snapshot.catalog(), cache, 0, db, table, &[])?;
    Ok(export.windows)
}

/// What one exported Parquet file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParquetSummary {
    pub rows: u64,
    pub bytes: u64,
}

/// A pinned, validated export of some windows of one table.
pub struct TableExport {
    db: String,
    table: Arc<Table>,
    /// Every column: tags by name, fields by name, time last.
    plan: Plan,
    schema: Arc<Schema>,
    windows: Vec<WindowInfo>,
    files: Vec<Arc<LiveFile>>,
    /// Where converted windows are kept, and tar export spools each Parquet file.
    cache: Arc<ExportCache>,
    /// Modification time written into tar headers (the engine's clock).
    mtime_secs: u64,
    row_group_rows: usize,
    series_group_rows: usize,
    /// Keeps every file of the version on disk while the export lives.
    _version: Arc<Version>,
}

impl std::fmt::Debug for TableExport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableExport")
            .field("db", &self.db)
            .field("table", &self.table.name)
            .field("windows", &self.windows)
            .finish_non_exhaustive()
    }
}

impl TableExport {
    /// Pins the compacted windows `wanted` (window starts in ns, from
    /// [`parse_window_list`]; empty for all) of `db`.`table`.
    /// Errors: [`Error::DatabaseNotFound`], [`Error::TableNotFound`],
    /// [`Error::WindowNotFound`] for a wanted window that is not compacted.
    pub fn new(
        engine: &Engine,
        cache: &Arc<ExportCache>,
        db: &str,
        table: &str,
        wanted: &[i64],
    ) -> Result<TableExport> {
        let snapshot = engine.snapshot();
        crate::failpoint::pause("export.pinned");
        TableExport::pinned(
            snapshot.version().clone(),
            snapshot.catalog(),
            cache.clone(),
            engine.now_ns(),
            db,
            table,
            wanted,
        )
    }

    /// [`TableExport::new`] on a version and its catalog (of one snapshot).
    pub(crate) fn pinned(
        version: Arc<Version>,
        catalog: &Catalog,
        cache: Arc<ExportCache>,
        now_ns: i64,
        db: &str,
        table: &str,
        wanted: &[i64],
    ) -> Result<TableExport> {
        let database = catalog.database(db).ok_or_else(|| Error::DatabaseNotFound { db: db.to_string() })?;
        let table_def = database
            .table(table)
            .ok_or_else(|| Error::TableNotFound { db: db.to_string(), table: table.to_string() })?
            .clone();
        let mut by_window: Vec<(i64, Arc<LiveFile>)> = compacted(&version)
            .filter(|f| f.meta.db_id == database.id && f.meta.table_id == table_def.id)
            .filter_map(|f| f.meta.window_start_ns.map(|w| (w, f.clone())))
            .collect();
        by_window.sort_by_key(|(w, f)| (*w, f.meta.id));
        if let Some(missing) = wanted.iter().find(|w| !by_window.iter().any(|(s, _)| s == *w)) {
            return Err(Error::WindowNotFound {
                db: db.to_string(),
                table: table.to_string(),
                window: window_name(*missing),
            });
        }
        let (windows, files) = by_window
            .into_iter()
            .filter(|(w, _)| wanted.is_empty() || wanted.contains(w))
            .map(|(w, f)| {
                let info = WindowInfo {
                    window: window_name(w),
                    start_ns: w,
                    end_ns: window_end(w),
                    rows: f.meta.rows,
                    time_min_ns: f.meta.time_min,
                    time_max_ns: f.meta.time_max,
                    segment_bytes: f.meta.size,
                };
                (info, f)
            })
            .unzip();
        let plan = Plan::new(db, &table_def, &ScanRequest::all())?;
        let schema = export_schema(&table_def, &plan);
        Ok(TableExport {
            db: db.to_string(),
            table: table_def,
            plan,
            schema,
            windows,
            files,
            cache,
            mtime_secs: u64::try_from(now_ns / 1_000_000_000).unwrap_or(0),
            row_group_rows: ROW_GROUP_ROWS,
            series_group_rows: SERIES_GROUP_ROWS,
            _version: version,
        })
    }

    /// Sets the rows per Parquet row group (default [`ROW_GROUP_ROWS`]); a
    /// table with several column families is then also merged in groups of
    /// series of about a quarter of that. Smaller groups use less memory and
    /// let readers skip more; larger ones compress a little better.
    #[must_use]
    pub fn row_group_rows(mut self, rows: usize) -> Self {
        self.row_group_rows = rows.max(1);
        self.series_group_rows = (rows / 4).max(1);
        self
    }

    /// The windows of this export, oldest first.
    pub fn windows(&self) -> &[WindowInfo] {
        &self.windows
    }

    /// The tar entry name of window `i`: `<table>/<YYYY-MM-DD>.parquet`, the
    /// table name with every byte outside `[A-Za-z0-9_-]` percent-encoded so
    /// that no name can leave the folder it is unpacked into.
    pub fn entry_name(&self, i: usize) -> String {
        let window = self.windows.get(i).map_or("", |w| w.window.as_str());
        format!("{}/{window}.parquet", safe_file_name(&self.table.name))
    }

    /// The Arrow schema of the exported Parquet files.
    pub fn schema(&self) -> Arc<Schema> {
        self.schema.clone()
    }

    /// Writes window `i` as one Parquet file to `out`. Columns are encoded
    /// in parallel (rayon), a row group at a time.
    pub fn write_parquet<W: Write + Send>(&self, i: usize, out: W) -> Result<ParquetSummary> {
        let file = self
            .files
            .get(i)
            .ok_or_else(|| Error::InvalidArgument(format!("window index {i} out of {}", self.files.len())))?;
        let schema = &self.schema;
        let path = file.path.clone();
        let fail = |e: ParquetError| Error::Export { path: path.clone(), what: e.to_string() };
        let props = self.writer_properties(&self.windows[i].window);
        let mut encoder = Encoder::new(out, schema, props, self.row_group_rows).map_err(fail)?;
        // Decoding the segment overlaps with encoding Parquet: a reader
        // thread hands batches over a short queue.
        let (tx, rx) = std::sync::mpsc::sync_channel::<RecordBatch>(DECODE_AHEAD);
        let table = &self.table;
        let plan = &self.plan;
        let series_group_rows = self.series_group_rows;
        std::thread::scope(|scope| -> Result<()> {
            let reader = scope.spawn(move || {
                for_each_batch(file, table, plan, series_group_rows, |batch| tx.send(batch).map_err(|_| Error::Closed))
            });
            let written = (|| -> Result<()> {
                for batch in &rx {
                    encoder.push(&with_export_schema(schema, batch)?).map_err(fail)?;
                }
                Ok(())
            })();
            // On a write error, dropping the receiver stops the reader.
            drop(rx);
            let read = reader
                .join()
                .map_err(|_| Error::Export { path: path.clone(), what: "segment reader panicked".into() })?;
            written?;
            read
        })?;
        encoder.finish().map_err(fail)
    }

    /// A hash of what this build's writer makes of a small batch with a
    /// value and a null of every column of the export, under the writer
    /// properties of an unnamed window: part of every cache key, so that a change of the
    /// writer (its settings, the parquet or zstd crate) gives new keys
    /// even when the quipu version stays the same.
    fn writer_fingerprint(&self) -> Result<[u8; 32]> {
        let fail = |e: ParquetError| Error::Export { path: "export writer fingerprint".into(), what: e.to_string() };
        let batch = sample_batch(&self.schema)?;
        let mut out = HashingWriter::new(io::sink());
        let mut encoder =
            Encoder::new(&mut out, &self.schema, self.writer_properties(""), self.row_group_rows).map_err(fail)?;
        encoder.push(&batch).map_err(fail)?;
        encoder.finish().map_err(fail)?;
        Ok(out.hash())
    }

    fn writer_properties(&self, window: &str) -> WriterProperties {
        let mut props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(PARQUET_ZSTD_LEVEL).unwrap_or_default()))
            .set_max_row_group_row_count(Some(self.row_group_rows))
            .set_statistics_enabled(EnabledStatistics::Chunk)
            .set_created_by(format!("quipu {}", env!("CARGO_PKG_VERSION")))
            .set_key_value_metadata(Some(vec![
                KeyValue::new("quipu.database".into(), self.db.clone()),
                KeyValue::new("quipu.table".into(), self.table.name.clone()),
                KeyValue::new("quipu.window".into(), window.to_string()),
            ]))
            .set_column_encoding(TIME_COLUMN.into(), Encoding::DELTA_BINARY_PACKED)
            .set_column_dictionary_enabled(TIME_COLUMN.into(), false);
        for col in &self.table.columns {
            let path = ColumnPath::from(col.name.as_str());
            // Dictionaries pay for tags and (usually) string fields; numbers
            // rarely repeat enough, and zstd does better on a transposed or
            // delta-packed stream.
            props = match col.kind {
                ColumnKind::Tag | ColumnKind::Field(FieldType::String) => {
                    props.set_column_dictionary_enabled(path, true)
                }
                ColumnKind::Field(FieldType::Integer | FieldType::UInteger) => props
                    .set_column_dictionary_enabled(path.clone(), false)
                    .set_column_encoding(path, Encoding::DELTA_BINARY_PACKED),
                ColumnKind::Field(FieldType::Float) => props
                    .set_column_dictionary_enabled(path.clone(), false)
                    .set_column_encoding(path, Encoding::BYTE_STREAM_SPLIT),
                ColumnKind::Field(FieldType::Boolean) => props.set_column_dictionary_enabled(path, false),
            };
        }
        props.build()
    }

    /// Writes every window of the export as a tar of Parquet files (entry
    /// names from [`TableExport::entry_name`]) to `out`, calling `progress`
    /// after each window. Returns the summary of each file.
    ///
    /// A window converted before is streamed from the export cache (see
    /// [`cache`]), its bytes hashed on the way and compared with the entry's
    /// name; a mismatch removes the entry and fails the export, which has
    /// then written part of the tar. A window not in the cache is converted
    /// into a new entry first (a tar header needs the size before the bytes).
    pub fn write_tar<W: Write>(&self, out: W, mut progress: impl FnMut(usize)) -> Result<Vec<ParquetSummary>> {
        let mut tar = tar::Builder::new(out);
        let mut summaries = Vec::with_capacity(self.windows.len());
        for i in 0..self.windows.len() {
            let name = self.entry_name(i);
            let mut header = tar::Header::new_gnu();
            header.set_mode(0o644);
            header.set_mtime(self.mtime_secs);
            header.set_entry_type(tar::EntryType::Regular);
            let key = self.cache_key(i)?;
            if let Some(cached) = self.cache.get(&key) {
                header.set_size(cached.len);
                let mut reader =
                    HashingReader::new(io::BufReader::with_capacity(CACHE_READ_BYTES, &cached.file).take(cached.len));
                let appended = tar.append_data(&mut header, &name, &mut reader);
                if reader.failed() || (appended.is_ok() && reader.hash() != cached.content) {
                    // A damaged entry, or one that cannot be read: removed,
                    // so that the next export converts the window again.
                    self.cache.discard_damaged(&key, &cached.content);
                    return Err(Error::Export {
                        path: cached.path,
                        what: match appended {
                            Err(e) => {
                                format!("the cached Parquet file cannot be read ({e}); it was removed, export again")
                            }
                            Ok(()) => {
                                "the cached Parquet file does not match its hash; it was removed, export again".into()
                            }
                        },
                    });
                }
                appended.at(&name)?;
                summaries.push(ParquetSummary { rows: self.windows[i].rows, bytes: cached.len });
            } else {
                // Kept before it is streamed: a client that goes away
                // mid-transfer does not waste the conversion.
                let (spool, summary, content) = self.convert(i)?;
                let mut file = self.cache.keep(key, spool, content, summary.bytes);
                header.set_size(summary.bytes);
                file.seek(SeekFrom::Start(0)).at(&name)?;
                tar.append_data(&mut header, &name, io::BufReader::with_capacity(CACHE_READ_BYTES, &file)).at(&name)?;
                summaries.push(summary);
            }
            progress(i + 1);
        }
        tar.into_inner().and_then(|mut w| w.flush()).at("tar end")?;
        Ok(summaries)
    }

    /// Makes sure window `i` is in the export cache, converting it if it is
    /// not. Returns the size of the Parquet when it converted.
    pub fn ensure_cached(&self, i: usize) -> Result<Option<u64>> {
        if !self.cache.enabled() {
            return Ok(None);
        }
        let key = self.cache_key(i)?;
        // Not a lookup for an export: neither a hit nor a miss. A damaged
        // entry is found (and replaced) by the export that reads it.
        if self.cache.contains(&key) {
            return Ok(None);
        }
        let (spool, summary, content) = self.convert(i)?;
        self.cache.keep(key, spool, content, summary.bytes);
        Ok(Some(summary.bytes))
    }

    /// Converts window `i` into a spool file; returns it with the Parquet's
    /// size and blake3.
    fn convert(&self, i: usize) -> Result<(Spool, ParquetSummary, [u8; 32])> {
        let mut spool = self.cache.spool()?;
        let mut out = io::BufWriter::with_capacity(1 << 20, HashingWriter::new(spool.file()));
        let summary = self.write_parquet(i, &mut out)?;
        let hashing = out.into_inner().map_err(|e| e.into_error()).at(self.entry_name(i))?;
        let (_, content, len) = hashing.finish();
        if matches!(spool, Spool::Entry(_)) {
            crate::failpoint::check("export-cache", "write").at(self.entry_name(i))?;
        }
        Ok((spool, ParquetSummary { rows: summary.rows, bytes: len }, content))
    }

    /// What window `i`'s Parquet is derived from: its segment file and
    /// everything else that goes into the bytes.
    fn cache_key(&self, i: usize) -> Result<CacheKey> {
        let window = self.windows.get(i).map_or("", |w| w.window.as_str());
        // The fingerprint depends on all of this but the window: the cache
        // keeps it per schema, so an export does not encode its sample again.
        let mut schema_key = blake3::Hasher::new();
        self.hash_variant(&mut schema_key, None);
        let fingerprint = self.cache.fingerprint(*schema_key.finalize().as_bytes(), || self.writer_fingerprint())?;
        let mut h = blake3::Hasher::new();
        h.update(&fingerprint);
        self.hash_variant(&mut h, Some(window));
        let mut variant = [0u8; 8];
        variant.copy_from_slice(&h.finalize().as_bytes()[..8]);
        let segment = self.files.get(i).map_or([0; 32], |f| f.meta.blake3);
        Ok(CacheKey { segment, variant })
    }

    /// Feeds `h` everything besides the writer that goes into a window's
    /// Parquet bytes (docs/FORMAT.md, "Export cache"); `window` is left out
    /// when `None`.
    fn hash_variant(&self, h: &mut blake3::Hasher, window: Option<&str>) {
        let mut put = |s: &str| {
            h.update(&(s.len() as u64).to_le_bytes());
            h.update(s.as_bytes());
        };
        put(LAYOUT);
        put(env!("CARGO_PKG_VERSION"));
        put(&self.db);
        put(&self.table.name);
        if let Some(window) = window {
            put(window);
        }
        put(&self.row_group_rows.to_string());
        for field in self.schema.fields() {
            put(field.name());
            put(&field.data_type().to_string());
            put(if field.is_nullable() { "null" } else { "required" });
            let mut meta: Vec<_> = field.metadata().iter().collect();
            meta.sort();
            for (k, v) in meta {
                put(k);
                put(v);
            }
        }
    }
}

/// One column of the row group being filled.
enum ColumnSlot {
    Arrow(Box<ArrowColumnWriter>),
    Tag(TagChunk),
}

/// One closed column, ready to append.
enum ColumnChunk {
    Arrow(ArrowColumnChunk),
    Tag(bytes::Bytes, ColumnCloseResult),
}

/// The column writers of the row group being filled.
struct RowGroup {
    index: usize,
    rows: usize,
    writers: Vec<ColumnSlot>,
}

impl RowGroup {
    /// Column writers for row group `index`: tags through [`TagChunk`],
    /// everything else through arrow's writers.
    fn new<W: Write + Send>(
        index: usize,
        schema: &Schema,
        file: &SerializedFileWriter<W>,
        factory: &ArrowRowGroupWriterFactory,
    ) -> Result<RowGroup, ParquetError> {
        let columns = file.schema_descr().columns().to_vec();
        let writers = factory
            .create_column_writers(index)?
            .into_iter()
            .zip(schema.fields())
            .zip(columns)
            .map(|((w, field), descr)| match field.data_type() {
                DataType::Dictionary(_, _) => ColumnSlot::Tag(TagChunk::new(descr, PARQUET_ZSTD_LEVEL)),
                _ => ColumnSlot::Arrow(Box::new(w)),
            })
            .collect();
        Ok(RowGroup { index, rows: 0, writers })
    }

    fn write(&mut self, schema: &Schema, batch: &RecordBatch) -> Result<(), ParquetError> {
        let mut leaves = Vec::with_capacity(self.writers.len());
        for (field, column) in schema.fields().iter().zip(batch.columns()) {
            leaves.push((field, column));
        }
        self.writers.par_iter_mut().zip(leaves.par_iter()).try_for_each(|(w, (field, column))| match w {
            ColumnSlot::Tag(t) => t.write(column.as_ref()),
            ColumnSlot::Arrow(w) => compute_leaves(field, column)?.iter().try_for_each(|leaf| w.write(leaf)),
        })?;
        self.rows += batch.num_rows();
        Ok(())
    }

    /// Closes the columns (in parallel: closing compresses the last pages)
    /// and appends them to the file as one row group.
    fn finish<W: Write + Send>(self, file: &mut SerializedFileWriter<W>) -> Result<(), ParquetError> {
        let chunks: Vec<ColumnChunk> = self
            .writers
            .into_par_iter()
            .map(|w| match w {
                ColumnSlot::Arrow(w) => w.close().map(ColumnChunk::Arrow),
                ColumnSlot::Tag(t) => t.close().map(|(bytes, close)| ColumnChunk::Tag(bytes, close)),
            })
            .collect::<Result<_, _>>()?;
        let mut group = file.next_row_group()?;
        for chunk in chunks {
            match chunk {
                ColumnChunk::Arrow(c) => c.append_to_row_group(&mut group)?,
                ColumnChunk::Tag(bytes, close) => group.append_column(&bytes, close)?,
            }
        }
        group.close()?;
        Ok(())
    }
}

/// A Parquet file being written: ArrowWriter sets up the file (and the
/// embedded Arrow schema, which keeps dictionary types and the UTC zone for
/// Arrow readers); the row groups are encoded column-parallel by hand.
struct Encoder<W: Write + Send> {
    writer: SerializedFileWriter<W>,
    factory: ArrowRowGroupWriterFactory,
    schema: Arc<Schema>,
    group: RowGroup,
    group_rows: usize,
    rows: u64,
}

impl<W: Write + Send> Encoder<W> {
    fn new(out: W, schema: &Arc<Schema>, props: WriterProperties, group_rows: usize) -> Result<Self, ParquetError> {
        let (writer, factory) =
            ArrowWriter::try_new(out, schema.clone(), Some(props)).and_then(|w| w.into_serialized_writer())?;
        let group = RowGroup::new(0, schema, &writer, &factory)?;
        Ok(Encoder { writer, factory, schema: schema.clone(), group, group_rows, rows: 0 })
    }

    /// Appends the rows of `batch` (under the export schema).
    fn push(&mut self, batch: &RecordBatch) -> Result<(), ParquetError> {
        let mut offset = 0;
        while offset < batch.num_rows() {
            let take = (self.group_rows - self.group.rows).min(batch.num_rows() - offset);
            self.group.write(&self.schema, &batch.slice(offset, take))?;
            offset += take;
            self.rows += take as u64;
            if self.group.rows == self.group_rows {
                let next = RowGroup::new(self.group.index + 1, &self.schema, &self.writer, &self.factory)?;
                std::mem::replace(&mut self.group, next).finish(&mut self.writer)?;
            }
        }
        Ok(())
    }

    fn finish(mut self) -> Result<ParquetSummary, ParquetError> {
        if self.group.rows > 0 {
            self.group.finish(&mut self.writer)?;
        }
        self.writer.finish()?;
        Ok(ParquetSummary { rows: self.rows, bytes: self.writer.bytes_written() as u64 })
    }
}

/// Three rows under `schema`: a value, a null and another value in every
/// column of the types an export writes (time: three instants).
fn sample_batch(schema: &Arc<Schema>) -> Result<RecordBatch> {
    use arrow::array::{BooleanArray, DictionaryArray, Float64Array, Int64Array, StringArray, UInt64Array};
    use arrow::datatypes::Int32Type;
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| -> ArrayRef {
            match f.data_type() {
                DataType::Dictionary(_, _) => {
                    Arc::new([Some("a"), None, Some("b")].into_iter().collect::<DictionaryArray<Int32Type>>())
                }
                DataType::Float64 => Arc::new(Float64Array::from(vec![Some(1.5), None, Some(-0.0)])),
                DataType::Int64 => Arc::new(Int64Array::from(vec![Some(-7), None, Some(i64::MAX)])),
                DataType::UInt64 => Arc::new(UInt64Array::from(vec![Some(7), None, Some(u64::MAX)])),
                DataType::Utf8 => Arc::new(StringArray::from(vec![Some("x"), None, Some("")])),
                DataType::Boolean => Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)])),
                DataType::Timestamp(_, _) => {
                    Arc::new(TimestampNanosecondArray::from(vec![0, 1, 2]).with_timezone("UTC"))
                }
                other => arrow::array::new_null_array(other, 3),
            }
        })
        .collect();
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// `[A-Za-z0-9_-]` kept, every other byte as `%XX`.
pub fn safe_file_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The Parquet (Arrow) schema of an export: the scan's columns, `time` in
/// UTC, each column marked with its InfluxDB 3 column type (and fields with
/// their family) in the field metadata.
fn export_schema(table: &Table, plan: &Plan) -> Arc<Schema> {
    let fields: Vec<Field> = plan
        .output
        .iter()
        .map(|c| match c.and_then(|id| table.column_by_id(id)) {
            Some(col) => {
                let mut meta = HashMap::from([(TAG_METADATA_KEY.to_string(), iox_column_type(col.kind).to_string())]);
                if let Some(family) = col.family.and_then(|f| table.family(f)).filter(|f| !f.auto) {
                    meta.insert("quipu::family".to_string(), family.name.clone());
                }
                Field::new(&col.name, query::arrow_type(col.kind), true).with_metadata(meta)
            }
            None => Field::new(TIME_COLUMN, DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())), false)
                .with_metadata(HashMap::from([(
                    TAG_METADATA_KEY.to_string(),
                    "iox::column_type::timestamp".to_string(),
                )])),
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// InfluxDB 3's name for a column type.
fn iox_column_type(kind: ColumnKind) -> &'static str {
    match kind {
        ColumnKind::Tag => crate::write::TAG_METADATA_VALUE,
        ColumnKind::Field(FieldType::Float) => "iox::column_type::field::float",
        ColumnKind::Field(FieldType::Integer) => "iox::column_type::field::integer",
        ColumnKind::Field(FieldType::UInteger) => "iox::column_type::field::uinteger",
        ColumnKind::Field(FieldType::String) => "iox::column_type::field::string",
        ColumnKind::Field(FieldType::Boolean) => "iox::column_type::field::boolean",
    }
}

/// A scan batch under the export schema: same columns, `time` marked UTC.
fn with_export_schema(schema: &Arc<Schema>, batch: RecordBatch) -> Result<RecordBatch> {
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(|a| match a.as_any().downcast_ref::<TimestampNanosecondArray>() {
            Some(t) => Arc::new(t.clone().with_timezone("UTC")) as ArrayRef,
            None => a.clone(),
        })
        .collect();
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// Calls `emit` with the rows of a compacted file as scan batches, in
/// (series, time) order, holding at most a block (one family) or a group of
/// series (several families) in memory.
fn for_each_batch(
    file: &LiveFile,
    table: &Table,
    plan: &Plan,
    series_group_rows: usize,
    mut emit: impl FnMut(RecordBatch) -> Result<()>,
) -> Result<()> {
    let reader = &file.reader;
    let families = &reader.footer().families;
    let columns_of = |fam: usize| -> Vec<u32> { families[fam].columns.iter().map(|c| c.column).collect() };
    if families.len() <= 1 {
        for fam in 0..families.len() {
            let ids = columns_of(fam);
            let fplan = reader.plan_family(fam, &Read::all(&ids));
            for pick in &fplan.blocks {
                if let Some(rows) = reader.read_block(&fplan, pick)? {
                    for batch in query::batches_of(plan, table, rows)? {
                        emit(batch)?;
                    }
                }
            }
        }
        return Ok(());
    }
    // Several families: merge them a group of series at a time.
    for group in series_groups(reader, series_group_rows as u64) {
        let keys: HashSet<&SeriesKey> = group.iter().map(|&s| &reader.series()[s as usize]).collect();
        let in_group = |k: &SeriesKey| keys.contains(k);
        let mut sources: Vec<Vec<Rows>> = Vec::with_capacity(families.len());
        for fam in 0..families.len() {
            let ids = columns_of(fam);
            let read = Read { columns: &ids, time: TimeRange::ALL, series: Some(&in_group), keep_null_rows: false };
            sources.push(reader.read_family(fam, &read)?);
        }
        for batch in query::finish(plan, table, sources)? {
            emit(batch)?;
        }
    }
    Ok(())
}

/// The file's series (directory indexes) in groups of about
/// `group_rows` rows, counting the rows of every family.
fn series_groups(reader: &crate::segment::SegmentReader, group_rows: u64) -> Vec<Vec<u32>> {
    let mut rows_of: Vec<u64> = vec![0; reader.series().len()];
    for fam in &reader.footer().families {
        for &(s, count) in &fam.series_runs {
            if let Some(r) = rows_of.get_mut(s as usize) {
                *r += u64::from(count);
            }
        }
    }
    let mut groups = Vec::new();
    let mut group = Vec::new();
    let mut rows = 0u64;
    for (s, n) in rows_of.into_iter().enumerate() {
        if n == 0 {
            continue;
        }
        group.push(s as u32);
        rows += n;
        if rows >= group_rows {
            groups.push(std::mem::take(&mut group));
            rows = 0;
        }
    }
    if !group.is_empty() {
        groups.push(group);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::WINDOW_NS;

    #[test]
    fn window_names_round_trip() {
        for start in [0, WINDOW_NS, -WINDOW_NS, 16_801 * WINDOW_NS] {
            assert_eq!(parse_window(&window_name(start)).unwrap(), start);
        }
        assert_eq!(window_name(0), "1970-01-01");
        assert_eq!(window_name(-WINDOW_NS), "1969-12-31");
        assert_eq!(parse_window("2026-01-15").unwrap(), 20_468 * WINDOW_NS);
    }

    #[test]
    fn windows_at_the_ends_of_the_range_have_their_own_names() {
        let first = window_start(i64::MIN);
        assert_eq!(first, i64::MIN);
        assert_eq!(window_start(i64::MIN + 762 * 1_000_000_000), first);
        assert_eq!(window_name(first), "1677-09-21");
        let second = window_start(i64::MIN + 86_400 * 1_000_000_000);
        assert_ne!(second, first);
        assert_eq!(window_name(second), "1677-09-22");
        let last = window_start(i64::MAX);
        assert_eq!(window_name(last), "2262-04-11");
        for name in ["1677-09-21", "1677-09-22", "2262-04-10", "2262-04-11"] {
            assert_eq!(window_name(parse_window(name).unwrap()), name);
        }
        assert_eq!(parse_window("1677-09-21").unwrap(), i64::MIN);
        for beyond in ["1677-09-20", "2262-04-12"] {
            assert!(matches!(parse_window(beyond), Err(Error::InvalidArgument(_))), "{beyond}");
        }
    }

    #[test]
    fn bad_window_names_are_invalid_arguments() {
        for bad in ["", "2026-1-15", "2026-01-32", "20260115", "2026-01-15T00:00:00Z", "9999-01-01", "abcd-ef-gh"] {
            assert!(matches!(parse_window(bad), Err(Error::InvalidArgument(_))), "{bad}");
        }
    }

    #[test]
    fn window_lists_are_sorted_and_deduplicated() {
        assert_eq!(parse_window_list("").unwrap(), Vec::<i64>::new());
        assert_eq!(parse_window_list(" , ").unwrap(), Vec::<i64>::new());
        assert_eq!(parse_window_list("1970-01-02, 1970-01-01,1970-01-02").unwrap(), vec![0, WINDOW_NS]);
        assert!(parse_window_list("1970-01-01,nope").is_err());
    }

    #[test]
    fn file_names_cannot_escape() {
        assert_eq!(safe_file_name("cpu"), "cpu");
        assert_eq!(safe_file_name("../x"), "%2E%2E%2Fx");
        assert_eq!(safe_file_name("a b.c"), "a%20b%2Ec");
        assert_eq!(safe_file_name("é"), "%C3%A9");
    }
}
