//! Graceful shutdown: a request in flight when shutdown is signalled completes.
#![cfg(feature = "server")]

use crate::server_support as common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use common::{TOKEN, TestServer};

#[test]
fn in_flight_request_completes_after_shutdown_signal() {
    let mut server = TestServer::start();
    let body = "cpu,host=a usage=1 1638360000000000000\n";
    let mut stream = TcpStream::connect(server.addr).unwrap();
    write!(
        stream,
        "POST /api/v3/write_lp?db=db1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    )
    .unwrap();
    // The server answers 100 Continue once the handler reads the body: the
    // request is now in flight.
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 100"), "{line:?}");
    reader.read_line(&mut line).unwrap();

    server.signal_shutdown();
    stream.write_all(body.as_bytes()).unwrap();

    let mut rest = String::new();
    reader.read_to_string(&mut rest).unwrap();
    assert!(rest.starts_with("HTTP/1.1 204"), "{rest:?}");
    server.stop();
    assert_eq!(server.rows("db1", "cpu"), 1);
    assert!(TcpStream::connect(server.addr).is_err(), "the listener is closed after serve returns");
}

#[test]
fn serve_binds_and_returns_on_shutdown_and_reports_bind_errors() {
    use quipu::server::{AdminToken, ServerConfig, ServerError, serve};
    let dir = tempfile::tempdir().unwrap();
    let engine = quipu::Engine::builder(dir.path()).background(false).open().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let config = ServerConfig::new("127.0.0.1:0".parse().unwrap(), AdminToken::from_token(TOKEN));
    assert_eq!(config.max_body_bytes, 10 << 20);
    assert!(!format!("{config:?}").contains(TOKEN));
    rt.block_on(serve(engine.clone(), config, async {})).unwrap();

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = ServerConfig::new(taken.local_addr().unwrap(), AdminToken::from_token(TOKEN));
    let err = rt.block_on(serve(engine, config, std::future::pending())).unwrap_err();
    assert!(matches!(err, ServerError::Bind { .. }), "{err}");
}
