//! The write buffer: rows acknowledged since the last flush, in memory,
//! columnar per table and in arrival order. It does no I/O. On flush it is
//! frozen (swapped for an empty one) and turned into sorted [`Rows`] per
//! column family; scans read it the same way.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray, UInt64Array};
use arrow::buffer::NullBuffer;

use crate::error::Result;
use crate::rows::Rows;
use crate::series::SeriesKey;
use crate::time_range::TimeRange;
use crate::write::{Value, WriteBatch};

/// Which rows a read of the buffer wants.
#[derive(Clone, Copy)]
pub struct Selection<'a> {
    /// Field column ids to return. Rows where all of them are null are left out.
    pub columns: &'a [u32],
    pub time: TimeRange,
    /// Series to keep; `None` keeps all.
    pub series: Option<&'a dyn Fn(&SeriesKey) -> bool>,
    /// Keep rows where every one of `columns` is null (the row exists
    /// through other fields).
    pub keep_null_rows: bool,
}

/// Bytes of a row: its series (u32) and time (i64).
const ROW_BYTES: usize = 12;
/// Bytes of the row index a value carries once its column has a gap.
const INDEX_BYTES: usize = 4;
/// Bytes of a column slot (a table's columns are indexed by id).
const COLUMN_BYTES: usize = std::mem::size_of::<Option<Column>>();

/// Bytes a value takes in its column.
fn value_bytes(v: &Value) -> usize {
    match v {
        Value::F64(_) | Value::I64(_) | Value::U64(_) => 8,
        Value::Bool(_) => 1,
        Value::Str(s) => std::mem::size_of::<String>() + s.len(),
    }
}

/// Bytes a series key takes: it is held twice (the directory and its index).
fn series_bytes(key: &SeriesKey) -> usize {
    2 * (32 + key.iter().map(|(_, v)| std::mem::size_of::<(u32, String)>() + v.len()).sum::<usize>())
}

/// One field column of a table buffer. It holds only the rows that have a
/// value (a sparse table costs what it holds, not rows x columns): while
/// those rows are a contiguous run from `first` (the dense case, where every
/// row has the field) the row of a value is implied by its position; after
/// the first gap each value carries its row.
#[derive(Debug)]
struct Col<T> {
    /// The row of `values[0]`.
    first: u32,
    /// The row of each value, ascending; `None` while they are `first..`.
    rows: Option<Vec<u32>>,
    values: Vec<T>,
}

impl<T> Default for Col<T> {
    fn default() -> Self {
        Col { first: 0, rows: None, values: Vec::new() }
    }
}

impl<T: Default + Clone> Col<T> {
    /// Stores `v` at `row`, which is at or after every row stored (rows
    /// are appended in arrival order). Returns the bytes of row indices it
    /// added (the caller counts the value).
    fn set(&mut self, row: u32, v: T) -> usize {
        let Some(last) = self.last_row() else {
            self.first = row;
            self.values.push(v);
            return 0;
        };
        if row <= last {
            // A duplicate field in one row cannot come from the parser; keep the last.
            if let Some(i) = self.position(row) {
                self.values[i] = v;
            }
            return 0;
        }
        let added = match &mut self.rows {
            None if row == last + 1 => 0,
            None => {
                let mut rows: Vec<u32> = (self.first..=last).collect();
                rows.push(row);
                let added = rows.len() * INDEX_BYTES;
                self.rows = Some(rows);
                added
            }
            Some(rows) => {
                rows.push(row);
                INDEX_BYTES
            }
        };
        self.values.push(v);
        added
    }

    fn last_row(&self) -> Option<u32> {
        match &self.rows {
            Some(rows) => rows.last().copied(),
            None => (!self.values.is_empty()).then(|| self.first + (self.values.len() - 1) as u32),
        }
    }

