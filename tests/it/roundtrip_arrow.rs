//! Arrow batches written with `write_batch` scan back equal, and schema
//! conflicts reject the whole batch.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, DictionaryArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampNanosecondArray, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Int32Type, Schema, TimeUnit};
use quipu::{Engine, Error, ScanRequest};

fn batch() -> RecordBatch {
    let tag_meta: HashMap<String, String> =
        [("iox::column::type".to_string(), "iox::column_type::tag".to_string())].into();
    let schema = Schema::new(vec![
        Field::new("host", DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)), true),
        Field::new("region", DataType::Utf8, true).with_metadata(tag_meta),
        Field::new("cpu::usage", DataType::Float64, true),
        Field::new("n", DataType::Int64, true),
        Field::new("u", DataType::UInt64, true),
        Field::new("s", DataType::Utf8, true),
        Field::new("ok", DataType::Boolean, true),
        Field::new("time", DataType::Timestamp(TimeUnit::Nanosecond, None), false),
    ]);
    let host: DictionaryArray<Int32Type> = vec!["a", "b", "a", "c"].into_iter().collect();
    let cols: Vec<ArrayRef> = vec![
        Arc::new(host),
        Arc::new(StringArray::from(vec![Some("eu"), Some("us"), Some("eu"), None])),
        Arc::new(Float64Array::from(vec![Some(1.5), None, Some(3.5), Some(-0.0)])),
        Arc::new(Int64Array::from(vec![Some(i64::MIN), Some(2), None, Some(i64::MAX)])),
        Arc::new(UInt64Array::from(vec![Some(u64::MAX), None, Some(0), Some(4)])),
        Arc::new(StringArray::from(vec![Some("x"), Some(""), None, Some("zé")])),
        Arc::new(BooleanArray::from(vec![Some(true), Some(false), None, Some(true)])),
        Arc::new(TimestampNanosecondArray::from(vec![30, 10, 20, 10])),
    ];
    RecordBatch::try_new(Arc::new(schema), cols).unwrap()
}

fn sorted_rows(batches: &[RecordBatch]) -> Vec<String> {
    let mut rows = Vec::new();
    for b in batches {
        for r in 0..b.num_rows() {
            let mut cells = Vec::new();
            for (i, f) in b.schema().fields().iter().enumerate() {
                let c = b.column(i);
                let v = if c.is_null(r) {
                    "null".to_string()
                } else {
                    arrow::util::display::array_value_to_string(c, r).unwrap()
                };
                cells.push(format!("{}={v}", f.name()));
            }
            rows.push(cells.join(" "));
        }
    }
    rows.sort();
    rows
}

use arrow::array::Array;

#[test]
fn arrow_batch_round_trips_through_flush_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::builder(dir.path()).background(false).open().unwrap();
    let s = e.write_batch("db", "t", &batch()).unwrap();
    assert_eq!(s.lines_written, 4);
    let req = ScanRequest::all().columns(["host", "region", "usage", "n", "u", "s", "ok", "time"]);
    let expected = vec![
        "host=a region=eu usage=1.5 n=-9223372036854775808 u=18446744073709551615 s=x ok=true time=1970-01-01T00:00:00.000000030",
        "host=a region=eu usage=3.5 n=null u=0 s=null ok=null time=1970-01-01T00:00:00.000000020",
        "host=b region=us usage=null n=2 u=null s= ok=false time=1970-01-01T00:00:00.000000010",
        "host=c region=null usage=-0.0 n=9223372036854775807 u=4 s=zé ok=true time=1970-01-01T00:00:00.000000010",
    ];
    assert_eq!(sorted_rows(&e.scan("db", "t", &req).unwrap()), expected);
    e.flush().unwrap();
    assert_eq!(sorted_rows(&e.scan("db", "t", &req).unwrap()), expected);
    e.compact().unwrap();
    assert_eq!(sorted_rows(&e.scan("db", "t", &req).unwrap()), expected);
    let cat = e.catalog();
    let t = cat.database("db").unwrap().table("t").unwrap();
    assert_eq!(t.family(t.column("usage").unwrap().family.unwrap()).unwrap().name, "cpu");
}

#[test]
fn conflicting_batches_are_rejected_whole() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::builder(dir.path()).background(false).open().unwrap();
    e.write_batch("db", "t", &batch()).unwrap();
    // `n` as float conflicts with integer.
    let schema =
        Schema::new(vec![Field::new("n", DataType::Float64, true), Field::new("time", DataType::Int64, false)]);
    let b = RecordBatch::try_new(
        Arc::new(schema),
        vec![Arc::new(Float64Array::from(vec![1.0])), Arc::new(Int64Array::from(vec![99]))],
    )
    .unwrap();
    assert!(matches!(e.write_batch("db", "t", &b), Err(Error::BatchRejected { .. })));
    // No time column.
    let schema = Schema::new(vec![Field::new("v", DataType::Float64, true)]);
    let b = RecordBatch::try_new(Arc::new(schema), vec![Arc::new(Float64Array::from(vec![1.0]))]).unwrap();
    assert!(matches!(e.write_batch("db", "t", &b), Err(Error::BatchRejected { .. })));
    // Unsupported type.
    let schema = Schema::new(vec![Field::new("v", DataType::Int8, true), Field::new("time", DataType::Int64, false)]);
    let b = RecordBatch::try_new(
        Arc::new(schema),
        vec![Arc::new(arrow::array::Int8Array::from(vec![1])), Arc::new(Int64Array::from(vec![1]))],
    )
    .unwrap();
    assert!(matches!(e.write_batch("db", "t", &b), Err(Error::BatchRejected { .. })));
    assert_eq!(sorted_rows(&e.scan("db", "t", &ScanRequest::all()).unwrap()).len(), 4);
}

/// Tags and string fields as large strings, string views or dictionaries
/// (with a null behind a key) are written as the same rows as plain Utf8.
#[test]
fn every_string_encoding_writes_the_same_rows() {
    let plain = batch();
    let cast_to = |name: &str, to: DataType| -> ArrayRef {
        arrow::compute::cast(plain.column(plain.schema().index_of(name).unwrap()), &to).unwrap()
    };
    let schema = plain.schema();
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut cols: Vec<ArrayRef> = plain.columns().to_vec();
    for (name, to) in [
        ("host", DataType::LargeUtf8),
        ("region", DataType::Dictionary(Box::new(DataType::Int8), Box::new(DataType::Utf8))),
        ("s", DataType::Utf8View),
    ] {
        let i = schema.index_of(name).unwrap();
        cols[i] = cast_to(name, to.clone());
        fields[i] = fields[i].clone().with_data_type(to);
    }
    // `host` is no longer a dictionary: mark it a tag.
    let tag_meta: HashMap<String, String> =
        [("iox::column::type".to_string(), "iox::column_type::tag".to_string())].into();
    fields[0] = fields[0].clone().with_metadata(tag_meta);
    let other = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap();

    let req = ScanRequest::all().columns(["host", "region", "usage", "n", "u", "s", "ok", "time"]);
    let rows = |b: &RecordBatch| {
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::builder(dir.path()).background(false).open().unwrap();
        assert_eq!(e.write_batch("db", "t", b).unwrap().lines_written, 4);
        sorted_rows(&e.scan("db", "t", &req).unwrap())
    };
    assert_eq!(rows(&other), rows(&plain));
}
