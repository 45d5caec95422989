//! Jobs survive crashes: a job whose process died shows failed (reason:
//! interrupted) once the repository is opened again, what it left is swept
//! and earlier backups stay intact; a job that committed just before the
//! crash shows completed. One service per repository (the lock), and a
//! folder that is not a repository is refused. Simulated by hand-made
//! leftovers, and for real with `kill -9` of `quipu serve` mid-backup.
#![cfg(feature = "server")]

use crate::server_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use quipu::backup::{
    BackupConfig, BackupError, BackupRequest, BackupService, BackupStatus, BackupType, JobRecord, ModeChoice,
    PlaceMode, Repository,
};
use quipu::{Engine, Precision, WriteOptions};
use serde_json::{Value, json};
use server_support::{Gate, eventually, repo_files};

fn write(engine: &Engine, table: &str, t0: i64, n: i64) {
    let lp: String = (0..n).map(|i| format!("{table},host=h{} v={i}i {}\n", i % 3, t0 + i)).collect();
    engine.write_lp("db", &lp, Precision::Nanosecond, WriteOptions::default()).unwrap();
    engine.flush().unwrap();
}

fn config() -> BackupConfig {
    BackupConfig { mode: ModeChoice::Copy, ..BackupConfig::default() }
}

/// A data folder with a completed backup `good` in `<tmp>/repo`; the
/// service is shut down (its threads joined) and dropped.
fn with_good_backup() -> (tempfile::TempDir, Engine) {
    let tmp = tempfile::tempdir().unwrap();
    let engine = Engine::builder(tmp.path().join("data")).background(false).open().unwrap();
    write(&engine, "cpu", 0, 50);
    let backups = BackupService::open(engine.clone(), tmp.path().join("repo"), config()).unwrap();
    let name = backups.start(BackupRequest::full().named("good")).unwrap();
    assert_eq!(backups.wait(&name).unwrap().status, BackupStatus::Completed);
    backups.shutdown();
    drop(backups);
    (tmp, engine)
}

fn record(name: &str, created_at: &str) -> JobRecord {
    JobRecord {
        name: name.into(),
        backup_type: BackupType::Full,
        parent: None,
        status: BackupStatus::InProgress,
        created_at: created_at.into(),
        completed_at: None,
        error: None,
        mode: PlaceMode::Copy,
        owner: "0123456789abcdef0123456789abcdef".into(),
    }
}

/// An object file (named by its content's blake3) no manifest references.
fn orphan(repo: &Repository, content: &[u8]) -> PathBuf {
    let hash = blake3::hash(content).to_hex().to_string();
    let path = repo.object_path(&hash);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, content).unwrap();
    path
}

#[test]
fn an_interrupted_job_shows_failed_and_its_leftovers_are_swept() {
    let (tmp, engine) = with_good_backup();
    let repo_dir = tmp.path().join("repo");
    let repo = Repository::open(&repo_dir).unwrap();
    let (good, _) = repo.read_manifest("good").unwrap().unwrap();
    let good_files = std::fs::read(repo_dir.join("manifests/good.json")).unwrap();

    // What a process killed mid-backup leaves: a record in progress, objects
    // it placed, a half-copied temp file (beside one of good's objects).
    repo.write_job_record(&record("crashed", "2999-01-01T00:00:00.000Z")).unwrap();
    let orphans = [orphan(&repo, b"placed by the dead job"), orphan(&repo, b"and another")];
    let shared_shard = repo.object_path(&good.files[0].blake3);
    let temp = shared_shard.with_file_name(format!("{}.42.tmp", "ab".repeat(32)));
    std::fs::write(&temp, b"half a copy").unwrap();
    assert_eq!(repo.check(false).unwrap().unreferenced_objects, 2);

    let backups = BackupService::open(engine.clone(), &repo_dir, config()).unwrap();
    let info = backups.get("crashed").unwrap();
    assert_eq!(info.status, BackupStatus::Failed, "{info:?}");
    assert!(info.error.as_deref().unwrap().contains("interrupted"), "{info:?}");
    assert!(info.completed_at.is_some());
    let on_disk = repo.job_records().unwrap();
    assert_eq!(on_disk.len(), 1);
    assert_eq!(on_disk[0].status, BackupStatus::Failed);
    for o in &orphans {
        assert!(!o.exists(), "orphan {} not swept", o.display());
    }
    assert!(!temp.exists(), "temp file not swept");
    assert!(repo_files(&repo_dir).1.is_empty());

    // The earlier backup is untouched.
    assert_eq!(std::fs::read(repo_dir.join("manifests/good.json")).unwrap(), good_files);
    assert_eq!(backups.verify("good").unwrap().status, "ok");
    let report = repo.check(true).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.unreferenced_objects, 0);
    assert_eq!(backups.get("good").unwrap().status, BackupStatus::Completed);
    // The failed one can be deleted, and the name used again.
    backups.delete("crashed").unwrap();
    let again = backups.start(BackupRequest::full().named("crashed")).unwrap();
    assert_eq!(backups.wait(&again).unwrap().status, BackupStatus::Completed);
}

