//! Bad line protocol, type conflicts and bad precision: per-line errors with
//! line numbers, and nothing applied when accept_partial is false.

use crate::common;

use common::table_of;
use quipu::{Engine, Error, Precision, ScanRequest, WriteOptions};

fn engine(dir: &std::path::Path) -> Engine {
    Engine::builder(dir).background(false).open().unwrap()
}

const PARTIAL: WriteOptions = WriteOptions { accept_partial: true, no_sync: false };

#[test]
fn a_bad_line_rejects_the_whole_body_without_accept_partial() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    e.write_lp("db", "cpu,host=a usage=1.0 1", Precision::Nanosecond, WriteOptions::default()).unwrap();
    let body = "cpu,host=a usage=2.0 2\n\ncpu,host=a usage= 3\ncpu,host=b usage=4i 4\nnewtable v=1 5\n";
    let err = e.write_lp("db", body, Precision::Nanosecond, WriteOptions::default()).unwrap_err();
    let Error::WriteRejected { db, errors } = err else { panic!("expected WriteRejected, got {err:?}") };
    assert_eq!(db, "db");
    // Syntax errors and catalog conflicts are both reported; nothing was applied.
    assert_eq!(errors.iter().map(|e| e.line).collect::<Vec<_>>(), vec![3, 4]);
    let rows = table_of(&e.scan("db", "cpu", &ScanRequest::all()).unwrap());
    assert_eq!(rows.len(), 1);
    assert!(e.catalog().database("db").unwrap().table("newtable").is_none(), "no table from a rejected body");

    // A type conflict alone also rejects everything.
    let err = e
        .write_lp(
            "db",
            "cpu,host=a usage=2.0 2\ncpu,host=b usage=4i 4\nother v=1 5",
            Precision::Nanosecond,
            WriteOptions::default(),
        )
        .unwrap_err();
    let Error::WriteRejected { errors, .. } = err else { panic!() };
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].line, 2);
    assert!(errors[0].message.contains("usage"), "{}", errors[0].message);
    assert_eq!(table_of(&e.scan("db", "cpu", &ScanRequest::all()).unwrap()).len(), 1);
    assert!(e.catalog().database("db").unwrap().table("other").is_none());
}

#[test]
fn accept_partial_applies_good_lines_and_reports_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    e.write_lp("db", "cpu,host=a usage=1.0 1", Precision::Nanosecond, WriteOptions::default()).unwrap();
    let body = "cpu,host=a usage=2.0 2\n# comment\ncpu,host=a usage= 3\ncpu,host=b usage=4i 4\ncpu,usage=x v=1 5\ncpu time=1 6\ncpu,host=c usage=7.5 7";
    let s = e.write_lp("db", body, Precision::Nanosecond, PARTIAL).unwrap();
    assert_eq!(s.lines_written, 2);
    assert_eq!(s.errors.iter().map(|e| e.line).collect::<Vec<_>>(), vec![3, 4, 5, 6]);
    assert!(s.errors.iter().all(|e| !e.message.is_empty()));
    assert_eq!(s.errors[1].text, "cpu,host=b usage=4i 4");
    let rows = table_of(&e.scan("db", "cpu", &ScanRequest::all()).unwrap());
    assert_eq!(rows.keys().map(|k| k.1).collect::<Vec<_>>(), vec![1, 2, 7]);

    // Survives reopen exactly as acknowledged.
    drop(e);
    let e = engine(dir.path());
    assert_eq!(table_of(&e.scan("db", "cpu", &ScanRequest::all()).unwrap()), rows);
}

#[test]
fn bad_precision_and_bad_names_are_typed_errors() {
    assert!("fortnight".parse::<Precision>().is_err());
    for ok in ["auto", "second", "millisecond", "microsecond", "nanosecond", "s", "ms", "us", "u", "ns"] {
        assert!(ok.parse::<Precision>().is_ok(), "{ok}");
    }
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let err = e.write_lp("bad db name", "m v=1 1", Precision::Auto, WriteOptions::default()).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    // A timestamp that overflows nanoseconds is a line error.
    let err = e.write_lp("db", "m v=1 9223372036854775807", Precision::Second, WriteOptions::default()).unwrap_err();
    assert!(matches!(err, Error::WriteRejected { .. }), "{err:?}");
}

#[test]
fn family_conflicts_reject_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    e.write_lp("db", "m cpu::x=1 1", Precision::Nanosecond, WriteOptions::default()).unwrap();
    let s = e.write_lp("db", "m mem::x=1 2\nm x=2 3\nm cpu::x=3 4", Precision::Nanosecond, PARTIAL).unwrap();
    assert_eq!(s.lines_written, 2);
    assert_eq!(s.errors.len(), 1);
    assert_eq!(s.errors[0].line, 1);
    assert!(s.errors[0].message.contains("family"), "{}", s.errors[0].message);
}
