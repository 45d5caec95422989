//! `quipu serve` as an operator runs it: a real process on a free port,
//! writes over HTTP, SIGTERM, and the acknowledged rows are in the data
//! folder afterwards (the graceful shutdown flushed them to segments).
#![cfg(feature = "server")]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use quipu::{Engine, ScanRequest};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn serve_writes_and_flushes_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    // Inside the temp folder, so the default repository beside it goes too.
    let data = tmp.path().join("data");
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_quipu"))
        .args(["serve", "--data-dir", data.to_str().unwrap(), "--http-bind", &format!("127.0.0.1:{port}")])
        .env("QUIPU_ADMIN_TOKEN", "apiv3_process-test")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::blocking::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    // A liveness bound, not a timing assertion.
    let deadline = Instant::now() + Duration::from_secs(60);
    while client.get(format!("{base}/ping")).bearer_auth("apiv3_process-test").send().is_err() {
        assert!(Instant::now() < deadline, "server never came up");
        std::thread::sleep(Duration::from_millis(50));
    }
    let body = "cpu,host=a usage=1.5 1638360000000000000\ncpu,host=b usage=2.5 1638360000000000000";
    let resp = client
        .post(format!("{base}/api/v3/write_lp?db=sensors"))
        .bearer_auth("apiv3_process-test")
        .body(body)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 204);
    let resp = client.post(format!("{base}/api/v3/write_lp?db=sensors")).body(body).send().unwrap();
    assert_eq!(resp.status(), 401);

    // SIGTERM, as a service manager sends it: the server must finish and flush.
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "graceful shutdown exits 0, got {exit:?}");

    // The default backup repository was made beside the data folder.
    let repo = quipu::backup::Repository::open(&tmp.path().join("data-backups")).unwrap();
    assert!(repo.check(false).unwrap().is_clean());

    let engine = Engine::builder(&data).background(false).open().unwrap();
    assert!(!engine.live_files().is_empty(), "shutdown flushed the buffer into segments");
    let rows: usize = engine.scan("sensors", "cpu", &ScanRequest::all()).unwrap().iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 2);
}
