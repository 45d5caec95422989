//! Compaction: merges a table's flushed (gen0) files, together with the
//! compacted files of the windows they touch, into one file per table per 24h
//! UTC window. All gen0 files of a table go into one job, which keeps the
//! rule scans rely on: every compacted file is older than every gen0 file.
//!
//! A job streams, so its memory does not grow with the data: it merges one
//! window at a time (several at once when the memory budget allows); each
//! input contributes only the blocks that hold rows of that window, decoded
//! one block at a time; a k-way merge over those blocks (the newest input
//! wins field by field, as [`crate::rows::merge`] says) fills the output
//! segment, which is written block by block ([`SegmentStream`]). What a
//! window's merge holds: one decoded block per input section, the rows of
//! one merge step, one output block being filled per section, and the
//! series directories of its inputs.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::path::PathBuf;
use std::sync::Arc;

use arrow::datatypes::DataType;
use rayon::prelude::*;

use super::{Edit, FileMeta, LEVEL_COMPACTED, LEVEL_GEN0, LiveFile, Tree, Version, window_end, window_start};
use crate::catalog::Table;
use crate::error::{Error, Result};
use crate::rows::{Rows, merge};
use crate::segment::reader::FamilyPlan;
use crate::segment::writer::used_series;
use crate::segment::{FooterInfo, Read, SegmentReader, TableInfo, WriteConfig, write_segment_with};
use crate::series::SeriesKey;
use crate::time_range::TimeRange;

/// The memory compaction's merges may use unless configured: 128 MiB, about
/// what one window's merge of eight flushed files and its compacted file
/// estimates at TSBS width (10 fields), so windows are merged one at a
/// time and a backfill in any order peaks where a live day does.
pub const DEFAULT_MEMORY: usize = 128 << 20;

/// The inputs of one table's compaction, oldest data first.
#[derive(Debug, Clone)]
pub struct Job {
    pub db_id: u32,
    pub table_id: u32,
    pub inputs: Vec<Arc<LiveFile>>,
}

/// One job per table that has gen0 files.
pub fn plan(version: &Version) -> Vec<Job> {
    let tables: BTreeSet<(u32, u32)> =
        version.files.iter().filter(|f| f.meta.level == LEVEL_GEN0).map(|f| (f.meta.db_id, f.meta.table_id)).collect();
    tables
        .into_iter()
        .map(|(db_id, table_id)| {
            let files = version.table_files(db_id, table_id);
            // The windows the gen0 files reach, as inclusive (first, last)
            // window starts: a compacted file of any of them is merged again.
            let reach: Vec<(i64, i64)> = files
                .iter()
                .filter(|f| f.meta.level == LEVEL_GEN0)
                .map(|f| (window_start(f.meta.time_min), window_start(f.meta.time_max)))
                .collect();
            let inputs = files
                .into_iter()
                .filter(|f| {
                    f.meta.level == LEVEL_GEN0
                        || f.meta.window_start_ns.is_some_and(|w| reach.iter().any(|&(a, b)| a <= w && w <= b))
                })
                .cloned()
                .collect();
            Job { db_id, table_id, inputs }
        })
        .collect()
}

/// The timestamps of window `w`: `[w, next window)`, and `i64::MAX` too
/// for the last window.
fn window_range(w: i64) -> TimeRange {
    let end = window_end(w);
    if end == i64::MAX { TimeRange::from(w) } else { TimeRange::half_open(w, end) }
}

/// The windows that hold rows of `job`'s inputs. A file within one window
/// says so in its metadata; a gen0 file that spans windows (flushes split
/// by window, but files written before that did not) has its time blocks
/// read, which costs only its timestamps.
fn windows_of(job: &Job) -> Result<BTreeSet<i64>> {
    let mut windows = BTreeSet::new();
    for input in &job.inputs {
        let m = &input.meta;
        if let Some(w) = m.window_start_ns {
            windows.insert(w);
            continue;
        }
        let (first, last) = (window_start(m.time_min), window_start(m.time_max));
        if first == last {
            windows.insert(first);
            continue;
        }
        let reader = &input.reader;
        let keys_only = Read { columns: &[], time: TimeRange::ALL, series: None, keep_null_rows: true };
        for family in 0..reader.footer().families.len() {
            let plan = reader.plan_family(family, &keys_only);
            for pick in &plan.blocks {
                if let Some(rows) = reader.read_block(&plan, pick)? {
                    let mut last = None;
                    for &t in &rows.time {
                        let w = window_start(t);
                        if last != Some(w) {
                            windows.insert(w);
                            last = Some(w);
                        }
                    }
                }
                reader.release_block(&plan, pick);
            }
        }
    }
    Ok(windows)
}

