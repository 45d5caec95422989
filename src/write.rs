//! Resolved writes: parsed line protocol or an Arrow batch checked against
//! the catalog and turned into a [`WriteBatch`] of column ids and typed
//! values, which is both what the WAL stores (the record payload) and what the
//! write buffer ingests. Catalog rules (types, families, new tables and
//! columns) are applied here, line by line, so every rejected line gets its
//! own error.

use std::hash::Hasher;
use std::path::Path;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit, UInt64Type};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, CatalogError, ColumnKind, FieldType, Limits, TIME_COLUMN, Table};
use crate::error::{Error, Result};
use crate::lp::{self, FieldValue, LineError, ParsedLine, Precision};

pub use crate::series::SeriesKey;

/// One field value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    F64(f64),
    I64(i64),
    U64(u64),
    Str(String),
    Bool(bool),
}

impl Value {
    /// The catalog type of this value.
    pub fn field_type(&self) -> FieldType {
        match self {
            Value::F64(_) => FieldType::Float,
            Value::I64(_) => FieldType::Integer,
            Value::U64(_) => FieldType::UInteger,
            Value::Str(_) => FieldType::String,
            Value::Bool(_) => FieldType::Boolean,
        }
    }
}

/// One row: a series (index into [`TableBatch::series`]), a time and fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub series: u32,
    pub time: i64,
    pub fields: Vec<(u32, Value)>,
}

/// The rows of one table in a write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableBatch {
    pub table_id: u32,
    pub series: Vec<SeriesKey>,
    pub rows: Vec<Row>,
}

/// A resolved write to one database: the unit of a WAL record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WriteBatch {
    pub db_id: u32,
    pub tables: Vec<TableBatch>,
}

/// The first byte of a WAL payload: what follows.
const PAYLOAD_WRITE_V1: u8 = 1;

impl WriteBatch {
    /// Rows in the batch.
    pub fn row_count(&self) -> usize {
        self.tables.iter().map(|t| t.rows.len()).sum()
    }

    /// The WAL payload for this batch: a kind byte, then postcard.
    pub fn encode(&self) -> Vec<u8> {
        // postcard into a Vec cannot fail for these types.
        postcard::to_extend(self, vec![PAYLOAD_WRITE_V1]).unwrap_or_else(|_| vec![PAYLOAD_WRITE_V1])
    }

    /// Decodes a WAL payload; `path` and `offset` name the record in errors.
    pub fn decode(path: &Path, offset: u64, payload: &[u8]) -> Result<WriteBatch> {
        let corrupt = |what: String| Error::Corrupt {
            path: path.to_path_buf(),
            what: format!("record at offset {offset}: {what}"),
        };
        match payload.split_first() {
            Some((&PAYLOAD_WRITE_V1, body)) => {
                postcard::from_bytes(body).map_err(|e| corrupt(format!("undecodable write batch: {e}")))
            }
            Some((kind, _)) => Err(corrupt(format!("unknown payload kind {kind}"))),
            None => Err(corrupt("empty payload".into())),
        }
    }
}

/// The outcome of resolving a write against the catalog.
#[derive(Debug)]
pub struct Resolved {
    pub batch: WriteBatch,
    /// Lines (or rows) accepted.
    pub accepted: usize,
    /// Per-line rejections.
    pub errors: Vec<LineError>,
    /// The catalog with the write's new tables and columns, when it has any.
    pub catalog: Option<Catalog>,
}

/// A resolved line: tag values by column id (sorted by id) and fields.
struct LineOut<'l> {
    series: Vec<(u32, &'l str)>,
    fields: Vec<(u32, Value)>,
}

fn value_of(v: &FieldValue<'_>) -> Value {
    match v {
        FieldValue::F64(f) => Value::F64(*f),
        FieldValue::I64(i) => Value::I64(*i),
        FieldValue::U64(u) => Value::U64(*u),
        FieldValue::Str(s) => Value::Str(s.to_string()),
        FieldValue::Bool(b) => Value::Bool(*b),
    }
}

