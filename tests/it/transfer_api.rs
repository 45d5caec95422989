//! Pushes and pulls as server jobs over the InfluxDB face's extension
//! (`/api/v3/enterprise/backup/{name}/push|pull`,
//! `/api/v3/enterprise/transfer[/{id}]`), against moto: a push reports its
//! progress to completion and lands the backup remotely; a second push
//! after a small change sends only the new objects; the backup deleted
//! locally comes back by a pull and restores to exactly its rows; a cancel
//! leaves no remote manifest; and every bad request is a 4xx with a JSON
//! body, nothing started.
#![cfg(all(feature = "remote", feature = "server"))]

use std::time::{Duration, Instant};

use quipu::backup::ModeChoice;
use quipu::remote::Remote;
use serde_json::{Value, json};

use crate::remote_support::S3Server;
use crate::server_support::{TestServer, bearer, client, engine_rows, json as error_json};

fn post(server: &TestServer, path: &str, body: &Value) -> (u16, Value) {
    let resp = client().post(server.url(path)).header("Authorization", bearer()).json(body).send().unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

fn get(server: &TestServer, path: &str) -> (u16, Value) {
    let resp = client().get(server.url(path)).header("Authorization", bearer()).send().unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

fn target(s3: &S3Server, prefix: &str) -> Value {
    json!({
        "remote": s3.url(prefix),
        "endpoint": s3.endpoint,
        "region": "us-east-1",
        "access_key_id": "testing",
        "secret_access_key": "testing",
    })
}

fn backup(server: &TestServer, name: &str) {
    let (status, _) = post(server, "/api/v3/enterprise/backup", &json!({ "type": "full", "name": name }));
    assert_eq!(status, 202);
    let info = server.backups().wait(name).unwrap();
    assert_eq!(info.status.as_str(), "completed");
}

fn write(server: &TestServer, from: i64, n: i64) {
    let lp: String = (from..from + n).map(|i| format!("m,host=h{} v={i}i {}\n", i % 4, i * 1_000_000_000)).collect();
    server.engine.write_lp("db", &lp, quipu::Precision::Nanosecond, quipu::WriteOptions::default()).unwrap();
    server.engine.flush().unwrap();
}

/// Polls a transfer until it ends; its last state.
fn finished(server: &TestServer, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, info) = get(server, &format!("/api/v3/enterprise/transfer/{id}"));
        assert_eq!(status, 200, "{info}");
        if info["status"] != "in_progress" {
            return info;
        }
        assert!(Instant::now() < deadline, "transfer {id} never ended: {info}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn start(server: &TestServer, kind: &str, name: &str, body: &Value) -> String {
    let (status, answer) = post(server, &format!("/api/v3/enterprise/backup/{name}/{kind}"), body);
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["status"], "in_progress");
    answer["transfer_id"].as_str().unwrap().to_string()
}

#[test]
fn push_and_pull_jobs_round_trip_a_backup_and_send_only_what_changed() {
    let server = TestServer::with_backups(ModeChoice::Copy);
    let s3 = S3Server::moto("jobs");
    for k in 0..10 {
        write(&server, k * 1_000, 1_000);
    }
    backup(&server, "first");
    let rows = engine_rows(&server.engine);

    let id = start(&server, "push", "first", &target(&s3, "site"));
    let done = finished(&server, &id);
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["kind"], "push");
    assert_eq!(done["objects_done"], done["objects_total"], "{done}");
    assert_eq!(done["bytes_done"], done["bytes_total"], "{done}");
    assert_eq!(done["objects_moved"], done["objects_total"], "a first push sends everything: {done}");
    assert_eq!(done["remote"], s3.url("site"));
    let remote = Remote::open(&s3.url("site"), s3.options()).unwrap();
    assert_eq!(remote.list().unwrap(), vec!["first".to_string()]);

    // One new file (same table: the catalog is unchanged): the second push sends it alone.
    write(&server, 10_000, 100);
    backup(&server, "second");
    let second = finished(&server, &start(&server, "push", "second", &target(&s3, "site")));
    assert_eq!(second["status"], "completed", "{second}");
    assert_eq!(second["objects_moved"], 1, "only the new file: {second}");
    let (status, listed) = get(&server, "/api/v3/enterprise/transfer");
    assert_eq!(status, 200);
    let ids: Vec<&str> = listed["transfers"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![second["id"].as_str().unwrap(), id.as_str()], "newest first");

    // Lost locally, back from the remote, restored: exactly its rows.
    let resp = client().delete(server.url("/api/v3/enterprise/backup/first")).header("Authorization", bearer());
    assert_eq!(resp.send().unwrap().status(), 200);
    let pulled = finished(&server, &start(&server, "pull", "first", &target(&s3, "site")));
    assert_eq!(pulled["status"], "completed", "{pulled}");
    assert_eq!(pulled["kind"], "pull");
    assert_eq!(pulled["objects_done"], pulled["objects_total"], "{pulled}");
    write(&server, 20_000, 10);
    let (status, answer) = post(&server, "/api/v3/enterprise/restore", &json!({ "backup_name": "first" }));
    assert_eq!(status, 202, "{answer}");
    let restore = server.backups().wait_restore(answer["restore_id"].as_str().unwrap()).unwrap();
    assert_eq!(restore.status.as_str(), "completed", "{restore:?}");
    assert_eq!(engine_rows(&server.engine), rows, "the pulled backup restores to exactly its rows");

    // A pull of a backup the remote lacks ends failed, naming it.
    let missing = finished(&server, &start(&server, "pull", "nope", &target(&s3, "site")));
    assert_eq!(missing["status"], "failed");
    assert!(missing["error"].as_str().unwrap().contains("nope"), "{missing}");
    // A pull onto a different local backup of the same name is refused.
    let clash = finished(&server, &start(&server, "pull", "second", &target(&s3, "elsewhere")));
    assert_eq!(clash["status"], "failed", "{clash}");
}

