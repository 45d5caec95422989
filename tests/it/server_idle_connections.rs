//! Idle connections cannot take the descriptors the engine needs: `quipu
//! serve` under an open-file limit of 256 keeps accepting at most its
//! connection limit (the limit less the engine's reserve), closes
//! connections that send no request within the header timeout, and keeps
//! writing, flushing and rotating its WAL while more idle connections than
//! the whole open-file limit press on it.
#![cfg(all(feature = "server", unix))]

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const TOKEN: &str = "apiv3_idle-test";
const NOFILE: usize = 256;
/// More idle connections than the server's whole open-file limit.
const IDLE: usize = 300;

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http() -> reqwest::blocking::Client {
    // A liveness bound, not a timing assertion: a write may wait in the
    // listen backlog behind idle connections for a few header timeouts.
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(120)).build().unwrap()
}

fn start(data: &Path, log: &Path) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n {NOFILE} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_quipu"))
        .args(["serve", "--data-dir", data.to_str().unwrap(), "--http-bind", &addr.to_string(), "--no-backup"])
        .args(["--header-read-timeout", "2s", "--flush-age", "1s"])
        .env("QUIPU_ADMIN_TOKEN", TOKEN)
        .env("RUST_LOG", "quipu=info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let mut server = Server { child, addr };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let health = http().get(format!("http://{addr}/health")).bearer_auth(TOKEN).send();
        if health.is_ok_and(|r| r.status() == 200) {
            return server;
        }
        if let Some(status) = server.child.try_wait().unwrap() {
            panic!("quipu serve exited with {status}:\n{}", std::fs::read_to_string(log).unwrap_or_default());
        }
        assert!(Instant::now() < deadline, "quipu serve never answered /health");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether the server has closed `stream` (EOF or reset), without blocking.
fn closed(stream: &mut TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

/// Keeps `IDLE` connections open that never send a byte, opening a new one
/// for each the server closes, until `stop`; counts the closes.
fn press(addr: SocketAddr, stop: Arc<AtomicBool>, closes: Arc<AtomicUsize>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut idle: Vec<TcpStream> = (0..IDLE).map(|_| TcpStream::connect(addr).unwrap()).collect();
        while !stop.load(Ordering::Relaxed) {
            for stream in &mut idle {
                if closed(stream) {
                    closes.fetch_add(1, Ordering::Relaxed);
                    *stream = TcpStream::connect(addr).unwrap();
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
}

fn segments(dir: &Path) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        if entry.file_type().unwrap().is_dir() {
            n += segments(&path);
        } else if path.extension().is_some_and(|e| e == "seg") {
            n += 1;
        }
    }
    n
}

fn write(addr: SocketAddr, line: &str) {
    // A client competes with the idle flood for the listen backlog: while it
    // is full the kernel drops the client's SYNs and retries them ever more
    // slowly (1, 2, 4 s ...), while the flood reconnects within 50 ms of each
    // close, so on a loaded machine a connect can lose many rounds. It
    // connects again, as clients do; what must hold is that the write gets
    // through and is stored within a liveness bound.
    let client = reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    let resp = loop {
        match client
            .post(format!("http://{addr}/api/v3/write_lp?db=db1"))
            .bearer_auth(TOKEN)
            .body(line.to_owned())
            .send()
        {
            Ok(resp) => break resp,
            Err(e) if e.is_connect() && Instant::now() < deadline => eprintln!("write {line:?}: {e}; connecting again"),
            Err(e) => panic!("write {line:?}: {e:?}"),
        }
    };
    let status = resp.status();
    assert_eq!(status, 204, "write {line:?}: {}", resp.text().unwrap_or_default());
}

/// Waits (a liveness bound) until a flush has written a segment past `before`.
fn await_flush(data: &Path, before: usize, log: &Path) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = segments(data);
        if now > before {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "no flush under idle connections:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn idle_connections_do_not_starve_the_engine_of_descriptors() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("serve.log");
    let server = start(&data, &log);

    let stop = Arc::new(AtomicBool::new(false));
    let closes = Arc::new(AtomicUsize::new(0));
    let presser = press(server.addr, stop.clone(), closes.clone());

    // Each write is flushed to a segment (a WAL rotation each) while the
    // idle connections keep the server at its connection limit.
    let mut seen = segments(&data);
    for i in 1..=3 {
        write(server.addr, &format!("cpu,host=a usage={i}i {i}"));
        seen = await_flush(&data, seen, &log);
    }
    stop.store(true, Ordering::Relaxed);
    presser.join().unwrap();
    assert!(closes.load(Ordering::Relaxed) > 0, "the server closed no idle connection");

    let resp = http()
        .get(format!("http://{}/api/v3/query_sql", server.addr))
        .bearer_auth(TOKEN)
        .query(&[("db", "db1"), ("q", "SELECT usage FROM cpu ORDER BY time"), ("format", "json")])
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let rows: serde_json::Value = resp.json().unwrap();
    assert_eq!(rows["results"], serde_json::json!([{"usage": 1}, {"usage": 2}, {"usage": 3}]));
}

#[test]
fn connections_that_send_nothing_are_closed_after_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("data"), &dir.path().join("serve.log"));
    let mut idle: Vec<TcpStream> = (0..IDLE).map(|_| TcpStream::connect(server.addr).unwrap()).collect();
    // A liveness bound: every one is accepted in turn and closed.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut open: Vec<&mut TcpStream> = idle.iter_mut().collect();
    while !open.is_empty() {
        open.retain_mut(|s| !closed(s));
        assert!(Instant::now() < deadline, "{} idle connections were never closed", open.len());
        std::thread::sleep(Duration::from_millis(50));
    }
    // And the server still serves.
    write(server.addr, "cpu,host=a usage=1i 1");
}
