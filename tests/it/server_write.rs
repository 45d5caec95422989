//! The write endpoints: statuses, JSON bodies, precisions, gzip, limits.
#![cfg(feature = "server")]

use crate::server_support as common;

use common::{TestServer, bearer, client, gzip, json};
use serde_json::json;

fn post(server: &TestServer, path: &str, body: impl Into<reqwest::blocking::Body>) -> reqwest::blocking::Response {
    client().post(server.url(path)).header("Authorization", bearer()).body(body).send().unwrap()
}

#[test]
fn v3_write_is_204_and_scannable() {
    let server = TestServer::start();
    let body = "cpu,host=a usage=85.2 1638360000000000000\ncpu,host=b usage=12.5 1638360000000000000\n";
    let resp = post(&server, "/api/v3/write_lp?db=sensors", body);
    assert_eq!(resp.status().as_u16(), 204);
    assert_eq!(resp.text().unwrap(), "");
    assert_eq!(server.rows("sensors", "cpu"), 2);
    let batches = server.engine.scan("sensors", "cpu", &quipu::ScanRequest::all().tag_eq("host", "a")).unwrap();
    let text = format!("{batches:?}");
    assert!(text.contains("85.2"), "{text}");

    let resp =
        post(&server, "/api/v3/write_lp?db=sensors&precision=second&no_sync=true", "cpu,host=c usage=1 1638360000");
    assert_eq!(resp.status().as_u16(), 204);
    assert_eq!(server.rows("sensors", "cpu"), 3);
}

#[test]
fn v3_accept_partial_default_true_writes_good_lines() {
    let server = TestServer::start();
    let body = "cpu,host=a usage=1 1638360000000000000\ncpu,host=b usage= 1638360000000000000\ncpu,host=c usage=3 1638360000000000000";
    let (status, body) = json(post(&server, "/api/v3/write_lp?db=db1", body));
    assert_eq!(status, 400);
    assert_eq!(body["error"], "partial write of line protocol occurred");
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["line_number"], 2);
    assert_eq!(data[0]["original_line"], "cpu,host=b usage= 1638360000000000000");
    assert!(data[0]["error_message"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(server.rows("db1", "cpu"), 2);
}

#[test]
fn v3_accept_partial_false_writes_nothing() {
    let server = TestServer::start();
    let body = "cpu,host=a usage=1 1638360000000000000\nbad line\ncpu,host=c usage=3 1638360000000000000\nalso bad";
    let (status, body) = json(post(&server, "/api/v3/write_lp?db=db1&accept_partial=false", body));
    assert_eq!(status, 400);
    assert_eq!(body["error"], "parsing failed for write_lp endpoint");
    assert_eq!(body["data"]["line_number"], 2, "{body}");
    assert_eq!(body["data"]["original_line"], "bad line");
    assert!(body["data"]["error_message"].is_string());
    assert_eq!(server.rows("db1", "cpu"), 0);
}

#[test]
fn v3_every_line_bad_with_accept_partial_is_parsing_failed() {
    let server = TestServer::start();
    let (status, body) = json(post(&server, "/api/v3/write_lp?db=db1&accept_partial=true", "x\ny"));
    assert_eq!(status, 400);
    assert_eq!(body["error"], "parsing failed for write_lp endpoint");
    assert_eq!(body["data"]["line_number"], 1);
    assert_eq!(body["data"]["original_line"], "x");
}

#[test]
fn partial_lists_at_most_100_lines() {
    let server = TestServer::start();
    let mut body = String::from("cpu,host=a usage=1 1638360000000000000\n");
    for i in 0..150 {
        body.push_str(&format!("bad{i}\n"));
    }
    let (status, json) = json(post(&server, "/api/v3/write_lp?db=db1", body));
    assert_eq!(status, 400);
    assert_eq!(json["data"].as_array().unwrap().len(), 100);
    assert_eq!(json["data"][0]["line_number"], 2);
}

#[test]
fn bad_precision_missing_db_bad_db_and_bad_booleans_are_400() {
    let server = TestServer::start();
    let line = "cpu,host=a usage=1 1638360000";
    for path in [
        "/api/v3/write_lp?db=db1&precision=hours",
        "/api/v3/write_lp?db=db1&precision=%C2%B5",
        "/api/v3/write_lp?db=db1&precision=",
        "/api/v3/write_lp",
        "/api/v3/write_lp?db=",
        "/api/v3/write_lp?db=no%2Fslash",
        "/api/v3/write_lp?db=db1&accept_partial=yes",
        "/api/v3/write_lp?db=db1&no_sync=1",
        "/api/v3/write_lp?db=db1&db=db2",
        "/api/v2/write?bucket=db1&precision=auto",
        "/api/v2/write?bucket=db1&precision=second",
        "/api/v2/write?bucket=db1&precision=h",
        "/api/v2/write",
        "/write?db=db1&precision=m",
        "/write?db=db1&precision=h",
        "/write?precision=s",
        "/write?db=bad%20name",
    ] {
        let (status, body) = json(post(&server, path, line));
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["data"], serde_json::Value::Null, "{path}");
    }
    assert_eq!(server.rows("db1", "cpu"), 0);
}

