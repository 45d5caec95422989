//! The swap's commit record (`RESTORE`) is finished by the next open, from
//! any point of its application: not applied at all, catalog written, the
//! version written, everything but the record's removal. The folder then
//! serves the restored state, once, and no write from the rolled-back WAL.
//! A damaged record stops the open with an error naming it.

use quipu::swap::{self, SwapRecord};
use quipu::tree::VersionRecord;
use quipu::{Engine, Precision, ScanRequest, WriteOptions};

fn open(dir: &std::path::Path) -> Engine {
    Engine::builder(dir).background(false).open().unwrap()
}

fn values(engine: &Engine, table: &str) -> Vec<String> {
    let batches = match engine.scan("db", table, &ScanRequest::all()) {
        Ok(b) => b,
        Err(quipu::Error::TableNotFound { .. } | quipu::Error::DatabaseNotFound { .. }) => return Vec::new(),
        Err(e) => panic!("{e}"),
    };
    let mut out = Vec::new();
    for b in &batches {
        let col = b.column_by_name("v").unwrap();
        for i in 0..b.num_rows() {
            out.push(arrow::util::display::array_value_to_string(col, i).unwrap());
        }
    }
    out
}

/// A folder with table `keep` (flushed, 2 rows) and table `gone` (flushed)
/// plus an unflushed `gone` row in the WAL; and the commit record of a
/// restore to just the `keep` file, written but not applied.
fn committed_not_applied(dir: &std::path::Path) -> SwapRecord {
    let engine = open(dir);
    let w = |lp: &str| engine.write_lp("db", lp, Precision::Nanosecond, WriteOptions::default()).unwrap();
    w("keep v=1i 1\nkeep v=2i 2");
    engine.flush().unwrap();
    let keep = engine.version().files[0].clone();
    let catalog = engine.catalog();
    w("gone v=3i 3");
    engine.flush().unwrap();
    w("gone v=4i 4");
    // The restored file: a copy of `keep` under a fresh id, as a restore stages it.
    let (id, path) = engine.allocate_segment();
    std::fs::copy(&keep.path, &path).unwrap();
    let mut meta = keep.meta.clone();
    meta.id = id;
    let mut restored = (*catalog).clone();
    restored.sequence = engine.catalog().sequence + 1;
    let current = engine.version().record.clone();
    let record = SwapRecord {
        restore_id: "01J8X9Z0ABCDEFGHJKMNPQRSTV".into(),
        catalog: restored.encode(),
        version: VersionRecord {
            number: current.number + 1,
            catalog_sequence: restored.sequence,
            wal_replay_from: 1_000_000,
            next_file_id: id + 1,
            files: vec![meta],
        },
    };
    swap::commit(dir, &record).unwrap();
    // The process "dies": no apply, no removal.
    drop(engine);
    record
}

fn assert_restored(dir: &std::path::Path) {
    let engine = open(dir);
    assert!(!dir.join(swap::SWAP_FILE).exists());
    assert_eq!(engine.last_restore().unwrap().as_deref(), Some("01J8X9Z0ABCDEFGHJKMNPQRSTV"));
    assert_eq!(values(&engine, "keep"), ["1", "2"]);
    assert!(values(&engine, "gone").is_empty(), "a rolled-back row came back");
    assert!(engine.catalog().database("db").unwrap().table("gone").is_none());
    assert_eq!(engine.version().files.len(), 1);
    assert_eq!(std::fs::read_dir(dir.join("segments")).unwrap().count(), 1, "old files were left");
    engine.write_lp("db", "keep v=5i 5", Precision::Nanosecond, WriteOptions::default()).unwrap();
    drop(engine);
    let engine = open(dir);
    assert_eq!(values(&engine, "keep"), ["1", "2", "5"]);
}

#[test]
fn a_committed_swap_is_finished_by_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    committed_not_applied(dir.path());
    assert_restored(dir.path());
}

#[test]
fn a_swap_applied_in_part_or_in_full_is_finished_once() {
    // Catalog written, version not.
    let dir = tempfile::tempdir().unwrap();
    let record = committed_not_applied(dir.path());
    let catalog = quipu::catalog::Catalog::decode(std::path::Path::new("x"), &record.catalog).unwrap();
    quipu::catalog::CatalogStore::open(dir.path().join("catalog")).unwrap().persist(&catalog).unwrap();
    assert_restored(dir.path());

    // Catalog and version written, the record still there.
    let dir = tempfile::tempdir().unwrap();
    let record = committed_not_applied(dir.path());
    let catalog = quipu::catalog::Catalog::decode(std::path::Path::new("x"), &record.catalog).unwrap();
    quipu::catalog::CatalogStore::open(dir.path().join("catalog")).unwrap().persist(&catalog).unwrap();
    quipu::tree::write_current(dir.path(), &record.version).unwrap();
    assert_restored(dir.path());

    // Applied in full, and later versions installed: a stale record must not roll them back.
    let dir = tempfile::tempdir().unwrap();
    let record = committed_not_applied(dir.path());
    swap::apply(dir.path(), &record).unwrap();
    let engine = open(dir.path());
    engine.write_lp("db", "keep v=6i 6", Precision::Nanosecond, WriteOptions::default()).unwrap();
    engine.flush().unwrap();
    drop(engine);
    swap::commit(dir.path(), &record).unwrap();
    let engine = open(dir.path());
    assert_eq!(values(&engine, "keep"), ["1", "2", "6"]);
    assert_eq!(engine.version().files.len(), 2);
}

#[test]
fn a_damaged_commit_record_stops_the_open_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    committed_not_applied(dir.path());
    let path = dir.path().join(swap::SWAP_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() - 3;
    bytes[at] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    match Engine::builder(dir.path()).background(false).open() {
        Err(quipu::Error::Corrupt { path: p, .. }) => assert_eq!(p, path),
        other => panic!("expected a corrupt-file error, got {other:?}"),
    }
}