#[test]
fn a_job_that_committed_before_the_crash_shows_completed() {
    let (tmp, engine) = with_good_backup();
    let repo_dir = tmp.path().join("repo");
    let repo = Repository::open(&repo_dir).unwrap();
    let (good, _) = repo.read_manifest("good").unwrap().unwrap();
    // The manifest was written; the process died before removing the record.
    repo.write_job_record(&record("good", &good.created_at)).unwrap();

    let backups = BackupService::open(engine, &repo_dir, config()).unwrap();
    let info = backups.get("good").unwrap();
    assert_eq!(info.status, BackupStatus::Completed, "{info:?}");
    assert_eq!(info.last_attempt, None);
    assert!(!repo_dir.join("jobs/good.json").exists(), "the record of a committed job is removed");
    assert_eq!(backups.verify("good").unwrap().status, "ok");
}

#[test]
fn a_forced_attempt_interrupted_by_a_crash_leaves_the_old_backup() {
    let (tmp, engine) = with_good_backup();
    let repo_dir = tmp.path().join("repo");
    let repo = Repository::open(&repo_dir).unwrap();
    let (good, _) = repo.read_manifest("good").unwrap().unwrap();
    // A later attempt under the same name (force) that never committed.
    repo.write_job_record(&record("good", "2999-01-01T00:00:00.000Z")).unwrap();

    let backups = BackupService::open(engine, &repo_dir, config()).unwrap();
    let info = backups.get("good").unwrap();
    assert_eq!(info.status, BackupStatus::Completed, "{info:?}");
    assert_eq!(info.created_at, good.created_at);
    let attempt = info.last_attempt.unwrap();
    assert_eq!(attempt.status, BackupStatus::Failed);
    assert!(attempt.error.unwrap().contains("interrupted"));
    assert_eq!(backups.verify("good").unwrap().status, "ok");
}

#[test]
fn a_repository_serves_one_service_at_a_time() {
    let (tmp, engine) = with_good_backup();
    let repo_dir = tmp.path().join("repo");
    let first = BackupService::open(engine.clone(), &repo_dir, config()).unwrap();
    let other = Engine::builder(tmp.path().join("other-data")).background(false).open().unwrap();
    for e in [engine.clone(), other] {
        match BackupService::open(e, &repo_dir, config()) {
            Err(quipu::Error::Backup(BackupError::RepoLocked { path })) => assert_eq!(path, repo_dir),
            other => panic!("expected RepoLocked, got {other:?}"),
        }
    }
    // Another process is refused too: `quipu serve` exits with the reason.
    let out = Command::new(env!("CARGO_BIN_EXE_quipu"))
        .args(["serve", "--data-dir", tmp.path().join("serve-data").to_str().unwrap()])
        .args(["--http-bind", "127.0.0.1:0", "--backup-dir", repo_dir.to_str().unwrap()])
        .env("QUIPU_ADMIN_TOKEN", "apiv3_lock-test")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("in use by another process"), "{stderr}");

    // Released with the service.
    first.shutdown();
    drop(first);
    let second = BackupService::open(engine, &repo_dir, config()).unwrap();
    assert_eq!(second.verify("good").unwrap().status, "ok");
}

#[test]
fn a_folder_that_is_not_a_repository_is_refused_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = Engine::builder(tmp.path().join("data")).background(false).open().unwrap();
    let folder = tmp.path().join("photos");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("cat.jpg"), b"meow").unwrap();
    match BackupService::open(engine.clone(), &folder, config()) {
        Err(quipu::Error::Backup(BackupError::NotARepository { path, .. })) => assert_eq!(path, folder),
        other => panic!("expected NotARepository, got {other:?}"),
    }
    let entries: Vec<_> = std::fs::read_dir(&folder).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(entries, ["cat.jpg"]);
    // An empty folder becomes a repository.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    BackupService::open(engine, &empty, config()).unwrap();
    assert!(Repository::open(&empty).is_ok());
}

// ---- kill -9 of a real server mid-backup ----

const TOKEN: &str = "apiv3_crash-test";

struct Serve {
    child: Child,
    base: String,
}

impl Serve {
    fn start(data: &Path, repo: &Path) -> Serve {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(env!("CARGO_BIN_EXE_quipu"))
            .args(["serve", "--data-dir", data.to_str().unwrap(), "--http-bind", &format!("127.0.0.1:{port}")])
            .args(["--backup-dir", repo.to_str().unwrap(), "--backup-mode", "copy"])
            .env("QUIPU_ADMIN_TOKEN", TOKEN)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let serve = Serve { child, base: format!("http://127.0.0.1:{port}") };
        eventually("the server to answer", || {
            reqwest::blocking::Client::new().get(format!("{}/ping", serve.base)).bearer_auth(TOKEN).send().is_ok()
        });
        serve
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = reqwest::blocking::Client::new()
            .request(method.parse().unwrap(), format!("{}/api/v3/enterprise/backup{path}", self.base))
            .bearer_auth(TOKEN);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().unwrap();
        (resp.status().as_u16(), resp.json().unwrap_or(Value::Null))
    }

