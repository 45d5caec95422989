//! quipu's SQL (DataFusion over the engine, `quipu::sql::query`) gives the
//! same rows as DuckDB running the same SQL over quipu's own Parquet export
//! of the same data (issue 6). The data: three days of `cpu` (two tags, one
//! of them missing on a host; float, integer, string and boolean fields, a
//! column family, nulls, nanosecond timestamps, later writes that overwrite
//! and fill in fields) and `disk` (two tags, integer, uinteger and family
//! fields), all compacted, exported with `TableExport::write_tar` and read
//! by tests/python/sql_duckdb.py through one view per table (which also
//! states what the views do so that one SQL text means the same in both).
//!
//! DuckDB's result of each query comes back as a Parquet file (pyarrow);
//! both sides are brought to one typed form ([`Value`]) and compared as
//! sorted multisets, or in order when the query's ORDER BY is total. Every
//! query must return rows, so a filter that matches nothing cannot pass.
//! A failure names every differing query with both results.
//!
//! The peers (python3, duckdb >= 2, pyarrow) are installed by scripts/test;
//! a missing one fails this test rather than skipping it.
#![cfg(feature = "sql")]

use crate::common;

use std::cmp::Ordering;
use std::fmt;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Decimal128Type, Float64Type, TimeUnit, TimestampNanosecondType};
use futures::StreamExt;
use quipu::{Engine, Precision, WriteOptions};

const DB: &str = "db";
/// 2024-03-01T06:00:00Z: the data starts and ends mid-window.
const BASE: i64 = 1_709_272_800 * 1_000_000_000;
const STEP: i64 = 600 * 1_000_000_000;
/// Three days of 10-minute steps.
const STEPS: i64 = 3 * 144;
const HOSTS: i64 = 6;
/// Hosts write slightly apart, to the nanosecond: host `h` at `h * 1.000000007 s`.
const HOST_OFFSET: i64 = 1_000_000_007;

/// How a query's rows are compared: as a multiset, or in order when the
/// query's ORDER BY is total over its output.
#[derive(Clone, Copy, PartialEq)]
enum Rows {
    Set,
    Ordered,
}
use Rows::{Ordered, Set};

