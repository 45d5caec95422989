//! Export as an encoder, the parquet crate's reader as its decoder: random
//! tables (tags present or not, every field type, column families, several
//! days, small blocks and row groups) come back from Parquet equal to a scan
//! of the compacted windows. Also: an export keeps the files it pinned.

use crate::common;

use common::{read_parquet, table_of};
use proptest::prelude::*;
use quipu::export::{self, TableExport};
use quipu::{Engine, Precision, ScanRequest, WriteOptions};

const DAY: i64 = 86_400 * 1_000_000_000;

#[derive(Debug, Clone)]
struct Row {
    tags: [Option<u8>; 3],
    day: i64,
    offset: i64,
    fields: [Option<i64>; 6],
}

fn row() -> impl Strategy<Value = Row> {
    (
        proptest::array::uniform3(proptest::option::of(0u8..4)),
        0i64..3,
        0i64..1_000,
        proptest::array::uniform6(proptest::option::weighted(0.7, -1000i64..1000)),
    )
        .prop_map(|(tags, day, offset, fields)| Row { tags, day, offset, fields })
}

fn line(r: &Row) -> Option<String> {
    let mut s = String::from("m");
    for (name, v) in ["a", "b", "c"].iter().zip(r.tags) {
        if let Some(v) = v {
            s.push_str(&format!(",{name}=v{v}"));
        }
    }
    let names = ["f", "i", "u", "s", "t", "hot::g"];
    let fields: Vec<String> = names
        .iter()
        .zip(r.fields)
        .filter_map(|(name, v)| {
            let v = v?;
            Some(match *name {
                "f" => format!("f={}.25", v),
                "i" => format!("i={v}i"),
                "u" => format!("u={}u", v.unsigned_abs()),
                "s" => format!("s=\"x{v}\""),
                "t" => format!("t={}", v % 2 == 0),
                _ => format!("hot::g={v}"),
            })
        })
        .collect();
    if fields.is_empty() {
        return None;
    }
    Some(format!("{s} {} {}\n", fields.join(","), r.day * DAY + r.offset))
}

fn check(rows: &[Row], row_group_rows: usize) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let cache = common::export_cache(dir.path());
    let engine =
        Engine::builder(dir.path()).on_install(cache.hook(false)).background(false).block_rows(8).open().unwrap();
    // Two writes, flushed apart: compaction merges them (newest wins).
    let (first, second) = rows.split_at(rows.len() / 2);
    for part in [first, second] {
        let lp: String = part.iter().filter_map(line).collect();
        if !lp.is_empty() {
            engine.write_lp("db", &lp, Precision::Nanosecond, WriteOptions::default()).unwrap();
            engine.flush().unwrap();
        }
    }
    engine.compact().unwrap();
    let Ok(export) = TableExport::new(&engine, &cache, "db", "m", &[]) else {
        prop_assert!(rows.iter().all(|r| line(r).is_none()));
        return Ok(());
    };
    let export = export.row_group_rows(row_group_rows);
    let mut total = 0;
    for (i, w) in export.windows().iter().enumerate() {
        let mut bytes = Vec::new();
        let summary = export.write_parquet(i, &mut bytes).unwrap();
        prop_assert_eq!(summary.bytes, bytes.len() as u64);
        let batches = read_parquet(bytes);
        let scan = engine.scan("db", "m", &ScanRequest::all().time_range(w.start_ns, w.end_ns)).unwrap();
        prop_assert_eq!(summary.rows, w.rows);
        prop_assert_eq!(table_of(&batches), table_of(&scan), "window {}", w.window);
        total += summary.rows;
    }
    prop_assert_eq!(
        total as usize,
        engine.scan("db", "m", &ScanRequest::all()).unwrap().iter().map(|b| b.num_rows()).sum::<usize>()
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn exported_parquet_equals_the_compacted_scan(rows in proptest::collection::vec(row(), 1..300), group in 1usize..64) {
        check(&rows, group)?;
    }
}

#[test]
fn an_export_keeps_its_files_while_compaction_replaces_them() {
    let dir = tempfile::tempdir().unwrap();
    let cache = common::export_cache(dir.path());
    let engine = Engine::builder(dir.path()).on_install(cache.hook(false)).background(false).open().unwrap();
    engine.write_lp("db", "m,k=a v=1i 10\nm,k=b v=2i 20", Precision::Nanosecond, WriteOptions::default()).unwrap();
    engine.flush().unwrap();
    engine.compact().unwrap();
    let export = TableExport::new(&engine, &cache, "db", "m", &[]).unwrap();
    let old = engine.live_files();

    // Rewrite the window: its compacted file is replaced and becomes obsolete.
    engine.write_lp("db", "m,k=a v=100i 10\nm,k=c v=3i 30", Precision::Nanosecond, WriteOptions::default()).unwrap();
    engine.flush().unwrap();
    engine.compact().unwrap();
    assert_ne!(engine.live_files(), old);
    assert!(old[0].path.exists(), "pinned by the export");

    let mut tar = Vec::new();
    export.write_tar(&mut tar, |_| {}).unwrap();
    let entries = common::untar(&tar);
    let batches = read_parquet(entries[0].1.clone());
    let values: Vec<i64> = batches
        .iter()
        .flat_map(|b| {
            let col = b.column_by_name("v").unwrap().as_any().downcast_ref::<arrow::array::Int64Array>().unwrap();
            col.values().to_vec()
        })
        .collect();
    assert_eq!(values, [1, 2], "the export sees the version it pinned");
    drop(export);
    assert!(!old[0].path.exists(), "deleted once the export is dropped");

    // A new export sees the new data.
    let now = TableExport::new(&engine, &cache, "db", "m", &[]).unwrap();
    let mut bytes = Vec::new();
    now.write_parquet(0, &mut bytes).unwrap();
    assert_eq!(read_parquet(bytes).iter().map(|b| b.num_rows()).sum::<usize>(), 3);
}

#[test]
fn missing_windows_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let cache = common::export_cache(dir.path());
    let engine = Engine::builder(dir.path()).on_install(cache.hook(false)).background(false).open().unwrap();
    engine.write_lp("db", "m v=1 10", Precision::Nanosecond, WriteOptions::default()).unwrap();
    engine.flush().unwrap();
    engine.compact().unwrap();
    let wanted = export::parse_window_list("1970-01-01,1970-01-05").unwrap();
    match TableExport::new(&engine, &cache, "db", "m", &wanted) {
        Err(quipu::Error::WindowNotFound { db, table, window }) => {
            assert_eq!((db.as_str(), table.as_str(), window.as_str()), ("db", "m", "1970-01-05"));
        }
        other => panic!("expected WindowNotFound, got {other:?}"),
    }
    assert!(matches!(TableExport::new(&engine, &cache, "nope", "m", &[]), Err(quipu::Error::DatabaseNotFound { .. })));
    assert!(matches!(TableExport::new(&engine, &cache, "db", "nope", &[]), Err(quipu::Error::TableNotFound { .. })));
    assert_eq!(export::databases(&engine), ["db"]);
}
