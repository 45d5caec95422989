//! A real quipu server on 127.0.0.1:0 (its own tokio runtime on a thread),
//! as the snapshot's server tests start it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::thread::JoinHandle;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use quipu::client::Client;
use quipu::server::{AdminToken, AppState, DEFAULT_MAX_BODY_BYTES, serve_listener};
use quipu::{Engine, ScanRequest};

pub const TOKEN: &str = "apiv3_test-token";

pub struct TestServer {
    pub addr: SocketAddr,
    pub engine: Engine,
    pub dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    pub fn start() -> Self {
        Self::with_limit(DEFAULT_MAX_BODY_BYTES)
    }

    pub fn with_limit(max_body_bytes: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::builder(dir.path()).background(false).open().unwrap();
        let state = AppState::new(engine.clone(), AdminToken::from_token(TOKEN), max_body_bytes);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                serve_listener(listener, state, async move {
                    let _ = rx.await;
                })
                .await
                .unwrap();
            });
        });
        TestServer { addr, engine, dir, shutdown: Some(tx), thread: Some(thread) }
    }

    pub fn host(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn client(&self) -> Client {
        Client::new(&self.host(), Some(TOKEN)).unwrap()
    }

    pub fn scan(&self, db: &str, table: &str, req: &ScanRequest) -> Vec<RecordBatch> {
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
        let mut out = Vec::new();
        for b in self.scan(db, table, &ScanRequest::all().columns([field])) {
            let col = b.column_by_name(field).unwrap().as_primitive::<Int64Type>();
            out.extend((0..col.len()).map(|i| col.value(i)));
        }
        out
    }

    pub fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `n` lines `m,k=v i=<i>i <i+1>` (ns timestamps), numbered from 1.
pub fn numbered_lines(n: u64) -> String {
    (1..=n).map(|i| format!("m,k=v i={i}i {}\n", 1_000_000_000_000 + i)).collect()
}

pub fn no_progress(_: u64) {}