/// (name, comparison, SQL): one text run by both engines.
const QUERIES: &[(&str, Rows, &str)] = &[
    (
        "counts of every column",
        Set,
        "SELECT count(*) AS n, count(usage) AS n_usage, count(state) AS n_state, count(up) AS n_up, \
         count(used) AS n_used, count(region) AS n_region FROM cpu",
    ),
    (
        "time range, RFC 3339 literals",
        Set,
        "SELECT host, region, time, usage, load FROM cpu \
         WHERE time >= '2024-03-02T00:00:00Z' AND time < '2024-03-02T02:00:00Z'",
    ),
    (
        "BETWEEN with both ends on a row, to the nanosecond",
        Set,
        "SELECT host, time, load FROM cpu \
         WHERE time BETWEEN '2024-03-03T10:00:01.000000007Z' AND '2024-03-03T11:00:05.000000035Z'",
    ),
    (
        "strict bounds exclude the rows they sit on",
        Set,
        "SELECT host, time FROM cpu \
         WHERE time > '2024-03-03T10:00:01.000000007Z' AND time < '2024-03-03T10:20:05.000000035Z'",
    ),
    ("time equality", Set, "SELECT host, region, usage, state FROM cpu WHERE time = '2024-03-02T00:00:02.000000014Z'"),
    (
        "tag equality, ORDER BY time, LIMIT",
        Ordered,
        "SELECT time, usage, load, state FROM cpu WHERE host = 'h2' AND time > '2024-03-02T12:00:00Z' \
         ORDER BY time LIMIT 10",
    ),
    (
        "tag IN, grouped",
        Ordered,
        "SELECT host, count(*) AS n, sum(load) AS s, min(load) AS lo, max(load) AS hi FROM cpu \
         WHERE host IN ('h1', 'h4', 'h5') GROUP BY host ORDER BY host",
    ),
    (
        "tag, string field, float field and time together",
        Set,
        "SELECT host, time, state, usage FROM cpu \
         WHERE region = 'eu-west' AND state = 'warn' AND usage > 50 AND time < '2024-03-03T00:00:00Z'",
    ),
    (
        "tag NOT IN and <>",
        Set,
        "SELECT host, region, count(*) AS n FROM cpu \
         WHERE host NOT IN ('h0', 'h1') AND region <> 'ap-south' GROUP BY host, region",
    ),
    (
        "a missing tag is NULL",
        Set,
        "SELECT host, count(*) AS n, max(time) AS last FROM cpu WHERE region IS NULL GROUP BY host",
    ),
    (
        "date_trunc hour buckets",
        Ordered,
        "SELECT date_trunc('hour', time) AS hour, count(*) AS n, avg(usage) AS avg_usage, max(load) AS max_load \
         FROM cpu WHERE time >= '2024-03-02T00:00:00Z' AND time < '2024-03-03T00:00:00Z' GROUP BY 1 ORDER BY 1",
    ),
    (
        "date_trunc day buckets per host",
        Ordered,
        "SELECT host, date_trunc('day', time) AS day, count(*) AS n, sum(usage) AS s FROM cpu \
         GROUP BY 1, 2 ORDER BY 1, 2",
    ),
    (
        "date_bin 15 minute buckets per host",
        Ordered,
        "SELECT date_bin(INTERVAL '15 minutes', time) AS bucket, host, count(*) AS n, min(usage) AS lo, \
         max(usage) AS hi FROM cpu WHERE host IN ('h0', 'h3') AND time < '2024-03-01T12:00:00Z' \
         GROUP BY 1, 2 ORDER BY 1, 2",
    ),
    (
        "date_bin with an origin, per region",
        Set,
        "SELECT date_bin(INTERVAL '1 day', time, TIMESTAMP '2024-03-01 06:00:00') AS day, region, \
         count(*) AS n, avg(load) AS a FROM cpu GROUP BY 1, 2",
    ),
    (
        "aggregates over the table",
        Set,
        "SELECT count(*) AS n, sum(usage) AS s, avg(usage) AS a, min(usage) AS lo, max(usage) AS hi, \
         sum(load) AS sl, avg(load) AS al, min(time) AS first, max(time) AS last FROM cpu",
    ),
    (
        "GROUP BY one tag",
        Set,
        "SELECT region, count(*) AS n, avg(usage) AS a, min(state) AS smin, max(state) AS smax FROM cpu \
         GROUP BY region",
    ),
    (
        "GROUP BY two tags, uinteger and family fields",
        Set,
        "SELECT host, device, count(*) AS n, sum(reads) AS r, sum(bytes) AS b, max(bytes) AS bmax, \
         avg(used_pct) AS u FROM disk GROUP BY host, device",
    ),
    (
        "ORDER BY a field DESC, LIMIT",
        Ordered,
        "SELECT host, time, usage FROM cpu WHERE usage IS NOT NULL ORDER BY usage DESC, host, time LIMIT 7",
    ),
    (
        "ORDER BY tag and time DESC, LIMIT OFFSET",
        Ordered,
        "SELECT host, time, load FROM cpu ORDER BY host DESC, time DESC LIMIT 5 OFFSET 3",
    ),
    (
        "last row per series (window function)",
        Ordered,
        "SELECT host, region, time, usage, state FROM (SELECT host, region, time, usage, state, \
         row_number() OVER (PARTITION BY host ORDER BY time DESC) AS rn FROM cpu) AS t \
         WHERE rn = 1 ORDER BY host",
    ),
    (
        "last row per series (join on max(time))",
        Ordered,
        "SELECT d.host, d.device, d.time, d.used_pct, d.errors FROM disk AS d \
         JOIN (SELECT host, device, max(time) AS t FROM disk GROUP BY host, device) AS m \
         ON d.host = m.host AND d.device = m.device AND d.time = m.t ORDER BY d.host, d.device",
    ),
    (
        "last non-null value per series",
        Set,
        "SELECT host, time, state FROM (SELECT host, time, state, \
         row_number() OVER (PARTITION BY host ORDER BY time DESC) AS rn FROM cpu WHERE state IS NOT NULL) AS t \
         WHERE rn = 1",
    ),
    (
        "HAVING against a scalar subquery",
        Set,
        "SELECT host, avg(usage) AS a, count(*) AS n FROM cpu GROUP BY host \
         HAVING avg(usage) > (SELECT avg(usage) FROM cpu)",
    ),
    ("HAVING on a count", Set, "SELECT host, state, count(*) AS n FROM cpu GROUP BY host, state HAVING count(*) > 90"),
    (
        "rows where the only field read is null",
        Set,
        "SELECT host, count(*) AS n FROM disk WHERE errors IS NULL GROUP BY host",
    ),
    ("DISTINCT tags", Set, "SELECT DISTINCT host, region FROM cpu"),
    (
        "count DISTINCT",
        Set,
        "SELECT region, count(DISTINCT host) AS hosts, count(DISTINCT state) AS states FROM cpu GROUP BY region",
    ),
    (
        "counts of nulls",
        Set,
        "SELECT host, count(*) - count(usage) AS no_usage, count(*) - count(state) AS no_state, \
         sum(CASE WHEN up IS NULL THEN 1 ELSE 0 END) AS no_up, count(*) FILTER (WHERE used IS NULL) AS no_mem \
         FROM cpu GROUP BY host",
    ),
    (
        "string field equality",
        Set,
        "SELECT host, time, state FROM cpu \
         WHERE state = 'needs attention' AND host IN ('h3', 'h5') AND time < '2024-03-02T00:00:00Z'",
    ),
    ("string field LIKE", Set, "SELECT state, count(*) AS n FROM cpu WHERE state LIKE '%a%' GROUP BY state"),
    (
        "boolean field aggregates",
        Set,
        "SELECT host, count(*) FILTER (WHERE up) AS up_n, count(*) FILTER (WHERE NOT up) AS down_n, \
         bool_and(up) AS all_up, bool_or(up) AS any_up FROM cpu WHERE time < '2024-03-01T12:00:00Z' GROUP BY host",
    ),
    ("boolean field filter", Set, "SELECT host, time, load FROM cpu WHERE up = false AND load > 30"),
    (
        "column family fields",
        Set,
        "SELECT host, avg(used) AS used, min(free) AS free_min, max(free) AS free_max, count(used) AS n \
         FROM cpu WHERE used IS NOT NULL GROUP BY host",
    ),
    (
        "fields of two families on the same rows, with nulls",
        Set,
        "SELECT host, device, time, reads, writes, used_pct FROM disk \
         WHERE writes IS NULL AND host = 'h2' AND time < '2024-03-02T00:00:00Z'",
    ),
    (
        "join of two tables on tags and time",
        Set,
        "SELECT c.host, count(*) AS n, avg(c.usage + d.used_pct) AS a, sum(c.load * d.reads) AS lr \
         FROM cpu AS c JOIN disk AS d ON c.host = d.host AND c.time = d.time WHERE d.device = 'sda' \
         GROUP BY c.host",
    ),
    (
        "SELECT * (every column, in order)",
        Set,
        "SELECT * FROM cpu WHERE host = 'h4' AND time >= '2024-03-03T00:00:00Z' AND time < '2024-03-03T06:00:00Z'",
    ),
    ("SELECT * of the second table", Set, "SELECT * FROM disk WHERE device = 'sdb' AND time < '2024-03-01T12:00:00Z'"),
    (
        "CASE buckets of a field",
        Set,
        "SELECT CASE WHEN usage >= 50 THEN 'high' WHEN usage IS NULL THEN 'none' ELSE 'low' END AS level, \
         count(*) AS n FROM cpu GROUP BY 1",
    ),
    (
        "explicit NULLS FIRST",
        Ordered,
        "SELECT time, state FROM cpu WHERE host = 'h3' AND time < '2024-03-02T00:00:00Z' \
         ORDER BY state NULLS FIRST, time LIMIT 6",
    ),
    ("coalesce of a null field", Set, "SELECT host, sum(coalesce(errors, -1)) AS e FROM disk GROUP BY host"),
];