/// Resolves a line against an existing table without changing it; `Ok(None)`
/// when the line needs a new column.
fn resolve_existing<'l>(table: &Table, line: &'l ParsedLine<'_>) -> Result<Option<LineOut<'l>>, CatalogError> {
    let mut series = Vec::with_capacity(line.tags.len());
    for (k, v) in &line.tags {
        match table.column(k) {
            Some(col) if col.kind == ColumnKind::Tag => series.push((col.id, v.as_ref())),
            Some(_) => {
                return Err(CatalogError::KindConflict {
                    column: k.to_string(),
                    existing: "field".into(),
                    attempted: "tag".into(),
                });
            }
            None => return Ok(None),
        }
    }
    let mut fields = Vec::with_capacity(line.fields.len());
    for f in &line.fields {
        let value = value_of(&f.value);
        match table.column(&f.name) {
            Some(col) => {
                table.check_field(col, f.family.as_deref(), value.field_type())?;
                fields.push((col.id, value));
            }
            None => return Ok(None),
        }
    }
    series.sort_unstable_by_key(|(id, _)| *id);
    Ok(Some(LineOut { series, fields }))
}

/// Refuses a line whose new columns would take `table` past `limit`
/// columns (`time` included), before any is added.
fn check_column_limit(table: &Table, line: &ParsedLine<'_>, limit: usize) -> Result<(), CatalogError> {
    let is_new = |name: &str| table.column(name).is_none();
    let added =
        line.tags.iter().filter(|(k, _)| is_new(k)).count() + line.fields.iter().filter(|f| is_new(&f.name)).count();
    let existing = table.column_count();
    if added > 0 && existing.saturating_add(added) > limit {
        return Err(CatalogError::TooManyColumns { table: table.name.clone(), limit, existing, added });
    }
    Ok(())
}

/// Resolves a line, adding what it needs to `table`; a line that is
/// rejected adds nothing.
fn resolve_adding<'l>(table: &mut Table, line: &'l ParsedLine<'_>, limit: usize) -> Result<LineOut<'l>, CatalogError> {
    check_column_limit(table, line, limit)?;
    let savepoint = table.savepoint();
    let out = add_line_columns(table, line);
    if out.is_err() {
        table.rollback(savepoint);
    }
    out
}

fn add_line_columns<'l>(table: &mut Table, line: &'l ParsedLine<'_>) -> Result<LineOut<'l>, CatalogError> {
    let mut series = Vec::with_capacity(line.tags.len());
    for (k, v) in &line.tags {
        series.push((table.ensure_tag(k)?, v.as_ref()));
    }
    let mut fields = Vec::with_capacity(line.fields.len());
    for f in &line.fields {
        let value = value_of(&f.value);
        fields.push((table.ensure_field(&f.name, f.family.as_deref(), value.field_type())?, value));
    }
    series.sort_unstable_by_key(|(id, _)| *id);
    Ok(LineOut { series, fields })
}

fn series_hash<'a>(pairs: impl Iterator<Item = (u32, &'a str)>) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    for (id, v) in pairs {
        h.write_u32(id);
        h.write(v.as_bytes());
        h.write_u8(0xff);
    }
    h.finish()
}

/// The rows of one table being collected, with its series deduplicated.
struct TableRows {
    batch: TableBatch,
    /// Series hash -> index of the first series with it; `chain` links the rest.
    by_hash: FxHashMap<u64, u32>,
    chain: Vec<u32>,
}

impl TableRows {
    fn series_index(&mut self, key: &[(u32, &str)]) -> u32 {
        let hash = series_hash(key.iter().copied());
        let mut candidate = self.by_hash.get(&hash).copied();
        while let Some(i) = candidate {
            let existing = &self.batch.series[i as usize];
            if existing.len() == key.len() && existing.iter().zip(key).all(|((a, av), (b, bv))| a == b && av == bv) {
                return i;
            }
            candidate = Some(self.chain[i as usize]).filter(|&n| n != u32::MAX);
        }
        let i = self.batch.series.len() as u32;
        self.batch.series.push(key.iter().map(|(id, v)| (*id, v.to_string())).collect());
        self.chain.push(self.by_hash.insert(hash, i).unwrap_or(u32::MAX));
        i
    }
}

