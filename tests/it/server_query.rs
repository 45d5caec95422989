//! The query endpoints on a real server: `/api/v3/query_sql` in every format
//! (each read back and compared with the engine's own scan), bind
//! parameters, v1 `/query` with `epoch` and `chunked`, the telemetry of the
//! last query, and every documented error status with its message.

use crate::common;
use crate::server_support;

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray};
use arrow::datatypes::Float64Type;
use common::read_parquet;
use quipu::{Precision, WriteOptions};
use server_support::{TestServer, bearer, client};

const DAY: i64 = 86_400 * 1_000_000_000;
const MIN: i64 = 60 * 1_000_000_000;

/// Two compacted days of `cpu` (3 hosts, a row a minute, a family field,
/// some rows without `usage`) and a buffered `mem` row.
fn loaded() -> TestServer {
    let server = TestServer::start();
    let mut lp = String::new();
    for day in 0..2 {
        for m in 0..120i64 {
            for h in 0..3i64 {
                let t = day * DAY + m * MIN;
                if m % 10 == 9 && h == 2 {
                    lp.push_str(&format!("cpu,host=h{h},dc=d{} n={}i {t}\n", h % 2, m));
                } else {
                    lp.push_str(&format!(
                        "cpu,host=h{h},dc=d{} usage={}.5,n={}i,ok={},disk::free={} {t}\n",
                        h % 2,
                        (m * 7 + h) % 100,
                        m,
                        m % 2 == 0,
                        m * 3
                    ));
                }
            }
        }
    }
    server.engine.write_lp("db", &lp, Precision::Nanosecond, WriteOptions::default()).unwrap();
    server.engine.flush().unwrap();
    server.engine.compact().unwrap();
    server.engine.write_lp("db", "mem,host=h0 used=5i 7\n", Precision::Nanosecond, WriteOptions::default()).unwrap();
    server
}

/// Status and JSON body; an error status must carry the `ErrorMessage` shape.
fn json(resp: reqwest::blocking::Response) -> (u16, serde_json::Value) {
    let status = resp.status().as_u16();
    if status >= 400 {
        return server_support::json(resp);
    }
    let ct = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    assert!(ct.starts_with("application/json"), "status {status}: content-type {ct:?}");
    (status, resp.json().unwrap())
}

fn get(server: &TestServer, path: &str, query: &[(&str, &str)]) -> reqwest::blocking::Response {
    client().get(server.url(path)).query(query).header("Authorization", bearer()).send().unwrap()
}

fn post_json(server: &TestServer, path: &str, body: serde_json::Value) -> reqwest::blocking::Response {
    client().post(server.url(path)).header("Authorization", bearer()).json(&body).send().unwrap()
}

fn sql_json(server: &TestServer, q: &str) -> Vec<serde_json::Value> {
    let (status, body) = json(get(server, "/api/v3/query_sql", &[("db", "db"), ("q", q)]));
    assert_eq!(status, 200, "{body}");
    body["results"].as_array().unwrap().clone()
}

#[test]
fn json_rows_equal_the_scan() {
    let server = loaded();
    let rows = sql_json(&server, "SELECT host, sum(usage) AS s, count(*) AS c FROM cpu GROUP BY host ORDER BY host");
    assert_eq!(rows.len(), 3);
    // The same figures from the engine's own scan.
    let req = quipu::ScanRequest::all().columns(["host", "usage"]).keep_null_rows();
    let batches = server.scan("db", "cpu", &req);
    let mut expect: BTreeMap<String, (f64, i64)> = BTreeMap::new();
    for b in &batches {
        let host = arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Utf8).unwrap();
        let usage = b.column(1).as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            let e = expect.entry(host.as_string::<i32>().value(i).to_string()).or_default();
            if usage.is_valid(i) {
                e.0 += usage.value(i);
            }
            e.1 += 1;
        }
    }
    for row in &rows {
        let (sum, count) = expect[row["host"].as_str().unwrap()];
        assert_eq!(row["s"].as_f64().unwrap(), sum);
        assert_eq!(row["c"].as_i64().unwrap(), count);
    }
}