    /// Where the value of `row` is in `values`.
    fn position(&self, row: u32) -> Option<usize> {
        match &self.rows {
            None => row.checked_sub(self.first).map(|d| d as usize).filter(|&i| i < self.values.len()),
            Some(rows) => rows.binary_search(&row).ok(),
        }
    }

    /// True when every one of the first `n` rows has a value.
    fn covers(&self, n: usize) -> bool {
        self.rows.is_none() && self.first == 0 && self.values.len() == n
    }

    /// The rows holding a value, ascending.
    fn held_rows(&self) -> Box<dyn Iterator<Item = u32> + '_> {
        match &self.rows {
            Some(rows) => Box::new(rows.iter().copied()),
            None => Box::new(self.first..self.first + self.values.len() as u32),
        }
    }

    /// The values at `picks` (positions in `values`; `None` is null).
    fn gather(&self, picks: &[Option<usize>]) -> (Vec<T>, Option<NullBuffer>) {
        let mut values = Vec::with_capacity(picks.len());
        let mut valid = Vec::with_capacity(picks.len());
        for p in picks {
            match p {
                Some(i) => {
                    values.push(self.values[*i].clone());
                    valid.push(true);
                }
                None => {
                    values.push(T::default());
                    valid.push(false);
                }
            }
        }
        let nulls = NullBuffer::from(valid);
        (values, (nulls.null_count() > 0).then_some(nulls))
    }
}

#[derive(Debug)]
enum Column {
    F64(Col<f64>),
    I64(Col<i64>),
    U64(Col<u64>),
    Str(Col<String>),
    Bool(Col<bool>),
}

impl Column {
    fn for_value(v: &Value) -> Column {
        match v {
            Value::F64(_) => Column::F64(Col::default()),
            Value::I64(_) => Column::I64(Col::default()),
            Value::U64(_) => Column::U64(Col::default()),
            Value::Str(_) => Column::Str(Col::default()),
            Value::Bool(_) => Column::Bool(Col::default()),
        }
    }

    /// Stores `v` at `row`; returns the bytes it added, or `None` on a type
    /// mismatch (which the catalog rules out; the value is dropped).
    fn set(&mut self, row: u32, v: &Value) -> Option<usize> {
        let index = match (self, v) {
            (Column::F64(c), Value::F64(x)) => c.set(row, *x),
            (Column::I64(c), Value::I64(x)) => c.set(row, *x),
            (Column::U64(c), Value::U64(x)) => c.set(row, *x),
            (Column::Str(c), Value::Str(x)) => c.set(row, x.clone()),
            (Column::Bool(c), Value::Bool(x)) => c.set(row, *x),
            _ => return None,
        };
        Some(index + value_bytes(v))
    }

    fn position(&self, row: u32) -> Option<usize> {
        match self {
            Column::F64(c) => c.position(row),
            Column::I64(c) => c.position(row),
            Column::U64(c) => c.position(row),
            Column::Str(c) => c.position(row),
            Column::Bool(c) => c.position(row),
        }
    }

    fn covers(&self, n: usize) -> bool {
        match self {
            Column::F64(c) => c.covers(n),
            Column::I64(c) => c.covers(n),
            Column::U64(c) => c.covers(n),
            Column::Str(c) => c.covers(n),
            Column::Bool(c) => c.covers(n),
        }
    }

