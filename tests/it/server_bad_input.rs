//! Hostile bodies and query strings: always an answer below 500, JSON when
//! it is an error, never a panic.
#![cfg(feature = "server")]

use crate::server_support as common;

use common::{TestServer, bearer, client, json};

/// Deterministic pseudo-random bytes (xorshift64*).
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545F4914F6CDD1D) >> 56) as u8
        })
        .collect()
}

fn assert_sane(resp: reqwest::blocking::Response, what: &str) -> u16 {
    let status = resp.status().as_u16();
    assert!(status < 500, "{what}: {status}");
    if status != 204 {
        json(resp);
    }
    status
}

#[test]
fn random_bytes_bodies() {
    let server = TestServer::start();
    let c = client();
    for seed in 0..40u64 {
        let body = noise(seed, (seed as usize * 97) % 5000);
        for path in ["/api/v3/write_lp?db=db1", "/api/v2/write?bucket=db1", "/write?db=db1"] {
            let resp = c.post(server.url(path)).header("Authorization", bearer()).body(body.clone()).send().unwrap();
            assert_sane(resp, &format!("seed {seed} {path}"));
        }
        let resp = c
            .post(server.url("/api/v3/write_lp?db=db1"))
            .header("Authorization", bearer())
            .header("Content-Encoding", "gzip")
            .body(body)
            .send()
            .unwrap();
        assert_sane(resp, &format!("seed {seed} gzip"));
    }
}

#[test]
fn invalid_utf8_is_400_with_a_json_message() {
    let server = TestServer::start();
    let mut body = b"cpu,host=a usage=1 1638360000000000000\ncpu,host=".to_vec();
    body.extend([0xff, 0xfe]);
    body.extend(b" usage=2 1638360000000000000\n");
    for path in ["/api/v3/write_lp?db=db1", "/api/v2/write?bucket=db1", "/write?db=db1"] {
        let resp = client().post(server.url(path)).header("Authorization", bearer()).body(body.clone()).send().unwrap();
        let (status, json) = json(resp);
        assert_eq!(status, 400, "{path}");
        let msg = json["error"].as_str().unwrap();
        assert!(msg.contains("UTF-8") && msg.contains("line 2"), "{msg}");
    }
    assert_eq!(server.rows("db1", "cpu"), 0, "a body that is not UTF-8 is rejected whole");
}

#[test]
fn absurd_query_strings() {
    let server = TestServer::start();
    let long = "x".repeat(5000);
    let queries = [
        "db".to_string(),
        "=".into(),
        "&&&=&=".into(),
        "db=%".into(),
        "db=%FF%FE".into(),
        "db=%00".into(),
        "db=db1&precision=%00".into(),
        "db=db1&accept_partial=".into(),
        "db=db1&no_sync=TRUE".into(),
        format!("db={long}"),
        format!("db=db1&precision={long}"),
        format!("db=db1&{long}={long}"),
        "db=db1&db=db1".into(),
        "db=..%2F..%2Fetc".into(),
        "db[]=x".into(),
        "db=db1&bucket=db2&p=1&u=2&rp=3".into(),
    ];
    let c = client();
    for q in &queries {
        for path in ["/api/v3/write_lp", "/api/v2/write", "/write"] {
            let url = server.url(&format!("{path}?{q}"));
            let resp = c.post(url).header("Authorization", bearer()).body("cpu,host=a usage=1 1").send().unwrap();
            assert_sane(resp, &format!("{path}?{q}"));
        }
    }
}

#[test]
fn absurd_headers() {
    let server = TestServer::start();
    let c = client();
    for (name, value) in [
        ("Authorization", "Bearer ".to_string() + &"a".repeat(10_000)),
        ("Authorization", "Basic !!!".into()),
        ("Content-Length-Ignored", "x".into()),
        ("Content-Type", "application/octet-stream".into()),
        ("Content-Encoding", "".into()),
    ] {
        let resp = c.post(server.url("/write?db=db1")).header(name, value).body("cpu,host=a usage=1 1").send().unwrap();
        assert_sane(resp, name);
    }
}

#[test]
fn an_empty_body_is_a_400_on_every_write_endpoint() {
    let server = TestServer::start();
    let c = client();
    for path in ["/api/v3/write_lp?db=x", "/api/v2/write?bucket=x", "/write?db=x"] {
        let resp = c.post(server.url(path)).header("Authorization", bearer()).send().unwrap();
        let (status, body) = json(resp);
        assert_eq!(status, 400, "{path}");
        assert!(body["error"].as_str().unwrap().contains("empty"), "{path}: {body}");
    }
}