#[test]
fn every_format_carries_the_same_rows() {
    let server = loaded();
    let q =
        "SELECT time, host, usage, ok, free FROM cpu WHERE host = 'h2' AND time < '1970-01-01T00:20:00Z' ORDER BY time";
    let json_rows = sql_json(&server, q);
    assert_eq!(json_rows.len(), 20);
    // A null is left out of its row object.
    assert_eq!(json_rows[9].get("usage"), None);
    assert_eq!(json_rows[0]["time"], "1970-01-01T00:00:00Z");
    assert_eq!(json_rows[1]["time"], "1970-01-01T00:01:00Z");
    assert_eq!(json_rows[0]["free"], 0.0);

    let resp = get(&server, "/api/v3/query_sql", &[("db", "db"), ("q", q), ("format", "jsonl")]);
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/jsonl");
    let lines: Vec<serde_json::Value> =
        resp.text().unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines, json_rows);

    let resp = get(&server, "/api/v3/query_sql", &[("db", "db"), ("q", q), ("format", "csv")]);
    assert_eq!(resp.status(), 200);
    let text = resp.text().unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "time,host,usage,ok,free");
    assert_eq!(lines.len(), 21);
    assert_eq!(lines[1], "1970-01-01T00:00:00Z,h2,2.5,true,0.0");
    assert_eq!(lines[10], "1970-01-01T00:09:00Z,h2,,,");

    let resp = get(&server, "/api/v3/query_sql", &[("db", "db"), ("q", q), ("format", "parquet")]);
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/vnd.apache.parquet");
    let batches = read_parquet(resp.bytes().unwrap().to_vec());
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 20);
    let usage: Vec<Option<f64>> =
        batches.iter().flat_map(|b| b.column_by_name("usage").unwrap().as_primitive::<Float64Type>().iter()).collect();
    let expect: Vec<Option<f64>> = json_rows.iter().map(|r| r.get("usage").map(|v| v.as_f64().unwrap())).collect();
    assert_eq!(usage, expect);

    let resp = get(&server, "/api/v3/query_sql", &[("db", "db"), ("q", q), ("format", "pretty")]);
    assert_eq!(resp.status(), 200);
    let text = resp.text().unwrap();
    assert!(text.lines().nth(1).unwrap().contains("| time"), "{text}");
    assert_eq!(text.lines().count(), 20 + 4);

    // The Accept header picks the format when `format` is absent.
    let resp = client()
        .get(server.url("/api/v3/query_sql"))
        .query(&[("db", "db"), ("q", q)])
        .header("Authorization", bearer())
        .header("Accept", "text/csv")
        .send()
        .unwrap();
    assert_eq!(resp.text().unwrap(), text_csv(&server, q));
}

fn text_csv(server: &TestServer, q: &str) -> String {
    get(server, "/api/v3/query_sql", &[("db", "db"), ("q", q), ("format", "csv")]).text().unwrap()
}

#[test]
fn post_body_and_bind_parameters() {
    let server = loaded();
    let body = serde_json::json!({
        "db": "db",
        "q": "SELECT count(*) AS c FROM cpu WHERE host = $host AND n >= $min",
        "format": "json",
        "params": {"host": "h1", "min": 100}
    });
    let (status, v) = json(post_json(&server, "/api/v3/query_sql", body));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["results"][0]["c"], 40);

    // Positional parameters; `params` as JSON text in the query string.
    let resp = get(
        &server,
        "/api/v3/query_sql",
        &[
            ("db", "db"),
            ("q", "SELECT count(*) AS c FROM cpu WHERE host = $1 AND ok = $2"),
            ("params", r#"{"1": "h0", "2": true}"#),
        ],
    );
    let (status, v) = json(resp);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["results"][0]["c"], 120);

    // A parameter the query does not define, an array value, and bad JSON.
    for (params, needle) in [(serde_json::json!({"nope": 1}), "$host"), (serde_json::json!({"host": [1, 2]}), "array")]
    {
        let body =
            serde_json::json!({"db": "db", "q": "SELECT count(*) FROM cpu WHERE host = $host", "params": params});
        let (status, v) = json(post_json(&server, "/api/v3/query_sql", body));
        assert_eq!(status, 400, "{v}");
        assert!(v["error"].as_str().unwrap().contains(needle), "{v}");
    }
    let resp = get(&server, "/api/v3/query_sql", &[("db", "db"), ("q", "SELECT 1"), ("params", "{")]);
    let (status, v) = json(resp);
    assert_eq!(status, 400);
    assert!(v["error"].as_str().unwrap().contains("params"), "{v}");
}