/// Collects rows per table.
#[derive(Default)]
struct BatchBuilder {
    tables: Vec<TableRows>,
    /// Table id -> index in `tables` (a body may name many tables).
    slots: FxHashMap<u32, usize>,
}

impl BatchBuilder {
    fn push(&mut self, table_id: u32, line: LineOut<'_>, time: i64) {
        let slot = *self.slots.entry(table_id).or_insert_with(|| {
            self.tables.push(TableRows {
                batch: TableBatch { table_id, series: Vec::new(), rows: Vec::new() },
                by_hash: FxHashMap::default(),
                chain: Vec::new(),
            });
            self.tables.len() - 1
        });
        let table = &mut self.tables[slot];
        let series = table.series_index(&line.series);
        table.batch.rows.push(Row { series, time, fields: line.fields });
    }

    fn finish(self, db_id: u32) -> WriteBatch {
        WriteBatch { db_id, tables: self.tables.into_iter().map(|t| t.batch).collect() }
    }
}

/// The text of line `line` (1-based) of `body`, shortened for an error message.
pub fn line_text(body: &str, line: usize) -> String {
    let text = body.lines().nth(line.saturating_sub(1)).unwrap_or("");
    let mut end = text.len().min(200);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// Finds the text of lines in increasing order with one pass over the body
/// (a body with many rejected lines must not be rescanned for each).
struct LineTexts<'b> {
    body: &'b str,
    /// 1-based number of the line `rest` starts with.
    next: usize,
    rest: &'b str,
}

impl<'b> LineTexts<'b> {
    fn new(body: &'b str) -> Self {
        LineTexts { body, next: 1, rest: body }
    }

    fn text(&mut self, line: usize) -> String {
        if line < self.next {
            return line_text(self.body, line);
        }
        while self.next < line {
            match memchr::memchr(b'\n', self.rest.as_bytes()) {
                Some(i) => self.rest = &self.rest[i + 1..],
                None => self.rest = "",
            }
            self.next += 1;
        }
        line_text(self.rest, 1)
    }
}

/// What resolving one line against the catalog gave.
enum Step<'l> {
    Row(u32, LineOut<'l>),
    Reject(CatalogError),
    /// The line needs a table or column the catalog lacks.
    NeedsNewColumns,
}

/// The lines of a body resolved so far.
struct Collected {
    builder: BatchBuilder,
    errors: Vec<LineError>,
    accepted: usize,
}

/// Parses `body` and resolves each line with `resolve`; stops early (with
/// `None`) when a line needs the catalog to change.
fn collect_lines<F>(body: &str, precision: Precision, default_time_ns: i64, mut resolve: F) -> Option<Collected>
where
    F: for<'l> FnMut(&'l ParsedLine<'_>) -> Step<'l>,
{
    let mut out = Collected { builder: BatchBuilder::default(), errors: Vec::new(), accepted: 0 };
    let mut texts = LineTexts::new(body);
    for parsed in lp::parse_iter(body, precision, default_time_ns) {
        let line = match parsed {
            Ok(line) => line,
            Err(e) => {
                out.errors.push(e);
                continue;
            }
        };
        match resolve(&line) {
            Step::Row(table_id, row) => {
                out.builder.push(table_id, row, line.time_ns);
                out.accepted += 1;
            }
            Step::Reject(e) => {
                out.errors.push(LineError { line: line.line, message: e.to_string(), text: texts.text(line.line) })
            }
            Step::NeedsNewColumns => return None,
        }
    }
    Some(out)
}

