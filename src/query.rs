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

use arrow::array::{ArrayRef, DictionaryArray, Int32Array, RecordBatch, StringArray, TimestampNanosecondArray};
use arrow::datatypes::{DataType, Field, Int32Type, Schema, TimeUnit};

use crate::catalog::{ColumnKind, FieldType, TIME_COLUMN, Table};
use crate::error::{Error, Result};
use crate::rows::{Rows, merge};
use crate::segment::Read;
use crate::segment::reader::FamilyPlan;
use crate::tree::{LiveFile, Version};
use crate::write::SeriesKey;

/// Rows per returned batch.
pub const BATCH_ROWS: usize = 65_536;

/// What to read from one table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScanRequest {
    /// Half-open `[start, end)` in ns; `None` reads all time.
    pub time_range: Option<(i64, i64)>,
    /// Column names to return; `None` returns all.
    pub columns: Option<Vec<String>>,
    /// Tag equality predicates, all of which must hold.
    pub tag_equals: Vec<(String, String)>,
}

impl ScanRequest {
    /// Every row and column.
    pub fn all() -> Self {
        ScanRequest::default()
    }

    /// Only `[start, end)`.
    #[must_use]
    pub fn time_range(mut self, start: i64, end: i64) -> Self {
        self.time_range = Some((start, end));
        self
    }

    /// Only these columns (`time` is always returned).
    #[must_use]
    pub fn columns<I: IntoIterator<Item = S>, S: Into<String>>(mut self, columns: I) -> Self {
        self.columns = Some(columns.into_iter().map(Into::into).collect());
        self
    }

    /// Only rows whose tag `tag` equals `value`.
    #[must_use]
    pub fn tag_eq(mut self, tag: impl Into<String>, value: impl Into<String>) -> Self {
        self.tag_equals.push((tag.into(), value.into()));
        self
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
    pub time: (i64, i64),
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
        let fields = output
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
        let time = req.time_range.unwrap_or((i64::MIN, i64::MAX));
        Ok(Plan { output, fields, tag_filter, time })
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
        if file.meta.time_max < plan.time.0 || file.meta.time_min >= plan.time.1 {
            continue;
        }
        for (i, fam) in file.reader.footer().families.iter().enumerate() {
            let Some(columns) = plan.family_fields(table, fam.id) else { continue };
            let fplan = file.reader.plan_family(i, &Read { columns: &columns, time: plan.time, series });
            if !fplan.blocks.is_empty() {
                out.push((file.clone(), fplan));
            }
        }
    }
    out
}

/// Reads planned file sections, each as a list of block chunks.
pub fn read_files(plans: &[(Arc<LiveFile>, FamilyPlan)]) -> Result<Vec<Vec<Rows>>> {
    plans
        .iter()
        .map(|(file, fplan)| {
            let mut chunks = Vec::with_capacity(fplan.blocks.len());
            for pick in &fplan.blocks {
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
    let rows = if plan.fields.is_empty() { rows } else { rows.drop_all_null_rows()? };
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

/// The Arrow type of a column.
pub fn arrow_type(kind: ColumnKind) -> DataType {
    match kind {
        ColumnKind::Tag => DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
        ColumnKind::Field(FieldType::Float) => DataType::Float64,
        ColumnKind::Field(FieldType::Integer) => DataType::Int64,
        ColumnKind::Field(FieldType::UInteger) => DataType::UInt64,
        ColumnKind::Field(FieldType::String) => DataType::Utf8,
        ColumnKind::Field(FieldType::Boolean) => DataType::Boolean,
    }
}

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
    for c in &plan.output {
        let array: ArrayRef = match c.and_then(|id| table.column_by_id(id)) {
            None => time.clone(),
            Some(col) if col.kind == ColumnKind::Tag => tag_array(&rows, col.id),
            Some(col) => match rows.column(col.id) {
                Some(a) => a.clone(),
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
