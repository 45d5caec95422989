//! SQL through the DataFusion `TableProvider` (`quipu::sql`): results equal
//! what the engine's scan gives for the same question, across buffered,
//! flushed and compacted data; time ranges and tag equalities reach the
//! scan (the physical plan shows them); bad SQL, an unknown table or column
//! and an unknown database are typed errors.
#![cfg(feature = "sql")]

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int64Type};
use futures::StreamExt;
use quipu::{Engine, Precision, ScanRequest, WriteOptions};

const DAY: i64 = 86_400 * 1_000_000_000;
const HOUR: i64 = 3_600 * 1_000_000_000;
const STEP: i64 = 600 * 1_000_000_000;

/// Three days of `cpu` every 10 minutes for 4 hosts: two compacted days, a
/// flushed one, and a few rows still in the buffer.
fn loaded() -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::builder(dir.path()).background(false).open().unwrap();
    let write = |from: i64, to: i64| {
        let mut lp = String::new();
        let mut t = from;
        while t < to {
            for h in 0..4i64 {
                let i = t / (600 * 1_000_000_000);
                lp.push_str(&format!("cpu,host=h{h},dc=d{} usage={}.25,n={}i {t}\n", h % 2, (i * 7 + h) % 100, i + h));
            }
            t += 600 * 1_000_000_000;
        }
        engine.write_lp("db", &lp, Precision::Nanosecond, WriteOptions::default()).unwrap();
    };
    write(0, 2 * DAY);
    engine.flush().unwrap();
    engine.compact().unwrap();
    write(2 * DAY, 3 * DAY - HOUR);
    engine.flush().unwrap();
    write(3 * DAY - HOUR, 3 * DAY);
    (dir, engine)
}

fn run(engine: &Engine, sql: &str) -> quipu::Result<Vec<RecordBatch>> {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut stream = quipu::sql::query(engine, "db", sql).await?;
        let mut out = Vec::new();
        while let Some(batch) = stream.next().await {
            out.push(batch.map_err(|e| quipu::Error::Query(e.to_string()))?);
        }
        Ok(out)
    })
}

fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(|b| b.num_rows()).sum()
}

fn scan_rows(engine: &Engine, req: &ScanRequest) -> usize {
    rows(&engine.scan("db", "cpu", req).unwrap())
}

fn i64s(batches: &[RecordBatch], col: usize) -> Vec<i64> {
    batches.iter().flat_map(|b| b.column(col).as_primitive::<Int64Type>().values().to_vec()).collect()
}

