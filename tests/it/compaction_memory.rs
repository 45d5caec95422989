//! Compaction's peak memory is bounded by its budget (`compaction_memory`),
//! not by the data it merges: a data folder of many flushed files, whose
//! rows decoded take several times the budget, is compacted in a child
//! process (this test binary run again), which reports the peak of its
//! resident set during the compaction; the parent checks that the peak
//! above the child's resident set before compacting stays within the
//! budget plus a fixed margin, and that every row is still there.
//!
//! The child resets its peak (`VmHWM`) by writing 5 to
//! /proc/self/clear_refs, after checking with a probe allocation that the
//! reset works; where the file cannot be written it takes the peak since
//! it started, which can only overstate what compaction used.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, DictionaryArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
};
use arrow::datatypes::{DataType, Field, Float64Type, Int32Type, Int64Type, Schema, TimestampNanosecondType};
use quipu::tree::{LEVEL_COMPACTED, LEVEL_GEN0, window_end};
use quipu::{Engine, ScanRequest};

/// The environment variable that makes [`compaction_child`] the child, naming the data folder.
const CHILD_ENV: &str = "QUIPU_COMPACTION_MEMORY_DIR";
const SECOND: i64 = 1_000_000_000;
/// 2024-05-01T00:00:00Z.
const START: i64 = 1_714_521_600 * SECOND;
const SERIES: i64 = 300;
const STEP: i64 = 30 * SECOND;
/// 2.5 days of points every 30 s: three windows, 7,200 points per series.
const STEPS: i64 = 7_200;
const ROWS: i64 = SERIES * STEPS;
/// Time steps per write; each write of 60,000 rows is flushed, so there
/// are at least 36 gen0 files (more where a flush splits at a window).
const STEPS_PER_FILE: i64 = 200;
const BLOCK_ROWS: u32 = 4_096;
/// The budget the child compacts with.
const BUDGET: usize = 16 << 20;
/// What a row takes decoded in memory: time (8 bytes), series number (4)
/// and four 8-byte fields. 2,160,000 rows are about 91 MiB, 5.7 times the
/// budget; the old compaction held all of it decoded, then the merge of it
/// and a per-window copy.
const DECODED_BYTES: usize = ROWS as usize * (8 + 4 + 4 * 8);
const _: () = assert!(DECODED_BYTES >= 4 * BUDGET, "the data must not fit the budget");
/// What the process may hold beyond the budget while compacting: allocator
/// slack (freed blocks kept by malloc's arenas, one per thread that
/// allocated), the series directory and the catalog, the zstd contexts of
/// the writer and readers, the stacks and thread-locals of the compaction
/// threads, the segment pages touched in the mapping before they are
/// released, and the page-table and code pages touched for the first time.
/// None of these grows with the rows merged.
const MARGIN: usize = 48 << 20;

fn time(step: i64) -> i64 {
    START + step * STEP
}

/// The four field values of series `s` at `step`.
fn values(s: i64, step: i64) -> (f64, f64, i64, i64) {
    let a = (step % 1_000) as f64 + 0.25;
    let b = s as f64 * 1.5 + (step % 7) as f64;
    let c = s * 1_000_000 + step;
    let d = (step * 7_919 + s * 104_729) % 1_000_003 - 500_000;
    (a, b, c, d)
}

/// An order-independent checksum term of one row.
fn mix(s: i64, t: i64, (a, b, c, d): (f64, f64, i64, i64)) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for x in [s as u64, t as u64, a.to_bits(), b.to_bits(), c as u64, d as u64] {
        h = (h ^ x).wrapping_mul(0x0100_0000_01b3);
        h ^= h >> 29;
    }
    h
}

/// Every row, in time order, one gen0 file per [`STEPS_PER_FILE`] steps.
/// Written as Arrow batches: formatting and parsing the same rows as line
/// protocol would about double this in a debug build.
/// Returns the checksum of what was written.
fn prepare(dir: &Path) -> u64 {
    let engine = Engine::builder(dir).background(false).compaction(false).block_rows(BLOCK_ROWS).open().unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("series", DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)), false),
        Field::new("time", DataType::Int64, false),
        Field::new("a", DataType::Float64, false),
        Field::new("b", DataType::Float64, false),
        Field::new("c", DataType::Int64, false),
        Field::new("d", DataType::Int64, false),
    ]));
    let names: ArrayRef = Arc::new(StringArray::from_iter_values((0..SERIES).map(|s| format!("s{s}"))));
    let mut sum = 0u64;
    for first in (0..STEPS).step_by(STEPS_PER_FILE as usize) {
        let (mut keys, mut times) = (Vec::new(), Vec::new());
        let (mut a, mut b, mut c, mut d) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for step in first..(first + STEPS_PER_FILE).min(STEPS) {
            let t = time(step);
            for s in 0..SERIES {
                let v = values(s, step);
                sum = sum.wrapping_add(mix(s, t, v));
                keys.push(s as i32);
                times.push(t);
                a.push(v.0);
                b.push(v.1);
                c.push(v.2);
                d.push(v.3);
            }
        }
        let series = DictionaryArray::<Int32Type>::try_new(Int32Array::from(keys), names.clone()).unwrap();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(series),
            Arc::new(Int64Array::from(times)),
            Arc::new(Float64Array::from(a)),
            Arc::new(Float64Array::from(b)),
            Arc::new(Int64Array::from(c)),
            Arc::new(Int64Array::from(d)),
        ];
        engine.write_batch("db", "m", &RecordBatch::try_new(schema.clone(), columns).unwrap()).unwrap();
        engine.flush().unwrap();
    }
    let version = engine.version();
    let gen0 = version.files.iter().filter(|f| f.meta.level == LEVEL_GEN0).count() as i64;
    assert!(gen0 >= STEPS / STEPS_PER_FILE, "a flushed file per write; {gen0} files");
    sum
}

