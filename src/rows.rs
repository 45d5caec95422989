//! Sorted columnar rows: the in-memory shape shared by flush, scan and
//! compaction. A [`Rows`] holds a series directory (sorted, unique keys) and
//! rows sorted by (series, time) with at most one row per key, each field
//! column an Arrow array. [`merge`] combines several of them, later inputs
//! winning value by value: for one series and time, each field takes the
//! newest non-null value written (the same rule InfluxDB applies).

use std::cmp::Ordering;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, UInt32Array, new_null_array};
use arrow::compute::{concat, filter, take};
use arrow::datatypes::DataType;

use crate::catalog::{ColumnKind, FieldType};
use crate::error::Result;
use crate::series::SeriesKey;

/// The Arrow type of a column's values: tags as dictionaries of strings.
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

/// Rows of one table, sorted by (series, time), unique per (series, time).
#[derive(Debug, Clone)]
pub struct Rows {
    /// The series directory: sorted ascending, no duplicates.
    pub series_keys: Arc<Vec<SeriesKey>>,
    /// Per row, an index into `series_keys`; non-decreasing.
    pub series: Vec<u32>,
    /// Per row, nanoseconds since the epoch; increasing within a series.
    pub time: Vec<i64>,
    /// Field columns by column id, each as long as `time`.
    pub columns: Vec<(u32, ArrayRef)>,
}

impl Rows {
    /// No rows, no columns.
    pub fn empty(series_keys: Arc<Vec<SeriesKey>>) -> Self {
        Rows { series_keys, series: Vec::new(), time: Vec::new(), columns: Vec::new() }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.time.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.time.is_empty()
    }

    /// The column with id `id`.
    pub fn column(&self, id: u32) -> Option<&ArrayRef> {
        self.columns.iter().find(|(c, _)| *c == id).map(|(_, a)| a)
    }

    /// The rows for which `keep` is true.
    pub fn filter(&self, keep: &[bool]) -> Result<Rows> {
        let mask = BooleanArray::from(keep.to_vec());
        let mut series = Vec::new();
        let mut time = Vec::new();
        for (i, &k) in keep.iter().enumerate() {
            if k {
                series.push(self.series[i]);
                time.push(self.time[i]);
            }
        }
        let columns =
            self.columns.iter().map(|(id, a)| Ok((*id, filter(a.as_ref(), &mask)?))).collect::<Result<Vec<_>>>()?;
        Ok(Rows { series_keys: self.series_keys.clone(), series, time, columns })
    }

    /// Joins consecutive chunks of one sorted run (such as the blocks of
    /// one file section, which share a series directory) end to end.
    pub fn concat(mut chunks: Vec<Rows>) -> Result<Rows> {
        if chunks.len() <= 1 {
            return Ok(chunks.pop().unwrap_or_else(|| Rows::empty(Arc::new(Vec::new()))));
        }
        unify_directories(&mut chunks);
        let series_keys = chunks[0].series_keys.clone();
        let series = chunks.iter().flat_map(|c| c.series.iter().copied()).collect();
        let time = chunks.iter().flat_map(|c| c.time.iter().copied()).collect();
        let mut columns = Vec::with_capacity(chunks[0].columns.len());
        for (id, first) in &chunks[0].columns {
            let parts: Vec<&dyn Array> = chunks.iter().filter_map(|c| c.column(*id).map(|a| a.as_ref())).collect();
            if parts.len() != chunks.len() {
                // Chunks of one section always carry the same columns.
                return Err(crate::error::Error::InvalidArgument(format!(
                    "chunks disagree on column {id} ({})",
                    first.data_type()
                )));
            }
            columns.push((*id, concat(&parts)?));
        }
        Ok(Rows { series_keys, series, time, columns })
    }

    /// The rows at `indices` (ascending indices keep them sorted), copied.
    pub fn take(&self, indices: &[u32]) -> Result<Rows> {
        let idx = UInt32Array::from(indices.to_vec());
        let columns =
            self.columns.iter().map(|(id, a)| Ok((*id, take(a.as_ref(), &idx, None)?))).collect::<Result<Vec<_>>>()?;
        Ok(Rows {
            series_keys: self.series_keys.clone(),
            series: indices.iter().map(|&i| self.series[i as usize]).collect(),
            time: indices.iter().map(|&i| self.time[i as usize]).collect(),
            columns,
        })
    }

    /// Rows `start..start + len`, sharing the directory (the columns are
    /// zero-copy slices).
    pub fn slice(&self, start: usize, len: usize) -> Rows {
        let end = start + len;
        Rows {
            series_keys: self.series_keys.clone(),
            series: self.series[start..end].to_vec(),
            time: self.time[start..end].to_vec(),
            columns: self.columns.iter().map(|(id, a)| (*id, a.slice(start, len))).collect(),
        }
    }