/// Parses `body` and resolves its lines for database `db` against `catalog`:
/// syntax errors and catalog conflicts alike become per-line errors. Lines
/// are resolved as they are parsed; only a body that adds tables or columns
/// is parsed a second time, against a changed copy of the catalog. A line
/// that would take a table past `limits.columns_per_table` columns (`time`
/// included) or its database past `limits.tables_per_database` tables is
/// rejected, and so is any line that conflicts; a rejected line adds
/// nothing to the catalog.
pub fn resolve_lp(
    catalog: &Catalog,
    db: &str,
    body: &str,
    precision: Precision,
    default_time_ns: i64,
    limits: Limits,
) -> Result<Resolved> {
    if let Some(database) = catalog.database(db) {
        let existing = collect_lines(body, precision, default_time_ns, |line| {
            let Some(table) = database.table(&line.measurement) else { return Step::NeedsNewColumns };
            match resolve_existing(table, line) {
                Ok(Some(row)) => Step::Row(table.id, row),
                Ok(None) => Step::NeedsNewColumns,
                Err(e) => Step::Reject(e),
            }
        });
        if let Some(c) = existing {
            return Ok(Resolved {
                batch: c.builder.finish(database.id),
                accepted: c.accepted,
                errors: c.errors,
                catalog: None,
            });
        }
    }

    let mut changed = catalog.clone();
    changed.sequence += 1;
    let database = changed.database_mut(db).map_err(|e| Error::InvalidArgument(e.to_string()))?;
    let db_id = database.id;
    let adding = collect_lines(body, precision, default_time_ns, |line| {
        let created = database.table(&line.measurement).is_none();
        if created && database.table_count() >= limits.tables_per_database {
            return Step::Reject(CatalogError::TooManyTables {
                database: database.name.clone(),
                table: line.measurement.to_string(),
                limit: limits.tables_per_database,
            });
        }
        let outcome = database.table_mut(&line.measurement).and_then(|table| {
            let id = table.id;
            resolve_adding(table, line, limits.columns_per_table).map(|row| (id, row))
        });
        match outcome {
            Ok((id, row)) => Step::Row(id, row),
            Err(e) => {
                if created {
                    database.forget_empty_table(&line.measurement);
                }
                Step::Reject(e)
            }
        }
    });
    let c = adding.ok_or_else(|| Error::InvalidArgument("catalog resolution stopped while adding columns".into()))?;
    Ok(Resolved { batch: c.builder.finish(db_id), accepted: c.accepted, errors: c.errors, catalog: Some(changed) })
}

/// How an Arrow column of a batch is written.
fn arrow_field_type(data_type: &DataType) -> Option<FieldType> {
    match data_type {
        DataType::Float64 => Some(FieldType::Float),
        DataType::Int64 => Some(FieldType::Integer),
        DataType::UInt64 => Some(FieldType::UInteger),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Some(FieldType::String),
        DataType::Boolean => Some(FieldType::Boolean),
        _ => None,
    }
}

/// The metadata key (and value) that marks an Arrow column as a tag, as InfluxDB 3 does.
pub const TAG_METADATA_KEY: &str = "iox::column::type";
/// See [`TAG_METADATA_KEY`].
pub const TAG_METADATA_VALUE: &str = "iox::column_type::tag";

/// `array` as Utf8 (dictionaries, large and view strings cast once per
/// batch: a cast per row costs more than the rest of the write).
fn as_utf8(array: &ArrayRef) -> std::result::Result<ArrayRef, arrow::error::ArrowError> {
    match array.data_type() {
        DataType::Utf8 => Ok(array.clone()),
        _ => arrow::compute::cast(array, &DataType::Utf8),
    }
}