#[test]
fn bad_queries_are_documented_errors() {
    let server = loaded();
    type Case<'a> = (&'a [(&'a str, &'a str)], u16, &'a str);
    let cases: &[Case] = &[
        (&[("db", "db"), ("q", "SELEC nope")], 400, "SELEC"),
        (&[("db", "db"), ("q", "SELECT * FROM nope")], 400, "nope"),
        (&[("db", "db"), ("q", "SELECT nope FROM cpu")], 400, "nope"),
        (&[("db", "db"), ("q", "DROP TABLE cpu")], 400, "DDL"),
        (&[("db", "db"), ("q", "INSERT INTO cpu (host) VALUES ('x')")], 400, "DML"),
        (&[("db", "missing"), ("q", "SELECT 1")], 404, "missing"),
        (&[("q", "SELECT 1")], 400, "db"),
        (&[("db", "db")], 400, "q"),
        (&[("db", "db"), ("q", "SELECT 1"), ("format", "xml")], 400, "format"),
        // Fails while running, before the first row: still a status.
        (&[("db", "db"), ("q", "SELECT CAST(host AS INT) FROM cpu")], 400, "Cast"),
    ];
    for (query, status, needle) in cases {
        let (got, v) = json(get(&server, "/api/v3/query_sql", query));
        assert_eq!(got, *status, "{query:?}: {v}");
        let message = v["error"].as_str().unwrap();
        assert!(message.to_lowercase().contains(&needle.to_lowercase()), "{query:?}: {message}");
        assert!(v.get("data").is_some(), "{v}");
    }
    let resp = client()
        .post(server.url("/api/v3/query_sql"))
        .header("Authorization", bearer())
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .unwrap();
    assert_eq!(json(resp).0, 400);
    // Nothing stored was harmed.
    assert_eq!(sql_json(&server, "SELECT count(*) AS c FROM cpu")[0]["c"], 720);
}

#[test]
fn v1_query_shapes_epoch_and_chunks() {
    let server = loaded();
    let q = "SELECT time, usage FROM cpu WHERE host = 'h0' ORDER BY time LIMIT 3";
    let (status, v) = json(get(&server, "/query", &[("db", "db"), ("q", q)]));
    assert_eq!(status, 200, "{v}");
    let series = &v["results"][0]["series"][0];
    assert_eq!(v["results"][0]["statement_id"], 0);
    assert_eq!(series["name"], "cpu");
    assert_eq!(series["columns"], serde_json::json!(["time", "usage"]));
    assert_eq!(series["values"][1], serde_json::json!(["1970-01-01T00:01:00Z", 7.5]));

    let (_, v) = json(get(&server, "/query", &[("db", "db"), ("q", q), ("epoch", "s")]));
    assert_eq!(v["results"][0]["series"][0]["values"][2], serde_json::json!([120, 14.5]));

    // No rows: a result without series.
    let (_, v) = json(get(&server, "/query", &[("db", "db"), ("q", "SELECT usage FROM cpu WHERE host = 'none'")]));
    assert_eq!(v, serde_json::json!({"results": [{"statement_id": 0}]}));

    // Chunked: a document per 100 rows, all but the last partial.
    let resp = get(
        &server,
        "/query",
        &[("db", "db"), ("q", "SELECT n FROM cpu WHERE host = 'h1'"), ("chunked", "true"), ("chunk_size", "100")],
    );
    assert_eq!(resp.status(), 200);
    let docs: Vec<serde_json::Value> = resp.text().unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(docs.len(), 3);
    let counts: Vec<usize> =
        docs.iter().map(|d| d["results"][0]["series"][0]["values"].as_array().unwrap().len()).collect();
    assert_eq!(counts, vec![100, 100, 40]);
    assert_eq!(docs[0]["results"][0]["partial"], true);
    assert_eq!(docs[2]["results"][0].get("partial"), None);

    // A form body, as v1 clients send it, and CSV by Accept.
    let resp = client()
        .post(server.url("/query"))
        .header("Authorization", bearer())
        .header("Accept", "application/csv")
        .form(&[("db", "db"), ("q", q)])
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/csv");
    let text = resp.text().unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "name,tags,time,usage");
    assert_eq!(lines[2], format!("cpu,,{},7.5", MIN));

    // Errors: unknown database, bad epoch, InfluxQL-only syntax.
    assert_eq!(json(get(&server, "/query", &[("db", "nope"), ("q", "SELECT 1")])).0, 404);
    assert_eq!(json(get(&server, "/query", &[("db", "db"), ("q", q), ("epoch", "d")])).0, 400);
    let (status, v) =
        json(get(&server, "/query", &[("db", "db"), ("q", "SELECT mean(usage) FROM cpu GROUP BY time(1m)")]));
    assert_eq!(status, 400, "{v}");
}

