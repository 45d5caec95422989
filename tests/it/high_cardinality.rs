//! A table of many distinct series (200,000 devices, two or three points
//! each, written in a few large line-protocol bodies) is stored and read
//! back whole: after flushes and a compaction, through a full scan (every
//! (device, time, value) triple), through SQL for one device by its tag,
//! after a backup restored in place over later writes, and after a reopen.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Int64Type, TimestampNanosecondType};
use quipu::backup::{BackupConfig, BackupRequest, BackupService, BackupStatus, RestoreVerify};
use quipu::tree::{LEVEL_COMPACTED, LEVEL_GEN0};
use quipu::{Engine, Precision, ScanRequest, WriteOptions};

const SECOND: i64 = 1_000_000_000;
/// Distinct series.
const DEVICES: u32 = 200_000;
/// 2024-03-01T22:30:00Z: a device's third point (an hour apart) falls in
/// the next 24h window, so the compaction writes two windows.
const START: i64 = 1_709_332_200 * SECOND;
const HOUR: i64 = 3_600 * SECOND;
/// Lines per write: 500,000 lines in five bodies of about 5 MB.
const BODY_LINES: usize = 100_000;

/// (device, time, value), sorted.
type Rows = Vec<(u32, i64, i64)>;

/// Devices with an odd number have three points, the others two.
fn points(device: u32) -> i64 {
    2 + i64::from(device % 2)
}

fn value(device: u32, k: i64) -> i64 {
    i64::from(device) * 10 + k
}

fn expected() -> Rows {
    let mut out: Rows =
        (0..DEVICES).flat_map(|d| (0..points(d)).map(move |k| (d, START + k * HOUR, value(d, k)))).collect();
    out.sort_unstable();
    out
}

fn open(dir: &std::path::Path) -> Engine {
    Engine::builder(dir).background(false).open().unwrap()
}

fn write(engine: &Engine, body: &str) {
    engine.write_lp("db", body, Precision::Nanosecond, WriteOptions::default()).unwrap();
}

/// Every point, in time order (each device's first point, then second,
/// then third), in bodies of [`BODY_LINES`] lines, each body flushed.
fn ingest(engine: &Engine) {
    let mut body = String::new();
    let mut lines = 0;
    for k in 0..3 {
        for d in (0..DEVICES).filter(|&d| k < points(d)) {
            body.push_str(&format!("hc,device=d{d} value={}i {}\n", value(d, k), START + k * HOUR));
            lines += 1;
            if lines == BODY_LINES {
                write(engine, &body);
                engine.flush().unwrap();
                body.clear();
                lines = 0;
            }
        }
    }
    if !body.is_empty() {
        write(engine, &body);
        engine.flush().unwrap();
    }
}

/// (device, time, value) of every row of `batches`, sorted.
fn rows_of(batches: &[RecordBatch]) -> Rows {
    let mut out = Rows::new();
    for b in batches {
        let device = arrow::compute::cast(b.column_by_name("device").unwrap(), &DataType::Utf8).unwrap();
        let device = device.as_string::<i32>();
        let time = b.column_by_name("time").unwrap().as_primitive::<TimestampNanosecondType>();
        let value = b.column_by_name("value").unwrap().as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            assert!(device.is_valid(i) && value.is_valid(i), "row {i}: a null device or value");
            let name = device.value(i);
            let d = name.strip_prefix('d').and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("device {name:?}"));
            out.push((d, time.value(i), value.value(i)));
        }
    }
    out.sort_unstable();
    out
}

fn assert_all_rows(engine: &Engine, expected: &Rows, context: &str) {
    let got = rows_of(&engine.scan("db", "hc", &ScanRequest::all()).unwrap());
    if &got != expected {
        let first = got.iter().zip(expected).position(|(a, b)| a != b);
        panic!(
            "{context}: {} rows read, {} written; first difference at {first:?}: read {:?}, written {:?}",
            got.len(),
            expected.len(),
            first.map(|i| got[i]),
            first.map(|i| expected[i]),
        );
    }
}