fn region(h: i64) -> Option<&'static str> {
    ["us-east", "us-east", "eu-west", "eu-west", "ap-south"].get(h as usize).copied()
}

fn time(i: i64, h: i64) -> i64 {
    BASE + i * STEP + h * HOST_OFFSET
}

/// One `cpu` line per host and step: fields missing on some lines.
fn cpu_line(i: i64, h: i64) -> String {
    let mut line = format!("cpu,host=h{h}");
    if let Some(r) = region(h) {
        line.push_str(&format!(",region={r}"));
    }
    let mut fields = vec![format!("load={}i", (i * 13 + h * 7) % 50 - 10)];
    if (i + h) % 17 != 0 {
        fields.push(format!("usage={}", ((i * 37 + h * 101) % 1000) as f64 * 0.1 + 0.03));
    }
    if (i + 2 * h) % 11 != 0 {
        let state = ["ok", "warn", "crit", "needs attention"][((i / 3 + h) % 4) as usize];
        fields.push(format!("state=\"{state}\""));
    }
    if i % 13 != h {
        fields.push(format!("up={}", (i + 2 * h) % 5 != 0));
    }
    if (i * (h + 1)) % 7 != 3 {
        fields.push(format!("mem::used={}", (i % 64) as f64 * 0.25 + h as f64 / 3.0));
        fields.push(format!("mem::free={}i", 1000 - (i % 100) * 3 - h));
    }
    format!("{line} {} {}\n", fields.join(","), time(i, h))
}

