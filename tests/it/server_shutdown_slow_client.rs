//! A client that starts a large streaming query and never reads it cannot
//! hold `quipu serve` up at SIGTERM: after `--shutdown-timeout` its
//! connection is dropped, the engine closes cleanly (exit status 0), and
//! the data folder reopens with every acknowledged row.
#![cfg(all(feature = "server", unix))]

use crate::process_support as support;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::{Serve, http};

const TOKEN: &str = "apiv3_shutdown-test";

#[test]
fn sigterm_with_a_stalled_streaming_query_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("serve.log");
    let mut serve = Serve::start_with(
        &data,
        &dir.path().join("repo"),
        "auto",
        TOKEN,
        &log,
        &"slow client",
        &["--shutdown-timeout", "2s"],
    );

    let mut body = String::new();
    for i in 0..20_000 {
        body.push_str(&format!("cpu,host=h{} usage={i}i {}\n", i % 10, 1_000_000 + i));
    }
    let resp =
        http().post(format!("{}/api/v3/write_lp?db=db1", serve.base)).bearer_auth(TOKEN).body(body).send().unwrap();
    assert_eq!(resp.status(), 204);

    // A result far larger than the socket buffers, asked for and never read.
    let addr = serve.base.trim_start_matches("http://");
    let mut stalled = TcpStream::connect(addr).unwrap();
    let q = "SELECT%20a.usage%2C%20b.host%20FROM%20cpu%20a%20CROSS%20JOIN%20cpu%20b";
    write!(
        stalled,
        "GET /api/v3/query_sql?db=db1&format=csv&q={q} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
    )
    .unwrap();
    // The query is under way once its telemetry shows up.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let t = http().get(format!("{}/api/v3/query_sql_telemetry", serve.base)).bearer_auth(TOKEN).send().unwrap();
        if t.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the query never started");
        std::thread::sleep(Duration::from_millis(20));
    }

    let pid = serve.child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    // A liveness bound, not a timing assertion: without the shutdown
    // timeout the server waits for the stalled client forever.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = serve.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "quipu serve did not exit after SIGTERM:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit {status}:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
    drop(stalled);

    let engine = quipu::Engine::builder(&data).background(false).open().unwrap();
    let rows: usize = engine.scan("db1", "cpu", &quipu::ScanRequest::all()).unwrap().iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 20_000);
    engine.close().unwrap();
}