#[test]
fn a_cancelled_push_leaves_no_remote_manifest() {
    let server = TestServer::with_backups(ModeChoice::Copy);
    let s3 = S3Server::moto("cancel");
    for k in 0..40 {
        write(&server, k * 500, 500);
    }
    backup(&server, "b");
    let id = start(&server, "push", "b", &target(&s3, "p"));
    let resp = client()
        .delete(server.url(&format!("/api/v3/enterprise/transfer/{id}")))
        .header("Authorization", bearer())
        .send()
        .unwrap();
    let status = resp.status().as_u16();
    let ended = finished(&server, &id);
    let remote = Remote::open(&s3.url("p"), s3.options()).unwrap();
    match status {
        204 => {
            assert_eq!(ended["status"], "cancelled", "{ended}");
            assert_eq!(ended["error"], "cancelled by request");
            assert!(remote.list().unwrap_or_default().is_empty(), "a cancelled push left a manifest");
        }
        409 => assert_eq!(ended["status"], "completed", "{ended}"),
        other => panic!("cancel answered {other}"),
    }
    // Cancelling again: it has ended.
    let again = client()
        .delete(server.url(&format!("/api/v3/enterprise/transfer/{id}")))
        .header("Authorization", bearer())
        .send()
        .unwrap();
    let (status, body) = error_json(again);
    assert_eq!(status, 409, "{body}");
    // A rerun completes.
    let rerun = finished(&server, &start(&server, "push", "b", &target(&s3, "p")));
    assert_eq!(rerun["status"], "completed", "{rerun}");
    assert_eq!(remote.list().unwrap(), vec!["b".to_string()]);
}

