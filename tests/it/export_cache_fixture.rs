//! Golden export cache: testdata/export-cache-v1 holds the export cache
//! entries of the v1 fixture data folder (testdata/v1/data), named as
//! docs/FORMAT.md ("Export cache") says. Put into a copy of that folder, they
//! must be served (every window a hit, none converted), and the export must
//! still be the golden tar testdata/export-v1/cpu.tar. A change to the name,
//! the key or the Parquet bytes breaks this test.
//! Regenerate, when the format changes on purpose (a new quipu version
//! changes every key), with:
//! QUIPU_REGENERATE_FIXTURES=1 cargo test --test export_cache_fixture

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use common::copy_dir;
use quipu::Engine;
use quipu::clock::ManualClock;
use quipu::export::TableExport;
use quipu::export::cache::{EXPORT_CACHE_DIR, ExportCache, parse_name};

const T0: i64 = 1_767_225_600_000_000_000; // 2026-01-01T00:00:00Z

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

/// The folder with an export cache hooked in, both on the fixture's clock.
fn open(dir: &Path) -> (Engine, Arc<ExportCache>) {
    let clock = Arc::new(ManualClock::new(T0));
    let cache = Arc::new(ExportCache::open(dir, 1 << 30, clock.clone()));
    let engine = Engine::builder(dir).background(false).clock(clock).on_install(cache.hook(false)).open().unwrap();
    (engine, cache)
}

fn export_tar((engine, cache): &(Engine, Arc<ExportCache>)) -> (Vec<u8>, usize) {
    let export = TableExport::new(engine, cache, "fixture", "cpu", &[]).unwrap();
    let mut tar = Vec::new();
    export.write_tar(&mut tar, |_| {}).unwrap();
    (tar, export.windows().len())
}

#[test]
fn the_v1_fixture_entries_are_served_as_the_golden_tar() {
    let golden_dir = root().join("export-cache-v1");
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&root().join("v1/data"), tmp.path());
    if std::env::var("QUIPU_REGENERATE_FIXTURES").is_ok() {
        let engine = open(tmp.path());
        export_tar(&engine);
        let _ = std::fs::remove_dir_all(&golden_dir);
        copy_dir(&tmp.path().join(EXPORT_CACHE_DIR), &golden_dir);
        drop(engine);
        std::fs::remove_dir_all(tmp.path().join(EXPORT_CACHE_DIR)).unwrap();
    }
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&golden_dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let (_, content) = parse_name(&name).unwrap_or_else(|| panic!("{name} is not an entry name"));
        let bytes = std::fs::read(golden_dir.join(&name)).unwrap();
        assert_eq!(blake3::hash(&bytes).as_bytes(), &content, "{name}");
        names.push(name);
    }
    copy_dir(&golden_dir, &tmp.path().join(EXPORT_CACHE_DIR));

    let engine = open(tmp.path());
    let (tar, windows) = export_tar(&engine);
    assert_eq!(names.len(), windows);
    let stats = engine.1.stats();
    assert_eq!(stats.hits.load(Ordering::Relaxed), windows as u64, "every fixture entry is found under its key");
    assert_eq!(stats.misses.load(Ordering::Relaxed), 0);
    let golden = std::fs::read(root().join("export-v1/cpu.tar")).unwrap();
    assert!(tar == golden, "the export served from the fixture entries differs from testdata/export-v1/cpu.tar");
}
