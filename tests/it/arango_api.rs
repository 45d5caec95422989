//! The ArangoDB hot-backup API by hand, as the reference's own examples
//! send it: the `{"error": false, "code", "result"}` envelope, a `local`
//! remote repository (`local://<abs path>`), progress records until
//! COMPLETED, 403 for an abort of a finished upload, 404 for an unknown or
//! other-kind job id and an unknown action, and a restore whose `previous`
//! undoes it. (python-arango drives the same routes in arango_client.rs.)
#![cfg(all(feature = "remote", feature = "server"))]

use std::time::{Duration, Instant};

use quipu::backup::ModeChoice;
use serde_json::{Value, json};

use crate::server_support::{TOKEN, TestServer, client, engine_rows};

fn call(server: &TestServer, action: &str, body: &Value) -> (u16, Value) {
    let resp = client()
        .post(server.url(&format!("/_admin/backup/{action}")))
        .basic_auth("root", Some(TOKEN))
        .json(body)
        .send()
        .unwrap();
    let status = resp.status().as_u16();
    let body: Value = resp.json().unwrap();
    if (200..300).contains(&status) {
        assert_eq!(body["error"], false, "{body}");
        assert_eq!(body["code"], status, "{body}");
    } else {
        assert_eq!(body["error"], true, "{body}");
        assert_eq!(body["code"], status, "{body}");
        assert!(body["errorNum"].is_u64() && body["errorMessage"].is_string(), "{body}");
    }
    (status, body)
}

fn write(server: &TestServer, from: i64) {
    let lp: String = (from..from + 50).map(|i| format!("m,host=h{} v={i}i {i}\n", i % 3)).collect();
    server.engine.write_lp("db", &lp, quipu::Precision::Nanosecond, quipu::WriteOptions::default()).unwrap();
}

fn until_done(server: &TestServer, action: &str, key: &str, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = call(server, action, &json!({ key: id }));
        assert_eq!(status, 200, "{body}");
        let record = &body["result"];
        assert_eq!(record[if key == "uploadId" { "UploadId" } else { "DownloadId" }], id);
        let state = record["DBServers"]["SNGL"]["Status"].as_str().unwrap().to_string();
        if state != "STARTED" {
            return record.clone();
        }
        assert!(Instant::now() < deadline, "{action} {id} never ended: {record}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_reference_examples_work_with_a_local_repository() {
    let server = TestServer::with_backups(ModeChoice::Copy);
    let remote = tempfile::tempdir().unwrap();
    let repository = format!("local:/{}", remote.path().display());
    let config = json!({ "local": { "type": "local" } });
    write(&server, 0);

    // An empty body is `{}`: a generated label.
    let resp = client().post(server.url("/_admin/backup/create")).basic_auth("root", Some(TOKEN)).send().unwrap();
    assert_eq!(resp.status(), 201);
    let (status, created) =
        call(&server, "create", &json!({ "label": "foo", "timeout": 120, "allowInconsistent": false }));
    assert_eq!(status, 201);
    let id = created["result"]["id"].as_str().unwrap().to_string();
    assert!(id.ends_with("_foo") && id.len() == "2019-04-28T12.00.00Z_foo".len(), "{id}");
    assert_eq!(created["result"]["nrDBServers"], 1);
    assert_eq!(created["result"]["potentiallyInconsistent"], false);
    let rows = engine_rows(&server.engine);

    let (_, listed) = call(&server, "list", &json!({ "id": id }));
    let entry = &listed["result"]["list"][&id];
    assert_eq!(entry["id"], id.as_str());
    assert_eq!(entry["available"], true);
    assert_eq!(entry["keys"], json!([]));
    assert_eq!(entry["countIncludesFilesOnly"], true);
    assert_eq!(listed["result"]["list"].as_object().unwrap().len(), 1);
    let (_, all) = call(&server, "list", &json!({}));
    assert_eq!(all["result"]["list"].as_object().unwrap().len(), 2);

    let (status, started) =
        call(&server, "upload", &json!({ "id": id, "remoteRepository": repository, "config": config }));
    assert_eq!(status, 202);
    let upload = started["result"]["uploadId"].as_str().unwrap().to_string();
    let record = until_done(&server, "upload", "uploadId", &upload);
    assert_eq!(record["DBServers"]["SNGL"]["Status"], "COMPLETED", "{record}");
    assert_eq!(record["BackupId"], id.as_str());
    assert_eq!(record["Cancelled"], false);
    let progress = &record["DBServers"]["SNGL"]["Progress"];
    assert_eq!(progress["Done"], progress["Total"], "{record}");
    assert!(remote.path().join(format!("manifests/{id}.json")).is_file());
    // Finished: an abort is refused; another kind's id is unknown here.
    let (status, _) = call(&server, "upload", &json!({ "uploadId": upload, "abort": true }));
    assert_eq!(status, 403);
    let (status, _) = call(&server, "download", &json!({ "downloadId": upload }));
    assert_eq!(status, 404);
    let (status, _) = call(&server, "download", &json!({ "downloadId": "01ARZ3NDEKTSV4RRFFQ69G5FAV" }));
    assert_eq!(status, 404);

    // Lost locally, downloaded (the reference's `local://` form), restored.
    let (status, _) = call(&server, "delete", &json!({ "id": id }));
    assert_eq!(status, 200);
    let reference_form = format!("local:/{}", remote.path().display()).replacen("local:/", "local://", 1);
    let (status, started) =
        call(&server, "download", &json!({ "id": id, "remoteRepository": reference_form, "config": config }));
    assert_eq!(status, 202);
    let download = started["result"]["downloadId"].as_str().unwrap().to_string();
    let record = until_done(&server, "download", "downloadId", &download);
    assert_eq!(record["DBServers"]["SNGL"]["Status"], "COMPLETED", "{record}");
    write(&server, 1_000);
    let (status, restored) = call(&server, "restore", &json!({ "id": id }));
    assert_eq!(status, 200, "{restored}");
    assert_eq!(restored["result"]["isCluster"], false);
    assert_eq!(engine_rows(&server.engine), rows, "the restore brought back exactly the backup's rows");
    let previous = restored["result"]["previous"].as_str().unwrap().to_string();
    let (status, _) = call(&server, "restore", &json!({ "id": previous }));
    assert_eq!(status, 200);
    assert_ne!(engine_rows(&server.engine), rows, "restoring `previous` undid the restore");

    // Bad requests.
    for (action, body, want) in [
        ("delete", json!({}), 400),
        ("restore", json!({ "id": 7 }), 400),
        ("upload", json!({ "id": id, "remoteRepository": repository }), 400),
        ("upload", json!({ "id": id, "remoteRepository": "local:relative", "config": config }), 400),
        ("upload", json!({ "id": id, "remoteRepository": repository, "config": { "local": { "type": "ftp" } } }), 400),
        ("upload", json!({ "uploadId": 5 }), 400),
        ("create", json!({ "label": "a/b" }), 400),
        ("create", json!({ "timeout": "soon" }), 400),
        ("list", json!({ "id": "2000-01-01T00.00.00Z_nope" }), 404),
    ] {
        let (status, body) = call(&server, action, &body);
        assert_eq!(status, want, "{action}: {body}");
    }
    let resp = client().post(server.url("/_admin/backup/explode")).basic_auth("root", Some(TOKEN)).send().unwrap();
    assert_eq!(resp.status(), 404);
    let resp = client().post(server.url("/_admin/backup/list")).basic_auth("root", Some("wrong")).send().unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().unwrap();
    assert_eq!(body["error"], true, "{body}");
}
