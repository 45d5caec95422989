//! The backup endpoints (`/api/v3/enterprise/backup`) against a live server:
//! every status code the issue lists, with the bodies behind them. Jobs that
//! must be running while a request arrives are held in their copy phase by
//! a [`Gate`] (a FIFO in place of a segment file), never by timing.
#![cfg(feature = "server")]

use crate::server_support;

use quipu::backup::{ModeChoice, Repository};
use quipu::{Precision, WriteOptions};
use serde_json::{Value, json};
use server_support::{Gate, TOKEN, TestServer, bearer, client, eventually};

const BASE: &str = "/api/v3/enterprise/backup";

/// Sends a request with the token; status and JSON body (Null when none).
fn call(server: &TestServer, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let mut req = client().request(method.parse().unwrap(), server.url(path)).header("Authorization", bearer());
    if let Some(body) = body {
        req = req.header("Content-Type", "application/json").body(body.to_string());
    }
    answer(req.send().unwrap())
}

fn answer(resp: reqwest::blocking::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().unwrap();
    let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() };
    if status >= 400 {
        assert!(body["error"].is_string(), "status {status} without an error string: {text}");
        assert!(body.get("data").is_some(), "status {status} without data: {text}");
    }
    (status, body)
}

fn create(server: &TestServer, body: Value) -> (u16, Value) {
    call(server, "POST", BASE, Some(&body.to_string()))
}

fn get(server: &TestServer, name: &str) -> (u16, Value) {
    call(server, "GET", &format!("{BASE}/{name}"), None)
}

fn list(server: &TestServer) -> Vec<Value> {
    let (status, body) = call(server, "GET", BASE, None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body.as_object().unwrap().keys().collect::<Vec<_>>(), ["backups"]);
    body["backups"].as_array().unwrap().clone()
}

/// Writes `n` rows of `db.<table>` from time `t0` and flushes them into one segment.
fn load(server: &TestServer, table: &str, t0: i64, n: i64) {
    let lp: String = (0..n).map(|i| format!("{table},host=h{} v={i}i,f={}.5 {}\n", i % 3, i * 7, t0 + i)).collect();
    server.engine.write_lp("db", &lp, Precision::Nanosecond, WriteOptions::default()).unwrap();
    server.engine.flush().unwrap();
}

/// Starts a backup and waits for it to complete.
fn backup(server: &TestServer, body: Value) -> String {
    let (status, answer) = create(server, body);
    assert_eq!(status, 202, "{answer}");
    let name = answer["backup_name"].as_str().unwrap().to_string();
    let info = server.backups().wait(&name).unwrap();
    assert_eq!(info.status.as_str(), "completed", "{info:?}");
    name
}

fn repo(server: &TestServer) -> Repository {
    Repository::open(server.repo()).unwrap()
}

#[test]
fn create_answers_202_and_lists_the_completed_backup() {
    let server = TestServer::with_backups(ModeChoice::Link);
    load(&server, "cpu", 0, 100);
    load(&server, "cpu", 1_000, 100);
    let (status, body) = create(&server, json!({"type": "full", "name": "first"}));
    assert_eq!(status, 202, "{body}");
    assert_eq!(body, json!({"backup_name": "first", "status": "in_progress"}));
    server.backups().wait("first").unwrap();

    let live = server.engine.live_files();
    assert_eq!(live.len(), 2);
    let (status, info) = get(&server, "first");
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["name"], "first");
    assert_eq!(info["type"], "full");
    assert_eq!(info["status"], "completed");
    assert_eq!(info["total_files"], 2);
    assert_eq!(info["total_size_bytes"], live.iter().map(|f| f.meta.size).sum::<u64>());
    assert!(info["created_at"].as_str().unwrap().ends_with('Z'), "{info}");
    assert!(info["completed_at"].as_str().unwrap() >= info["created_at"].as_str().unwrap(), "{info}");
    assert!(info.get("progress").is_none(), "{info}");
    assert!(info.get("error").is_none(), "{info}");
    // The only backup: every byte is unique to it (segments and catalog).
    let (manifest, _) = repo(&server).read_manifest("first").unwrap().unwrap();
    let all: u64 = manifest.objects().map(|o| o.size).sum();
    assert_eq!(info["unique_bytes"], all);

    let backups = list(&server);
    assert_eq!(backups, [info]);

    // A second backup of the same data shares every object: no unique bytes.
    backup(&server, json!({"type": "full", "name": "second"}));
    let backups = list(&server);
    assert_eq!(backups.iter().map(|b| b["name"].as_str().unwrap()).collect::<Vec<_>>(), ["first", "second"]);
    for b in &backups {
        assert_eq!(b["unique_bytes"], 0, "{b}");
        for field in ["name", "type", "status", "created_at", "completed_at", "total_files", "total_size_bytes"] {
            assert!(b.get(field).is_some(), "{field} missing from {b}");
        }
    }
}