    fn held_rows(&self) -> Box<dyn Iterator<Item = u32> + '_> {
        match self {
            Column::F64(c) => c.held_rows(),
            Column::I64(c) => c.held_rows(),
            Column::U64(c) => c.held_rows(),
            Column::Str(c) => c.held_rows(),
            Column::Bool(c) => c.held_rows(),
        }
    }

    fn len(&self) -> usize {
        match self {
            Column::F64(c) => c.values.len(),
            Column::I64(c) => c.values.len(),
            Column::U64(c) => c.values.len(),
            Column::Str(c) => c.values.len(),
            Column::Bool(c) => c.values.len(),
        }
    }

    fn gather(&self, picks: &[Option<usize>]) -> ArrayRef {
        match self {
            Column::F64(c) => {
                let (v, n) = c.gather(picks);
                Arc::new(Float64Array::new(v.into(), n))
            }
            Column::I64(c) => {
                let (v, n) = c.gather(picks);
                Arc::new(Int64Array::new(v.into(), n))
            }
            Column::U64(c) => {
                let (v, n) = c.gather(picks);
                Arc::new(UInt64Array::new(v.into(), n))
            }
            Column::Str(c) => {
                let (v, n) = c.gather(picks);
                let strings: StringArray = v
                    .iter()
                    .enumerate()
                    .map(|(i, s)| n.as_ref().is_none_or(|n| n.is_valid(i)).then_some(s.as_str()))
                    .collect();
                Arc::new(strings)
            }
            Column::Bool(c) => {
                let (v, n) = c.gather(picks);
                Arc::new(BooleanArray::new(v.into(), n))
            }
        }
    }
}

/// The buffered rows of one table.
#[derive(Debug, Default)]
pub struct TableBuffer {
    index: FxHashMap<SeriesKey, u32>,
    keys: Vec<SeriesKey>,
    series: Vec<u32>,
    time: Vec<i64>,
    /// Field columns indexed by column id (`None` for ids without values).
    columns: Vec<Option<Column>>,
    time_min: i64,
    time_max: i64,
}

impl TableBuffer {
    /// Rows buffered.
    pub fn len(&self) -> usize {
        self.time.len()
    }

    fn column(&self, id: u32) -> Option<&Column> {
        self.columns.get(id as usize).and_then(Option::as_ref)
    }

    /// True when no rows are buffered.
    pub fn is_empty(&self) -> bool {
        self.time.is_empty()
    }

    /// The smallest and largest time buffered.
    pub fn time_range(&self) -> (i64, i64) {
        (self.time_min, self.time_max)
    }

