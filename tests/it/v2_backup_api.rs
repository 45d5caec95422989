//! The InfluxDB 2 backup and restore face (issue 19, being built), as far
//! as it is served: every answer, errors included, in InfluxDB 2's shape
//! `{"code", "message"}` with the code word in `X-Platform-Error-Code`;
//! the admin token as `Token` or `Bearer`; the legacy bucket restore (both
//! spellings) 501; unknown paths 404 and wrong methods 405 in that shape;
//! `GET /api/v2/backup/kv`, the catalog whole, plain, gzipped and through
//! the real Python client (influxdb-client 1.50).
#![cfg(feature = "server")]

use crate::server_support::{TOKEN, TestServer, client};
use serde_json::{Value, json};

fn send(request: reqwest::blocking::RequestBuilder) -> (u16, String, Value) {
    let response = request.send().unwrap();
    let status = response.status().as_u16();
    let code = response.headers().get("x-platform-error-code").map(|v| v.to_str().unwrap().to_owned());
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert_eq!(content_type, "application/json; charset=utf-8");
    let body: Value = response.json().unwrap();
    assert_eq!(code.as_deref(), body["code"].as_str(), "the header and the body name the same code: {body}");
    (status, code.unwrap_or_default(), body)
}

#[test]
fn the_v2_face_answers_in_influxdb_2s_shape() {
    let server = TestServer::start();
    let http = client();
    let url = |path: &str| server.url(path);

    let (status, code, body) = send(http.post(url("/api/v2/restore/bucket/0000000000000001")));
    assert_eq!((status, code.as_str()), (401, "unauthorized"), "{body}");
    let (status, code, _) = send(http.post(url("/api/v2/restore/kv")).header("Authorization", "Token not-the-token"));
    assert_eq!((status, code.as_str()), (401, "unauthorized"));

    for (path, auth) in [("bucket", format!("Token {TOKEN}")), ("buckets", format!("Bearer {TOKEN}"))] {
        let request = http
            .post(url(&format!("/api/v2/restore/{path}/0000000000000001")))
            // As the Python client sends it, whatever the body.
            .header("Content-Type", "text/plain")
            .header("Authorization", auth)
            .body("anything");
        let (status, code, body) = send(request);
        assert_eq!((status, code.as_str()), (501, "not implemented"), "{body}");
        assert!(body["message"].as_str().unwrap().contains("bucketMetadata"), "{body}");
    }

    let token = format!("Token {TOKEN}");
    let (status, code, body) = send(http.get(url("/api/v2/backup/nothing-here")).header("Authorization", &token));
    assert_eq!((status, code.as_str()), (404, "not found"), "{body}");
    let (status, code, body) =
        send(http.get(url("/api/v2/restore/bucket/0000000000000001")).header("Authorization", &token));
    assert_eq!((status, code.as_str()), (405, "method not allowed"), "{body}");
    assert_eq!(body["message"], json!("method GET not allowed on /api/v2/restore/bucket/0000000000000001"));
}

#[test]
fn the_catalog_comes_back_whole_plain_gzipped_and_through_the_python_client() {
    let server = TestServer::start();
    let lp = "cpu,host=a usage=1.5 1\nmem,host=b free=3i 2\n";
    server.engine.write_lp("db", lp, quipu::Precision::Nanosecond, quipu::WriteOptions::default()).unwrap();
    let expected = server.engine.catalog().encode();
    let http = client();
    let token = format!("Token {TOKEN}");

    let plain = http.get(server.url("/api/v2/backup/kv")).header("Authorization", &token).send().unwrap();
    assert_eq!(plain.status().as_u16(), 200);
    assert_eq!(plain.headers()["content-type"], "application/octet-stream");
    assert!(plain.headers().get("content-encoding").is_none());
    assert!(plain.bytes().unwrap() == expected, "the catalog came back different");

    let gzipped = http
        .get(server.url("/api/v2/backup/kv"))
        .header("Authorization", &token)
        .header("Accept-Encoding", "gzip")
        .send()
        .unwrap();
    assert_eq!(gzipped.headers()["content-encoding"], "gzip");
    let mut unzipped = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gzipped.bytes().unwrap()[..]), &mut unzipped)
        .unwrap();
    assert!(unzipped == expected, "the gzipped catalog came back different");

    // influxdb-client 1.50's BackupService; binary answers need
    // `_preload_content=False` (it would decode them as UTF-8).
    let script = "import sys\n\
        from influxdb_client import InfluxDBClient\n\
        from influxdb_client.service.backup_service import BackupService\n\
        client = InfluxDBClient(url=sys.argv[1], token=sys.argv[2], org='-')\n\
        answer = BackupService(client.api_client).get_backup_kv(_preload_content=False)\n\
        sys.stdout.buffer.write(answer.data)\n";
    let out = std::process::Command::new("python3")
        .args(["-c", script, &server.url(""), TOKEN])
        .output()
        .unwrap_or_else(|e| panic!("python3 is needed (scripts/test installs the peers): {e}"));
    assert!(out.status.success(), "influxdb-client: {}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout == expected, "the catalog came back different through the Python client");
}