/// `20261123T101530.123Z` from `2026-11-23T10:15:30.123Z`.
fn name_of_time(created_at: &str) -> String {
    created_at.replace(['-', ':'], "")
}

#[test]
fn generated_names_are_utc_timestamps_that_sort_in_creation_order() {
    let server = TestServer::with_backups(ModeChoice::Link);
    load(&server, "cpu", 0, 10);
    let mut names = Vec::new();
    for _ in 0..3 {
        let (status, body) = create(&server, json!({"type": "full"}));
        assert_eq!(status, 202, "{body}");
        assert_eq!(body["status"], "in_progress");
        let name = body["backup_name"].as_str().unwrap().to_string();
        server.backups().wait(&name).unwrap();
        names.push(name);
    }
    for name in &names {
        let (status, info) = get(&server, name);
        assert_eq!(status, 200);
        // The name is the creation time, or that time with a -N suffix when
        // two backups start within one millisecond.
        let base = name_of_time(info["created_at"].as_str().unwrap());
        let rest = name.strip_prefix(&base).unwrap_or_else(|| panic!("{name} is not {base}"));
        assert!(rest.is_empty() || rest.strip_prefix('-').is_some_and(|n| n.parse::<u32>().is_ok()), "{name}");
        assert_eq!(base.len(), "20261123T101530.123Z".len(), "{base}");
        assert!(quipu::backup::validate_name(name).is_ok());
    }
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(sorted, names, "generated names sort in creation order");
    let listed: Vec<String> = list(&server).iter().map(|b| b["name"].as_str().unwrap().to_string()).collect();
    assert_eq!(listed, names, "the list is oldest first");
}

#[test]
fn an_existing_name_is_409_without_force() {
    let server = TestServer::with_backups(ModeChoice::Link);
    load(&server, "cpu", 0, 10);
    backup(&server, json!({"type": "full", "name": "n"}));
    let before = std::fs::read(server.repo().join("manifests/n.json")).unwrap();
    load(&server, "cpu", 100, 10);
    for body in [json!({"type": "full", "name": "n"}), json!({"type": "full", "name": "n", "force": false})] {
        let (status, answer) = create(&server, body);
        assert_eq!(status, 409, "{answer}");
        assert!(answer["error"].as_str().unwrap().contains("already exists"), "{answer}");
    }
    assert_eq!(std::fs::read(server.repo().join("manifests/n.json")).unwrap(), before);
    assert_eq!(list(&server).len(), 1);
    assert!(!server.repo().join("jobs/n.json").exists(), "a refused request leaves no job record");
}

