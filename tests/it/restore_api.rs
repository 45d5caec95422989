//! The restore endpoints (`/api/v3/enterprise/restore`) against a live
//! server: every status code the issue lists, with the bodies behind them.
//! A restore that must be running while a request arrives is held at a
//! phase by the restore hook, never by timing.
#![cfg(feature = "server")]

use crate::server_support;

use quipu::backup::{BackupConfig, BackupRequest, BackupStatus, ModeChoice};
use quipu::{Precision, WriteOptions};
use serde_json::{Value, json};
use server_support::{RestoreHold, TOKEN, TestServer, bearer, client, engine_rows, segment_names};

const BASE: &str = "/api/v3/enterprise/restore";

fn call(server: &TestServer, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let mut req = client().request(method.parse().unwrap(), server.url(path)).header("Authorization", bearer());
    if let Some(body) = body {
        req = req.header("Content-Type", "application/json").body(body.to_string());
    }
    let resp = req.send().unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().unwrap();
    let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() };
    if status >= 400 {
        assert!(body["error"].is_string(), "status {status} without an error string: {text}");
        assert!(body.get("data").is_some(), "status {status} without data: {text}");
    }
    (status, body)
}

fn start(server: &TestServer, body: Value) -> (u16, Value) {
    call(server, "POST", BASE, Some(&body.to_string()))
}

fn write(server: &TestServer, lp: &str) {
    server.engine.write_lp("db", lp, Precision::Nanosecond, WriteOptions::default()).unwrap();
}

/// A server holding restores at `phase`, with a completed backup `b1` of
/// one row and a second row written after it.
fn server_held_at(phase: &'static str) -> (TestServer, RestoreHold) {
    let (hook, hold) = RestoreHold::at(phase);
    let server = TestServer::with_backup_config(BackupConfig {
        mode: ModeChoice::Copy,
        restore_hook: Some(hook),
        ..BackupConfig::default()
    });
    write(&server, "m,host=a v=1i 1");
    let name = server.backups().start(BackupRequest::full().named("b1")).unwrap();
    assert_eq!(server.backups().wait(&name).unwrap().status, BackupStatus::Completed);
    write(&server, "m,host=a v=2i 2");
    (server, hold)
}

#[test]
fn start_get_list_and_the_answers_while_running_and_after() {
    let (server, mut hold) = server_held_at("rebuilding");
    let before = engine_rows(&server.engine);
    let (status, body) = start(&server, json!({ "backup_name": "b1" }));
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "in_progress");
    let id = body["restore_id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 26, "a ULID: {id}");
    assert!(ulid_like(&id), "{id}");
    assert_eq!(hold.wait_entered(), id);

    // While it runs: completed_at is null on GET, absent in the list.
    let (status, one) = call(&server, "GET", &format!("{BASE}/{id}"), None);
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["status"], "in_progress");
    assert_eq!(one["backup_name"], "b1");
    assert!(one["completed_at"].is_null() && one.get("completed_at").is_some(), "{one}");
    assert_eq!(one["total_files"], 1);
    assert!(one["total_size_bytes"].as_u64().unwrap() > 0);
    assert_eq!(one["progress"]["phase"], "rebuilding");
    assert_eq!(one["progress"]["files_done"], 1);
    let (status, listed) = call(&server, "GET", BASE, None);
    assert_eq!(status, 200);
    assert_eq!(listed["restores"][0]["restore_id"], id.as_str());
    assert!(listed["restores"][0].get("completed_at").is_none());

    // 409 for a second restore while one runs; the data is untouched.
    let (status, body) = start(&server, json!({ "backup_name": "b1" }));
    assert_eq!(status, 409, "{body}");
    assert_eq!(engine_rows(&server.engine), before);

    hold.release();
    let info = server.backups().wait_restore(&id).unwrap();
    assert_eq!(info.status, BackupStatus::Completed);
    let (status, one) = call(&server, "GET", &format!("{BASE}/{id}"), None);
    assert_eq!(status, 200);
    assert_eq!(one["status"], "completed");
    assert!(one["completed_at"].is_string(), "{one}");
    assert_eq!(server.ints("db", "m", "v"), vec![1]);

    // A completed restore cannot be cancelled: 404.
    let (status, body) = call(&server, "DELETE", &format!("{BASE}/{id}"), None);
    assert_eq!(status, 404, "{body}");

    // A second restore lists first (newest first).
    let (status, body) = start(&server, json!({ "backup_name": "b1" }));
    assert_eq!(status, 202, "{body}");
    let second = body["restore_id"].as_str().unwrap().to_string();
    server.backups().wait_restore(&second).unwrap();
    let (_, listed) = call(&server, "GET", BASE, None);
    let ids: Vec<&str> =
        listed["restores"].as_array().unwrap().iter().map(|r| r["restore_id"].as_str().unwrap()).collect();
    assert_eq!(ids, [second.as_str(), id.as_str()]);
}

fn ulid_like(id: &str) -> bool {
    id.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
}