    /// Drops rows where every field column is null (after a projection).
    pub fn drop_all_null_rows(self) -> Result<Rows> {
        if self.columns.is_empty() || self.columns.iter().any(|(_, a)| a.null_count() == 0) {
            return Ok(self);
        }
        let keep: Vec<bool> = (0..self.len()).map(|i| self.columns.iter().any(|(_, a)| a.is_valid(i))).collect();
        if keep.iter().all(|&k| k) {
            return Ok(self);
        }
        self.filter(&keep)
    }

    /// Checks the ordering invariant (tests and debug assertions).
    pub fn is_sorted_unique(&self) -> bool {
        self.series.windows(2).zip(self.time.windows(2)).all(|(s, t)| (s[0], t[0]) < (s[1], t[1]))
    }
}

/// Rewrites `inputs` to share one series directory: the union of the
/// series their rows use (not of their whole directories: a scan of one
/// series in files of a million series must not copy a million keys).
pub fn unify_directories(inputs: &mut [Rows]) {
    let Some(first) = inputs.first() else { return };
    if inputs.iter().all(|r| Arc::ptr_eq(&r.series_keys, &first.series_keys)) {
        return;
    }
    // Series indices are non-decreasing within an input: one key per run.
    let runs = |rows: &Rows| {
        let mut starts = Vec::new();
        for (i, &s) in rows.series.iter().enumerate() {
            if i == 0 || rows.series[i - 1] != s {
                starts.push(s);
            }
        }
        starts
    };
    let used: Vec<Vec<u32>> = inputs.iter().map(runs).collect();
    let mut all: Vec<&SeriesKey> = inputs
        .iter()
        .zip(&used)
        .flat_map(|(r, used)| used.iter().filter_map(|&s| r.series_keys.get(s as usize)))
        .collect();
    all.sort_unstable();
    all.dedup();
    let keys: Arc<Vec<SeriesKey>> = Arc::new(all.into_iter().cloned().collect());
    for (rows, used) in inputs.iter_mut().zip(&used) {
        // Every used key is in the union, so the search always succeeds.
        let mapped: Vec<(u32, u32)> = used
            .iter()
            .map(|&s| {
                let new = rows.series_keys.get(s as usize).and_then(|k| keys.binary_search(k).ok()).unwrap_or(0);
                (s, new as u32)
            })
            .collect();
        let mut run = 0;
        for (i, s) in rows.series.iter_mut().enumerate() {
            if i > 0 && mapped[run].0 != *s {
                run += 1;
            }
            *s = mapped[run].1;
        }
        rows.series_keys = keys.clone();
    }
}

/// A run of rows of one series inside one input: `input`, rows `start..end`.
#[derive(Clone, Copy)]
struct Run {
    input: usize,
    start: usize,
    end: usize,
}