#[test]
fn a_running_backup_is_409_and_shows_its_progress() {
    let server = TestServer::with_backups(ModeChoice::Copy);
    load(&server, "cpu", 0, 50);
    load(&server, "mem", 0, 50);
    let gate = Gate::newest_segment(&server.engine);
    let (status, body) = create(&server, json!({"type": "full", "name": "slow"}));
    assert_eq!(status, 202, "{body}");

    // Held at the gated file: the job stays in its copy phase, the other
    // file copied.
    eventually("the other file copied", || get(&server, "slow").1["progress"]["files_done"] == 1);
    let (status, info) = get(&server, "slow");
    assert_eq!(status, 200);
    assert_eq!(info["status"], "in_progress");
    assert!(info.get("completed_at").is_none(), "{info}");
    assert_eq!(info["total_files"], 2);
    let progress = &info["progress"];
    assert_eq!(progress["files_total"], 2);
    assert_eq!(progress["phase"], "copying");
    assert_eq!(progress["files_done"], 1);
    assert!(progress["bytes_done"].as_u64().unwrap() < progress["bytes_total"].as_u64().unwrap(), "{info}");
    assert_eq!(list(&server), std::slice::from_ref(&info));

    for body in [json!({"type": "full", "name": "slow"}), json!({"type": "full", "name": "slow", "force": true})] {
        let (status, answer) = create(&server, body);
        assert_eq!(status, 409, "{answer}");
        assert!(answer["error"].as_str().unwrap().contains("in progress"), "{answer}");
    }
    let (status, answer) = call(&server, "DELETE", &format!("{BASE}/slow"), None);
    assert_eq!(status, 409, "{answer}");
    let (status, answer) = call(&server, "POST", &format!("{BASE}/slow/verify"), None);
    assert_eq!(status, 409, "{answer}");
    assert!(!server.repo().join("manifests/slow.json").exists());

    gate.release();
    let done = server.backups().wait("slow").unwrap();
    assert_eq!(done.status.as_str(), "completed", "{done:?}");
    let (_, info) = get(&server, "slow");
    assert_eq!(info["status"], "completed");
    assert!(info["completed_at"].is_string(), "{info}");
    assert!(info.get("progress").is_none(), "{info}");
    let (status, report) = call(&server, "POST", &format!("{BASE}/slow/verify"), None);
    assert_eq!((status, report["status"].as_str()), (200, Some("ok")), "{report}");
}

#[test]
fn force_replaces_a_completed_backup_once_the_new_one_completes() {
    let server = TestServer::with_backups(ModeChoice::Copy);
    load(&server, "cpu", 0, 50);
    backup(&server, json!({"type": "full", "name": "x"}));
    let (_, old) = get(&server, "x");
    let old_manifest = std::fs::read(server.repo().join("manifests/x.json")).unwrap();

    load(&server, "cpu", 1_000, 50);
    let gate = Gate::newest_segment(&server.engine);
    let (status, body) = create(&server, json!({"type": "full", "name": "x", "force": true}));
    assert_eq!(status, 202, "{body}");
    eventually("the copy phase", || get(&server, "x").1["progress"]["phase"] == "copying");
    let (_, running) = get(&server, "x");
    assert_eq!(running["status"], "in_progress");
    // Meanwhile the old backup is still there, whole.
    assert_eq!(std::fs::read(server.repo().join("manifests/x.json")).unwrap(), old_manifest);
    let report = repo(&server).check(true).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.manifests, 1);

    gate.release();
    server.backups().wait("x").unwrap();
    let (_, new) = get(&server, "x");
    assert_eq!(new["status"], "completed", "{new}");
    assert_eq!(new["created_at"], running["created_at"], "the new backup's time");
    assert!(new["created_at"].as_str().unwrap() >= old["created_at"].as_str().unwrap());
    assert_eq!(old["total_files"], 1);
    assert_eq!(new["total_files"], 2);
    assert_ne!(std::fs::read(server.repo().join("manifests/x.json")).unwrap(), old_manifest);
    assert_eq!(list(&server).len(), 1);
    let (status, report) = call(&server, "POST", &format!("{BASE}/x/verify"), None);
    assert_eq!((status, report["status"].as_str()), (200, Some("ok")), "{report}");
}

