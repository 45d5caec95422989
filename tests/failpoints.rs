//! Fault injection at every commit point of the write path (the fail points
//! of `quipu::failpoint`), each failing with EIO and with ENOSPC: the error
//! reaches the caller, nothing acknowledged is lost (read back in place and
//! after a reopen), and the engine recovers as ARCHITECTURE.md ("I/O errors")
//! says: a failed write, file creation or publish is undone and writes go on
//! once the cause is gone; a failed WAL fsync (or a failed undo) poisons the
//! write path until a reopen, which recovers everything acknowledged.
//!
//! Run with `cargo test --features failpoints --test failpoints`.
#![cfg(feature = "failpoints")]

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use quipu::{Engine, Error, Precision, ScanRequest, failpoint};

const ERRNOS: [i32; 2] = [libc::EIO, libc::ENOSPC];

/// The fail points are process-wide: one test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Holds the test lock; disarms every fail point when the test ends, also on
/// a failed assertion.
struct Armed {
    _serial: MutexGuard<'static, ()>,
}

fn serial() -> Armed {
    let guard = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    failpoint::clear_all();
    Armed { _serial: guard }
}

impl Drop for Armed {
    fn drop(&mut self) {
        failpoint::clear_all();
    }
}

fn open(dir: &Path) -> Engine {
    Engine::builder(dir).background(false).open().unwrap()
}

fn write(engine: &Engine, table: &str, i: i64) -> quipu::Result<()> {
    engine.write_lp("db", &format!("{table} v={i}i {i}"), Precision::Nanosecond, Default::default()).map(|_| ())
}

fn values(engine: &Engine, table: &str) -> BTreeSet<i64> {
    let mut out = BTreeSet::new();
    let batches = match engine.scan("db", table, &ScanRequest::all().columns(["v"])) {
        Ok(b) => b,
        Err(Error::DatabaseNotFound { .. } | Error::TableNotFound { .. }) => return out,
        Err(e) => panic!("scan of {table}: {e}"),
    };
    for b in batches {
        out.extend(b.column_by_name("v").unwrap().as_primitive::<Int64Type>().values().iter().copied());
    }
    out
}

/// The OS error somewhere in `err`'s chain.
fn errno(err: &Error) -> Option<i32> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return io.raw_os_error();
        }
        source = e.source();
    }
    None
}

fn assert_errno(err: &Error, expected: i32, point: &str) {
    assert_eq!(errno(err), Some(expected), "{point}: {err}");
    assert!(failpoint::hits(point) > 0, "{point} was not reached");
}

/// The WAL append (a half-written record) and its undo: the write is
/// refused as not stored, nothing of it is applied, later writes go on.
#[test]
fn a_failed_wal_write_is_rolled_back_and_writes_go_on() {
    let _serial = serial();
    for errno in ERRNOS {
        let dir = tempfile::tempdir().unwrap();
        let engine = open(dir.path());
        let mut acknowledged = BTreeSet::new();
        for i in 0..3 {
            write(&engine, "m", i).unwrap();
            acknowledged.insert(i);
        }
        failpoint::set("wal.write", errno);
        for i in 3..5 {
            let err = write(&engine, "m", i).unwrap_err();
            assert!(matches!(err, Error::WriteNotStored { .. }), "{err:?}");
            assert_errno(&err, errno, "wal.write");
        }
        assert_eq!(values(&engine, "m"), acknowledged, "a refused write is not applied");
        failpoint::clear("wal.write");
        for i in 5..8 {
            write(&engine, "m", i).unwrap();
            acknowledged.insert(i);
        }
        assert_eq!(values(&engine, "m"), acknowledged);
        drop(engine);
        let engine = open(dir.path());
        assert_eq!(values(&engine, "m"), acknowledged);
        engine.flush().unwrap();
        drop(engine);
        assert_eq!(values(&open(dir.path()), "m"), acknowledged);
    }
}

/// An undo that fails leaves the WAL in an unknown state: poisoned, and a
/// reopen cuts the half record off as a torn tail.
#[test]
fn a_failed_wal_write_that_cannot_be_undone_poisons_until_reopen() {
    let _serial = serial();
    for errno in ERRNOS {
        let dir = tempfile::tempdir().unwrap();
        let engine = open(dir.path());
        write(&engine, "m", 1).unwrap();
        failpoint::set("wal.write", errno);
        failpoint::set("wal.truncate", errno);
        let err = write(&engine, "m", 2).unwrap_err();
        assert!(!matches!(err, Error::WriteNotStored { .. }), "{err:?}");
        assert_errno(&err, errno, "wal.write");
        assert!(failpoint::hits("wal.truncate") > 0);
        failpoint::clear_all();
        assert!(matches!(write(&engine, "m", 3), Err(Error::Poisoned { .. })));
        drop(engine);
        let engine = open(dir.path());
        assert_eq!(values(&engine, "m"), BTreeSet::from([1]));
        write(&engine, "m", 4).unwrap();
        drop(engine);
        assert_eq!(values(&open(dir.path()), "m"), BTreeSet::from([1, 4]));
    }
}

