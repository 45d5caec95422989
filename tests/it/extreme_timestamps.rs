//! Timestamps at the ends of the `i64` range: every timestamp the write path
//! accepts is stored and returned, through flush, compaction, reopen, SQL and
//! export (issue 15, items 1 and 2). A row at `i64::MAX` used to be dropped
//! by the flush's half-open `[i64::MIN, i64::MAX)` (and a flush of only such
//! rows failed forever); rows near `i64::MIN` wrapped the window computation,
//! so two windows had the same name.

use crate::common;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use common::{read_parquet, table_of};
use futures::TryStreamExt;
use quipu::export::TableExport;
use quipu::{Engine, Precision, ScanRequest, WriteOptions};

const SEC: i64 = 1_000_000_000;
const DAY: i64 = 86_400 * SEC;

/// Timestamps at and near both ends, and around zero.
const EDGES: [i64; 11] = [
    i64::MIN,
    i64::MIN + 1,
    i64::MIN + 762 * SEC,
    i64::MIN + 764 * SEC,
    i64::MIN + DAY,
    -1,
    0,
    1,
    i64::MAX - DAY,
    i64::MAX - 1,
    i64::MAX,
];

fn lp() -> String {
    EDGES.iter().enumerate().map(|(i, t)| format!("edge,k=a v={i}i {t}\n")).collect()
}

fn times(engine: &Engine, table: &str, req: &ScanRequest) -> Vec<i64> {
    let mut out: Vec<i64> = engine
        .scan("db", table, req)
        .unwrap()
        .iter()
        .flat_map(|b| {
            let col = b.column_by_name("time").unwrap().as_primitive::<arrow::datatypes::TimestampNanosecondType>();
            col.values().to_vec()
        })
        .collect();
    out.sort_unstable();
    out
}

/// Each edge row, by its value, at its own time.
fn check_all(engine: &Engine, stage: &str) {
    let batches = engine.scan("db", "edge", &ScanRequest::all()).unwrap();
    let mut got: Vec<(i64, i64)> = Vec::new();
    for b in &batches {
        let t = b.column_by_name("time").unwrap().as_primitive::<arrow::datatypes::TimestampNanosecondType>();
        let v = b.column_by_name("v").unwrap().as_primitive::<Int64Type>();
        got.extend((0..b.num_rows()).map(|i| (t.value(i), v.value(i))));
    }
    got.sort_unstable();
    let want: Vec<(i64, i64)> = EDGES.iter().enumerate().map(|(i, t)| (*t, i as i64)).collect();
    assert_eq!(got, want, "{stage}");
    for t in EDGES {
        assert_eq!(times(engine, "edge", &ScanRequest::all().time_between(t, t)), [t], "{stage}: exactly {t}");
    }
    assert_eq!(times(engine, "edge", &ScanRequest::all().time_range(i64::MIN, i64::MIN + 1)), [i64::MIN], "{stage}");
    assert_eq!(times(engine, "edge", &ScanRequest::all().time_between(i64::MAX - 1, i64::MAX)).len(), 2, "{stage}");
}

#[test]
fn a_lone_row_at_i64_max_is_flushed_compacted_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let cache = common::export_cache(dir.path());
    let engine = Engine::builder(dir.path()).on_install(cache.hook(false)).background(false).open().unwrap();
    engine.write_lp("db", "onlymax v=1i 9223372036854775807", Precision::Nanosecond, WriteOptions::default()).unwrap();
    // This flush used to fail ("segment ... would hold no rows") on every try.
    engine.flush().unwrap();
    assert_eq!(engine.buffer_usage().rows, 0, "the buffer is empty after the flush");
    assert_eq!(times(&engine, "onlymax", &ScanRequest::all()), [i64::MAX]);
    engine.compact().unwrap();
    assert_eq!(times(&engine, "onlymax", &ScanRequest::all()), [i64::MAX]);
    // Later writes flush too.
    engine.write_lp("db", "onlymax v=2i 5", Precision::Nanosecond, WriteOptions::default()).unwrap();
    engine.flush().unwrap();
    engine.close().unwrap();
    drop(engine);
    let cache = common::export_cache(dir.path());
    let engine = Engine::builder(dir.path()).on_install(cache.hook(false)).background(false).open().unwrap();
    assert_eq!(times(&engine, "onlymax", &ScanRequest::all()), [5, i64::MAX]);
}

#[test]
fn every_edge_timestamp_survives_flush_compaction_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let cache = common::export_cache(dir.path());
    let engine =
        Engine::builder(dir.path()).on_install(cache.hook(false)).background(false).block_rows(2).open().unwrap();
    engine.write_lp("db", &lp(), Precision::Nanosecond, WriteOptions::default()).unwrap();
    check_all(&engine, "buffered");
    engine.flush().unwrap();
    check_all(&engine, "flushed");
    engine.compact().unwrap();
    check_all(&engine, "compacted");
    // A second write into the edge windows is merged with them.
    engine
        .write_lp("db", "edge,k=b v=100i 9223372036854775807", Precision::Nanosecond, WriteOptions::default())
        .unwrap();
    engine.flush().unwrap();
    engine.compact().unwrap();
    assert_eq!(times(&engine, "edge", &ScanRequest::all().time_between(i64::MAX, i64::MAX)), [i64::MAX, i64::MAX]);
    engine.close().unwrap();
    drop(engine);
    let cache = common::export_cache(dir.path());
    let engine = Engine::builder(dir.path()).on_install(cache.hook(false)).background(false).open().unwrap();
    assert_eq!(times(&engine, "edge", &ScanRequest::all()).len(), EDGES.len() + 1, "reopened");
}