/// Bytes a decoded block of `rows` rows and `columns` field columns takes,
/// roughly: series and time, and 8 bytes and a validity bit per value.
fn block_bytes(rows: u64, columns: usize) -> u64 {
    rows.saturating_mul(12 + 9 * columns as u64)
}

/// What merging window `w` holds at once, roughly: one decoded block per
/// input section in the window, and per output section a block being filled
/// plus one merge step's rows (at most as large as the inputs' blocks).
fn window_memory(job: &Job, w: i64, config: WriteConfig) -> u64 {
    let range = window_range(w);
    let mut total = 0u64;
    for input in job.inputs.iter().filter(|f| range.overlaps(f.meta.time_min, f.meta.time_max)) {
        for fam in &input.reader.footer().families {
            let rows = u64::from(fam.block_rows).min(fam.rows);
            total = total.saturating_add(2 * block_bytes(rows, fam.columns.len()));
            total = total.saturating_add(block_bytes(u64::from(config.block_rows), fam.columns.len()));
        }
    }
    total
}

/// Runs `job`: writes the compacted files and returns the edit that swaps
/// them in. `table` is the catalog's table (a superset of every input's
/// columns); `memory` is the budget of the merges (see the module doc).
pub fn run(
    job: &Job,
    tree: &Tree,
    db_name: &str,
    table: &Table,
    config: WriteConfig,
    now_ns: i64,
    memory: usize,
) -> Result<Edit> {
    let windows: Vec<i64> = windows_of(job)?.into_iter().collect();
    let info =
        TableInfo { db_id: job.db_id, db: db_name.to_string(), table_id: job.table_id, table: table.name.clone() };
    let largest = windows.iter().map(|&w| window_memory(job, w, config)).max().unwrap_or(0);
    let budget = memory as u64;
    if largest > budget {
        // An estimate, on the safe side (decoded blocks are often smaller).
        tracing::info!(
            db = db_name,
            table = %table.name,
            needed = largest,
            budget,
            "a window's blocks need more than the compaction memory budget; merging one window at a time"
        );
    }
    let lanes = usize::try_from(budget / largest.max(1)).unwrap_or(usize::MAX).clamp(1, rayon::current_num_threads());
    let lanes = lanes.min(windows.len().max(1));
    // Window i goes to lane i % lanes: each lane merges its windows one by
    // one, the lanes in parallel.
    let results: Vec<(Option<PathBuf>, Result<Option<FileMeta>>)> = (0..lanes)
        .into_par_iter()
        .flat_map_iter(|lane| {
            let mut out = Vec::new();
            for &w in windows.iter().skip(lane).step_by(lanes) {
                let (id, path) = tree.allocate();
                let result = merge_window(job, w, &path, &info, table, config, now_ns).map(|written| {
                    written.map(|written| {
                        FileMeta::written(id, (job.db_id, job.table_id), LEVEL_COMPACTED, Some(w), &written)
                    })
                });
                let failed = result.is_err();
                out.push((Some(path), result));
                if failed {
                    break;
                }
            }
            out
        })
        .collect();
    let outputs: Vec<FileMeta> = super::keep_all_or_discard(results)?.into_iter().flatten().collect();
    Ok(Edit { add: outputs, remove: job.inputs.iter().map(|f| f.meta.id).collect(), ..Edit::default() })
}

/// The union of several files' series directories, without copying keys:
/// `keys[u]` names union series `u` by (input, index in its directory), and
/// `remap[input][local]` is the union index of an input's series. Union
/// indices are in key order, so comparing them compares keys.
struct Union {
    keys: Vec<(usize, u32)>,
    remap: Vec<Vec<u32>>,
}

fn union_directory(directories: &[&[SeriesKey]]) -> Result<Union> {
    let mut heap: BinaryHeap<Reverse<(&SeriesKey, usize, u32)>> = BinaryHeap::new();
    for (input, dir) in directories.iter().enumerate() {
        if let Some(first) = dir.first() {
            heap.push(Reverse((first, input, 0)));
        }
    }
    let mut keys: Vec<(usize, u32)> = Vec::new();
    let mut remap: Vec<Vec<u32>> = directories.iter().map(|d| vec![0; d.len()]).collect();
    let mut last: Option<&SeriesKey> = None;
    while let Some(Reverse((key, input, local))) = heap.pop() {
        if last != Some(key) {
            keys.push((input, local));
            last = Some(key);
        }
        let union = u32::try_from(keys.len() - 1)
            .map_err(|_| Error::InvalidArgument("more than 2^32 series in one compaction".into()))?;
        remap[input][local as usize] = union;
        if let Some(next) = directories[input].get(local as usize + 1) {
            heap.push(Reverse((next, input, local + 1)));
        }
    }
    Ok(Union { keys, remap })
}

