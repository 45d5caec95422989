//! `Engine::scan_partitions`: the parts together hold exactly the scan's
//! rows, for any number of parts, when blocks are dealt out (compacted
//! windows, disjoint gen0 files) and when sources must be merged
//! (overlapping files, buffered rows); every part reads the same version.

use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, TimestampNanosecondType};
use quipu::{Engine, Precision, ScanRequest, ScanStats, WriteOptions};

const DAY: i64 = 86_400 * 1_000_000_000;

/// (host, time, usage) of every row, sorted.
fn rows(batches: &[RecordBatch]) -> Vec<(String, i64, Option<u64>)> {
    let mut out = Vec::new();
    for b in batches {
        let host = arrow::compute::cast(b.column_by_name("host").unwrap(), &arrow::datatypes::DataType::Utf8).unwrap();
        let time = b.column_by_name("time").unwrap().as_primitive::<TimestampNanosecondType>();
        let usage = b.column_by_name("usage").unwrap().as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            let u = usage.is_valid(i).then(|| usage.value(i).to_bits());
            out.push((host.as_string::<i32>().value(i).to_string(), time.value(i), u));
        }
    }
    out.sort();
    out
}

fn write_days(engine: &Engine, days: std::ops::Range<i64>, salt: i64) {
    let mut lp = String::new();
    for d in days {
        for i in 0..300i64 {
            let t = d * DAY + i * 250_000_000_000;
            lp.push_str(&format!("cpu,host=h{} usage={}.5 {t}\n", i % 5, (i + salt) % 50));
        }
    }
    engine.write_lp("db", &lp, Precision::Nanosecond, WriteOptions::default()).unwrap();
}

fn check(engine: &Engine, what: &str, expect_parts: bool) {
    let req = ScanRequest::all().columns(["host", "usage"]).keep_null_rows();
    let expected = rows(&engine.scan("db", "cpu", &req).unwrap());
    assert!(!expected.is_empty());
    for n in 1..=5 {
        let stats = Arc::new(ScanStats::default());
        let parts = engine.scan_partitions("db", "cpu", &req, n, stats.clone()).unwrap();
        assert!(parts.len() <= n, "{what}: {} parts for {n}", parts.len());
        if expect_parts && n > 1 {
            assert!(parts.len() > 1, "{what}: blocks dealt out over {n}");
        }
        if !expect_parts {
            assert_eq!(parts.len(), 1, "{what}: a merge is one part");
        }
        let mut batches = Vec::new();
        for p in parts {
            batches.extend(p.map(|b| b.unwrap()));
        }
        let got = rows(&batches);
        if got != expected {
            let first = got.iter().zip(&expected).position(|(a, b)| a != b);
            panic!("{what}, {n} parts: {} rows, expected {}; first difference at {first:?}", got.len(), expected.len());
        }
        assert_eq!(stats.figures().rows_returned as usize, expected.len(), "{what}, {n} parts");
    }
}

#[test]
fn parts_hold_the_scan_rows() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::builder(dir.path()).background(false).block_rows(64).open().unwrap();
    // Three days flushed on their own: disjoint gen0 files.
    for d in 0..3 {
        write_days(&engine, d..d + 1, 0);
        engine.flush().unwrap();
    }
    check(&engine, "disjoint gen0 files", true);
    engine.compact().unwrap();
    check(&engine, "compacted windows", true);
    // A rewrite of day 1 in a new gen0 file overlaps its window: merged.
    write_days(&engine, 1..2, 7);
    engine.flush().unwrap();
    check(&engine, "an overlapping gen0 file", false);
    engine.compact().unwrap();
    check(&engine, "compacted again", true);
    // Buffered rows are merged too.
    write_days(&engine, 2..3, 3);
    check(&engine, "buffered rows", false);
}
