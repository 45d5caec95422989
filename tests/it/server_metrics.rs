//! `GET /metrics` answers Prometheus text with the engine's counters and the
//! files on disk per level, and wants the token like every endpoint.
#![cfg(feature = "server")]

use crate::server_support as common;

use common::{TestServer, bearer, client};

fn sample(text: &str, name: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} in\n{text}"))
}

#[test]
fn metrics_count_writes_rejections_flushes_and_files() {
    let server = TestServer::start();
    let c = client();
    let resp = c.get(server.url("/metrics")).send().unwrap();
    assert_eq!(resp.status(), 401);

    let write = |body: &str| {
        c.post(server.url("/api/v3/write_lp?db=m"))
            .header("Authorization", bearer())
            .body(body.to_string())
            .send()
            .unwrap()
    };
    assert_eq!(write("cpu,host=a v=1 1\ncpu,host=b v=2 2").status(), 204);
    assert_eq!(write("cpu,host=a v=1i 3\ncpu,host=c v=3 3").status(), 400); // one line rejected, one written
    server.engine.flush().unwrap();

    let resp = c.get(server.url("/metrics")).header("Authorization", bearer()).send().unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let text = resp.text().unwrap();
    assert_eq!(sample(&text, "quipu_write_requests_total"), 2);
    assert_eq!(sample(&text, "quipu_rows_written_total"), 3);
    assert_eq!(sample(&text, "quipu_lines_rejected_total"), 1);
    assert_eq!(sample(&text, "quipu_flushes_total"), 1);
    assert_eq!(sample(&text, "quipu_buffer_rows"), 0);
    assert_eq!(sample(&text, "quipu_files{level=\"gen0\"}"), 1);
    assert_eq!(sample(&text, "quipu_files{level=\"compacted\"}"), 0);
    assert_eq!(sample(&text, "quipu_file_rows{level=\"gen0\"}"), 3);
    let bytes: u64 = server.engine.live_files().iter().map(|f| f.meta.size).sum();
    assert_eq!(sample(&text, "quipu_file_bytes{level=\"gen0\"}"), bytes);
    // Every sample line parses as `name{labels} value`.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (_, value) = line.rsplit_once(' ').unwrap();
        value.parse::<u64>().unwrap();
    }
}