#[test]
fn v3_precisions() {
    let server = TestServer::start();
    let cases = [
        ("auto", "1638360000"),
        ("second", "1638360001"),
        ("s", "1638360002"),
        ("millisecond", "1638360003000"),
        ("ms", "1638360004000"),
        ("microsecond", "1638360005000000"),
        ("us", "1638360006000000"),
        ("u", "1638360007000000"),
        ("nanosecond", "1638360008000000000"),
        ("ns", "1638360009000000000"),
        ("n", "1638360010000000000"),
    ];
    for (p, ts) in cases {
        let resp = post(&server, &format!("/api/v3/write_lp?db=db1&precision={p}"), format!("cpu,host=a usage=1 {ts}"));
        assert_eq!(resp.status().as_u16(), 204, "{p}");
    }
    // All at distinct seconds: had any been read in a wrong unit it would land elsewhere, not in this window.
    let req = quipu::ScanRequest::all().time_range(1638360000000000000, 1638360011000000000);
    let rows: usize = server.engine.scan("db1", "cpu", &req).unwrap().iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, cases.len());
}

#[test]
fn v2_and_v1_precisions_default_ns() {
    let server = TestServer::start();
    let base = 1638360000i64;
    let cases =
        [("ms", 1_000i64), ("s", 1), ("us", 1_000_000), ("u", 1_000_000), ("ns", 1_000_000_000), ("n", 1_000_000_000)];
    let mut second = 0;
    for endpoint in ["/api/v2/write?bucket=db1", "/write?db=db1"] {
        for (p, per_second) in cases {
            second += 1;
            let ts = (base + second) * per_second;
            let resp = post(&server, &format!("{endpoint}&precision={p}"), format!("cpu,host=a usage=1 {ts}"));
            assert_eq!(resp.status().as_u16(), 204, "{endpoint} {p}");
        }
        second += 1;
        let resp = post(&server, endpoint, format!("cpu,host=a usage=1 {}", (base + second) * 1_000_000_000));
        assert_eq!(resp.status().as_u16(), 204, "{endpoint} default");
    }
    let req = quipu::ScanRequest::all().time_range(base * 1_000_000_000, (base + 100) * 1_000_000_000);
    let rows: usize = server.engine.scan("db1", "cpu", &req).unwrap().iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 2 * (cases.len() + 1));
}