#[test]
fn a_cancelled_forced_backup_leaves_the_old_one_valid() {
    let server = TestServer::with_backups(ModeChoice::Copy);
    load(&server, "cpu", 0, 50);
    backup(&server, json!({"type": "full", "name": "x"}));
    let (_, old) = get(&server, "x");
    // A new table: the catalog changes, so the forced job adds a catalog
    // object before it blocks, which the cancel must sweep again.
    load(&server, "mem", 0, 50);
    let gate = Gate::newest_segment(&server.engine);
    let (status, _) = create(&server, json!({"type": "full", "name": "x", "force": true}));
    assert_eq!(status, 202);
    let feeder = gate.feed_forever();
    let (status, body) = call(&server, "DELETE", BASE, Some(r#"{"name": "x"}"#));
    assert_eq!((status, body), (200, json!({"backup_name": "x"})));
    feeder.join().unwrap();

    let (_, info) = get(&server, "x");
    assert_eq!(info["status"], "completed", "{info}");
    assert_eq!(info["created_at"], old["created_at"]);
    assert_eq!(info["total_files"], 1);
    assert_eq!(info["last_attempt"]["status"], "cancelled", "{info}");
    let (status, report) = call(&server, "POST", &format!("{BASE}/x/verify"), None);
    assert_eq!((status, report["status"].as_str()), (200, Some("ok")), "{report}");
    eventually("the cancelled job's objects swept", || repo(&server).check(false).unwrap().unreferenced_objects == 0);
    assert!(server_support::repo_files(server.repo()).1.is_empty(), "temp files left");
}

#[test]
fn malformed_requests_are_400_and_start_nothing() {
    let server = TestServer::with_backups(ModeChoice::Link);
    load(&server, "cpu", 0, 10);
    let bodies = [
        "",
        "{",
        "not json",
        "[]",
        r#"{"type": 5}"#,
        r#"{"name": "a"}"#,
        "{}",
        r#"{"type": "partial"}"#,
        r#"{"type": "FULL"}"#,
        r#"{"type": "full", "name": "a/b"}"#,
        r#"{"type": "full", "name": ".x"}"#,
        r#"{"type": "full", "name": ""}"#,
        r#"{"type": "full", "name": "a b"}"#,
        r#"{"type": "full", "force": "yes"}"#,
        r#"{"type": "full", "parent": "p"}"#,
        // No completed backup to follow yet.
        r#"{"type": "incremental"}"#,
    ];
    for body in bodies {
        let (status, answer) = call(&server, "POST", BASE, Some(body));
        assert_eq!(status, 400, "{body}: {answer}");
    }
    let long = json!({"type": "full", "name": "n".repeat(129)}).to_string();
    assert_eq!(call(&server, "POST", BASE, Some(&long)).0, 400);
    assert!(list(&server).is_empty());
    assert!(std::fs::read_dir(server.repo().join("manifests")).unwrap().next().is_none());
}

#[test]
fn an_incremental_backup_records_its_parent_and_lists_every_file() {
    let server = TestServer::with_backups(ModeChoice::Link);
    load(&server, "cpu", 0, 10);
    backup(&server, json!({"type": "full", "name": "base"}));
    load(&server, "cpu", 100, 10);
    let (status, answer) = create(&server, json!({"type": "incremental", "name": "inc", "parent": "nope"}));
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("nope"), "{answer}");
    assert_eq!(get(&server, "inc").0, 404);

    backup(&server, json!({"type": "incremental", "name": "inc", "parent": "base"}));
    let (_, info) = get(&server, "inc");
    assert_eq!((info["type"].as_str(), info["parent"].as_str()), (Some("incremental"), Some("base")), "{info}");
    let repo = repo(&server);
    let (_, base_hash) = repo.read_manifest("base").unwrap().unwrap();
    let (inc, _) = repo.read_manifest("inc").unwrap().unwrap();
    let parent = inc.parent.clone().unwrap();
    assert_eq!((parent.name.as_str(), parent.blake3.as_str()), ("base", base_hash.as_str()));
    // A full listing: every live file, not only the new one.
    let mut live: Vec<String> = server.engine.live_files().iter().map(|f| f.meta.blake3_hex()).collect();
    let mut listed: Vec<String> = inc.files.iter().map(|f| f.blake3.clone()).collect();
    live.sort();
    listed.sort();
    assert_eq!(listed, live);
    assert_eq!(inc.files.len(), 2);
    assert_eq!(inc.added_objects, 1);

    // Without a parent: the newest completed backup.
    backup(&server, json!({"type": "incremental", "name": "inc2"}));
    assert_eq!(get(&server, "inc2").1["parent"], "inc");
}

#[test]
fn get_decodes_the_name_and_is_404_for_unknown_ones() {
    let server = TestServer::with_backups(ModeChoice::Link);
    load(&server, "cpu", 0, 10);
    backup(&server, json!({"type": "full", "name": "n-x.1"}));
    let (status, info) = get(&server, "n%2Dx%2E1");
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["name"], "n-x.1");
    let (status, info) = get(&server, "n-x.1");
    assert_eq!((status, info["name"].as_str()), (200, Some("n-x.1")));
    for unknown in ["nope", "n-x.2", "a%2Fb", "n-x"] {
        let (status, answer) = get(&server, unknown);
        assert_eq!(status, 404, "{unknown}: {answer}");
    }
}