/// `disk` every 30 minutes, at the same instants as `cpu` (joins meet).
fn disk_line(i: i64, h: i64, d: i64) -> String {
    let mut fields = vec![
        format!("used_pct={}", ((i * 7 + h * 13 + d * 29) % 1000) as f64 / 10.0 + 0.5),
        format!("bytes={}u", i as u64 * 4096 + d as u64 * 512 + (1 << 40)),
        format!("io::reads={}i", (i * 5 + h + d) % 200),
    ];
    if (i / 3 + h + d) % 9 != 0 {
        fields.push(format!("errors={}i", (i * h + d) % 4));
    }
    if i % 4 != 1 {
        fields.push(format!("io::writes={}i", (i * 3 + d) % 150));
    }
    let dev = ["sda", "sdb"][d as usize];
    format!("disk,host=h{h},device={dev} {} {}\n", fields.join(","), time(i, h))
}

fn write(engine: &Engine, lp: &str) {
    engine.write_lp(DB, lp, Precision::Nanosecond, WriteOptions::default()).unwrap();
}

/// Both tables written, partly overwritten and filled in by a later write,
/// and all of it compacted (only compacted windows are exported).
fn load(dir: &Path) -> Engine {
    let engine = Engine::builder(dir).background(false).open().unwrap();
    let mut cpu = String::new();
    let mut disk = String::new();
    for i in 0..STEPS {
        for h in 0..HOSTS {
            cpu.push_str(&cpu_line(i, h));
            if i % 3 == 0 && h < 4 {
                disk.push_str(&disk_line(i, h, 0));
                disk.push_str(&disk_line(i, h, 1));
            }
        }
    }
    write(&engine, &cpu);
    write(&engine, &disk);
    engine.flush().unwrap();
    // Later writes, newest first: a field overwritten, a missing one filled in.
    let mut later = String::new();
    for i in (0..STEPS).rev() {
        if i % 40 == 0 {
            later.push_str(&format!("cpu,host=h1,region=us-east usage=999.5 {}\n", time(i, 1)));
        }
        if (i + 8) % 11 == 0 && i % 2 == 0 {
            later.push_str(&format!("cpu,host=h4,region=ap-south state=\"late\" {}\n", time(i, 4)));
        }
    }
    write(&engine, &later);
    engine.flush().unwrap();
    engine.compact().unwrap();
    engine
}