    /// Ids of the field columns that hold at least one value.
    pub fn column_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.columns.iter().enumerate().filter(|(_, c)| c.is_some()).map(|(id, _)| id as u32)
    }

    /// Sorted, deduplicated rows matching `sel`, with the series directory
    /// restricted to the series present in them. Costs O(rows held by the
    /// selected columns), not O(rows of the table), when the columns are
    /// sparse: a flush reads a wide, sparse table one family at a time.
    pub fn rows(&self, sel: &Selection<'_>) -> Result<Rows> {
        let wanted: Vec<&Column> = sel.columns.iter().filter_map(|id| self.column(*id)).collect();
        if wanted.is_empty() && !sel.columns.is_empty() && !sel.keep_null_rows {
            return Ok(Rows::empty(Arc::new(Vec::new())));
        }
        let n = self.len();
        // Rows with a value in some selected column (or every row), ascending.
        let candidates: Vec<u32> = if sel.keep_null_rows || wanted.is_empty() || wanted.iter().any(|c| c.covers(n)) {
            (0..n as u32).collect()
        } else if wanted.iter().map(|c| c.len()).sum::<usize>() >= n / 8 {
            let mut held = vec![false; n];
            for c in &wanted {
                for r in c.held_rows() {
                    held[r as usize] = true;
                }
            }
            (0..n as u32).filter(|&r| held[r as usize]).collect()
        } else {
            let mut rows: Vec<u32> = wanted.iter().flat_map(|c| c.held_rows()).collect();
            rows.sort_unstable();
            rows.dedup();
            rows
        };
        let series_ok: Option<Vec<bool>> = sel.series.map(|f| self.keys.iter().map(f).collect());
        let all_times = sel.time.covers(self.time_min, self.time_max);
        let picked: Vec<u32> = candidates
            .into_iter()
            .filter(|&i| {
                let i = i as usize;
                let t = self.time[i];
                (all_times || sel.time.contains(t)) && series_ok.as_ref().is_none_or(|ok| ok[self.series[i] as usize])
            })
            .collect();

        // Rank series by key so the output directory is sorted.
        let mut used: Vec<u32> = picked.iter().map(|&i| self.series[i as usize]).collect();
        used.sort_unstable();
        used.dedup();
        used.sort_by(|&a, &b| self.keys[a as usize].cmp(&self.keys[b as usize]));
        let rank = Rank::new(&used, self.keys.len());
        // Counting sort by series rank (stable: arrival order within a
        // series), then sort by time only the series whose rows arrived out
        // of time order. Arrival order breaks time ties, so the newest write
        // of a key comes last.
        let mut starts = vec![0usize; used.len() + 1];
        for &i in &picked {
            starts[rank.of(self.series[i as usize]) as usize + 1] += 1;
        }
        for r in 1..starts.len() {
            starts[r] += starts[r - 1];
        }
        let mut fill = starts.clone();
        let mut by_series = vec![0u32; picked.len()];
        for &i in &picked {
            let r = rank.of(self.series[i as usize]) as usize;
            by_series[fill[r]] = i;
            fill[r] += 1;
        }
        for w in starts.windows(2) {
            let run = &mut by_series[w[0]..w[1]];
            if !run.windows(2).all(|p| self.time[p[0] as usize] <= self.time[p[1] as usize]) {
                run.sort_by_key(|&i| self.time[i as usize]);
            }
        }
        let picked = by_series;

        let mut series = Vec::new();
        let mut time = Vec::new();
        let mut groups: Vec<(usize, usize)> = Vec::new();
        let mut start = 0;
        for end in 1..=picked.len() {
            let boundary = end == picked.len() || {
                let (a, b) = (picked[end - 1] as usize, picked[end] as usize);
                (self.series[a], self.time[a]) != (self.series[b], self.time[b])
            };
            if boundary {
                let first = picked[start] as usize;
                series.push(rank.of(self.series[first]));
                time.push(self.time[first]);
                groups.push((start, end));
                start = end;
            }
        }
        let columns = sel
            .columns
            .iter()
            .filter_map(|id| self.column(*id).map(|c| (*id, c)))
            .map(|(id, col)| {
                let picks: Vec<Option<usize>> =
                    groups.iter().map(|&(s, e)| picked[s..e].iter().rev().find_map(|&i| col.position(i))).collect();
                (id, col.gather(&picks))
            })
            .collect();
        let keys = used.iter().map(|&s| self.keys[s as usize].clone()).collect();
        Ok(Rows { series_keys: Arc::new(keys), series, time, columns })
    }
}

/// The rank of each used series in key order: a table indexed by series id
/// when most series are used, else a map (a flush reads a wide table once
/// per family; each read must not cost every series of the table).
enum Rank {
    Dense(Vec<u32>),
    Sparse(FxHashMap<u32, u32>),
}

impl Rank {
    fn new(used: &[u32], series: usize) -> Rank {
        if used.len().saturating_mul(8) >= series {
            let mut rank = vec![u32::MAX; series];
            for (r, &s) in used.iter().enumerate() {
                rank[s as usize] = r as u32;
            }
            Rank::Dense(rank)
        } else {
            Rank::Sparse(used.iter().enumerate().map(|(r, &s)| (s, r as u32)).collect())
        }
    }

    fn of(&self, series: u32) -> u32 {
        match self {
            Rank::Dense(rank) => rank[series as usize],
            Rank::Sparse(map) => map.get(&series).copied().unwrap_or(u32::MAX),
        }
    }
}

/// All buffered rows, per (database id, table id).
#[derive(Debug, Default)]
pub struct Buffer {
    tables: BTreeMap<(u32, u32), TableBuffer>,
    bytes: usize,
    rows: usize,
    first_write_ns: Option<i64>,
}

