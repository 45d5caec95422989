//! Disaster recovery the way an operator does it, with the `quipu` binary
//! and a real S3 server (`moto_server` on 127.0.0.1): `quipu backup push`
//! of a repository folder, the machine lost, `quipu restore --from-remote`
//! into a new data folder that then holds exactly the backup's rows;
//! `quipu repo check` of the remote; `quipu backup pull` into a new
//! repository; `quipu repo list`, `delete` and `sweep` of the remote; and the errors an operator meets (an unknown backup, a
//! server that ignores conditional creates), each a non-zero exit with the
//! reason.
#![cfg(all(feature = "remote", feature = "server", feature = "client"))]

use crate::remote_support::S3Server;
use crate::server_support::engine_rows;

use std::process::{Command, Output};

use quipu::backup::{BackupConfig, BackupRequest, BackupService, BackupStatus, Repository};
use quipu::{Engine, Precision, WriteOptions};

fn quipu(server: &S3Server, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quipu"))
        .args(args)
        .args(["--s3-endpoint", &server.endpoint, "--s3-region", "us-east-1"])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .unwrap()
}

fn ok(out: &Output, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{what} failed: {stderr}");
    stderr
}

fn failed(out: &Output, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{what} succeeded: {stderr}");
    stderr
}

#[test]
fn push_then_restore_from_the_remote_on_a_new_machine() {
    let server = S3Server::moto("quipu-dr");
    let old = tempfile::tempdir().unwrap();
    let repo_dir = old.path().join("repo");
    let rows = {
        let engine = Engine::builder(old.path().join("data")).background(false).open().unwrap();
        let backups = BackupService::open(engine.clone(), &repo_dir, BackupConfig::default()).unwrap();
        for day in 0..3i64 {
            let lp: String = (0..300)
                .map(|i| format!("mem,host=h{} used={i}i,free={}.5 {}\n", i % 4, i * 2, day * 86_400_000_000_000 + i))
                .collect();
            engine.write_lp("db", &lp, Precision::Nanosecond, WriteOptions::default()).unwrap();
            engine.flush().unwrap();
        }
        let name = backups.start(BackupRequest::full().named("nightly")).unwrap();
        assert_eq!(backups.wait(&name).unwrap().status, BackupStatus::Completed);
        engine_rows(&engine)
    };
    let url = server.url("prod");
    let repo_arg = repo_dir.to_str().unwrap();
    let pushed = ok(&quipu(&server, &["backup", "push", "nightly", "--to", &url, "--repo", repo_arg]), "push");
    assert!(pushed.contains("pushed backup nightly"), "{pushed}");
    let again = ok(&quipu(&server, &["backup", "push", "nightly", "--to", &url, "--repo", repo_arg]), "push again");
    assert!(again.contains("nothing sent"), "{again}");
    ok(&quipu(&server, &["repo", "check", &url, "--read-data"]), "repo check");
    drop(old); // the machine is lost

    let new = tempfile::tempdir().unwrap();
    let into = new.path().join("data");
    let into_arg = into.to_str().unwrap();
    let out = quipu(&server, &["restore", "--from-remote", &url, "--backup", "nightly", "--into", into_arg]);
    let said = ok(&out, "restore --from-remote");
    assert!(said.contains("quipu serve --data-dir"), "{said}");
    let restored = Engine::builder(&into).background(false).open().unwrap();
    assert!(engine_rows(&restored) == rows, "the restored rows differ from the backup's");
    drop(restored);
    let left: Vec<String> =
        std::fs::read_dir(new.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(left, vec!["data".to_string()], "the pulled repository was left beside the data folder");

    // A pull into a new repository folder, and the operator's mistakes.
    let repo2 = new.path().join("repo2");
    let repo2_arg = repo2.to_str().unwrap();
    ok(&quipu(&server, &["backup", "pull", "nightly", "--from", &url, "--repo", repo2_arg]), "pull");
    assert!(Repository::open(&repo2).unwrap().check(true).unwrap().is_clean());
    let missing = failed(&quipu(&server, &["backup", "pull", "nope", "--from", &url, "--repo", repo2_arg]), "pull");
    assert!(missing.contains("has no backup named nope"), "{missing}");
    let taken = new.path().join("taken");
    std::fs::create_dir(&taken).unwrap();
    std::fs::write(taken.join("mine"), b"x").unwrap();
    let taken_arg = taken.to_str().unwrap();
    let out = quipu(&server, &["restore", "--from-remote", &url, "--backup", "nightly", "--into", taken_arg]);
    let refused = failed(&out, "restore into a folder that holds something");
    assert!(refused.contains("not empty"), "{refused}");
    assert_eq!(std::fs::read_dir(&taken).unwrap().count(), 1);
    assert_eq!(std::fs::read_dir(new.path()).unwrap().count(), 3, "a refused restore left its pulled repository");

    // The remote's backups: listed, deleted, and their objects swept.
    let listed = quipu(&server, &["repo", "list", &url]);
    ok(&listed, "repo list");
    assert_eq!(String::from_utf8_lossy(&listed.stdout), "nightly\n");
    ok(&quipu(&server, &["repo", "delete", &url, "nightly"]), "repo delete");
    let gone = failed(&quipu(&server, &["repo", "delete", &url, "nightly"]), "repo delete again");
    assert!(gone.contains("has no backup named nightly"), "{gone}");
    std::thread::sleep(std::time::Duration::from_millis(1_100)); // stores keep seconds
    let planned = ok(&quipu(&server, &["repo", "sweep", &url, "--grace", "0s"]), "repo sweep");
    assert!(
        planned.contains("0 objects and 0 packs deleted") && !planned.contains("0 objects and 0 packs planned"),
        "{planned}"
    );
    std::thread::sleep(std::time::Duration::from_millis(1_100)); // stores keep seconds
    let swept = ok(&quipu(&server, &["repo", "sweep", &url, "--grace", "0s"]), "repo sweep again");
    assert!(
        swept.contains("0 objects and 0 packs planned") && !swept.contains("0 objects and 0 packs deleted"),
        "{swept}"
    );

    let rclone = S3Server::rclone("quipu-dr");
    let out = quipu(&rclone, &["backup", "push", "nightly", "--to", &rclone.url("x"), "--repo", repo2_arg]);
    let unsafe_remote = failed(&out, "push to rclone serve s3");
    assert!(unsafe_remote.contains("--accept-unconditional-remote"), "{unsafe_remote}");
}
