//! Corrupt segment, WAL, version and catalog bytes give a typed corruption
//! error naming the file, never a panic or silently wrong data.

use std::fs;
use std::path::{Path, PathBuf};

use quipu::{Engine, Error, Precision, ScanRequest, WriteOptions};

fn filled(dir: &Path, flush: bool) {
    let e = Engine::builder(dir).background(false).open().unwrap();
    let mut body = String::new();
    for i in 0..2000 {
        body.push_str(&format!("m,host=h{} v={}i,f={}.5 {}\n", i % 7, i, i, i * 1000));
    }
    e.write_lp("db", &body, Precision::Nanosecond, WriteOptions::default()).unwrap();
    e.write_lp("db", "m,host=x v=1i 5", Precision::Nanosecond, WriteOptions::default()).unwrap();
    if flush {
        e.flush().unwrap();
    }
}

fn only_file(dir: &Path, ext: &str) -> PathBuf {
    let files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files.into_iter().next().unwrap()
}

fn flip(path: &Path, at: usize) {
    let mut b = fs::read(path).unwrap();
    let i = at.min(b.len() - 1);
    b[i] ^= 0x5a;
    fs::write(path, b).unwrap();
}

fn assert_corrupt_names(err: Error, path: &Path) {
    match err {
        Error::Corrupt { path: p, .. } => assert_eq!(p, path),
        Error::Wal(w) => assert!(w.to_string().contains(&path.display().to_string()), "{w}"),
        other => panic!("expected corruption naming {}, got {other:?}", path.display()),
    }
}

#[test]
fn corrupt_segment_footer_fails_open_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path(), true);
    let seg = only_file(&dir.path().join("segments"), "seg");
    let len = fs::metadata(&seg).unwrap().len() as usize;
    flip(&seg, len - 40);
    assert_corrupt_names(Engine::open(dir.path()).unwrap_err(), &seg);
}

#[test]
fn corrupt_segment_block_fails_the_scan_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path(), true);
    let seg = only_file(&dir.path().join("segments"), "seg");
    flip(&seg, 20);
    let e = Engine::open(dir.path()).unwrap();
    let err = e.scan("db", "m", &ScanRequest::all()).unwrap_err();
    assert_corrupt_names(err, &seg);
}

#[test]
fn truncated_segment_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path(), true);
    let seg = only_file(&dir.path().join("segments"), "seg");
    let b = fs::read(&seg).unwrap();
    fs::write(&seg, &b[..b.len() / 2]).unwrap();
    assert_corrupt_names(Engine::open(dir.path()).unwrap_err(), &seg);
}

#[test]
fn corrupt_wal_record_in_the_middle_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path(), false);
    let wal = only_file(&dir.path().join("wal"), "wal");
    // The first record's payload: past the file header, inside the big record.
    flip(&wal, 200);
    assert_corrupt_names(Engine::open(dir.path()).unwrap_err(), &wal);
}

#[test]
fn corrupt_version_and_catalog_are_detected() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path(), true);
    let ver = only_file(&dir.path().join("versions"), "ver");
    let saved = fs::read(&ver).unwrap();
    flip(&ver, 30);
    assert_corrupt_names(Engine::open(dir.path()).unwrap_err(), &ver);
    fs::write(&ver, saved).unwrap();

    let cats: Vec<PathBuf> = fs::read_dir(dir.path().join("catalog")).unwrap().map(|e| e.unwrap().path()).collect();
    let newest = cats.iter().max().unwrap().clone();
    flip(&newest, 20);
    assert_corrupt_names(Engine::open(dir.path()).unwrap_err(), &newest);
}

#[test]
fn a_damaged_catalog_log_record_before_the_last_fails_open_naming_the_log() {
    let dir = tempfile::tempdir().unwrap();
    {
        let e = Engine::builder(dir.path()).background(false).open().unwrap();
        // A snapshot, then two changes in the log.
        for i in 0..3 {
            e.write_lp("db", &format!("m f{i}=1i {i}"), Precision::Nanosecond, WriteOptions::default()).unwrap();
        }
    }
    let log = only_file(&dir.path().join("catalog"), "log");
    flip(&log, 30); // in the first record's payload
    assert_corrupt_names(Engine::open(dir.path()).unwrap_err(), &log);
}