impl Buffer {
    /// Appends a resolved write. `now_ns` dates the oldest buffered write (for age-based flush).
    pub fn insert(&mut self, batch: &WriteBatch, now_ns: i64) {
        for tb in &batch.tables {
            let table = self.tables.entry((batch.db_id, tb.table_id)).or_default();
            let mut local = Vec::with_capacity(tb.series.len());
            for key in &tb.series {
                let id = match table.index.get(key) {
                    Some(&id) => id,
                    None => {
                        let id = table.keys.len() as u32;
                        self.bytes += series_bytes(key);
                        table.keys.push(key.clone());
                        table.index.insert(key.clone(), id);
                        id
                    }
                };
                local.push(id);
            }
            for row in &tb.rows {
                let Some(&series) = local.get(row.series as usize) else { continue };
                let r = table.time.len() as u32;
                if r == 0 {
                    table.time_min = row.time;
                    table.time_max = row.time;
                } else {
                    table.time_min = table.time_min.min(row.time);
                    table.time_max = table.time_max.max(row.time);
                }
                table.series.push(series);
                table.time.push(row.time);
                self.bytes += ROW_BYTES;
                for (col, value) in &row.fields {
                    let slot = *col as usize;
                    if table.columns.len() <= slot {
                        self.bytes += (slot + 1 - table.columns.len()) * COLUMN_BYTES;
                        table.columns.resize_with(slot + 1, || None);
                    }
                    let column = table.columns[slot].get_or_insert_with(|| Column::for_value(value));
                    self.bytes += column.set(r, value).unwrap_or(0);
                }
            }
            self.rows += tb.rows.len();
        }
        if self.first_write_ns.is_none() && self.rows > 0 {
            self.first_write_ns = Some(now_ns);
        }
    }

    /// The most [`Buffer::insert`] of `batch` can add to [`Buffer::bytes`]
    /// (as if every series and column were new and every column sparse):
    /// what admission checks before the write reaches the WAL.
    pub fn cost(batch: &WriteBatch) -> usize {
        let mut bytes = 0usize;
        for tb in &batch.tables {
            bytes = bytes.saturating_add(tb.series.iter().map(series_bytes).sum());
            let mut slots = 0usize;
            for row in &tb.rows {
                bytes = bytes.saturating_add(ROW_BYTES);
                for (col, value) in &row.fields {
                    slots = slots.max(*col as usize + 1);
                    bytes = bytes.saturating_add(INDEX_BYTES + value_bytes(value));
                }
            }
            bytes = bytes.saturating_add(slots * COLUMN_BYTES);
        }
        bytes
    }

    /// Approximate memory held, in bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Rows buffered.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// When the oldest buffered write arrived.
    pub fn first_write_ns(&self) -> Option<i64> {
        self.first_write_ns
    }

    /// The buffer of one table.
    pub fn table(&self, db_id: u32, table_id: u32) -> Option<&TableBuffer> {
        self.tables.get(&(db_id, table_id))
    }