#[test]
fn counts_sums_and_groups_equal_the_scan() {
    let (_dir, engine) = loaded();
    let all = engine.scan("db", "cpu", &ScanRequest::all()).unwrap();
    let total = rows(&all);
    assert_eq!(total, 3 * 144 * 4);
    assert_eq!(i64s(&run(&engine, "SELECT count(*) FROM cpu").unwrap(), 0), vec![total as i64]);

    let n_sum: i64 = all
        .iter()
        .map(|b| {
            let i = b.schema().index_of("n").unwrap();
            b.column(i).as_primitive::<Int64Type>().values().iter().sum::<i64>()
        })
        .sum();
    assert_eq!(i64s(&run(&engine, "SELECT sum(n) FROM cpu").unwrap(), 0), vec![n_sum]);

    let per_host = run(&engine, "SELECT host, count(*) AS c FROM cpu GROUP BY host ORDER BY host").unwrap();
    assert_eq!(i64s(&per_host, 1), vec![3 * 144; 4]);
    let hosts: Vec<String> = per_host
        .iter()
        .flat_map(|b| {
            let col = arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Utf8).unwrap();
            col.as_string::<i32>().iter().map(|s| s.unwrap().to_string()).collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(hosts, ["h0", "h1", "h2", "h3"]);
}

#[test]
fn time_ranges_and_tags_reach_the_scan_and_give_its_rows() {
    let (_dir, engine) = loaded();
    let cases = [
        ("time >= to_timestamp_nanos(86400000000000) AND time < to_timestamp_nanos(90000000000000)", DAY, DAY + HOUR),
        ("time BETWEEN to_timestamp_nanos(0) AND to_timestamp_nanos(3599999999999)", 0, HOUR),
        ("time > to_timestamp_nanos(255599999999999)", 3 * DAY - HOUR, i64::MAX),
        ("time >= '1970-01-02T00:00:00Z' AND time < '1970-01-02T01:00:00Z'", DAY, DAY + HOUR),
    ];
    for (predicate, start, end) in cases {
        let expected = scan_rows(&engine, &ScanRequest::all().time_range(start, end));
        assert!(expected > 0, "{predicate}");
        let got = run(&engine, &format!("SELECT count(*) FROM cpu WHERE {predicate}")).unwrap();
        assert_eq!(i64s(&got, 0), vec![expected as i64], "{predicate}");
    }
    let expected = scan_rows(&engine, &ScanRequest::all().tag_eq("host", "h2").time_range(2 * DAY, 3 * DAY));
    let got = run(
        &engine,
        "SELECT count(*) FROM cpu WHERE host = 'h2' AND time >= to_timestamp_nanos(172800000000000) \
         AND time < to_timestamp_nanos(259200000000000)",
    )
    .unwrap();
    assert_eq!(i64s(&got, 0), vec![expected as i64]);

    // The scan in the physical plan carries the range and the tag.
    let plan =
        run(&engine, "EXPLAIN SELECT usage FROM cpu WHERE host = 'h2' AND time >= to_timestamp_nanos(5)").unwrap();
    let text: String = plan
        .iter()
        .flat_map(|b| b.column(1).as_string::<i32>().iter().map(|s| s.unwrap_or("").to_string()).collect::<Vec<_>>())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(text.contains("QuipuScan: db.cpu, time=[5, 9223372036854775807]"), "{text}");
    assert!(text.contains(r#"tags=[("host", "h2")]"#), "{text}");
    // RFC 3339 strings, as users write them, are pushed down too.
    let plan = run(&engine, "EXPLAIN SELECT usage FROM cpu WHERE time >= '1970-01-02T00:00:00Z'").unwrap();
    let text: String = plan
        .iter()
        .flat_map(|b| b.column(1).as_string::<i32>().iter().map(|s| s.unwrap_or("").to_string()).collect::<Vec<_>>())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(text.contains(&format!("time=[{DAY}, 9223372036854775807]")), "{text}");
}

#[test]
fn projections_limits_and_date_bin_work() {
    let (_dir, engine) = loaded();
    let got = run(&engine, "SELECT usage FROM cpu WHERE host = 'h0' ORDER BY time LIMIT 3").unwrap();
    assert_eq!(got[0].num_columns(), 1);
    assert_eq!(rows(&got), 3);
    let values: Vec<f64> =
        got.iter().flat_map(|b| b.column(0).as_primitive::<Float64Type>().values().to_vec()).collect();
    assert_eq!(values, [0.25, 7.25, 14.25]);

    assert_eq!(rows(&run(&engine, "SELECT * FROM cpu LIMIT 5").unwrap()), 5);

    let hourly = run(
        &engine,
        "SELECT date_bin(INTERVAL '1 hour', time) AS hour, count(*) AS c FROM cpu \
         WHERE time < to_timestamp_nanos(86400000000000) GROUP BY 1 ORDER BY 1",
    )
    .unwrap();
    assert_eq!(rows(&hourly), 24);
    assert_eq!(i64s(&hourly, 1), vec![6 * 4; 24]);
    assert!(hourly[0].column(0).null_count() == 0);
}

/// A row exists through any of its fields: selecting fields that are all
/// null in it (in the same family, in another family, in a file or in the
/// buffer) still returns it, with nulls, as SQL over the table must.
#[test]
fn rows_whose_selected_fields_are_null_are_returned() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::builder(dir.path()).background(false).open().unwrap();
    let lp = "t,k=a x=1,y=10 1\n\
              t,k=a y=20 2\n\
              t,k=a fam::z=3 3\n\
              t,k=b fam::z=4,fam::w=5i 4\n";
    engine.write_lp("db", lp, Precision::Nanosecond, WriteOptions::default()).unwrap();
    let check = |when: &str| {
        let q = |sql: &str| run(&engine, sql).unwrap();
        assert_eq!(rows(&q("SELECT time, x FROM t")), 4, "{when}: x alone");
        assert_eq!(rows(&q("SELECT time, w FROM t")), 4, "{when}: a family field alone");
        assert_eq!(i64s(&q("SELECT count(*) FROM t WHERE x IS NULL"), 0), vec![3], "{when}");
        assert_eq!(i64s(&q("SELECT count(y) FROM t"), 0), vec![2], "{when}");
        let got = q("SELECT k, w FROM t ORDER BY time");
        assert_eq!(rows(&got), 4, "{when}");
        // The engine's own scan leaves such rows out unless asked.
        let req = ScanRequest::all().columns(["x"]);
        assert_eq!(rows(&engine.scan("db", "t", &req).unwrap()), 1, "{when}");
        assert_eq!(rows(&engine.scan("db", "t", &req.keep_null_rows()).unwrap()), 4, "{when}");
    };
    check("buffered");
    engine.flush().unwrap();
    check("flushed");
    engine.compact().unwrap();
    check("compacted");
}

#[test]
fn bad_queries_are_typed_errors() {
    let (_dir, engine) = loaded();
    for sql in [
        "SELEC * FROM cpu",
        "SELECT * FROM nope",
        "SELECT nope FROM cpu",
        "DROP TABLE cpu",
        "INSERT INTO cpu VALUES (1)",
    ] {
        match run(&engine, sql) {
            Err(quipu::Error::Query(message)) => assert!(!message.is_empty(), "{sql}"),
            other => panic!("{sql}: {other:?}"),
        }
    }
    let missing = tokio::runtime::Runtime::new().unwrap().block_on(quipu::sql::query(&engine, "nodb", "SELECT 1"));
    assert!(matches!(missing, Err(quipu::Error::DatabaseNotFound { .. })));
    assert_eq!(scan_rows(&engine, &ScanRequest::all()), 3 * 144 * 4, "stored data untouched");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 48, ..Default::default() })]

    /// Any comparison of `time` with a literal, alone or two of them ANDed,
    /// with or without a tag, counts exactly the rows the predicate holds
    /// for: a pushed-down range never drops a row the predicate keeps.
    #[test]
    fn pushed_down_predicates_keep_every_matching_row(
        // On, or one ns beside, the 10-minute points the data sits on.
        (ka, da) in (-6i64..440, -1i64..=1),
        (kb, db) in (-6i64..440, -1i64..=1),
        op_a in 0usize..5,
        op_b in 0usize..6,
        host in proptest::option::of(0u8..5),
    ) {
        let (_dir, engine) = LOADED.with(|l| l.clone());
        let (a, b) = (ka * STEP + da, kb * STEP + db);
        let ops = ["<", "<=", ">", ">=", "="];
        let mut predicate = format!("time {} to_timestamp_nanos({a})", ops[op_a]);
        if let Some(op) = ops.get(op_b) {
            predicate.push_str(&format!(" AND time {op} to_timestamp_nanos({b})"));
        }
        if let Some(h) = host {
            predicate.push_str(&format!(" AND host = 'h{h}'"));
        }
        let holds = |t: i64, op: &str, v: i64| match op {
            "<" => t < v,
            "<=" => t <= v,
            ">" => t > v,
            ">=" => t >= v,
            _ => t == v,
        };
        let all = engine.scan("db", "cpu", &ScanRequest::all()).unwrap();
        let mut expected = 0i64;
        for batch in &all {
            let time = batch.column(batch.schema().index_of("time").unwrap()).as_primitive::<arrow::datatypes::TimestampNanosecondType>().clone();
            let hosts = arrow::compute::cast(batch.column(batch.schema().index_of("host").unwrap()), &arrow::datatypes::DataType::Utf8).unwrap();
            let hosts = hosts.as_string::<i32>();
            for row in 0..batch.num_rows() {
                let t = time.value(row);
                let keep = holds(t, ops[op_a], a)
                    && ops.get(op_b).is_none_or(|op| holds(t, op, b))
                    && host.is_none_or(|h| hosts.value(row) == format!("h{h}"));
                expected += i64::from(keep);
            }
        }
        let got = run(&engine, &format!("SELECT count(*) FROM cpu WHERE {predicate}")).unwrap();
        proptest::prop_assert_eq!(i64s(&got, 0), vec![expected], "{}", predicate);
    }
}

thread_local! {
    /// One loaded engine per test thread for the property test.
    static LOADED: (std::sync::Arc<tempfile::TempDir>, Engine) = {
        let (dir, engine) = loaded();
        (std::sync::Arc::new(dir), engine)
    };
}