#[test]
fn v2_bucket_with_retention_policy_writes_to_the_database() {
    let server = TestServer::start();
    let resp =
        post(&server, "/api/v2/write?bucket=db1%2Fautogen&org=ignored", "cpu,host=a usage=1 1638360000000000000");
    assert_eq!(resp.status().as_u16(), 204);
    let resp = post(&server, "/write?db=db1&rp=autogen&consistency=one", "cpu,host=b usage=1 1638360000000000000");
    assert_eq!(resp.status().as_u16(), 204);
    assert_eq!(server.rows("db1", "cpu"), 2);
}

#[test]
fn compat_endpoints_partial_and_failed_bodies() {
    let server = TestServer::start();
    let mixed = "cpu,host=a usage=1 1638360000000000000\nhome,room=Kitchen temp=hi";
    for path in ["/api/v2/write?bucket=db1", "/write?db=db2"] {
        let (status, body) = json(post(&server, path, mixed));
        assert_eq!(status, 400);
        assert_eq!(
            body,
            json!({"error": "partial write of line protocol occurred", "data": [{
                "original_line": "home,room=Kitchen temp=hi",
                "line_number": 2,
                "error_message": body["data"][0]["error_message"].clone(),
            }]})
        );
        let (status, body) = json(post(&server, path, "home,room=Kitchen temp=hi\nnope"));
        assert_eq!(status, 400);
        assert_eq!(body["error"], "write of line protocol failed");
        assert_eq!(body["data"].as_array().unwrap().len(), 2);
        assert_eq!(body["data"][1]["line_number"], 2);
    }
    assert_eq!(server.rows("db1", "cpu"), 1);
    assert_eq!(server.rows("db2", "cpu"), 1);

    // v2 with accept_partial=false: all or nothing.
    let (status, body) = json(post(&server, "/api/v2/write?bucket=db3&accept_partial=false", mixed));
    assert_eq!(status, 400);
    assert_eq!(body["error"], "write of line protocol failed");
    assert_eq!(server.rows("db3", "cpu"), 0);
}

#[test]
fn gzip_bodies_are_accepted_including_multi_member() {
    let server = TestServer::start();
    let c = client();
    let body = gzip(b"cpu,host=a usage=1 1638360000000000000\n");
    for encoding in ["gzip", "GZIP"] {
        let resp = c
            .post(server.url("/api/v3/write_lp?db=db1"))
            .header("Authorization", bearer())
            .header("Content-Encoding", encoding)
            .body(body.clone())
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 204, "{encoding}");
    }
    let mut multi = gzip(b"cpu,host=b usage=1 1638360000000000000\n");
    multi.extend(gzip(b"cpu,host=c usage=1 1638360000000000000\n"));
    for path in ["/api/v2/write?bucket=db1", "/write?db=db1"] {
        let resp = c
            .post(server.url(path))
            .header("Authorization", bearer())
            .header("Content-Encoding", "gzip")
            .body(multi.clone())
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 204, "{path}");
    }
    assert_eq!(server.rows("db1", "cpu"), 3);

    let resp = c
        .post(server.url("/api/v3/write_lp?db=db1"))
        .header("Authorization", bearer())
        .header("Content-Encoding", "identity")
        .body("cpu,host=d usage=1 1638360000000000000")
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    assert_eq!(server.rows("db1", "cpu"), 4);
}

#[test]
fn broken_gzip_is_400_json() {
    let server = TestServer::start();
    let mut body = gzip(b"cpu,host=a usage=1 1638360000000000000\n");
    let n = body.len();
    body[n / 2] ^= 0xff;
    body.truncate(n - 4);
    let resp = client()
        .post(server.url("/api/v3/write_lp?db=db1"))
        .header("Authorization", bearer())
        .header("Content-Encoding", "gzip")
        .body(body)
        .send()
        .unwrap();
    assert_eq!(json(resp).0, 400);
    let resp = client()
        .post(server.url("/api/v3/write_lp?db=db1"))
        .header("Authorization", bearer())
        .header("Content-Encoding", "gzip")
        .body("not gzip at all")
        .send()
        .unwrap();
    assert_eq!(json(resp).0, 400);
    assert_eq!(server.rows("db1", "cpu"), 0);
}