/// One input section's rows of the window, a block at a time, its series
/// mapped into the union directory.
struct Cursor<'a> {
    /// The output section it feeds.
    section: usize,
    reader: &'a SegmentReader,
    plan: FamilyPlan,
    next: usize,
    remap: &'a [u32],
    /// The decoded block; rows before `pos` were merged.
    block: Option<Rows>,
    pos: usize,
}

impl Cursor<'_> {
    /// Makes sure rows are at hand; false once the section is done.
    fn fill(&mut self, shared: &Arc<Vec<SeriesKey>>) -> Result<bool> {
        loop {
            if self.block.as_ref().is_some_and(|b| self.pos < b.len()) {
                return Ok(true);
            }
            self.block = None;
            self.pos = 0;
            let Some(pick) = self.plan.blocks.get(self.next) else { return Ok(false) };
            self.next += 1;
            let rows = self.reader.read_block(&self.plan, pick)?;
            self.reader.release_block(&self.plan, pick);
            if let Some(mut rows) = rows {
                for s in &mut rows.series {
                    *s = *self.remap.get(*s as usize).ok_or_else(|| Error::Corrupt {
                        path: self.reader.path().to_path_buf(),
                        what: format!("series {s} is not in the file's directory"),
                    })?;
                }
                rows.series_keys = shared.clone();
                self.block = Some(rows);
            }
        }
    }

    /// The key of the last row at hand.
    fn last_key(&self) -> Option<(u32, i64)> {
        let b = self.block.as_ref()?;
        let i = b.len().checked_sub(1)?;
        Some((b.series[i], b.time[i]))
    }

    /// Takes the rows at hand up to and including key `frontier`.
    fn take_until(&mut self, frontier: (u32, i64)) -> Option<Rows> {
        let b = self.block.as_ref()?;
        let (mut lo, mut hi) = (self.pos, b.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if (b.series[mid], b.time[mid]) <= frontier {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let n = lo - self.pos;
        if n == 0 {
            return None;
        }
        let rows = b.slice(self.pos, n);
        self.pos += n;
        Some(rows)
    }
}

/// Merges window `w` of `job`'s inputs into segment `path`; `None` when
/// the window holds no rows (no file is left then).
fn merge_window(
    job: &Job,
    w: i64,
    path: &std::path::Path,
    info: &TableInfo,
    table: &Table,
    config: WriteConfig,
    now_ns: i64,
) -> Result<Option<crate::segment::Written>> {
    let range = window_range(w);
    let inputs: Vec<&SegmentReader> =
        job.inputs.iter().filter(|f| range.overlaps(f.meta.time_min, f.meta.time_max)).map(|f| &f.reader).collect();
    let directories: Vec<&[SeriesKey]> = inputs.iter().map(|r| r.series().as_slice()).collect();
    let union = union_directory(&directories)?;

    // Output sections: families in first-seen order over the inputs (oldest
    // first), each with its columns in first-seen order.
    let mut sections: Vec<(u32, Vec<(u32, DataType)>)> = Vec::new();
    for reader in &inputs {
        let footer = reader.footer();
        for fam in &footer.families {
            if table.family(fam.id).is_none() {
                continue;
            }
            let at = match sections.iter().position(|(id, _)| *id == fam.id) {
                Some(at) => at,
                None => {
                    sections.push((fam.id, Vec::new()));
                    sections.len() - 1
                }
            };
            for chunk in &fam.columns {
                if sections[at].1.iter().any(|(id, _)| *id == chunk.column) {
                    continue;
                }
                let kind = table
                    .column_by_id(chunk.column)
                    .map(|c| c.kind)
                    .or_else(|| footer.columns.iter().find(|c| c.id == chunk.column).map(|c| c.kind.into()));
                let Some(kind) = kind else {
                    return Err(Error::Corrupt {
                        path: reader.path().to_path_buf(),
                        what: format!("column {} is in no schema", chunk.column),
                    });
                };
                sections[at].1.push((chunk.column, crate::rows::arrow_type(kind)));
            }
        }
    }

    let shared: Arc<Vec<SeriesKey>> = Arc::new(Vec::new());
    let written = write_segment_with(path, config, |stream| {
        let mut cursors: Vec<Cursor<'_>> = Vec::new();
        let mut section_ids = Vec::with_capacity(sections.len());
        for (at, (family_id, columns)) in sections.iter().enumerate() {
            let Some(family) = table.family(*family_id) else { continue };
            section_ids.push(stream.add_family(family.clone(), columns.clone()));
            for (input, reader) in inputs.iter().enumerate() {
                let Some(f) = reader.footer().families.iter().position(|f| f.id == *family_id) else { continue };
                let ids: Vec<u32> = reader.footer().families[f].columns.iter().map(|c| c.column).collect();
                let plan =
                    reader.plan_family(f, &Read { columns: &ids, time: range, series: None, keep_null_rows: false });
                cursors.push(Cursor {
                    section: at,
                    reader,
                    plan,
                    next: 0,
                    remap: &union.remap[input],
                    block: None,
                    pos: 0,
                });
            }
        }
        let mut used = vec![false; union.keys.len()];
        let mut rows = 0u64;
        loop {
            let mut frontier: Option<(u32, i64)> = None;
            for cursor in &mut cursors {
                if cursor.fill(&shared)? {
                    frontier = match (frontier, cursor.last_key()) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
            }
            let Some(frontier) = frontier else { break };
            // Every row up to the frontier is at hand: each cursor's later
            // rows come after its last key, which is at least the frontier.
            let mut step_keys: Vec<(u32, i64)> = Vec::new();
            for (at, &section) in section_ids.iter().enumerate() {
                let parts: Vec<Rows> =
                    cursors.iter_mut().filter(|c| c.section == at).filter_map(|c| c.take_until(frontier)).collect();
                if parts.is_empty() {
                    continue;
                }
                let merged = merge(parts)?;
                for &s in &merged.series {
                    used[s as usize] = true;
                }
                if section_ids.len() > 1 {
                    step_keys.extend(merged.series.iter().copied().zip(merged.time.iter().copied()));
                } else {
                    rows += merged.len() as u64;
                }
                stream.push(section, merged)?;
            }
            if section_ids.len() > 1 {
                step_keys.sort_unstable();
                step_keys.dedup();
                rows += step_keys.len() as u64;
            }
        }
        if rows == 0 {
            return Ok(None);
        }
        // The output's directory: the union series that have rows here.
        let (kept, out_index) = used_series(&used);
        let series = kept
            .iter()
            .map(|&u| {
                let (input, local) = union.keys[u];
                directories[input][local as usize].clone()
            })
            .collect();
        let footer =
            FooterInfo { table: info.clone(), columns: table.columns.clone(), series, rows, created_at_ns: now_ns };
        let remap: Box<dyn Fn(u32) -> u32> = Box::new(move |s| out_index[s as usize]);
        Ok(Some((footer, remap)))
    })?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Engine, Precision, WriteOptions};
    use arrow::util::display::array_value_to_string;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// (window, family, series, time, column) -> value, non-null cells only.
    type Cells = BTreeMap<(i64, u32, String, i64, u32), String>;

    fn add_cells(cells: &mut Cells, window: Option<i64>, family: u32, rows: &Rows) {
        for i in 0..rows.len() {
            let t = rows.time[i];
            let w = window.unwrap_or_else(|| window_start(t));
            assert_eq!(window_start(t), w, "a row outside its file's window");
            let series = format!("{:?}", rows.series_keys[rows.series[i] as usize]);
            for (id, a) in &rows.columns {
                if a.is_valid(i) {
                    let value = array_value_to_string(a, i).unwrap();
                    cells.insert((w, family, series.clone(), t, *id), value);
                }
            }
        }
    }

    /// The merge as compaction did it before it streamed: every input read
    /// whole, merged per family in memory, then cut by window.
    fn in_memory(job: &Job) -> Cells {
        let mut per_family: BTreeMap<u32, Vec<Rows>> = BTreeMap::new();
        for input in &job.inputs {
            for (family, rows) in input.reader.read_all().unwrap() {
                per_family.entry(family).or_default().push(rows);
            }
        }
        let mut cells = Cells::new();
        for (family, inputs) in per_family {
            add_cells(&mut cells, None, family, &merge(inputs).unwrap());
        }
        cells
    }

    const POOL: [i64; 9] = [
        i64::MIN,
        i64::MIN + 1,
        0,
        1,
        super::super::WINDOW_NS - 1,
        super::super::WINDOW_NS,
        3 * super::super::WINDOW_NS + 7,
        i64::MAX - 1,
        i64::MAX,
    ];

    /// One line: series, time (an index into POOL or a small offset),
    /// and which of four fields (two families) it sets.
    type Line = (u8, usize, u8, [Option<i8>; 4]);

    fn line_protocol(lines: &[Line]) -> String {
        let mut lp = String::new();
        for &(series, when, offset, values) in lines {
            let t = POOL[when % POOL.len()].saturating_add(i64::from(offset) * 1_000_000_000);
            let names = ["a", "b", "x::c", "x::d"];
            let fields: Vec<String> = values
                .iter()
                .zip(names)
                .filter_map(|(v, name)| {
                    v.map(|v| if name == "x::d" { format!("{name}=\"s{v}\"") } else { format!("{name}={v}i") })
                })
                .collect();
            if fields.is_empty() {
                continue;
            }
            lp.push_str(&format!("m,host=h{} {} {t}\n", series % 5, fields.join(",")));
        }
        lp
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
        /// The streaming merge gives exactly the cells the in-memory merge
        /// gave, one file per window holding only that window's rows, each
        /// footer counting its distinct keys, at block sizes that cut
        /// series, windows and merge steps anywhere.
        #[test]
        fn streaming_compaction_equals_the_in_memory_merge(
            batches in proptest::collection::vec(proptest::collection::vec(
                (any::<u8>(), any::<usize>(), 0u8..3, proptest::array::uniform4(proptest::option::of(any::<i8>()))),
                1..25), 1..6),
            block_rows in 1u32..6,
            memory in prop_oneof![Just(1usize), Just(DEFAULT_MEMORY)],
        ) {
            let dir = tempfile::tempdir().unwrap();
            let engine = Engine::builder(dir.path()).background(false).block_rows(block_rows).open().unwrap();
            let mut wrote = false;
            for batch in &batches {
                let lp = line_protocol(batch);
                if lp.is_empty() {
                    continue;
                }
                engine.write_lp("db", &lp, Precision::Nanosecond, WriteOptions::default()).unwrap();
                engine.flush().unwrap();
                wrote = true;
            }
            prop_assume!(wrote);
            // A compacted file to merge again, then more gen0 files.
            engine.compact().unwrap();
            for batch in batches.iter().rev().take(2) {
                let lp = line_protocol(batch);
                if !lp.is_empty() {
                    engine.write_lp("db", &lp, Precision::Nanosecond, WriteOptions::default()).unwrap();
                    engine.flush().unwrap();
                }
            }
            let version = engine.version();
            let jobs = plan(&version);
            prop_assert_eq!(jobs.len(), 1);
            let job = &jobs[0];
            let catalog = engine.catalog();
            let table = catalog.database("db").unwrap().table("m").unwrap().clone();
            let out = tempfile::tempdir().unwrap();
            let tree = Tree::open(out.path()).unwrap();
            let config = WriteConfig { block_rows, zstd_level: 1 };
            let edit = run(job, &tree, "db", &table, config, 0, memory).unwrap();
            let mut got = Cells::new();
            let mut windows = BTreeSet::new();
            for meta in &edit.add {
                let w = meta.window_start_ns.unwrap();
                prop_assert!(windows.insert(w), "two files for window {}", w);
                let reader = SegmentReader::open(&out.path().join(meta.relative_path())).unwrap();
                let mut keys = BTreeSet::new();
                for (family, rows) in reader.read_all().unwrap() {
                    prop_assert!(rows.is_sorted_unique());
                    keys.extend(rows.series.iter().map(|&s| rows.series_keys[s as usize].clone()).zip(rows.time.iter().copied()));
                    add_cells(&mut got, Some(w), family, &rows);
                }
                prop_assert_eq!(reader.footer().rows, keys.len() as u64);
                prop_assert_eq!(meta.rows, keys.len() as u64);
            }
            prop_assert_eq!(got, in_memory(job));
        }
    }

    fn key(host: &str) -> SeriesKey {
        vec![(0, host.to_string())]
    }

    #[test]
    fn union_directory_merges_sorted_directories() {
        let a = vec![key("a"), key("c"), key("e")];
        let b = vec![key("b"), key("c"), key("f")];
        let empty: Vec<SeriesKey> = Vec::new();
        let u = union_directory(&[&a, &empty, &b]).unwrap();
        assert_eq!(u.keys.len(), 5);
        assert_eq!(u.remap[0], vec![0, 2, 3]);
        assert_eq!(u.remap[2], vec![1, 2, 4]);
        assert!(u.remap[1].is_empty());
    }

    #[test]
    fn window_ranges_cover_the_ends() {
        let last = window_start(i64::MAX);
        assert!(window_range(last).contains(i64::MAX));
        let first = window_start(i64::MIN);
        assert!(window_range(first).contains(i64::MIN));
        assert!(!window_range(0).contains(super::super::WINDOW_NS));
        assert!(window_range(0).contains(super::super::WINDOW_NS - 1));
    }
}
