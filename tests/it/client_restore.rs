//! `quipu restore ...` as a user runs it: against a real server (start
//! --wait, status, list, cancel), and offline (`--from-repo --backup
//! --into`) into a new data folder that an engine then opens.
#![cfg(all(feature = "server", feature = "client"))]

use crate::client_support;

use std::process::{Command, Output};

use client_support::{TOKEN, TestServer, engine_rows};
use quipu::backup::{BackupRequest, ModeChoice};
use quipu::{Engine, Precision, WriteOptions};

fn quipu(host: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quipu"));
    if let Some(host) = host {
        cmd.args(["--host", host]);
    }
    cmd.args(args).env("QUIPU_TOKEN", TOKEN).env("RUST_LOG", "warn").output().unwrap()
}

fn ok(out: &Output) -> (String, String) {
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    assert!(out.status.success(), "exit {:?}\nstdout: {stdout}\nstderr: {stderr}", out.status);
    (stdout, stderr)
}

fn fails(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "expected a failure; stdout: {}", String::from_utf8_lossy(&out.stdout));
    stderr
}

fn write(server: &TestServer, lp: &str) {
    server.engine.write_lp("db", lp, Precision::Nanosecond, WriteOptions::default()).unwrap();
}

#[test]
fn start_wait_status_list_and_cancel_against_a_server() {
    let server = TestServer::with_backups(ModeChoice::Link);
    let host = server.host();
    write(&server, "cpu,host=a v=1i 1\ncpu,host=b v=2i 2");
    let name = server.backups().start(BackupRequest::full().named("nightly")).unwrap();
    server.backups().wait(&name).unwrap();
    let at_backup = engine_rows(&server.engine);
    write(&server, "cpu,host=c v=3i 3");

    let (stdout, stderr) = ok(&quipu(Some(&host), &["restore", "start", "nightly", "--wait"]));
    let id = stdout.trim().to_string();
    assert_eq!(id.len(), 26, "{stdout}");
    assert!(stderr.contains(&format!("restore {id} of backup nightly completed: 1 files")), "{stderr}");
    assert_eq!(engine_rows(&server.engine), at_backup);

    let (stdout, _) = ok(&quipu(Some(&host), &["restore", "status", &id]));
    let shown: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(shown["status"], "completed");
    assert_eq!(shown["backup_name"], "nightly");
    let (stdout, _) = ok(&quipu(Some(&host), &["restore", "list"]));
    assert!(stdout.lines().nth(1).unwrap().starts_with(&id), "{stdout}");

    let stderr = fails(&quipu(Some(&host), &["restore", "cancel", &id]));
    assert!(stderr.contains("not found"), "{stderr}");
    let stderr = fails(&quipu(Some(&host), &["restore", "start", "nope"]));
    assert!(stderr.contains("not found") && stderr.contains("nope"), "{stderr}");
    let stderr = fails(&quipu(Some(&host), &["restore", "status", "01J8X9Z0ABCDEFGHJKMNPQRSTV"]));
    assert!(stderr.contains("not found"), "{stderr}");
}

#[test]
fn offline_restore_builds_a_data_folder_an_engine_serves() {
    let server = TestServer::with_backups(ModeChoice::Copy);
    for t in 0..3 {
        let lp: String = (0..300).map(|i| format!("cpu,host=h{} v={i}i,f=0.5 {}\n", i % 3, t * 100_000 + i)).collect();
        write(&server, &lp);
        server.engine.flush().unwrap();
    }
    server.engine.compact().unwrap();
    write(&server, "mem,host=a free=1i 7");
    let name = server.backups().start(BackupRequest::full().named("dr")).unwrap();
    server.backups().wait(&name).unwrap();
    let at_backup = engine_rows(&server.engine);
    let repo = server.repo().to_path_buf();
    let mut server = server;
    server.stop();
    // The repository lock goes with the service (and the transfers, which use it).
    drop(server.transfers.take());
    drop(server.backups.take());

    let target = tempfile::tempdir().unwrap();
    for mode in ["copy", "link", "auto"] {
        let into = target.path().join(format!("new-{mode}"));
        let (_, stderr) = ok(&quipu(
            None,
            &[
                "restore",
                "--from-repo",
                repo.to_str().unwrap(),
                "--backup",
                "dr",
                "--into",
                into.to_str().unwrap(),
                "--mode",
                mode,
            ],
        ));
        assert!(stderr.contains("built") && stderr.contains("quipu serve --data-dir"), "{stderr}");
        let engine = Engine::builder(&into).background(false).open().unwrap();
        assert_eq!(engine_rows(&engine), at_backup, "{mode}");
        engine.write_lp("db", "cpu,host=new v=1i 5", Precision::Nanosecond, WriteOptions::default()).unwrap();
        drop(engine);
        // A second run into a folder that is not empty is refused and changes nothing.
        let stderr = fails(&quipu(
            None,
            &["restore", "--from-repo", repo.to_str().unwrap(), "--backup", "dr", "--into", into.to_str().unwrap()],
        ));
        assert!(stderr.contains("not empty"), "{stderr}");
    }
    let into = target.path().join("missing");
    let stderr = fails(&quipu(
        None,
        &["restore", "--from-repo", repo.to_str().unwrap(), "--backup", "nope", "--into", into.to_str().unwrap()],
    ));
    assert!(stderr.contains("nope"), "{stderr}");
    assert!(!into.exists(), "a failed offline restore left {}", into.display());
    let stderr = fails(&quipu(None, &["restore", "--from-repo", repo.to_str().unwrap()]));
    assert!(stderr.contains("--backup") || stderr.contains("required"), "{stderr}");
    // Leftover staging folders: none.
    let left: Vec<String> = std::fs::read_dir(target.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
