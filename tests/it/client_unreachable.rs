//! A closed port gives an Http error after bounded retries, not a hang.
#![cfg(all(feature = "server", feature = "client"))]
use crate::client_support as support;

use quipu::client::{Client, ClientError, WriteBatchOptions};
use support::no_progress;

#[test]
fn closed_port_is_an_http_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let client = Client::new(&format!("http://127.0.0.1:{port}"), Some("t")).unwrap();
    let err =
        client.write_lp("db", "ns", "m f=1 1\n".as_bytes(), &WriteBatchOptions::default(), &no_progress).unwrap_err();
    match err {
        ClientError::Http { url, source } => {
            assert!(url.contains(&format!(":{port}/api/v3/write_lp?db=db")), "{url}");
            assert!(source.is_connect(), "{source:?}");
        }
        other => panic!("expected Http, got {other:?}"),
    }
}
