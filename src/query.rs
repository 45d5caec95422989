//! Scans: plan which files, families, blocks and buffered rows a request
//! needs, read them, merge them (newest write wins per value) and return
//! Arrow record batches. Files are pruned by time range, families by the
//! requested columns, blocks by their time statistics and series runs.
//!
//! Output: rows sorted by series then time; columns in the requested order
//! (all tags by name then all fields by name when none are requested), with
//! `time` last unless requested elsewhere. Tags are `Dictionary(Int32, Utf8)`,
//! time is `Timestamp(Nanosecond, None)`. A row is returned when at least one
//! requested field is non-null in it (every row when no field is requested).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::{ArrayRef, DictionaryArray, Int32Array, RecordBatch, StringArray, TimestampNanosecondArray};
use arrow::datatypes::{DataType, Field, Int32Type, Schema, TimeUnit};

use crate::catalog::{ColumnKind, TIME_COLUMN, Table};
use crate::error::{Error, Result};
use crate::rows::{Rows, merge};
use crate::segment::Read;
use crate::segment::reader::{BlockCost, FamilyPlan};
use crate::series::SeriesKey;
use crate::time_range::TimeRange;
use crate::tree::{LEVEL_GEN0, LiveFile, Version};

/// Rows per returned batch.
pub const BATCH_ROWS: usize = 65_536;

/// What to read from one table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScanRequest {
    /// The timestamps to read; `None` reads all time, `i64::MIN` and
    /// `i64::MAX` included.
    pub time_range: Option<TimeRange>,
    /// Column names to return; `None` returns all.
    pub columns: Option<Vec<String>>,
    /// Tag equality predicates, all of which must hold.
    pub tag_equals: Vec<(String, String)>,
    /// Return rows where every requested field is null (they exist through
    /// fields not requested), as SQL sees a table; by default such rows are
    /// left out.
    pub keep_null_rows: bool,
}

impl ScanRequest {
    /// Every row and column.
    pub fn all() -> Self {
        ScanRequest::default()
    }

    /// Only `[start, end)`.
    #[must_use]
    pub fn time_range(mut self, start: i64, end: i64) -> Self {
        self.time_range = Some(TimeRange::half_open(start, end));
        self
    }

    /// Only `[min, max]`, both ends included (the only way to name a range
    /// that ends at `i64::MAX`).
    #[must_use]
    pub fn time_between(mut self, min: i64, max: i64) -> Self {
        self.time_range = Some(TimeRange::inclusive(min, max));
        self
    }

    /// Only these columns (`time` is always returned).
    #[must_use]
    pub fn columns<I: IntoIterator<Item = S>, S: Into<String>>(mut self, columns: I) -> Self {
        self.columns = Some(columns.into_iter().map(Into::into).collect());
        self
    }

    /// Also rows where every requested field is null; see
    /// [`ScanRequest::keep_null_rows`].
    #[must_use]
    pub fn keep_null_rows(mut self) -> Self {
        self.keep_null_rows = true;
        self
    }

    /// Only rows whose tag `tag` equals `value`.
    #[must_use]
    pub fn tag_eq(mut self, tag: impl Into<String>, value: impl Into<String>) -> Self {
        self.tag_equals.push((tag.into(), value.into()));
        self
    }
}

/// What a scan read, counted as it runs (shared with whoever watches it:
/// query telemetry). Blocks are counted before they are decoded; a block
/// is a page-cache hit when all its stored bytes were resident before the
/// read.
#[derive(Debug, Default)]
pub struct ScanStats {
    files_scanned: AtomicU64,
    blocks_processed: AtomicU64,
    rows_read: AtomicU64,
    rows_returned: AtomicU64,
    bytes_read: AtomicU64,
    buffer_rows: AtomicU64,
    gen0_hits: AtomicU64,
    gen0_misses: AtomicU64,
    compacted_hits: AtomicU64,
    compacted_misses: AtomicU64,
    /// Ask the page cache about each block (a syscall per block read), for
    /// figures somebody reads; plain scans skip it.
    probe_cache: bool,
}