    fn wait_done(&self, name: &str) -> Value {
        let mut info = Value::Null;
        eventually("the backup to finish", || {
            info = self.call("GET", &format!("/{name}"), None).1;
            info["status"] != "in_progress"
        });
        info
    }

    fn terminate(mut self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        assert!(self.child.wait().unwrap().success());
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn kill_9_mid_backup_then_restart_shows_it_failed_and_keeps_the_earlier_one() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let repo_dir = tmp.path().join("repo");
    {
        let engine = Engine::builder(&data).background(false).open().unwrap();
        write(&engine, "cpu", 0, 200);
        engine.close().unwrap();
    }
    let serve = Serve::start(&data, &repo_dir);
    let (status, _) = serve.call("POST", "", Some(json!({"type": "full", "name": "before"})));
    assert_eq!(status, 202);
    assert_eq!(serve.wait_done("before")["status"], "completed");
    serve.terminate();

    // A new table (so a new catalog object) in a new segment.
    let gated = {
        let engine = Engine::builder(&data).background(false).open().unwrap();
        write(&engine, "mem", 0, 200);
        let newest = engine.live_files().into_iter().max_by_key(|f| f.meta.id).unwrap().path;
        engine.close().unwrap();
        newest
    };
    let serve = Serve::start(&data, &repo_dir);
    // Gated after the server opened its segments: the job's copy of the new
    // segment blocks, so the job is certainly running when the process dies.
    let gate = Gate::install(&gated);
    let (status, body) = serve.call("POST", "", Some(json!({"type": "full", "name": "crashy"})));
    assert_eq!(status, 202, "{body}");
    eventually("the job blocked at the gated file", || {
        serve.call("GET", "/crashy", None).1["progress"]["files_done"] == 1
    });
    drop(serve); // SIGKILL
    drop(gate);

    let repo = Repository::open(&repo_dir).unwrap();
    let records = repo.job_records().unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!((records[0].name.as_str(), records[0].status), ("crashy", BackupStatus::InProgress));
    assert!(repo.read_manifest("crashy").unwrap().is_none());
    assert_eq!(repo.check(false).unwrap().unreferenced_objects, 1, "the new catalog object the job placed");

    let serve = Serve::start(&data, &repo_dir);
    let (status, info) = serve.call("GET", "/crashy", None);
    assert_eq!(status, 200);
    assert_eq!(info["status"], "failed", "{info}");
    assert!(info["error"].as_str().unwrap().contains("interrupted"), "{info}");
    let (_, before) = serve.call("GET", "/before", None);
    assert_eq!(before["status"], "completed");
    let (status, report) = serve.call("POST", "/before/verify", None);
    assert_eq!((status, report["status"].as_str()), (200, Some("ok")), "{report}");
    let report = repo.check(true).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.unreferenced_objects, 0, "the orphan was swept");
    assert!(repo_files(&repo_dir).1.is_empty());

    // And backups work again, with the segment the dead job never copied.
    let (status, _) = serve.call("POST", "", Some(json!({"type": "full", "name": "after"})));
    assert_eq!(status, 202);
    let after = serve.wait_done("after");
    assert_eq!(after["status"], "completed", "{after}");
    assert_eq!(after["total_files"], 2);
    serve.terminate();
    assert!(repo.check(true).unwrap().is_clean());
}

#[test]
fn a_repository_creation_cut_short_is_finished_and_anything_else_refused() {
    let dir = tempfile::tempdir().unwrap();
    // What a kill between the folders and the marker leaves.
    let cut = dir.path().join("cut");
    for sub in ["objects", "manifests", "jobs"] {
        std::fs::create_dir_all(cut.join(sub)).unwrap();
    }
    std::fs::write(cut.join("QUIPU-REPO.tmp"), b"{\"form").unwrap();
    let repo = Repository::open_or_create(&cut, 1, "2026-12-03T00:00:00Z").unwrap();
    assert!(repo.check(true).unwrap().is_clean());
    assert!(Repository::open(&cut).is_ok());
    // Anything more than that is someone's folder, not ours to take.
    let theirs = dir.path().join("theirs");
    std::fs::create_dir_all(theirs.join("objects")).unwrap();
    std::fs::write(theirs.join("objects").join("photo.jpg"), b"x").unwrap();
    match Repository::open_or_create(&theirs, 1, "2026-12-03T00:00:00Z") {
        Err(quipu::Error::Backup(BackupError::NotARepository { path, .. })) => assert_eq!(path, theirs),
        other => panic!("a folder holding someone's file: {other:?}"),
    }
    assert_eq!(std::fs::read(theirs.join("objects").join("photo.jpg")).unwrap(), b"x");
}
