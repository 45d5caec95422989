//! A real server on 127.0.0.1:0 (its own tokio runtime on a thread) and a
//! blocking HTTP client.
#![allow(dead_code)]

use std::io::Write;
use std::net::SocketAddr;

use quipu::server::{AdminToken, AppState, BackgroundServer, DEFAULT_MAX_BODY_BYTES};
use quipu::{Engine, ScanRequest};

pub const TOKEN: &str = "apiv3_test-token";

pub struct TestServer {
    pub addr: SocketAddr,
    pub engine: Engine,
    pub dir: tempfile::TempDir,
    server: Option<BackgroundServer>,
}

impl TestServer {
    pub fn start() -> Self {
        Self::with_limit(DEFAULT_MAX_BODY_BYTES)
    }

    pub fn with_limit(max_body_bytes: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::builder(dir.path()).background(false).open().unwrap();
        let state = AppState::new(engine.clone(), AdminToken::from_token(TOKEN), max_body_bytes);
        let server = BackgroundServer::start(state, "127.0.0.1:0".parse().unwrap()).unwrap();
        TestServer { addr: server.addr(), engine, dir, server: Some(server) }
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{}", self.addr, path_and_query)
    }

    /// Signals shutdown and waits for `serve` to return.
    pub fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop().unwrap();
        }
    }

    /// Signals shutdown without waiting.
    pub fn signal_shutdown(&mut self) {
        if let Some(server) = self.server.as_mut() {
            server.signal_stop();
        }
    }

    pub fn host(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A `quipu::client::Client` with the test token.
    #[cfg(feature = "client")]
    pub fn client(&self) -> quipu::client::Client {
        quipu::client::Client::new(&self.host(), Some(TOKEN)).unwrap()
    }

    /// A scan; an unknown database or table is no rows.
    pub fn scan(&self, db: &str, table: &str, req: &ScanRequest) -> Vec<arrow::array::RecordBatch> {
        match self.engine.scan(db, table, req) {
            Ok(batches) => batches,
            Err(quipu::Error::DatabaseNotFound { .. } | quipu::Error::TableNotFound { .. }) => Vec::new(),
            Err(e) => panic!("scan failed: {e}"),
        }
    }

    pub fn rows(&self, db: &str, table: &str) -> usize {
        self.scan(db, table, &ScanRequest::all()).iter().map(|b| b.num_rows()).sum()
    }

    /// Every value of an integer field, in scan order.
    pub fn ints(&self, db: &str, table: &str, field: &str) -> Vec<i64> {
        use arrow::array::AsArray;
        let mut out = Vec::new();
        for b in self.scan(db, table, &ScanRequest::all().columns([field])) {
            let col = b.column_by_name(field).unwrap().as_primitive::<arrow::datatypes::Int64Type>();
            out.extend((0..col.len()).map(|i| col.value(i)));
        }
        out
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().build().unwrap()
}

pub fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// Status and JSON body of a response that must be JSON.
pub fn json(resp: reqwest::blocking::Response) -> (u16, serde_json::Value) {
    let status = resp.status().as_u16();
    let ct = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    assert!(ct.starts_with("application/json"), "status {status}: content-type {ct:?}");
    let body: serde_json::Value = resp.json().unwrap();
    assert!(body.get("error").is_some_and(|e| e.is_string()), "no error string in {body}");
    assert!(body.get("data").is_some(), "no data field in {body}");
    (status, body)
}