#[test]
fn cancel_at_staging_and_at_rebuilding_leaves_the_live_data() {
    for phase in ["staging", "rebuilding"] {
        let (server, mut hold) = server_held_at(phase);
        let before = engine_rows(&server.engine);
        let segments_before = segment_names(server.dir.path());
        let (status, body) = start(&server, json!({ "backup_name": "b1" }));
        assert_eq!(status, 202, "{body}");
        let id = body["restore_id"].as_str().unwrap().to_string();
        hold.wait_entered();
        let (status, body) = call(&server, "DELETE", &format!("{BASE}/{id}"), None);
        assert_eq!(status, 204, "{phase}: {body}");
        assert!(body.is_null());
        hold.release();
        let info = server.backups().wait_restore(&id).unwrap();
        assert_eq!(info.status, BackupStatus::Cancelled, "{phase}: {info:?}");
        assert!(info.error.as_deref().unwrap_or("").contains("unchanged"), "{info:?}");
        assert_eq!(engine_rows(&server.engine), before, "{phase}: live data changed");
        assert_eq!(segment_names(server.dir.path()), segments_before, "{phase}: staged files left behind");
        assert_eq!(server.engine.last_restore().unwrap(), None);
        let (_, one) = call(&server, "GET", &format!("{BASE}/{id}"), None);
        assert_eq!(one["status"], "cancelled");
        // Cancelling again: it is no longer running.
        let (status, _) = call(&server, "DELETE", &format!("{BASE}/{id}"), None);
        assert_eq!(status, 404);
        // And the engine still takes writes.
        write(&server, "m,host=a v=3i 3");
    }
}

#[test]
fn a_restore_swapping_in_cannot_be_cancelled() {
    let (server, mut hold) = server_held_at("swapping");
    let (status, body) = start(&server, json!({ "backup_name": "b1" }));
    assert_eq!(status, 202, "{body}");
    let id = body["restore_id"].as_str().unwrap().to_string();
    hold.wait_entered();
    let (status, body) = call(&server, "DELETE", &format!("{BASE}/{id}"), None);
    assert_eq!(status, 404, "{body}");
    hold.release();
    assert_eq!(server.backups().wait_restore(&id).unwrap().status, BackupStatus::Completed);
    assert_eq!(server.ints("db", "m", "v"), vec![1]);
}

#[test]
fn bad_requests_unknown_names_and_ids() {
    let server = TestServer::with_backups(ModeChoice::Auto);
    write(&server, "m v=1i 1");
    let before = engine_rows(&server.engine);
    for bad in ["", "{", "[]", "{\"backup_name\": 5}", "{\"backup_name\": \"b\", \"verify\": \"some\"}"] {
        let (status, body) = call(&server, "POST", BASE, Some(bad));
        assert_eq!(status, 400, "{bad}: {body}");
    }
    for missing in [json!({}), json!({ "backup_name": "" }), json!({ "backup_name": null })] {
        let (status, body) = start(&server, missing.clone());
        assert_eq!(status, 400, "{missing}: {body}");
        assert!(body["error"].as_str().unwrap().contains("backup_name"), "{body}");
    }
    for unknown in ["nope", "../etc", "a/b", ".hidden"] {
        let (status, body) = start(&server, json!({ "backup_name": unknown }));
        assert_eq!(status, 404, "{unknown}: {body}");
    }
    for id in ["01J8X9Z0ABCDEFGHJKMNPQRSTV", "nope", "..", "%2e%2e%2fx"] {
        let (status, body) = call(&server, "GET", &format!("{BASE}/{id}"), None);
        assert_eq!(status, 404, "{id}: {body}");
        let (status, body) = call(&server, "DELETE", &format!("{BASE}/{id}"), None);
        assert_eq!(status, 404, "{id}: {body}");
    }
    let (status, body) = call(&server, "GET", BASE, None);
    assert_eq!((status, body), (200, json!({ "restores": [] })));
    assert_eq!(engine_rows(&server.engine), before);
}

#[test]
fn without_a_repository_503_and_without_the_token_401() {
    let server = TestServer::start();
    for (method, path, body) in [
        ("POST", BASE.to_string(), Some("{\"backup_name\": \"b\"}")),
        ("GET", BASE.to_string(), None),
        ("GET", format!("{BASE}/01J8X9Z0ABCDEFGHJKMNPQRSTV"), None),
        ("DELETE", format!("{BASE}/01J8X9Z0ABCDEFGHJKMNPQRSTV"), None),
    ] {
        let (status, answer) = call(&server, method, &path, body);
        assert_eq!(status, 503, "{method} {path}: {answer}");
    }
    let server = TestServer::with_backups(ModeChoice::Auto);
    for token in [None, Some("wrong")] {
        let mut req = client().post(server.url(BASE)).body("{\"backup_name\": \"b\"}");
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let resp = req.send().unwrap();
        assert_eq!(resp.status().as_u16(), 401);
        let body: Value = resp.json().unwrap();
        assert!(body["error"].is_string());
    }
    let ok = client().get(server.url(BASE)).header("Authorization", format!("Token {TOKEN}")).send().unwrap();
    assert_eq!(ok.status().as_u16(), 200);
}