#[test]
fn unsupported_content_encoding_is_415_json() {
    let server = TestServer::start();
    for encoding in ["br", "deflate", "zstd", "gzip, br", "x"] {
        let resp = client()
            .post(server.url("/api/v3/write_lp?db=db1"))
            .header("Authorization", bearer())
            .header("Content-Encoding", encoding)
            .body("cpu,host=a usage=1 1638360000000000000")
            .send()
            .unwrap();
        assert_eq!(json(resp).0, 415, "{encoding}");
    }
    assert_eq!(server.rows("db1", "cpu"), 0);
}

#[test]
fn body_over_the_limit_is_413() {
    let limit = 64 * 1024;
    let server = TestServer::with_limit(limit);
    let line = "cpu,host=a usage=1 1638360000000000000\n";
    let big = line.repeat(limit / line.len() + 1);
    assert!(big.len() > limit);
    let (status, body) = json(post(&server, "/api/v3/write_lp?db=db1", big.clone()));
    assert_eq!(status, 413, "{body}");

    // Streamed without Content-Length (chunked): caught while reading.
    let chunked = reqwest::blocking::Body::new(std::io::Cursor::new(big.into_bytes()));
    let (status, _) = json(post(&server, "/api/v2/write?bucket=db1", chunked));
    assert_eq!(status, 413);

    // Exactly at the limit is fine.
    let ok = line.repeat(limit / line.len());
    assert_eq!(post(&server, "/write?db=db1", ok).status().as_u16(), 204);
    assert_eq!(server.rows("db1", "cpu"), 1);
}

#[test]
fn gzip_bomb_over_the_limit_is_413() {
    let limit = 64 * 1024;
    let server = TestServer::with_limit(limit);
    let expanded = vec![b'a'; 16 * 1024 * 1024];
    let bomb = gzip(&expanded);
    assert!(bomb.len() < limit);
    let resp = client()
        .post(server.url("/api/v3/write_lp?db=db1"))
        .header("Authorization", bearer())
        .header("Content-Encoding", "gzip")
        .body(bomb)
        .send()
        .unwrap();
    assert_eq!(json(resp).0, 413);
}

#[test]
fn closed_engine_is_503_json() {
    let server = TestServer::start();
    server.engine.close().unwrap();
    let (status, body) = json(post(&server, "/api/v3/write_lp?db=db1", "cpu,host=a usage=1 1638360000000000000"));
    assert_eq!(status, 503);
    assert_eq!(body["error"], "engine is closed");
}

#[test]
fn v3_a_line_past_the_column_limit_is_a_400_naming_its_line() {
    let server = TestServer::start();
    // 500 fields and `time`: one column past the default limit of 500.
    let fields: Vec<String> = (0..500).map(|i| format!("f{i}=1i")).collect();
    let body = format!("ok v=1i 1\nwide {} 2\nok v=2i 3", fields.join(","));
    let (status, resp) = json(post(&server, "/api/v3/write_lp?db=db1", body.clone()));
    assert_eq!(status, 400);
    assert_eq!(resp["error"], "partial write of line protocol occurred");
    let data = resp["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["line_number"], 2);
    let message = data[0]["error_message"].as_str().unwrap();
    assert!(message.contains("exceed number of columns per table limit of 500 columns"), "{message}");
    assert_eq!(server.rows("db1", "ok"), 2);
    assert!(server.engine.catalog().database("db1").unwrap().table("wide").is_none());

    // All or nothing: the same 400, nothing written.
    let (status, resp) = json(post(&server, "/api/v3/write_lp?db=db2&accept_partial=false", body));
    assert_eq!(status, 400);
    assert_eq!(resp["data"]["line_number"], 2, "{resp}");
    assert!(server.engine.catalog().database("db2").is_none_or(|d| d.table("ok").is_none()));
}
