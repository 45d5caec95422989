//! Lines with very many keys: parsing and catalog resolution are linear in
//! the keys of a line (a 200,000-field line took 42 s when they were not),
//! and the per-table column limit refuses a line that would add too many
//! columns, by its line number, writing the rest of the body.
//! (Timing lives in `benches/lp.rs`, `wide_line`.)

use crate::common;

use common::table_of;
use quipu::catalog::{DEFAULT_COLUMNS_PER_TABLE, FieldType};
use quipu::{Engine, Error, Precision, ScanRequest, WriteOptions};

const PARTIAL: WriteOptions = WriteOptions { accept_partial: true, no_sync: false };

fn wide_line(measurement: &str, tags: usize, fields: usize, time: i64) -> String {
    let mut line = String::from(measurement);
    for i in 0..tags {
        line.push_str(&format!(",t{i}=v{i}"));
    }
    line.push(' ');
    for i in 0..fields {
        if i > 0 {
            line.push(',');
        }
        // Named families on some, automatic families on the rest.
        if i % 3 == 0 {
            line.push_str(&format!("fam{}::f{i}={i}i", i % 7));
        } else {
            line.push_str(&format!("f{i}={i}i"));
        }
    }
    line.push_str(&format!(" {time}"));
    line
}

#[test]
fn a_line_of_200_000_keys_is_parsed_resolved_and_stored() {
    const TAGS: usize = 20_000;
    const FIELDS: usize = 200_000;
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::builder(dir.path()).background(false).columns_per_table(usize::MAX).open().unwrap();
    let line = wide_line("wide", TAGS, FIELDS, 7);
    let summary = engine.write_lp("db", &line, Precision::Nanosecond, WriteOptions::default()).unwrap();
    assert_eq!(summary.lines_written, 1);

    let check = |engine: &Engine| {
        let catalog = engine.catalog();
        let table = catalog.database("db").unwrap().table("wide").unwrap();
        assert_eq!(table.columns.len(), TAGS + FIELDS);
        assert_eq!(table.tags().count(), TAGS);
        for i in [0, 1, 2, 3, 99_999, FIELDS - 1] {
            let col = table.column(&format!("f{i}")).unwrap();
            assert_eq!(col.kind, quipu::catalog::ColumnKind::Field(FieldType::Integer));
            let family = &table.family(col.family.unwrap()).unwrap().name;
            if i % 3 == 0 {
                assert_eq!(family, &format!("fam{}", i % 7));
            } else {
                assert!(family.starts_with("__auto_"), "{family}");
            }
        }
        // Automatic families hold 100 fields each, in order.
        let auto_fields = FIELDS - FIELDS.div_ceil(3);
        assert_eq!(table.families.iter().filter(|f| f.auto).count(), auto_fields.div_ceil(100));
        let rows = table_of(&engine.scan("db", "wide", &ScanRequest::all()).unwrap());
        assert_eq!(rows.len(), 1);
        let ((series, time), row) = rows.iter().next().unwrap();
        assert_eq!(*time, 7);
        assert!(series.contains("t19999=v19999"), "{}", &series[..100]);
        assert_eq!(row.len(), FIELDS);
        assert_eq!(row.get("f199999").map(String::as_str), Some("199999"));
    };
    check(&engine);
    // Again, now against the columns the catalog has: the same row.
    engine.write_lp("db", &line, Precision::Nanosecond, WriteOptions::default()).unwrap();
    check(&engine);
    drop(engine);
    let engine = Engine::builder(dir.path()).background(false).columns_per_table(usize::MAX).open().unwrap();
    check(&engine);
}

