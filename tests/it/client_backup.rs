//! `quipu backup ...` and `quipu repo check` as a user runs them against a
//! real server.
#![cfg(all(feature = "server", feature = "client"))]

use crate::client_support;

use std::process::{Command, Output};

use client_support::{Gate, TOKEN, TestServer};
use quipu::backup::ModeChoice;
use quipu::{Precision, WriteOptions};

fn quipu(server: &TestServer, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quipu"))
        .args(["--host", &server.host()])
        .args(args)
        .env("QUIPU_TOKEN", TOKEN)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn ok(out: &Output) -> (String, String) {
    let (stdout, stderr) = text(out);
    assert!(out.status.success(), "exit {:?}\nstdout: {stdout}\nstderr: {stderr}", out.status);
    (stdout, stderr)
}

fn fails(out: &Output) -> String {
    let (stdout, stderr) = text(out);
    assert!(!out.status.success(), "expected a failure\nstdout: {stdout}\nstderr: {stderr}");
    stderr
}

fn load(server: &TestServer, t0: i64) {
    let lp: String = (0..50).map(|i| format!("cpu,host=h{} v={i}i {}\n", i % 3, t0 + i)).collect();
    server.engine.write_lp("db", &lp, Precision::Nanosecond, WriteOptions::default()).unwrap();
    server.engine.flush().unwrap();
}

#[test]
fn create_list_show_verify_delete_and_check() {
    let server = TestServer::with_backups(ModeChoice::Link);
    load(&server, 0);

    let (stdout, stderr) = ok(&quipu(&server, &["backup", "create", "--name", "nightly", "--wait"]));
    assert_eq!(stdout.trim(), "nightly");
    assert!(stderr.contains("backup nightly completed: 1 files"), "{stderr}");
    assert_eq!(server.backups().get("nightly").unwrap().status.as_str(), "completed");

    // An existing name is refused, with the server's reason.
    let stderr = fails(&quipu(&server, &["backup", "create", "--name", "nightly"]));
    assert!(stderr.contains("409") && stderr.contains("already exists"), "{stderr}");
    // --force replaces it.
    load(&server, 1_000);
    let (stdout, _) = ok(&quipu(&server, &["backup", "create", "--name", "nightly", "--force", "--wait"]));
    assert_eq!(stdout.trim(), "nightly");
    assert_eq!(server.backups().get("nightly").unwrap().total_files, 2);

    // A generated name, then an incremental after it.
    let (stdout, _) = ok(&quipu(&server, &["backup", "create", "--wait"]));
    let generated = stdout.trim().to_string();
    assert!(quipu::backup::validate_name(&generated).is_ok() && generated.ends_with('Z'), "{generated}");
    load(&server, 2_000);
    ok(&quipu(&server, &["backup", "create", "--name", "inc", "--incremental", "--parent", &generated, "--wait"]));
    let inc = server.backups().get("inc").unwrap();
    assert_eq!((inc.backup_type.as_str(), inc.parent.as_deref()), ("incremental", Some(generated.as_str())));

    let (stdout, _) = ok(&quipu(&server, &["backup", "list"]));
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{stdout}");
    assert_eq!(lines.len(), 4, "{stdout}");
    let row = |name: &str| {
        lines.iter().find(|l| l.split_whitespace().next() == Some(name)).unwrap_or_else(|| panic!("{name}: {stdout}"))
    };
    let nightly: Vec<&str> = row("nightly").split_whitespace().collect();
    assert_eq!(&nightly[1..3], ["full", "completed"], "{stdout}");
    assert_eq!(nightly[4], "2", "files: {stdout}");
    assert_eq!(row("inc").split_whitespace().nth(1), Some("incremental"));
    assert!(row(&generated).contains("completed"));

    let (stdout, _) = ok(&quipu(&server, &["backup", "show", "inc"]));
    let shown: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(shown["name"], "inc");
    assert_eq!(shown["status"], "completed");
    assert_eq!(shown["parent"], generated.as_str());
    assert_eq!(shown["total_files"], 3);
    let stderr = fails(&quipu(&server, &["backup", "show", "nope"]));
    assert!(stderr.contains("not found") && stderr.contains("nope"), "{stderr}");

    let (stdout, stderr) = ok(&quipu(&server, &["backup", "verify", "inc"]));
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!((report["status"].as_str(), report["objects_checked"].as_u64()), (Some("ok"), Some(4)));
    assert!(stderr.contains("backup inc: 4 objects"), "{stderr}");
    assert!(fails(&quipu(&server, &["backup", "verify", "nope"])).contains("not found"));

    let stderr = fails(&quipu(&server, &["backup", "cancel", "nightly"]));
    assert!(stderr.contains("no backup named nightly is running"), "{stderr}");

    let repo = server.repo().to_str().unwrap().to_string();
    let (_, stderr) = ok(&quipu(&server, &["repo", "check", &repo, "--read-data"]));
    assert!(stderr.contains("3 manifests") && stderr.contains("0 unreferenced objects"), "{stderr}");

    let (_, stderr) = ok(&quipu(&server, &["backup", "delete", "inc"]));
    assert!(stderr.contains("deleted incremental backup inc"), "{stderr}");
    let stderr = fails(&quipu(&server, &["backup", "delete", "inc"]));
    assert!(stderr.contains("not found"), "{stderr}");
    let (stdout, _) = ok(&quipu(&server, &["backup", "list"]));
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
    let (_, stderr) = ok(&quipu(&server, &["repo", "check", &repo]));
    assert!(stderr.contains("2 manifests"), "{stderr}");
}

#[test]
fn cancel_of_a_running_backup_and_a_failed_wait() {
    let server = TestServer::with_backups(ModeChoice::Copy);
    load(&server, 0);
    let gate = Gate::newest_segment(&server.engine);
    let (stdout, _) = ok(&quipu(&server, &["backup", "create", "--name", "held"]));
    assert_eq!(stdout.trim(), "held");
    let feeder = gate.feed_forever();
    let (_, stderr) = ok(&quipu(&server, &["backup", "cancel", "held"]));
    assert!(stderr.contains("cancelled backup held"), "{stderr}");
    feeder.join().unwrap();
    drop(gate);
    assert_eq!(server.backups().get("held").unwrap().status.as_str(), "cancelled");
    let (stdout, _) = ok(&quipu(&server, &["backup", "show", "held"]));
    assert!(stdout.contains("\"cancelled\""), "{stdout}");
    // --wait on a backup that does not complete exits non-zero with why.
    let gate = Gate::newest_segment(&server.engine);
    let waiter = {
        let host = server.host();
        std::thread::spawn(move || {
            Command::new(env!("CARGO_BIN_EXE_quipu"))
                .args(["--host", &host, "backup", "create", "--name", "doomed", "--wait"])
                .env("QUIPU_TOKEN", TOKEN)
                .output()
                .unwrap()
        })
    };
    let feeder = {
        // The job has started once the feeder's open returns.
        gate.feed_forever()
    };
    server.backups().cancel("doomed").unwrap();
    feeder.join().unwrap();
    let out = waiter.join().unwrap();
    let stderr = fails(&out);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "doomed");
    assert!(stderr.contains("backup doomed cancelled"), "{stderr}");
}

#[test]
fn backup_commands_need_the_token_and_a_backup_service() {
    let server = TestServer::with_backups(ModeChoice::Link);
    let out = Command::new(env!("CARGO_BIN_EXE_quipu"))
        .args(["--host", &server.host(), "backup", "list"])
        .env_remove("QUIPU_TOKEN")
        .output()
        .unwrap();
    assert!(fails(&out).contains("unauthorized"));

    let plain = TestServer::start();
    let stderr = fails(&quipu(&plain, &["backup", "create", "--name", "x"]));
    assert!(stderr.contains("503") && stderr.contains("backup"), "{stderr}");
}
