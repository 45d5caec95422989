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
use crate::time_range::TimeRange;
use crate::write::{SeriesKey, Value, WriteBatch};

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

#[derive(Debug, Default)]
struct Col<T> {
    values: Vec<T>,
    valid: Vec<bool>,
}

impl<T: Default + Clone> Col<T> {
    fn set(&mut self, row: usize, v: T) {
        if self.values.len() < row {
            self.values.resize(row, T::default());
            self.valid.resize(row, false);
        }
        if self.values.len() == row {
            self.values.push(v);
            self.valid.push(true);
        } else {
            // A duplicate field in one row cannot come from the parser; keep the last.
            self.values[row] = v;
            self.valid[row] = true;
        }
    }

    fn is_valid(&self, row: usize) -> bool {
        self.valid.get(row).copied().unwrap_or(false)
    }

    fn gather(&self, picks: &[Option<usize>]) -> (Vec<T>, Option<NullBuffer>) {
        let mut values = Vec::with_capacity(picks.len());
        let mut valid = Vec::with_capacity(picks.len());
        for p in picks {
            match p {
                Some(i) if self.is_valid(*i) => {
                    values.push(self.values[*i].clone());
                    valid.push(true);
                }
                _ => {
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
    fn set(&mut self, row: usize, v: &Value) -> Option<usize> {
        match (self, v) {
            (Column::F64(c), Value::F64(x)) => c.set(row, *x),
            (Column::I64(c), Value::I64(x)) => c.set(row, *x),
            (Column::U64(c), Value::U64(x)) => c.set(row, *x),
            (Column::Str(c), Value::Str(x)) => {
                c.set(row, x.clone());
                return Some(24 + x.len());
            }
            (Column::Bool(c), Value::Bool(x)) => c.set(row, *x),
            _ => return None,
        }
        Some(9)
    }

    fn is_valid(&self, row: usize) -> bool {
        match self {
            Column::F64(c) => c.is_valid(row),
            Column::I64(c) => c.is_valid(row),
            Column::U64(c) => c.is_valid(row),
            Column::Str(c) => c.is_valid(row),
            Column::Bool(c) => c.is_valid(row),
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
    /// restricted to the series present in them.
    pub fn rows(&self, sel: &Selection<'_>) -> Result<Rows> {
        let wanted: Vec<&Column> = sel.columns.iter().filter_map(|id| self.column(*id)).collect();
        if wanted.is_empty() && !sel.columns.is_empty() && !sel.keep_null_rows {
            return Ok(Rows::empty(Arc::new(Vec::new())));
        }
        let series_ok: Vec<bool> = self.keys.iter().map(|k| sel.series.is_none_or(|f| f(k))).collect();
        let picked: Vec<u32> = (0..self.len() as u32)
            .filter(|&i| {
                let i = i as usize;
                let t = self.time[i];
                sel.time.contains(t)
                    && series_ok[self.series[i] as usize]
                    && (sel.keep_null_rows || wanted.is_empty() || wanted.iter().any(|c| c.is_valid(i)))
            })
            .collect();

        // Rank series by key so the output directory is sorted.
        let mut used: Vec<u32> = picked.iter().map(|&i| self.series[i as usize]).collect();
        used.sort_unstable();
        used.dedup();
        used.sort_by(|&a, &b| self.keys[a as usize].cmp(&self.keys[b as usize]));
        let mut rank = vec![u32::MAX; self.keys.len()];
        for (r, &s) in used.iter().enumerate() {
            rank[s as usize] = r as u32;
        }
        // Counting sort by series rank (stable: arrival order within a
        // series), then sort by time only the series whose rows arrived out
        // of time order. Arrival order breaks time ties, so the newest write
        // of a key comes last.
        let mut starts = vec![0usize; used.len() + 1];
        for &i in &picked {
            starts[rank[self.series[i as usize] as usize] as usize + 1] += 1;
        }
        for r in 1..starts.len() {
            starts[r] += starts[r - 1];
        }
        let mut fill = starts.clone();
        let mut by_series = vec![0u32; picked.len()];
        for &i in &picked {
            let r = rank[self.series[i as usize] as usize] as usize;
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
                series.push(rank[self.series[first] as usize]);
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
                let picks: Vec<Option<usize>> = groups
                    .iter()
                    .map(|&(s, e)| picked[s..e].iter().rev().map(|&i| i as usize).find(|&i| col.is_valid(i)))
                    .collect();
                (id, col.gather(&picks))
            })
            .collect();
        let keys = used.iter().map(|&s| self.keys[s as usize].clone()).collect();
        Ok(Rows { series_keys: Arc::new(keys), series, time, columns })
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
                        self.bytes += 32 + key.iter().map(|(_, v)| 8 + v.len()).sum::<usize>();
                        table.keys.push(key.clone());
                        table.index.insert(key.clone(), id);
                        id
                    }
                };
                local.push(id);
            }
            for row in &tb.rows {
                let Some(&series) = local.get(row.series as usize) else { continue };
                let r = table.time.len();
                if r == 0 {
                    table.time_min = row.time;
                    table.time_max = row.time;
                } else {
                    table.time_min = table.time_min.min(row.time);
                    table.time_max = table.time_max.max(row.time);
                }
                table.series.push(series);
                table.time.push(row.time);
                self.bytes += 12;
                for (col, value) in &row.fields {
                    let slot = *col as usize;
                    if table.columns.len() <= slot {
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
}