/// Every table's export, unpacked as `quipu export` writes it:
/// `<dir>/<table>/<YYYY-MM-DD>.parquet`. Checks it holds every row.
fn export(engine: &Engine, dir: &Path) {
    let tables = quipu::export::tables(engine, DB).unwrap();
    let cache = std::sync::Arc::new(quipu::export::cache::ExportCache::disabled());
    assert_eq!(tables, ["cpu", "disk"]);
    for table in &tables {
        let export = quipu::export::TableExport::new(engine, &cache, DB, table, &[]).unwrap();
        let exported: u64 = export.windows().iter().map(|w| w.rows).sum();
        let scanned: usize =
            engine.scan(DB, table, &quipu::ScanRequest::all()).unwrap().iter().map(|b| b.num_rows()).sum();
        assert_eq!(exported, scanned as u64, "{table}: everything compacted");
        let mut tar = Vec::new();
        export.write_tar(&mut tar, |_| {}).unwrap();
        for (name, bytes) in common::untar(&tar) {
            let path = dir.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
    }
}

/// A value as both engines must agree on it: integers of any width (and
/// DuckDB's HUGEINT sums, which come as decimal(38, 0)) as one integer,
/// timestamps of any unit as nanoseconds with their zone, strings of any
/// encoding (tags come as dictionaries from quipu) as text. An integer never
/// equals a float, nor a timestamp a string.
#[derive(Clone, Debug)]
enum Value {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Time { ns: i64, zone: Option<String> },
}

impl Value {
    fn rank(&self) -> u8 {
        match self {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Int(_) => 2,
            Value::Float(_) => 3,
            Value::Str(_) => 4,
            Value::Time { .. } => 5,
        }
    }

    /// A total order, to sort rows into a canonical multiset.
    fn order(&self, other: &Value) -> Ordering {
        match (self, other) {
            (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
            (Value::Int(a), Value::Int(b)) => a.cmp(b),
            (Value::Float(a), Value::Float(b)) => a.total_cmp(b),
            (Value::Str(a), Value::Str(b)) => a.cmp(b),
            (Value::Time { ns: a, zone: za }, Value::Time { ns: b, zone: zb }) => a.cmp(b).then(za.cmp(zb)),
            _ => self.rank().cmp(&other.rank()),
        }
    }

    /// Equal as typed: floats within a relative 1e-9 (sums and averages
    /// add in different orders), everything else exactly.
    fn same(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Float(a), Value::Float(b)) => a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()),
            (Value::Null, Value::Null) => true,
            _ => self.rank() == other.rank() && self.order(other) == Ordering::Equal,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Value::Null => write!(f, "NULL"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}i"),
            Value::Float(x) => write!(f, "{x:?}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Time { ns, zone } => {
                let t = chrono::DateTime::from_timestamp_nanos(*ns).format("%Y-%m-%dT%H:%M:%S%.9f");
                write!(f, "{t}{}", zone.as_deref().map_or(String::new(), |z| format!("[{z}]")))
            }
        }
    }
}

type Row = Vec<Value>;

/// Every value of a column in canonical form.
fn column_values(array: &ArrayRef) -> Vec<Value> {
    // Casts to the canonical type, then reads each non-null value with `read`.
    fn each(array: &ArrayRef, to: &DataType, read: impl Fn(&ArrayRef, usize) -> Value) -> Vec<Value> {
        let array = cast(array, to).unwrap();
        (0..array.len()).map(|i| if array.is_null(i) { Value::Null } else { read(&array, i) }).collect()
    }
    match array.data_type() {
        DataType::Dictionary(_, _) | DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            each(array, &DataType::Utf8, |a, i| Value::Str(a.as_string::<i32>().value(i).to_string()))
        }
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Decimal128(_, 0) => {
            each(array, &DataType::Decimal128(38, 0), |a, i| Value::Int(a.as_primitive::<Decimal128Type>().value(i)))
        }
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            each(array, &DataType::Float64, |a, i| Value::Float(a.as_primitive::<Float64Type>().value(i)))
        }
        DataType::Timestamp(_, zone) => {
            let to = DataType::Timestamp(TimeUnit::Nanosecond, zone.clone());
            let zone = zone.as_ref().map(|z| z.to_string());
            each(array, &to, |a, i| Value::Time {
                ns: a.as_primitive::<TimestampNanosecondType>().value(i),
                zone: zone.clone(),
            })
        }
        DataType::Boolean => each(array, &DataType::Boolean, |a, i| Value::Bool(a.as_boolean().value(i))),
        DataType::Null => vec![Value::Null; array.len()],
        other => panic!("no canonical form for {other}"),
    }
}

/// The rows of `batches`, each value in canonical form, and the column count.
fn canonical(batches: &[RecordBatch]) -> (usize, Vec<Row>) {
    let width = batches.first().map_or(0, |b| b.num_columns());
    let mut rows = Vec::new();
    for batch in batches {
        assert_eq!(batch.num_columns(), width);
        let columns: Vec<Vec<Value>> = batch.columns().iter().map(column_values).collect();
        for r in 0..batch.num_rows() {
            rows.push(columns.iter().map(|c| c[r].clone()).collect());
        }
    }
    (width, rows)
}