#[test]
fn windows_at_the_ends_have_distinct_names_and_export_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let cache = common::export_cache(dir.path());
    let engine = Engine::builder(dir.path()).on_install(cache.hook(false)).background(false).open().unwrap();
    engine.write_lp("db", &lp(), Precision::Nanosecond, WriteOptions::default()).unwrap();
    engine.flush().unwrap();
    engine.compact().unwrap();

    let export = TableExport::new(&engine, &cache, "db", "edge", &[]).unwrap();
    let names: Vec<&str> = export.windows().iter().map(|w| w.window.as_str()).collect();
    assert_eq!(names, ["1677-09-21", "1677-09-22", "1969-12-31", "1970-01-01", "2262-04-10", "2262-04-11"]);
    let first = &export.windows()[0];
    // The first day began 763 s before i64::MIN: it holds the first 23.8 h.
    assert_eq!((first.start_ns, first.rows), (i64::MIN, 4), "MIN, MIN+1, MIN+762 s and MIN+764 s share the first day");
    assert_eq!(first.end_ns, export.windows()[1].start_ns, "windows meet");
    let last = export.windows().last().unwrap();
    assert_eq!((last.end_ns, last.time_max_ns), (i64::MAX, i64::MAX));

    let mut tar = Vec::new();
    export.write_tar(&mut tar, |_| {}).unwrap();
    let entries = common::untar(&tar);
    let mut members: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    members.dedup();
    assert_eq!(members.len(), names.len(), "one member per window, no name twice");
    let mut total = 0;
    for ((_, bytes), w) in entries.iter().zip(export.windows()) {
        let batches = read_parquet(bytes.clone());
        let end = if w.end_ns == i64::MAX { i64::MAX } else { w.end_ns - 1 };
        let scan = engine.scan("db", "edge", &ScanRequest::all().time_between(w.start_ns, end)).unwrap();
        assert_eq!(table_of(&batches), table_of(&scan), "window {}", w.window);
        total += batches.iter().map(|b| b.num_rows()).sum::<usize>();
    }
    assert_eq!(total, EDGES.len());

    // The names are what `windows=` takes, also at the ends.
    let ends = [quipu::export::parse_window("1677-09-21").unwrap(), quipu::export::parse_window("2262-04-11").unwrap()];
    let picked = TableExport::new(&engine, &cache, "db", "edge", &ends).unwrap();
    assert_eq!(picked.windows().iter().map(|w| w.rows).sum::<u64>(), 6);
}

fn sql_times(engine: &Engine, sql: &str) -> Vec<i64> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let batches: Vec<arrow::array::RecordBatch> =
        runtime.block_on(async { quipu::sql::query(engine, "db", sql).await.unwrap().try_collect().await.unwrap() });
    let mut out = Vec::new();
    for b in &batches {
        let col = b.column(0);
        let col = col.as_primitive::<arrow::datatypes::TimestampNanosecondType>();
        out.extend((0..col.len()).map(|i| col.value(i)));
    }
    out.sort_unstable();
    out
}

#[test]
fn sql_time_predicates_reach_both_ends() {
    let dir = tempfile::tempdir().unwrap();
    let cache = common::export_cache(dir.path());
    let engine = Engine::builder(dir.path()).on_install(cache.hook(false)).background(false).open().unwrap();
    engine.write_lp("db", &lp(), Precision::Nanosecond, WriteOptions::default()).unwrap();
    for stage in ["buffered", "flushed"] {
        if stage == "flushed" {
            engine.flush().unwrap();
            engine.compact().unwrap();
        }
        let max = "'2262-04-11T23:47:16.854775807Z'";
        let min = "'1677-09-21T00:12:43.145224192Z'";
        assert_eq!(sql_times(&engine, &format!("SELECT time FROM edge WHERE time = {max}")), [i64::MAX], "{stage}");
        assert_eq!(sql_times(&engine, &format!("SELECT time FROM edge WHERE time >= {max}")), [i64::MAX], "{stage}");
        assert!(sql_times(&engine, &format!("SELECT time FROM edge WHERE time > {max}")).is_empty(), "{stage}");
        assert_eq!(sql_times(&engine, &format!("SELECT time FROM edge WHERE time <= {min}")), [i64::MIN], "{stage}");
        assert!(sql_times(&engine, &format!("SELECT time FROM edge WHERE time < {min}")).is_empty(), "{stage}");
        assert_eq!(
            sql_times(&engine, &format!("SELECT time FROM edge WHERE time BETWEEN {min} AND {max}")).len(),
            EDGES.len(),
            "{stage}"
        );
        assert_eq!(sql_times(&engine, "SELECT time FROM edge").len(), EDGES.len(), "{stage}");
    }
}