#[cfg(feature = "sql")]
fn sql_rows(engine: &Engine, sql: &str) -> Rows {
    use futures::StreamExt;
    let batches = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut stream = quipu::sql::query(engine, "db", sql).await.unwrap();
        let mut out = Vec::new();
        while let Some(batch) = stream.next().await {
            out.push(batch.unwrap());
        }
        out
    });
    rows_of(&batches)
}

/// One device by its tag through SQL: exactly its rows.
#[cfg(feature = "sql")]
fn assert_one_device_by_sql(engine: &Engine, expected: &Rows, context: &str) {
    for d in [123_456, 199_999, 0] {
        let got = sql_rows(engine, &format!("SELECT device, time, value FROM hc WHERE device = 'd{d}' ORDER BY time"));
        let want: Rows = expected.iter().copied().filter(|r| r.0 == d).collect();
        assert_eq!(want.len() as i64, points(d));
        assert_eq!(got, want, "{context}: device d{d} through SQL");
    }
}

#[cfg(not(feature = "sql"))]
fn assert_one_device_by_sql(_: &Engine, _: &Rows, _: &str) {}

#[test]
fn many_series_survive_compaction_backup_restore_and_reopen() {
    let root = tempfile::tempdir().unwrap();
    let (data, repo) = (root.path().join("data"), root.path().join("repo"));
    let expected = expected();
    assert_eq!(expected.len(), 500_000);

    let engine = open(&data);
    ingest(&engine);
    let version = engine.version();
    assert!(version.files.iter().filter(|f| f.meta.level == LEVEL_GEN0).count() >= 5);
    drop(version);
    engine.compact().unwrap();
    let version = engine.version();
    assert!(version.files.iter().all(|f| f.meta.level == LEVEL_COMPACTED), "flushed files left");
    assert_eq!(version.files.len(), 2, "one compacted file per window");
    assert_eq!(version.files.iter().map(|f| f.meta.rows).sum::<u64>(), expected.len() as u64);
    drop(version);
    assert_all_rows(&engine, &expected, "compacted");
    assert_one_device_by_sql(&engine, &expected, "compacted");

    // A backup, then writes it does not hold: overwrites of existing rows,
    // new rows of old devices, a new device; flushed, compacted, and some
    // left in the buffer. The in-place restore rolls all of them back.
    let backups = BackupService::open(engine.clone(), &repo, BackupConfig::default()).unwrap();
    let name = backups.start(BackupRequest::full().named("many-series")).unwrap();
    let info = backups.wait(&name).unwrap();
    assert_eq!(info.status, BackupStatus::Completed, "{info:?}");
    let mut later = String::new();
    for d in (0..DEVICES).step_by(1_000) {
        later.push_str(&format!("hc,device=d{d} value=-1i {START}\n"));
        later.push_str(&format!("hc,device=d{d} value=-2i {}\n", START + 5 * HOUR));
    }
    later.push_str(&format!("hc,device=d{DEVICES} value=1i {START}\n"));
    write(&engine, &later);
    engine.flush().unwrap();
    engine.compact().unwrap();
    write(&engine, &format!("hc,device=d123456 value=-3i {}\n", START + HOUR));
    assert_ne!(rows_of(&engine.scan("db", "hc", &ScanRequest::all()).unwrap()).len(), expected.len());

    let id = backups.start_restore(&name, RestoreVerify::Full).unwrap();
    let restored = backups.wait_restore(&id).unwrap();
    assert_eq!(restored.status, BackupStatus::Completed, "{restored:?}");
    assert_all_rows(&engine, &expected, "restored in place");
    assert_one_device_by_sql(&engine, &expected, "restored in place");
    backups.shutdown();
    drop(backups);
    drop(engine);

    let engine = open(&data);
    assert_all_rows(&engine, &expected, "reopened");
    assert_one_device_by_sql(&engine, &expected, "reopened");
}