/// (rows, checksum) of the table as a scan reads it.
fn read_back(engine: &Engine) -> (i64, u64) {
    let batches: Vec<RecordBatch> = engine.scan("db", "m", &ScanRequest::all()).unwrap();
    let (mut rows, mut sum) = (0i64, 0u64);
    for batch in &batches {
        let series = arrow::compute::cast(batch.column_by_name("series").unwrap(), &DataType::Utf8).unwrap();
        let series = series.as_string::<i32>();
        let time = batch.column_by_name("time").unwrap().as_primitive::<TimestampNanosecondType>();
        let a = batch.column_by_name("a").unwrap().as_primitive::<Float64Type>();
        let b = batch.column_by_name("b").unwrap().as_primitive::<Float64Type>();
        let c = batch.column_by_name("c").unwrap().as_primitive::<Int64Type>();
        let d = batch.column_by_name("d").unwrap().as_primitive::<Int64Type>();
        for i in 0..batch.num_rows() {
            assert!(a.is_valid(i) && b.is_valid(i) && c.is_valid(i) && d.is_valid(i), "a null field");
            let s: i64 = series.value(i).strip_prefix('s').and_then(|n| n.parse().ok()).expect("series tag");
            sum = sum.wrapping_add(mix(s, time.value(i), (a.value(i), b.value(i), c.value(i), d.value(i))));
            rows += 1;
        }
    }
    (rows, sum)
}

/// `VmHWM` and `VmRSS` of this process, in KiB.
fn hwm_and_rss_kb() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| -> u64 {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} in status"));
        line[name.len()..].trim().trim_end_matches("kB").trim().parse().unwrap()
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// Resets `VmHWM` to the current resident set. False where
/// /proc/self/clear_refs cannot be written.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The child: compacts the folder named by [`CHILD_ENV`] with the budget
/// and prints `PEAK_KB=<peak> BASE_KB=<resident set before compacting>`.
/// Run by itself, without the variable, it does nothing.
#[test]
fn compaction_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let engine = Engine::builder(&dir)
        .background(false)
        .compaction(false)
        .block_rows(BLOCK_ROWS)
        .compaction_memory(BUDGET)
        .open()
        .unwrap();
    let reset = if reset_peak() {
        // Check the reset works: a probe of 64 MiB (past malloc's mmap
        // threshold, so freeing it unmaps it) raises the peak; a reset
        // brings it back down to the resident set.
        let probe = std::hint::black_box(vec![1u8; 64 << 20]);
        drop(probe);
        let (raised, _) = hwm_and_rss_kb();
        assert!(reset_peak(), "clear_refs could be written once but not twice");
        let (lowered, rss) = hwm_and_rss_kb();
        assert!(
            raised >= rss + (48 << 10) && lowered < raised - (48 << 10),
            "writing 5 to clear_refs did not reset VmHWM: {raised} kB after the probe, {lowered} kB after the \
             reset, {rss} kB resident"
        );
        "clear_refs"
    } else {
        "since start"
    };
    let (_, base) = hwm_and_rss_kb();
    engine.compact().unwrap();
    let (peak, after) = hwm_and_rss_kb();
    println!("PEAK_KB={peak} BASE_KB={base} AFTER_KB={after} RESET={reset}");
}

#[test]
fn compaction_peak_memory_stays_within_the_budget() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let written = prepare(dir.path());

    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            &crate::common::test_name(module_path!(), "compaction_child"),
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the child failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    // libtest may print the test's name on the same line, before the report.
    let report = stdout
        .lines()
        .find_map(|l| l.find("PEAK_KB=").map(|at| &l[at..]))
        .unwrap_or_else(|| panic!("no report in {stdout}"));
    let kb = |key: &str| -> usize {
        let word = report.split_whitespace().find_map(|w| w.strip_prefix(key)).expect(key);
        word.parse::<usize>().unwrap()
    };
    let (peak, base) = (kb("PEAK_KB=") * 1024, kb("BASE_KB=") * 1024);
    println!("child: {report}");

    // The compaction happened and lost nothing.
    let engine = Engine::builder(dir.path()).background(false).compaction(false).open().unwrap();
    let version = engine.version();
    assert!(!version.files.is_empty());
    for f in &version.files {
        assert_eq!(f.meta.level, LEVEL_COMPACTED, "file {} was not compacted", f.meta.id);
        let w = f.meta.window_start_ns.unwrap();
        assert!(w <= f.meta.time_min && f.meta.time_max < window_end(w), "file {} outside its window", f.meta.id);
    }
    assert_eq!(version.files.len(), 3, "one file per window");
    assert_eq!(version.files.iter().map(|f| f.meta.rows).sum::<u64>(), ROWS as u64);
    drop(version);
    assert_eq!(read_back(&engine), (ROWS, written), "rows and checksum after the compaction");

    let used = peak.saturating_sub(base);
    assert!(
        used <= BUDGET + MARGIN,
        "compacting {ROWS} rows ({} MiB decoded) took {} MiB above the {} MiB resident before it \
         (peak {} MiB); the budget is {} MiB plus a margin of {} MiB ({report})",
        DECODED_BYTES >> 20,
        used >> 20,
        base >> 20,
        peak >> 20,
        BUDGET >> 20,
        MARGIN >> 20,
    );
}