/// Resolves an Arrow batch for `db`.`table`. The batch needs a non-null
/// `time` column (Timestamp of any unit, or Int64 nanoseconds); string or
/// dictionary-of-string columns marked with [`TAG_METADATA_KEY`] (or that are
/// already tags in the catalog, or any dictionary column) are tags; other
/// columns are fields, `family::name` naming the family. Any conflict, or
/// new columns that would take the table past `limits.columns_per_table`
/// columns (`time` included), or a new table past
/// `limits.tables_per_database`, rejects the whole batch.
pub fn resolve_record_batch(
    catalog: &Catalog,
    db: &str,
    table_name: &str,
    batch: &RecordBatch,
    limits: Limits,
) -> Result<Resolved> {
    let columns_per_table = limits.columns_per_table;
    let rejected = |reason: String| Error::BatchRejected { db: db.to_string(), table: table_name.to_string(), reason };
    let schema = batch.schema();
    let time_idx = schema.index_of(TIME_COLUMN).map_err(|_| rejected("no `time` column".into()))?;
    let time_col = batch.column(time_idx);
    if time_col.null_count() > 0 {
        return Err(rejected("`time` has nulls".into()));
    }
    let times: Vec<i64> = match time_col.data_type() {
        DataType::Int64 => time_col.as_primitive::<Int64Type>().values().to_vec(),
        DataType::Timestamp(unit, _) => {
            let raw = arrow::compute::cast(time_col, &DataType::Int64).map_err(|e| rejected(e.to_string()))?;
            let mult: i64 = match unit {
                TimeUnit::Second => 1_000_000_000,
                TimeUnit::Millisecond => 1_000_000,
                TimeUnit::Microsecond => 1_000,
                TimeUnit::Nanosecond => 1,
            };
            let mut out = Vec::with_capacity(raw.len());
            for &v in raw.as_primitive::<Int64Type>().values() {
                out.push(v.checked_mul(mult).ok_or_else(|| rejected(format!("timestamp {v} overflows nanoseconds")))?);
            }
            out
        }
        other => return Err(rejected(format!("`time` must be a timestamp or int64, not {other}"))),
    };

    let mut changed = catalog.clone();
    changed.sequence += 1;
    let database = changed.database_mut(db).map_err(|e| Error::InvalidArgument(e.to_string()))?;
    let db_id = database.id;
    if database.table(table_name).is_none() && database.table_count() >= limits.tables_per_database {
        let e = CatalogError::TooManyTables {
            database: db.to_string(),
            table: table_name.to_string(),
            limit: limits.tables_per_database,
        };
        return Err(rejected(e.to_string()));
    }
    let table = database.table_mut(table_name).map_err(|e| rejected(e.to_string()))?;
    let table_id = table.id;
    let existing = table.column_count();

    enum Col {
        /// Utf8.
        Tag(u32, ArrayRef),
        /// Utf8 when `FieldType::String`.
        Field(u32, FieldType, ArrayRef),
    }
    let mut cols = Vec::new();
    for (i, field) in schema.fields().iter().enumerate() {
        if i == time_idx {
            continue;
        }
        let name = field.name();
        let array = batch.column(i);
        let marked_tag = field.metadata().get(TAG_METADATA_KEY).is_some_and(|v| v == TAG_METADATA_VALUE)
            || matches!(field.data_type(), DataType::Dictionary(_, _))
            || table.column(name).is_some_and(|c| c.kind == ColumnKind::Tag);
        if marked_tag {
            let value_type = match field.data_type() {
                DataType::Dictionary(_, v) => v.as_ref().clone(),
                t => t.clone(),
            };
            if arrow_field_type(&value_type) != Some(FieldType::String) {
                return Err(rejected(format!("tag column {name} must hold strings, not {value_type}")));
            }
            let id = table.ensure_tag(name).map_err(|e| rejected(e.to_string()))?;
            cols.push(Col::Tag(id, as_utf8(array).map_err(|e| rejected(format!("tag column {name}: {e}")))?));
        } else {
            let ty = arrow_field_type(field.data_type())
                .ok_or_else(|| rejected(format!("column {name} has unsupported type {}", field.data_type())))?;
            let (family, short) = match name.split_once("::") {
                Some((f, n)) => (Some(f), n),
                None => (None, name.as_str()),
            };
            let id = table.ensure_field(short, family, ty).map_err(|e| rejected(e.to_string()))?;
            let array = match ty {
                FieldType::String => as_utf8(array).map_err(|e| rejected(format!("column {name}: {e}")))?,
                _ => array.clone(),
            };
            cols.push(Col::Field(id, ty, array));
        }
    }
    let added = table.column_count() - existing;
    if added > 0 && table.column_count() > columns_per_table {
        let e =
            CatalogError::TooManyColumns { table: table_name.to_string(), limit: columns_per_table, existing, added };
        return Err(rejected(e.to_string()));
    }

    let mut builder = BatchBuilder::default();
    for (row, &time) in times.iter().enumerate() {
        let mut series: Vec<(u32, &str)> = Vec::new();
        let mut fields = Vec::new();
        for col in &cols {
            match col {
                Col::Tag(id, array) => {
                    let strings = array.as_string::<i32>();
                    if strings.is_valid(row) && !strings.value(row).is_empty() {
                        series.push((*id, strings.value(row)));
                    }
                }
                Col::Field(id, ty, array) => {
                    if array.is_null(row) {
                        continue;
                    }
                    let value = match ty {
                        FieldType::Float => Value::F64(array.as_primitive::<Float64Type>().value(row)),
                        FieldType::Integer => Value::I64(array.as_primitive::<Int64Type>().value(row)),
                        FieldType::UInteger => Value::U64(array.as_primitive::<UInt64Type>().value(row)),
                        FieldType::Boolean => Value::Bool(array.as_boolean().value(row)),
                        FieldType::String => Value::Str(array.as_string::<i32>().value(row).to_string()),
                    };
                    fields.push((*id, value));
                }
            }
        }
        if fields.is_empty() {
            continue;
        }
        series.sort_unstable_by_key(|(id, _)| *id);
        builder.push(table_id, LineOut { series, fields }, time);
    }
    let batch = builder.finish(db_id);
    let accepted = batch.row_count();
    // Only the sequence bump differs when the batch added nothing.
    changed.sequence -= 1;
    let catalog = (changed != *catalog).then(|| {
        changed.sequence += 1;
        changed
    });
    Ok(Resolved { batch, accepted, errors: Vec::new(), catalog })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn resolve(cat: &Catalog, body: &str) -> Resolved {
        resolve_lp(cat, "db", body, Precision::Nanosecond, 0, crate::catalog::Limits::default()).unwrap()
    }

    #[test]
    fn new_columns_produce_a_changed_catalog_and_known_ones_do_not() {
        let body = "cpu,host=a usage=1.5,n=3i 10\ncpu,host=b usage=2.5 20\n";
        let first = resolve(&Catalog::default(), body);
        assert!(first.errors.is_empty());
        assert_eq!(first.accepted, 2);
        let cat = first.catalog.expect("new columns");
        assert_eq!(cat.sequence, 1);
        let t = &first.batch.tables[0];
        assert_eq!(t.series.len(), 2);
        assert_eq!(t.rows[1].time, 20);

        let second = resolve(&cat, body);
        assert!(second.catalog.is_none());
        assert_eq!(second.batch, first.batch);
    }

    #[test]
    fn type_conflicts_reject_only_their_line() {
        let first = resolve(&Catalog::default(), "cpu usage=1.5 1\n");
        let cat = first.catalog.unwrap();
        let body = "cpu usage=1.5 1\ncpu usage=2i 2\ncpu,usage=x other=1 3\n";
        let r = resolve(&cat, body);
        assert_eq!(r.accepted, 1);
        assert_eq!(r.errors.iter().map(|e| e.line).collect::<Vec<_>>(), vec![2, 3]);
        assert!(r.errors[0].message.contains("float field"), "{}", r.errors[0].message);
        assert_eq!(r.errors[0].text, "cpu usage=2i 2");
    }

    #[test]
    fn a_conflict_inside_a_new_batch_is_caught() {
        let r = resolve(&Catalog::default(), "m f=1i 1\nm f=1.0 2\n");
        assert_eq!(r.accepted, 1);
        assert_eq!(r.errors[0].line, 2);
    }

    proptest! {
        #[test]
        fn payload_round_trips(rows in proptest::collection::vec((any::<i64>(), any::<f64>(), any::<i64>(), ".{0,8}", any::<bool>()), 0..20)) {
            let batch = WriteBatch {
                db_id: 3,
                tables: vec![TableBatch {
                    table_id: 1,
                    series: vec![vec![(0, "a".into())], vec![]],
                    rows: rows.iter().enumerate().map(|(i, (t, f, n, s, b))| Row {
                        series: (i % 2) as u32,
                        time: *t,
                        fields: vec![(1, Value::F64(*f)), (2, Value::I64(*n)), (3, Value::Str(s.clone())), (4, Value::Bool(*b)), (5, Value::U64(*n as u64))],
                    }).collect(),
                }],
            };
            let decoded = WriteBatch::decode(Path::new("w"), 0, &batch.encode()).unwrap();
            // Compare through the encoding: NaN != NaN.
            prop_assert_eq!(decoded.encode(), batch.encode());
        }

        #[test]
        fn arbitrary_payloads_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = WriteBatch::decode(Path::new("w"), 0, &bytes);
        }
    }
}