    /// Every table with rows.
    pub fn tables(&self) -> impl Iterator<Item = ((u32, u32), &TableBuffer)> {
        self.tables.iter().map(|(k, v)| (*k, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write::{Row, TableBatch};
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Int64Type;

    /// `(host, time, [(column, value)])`.
    type SparseRow = (u8, i64, Vec<(u32, i64)>);
    /// `((host, time), cells)`, comparable across buffer and model.
    type KeyedRow = ((String, i64), Vec<Option<String>>);

    fn batch(rows: &[(&str, i64, Option<i64>, Option<i64>)]) -> WriteBatch {
        let mut series: Vec<SeriesKey> = Vec::new();
        let mut out = Vec::new();
        for (host, t, a, b) in rows {
            let key = vec![(0, host.to_string())];
            let s = series.iter().position(|k| *k == key).unwrap_or_else(|| {
                series.push(key);
                series.len() - 1
            });
            let mut fields = Vec::new();
            if let Some(a) = a {
                fields.push((1, Value::I64(*a)));
            }
            if let Some(b) = b {
                fields.push((2, Value::I64(*b)));
            }
            out.push(Row { series: s as u32, time: *t, fields });
        }
        WriteBatch { db_id: 0, tables: vec![TableBatch { table_id: 0, series, rows: out }] }
    }

    #[test]
    fn rows_are_sorted_deduplicated_and_filtered() {
        let mut buf = Buffer::default();
        buf.insert(&batch(&[("b", 5, Some(1), None), ("a", 9, Some(2), Some(20)), ("a", 3, None, Some(30))]), 100);
        buf.insert(&batch(&[("a", 9, Some(3), None), ("c", 1, None, Some(40))]), 200);
        assert_eq!(buf.rows(), 5);
        assert_eq!(buf.first_write_ns(), Some(100));
        let t = buf.table(0, 0).unwrap();
        assert_eq!(t.time_range(), (1, 9));

        let all =
            t.rows(&Selection { columns: &[1, 2], time: TimeRange::ALL, series: None, keep_null_rows: false }).unwrap();
        assert!(all.is_sorted_unique());
        let hosts: Vec<&str> = all.series.iter().map(|&s| all.series_keys[s as usize][0].1.as_str()).collect();
        assert_eq!(hosts, vec!["a", "a", "b", "c"]);
        assert_eq!(all.time, vec![3, 9, 5, 1]);
        let a = all.column(1).unwrap().as_primitive::<Int64Type>();
        assert_eq!(a.iter().collect::<Vec<_>>(), vec![None, Some(3), Some(1), None]);
        let b = all.column(2).unwrap().as_primitive::<Int64Type>();
        assert_eq!(b.iter().collect::<Vec<_>>(), vec![Some(30), Some(20), None, Some(40)]);

        // Only column 1: rows without it disappear.
        let one =
            t.rows(&Selection { columns: &[1], time: TimeRange::ALL, series: None, keep_null_rows: false }).unwrap();
        assert_eq!(one.len(), 2);
        assert_eq!(one.column(1).unwrap().null_count(), 0);

        // Time range and series filter.
        let only_a = |k: &SeriesKey| k[0].1 == "a";
        let some = t
            .rows(&Selection {
                columns: &[1, 2],
                time: TimeRange::half_open(4, 10),
                series: Some(&only_a),
                keep_null_rows: false,
            })
            .unwrap();
        assert_eq!(some.time, vec![9]);
        assert_eq!(some.series_keys.len(), 1);
    }

    proptest::proptest! {
        #[test]
        fn rows_equal_applying_writes_in_order(
            writes in proptest::collection::vec((0u8..4, 0i64..12, proptest::option::of(-5i64..5), proptest::option::of(-5i64..5)), 0..60),
            split in 0usize..60,
        ) {
            use std::collections::BTreeMap;
            let hosts = ["a", "b", "c", "d"];
            let rows: Vec<(&str, i64, Option<i64>, Option<i64>)> = writes
                .iter()
                .filter(|w| w.2.is_some() || w.3.is_some())
                .map(|&(h, t, a, b)| (hosts[h as usize], t, a, b))
                .collect();
            let mut buf = Buffer::default();
            let at = split.min(rows.len());
            buf.insert(&batch(&rows[..at]), 0);
            buf.insert(&batch(&rows[at..]), 0);
            type Cells = (Option<i64>, Option<i64>);
            let mut model: BTreeMap<(&str, i64), Cells> = BTreeMap::new();
            for &(h, t, a, b) in &rows {
                let e = model.entry((h, t)).or_default();
                e.0 = a.or(e.0);
                e.1 = b.or(e.1);
            }
            let Some(t) = buf.table(0, 0) else {
                proptest::prop_assert!(model.is_empty());
                return Ok(());
            };
            let got = t.rows(&Selection { columns: &[1, 2], time: TimeRange::ALL, series: None, keep_null_rows: false }).unwrap();
            proptest::prop_assert!(got.is_sorted_unique());
            let a = got.column(1).map(|c| c.as_primitive::<Int64Type>().clone());
            let b = got.column(2).map(|c| c.as_primitive::<Int64Type>().clone());
            let flat: Vec<((&str, i64), Cells)> = (0..got.len())
                .map(|i| {
                    let host = hosts.iter().find(|h| **h == got.series_keys[got.series[i] as usize][0].1).copied().unwrap();
                    let get = |c: &Option<arrow::array::Int64Array>| c.as_ref().and_then(|c| c.is_valid(i).then(|| c.value(i)));
                    ((host, got.time[i]), (get(&a), get(&b)))
                })
                .collect();
            proptest::prop_assert_eq!(flat, model.into_iter().collect::<Vec<_>>());
        }
    }

    /// A write of `(host, time, [(column, value)])` rows; column ids that are
    /// multiples of 5 hold strings, the others integers.
    fn sparse_batch(rows: &[SparseRow]) -> WriteBatch {
        let series: Vec<SeriesKey> = (0..4u8).map(|h| vec![(0, format!("h{h}"))]).collect();
        let rows = rows
            .iter()
            .map(|(h, t, fields)| Row {
                series: u32::from(*h),
                time: *t,
                fields: fields
                    .iter()
                    .map(|&(c, v)| (c, if c % 5 == 0 { Value::Str(format!("s{v}")) } else { Value::I64(v) }))
                    .collect(),
            })
            .collect();
        WriteBatch { db_id: 0, tables: vec![TableBatch { table_id: 0, series, rows }] }
    }

    /// Cell `i` of column `c` as the model writes it.
    fn cell(c: &ArrayRef, i: usize) -> Option<String> {
        if c.is_null(i) {
            return None;
        }
        Some(match c.data_type() {
            arrow::datatypes::DataType::Utf8 => c.as_string::<i32>().value(i).to_string(),
            _ => format!("{}", c.as_primitive::<Int64Type>().value(i)),
        })
    }

    #[test]
    fn a_column_per_row_costs_what_it_holds() {
        // The shape of the 70,000-new-fields body: each row adds a column.
        let n = 5_000u32;
        let rows: Vec<Row> =
            (0..n).map(|i| Row { series: 0, time: i64::from(i), fields: vec![(i, Value::I64(1))] }).collect();
        let batch = WriteBatch {
            db_id: 0,
            tables: vec![TableBatch { table_id: 0, series: vec![vec![(0, "a".into())]], rows }],
        };
        let mut buf = Buffer::default();
        buf.insert(&batch, 0);
        let t = buf.table(0, 0).unwrap();
        // Padded to the row count, the columns would hold n^2/2 slots.
        let held: usize = t.columns.iter().flatten().map(Column::len).sum();
        assert_eq!(held, n as usize);
        assert!(buf.bytes() <= Buffer::cost(&batch), "{} > {}", buf.bytes(), Buffer::cost(&batch));
        assert!(buf.bytes() < n as usize * (ROW_BYTES + 8 + COLUMN_BYTES) + 1024);
        // One family's read sees only its rows.
        let one =
            t.rows(&Selection { columns: &[7, 9], time: TimeRange::ALL, series: None, keep_null_rows: false }).unwrap();
        assert_eq!(one.time, vec![7, 9]);
    }

    type SparseWrite = (u8, i64, Vec<(u32, i64)>);

    fn sparse_writes() -> impl proptest::strategy::Strategy<Value = Vec<SparseWrite>> {
        use proptest::prelude::*;
        // Mostly dense runs of a few columns, with gaps and wide, sparse rows.
        proptest::collection::vec((0u8..4, 0i64..16, proptest::collection::vec((0u32..24, -9i64..9), 0..5)), 0..80)
            .prop_map(|ws| {
                ws.into_iter()
                    .map(|(h, t, mut f)| {
                        f.sort_by_key(|c| c.0);
                        f.dedup_by_key(|c| c.0);
                        (h, t, f)
                    })
                    .collect()
            })
    }

    proptest::proptest! {
        #[test]
        fn sparse_buffer_equals_a_dense_model(
            writes in sparse_writes(),
            splits in proptest::collection::vec(0usize..80, 0..4),
            columns in proptest::collection::vec(0u32..26, 0..6),
            time in (0i64..17, 0i64..17),
            hosts in proptest::collection::vec(proptest::bool::ANY, 4),
            filter_series in proptest::bool::ANY,
            keep_null_rows in proptest::bool::ANY,
        ) {
            use std::collections::BTreeMap;
            let mut columns = columns;
            columns.sort_unstable();
            columns.dedup();
            // Rows without fields are not written (the parser requires one).
            let writes: Vec<SparseWrite> = writes.into_iter().filter(|w| !w.2.is_empty()).collect();
            let mut cuts: Vec<usize> = splits.iter().map(|&s| s.min(writes.len())).collect();
            cuts.push(0);
            cuts.push(writes.len());
            cuts.sort_unstable();
            let mut buf = Buffer::default();
            for w in cuts.windows(2) {
                buf.insert(&sparse_batch(&writes[w[0]..w[1]]), 0);
            }

            // The dense model: every row has a slot for every column.
            let width = 26usize;
            let dense: Vec<(u8, i64, Vec<Option<i64>>)> = writes
                .iter()
                .map(|(h, t, f)| {
                    let mut cells = vec![None; width];
                    for &(c, v) in f {
                        cells[c as usize] = Some(v);
                    }
                    (*h, *t, cells)
                })
                .collect();
            let exists: Vec<bool> = (0..width).map(|c| dense.iter().any(|r| r.2[c].is_some())).collect();
            let out_cols: Vec<u32> = columns.iter().copied().filter(|&c| exists[c as usize]).collect();
            let (lo, hi) = (time.0.min(time.1), time.0.max(time.1));
            let mut model: BTreeMap<(u8, i64), Vec<Option<i64>>> = BTreeMap::new();
            for (h, t, cells) in &dense {
                if *t < lo || *t >= hi || (filter_series && !hosts[*h as usize]) {
                    continue;
                }
                let has = columns.iter().any(|&c| cells[c as usize].is_some());
                if !(keep_null_rows || columns.is_empty() || has) {
                    continue;
                }
                let e = model.entry((*h, *t)).or_insert_with(|| vec![None; width]);
                for c in 0..width {
                    if cells[c].is_some() {
                        e[c] = cells[c];
                    }
                }
            }
            let want: Vec<KeyedRow> = model
                .into_iter()
                .map(|((h, t), cells)| {
                    let row = out_cols
                        .iter()
                        .map(|&c| cells[c as usize].map(|v| if c % 5 == 0 { format!("s{v}") } else { v.to_string() }))
                        .collect();
                    ((format!("h{h}"), t), row)
                })
                .collect();

            let Some(t) = buf.table(0, 0) else {
                proptest::prop_assert!(want.is_empty());
                return Ok(());
            };
            let keep = |k: &SeriesKey| hosts[k[0].1[1..].parse::<usize>().unwrap()];
            let got = t
                .rows(&Selection {
                    columns: &columns,
                    time: TimeRange::half_open(lo, hi),
                    series: if filter_series { Some(&keep) } else { None },
                    keep_null_rows,
                })
                .unwrap();
            proptest::prop_assert!(got.is_sorted_unique());
            let ids: Vec<u32> = got.columns.iter().map(|(id, _)| *id).collect();
            if !got.is_empty() {
                proptest::prop_assert_eq!(&ids, &out_cols);
            }
            let flat: Vec<KeyedRow> = (0..got.len())
                .map(|i| {
                    let key = (got.series_keys[got.series[i] as usize][0].1.clone(), got.time[i]);
                    (key, got.columns.iter().map(|(_, a)| cell(a, i)).collect())
                })
                .collect();
            proptest::prop_assert_eq!(flat, want);
        }
    }
}