/// Merges `inputs` (oldest first) into one sorted, unique [`Rows`]. For equal
/// (series, time), each column takes the value of the newest input in which
/// it is non-null. Columns missing from an input count as null there.
pub fn merge(mut inputs: Vec<Rows>) -> Result<Rows> {
    inputs.retain(|r| !r.is_empty());
    if inputs.len() <= 1 {
        return Ok(inputs.pop().unwrap_or_else(|| Rows::empty(Arc::new(Vec::new()))));
    }

    unify_directories(&mut inputs);
    let series_keys = inputs[0].series_keys.clone();

    // Runs of each series per input, grouped by series (input order kept
    // within a series). Sorting the runs, not bucketing them by series,
    // keeps a merge of a few rows of a million-series directory small.
    let mut runs: Vec<(u32, Run)> = Vec::new();
    for (input, rows) in inputs.iter().enumerate() {
        let mut start = 0;
        while start < rows.len() {
            let s = rows.series[start];
            let mut end = start + 1;
            while end < rows.len() && rows.series[end] == s {
                end += 1;
            }
            runs.push((s, Run { input, start, end }));
            start = end;
        }
    }
    runs.sort_by_key(|(s, _)| *s);
    let (series_of_run, runs): (Vec<u32>, Vec<Run>) = runs.into_iter().unzip();
    // Each series' runs are `runs[groups[g]..groups[g + 1]]`, in input order.
    let mut groups: Vec<usize> =
        (0..runs.len()).filter(|&i| i == 0 || series_of_run[i - 1] != series_of_run[i]).collect();
    groups.push(runs.len());

    // Offsets of each input in the concatenation.
    let mut offsets = Vec::with_capacity(inputs.len());
    let mut total = 0usize;
    for rows in &inputs {
        offsets.push(total);
        total += rows.len();
    }
    // The merged order as positions in the concatenation. Most series have
    // runs that do not overlap in time (data arrives in time order), so they
    // are just laid end to end; only overlapping runs are sorted.
    let mut order: Vec<u32> = Vec::with_capacity(total);
    for group in groups.windows(2) {
        let runs = &runs[group[0]..group[1]];
        match runs.len() {
            0 => {}
            1 => {
                let r = runs[0];
                order.extend((offsets[r.input] + r.start) as u32..(offsets[r.input] + r.end) as u32);
            }
            _ => {
                let first = |r: &Run| inputs[r.input].time[r.start];
                let last = |r: &Run| inputs[r.input].time[r.end - 1];
                let mut by_time = runs.to_vec();
                by_time.sort_by_key(|r| (first(r), r.input));
                let disjoint = by_time.windows(2).all(|w| last(&w[0]) < first(&w[1]));
                if disjoint {
                    for r in &by_time {
                        order.extend((offsets[r.input] + r.start) as u32..(offsets[r.input] + r.end) as u32);
                    }
                } else {
                    let base = order.len();
                    for r in runs.iter() {
                        order.extend((offsets[r.input] + r.start) as u32..(offsets[r.input] + r.end) as u32);
                    }
                    // Position order breaks ties: older input first, so the newest comes last.
                    let time_at = |pos: u32| {
                        let input = offsets.partition_point(|&o| o <= pos as usize) - 1;
                        inputs[input].time[pos as usize - offsets[input]]
                    };
                    order[base..].sort_by(|&a, &b| match time_at(a).cmp(&time_at(b)) {
                        Ordering::Equal => a.cmp(&b),
                        o => o,
                    });
                }
            }
        }
    }

    // Concatenated key columns.
    let mut cat_series = Vec::with_capacity(total);
    let mut cat_time = Vec::with_capacity(total);
    for rows in &inputs {
        cat_series.extend_from_slice(&rows.series);
        cat_time.extend_from_slice(&rows.time);
    }

    // Groups of equal (series, time) in merged order.
    let mut group_ends = Vec::new();
    let mut has_duplicates = false;
    for i in 1..=order.len() {
        let boundary = i == order.len() || {
            let (a, b) = (order[i - 1] as usize, order[i] as usize);
            (cat_series[a], cat_time[a]) != (cat_series[b], cat_time[b])
        };
        if boundary {
            group_ends.push(i);
        } else {
            has_duplicates = true;
        }
    }

    // Every column id with its type, in first-seen order.
    let mut column_types: Vec<(u32, DataType)> = Vec::new();
    let mut seen = rustc_hash::FxHashSet::default();
    for rows in &inputs {
        for (id, a) in &rows.columns {
            if seen.insert(*id) {
                column_types.push((*id, a.data_type().clone()));
            }
        }
    }
    // Each input's columns by id, once (wide tables).
    let by_id: Vec<rustc_hash::FxHashMap<u32, &ArrayRef>> =
        inputs.iter().map(|r| r.columns.iter().map(|(id, a)| (*id, a)).collect()).collect();

    let mut columns = Vec::with_capacity(column_types.len());
    for (id, data_type) in &column_types {
        let parts: Vec<ArrayRef> = inputs
            .iter()
            .zip(&by_id)
            .map(|(r, cols)| cols.get(id).map(|a| (*a).clone()).unwrap_or_else(|| new_null_array(data_type, r.len())))
            .collect();
        let part_refs: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
        let all = concat(&part_refs)?;
        let indices: UInt32Array = if has_duplicates {
            let mut start = 0;
            let mut idx = Vec::with_capacity(group_ends.len());
            for &end in &group_ends {
                let group = &order[start..end];
                let pick = group.iter().rev().find(|&&p| all.is_valid(p as usize)).copied();
                idx.push(pick);
                start = end;
            }
            UInt32Array::from(idx)
        } else {
            UInt32Array::from(order.clone())
        };
        columns.push((*id, take(all.as_ref(), &indices, None)?));
    }

    let mut series = Vec::with_capacity(group_ends.len());
    let mut time = Vec::with_capacity(group_ends.len());
    let mut start = 0;
    for &end in &group_ends {
        let p = order[start] as usize;
        series.push(cat_series[p]);
        time.push(cat_time[p]);
        start = end;
    }
    Ok(Rows { series_keys, series, time, columns })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, Float64Array, Int64Array};
    use arrow::datatypes::{Float64Type, Int64Type};
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn key(host: &str) -> SeriesKey {
        vec![(0, host.to_string())]
    }

    fn rows(keys: &[&str], data: &[(u32, i64, Option<f64>, Option<i64>)]) -> Rows {
        Rows {
            series_keys: Arc::new(keys.iter().map(|k| key(k)).collect()),
            series: data.iter().map(|d| d.0).collect(),
            time: data.iter().map(|d| d.1).collect(),
            columns: vec![
                (1, Arc::new(Float64Array::from(data.iter().map(|d| d.2).collect::<Vec<_>>())) as ArrayRef),
                (2, Arc::new(Int64Array::from(data.iter().map(|d| d.3).collect::<Vec<_>>())) as ArrayRef),
            ],
        }
    }

    fn flatten(r: &Rows) -> Vec<(String, i64, Option<f64>, Option<i64>)> {
        let f = r.column(1).map(|a| a.as_primitive::<Float64Type>().clone());
        let n = r.column(2).map(|a| a.as_primitive::<Int64Type>().clone());
        (0..r.len())
            .map(|i| {
                (
                    r.series_keys[r.series[i] as usize][0].1.clone(),
                    r.time[i],
                    f.as_ref().and_then(|a| a.is_valid(i).then(|| a.value(i))),
                    n.as_ref().and_then(|a| a.is_valid(i).then(|| a.value(i))),
                )
            })
            .collect()
    }

    #[test]
    fn newer_non_null_values_win_per_column() {
        let old =
            rows(&["a", "b"], &[(0, 1, Some(1.0), Some(10)), (0, 2, Some(2.0), None), (1, 1, Some(3.0), Some(30))]);
        let new = rows(&["a", "c"], &[(0, 1, None, Some(11)), (0, 2, Some(2.5), None), (1, 5, Some(9.0), None)]);
        let merged = merge(vec![old, new]).unwrap();
        assert!(merged.is_sorted_unique());
        assert_eq!(
            flatten(&merged),
            vec![
                ("a".into(), 1, Some(1.0), Some(11)),
                ("a".into(), 2, Some(2.5), None),
                ("b".into(), 1, Some(3.0), Some(30)),
                ("c".into(), 5, Some(9.0), None),
            ]
        );
    }

    #[test]
    fn disjoint_columns_join_on_key() {
        let mut a = rows(&["a"], &[(0, 1, Some(1.0), None), (0, 3, Some(3.0), None)]);
        a.columns.truncate(1);
        let mut b = rows(&["a"], &[(0, 1, None, Some(7)), (0, 2, None, Some(8))]);
        b.columns.remove(0);
        b.series_keys = a.series_keys.clone();
        let merged = merge(vec![a, b]).unwrap();
        assert_eq!(
            flatten(&merged),
            vec![("a".into(), 1, Some(1.0), Some(7)), ("a".into(), 2, None, Some(8)), ("a".into(), 3, Some(3.0), None)]
        );
    }

    type Write = (u8, i64, Option<i8>, Option<i8>);

    fn to_rows(writes: &[Write]) -> Rows {
        // Dedupe within one input the same way (last non-null wins).
        let mut m: BTreeMap<(u8, i64), (Option<i8>, Option<i8>)> = BTreeMap::new();
        for &(s, t, f, n) in writes {
            let e = m.entry((s, t)).or_default();
            e.0 = f.or(e.0);
            e.1 = n.or(e.1);
        }
        let hosts: Vec<String> = (0..4).map(|h| format!("h{h}")).collect();
        let host_refs: Vec<&str> = hosts.iter().map(|s| s.as_str()).collect();
        let data: Vec<(u32, i64, Option<f64>, Option<i64>)> =
            m.into_iter().map(|((s, t), (f, n))| (s as u32, t, f.map(f64::from), n.map(i64::from))).collect();
        rows(&host_refs, &data)
    }

    proptest! {
        #[test]
        fn merge_equals_applying_writes_in_order(inputs in proptest::collection::vec(
            proptest::collection::vec((0u8..4, 0i64..20, proptest::option::of(any::<i8>()), proptest::option::of(any::<i8>())), 0..30), 1..5)) {
            let mut expected: BTreeMap<(String, i64), (Option<f64>, Option<i64>)> = BTreeMap::new();
            for input in &inputs {
                let r = to_rows(input);
                for (h, t, f, n) in flatten(&r) {
                    let e = expected.entry((h, t)).or_default();
                    e.0 = f.or(e.0);
                    e.1 = n.or(e.1);
                }
            }
            let merged = merge(inputs.iter().map(|i| to_rows(i)).collect()).unwrap();
            prop_assert!(merged.is_sorted_unique());
            let got: Vec<_> = flatten(&merged);
            let want: Vec<_> = expected.into_iter().map(|((h, t), (f, n))| (h, t, f, n)).collect();
            prop_assert_eq!(got, want);
        }
    }
}
