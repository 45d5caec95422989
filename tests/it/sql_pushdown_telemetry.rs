//! Pushdown proven by what a query read: on three days of data, a one-hour
//! query touches only the file of its day and only the blocks of its hour,
//! as `/api/v3/query_sql_telemetry` reports; with compacted files and with
//! gen0 files; and the rows are the right ones.

use crate::server_support;

use quipu::{Precision, WriteOptions};
use server_support::{TestServer, bearer, client};

const DAY: i64 = 86_400 * 1_000_000_000;
const SEC: i64 = 1_000_000_000;

/// Three days of `cpu`, 20 hosts every 10 s; each day flushed on its own,
/// then compacted unless `compact` is false.
fn three_days(compact: bool) -> TestServer {
    let server = TestServer::start();
    for day in 0..3i64 {
        let mut lp = String::new();
        let mut t = day * DAY;
        while t < (day + 1) * DAY {
            for h in 0..20 {
                lp.push_str(&format!("cpu,host=h{h} usage={}.5 {t}\n", (t / SEC + h) % 100));
            }
            t += 10 * SEC;
        }
        server.engine.write_lp("db", &lp, Precision::Nanosecond, WriteOptions::default()).unwrap();
        server.engine.flush().unwrap();
    }
    if compact {
        server.engine.compact().unwrap();
    }
    server
}

fn query(server: &TestServer, q: &str) -> (serde_json::Value, serde_json::Value) {
    let resp = client()
        .get(server.url("/api/v3/query_sql"))
        .query(&[("db", "db"), ("q", q)])
        .header("Authorization", bearer())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let rows: serde_json::Value = resp.json().unwrap();
    let t: serde_json::Value = client()
        .get(server.url("/api/v3/query_sql_telemetry"))
        .header("Authorization", bearer())
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(t["query"], q);
    assert_eq!(t["state"], "finished");
    (rows["results"].clone(), t)
}

fn u(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

fn one_hour_touches_one_file(compact: bool) {
    let server = three_days(compact);
    let level = if compact { "compacted" } else { "gen0" };

    let (rows, whole) = query(&server, "SELECT count(*) AS n FROM cpu");
    assert_eq!(rows[0]["n"], 3 * 8640 * 20);
    assert_eq!(u(&whole["totals"]["files_scanned"]), 3, "{level}: {whole}");
    let all_blocks = u(&whole["totals"]["blocks_processed"]);

    // One hour of the middle day.
    let q = "SELECT count(*) AS n, min(time) AS lo, max(time) AS hi FROM cpu \
             WHERE time >= '1970-01-02T05:00:00Z' AND time < '1970-01-02T06:00:00Z'";
    let (rows, t) = query(&server, q);
    assert_eq!(rows[0]["n"], 360 * 20, "{level}");
    assert_eq!(rows[0]["lo"], "1970-01-02T05:00:00Z");
    assert_eq!(rows[0]["hi"], "1970-01-02T05:59:50Z");
    let chunk = &t["chunks"][0];
    assert_eq!(chunk["time_range"]["start_ns"], DAY + 5 * 3600 * SEC, "{level}: {t}");
    assert_eq!(chunk["time_range"]["end_ns"], DAY + 6 * 3600 * SEC);
    assert_eq!(u(&chunk["files_scanned"]), 1, "{level}: only the middle day's file: {t}");
    // Rows are stored series by series, so an hour of every host lies in
    // every block of its day's file: all of that file, none of the others.
    let blocks = u(&chunk["blocks_processed"]);
    assert_eq!(blocks * 3, all_blocks, "{level}: {t}");
    assert_eq!(u(&chunk["rows_read"]), 8640 * 20, "{level}: one day's rows decoded: {t}");
    assert_eq!(u(&chunk["rows_returned"]), 360 * 20, "{level}: {t}");
    // count(*) reads no field: only time blocks are read.
    assert!(u(&chunk["bytes_read"]) < u(&whole["totals"]["bytes_read"]), "{level}: {t}");
    let cache = &t["cache"][level];
    assert_eq!(u(&cache["hits"]) + u(&cache["misses"]), blocks, "{level}: every block is a hit or a miss: {t}");
    let other = &t["cache"][if compact { "gen0" } else { "compacted" }];
    assert_eq!(u(&other["hits"]) + u(&other["misses"]), 0, "{level}: {t}");

    // A host filter narrows the same hour to the block holding that series.
    let q = "SELECT count(*) AS n, avg(usage) AS a FROM cpu WHERE host = 'h7' \
             AND time >= '1970-01-02T05:00:00Z' AND time < '1970-01-02T06:00:00Z'";
    let (rows, t) = query(&server, q);
    assert_eq!(rows[0]["n"], 360);
    let chunk = &t["chunks"][0];
    assert_eq!(chunk["tag_filters"]["host"], "h7");
    assert_eq!(u(&chunk["files_scanned"]), 1, "{level}: {t}");
    assert_eq!(u(&chunk["rows_returned"]), 360, "{level}: {t}");
    assert!(u(&chunk["blocks_processed"]) < blocks, "{level}: fewer blocks than the hour of every host: {t}");
    assert!(u(&chunk["rows_read"]) < 8640 * 20, "{level}: {t}");

    // Outside the data: nothing is read at all.
    let (rows, t) = query(&server, "SELECT count(*) AS n FROM cpu WHERE time >= '1971-01-01T00:00:00Z'");
    assert_eq!(rows[0]["n"], 0);
    assert_eq!(u(&t["totals"]["files_scanned"]), 0, "{t}");
    assert_eq!(u(&t["totals"]["blocks_processed"]), 0, "{t}");
}

#[test]
fn one_hour_of_three_compacted_days_reads_one_file() {
    one_hour_touches_one_file(true);
}

#[test]
fn one_hour_of_three_gen0_days_reads_one_file() {
    one_hour_touches_one_file(false);
}