#[test]
fn cancel_stops_a_running_backup_and_is_404_when_none_runs() {
    let server = TestServer::with_backups(ModeChoice::Copy);
    load(&server, "cpu", 0, 10);
    backup(&server, json!({"type": "full", "name": "done"}));
    load(&server, "cpu", 100, 10);
    let gate = Gate::newest_segment(&server.engine);
    let (status, _) = create(&server, json!({"type": "full", "name": "running"}));
    assert_eq!(status, 202);
    let feeder = gate.feed_forever();

    for (body, want) in [
        (r#"{"name": "done"}"#, 404),
        (r#"{"name": "nope"}"#, 404),
        ("{}", 400),
        (r#"{"name": ""}"#, 400),
        ("{", 400),
        ("", 400),
    ] {
        let (status, answer) = call(&server, "DELETE", BASE, Some(body));
        assert_eq!(status, want, "{body}: {answer}");
    }
    assert_eq!(get(&server, "running").1["status"], "in_progress");

    let (status, body) = call(&server, "DELETE", BASE, Some(r#"{"name": "running"}"#));
    assert_eq!((status, body), (200, json!({"backup_name": "running"})));
    // The job has stopped: the cancel answers once it has.
    let (_, info) = get(&server, "running");
    assert_eq!(info["status"], "cancelled", "{info}");
    assert!(info["error"].as_str().unwrap().contains("cancel"), "{info}");
    assert!(info["completed_at"].is_string(), "{info}");
    assert!(!server.repo().join("manifests/running.json").exists(), "a cancelled backup has no manifest");
    feeder.join().unwrap();
    drop(gate);
    let (status, answer) = call(&server, "DELETE", BASE, Some(r#"{"name": "running"}"#));
    assert_eq!(status, 404, "{answer}");
    assert_eq!(call(&server, "POST", &format!("{BASE}/running/verify"), None).0, 404);

    // A cancelled backup can be deleted like any other.
    let (status, body) = call(&server, "DELETE", &format!("{BASE}/running"), None);
    assert_eq!((status, body), (200, json!({"backup_name": "running", "type": "full"})));
    assert_eq!(get(&server, "running").0, 404);
    assert_eq!(get(&server, "done").1["status"], "completed");
    eventually("orphans swept", || repo(&server).check(false).unwrap().unreferenced_objects == 0);
}

#[test]
fn delete_answers_the_name_and_type_and_frees_only_its_objects() {
    let server = TestServer::with_backups(ModeChoice::Link);
    load(&server, "cpu", 0, 10);
    backup(&server, json!({"type": "full", "name": "a"}));
    load(&server, "cpu", 100, 10);
    backup(&server, json!({"type": "incremental", "name": "b"}));
    let repo = repo(&server);
    let (a, _) = repo.read_manifest("a").unwrap().unwrap();
    let (b, _) = repo.read_manifest("b").unwrap().unwrap();
    let b_only: Vec<String> = b.objects().map(|o| o.blake3).filter(|h| !a.objects().any(|o| o.blake3 == *h)).collect();
    assert_eq!(b_only.len(), 1);

    let (status, body) = call(&server, "DELETE", &format!("{BASE}/b"), None);
    assert_eq!((status, body), (200, json!({"backup_name": "b", "type": "incremental"})));
    assert_eq!(get(&server, "b").0, 404);
    assert!(!repo.object_path(&b_only[0]).exists());
    for o in a.objects() {
        assert!(repo.has_object(&o));
    }
    let (status, answer) = call(&server, "DELETE", &format!("{BASE}/b"), None);
    assert_eq!(status, 404, "{answer}");
    assert_eq!(call(&server, "DELETE", &format!("{BASE}/nope"), None).0, 404);
    let (status, body) = call(&server, "DELETE", &format!("{BASE}/a"), None);
    assert_eq!((status, body), (200, json!({"backup_name": "a", "type": "full"})));
    assert!(list(&server).is_empty());
    assert!(server_support::repo_files(server.repo()).0.is_empty(), "every object freed");
}

#[test]
fn a_name_that_leaves_the_repository_touches_nothing() {
    let server = TestServer::with_backups(ModeChoice::Link);
    load(&server, "cpu", 0, 10);
    backup(&server, json!({"type": "full", "name": "kept"}));
    // `<repo>/manifests/../../victim.json` is a file beside the repository.
    let victim = server.repo().parent().unwrap().join("victim.json");
    std::fs::write(&victim, r#"{"precious": true}"#).unwrap();
    let job_victim = server.repo().join("victim.json");
    std::fs::write(&job_victim, r#"{"precious": true}"#).unwrap();
    // Such a name can belong to no backup: 404, the status the reference
    // declares for these endpoints.
    for name in ["..%2F..%2Fvictim", "..%2Fvictim", "%2E%2E%2F%2E%2E%2Fvictim"] {
        let (status, answer) = call(&server, "DELETE", &format!("{BASE}/{name}"), None);
        assert_eq!(status, 404, "DELETE {name}: {answer}");
        let (status, answer) = call(&server, "POST", &format!("{BASE}/{name}/verify"), None);
        assert_eq!(status, 404, "verify {name}: {answer}");
        let (status, answer) = get(&server, name);
        assert_eq!(status, 404, "GET {name}: {answer}");
    }
    assert!(victim.exists(), "DELETE of a backup removed a file outside the repository");
    assert!(job_victim.exists(), "DELETE of a backup removed a file outside manifests/ and jobs/");
    assert_eq!(get(&server, "kept").1["status"], "completed");
}

#[test]
fn verify_answers_a_report_and_404_for_unknown_backups() {
    let server = TestServer::with_backups(ModeChoice::Copy);
    load(&server, "cpu", 0, 10);
    load(&server, "cpu", 100, 10);
    backup(&server, json!({"type": "full", "name": "v"}));
    let (status, report) = call(&server, "POST", &format!("{BASE}/v/verify"), None);
    assert_eq!(status, 200, "{report}");
    let (manifest, _) = repo(&server).read_manifest("v").unwrap().unwrap();
    assert_eq!(report["backup_name"], "v");
    assert_eq!(report["status"], "ok");
    assert_eq!(report["objects_checked"], 3, "two segments and the catalog");
    assert_eq!(report["bytes_checked"], manifest.objects().map(|o| o.size).sum::<u64>());
    assert_eq!(report["problems"], json!([]));
    let (status, answer) = call(&server, "POST", &format!("{BASE}/nope/verify"), None);
    assert_eq!(status, 404, "{answer}");
}

fn every_endpoint() -> Vec<(&'static str, String, Option<&'static str>)> {
    vec![
        ("POST", BASE.to_string(), Some(r#"{"type": "full", "name": "n"}"#)),
        ("GET", BASE.to_string(), None),
        ("GET", format!("{BASE}/n"), None),
        ("DELETE", BASE.to_string(), Some(r#"{"name": "n"}"#)),
        ("DELETE", format!("{BASE}/n"), None),
        ("POST", format!("{BASE}/n/verify"), None),
    ]
}

#[test]
fn every_endpoint_is_503_without_a_backup_service() {
    let server = TestServer::start();
    for (method, path, body) in every_endpoint() {
        let (status, answer) = call(&server, method, &path, body);
        assert_eq!(status, 503, "{method} {path}: {answer}");
        assert!(answer["error"].as_str().unwrap().contains("backup"), "{answer}");
    }
}

#[test]
fn every_endpoint_is_401_without_the_token() {
    let server = TestServer::with_backups(ModeChoice::Link);
    load(&server, "cpu", 0, 10);
    for (method, path, body) in every_endpoint() {
        for auth in [None, Some("Bearer wrong".to_string()), Some(format!("Token {TOKEN}x"))] {
            let mut req = client().request(method.parse().unwrap(), server.url(&path));
            if let Some(auth) = &auth {
                req = req.header("Authorization", auth);
            }
            if let Some(body) = body {
                req = req.header("Content-Type", "application/json").body(body);
            }
            let (status, answer) = answer(req.send().unwrap());
            assert_eq!(status, 401, "{method} {path} {auth:?}: {answer}");
        }
    }
    assert!(list(&server).is_empty(), "an unauthenticated POST started a backup");
}
