//! testdata/catalog-log-v1/data is a data folder whose catalog is a snapshot
//! and a catalog log (format 1) of later changes: a new table, tags, named
//! and automatic families, every field type and a second database, all
//! rows still in the WAL. Every later version must open it with the same
//! catalog and rows, and must encode the same changes to the same bytes.
//! Regenerate (only when the log's format version changes, keeping the old
//! fixture beside it) with:
//! QUIPU_REGENERATE_FIXTURES=1 cargo test --test catalog_log_fixture

use crate::common;

use std::path::{Path, PathBuf};

use common::copy_dir;
use quipu::catalog::log::{LOG_HEADER_LEN, decode_log, encode_header};
use quipu::catalog::{ColumnKind, FieldType};
use quipu::{Engine, Precision, ScanRequest, WriteOptions};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/catalog-log-v1/data")
}

/// One catalog change each.
const WRITES: [(&str, &str); 5] = [
    ("fixture", "cpu,host=a cpu::user=1.5 1"),
    ("fixture", "cpu,host=b,dc=x cpu::sys=2i,idle=3u 2"),
    ("fixture", "cpu,host=a note=\"n\",up=true 3"),
    ("fixture", "mem,host=a mem::free=4i 4"),
    ("other", "disk used=5.5 5"),
];

#[test]
fn catalog_log_v1_opens_with_the_same_catalog_and_rows() {
    if std::env::var("QUIPU_REGENERATE_FIXTURES").is_ok() {
        let dir = fixture();
        let _ = std::fs::remove_dir_all(&dir);
        let engine = Engine::builder(&dir).background(false).open().unwrap();
        for (db, lp) in WRITES {
            engine.write_lp(db, lp, Precision::Nanosecond, WriteOptions::default()).unwrap();
        }
        drop(engine);
    }

    // The log: a header naming snapshot 1, then one record per later change,
    // byte for byte what this build encodes for them.
    let log_path = fixture().join("catalog/00000000000000000001.log");
    let bytes = std::fs::read(&log_path).unwrap();
    assert_eq!(&bytes[..LOG_HEADER_LEN], &encode_header(1));
    let contents = decode_log(&log_path, 1, &bytes).unwrap();
    assert!(!contents.torn);
    assert_eq!(contents.deltas.len(), WRITES.len() - 1);
    let mut again = encode_header(1).to_vec();
    for d in &contents.deltas {
        again.extend_from_slice(&d.encode_record());
    }
    assert_eq!(again, bytes);
    assert_eq!(contents.deltas.iter().map(|d| d.sequence).collect::<Vec<_>>(), vec![2, 3, 4, 5]);

    // Open a copy: opening starts a new WAL file and takes the lock.
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&fixture(), tmp.path());
    let engine = Engine::builder(tmp.path()).background(false).open().unwrap();
    let check = |engine: &Engine| {
        let cat = engine.catalog();
        assert_eq!(cat.sequence, 5);
        let cpu = cat.database("fixture").unwrap().table("cpu").unwrap();
        let kinds: Vec<(&str, ColumnKind)> = cpu.columns.iter().map(|c| (c.name.as_str(), c.kind)).collect();
        assert_eq!(
            kinds,
            vec![
                ("host", ColumnKind::Tag),
                ("user", ColumnKind::Field(FieldType::Float)),
                ("dc", ColumnKind::Tag),
                ("sys", ColumnKind::Field(FieldType::Integer)),
                ("idle", ColumnKind::Field(FieldType::UInteger)),
                ("note", ColumnKind::Field(FieldType::String)),
                ("up", ColumnKind::Field(FieldType::Boolean)),
            ]
        );
        let family = |c: &str| cpu.family(cpu.column(c).unwrap().family.unwrap()).unwrap().name.clone();
        assert_eq!(family("user"), "cpu");
        assert_eq!(family("idle"), "__auto_0");
        assert_eq!(family("up"), "__auto_0");
        assert_eq!(cat.database("fixture").unwrap().table("mem").unwrap().id, 1);
        assert_eq!(cat.database("other").unwrap().id, 1);
        let rows = |db: &str, t: &str| {
            engine.scan(db, t, &ScanRequest::all()).unwrap().iter().map(|b| b.num_rows()).sum::<usize>()
        };
        assert_eq!(rows("fixture", "cpu"), 3);
        assert_eq!(rows("fixture", "mem"), 1);
        assert_eq!(rows("other", "disk"), 1);
    };
    check(&engine);
    // Changes go on in the same log; after a flush and a reopen all is there.
    engine.write_lp("fixture", "cpu,host=c extra=1i 6", Precision::Nanosecond, WriteOptions::default()).unwrap();
    engine.flush().unwrap();
    drop(engine);
    let engine = Engine::builder(tmp.path()).background(false).open().unwrap();
    assert!(engine.catalog().database("fixture").unwrap().table("cpu").unwrap().column("extra").is_some());
    assert_eq!(engine.catalog().sequence, 6);
    let logged = std::fs::read(tmp.path().join("catalog/00000000000000000001.log")).unwrap();
    assert!(logged.len() > bytes.len() && logged.starts_with(&bytes));
}
