//! A wrong or missing token is `Unauthorized`.
#![cfg(all(feature = "server", feature = "client"))]
use crate::client_support as support;

use quipu::client::{Client, ClientError, WriteBatchOptions};
use support::{TestServer, no_progress};

#[test]
fn wrong_or_missing_token_is_unauthorized() {
    let server = TestServer::start();
    for token in [Some("apiv3_wrong"), None] {
        let client = Client::new(&server.host(), token).unwrap();
        let err = client
            .write_lp("db", "ns", "m f=1 1\n".as_bytes(), &WriteBatchOptions::default(), &no_progress)
            .unwrap_err();
        match err {
            ClientError::Unauthorized(message) => assert!(!message.is_empty() && !message.contains('{')),
            other => panic!("expected Unauthorized, got {other:?}"),
        }
    }
    assert_eq!(server.rows("db", "m"), 0);
}
