//! The per-database table limit: a line that would create a table past it is
//! rejected by its line number and creates nothing, the rest of the body is
//! written, existing tables stay writable, other databases have their own
//! count, and an Arrow batch for a new table past it is rejected whole.

use arrow::array::{ArrayRef, Int64Array, RecordBatch};
use quipu::{Engine, Error, Precision, WriteOptions};
use std::sync::Arc;

const PARTIAL: WriteOptions = WriteOptions { accept_partial: true, no_sync: false };

#[test]
fn a_line_creating_a_table_past_the_limit_is_rejected_by_number() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::builder(dir.path()).background(false).tables_per_database(3).open().unwrap();
    let body = "a v=1i 1\nb v=1i 1\nc v=1i 1\nd v=1i 1\na v=2i 2\n";
    let summary = engine.write_lp("db", body, Precision::Nanosecond, PARTIAL).unwrap();
    assert_eq!(summary.lines_written, 4);
    assert_eq!(summary.errors.len(), 1);
    assert_eq!(summary.errors[0].line, 4);
    let message = &summary.errors[0].message;
    assert!(message.contains("number of tables per database limit of 3 tables"), "{message}");
    assert!(message.contains("\"d\""), "{message}");
    let catalog = engine.catalog();
    let names: Vec<&str> = catalog.database("db").unwrap().tables().map(|t| t.name.as_str()).collect();
    assert_eq!(names, vec!["a", "b", "c"]);

    // Without accept_partial the write is refused whole.
    let err = engine.write_lp("db", "e v=1i 3", Precision::Nanosecond, WriteOptions::default()).unwrap_err();
    let Error::WriteRejected { errors, .. } = err else { panic!("expected WriteRejected, got {err:?}") };
    assert_eq!(errors[0].line, 1);
    // Existing tables stay writable, new columns included; other databases count apart.
    engine.write_lp("db", "c v=3i,w=1i 4", Precision::Nanosecond, WriteOptions::default()).unwrap();
    engine.write_lp("other", "e v=1i 1\nf v=1i 1", Precision::Nanosecond, WriteOptions::default()).unwrap();

    // The limit holds after a reopen, and with a larger one the table fits.
    drop(engine);
    let engine = Engine::builder(dir.path()).background(false).tables_per_database(3).open().unwrap();
    assert!(engine.write_lp("db", "e v=1i 5", Precision::Nanosecond, WriteOptions::default()).is_err());
    drop(engine);
    let engine = Engine::builder(dir.path()).background(false).tables_per_database(4).open().unwrap();
    engine.write_lp("db", "e v=1i 5", Precision::Nanosecond, WriteOptions::default()).unwrap();
    assert_eq!(engine.catalog().database("db").unwrap().table_count(), 4);
}

#[test]
fn an_arrow_batch_for_a_table_past_the_limit_is_rejected_whole() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::builder(dir.path()).background(false).tables_per_database(1).open().unwrap();
    let batch = RecordBatch::try_from_iter([
        ("time", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
        ("v", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
    ])
    .unwrap();
    engine.write_batch("db", "a", &batch).unwrap();
    engine.write_batch("db", "a", &batch).unwrap();
    let err = engine.write_batch("db", "b", &batch).unwrap_err();
    assert!(matches!(err, Error::BatchRejected { .. }), "{err:?}");
    assert!(err.to_string().contains("limit of 1 tables"), "{err}");
    assert!(engine.catalog().database("db").unwrap().table("b").is_none());
}