#[test]
fn bad_transfer_requests_are_4xx_and_start_nothing() {
    let server = TestServer::with_backups(ModeChoice::Copy);
    write(&server, 0, 10);
    backup(&server, "b");
    let remote = |url: &str| json!({ "remote": url });
    let folder = tempfile::tempdir().unwrap();
    let folder_url = folder.path().to_str().unwrap().to_string();
    let cases: Vec<(&str, String, Vec<u8>, u16)> = vec![
        ("unknown backup", "/api/v3/enterprise/backup/nope/push".into(), remote(&folder_url).to_string().into(), 404),
        ("no remote", "/api/v3/enterprise/backup/b/push".into(), b"{}".to_vec(), 400),
        ("empty remote", "/api/v3/enterprise/backup/b/push".into(), remote("").to_string().into(), 400),
        ("malformed JSON", "/api/v3/enterprise/backup/b/push".into(), b"{\"remote\":".to_vec(), 400),
        (
            "unknown field",
            "/api/v3/enterprise/backup/b/push".into(),
            json!({ "remote": folder_url, "bogus": 1 }).to_string().into(),
            400,
        ),
        ("relative folder", "/api/v3/enterprise/backup/b/push".into(), remote("some/folder").to_string().into(), 400),
        ("unsupported scheme", "/api/v3/enterprise/backup/b/push".into(), remote("ftp://h/x").to_string().into(), 400),
        ("bad backup name", "/api/v3/enterprise/backup/..x/pull".into(), remote(&folder_url).to_string().into(), 400),
        (
            "the server's own repository",
            "/api/v3/enterprise/backup/b/push".into(),
            remote(server.repo().to_str().unwrap()).to_string().into(),
            400,
        ),
    ];
    for (what, path, body, want) in cases {
        let resp = client().post(server.url(&path)).header("Authorization", bearer()).body(body).send().unwrap();
        let (status, answer) = error_json(resp);
        assert_eq!(status, want, "{what}: {answer}");
    }
    let (status, listed) = get(&server, "/api/v3/enterprise/transfer");
    assert_eq!(status, 200);
    assert_eq!(listed["transfers"], json!([]), "a refused request started a transfer");
    for id in ["nope", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "../../etc"] {
        let (status, body) = error_json(
            client()
                .get(server.url(&format!("/api/v3/enterprise/transfer/{id}")))
                .header("Authorization", bearer())
                .send()
                .unwrap(),
        );
        assert_eq!(status, 404, "{id}: {body}");
        let (status, body) = error_json(
            client()
                .delete(server.url(&format!("/api/v3/enterprise/transfer/{id}")))
                .header("Authorization", bearer())
                .send()
                .unwrap(),
        );
        assert_eq!(status, 404, "{id}: {body}");
    }
    // A folder remote works as well as S3, and pushing into it is a job like any other.
    let done = finished(&server, &start(&server, "push", "b", &remote(&folder_url)));
    assert_eq!(done["status"], "completed", "{done}");
    assert!(folder.path().join("manifests/b.json").is_file());
}

/// A store that accepts connections and never answers: the push hangs in a
/// request, and a cancel still ends it (the request is dropped), as does
/// the server's shutdown.
#[test]
fn a_push_stuck_on_a_silent_store_is_cancelled_promptly() {
    let mut server = TestServer::with_backups(ModeChoice::Copy);
    write(&server, 0, 100);
    backup(&server, "b");
    // Connections complete in the kernel's backlog; nothing reads them.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let body = json!({
        "remote": "s3://silent/p",
        "endpoint": format!("http://{}", silent.local_addr().unwrap()),
        "region": "us-east-1",
        "access_key_id": "k",
        "secret_access_key": "s",
    });
    let id = start(&server, "push", "b", &body);
    std::thread::sleep(Duration::from_millis(300));
    let (status, info) = get(&server, &format!("/api/v3/enterprise/transfer/{id}"));
    assert_eq!((status, info["status"].as_str()), (200, Some("in_progress")), "{info}");
    let resp = client()
        .delete(server.url(&format!("/api/v3/enterprise/transfer/{id}")))
        .header("Authorization", bearer())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 204);
    // A liveness bound (`finished`), not a timing assertion: without the
    // cancel reaching the request in flight this waits out the store's retries.
    let ended = finished(&server, &id);
    assert_eq!(ended["status"], "cancelled", "{ended}");
    // One more stuck push, left running: the shutdown cancels it and returns.
    let stuck = start(&server, "push", "b", &body);
    server.stop();
    let record = std::fs::read_to_string(server.repo().join(format!("transfers/{stuck}.json"))).unwrap();
    let record: Value = serde_json::from_str(&record).unwrap();
    assert_eq!(record["status"], "cancelled", "{record}");
    assert_eq!(record["error"], "cancelled: the server shut down");
    drop(silent);
}