/// A [`ScanStats`] read at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ScanFigures {
    /// Segment files with at least one block to read.
    pub files_scanned: u64,
    /// Blocks decoded (a block is a run of rows of one family section).
    pub blocks_processed: u64,
    /// Rows decoded from blocks plus rows taken from the write buffer,
    /// before the time and tag filters within a block.
    pub rows_read: u64,
    /// Rows the scan handed to the query.
    pub rows_returned: u64,
    /// Stored (compressed) bytes of the blocks decoded.
    pub bytes_read: u64,
    /// Rows read from the write buffer (not yet in a file).
    pub buffer_rows: u64,
    /// Blocks of gen0 (flushed) files found in / missing from the page cache.
    pub gen0_hits: u64,
    pub gen0_misses: u64,
    /// Blocks of compacted files found in / missing from the page cache.
    pub compacted_hits: u64,
    pub compacted_misses: u64,
}

impl ScanFigures {
    /// The sum of two sets of figures.
    #[must_use]
    pub fn plus(self, o: ScanFigures) -> ScanFigures {
        ScanFigures {
            files_scanned: self.files_scanned + o.files_scanned,
            blocks_processed: self.blocks_processed + o.blocks_processed,
            rows_read: self.rows_read + o.rows_read,
            rows_returned: self.rows_returned + o.rows_returned,
            bytes_read: self.bytes_read + o.bytes_read,
            buffer_rows: self.buffer_rows + o.buffer_rows,
            gen0_hits: self.gen0_hits + o.gen0_hits,
            gen0_misses: self.gen0_misses + o.gen0_misses,
            compacted_hits: self.compacted_hits + o.compacted_hits,
            compacted_misses: self.compacted_misses + o.compacted_misses,
        }
    }
}

impl ScanStats {
    /// Counters that also tell page-cache hits from misses
    /// ([`ScanStats::default`] counts blocks without asking the page cache).
    pub fn probing_cache() -> ScanStats {
        ScanStats { probe_cache: true, ..ScanStats::default() }
    }

    pub(crate) fn probes_cache(&self) -> bool {
        self.probe_cache
    }

    /// The counts so far.
    pub fn figures(&self) -> ScanFigures {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ScanFigures {
            files_scanned: get(&self.files_scanned),
            blocks_processed: get(&self.blocks_processed),
            rows_read: get(&self.rows_read),
            rows_returned: get(&self.rows_returned),
            bytes_read: get(&self.bytes_read),
            buffer_rows: get(&self.buffer_rows),
            gen0_hits: get(&self.gen0_hits),
            gen0_misses: get(&self.gen0_misses),
            compacted_hits: get(&self.compacted_hits),
            compacted_misses: get(&self.compacted_misses),
        }
    }

    pub(crate) fn reset(&self) {
        for a in [
            &self.files_scanned,
            &self.blocks_processed,
            &self.rows_read,
            &self.rows_returned,
            &self.bytes_read,
            &self.buffer_rows,
            &self.gen0_hits,
            &self.gen0_misses,
            &self.compacted_hits,
            &self.compacted_misses,
        ] {
            a.store(0, Ordering::Relaxed);
        }
    }