#[test]
fn a_line_past_the_column_limit_is_rejected_by_number_and_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::builder(dir.path()).background(false).open().unwrap();
    // 2 tags + 496 fields + time = 499 columns: fits.
    let fits = wide_line("m", 2, 496, 1);
    // One more tag and one more field: 501.
    let too_wide = wide_line("m", 3, 497, 2);
    let body = format!("{fits}\n{too_wide}\nm,t0=v0 f0=5i 3\nother v=1i 4\n");
    let summary = engine.write_lp("db", &body, Precision::Nanosecond, PARTIAL).unwrap();
    assert_eq!(summary.lines_written, 3);
    assert_eq!(summary.errors.len(), 1);
    let e = &summary.errors[0];
    assert_eq!(e.line, 2);
    assert!(
        e.message.starts_with("Update to schema would exceed number of columns per table limit of 500 columns"),
        "{}",
        e.message
    );
    assert!(e.message.contains("table \"m\" has 499 columns (time included) and this write adds 2"), "{}", e.message);
    let catalog = engine.catalog();
    let table = catalog.database("db").unwrap().table("m").unwrap();
    assert_eq!(table.column_count(), 499);
    assert!(table.column("t2").is_none(), "the rejected line added nothing");
    assert_eq!(table_of(&engine.scan("db", "m", &ScanRequest::all()).unwrap()).len(), 2);

    // One new column still fits, the next does not; known columns stay writable.
    engine.write_lp("db", "m new1=1i 5", Precision::Nanosecond, WriteOptions::default()).unwrap();
    let err = engine.write_lp("db", "m new2=1i 6", Precision::Nanosecond, WriteOptions::default()).unwrap_err();
    let Error::WriteRejected { errors, .. } = err else { panic!("expected WriteRejected, got {err:?}") };
    assert_eq!(errors[0].line, 1);
    assert!(errors[0].message.contains("limit of 500 columns"), "{}", errors[0].message);
    engine.write_lp("db", "m,t1=x f1=1i,new1=2i 7", Precision::Nanosecond, WriteOptions::default()).unwrap();
}

#[test]
fn a_rejected_line_that_would_create_a_table_leaves_no_table() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::builder(dir.path()).background(false).columns_per_table(10).open().unwrap();
    let body = format!(
        "{}\nsmall v=1i 1\n{}\n",
        wide_line("huge", 0, 10, 1),
        wide_line("clash", 0, 2, 1) + "\nclash f0=1.5 2"
    );
    let summary = engine.write_lp("db", &body, Precision::Nanosecond, PARTIAL).unwrap();
    assert_eq!(summary.errors.iter().map(|e| e.line).collect::<Vec<_>>(), vec![1, 4]);
    let catalog = engine.catalog();
    let db = catalog.database("db").unwrap();
    assert!(db.table("huge").is_none());
    assert_eq!(db.tables().map(|t| t.name.as_str()).collect::<Vec<_>>(), vec!["clash", "small"]);
    // Ids stay dense: the refused table gave its id back.
    let mut ids: Vec<u32> = db.tables().map(|t| t.id).collect();
    ids.sort_unstable();
    assert_eq!(ids, vec![0, 1]);
    assert_eq!(DEFAULT_COLUMNS_PER_TABLE, 500);
}

#[test]
fn an_arrow_batch_past_the_column_limit_is_rejected_whole() {
    use arrow::array::{ArrayRef, Int64Array, RecordBatch};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::builder(dir.path()).background(false).columns_per_table(4).open().unwrap();
    let cols = |n: usize| -> RecordBatch {
        let mut pairs: Vec<(String, ArrayRef)> = vec![("time".into(), Arc::new(Int64Array::from(vec![1])) as ArrayRef)];
        for i in 0..n {
            pairs.push((format!("f{i}"), Arc::new(Int64Array::from(vec![i as i64])) as ArrayRef));
        }
        RecordBatch::try_from_iter(pairs).unwrap()
    };
    engine.write_batch("db", "t", &cols(3)).unwrap();
    let err = engine.write_batch("db", "t", &cols(4)).unwrap_err();
    assert!(err.to_string().contains("limit of 4 columns"), "{err}");
    assert_eq!(engine.catalog().database("db").unwrap().table("t").unwrap().column_count(), 4);
}
