//! Every error answer is the JSON `ErrorMessage`, also where axum's
//! extractors refuse a request (a body over the limit on the backup and
//! restore endpoints, a path parameter that is not UTF-8), and the body
//! limit of those endpoints is `--max-body-bytes`, not axum's 2 MiB.
#![cfg(feature = "server")]

use crate::server_support as common;

use common::{TestServer, bearer, client, json};

/// A JSON request document of about `len` bytes.
fn backup_request(len: usize) -> Vec<u8> {
    format!(r#"{{"type":"full","name":"{}"}}"#, "a".repeat(len)).into_bytes()
}

#[test]
fn a_3_mb_backup_request_under_the_limit_is_read_and_answered_in_json() {
    let server = TestServer::with_backups(quipu::backup::ModeChoice::Copy);
    let resp = client()
        .post(server.url("/api/v3/enterprise/backup"))
        .header("Authorization", bearer())
        .body(backup_request(3 << 20))
        .send()
        .unwrap();
    let (status, body) = json(resp);
    // Read whole and refused for its name, not for its size.
    assert_eq!(status, 400, "{body}");
}

/// Posts `body` over a raw connection, chunked or with its length, and
/// returns the status, content type and body of the answer. The writer
/// ignores errors: the answer may come before the body is sent.
fn raw_post(addr: std::net::SocketAddr, path: &str, body: Vec<u8>, chunked: bool) -> (u16, String, serde_json::Value) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let auth = bearer();
    let target = path.to_owned();
    let sender = std::thread::spawn(move || {
        let length =
            if chunked { "Transfer-Encoding: chunked".to_owned() } else { format!("Content-Length: {}", body.len()) };
        let head = format!("POST {target} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n{length}\r\n\r\n");
        writer.write_all(head.as_bytes())?;
        if chunked {
            for chunk in body.chunks(64 << 10) {
                writer.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())?;
                writer.write_all(chunk)?;
                writer.write_all(b"\r\n")?;
            }
            writer.write_all(b"0\r\n\r\n")?;
        } else {
            writer.write_all(&body)?;
        }
        std::io::Result::Ok(())
    });
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let _ = sender.join().unwrap();
    let text = String::from_utf8(answer).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-type:").map(|v| v.trim().to_owned()))
        .unwrap_or_default();
    let json = serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body:?}"));
    (status, content_type, json)
}

#[test]
fn bodies_over_the_limit_are_413_in_json_on_every_endpoint() {
    let server = TestServer::with_limit(2 << 20);
    for path in
        ["/api/v3/enterprise/backup", "/api/v3/enterprise/restore", "/api/v3/write_lp?db=db1", "/api/v3/query_sql"]
    {
        // Declared (Content-Length) and undeclared (chunked) lengths.
        for chunked in [false, true] {
            let (status, content_type, body) = raw_post(server.addr, path, backup_request(3 << 20), chunked);
            assert_eq!(status, 413, "{path} chunked {chunked}: {body}");
            assert!(content_type.starts_with("application/json"), "{path} chunked {chunked}: {content_type}");
            assert!(body["error"].is_string() && body.get("data").is_some(), "{path} chunked {chunked}: {body}");
        }
    }
}

#[test]
fn extractor_rejections_are_json() {
    let server = TestServer::with_backups(quipu::backup::ModeChoice::Copy);
    // `%FF` is not UTF-8: the path parameter cannot be extracted.
    for path in ["/api/v3/enterprise/backup/%FF", "/api/v3/enterprise/restore/%FF"] {
        let (status, body) = json(client().get(server.url(path)).header("Authorization", bearer()).send().unwrap());
        assert_eq!(status, 400, "{path}: {body}");
    }
}
