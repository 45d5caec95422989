//! `/health`, `/api/v1/health`, `/ping`, and the JSON 404/405 answers.
#![cfg(feature = "server")]

use crate::server_support as common;

use common::{TestServer, bearer, client, json};
use quipu::server::{BUILD, REVISION, VERSION};

#[test]
fn health_endpoints_answer_ok_text() {
    let server = TestServer::start();
    for path in ["/health", "/api/v1/health"] {
        let resp = client().get(server.url(path)).header("Authorization", bearer()).send().unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
        assert_eq!(resp.text().unwrap(), "OK");
    }
}

#[test]
fn ping_get_and_post_report_the_version() {
    let server = TestServer::start();
    let mut ids = Vec::new();
    for method in ["GET", "POST"] {
        let resp = client()
            .request(method.parse().unwrap(), server.url("/ping"))
            .header("Authorization", bearer())
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{method}");
        assert_eq!(resp.headers()["x-influxdb-version"], VERSION);
        assert_eq!(resp.headers()["x-influxdb-build"], BUILD);
        assert_eq!(BUILD, "Enterprise");
        assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
        let body: serde_json::Value = resp.json().unwrap();
        assert_eq!(body["version"], VERSION);
        assert_eq!(body["revision"], REVISION);
        let id = body["process_id"].as_str().unwrap().to_owned();
        assert_eq!(id.len(), 36, "{id}");
        assert_eq!(body.as_object().unwrap().len(), 3);
        ids.push(id);
    }
    assert_eq!(ids[0], ids[1], "one process id per server");
    assert_eq!(VERSION, "0.1.0");
}

#[test]
fn ping_head_is_404_per_reference() {
    let server = TestServer::start();
    let resp = client().head(server.url("/ping")).header("Authorization", bearer()).send().unwrap();
    assert_eq!(resp.status().as_u16(), 404);
}

#[test]
fn unknown_path_404_and_wrong_method_405_are_json() {
    let server = TestServer::start();
    for path in ["/nope", "/api/v3/configure/database", "/api/v3/write_lp/extra", "/write/"] {
        let (status, body) = json(client().get(server.url(path)).header("Authorization", bearer()).send().unwrap());
        assert_eq!(status, 404, "{path}: {body}");
    }
    for (method, path) in
        [("GET", "/api/v3/write_lp"), ("PUT", "/write"), ("DELETE", "/api/v2/write"), ("POST", "/health")]
    {
        let resp = client()
            .request(method.parse().unwrap(), server.url(path))
            .header("Authorization", bearer())
            .send()
            .unwrap();
        let (status, body) = json(resp);
        assert_eq!(status, 405, "{method} {path}: {body}");
    }
}
