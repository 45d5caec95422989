//! Golden export: the compacted windows of the v1 fixture data folder
//! (testdata/v1/data), exported as a tar of Parquet, must stay byte for byte
//! testdata/export-v1/cpu.tar (docs/FORMAT.md, "Export"), and that file must
//! read back (parquet crate) as the rows of the compacted segments.
//! Regenerate, when the export format changes on purpose, with:
//! QUIPU_REGENERATE_FIXTURES=1 cargo test --test export_fixture

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{copy_dir, read_parquet, table_of, untar};
use quipu::clock::ManualClock;
use quipu::export::TableExport;
use quipu::{Engine, ScanRequest};

const T0: i64 = 1_767_225_600_000_000_000; // 2026-01-01T00:00:00Z

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

#[test]
fn the_export_of_the_v1_fixture_is_the_golden_tar() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&root().join("v1/data"), tmp.path());
    let engine = Engine::builder(tmp.path()).background(false).clock(Arc::new(ManualClock::new(T0))).open().unwrap();
    let cache = Arc::new(quipu::export::cache::ExportCache::disabled());
    let export = TableExport::new(&engine, &cache, "fixture", "cpu", &[]).unwrap();
    let mut tar = Vec::new();
    export.write_tar(&mut tar, |_| {}).unwrap();

    let golden_path = root().join("export-v1/cpu.tar");
    if std::env::var("QUIPU_REGENERATE_FIXTURES").is_ok() {
        std::fs::create_dir_all(golden_path.parent().unwrap()).unwrap();
        std::fs::write(&golden_path, &tar).unwrap();
    }
    let golden = std::fs::read(&golden_path).unwrap();
    assert!(tar == golden, "the export of testdata/v1/data differs from {}", golden_path.display());

    let entries = untar(&golden);
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["cpu/2026-01-01.parquet", "cpu/2026-01-02.parquet"]);
    // The compacted segments alone, read directly, are what each file holds.
    for ((_, bytes), window) in entries.into_iter().zip(export.windows()) {
        let file = engine
            .live_files()
            .into_iter()
            .find(|f| f.meta.level == 1 && f.meta.window_start_ns == Some(window.start_ns))
            .unwrap();
        let batches = read_parquet(bytes);
        assert_eq!(batches.iter().map(|b| b.num_rows() as u64).sum::<u64>(), file.meta.rows);
        // The scan of that window once compacted again equals the export only
        // where no gen0 file overrides it; check the rows' keys instead.
        let exported = table_of(&batches);
        let scanned = table_of(
            &engine.scan("fixture", "cpu", &ScanRequest::all().time_range(window.start_ns, window.end_ns)).unwrap(),
        );
        assert!(exported.keys().all(|k| scanned.contains_key(k)), "every exported row is a row of the table");
    }
}