fn sort_rows(rows: &mut [Row]) {
    rows.sort_by(|a, b| a.iter().zip(b).map(|(x, y)| x.order(y)).find(|o| o.is_ne()).unwrap_or(Ordering::Equal));
}

fn show(rows: &[Row]) -> String {
    const SHOWN: usize = 40;
    let mut out: Vec<String> = rows
        .iter()
        .take(SHOWN)
        .map(|r| format!("    {}", r.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(" | ")))
        .collect();
    if rows.len() > SHOWN {
        out.push(format!("    ... {} more", rows.len() - SHOWN));
    }
    out.join("\n")
}

/// None when quipu's and DuckDB's results agree; otherwise what differs.
fn compare(order: Rows, quipu: &[RecordBatch], duckdb: &[RecordBatch]) -> Option<String> {
    let (q_width, mut q) = canonical(quipu);
    let (d_width, mut d) = canonical(duckdb);
    if order == Set {
        sort_rows(&mut q);
        sort_rows(&mut d);
    }
    let difference = if q.is_empty() || d.is_empty() {
        Some(format!("no rows (quipu {}, duckdb {}): every query must return some", q.len(), d.len()))
    } else if q_width != d_width {
        Some(format!("{q_width} columns from quipu, {d_width} from duckdb"))
    } else if q.len() != d.len() {
        Some(format!("{} rows from quipu, {} from duckdb", q.len(), d.len()))
    } else {
        q.iter()
            .zip(&d)
            .position(|(a, b)| !a.iter().zip(b).all(|(x, y)| x.same(y)))
            .map(|i| format!("row {i} differs ({})", if order == Set { "rows sorted" } else { "in query order" }))
    };
    difference.map(|what| format!("{what}\n  quipu:\n{}\n  duckdb:\n{}", show(&q), show(&d)))
}

fn quipu_sql(runtime: &tokio::runtime::Runtime, engine: &Engine, sql: &str) -> Result<Vec<RecordBatch>, String> {
    runtime.block_on(async {
        let mut stream = quipu::sql::query(engine, DB, sql).await.map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        while let Some(batch) = stream.next().await {
            out.push(batch.map_err(|e| e.to_string())?);
        }
        Ok(out)
    })
}

/// Runs every query in DuckDB over the export; query i's result is `<out>/<i>.parquet`.
fn duckdb(export_dir: &Path, queries_json: &Path, out: &Path) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/sql_duckdb.py");
    let run = Command::new("python3")
        .arg(script)
        .arg(export_dir)
        .arg(queries_json)
        .arg(out)
        .output()
        .unwrap_or_else(|e| panic!("python3 is needed (scripts/test installs duckdb and pyarrow): {e}"));
    assert!(
        run.status.success(),
        "sql_duckdb.py: {}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
}

#[test]
fn quipu_sql_gives_the_rows_duckdb_gives_over_the_parquet_export() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let engine = load(&dir.path().join("data"));
    let export_dir = dir.path().join("export");
    export(&engine, &export_dir);

    let queries_json = dir.path().join("queries.json");
    let list: Vec<serde_json::Value> =
        QUERIES.iter().map(|(name, _, sql)| serde_json::json!({ "name": name, "sql": sql })).collect();
    std::fs::write(&queries_json, serde_json::to_vec(&list).unwrap()).unwrap();
    let out = dir.path().join("duckdb");
    std::fs::create_dir(&out).unwrap();
    duckdb(&export_dir, &queries_json, &out);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut failures = Vec::new();
    for (i, (name, order, sql)) in QUERIES.iter().enumerate() {
        let theirs = common::read_parquet(std::fs::read(out.join(format!("{i}.parquet"))).unwrap());
        let report = match quipu_sql(&runtime, &engine, sql) {
            Ok(ours) => compare(*order, &ours, &theirs),
            Err(e) => Some(format!("quipu failed: {e}")),
        };
        if let Some(report) = report {
            failures.push(format!("query {i} \"{name}\":\n  {sql}\n  {report}"));
        }
    }
    assert!(QUERIES.len() >= 20);
    assert!(
        failures.is_empty(),
        "{} of {} queries differ:\n\n{}",
        failures.len(),
        QUERIES.len(),
        failures.join("\n\n")
    );
    eprintln!("{} queries agree with duckdb in {:?}", QUERIES.len(), started.elapsed());
}