/// A failed WAL fsync is fatal (the page cache's state is unknown): the
/// write gets the error, every later one `Poisoned`, and a reopen recovers
/// every acknowledged write.
#[test]
fn a_failed_wal_fsync_poisons_and_a_reopen_recovers_everything_acknowledged() {
    let _serial = serial();
    for errno in ERRNOS {
        let dir = tempfile::tempdir().unwrap();
        let engine = open(dir.path());
        for i in 0..3 {
            write(&engine, "m", i).unwrap();
        }
        failpoint::set("wal.fsync", errno);
        let err = write(&engine, "m", 3).unwrap_err();
        assert_errno(&err, errno, "wal.fsync");
        failpoint::clear("wal.fsync");
        for i in 4..6 {
            let err = write(&engine, "m", i).unwrap_err();
            assert!(matches!(err, Error::Poisoned { .. }), "{err:?}");
        }
        // A flush would rotate the WAL: refused too.
        assert!(engine.flush().is_err());
        drop(engine);
        let engine = open(dir.path());
        // The unacknowledged write 3 may or may not have reached the disk.
        let mut found = values(&engine, "m");
        found.remove(&3);
        assert_eq!(found, BTreeSet::from([0, 1, 2]));
        write(&engine, "m", 6).unwrap();
        engine.flush().unwrap();
        drop(engine);
        let mut found = values(&open(dir.path()), "m");
        found.remove(&3);
        assert_eq!(found, BTreeSet::from([0, 1, 2, 6]));
    }
}

/// Runs a flush with fail point `point` armed: the flush gets the error,
/// writes are still accepted, and the flush succeeds once the point is
/// cleared, without a restart. Then a second failed flush and a reopen: the
/// rows come back from the WAL.
fn flush_fails_and_recovers(point: &str) {
    for errno in ERRNOS {
        let dir = tempfile::tempdir().unwrap();
        let engine = open(dir.path());
        let mut acknowledged = BTreeSet::new();
        for i in 0..3 {
            write(&engine, "m", i).unwrap();
            acknowledged.insert(i);
        }
        // A first flush, so that later ones replace files and versions.
        engine.flush().unwrap();
        for i in 3..6 {
            write(&engine, "m", i).unwrap();
            acknowledged.insert(i);
        }

        failpoint::set(point, errno);
        let err = engine.flush().unwrap_err();
        assert_errno(&err, errno, point);
        assert!(!matches!(err, Error::Poisoned { .. }), "{point}: {err}");
        for i in 6..8 {
            write(&engine, "m", i).unwrap_or_else(|e| panic!("{point}: write after a failed flush: {e}"));
            acknowledged.insert(i);
        }
        assert_eq!(values(&engine, "m"), acknowledged, "{point}");
        failpoint::clear(point);
        engine.flush().unwrap_or_else(|e| panic!("{point}: flush after clearing: {e}"));
        assert_eq!(values(&engine, "m"), acknowledged, "{point}");

        for i in 8..10 {
            write(&engine, "m", i).unwrap();
            acknowledged.insert(i);
        }
        failpoint::set(point, errno);
        assert!(engine.flush().is_err(), "{point}");
        drop(engine);
        failpoint::clear(point);
        let engine = open(dir.path());
        assert_eq!(values(&engine, "m"), acknowledged, "{point}: after a reopen");
        write(&engine, "m", 10).unwrap();
        acknowledged.insert(10);
        engine.flush().unwrap();
        drop(engine);
        assert_eq!(values(&open(dir.path()), "m"), acknowledged, "{point}: after a flush and a reopen");
    }
}

/// WAL rotation at flush: the half-created file is dropped, appends stay on
/// the old file.
#[test]
fn a_failed_wal_file_creation_fails_the_flush_only() {
    let _serial = serial();
    flush_fails_and_recovers("wal.create");
}

#[test]
fn a_failed_segment_write_fails_the_flush_only() {
    let _serial = serial();
    for op in ["write", "fsync", "rename", "dirsync"] {
        flush_fails_and_recovers(&format!("segment.{op}"));
    }
}

#[test]
fn a_failed_version_install_fails_the_flush_only() {
    let _serial = serial();
    for kind in ["version", "current"] {
        for op in ["write", "fsync", "rename", "dirsync"] {
            flush_fails_and_recovers(&format!("{kind}.{op}"));
        }
    }
}

/// A write that adds a table must persist the catalog before it is logged:
/// refused as not stored while that fails, accepted once it works again.
#[test]
fn a_failed_catalog_write_refuses_the_write_and_recovers() {
    let _serial = serial();
    for op in ["write", "fsync", "rename", "dirsync"] {
        let point = format!("catalog.{op}");
        for errno in ERRNOS {
            let dir = tempfile::tempdir().unwrap();
            let engine = open(dir.path());
            write(&engine, "m", 1).unwrap();
            failpoint::set(&point, errno);
            let err = write(&engine, "new", 2).unwrap_err();
            assert!(matches!(err, Error::WriteNotStored { .. }), "{point}: {err:?}");
            assert_errno(&err, errno, &point);
            // Tables the catalog has take writes meanwhile.
            write(&engine, "m", 3).unwrap();
            failpoint::clear(&point);
            write(&engine, "new", 4).unwrap();
            assert_eq!(values(&engine, "new"), BTreeSet::from([4]), "{point}");
            drop(engine);
            let engine = open(dir.path());
            assert_eq!(values(&engine, "m"), BTreeSet::from([1, 3]), "{point}");
            assert_eq!(values(&engine, "new"), BTreeSet::from([4]), "{point}");
            engine.flush().unwrap();
            drop(engine);
            let engine = open(dir.path());
            assert_eq!(values(&engine, "m"), BTreeSet::from([1, 3]), "{point}");
            assert_eq!(values(&engine, "new"), BTreeSet::from([4]), "{point}");
        }
    }
}