    pub(crate) fn add_files(&self, n: u64) {
        self.files_scanned.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn add_buffer_rows(&self, n: u64) {
        self.buffer_rows.fetch_add(n, Ordering::Relaxed);
        self.rows_read.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn add_returned(&self, n: u64) {
        self.rows_returned.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts one block of a file at `level` about to be read.
    pub(crate) fn add_block(&self, level: u8, cost: BlockCost) {
        self.blocks_processed.fetch_add(1, Ordering::Relaxed);
        self.rows_read.fetch_add(cost.rows, Ordering::Relaxed);
        self.bytes_read.fetch_add(cost.bytes, Ordering::Relaxed);
        let (hits, misses) = if level == LEVEL_GEN0 {
            (&self.gen0_hits, &self.gen0_misses)
        } else {
            (&self.compacted_hits, &self.compacted_misses)
        };
        match cost.resident {
            Some(true) => hits.fetch_add(1, Ordering::Relaxed),
            Some(false) => misses.fetch_add(1, Ordering::Relaxed),
            None => 0,
        };
    }
}

/// The columns of a scan, resolved against the catalog.
pub struct Plan {
    /// Output columns: `Some(id)` for tags and fields, `None` for time.
    pub output: Vec<Option<u32>>,
    /// Field column ids to read.
    pub fields: Vec<u32>,
    /// Tag predicates as (tag column id, value); `None` when a predicate names
    /// an unknown tag, so nothing can match.
    pub tag_filter: Option<Vec<(u32, String)>>,
    pub time: TimeRange,
    pub keep_null_rows: bool,
}

impl Plan {
    /// Resolves `req` for `table` (`db` names it in errors).
    pub fn new(db: &str, table: &Table, req: &ScanRequest) -> Result<Plan> {
        let mut output = Vec::new();
        match &req.columns {
            None => {
                let mut tags: Vec<_> = table.tags().collect();
                tags.sort_by(|a, b| a.name.cmp(&b.name));
                let mut fields: Vec<_> = table.fields().collect();
                fields.sort_by(|a, b| a.name.cmp(&b.name));
                output.extend(tags.iter().chain(fields.iter()).map(|c| Some(c.id)));
                output.push(None);
            }
            Some(names) => {
                for name in names {
                    if name == TIME_COLUMN {
                        output.push(None);
                        continue;
                    }
                    let col = table.column(name).ok_or_else(|| Error::ColumnNotFound {
                        db: db.to_string(),
                        table: table.name.clone(),
                        column: name.clone(),
                    })?;
                    output.push(Some(col.id));
                }
                if !output.contains(&None) {
                    output.push(None);
                }
            }
        }
        let fields: Vec<u32> = output
            .iter()
            .flatten()
            .copied()
            .filter(|id| table.column_by_id(*id).is_some_and(|c| matches!(c.kind, ColumnKind::Field(_))))
            .collect();
        let tag_filter = req
            .tag_equals
            .iter()
            .map(|(k, v)| table.column(k).filter(|c| c.kind == ColumnKind::Tag).map(|c| (c.id, v.clone())))
            .collect::<Option<Vec<_>>>();
        let time = req.time_range.unwrap_or(TimeRange::ALL);
        // Without fields every row is returned anyway.
        let keep_null_rows = req.keep_null_rows && !fields.is_empty();
        Ok(Plan { output, fields, tag_filter, time, keep_null_rows })
    }

    /// True when a series passes the tag predicates.
    pub fn series_matches(&self, key: &SeriesKey) -> bool {
        match &self.tag_filter {
            None => false,
            Some(preds) => {
                preds.iter().all(|(id, v)| key.binary_search_by_key(id, |(c, _)| *c).is_ok_and(|i| key[i].1 == *v))
            }
        }
    }

    /// The field ids of family `family` that the scan reads; `None` when the
    /// family is not needed.
    pub fn family_fields(&self, table: &Table, family: u32) -> Option<Vec<u32>> {
        if self.fields.is_empty() {
            return Some(Vec::new());
        }
        let ids: Vec<u32> = self
            .fields
            .iter()
            .copied()
            .filter(|id| table.column_by_id(*id).is_some_and(|c| c.family == Some(family)))
            .collect();
        (!ids.is_empty()).then_some(ids)
    }
}

/// Plans the reads of every file of the table in `version` that the scan
/// needs, oldest first: (file, plan) per file section with blocks to read.
/// Holding the file keeps it on disk.
pub fn plan_files(plan: &Plan, table: &Table, db_id: u32, version: &Version) -> Vec<(Arc<LiveFile>, FamilyPlan)> {
    let mut out = Vec::new();
    if plan.tag_filter.is_none() {
        return out;
    }
    let filter = |k: &SeriesKey| plan.series_matches(k);
    let series: Option<&dyn Fn(&SeriesKey) -> bool> =
        if plan.tag_filter.as_ref().is_some_and(|f| f.is_empty()) { None } else { Some(&filter) };
    for file in version.table_files(db_id, table.id) {
        if !plan.time.overlaps(file.meta.time_min, file.meta.time_max) {
            continue;
        }
        for (i, fam) in file.reader.footer().families.iter().enumerate() {
            // A family without a requested field still holds row keys that
            // SQL's view of the table must see.
            let columns = match plan.family_fields(table, fam.id) {
                Some(c) => c,
                None if plan.keep_null_rows => Vec::new(),
                None => continue,
            };
            let read = Read { columns: &columns, time: plan.time, series, keep_null_rows: plan.keep_null_rows };
            let fplan = file.reader.plan_family(i, &read);
            if !fplan.blocks.is_empty() {
                out.push((file.clone(), fplan));
            }
        }
    }
    out
}

/// Reads planned file sections, each as a list of block chunks.
pub fn read_files(plans: &[(Arc<LiveFile>, FamilyPlan)], stats: &ScanStats) -> Result<Vec<Vec<Rows>>> {
    plans
        .iter()
        .map(|(file, fplan)| {
            let mut chunks = Vec::with_capacity(fplan.blocks.len());
            for pick in &fplan.blocks {
                stats.add_block(file.meta.level, file.reader.block_cost(fplan, pick, stats.probes_cache()));
                chunks.extend(file.reader.read_block(fplan, pick)?);
            }
            Ok(chunks)
        })
        .collect()
}

/// The output batches of rows that need no merging.
pub fn batches_of(plan: &Plan, table: &Table, rows: Rows) -> Result<Vec<RecordBatch>> {
    Ok(split(to_record_batch(plan, table, rows)?))
}

/// Merges `sources` (oldest first; each a list of chunks of one sorted
/// run) and builds the output batches. A single source needs no merge: its
/// chunks become batches as they are.
pub fn finish(plan: &Plan, table: &Table, mut sources: Vec<Vec<Rows>>) -> Result<Vec<RecordBatch>> {
    if sources.len() == 1 {
        let chunks = sources.pop().unwrap_or_default();
        let mut out = Vec::with_capacity(chunks.len());
        for chunk in chunks.into_iter().filter(|c| !c.is_empty()) {
            out.extend(split(to_record_batch(plan, table, chunk)?));
        }
        return Ok(out);
    }
    let rows = merge(sources.into_iter().flatten().collect())?;
    let rows = if plan.fields.is_empty() || plan.keep_null_rows { rows } else { rows.drop_all_null_rows()? };
    Ok(split(to_record_batch(plan, table, rows)?))
}

/// Slices a batch into pieces of at most [`BATCH_ROWS`] rows (zero-copy).
fn split(batch: RecordBatch) -> Vec<RecordBatch> {
    let n = batch.num_rows();
    match n {
        0 => Vec::new(),
        _ if n <= BATCH_ROWS => vec![batch],
        _ => (0..n).step_by(BATCH_ROWS).map(|start| batch.slice(start, BATCH_ROWS.min(n - start))).collect(),
    }
}

pub use crate::rows::arrow_type;

/// The Arrow schema of a plan's output.
pub fn schema(plan: &Plan, table: &Table) -> Arc<Schema> {
    let fields: Vec<Field> = plan
        .output
        .iter()
        .map(|c| match c.and_then(|id| table.column_by_id(id)) {
            Some(col) => Field::new(&col.name, arrow_type(col.kind), true),
            None => Field::new(TIME_COLUMN, DataType::Timestamp(TimeUnit::Nanosecond, None), false),
        })
        .collect();
    Arc::new(Schema::new(fields))
}

fn to_record_batch(plan: &Plan, table: &Table, mut rows: Rows) -> Result<RecordBatch> {
    let schema = schema(plan, table);
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(plan.output.len());
    // The plan holds `time` exactly once: hand the vector over without a copy.
    let time: ArrayRef = Arc::new(TimestampNanosecondArray::from(std::mem::take(&mut rows.time)));
    // By id, once: a wide table must not cost a scan of its columns per column.
    let by_id: HashMap<u32, &ArrayRef> = rows.columns.iter().map(|(id, a)| (*id, a)).collect();
    for c in &plan.output {
        let array: ArrayRef = match c.and_then(|id| table.column_by_id(id)) {
            None => time.clone(),
            Some(col) if col.kind == ColumnKind::Tag => tag_array(&rows, col.id),
            Some(col) => match by_id.get(&col.id) {
                Some(a) => (*a).clone(),
                None => arrow::array::new_null_array(&arrow_type(col.kind), time.len()),
            },
        };
        arrays.push(array);
    }
    Ok(RecordBatch::try_new(schema, arrays)?)
}

/// A dictionary array of tag `tag` per row, from the series directory.
fn tag_array(rows: &Rows, tag: u32) -> ArrayRef {
    let mut values: Vec<&str> = Vec::new();
    let mut index: HashMap<&str, i32> = HashMap::new();
    let per_series: Vec<Option<i32>> = rows
        .series_keys
        .iter()
        .map(|key| {
            key.binary_search_by_key(&tag, |(c, _)| *c).ok().map(|i| {
                let v = key[i].1.as_str();
                *index.entry(v).or_insert_with(|| {
                    values.push(v);
                    values.len() as i32 - 1
                })
            })
        })
        .collect();
    let keys: Int32Array = if per_series.iter().all(Option::is_some) {
        let dense: Vec<i32> = per_series.iter().map(|k| k.unwrap_or(0)).collect();
        let keys: Vec<i32> = rows.series.iter().map(|&s| dense[s as usize]).collect();
        Int32Array::from(keys)
    } else {
        rows.series.iter().map(|&s| per_series.get(s as usize).copied().flatten()).collect()
    };
    let dict = DictionaryArray::<Int32Type>::new(keys, Arc::new(StringArray::from(values)));
    Arc::new(dict)
}
