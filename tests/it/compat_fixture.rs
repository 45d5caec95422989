//! testdata/v1/data is a data folder written by format version 1: compacted
//! and gen0 segments, a catalog with families and every field type, and
//! writes still only in the WAL. Every later version must open it and read
//! the same rows. Regenerate (only when the format version changes, keeping
//! the old fixture beside it) with:
//! QUIPU_REGENERATE_FIXTURES=1 cargo test --test compat_fixture

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{Table, apply, copy_dir, table_of};
use quipu::clock::ManualClock;
use quipu::{Engine, Precision, ScanRequest, WriteOptions};

const DAY: i64 = 86_400_000_000_000;
const T0: i64 = 1_767_225_600_000_000_000; // 2026-01-01T00:00:00Z

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/v1/data")
}

/// The writes, in order, split into the three stages the fixture captures.
fn stages() -> [Vec<String>; 3] {
    let line = |i: i64| {
        let host = format!("h{}", i % 3);
        let t = T0 + (i % 40) * DAY / 20; // two days, with overwrites
        format!(
            "cpu,host={host},dc=d{} cpu::user={}.25,cpu::sys={}i,mem::free={}u,note=\"n{}\",up={} {t}",
            i % 2,
            i,
            -i,
            i * 7,
            i % 5,
            i % 2 == 0
        )
    };
    [(0..60).map(line).collect(), (60..90).map(line).collect(), (90..100).map(line).collect()]
}

fn model() -> Table {
    let mut m = Table::new();
    for l in stages().iter().flatten() {
        let (series, rest) = l.split_once(' ').unwrap();
        let (fields, t) = rest.rsplit_once(' ').unwrap();
        let tags: Vec<(&str, String)> =
            series.split(',').skip(1).map(|kv| kv.split_once('=').unwrap()).map(|(k, v)| (k, v.to_string())).collect();
        let fields: Vec<(&str, String)> = fields
            .split(',')
            .map(|kv| kv.split_once('=').unwrap())
            .map(|(k, v)| {
                let k = k.rsplit("::").next().unwrap();
                let v = v.trim_end_matches(['i', 'u']).trim_matches('"').to_string();
                (k, v)
            })
            .collect();
        apply(&mut m, &tags, t.parse().unwrap(), &fields);
    }
    m
}

fn write(engine: &Engine, lines: &[String]) {
    engine.write_lp("fixture", &lines.join("\n"), Precision::Nanosecond, WriteOptions::default()).unwrap();
}

#[test]
fn fixture_v1_opens_and_reads_the_same_rows() {
    if std::env::var("QUIPU_REGENERATE_FIXTURES").is_ok() {
        let dir = fixture();
        let _ = std::fs::remove_dir_all(&dir);
        let clock = Arc::new(ManualClock::new(T0 + 3 * DAY));
        let engine = Engine::builder(&dir).background(false).clock(clock).open().unwrap();
        let [a, b, c] = stages();
        write(&engine, &a);
        engine.flush().unwrap();
        engine.compact().unwrap();
        write(&engine, &b);
        engine.flush().unwrap();
        write(&engine, &c); // stays in the WAL
        drop(engine);
    }

    // Open a copy: opening starts a new WAL file and takes the lock.
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&fixture(), tmp.path());
    let engine = Engine::builder(tmp.path()).background(false).open().unwrap();
    let files = engine.live_files();
    assert!(files.iter().any(|f| f.meta.level == 1), "compacted files");
    assert!(files.iter().any(|f| f.meta.level == 0), "gen0 files");
    for f in &files {
        let bytes = std::fs::read(&f.path).unwrap();
        assert_eq!(*blake3::hash(&bytes).as_bytes(), f.meta.blake3, "hash at birth matches {}", f.path.display());
        assert_eq!(bytes.len() as u64, f.meta.size);
    }
    let cat = engine.catalog();
    let t = cat.database("fixture").unwrap().table("cpu").unwrap();
    let family = |c: &str| t.family(t.column(c).unwrap().family.unwrap()).unwrap().name.clone();
    assert_eq!(family("user"), "cpu");
    assert_eq!(family("free"), "mem");
    assert_eq!(family("note"), "__auto_0");

    let want = model();
    assert_eq!(table_of(&engine.scan("fixture", "cpu", &ScanRequest::all()).unwrap()), want);
    // And after moving everything into segments.
    engine.flush().unwrap();
    engine.compact().unwrap();
    assert_eq!(table_of(&engine.scan("fixture", "cpu", &ScanRequest::all()).unwrap()), want);
}