#[test]
fn telemetry_reports_the_last_query() {
    let server = loaded();
    let (status, _) = json(get(&server, "/api/v3/query_sql_telemetry", &[]));
    assert_eq!(status, 404, "no query yet");

    let q = "SELECT count(*) AS c FROM cpu WHERE host = 'h0' AND time >= '1970-01-02T00:00:00Z'";
    assert_eq!(sql_json(&server, q)[0]["c"], 120);
    let (status, t) = json(get(&server, "/api/v3/query_sql_telemetry", &[]));
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["state"], "finished");
    assert_eq!(t["query"], q);
    assert_eq!(t["database"], "db");
    let chunks = t["chunks"].as_array().unwrap();
    assert_eq!(chunks.len(), 1);
    let c = &chunks[0];
    assert_eq!(c["table"], "cpu");
    assert_eq!(c["time_range"]["start_ns"], DAY);
    assert_eq!(c["tag_filters"]["host"], "h0");
    // One of the two compacted days, one of three series.
    assert_eq!(c["files_scanned"], 1);
    assert_eq!(c["rows_returned"], 120);
    assert!(c["rows_read"].as_u64().unwrap() >= 120);
    assert!(c["blocks_processed"].as_u64().unwrap() >= 1);
    assert!(c["bytes_read"].as_u64().unwrap() > 0);
    let cache = &t["cache"];
    let compacted = cache["compacted"]["hits"].as_u64().unwrap() + cache["compacted"]["misses"].as_u64().unwrap();
    assert_eq!(compacted, c["blocks_processed"].as_u64().unwrap());
    assert_eq!(t["totals"]["rows_returned"], 120);

    // A failed query is the last one too.
    assert_eq!(json(get(&server, "/api/v3/query_sql", &[("db", "db"), ("q", "SELECT nope FROM cpu")])).0, 400);
    let (_, t) = json(get(&server, "/api/v3/query_sql_telemetry", &[]));
    assert_eq!(t["state"], "failed");
    assert!(t["error"].as_str().unwrap().contains("nope"));

    // The buffered table is read from the write buffer.
    assert_eq!(sql_json(&server, "SELECT used FROM mem")[0]["used"], 5);
    let (_, t) = json(get(&server, "/api/v3/query_sql_telemetry", &[]));
    assert_eq!(t["chunks"][0]["buffer_rows"], 1);
    assert_eq!(t["chunks"][0]["files_scanned"], 0);
}

#[test]
fn a_large_result_streams() {
    let server = TestServer::start();
    let mut lp = String::new();
    for i in 0..200_000i64 {
        lp.push_str(&format!("big,k=k{} v={i}i {i}\n", i % 7));
        if lp.len() > 4 << 20 {
            server.engine.write_lp("db", &lp, Precision::Nanosecond, WriteOptions::default()).unwrap();
            lp.clear();
        }
    }
    server.engine.write_lp("db", &lp, Precision::Nanosecond, WriteOptions::default()).unwrap();
    server.engine.flush().unwrap();
    server.engine.compact().unwrap();
    let resp = get(&server, "/api/v3/query_sql", &[("db", "db"), ("q", "SELECT v FROM big"), ("format", "jsonl")]);
    assert_eq!(resp.status(), 200);
    // Chunked transfer: the length was not known when the answer started.
    assert!(resp.headers().get("content-length").is_none());
    let mut sum = 0i64;
    let mut n = 0;
    for line in resp.text().unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        sum += v["v"].as_i64().unwrap();
        n += 1;
    }
    assert_eq!(n, 200_000);
    assert_eq!(sum, (0..200_000i64).sum::<i64>());
    // `pretty` cannot stream and says so past its cap.
    let (status, v) =
        json(get(&server, "/api/v3/query_sql", &[("db", "db"), ("q", "SELECT v FROM big"), ("format", "pretty")]));
    assert_eq!(status, 400);
    assert!(v["error"].as_str().unwrap().contains("pretty"), "{v}");
}
