//! 503 (closed engine) is retried, then reported with the server's text.
#![cfg(all(feature = "server", feature = "client"))]
use crate::client_support as support;

use quipu::client::{ClientError, WriteBatchOptions};
use support::{TestServer, no_progress};

#[test]
fn closed_engine_is_a_503_status_after_retries() {
    let server = TestServer::start();
    server.engine.close().unwrap();
    let err = server
        .client()
        .write_lp("db", "ns", "m f=1 1\n".as_bytes(), &WriteBatchOptions::default(), &no_progress)
        .unwrap_err();
    match err {
        ClientError::Status { status: 503, body } => assert!(body.contains("\"error\""), "{body}"),
        other => panic!("expected Status 503, got {other:?}"),
    }
}
