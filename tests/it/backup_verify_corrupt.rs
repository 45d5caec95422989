//! A flipped byte in one object: verify (service and HTTP) names that
//! object, as corrupt, with every backup that uses it, and no other object;
//! `quipu repo check DIR --read-data` exits non-zero naming the object and
//! the backups, and exits 0 on the intact repository.
#![cfg(feature = "server")]

use crate::server_support;

use std::process::Command;

use quipu::backup::{BackupRequest, ModeChoice, ObjectProblem, Repository};
use quipu::{Precision, WriteOptions};
use serde_json::Value;
use server_support::{TestServer, bearer, client};

fn write(server: &TestServer, table: &str, t0: i64, n: i64) {
    let lp: String = (0..n).map(|i| format!("{table},host=h{} v={}i {}\n", i % 3, i * 11, t0 + i)).collect();
    server.engine.write_lp("db", &lp, Precision::Nanosecond, WriteOptions::default()).unwrap();
    server.engine.flush().unwrap();
}

fn backup(server: &TestServer, request: BackupRequest) {
    let name = server.backups().start(request).unwrap();
    assert_eq!(server.backups().wait(&name).unwrap().status.as_str(), "completed");
}

fn repo_check(dir: &std::path::Path, read_data: bool) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quipu"));
    cmd.args(["repo", "check", dir.to_str().unwrap()]);
    if read_data {
        cmd.arg("--read-data");
    }
    let out = cmd.output().unwrap();
    (out.status.success(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

fn http_verify(server: &TestServer, name: &str) -> Value {
    let resp = client()
        .post(server.url(&format!("/api/v3/enterprise/backup/{name}/verify")))
        .header("Authorization", bearer())
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    resp.json().unwrap()
}

/// Backups a {catalog, s1}, b {catalog, s1, s2} and c {catalog, compacted}:
/// s1 is used by a and b only.
fn three_backups() -> (TestServer, String) {
    let server = TestServer::with_backups(ModeChoice::Copy);
    write(&server, "cpu", 0, 100);
    let s1 = server.engine.live_files()[0].meta.blake3_hex();
    backup(&server, BackupRequest::full().named("a"));
    write(&server, "cpu", 1_000, 100);
    backup(&server, BackupRequest::full().named("b").incremental(None));
    server.engine.compact().unwrap();
    backup(&server, BackupRequest::full().named("c").incremental(None));
    (server, s1)
}

#[test]
fn a_flipped_byte_is_named_with_every_backup_that_uses_it() {
    let (server, s1) = three_backups();
    let repo = Repository::open(server.repo()).unwrap();
    let users: Vec<String> = ["a", "b", "c"]
        .into_iter()
        .filter(|n| repo.read_manifest(n).unwrap().unwrap().0.objects().any(|o| o.blake3 == s1))
        .map(String::from)
        .collect();
    assert_eq!(users, ["a", "b"]);

    // Intact: the offline check passes, with and without reading data.
    for read_data in [false, true] {
        let (ok, stdout, stderr) = repo_check(server.repo(), read_data);
        assert!(ok, "read_data {read_data}: {stdout}{stderr}");
        assert!(stderr.contains("3 manifests"), "{stderr}");
    }

    let path = repo.object_path(&s1);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();

    for name in ["a", "b"] {
        let report = server.backups().verify(name).unwrap();
        assert_eq!(report.status, "corrupt", "{report:?}");
        assert_eq!(report.problems.len(), 1, "only the flipped object: {report:?}");
        let problem = &report.problems[0];
        match &problem.problem {
            ObjectProblem::Corrupt { blake3, actual } => {
                assert_eq!(blake3, &s1);
                assert_eq!(actual.as_str(), blake3::hash(&bytes).to_hex().as_str());
            }
            other => panic!("expected corrupt, got {other:?}"),
        }
        assert_eq!(problem.backups, ["a", "b"]);

        let json = http_verify(&server, name);
        assert_eq!(json["backup_name"], name);
        assert_eq!(json["status"], "corrupt", "{json}");
        let problems = json["problems"].as_array().unwrap();
        assert_eq!(problems.len(), 1, "{json}");
        assert_eq!(problems[0]["problem"], "corrupt");
        assert_eq!(problems[0]["blake3"], s1.as_str());
        assert_eq!(problems[0]["backups"], serde_json::json!(["a", "b"]));
    }
    let report = server.backups().verify("c").unwrap();
    assert_eq!((report.status.as_str(), report.problems.len()), ("ok", 0), "{report:?}");
    assert_eq!(http_verify(&server, "c")["status"], "ok");

    let report = repo.check(true).unwrap();
    assert!(!report.is_clean());
    assert_eq!(report.problems.len(), 1);
    assert_eq!(report.problems[0].0.blake3(), s1);
    assert_eq!(report.problems[0].1, ["a", "b"]);

    let (ok, stdout, stderr) = repo_check(server.repo(), true);
    assert!(!ok, "a corrupt object must fail the check: {stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one problem line: {stdout}");
    assert!(lines[0].contains(&s1) && lines[0].contains("corrupt"), "{stdout}");
    assert!(lines[0].contains("used by a, b"), "{stdout}");
    assert!(stderr.contains("1 bad objects"), "{stderr}");
    // Without --read-data only presence and size are checked: same size, passes.
    let (ok, stdout, stderr) = repo_check(server.repo(), false);
    assert!(ok, "{stdout}{stderr}");
}

#[test]
fn a_missing_or_truncated_object_is_named_too() {
    let (server, s1) = three_backups();
    let repo = Repository::open(server.repo()).unwrap();
    let path = repo.object_path(&s1);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
    let report = server.backups().verify("b").unwrap();
    assert_eq!(report.problems.len(), 1);
    assert!(matches!(report.problems[0].problem, ObjectProblem::WrongSize { .. }), "{report:?}");
    let (ok, stdout, _) = repo_check(server.repo(), false);
    assert!(!ok && stdout.contains(&s1) && stdout.contains("used by a, b"), "{stdout}");

    std::fs::remove_file(&path).unwrap();
    let json = http_verify(&server, "a");
    assert_eq!(json["status"], "corrupt");
    assert_eq!(json["problems"][0]["problem"], "missing", "{json}");
    assert_eq!(json["problems"][0]["blake3"], s1.as_str());
    assert_eq!(json["problems"][0]["backups"], serde_json::json!(["a", "b"]));
    let (ok, stdout, stderr) = repo_check(server.repo(), false);
    assert!(!ok, "{stderr}");
    assert!(stdout.contains(&format!("object {s1} is missing; used by a, b")), "{stdout}");
    assert_eq!(server.backups().verify("c").unwrap().status, "ok");
}

#[test]
fn repo_check_refuses_a_folder_that_is_not_a_repository() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
    let (ok, _, stderr) = repo_check(dir.path(), true);
    assert!(!ok);
    assert!(stderr.contains("is not a quipu backup repository"), "{stderr}");
}
