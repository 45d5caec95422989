//! `quipu backup push|pull` without `--repo`: jobs of a running server
//! (`TestServer`, in process), followed to their end with a progress bar,
//! listed by `quipu backup transfers` and shown by `quipu backup transfer
//! ID`; the AWS credentials of the CLI's environment reach the job only
//! when asked (`--send-aws-credentials`), and none of them reaches a record. A pull of a backup the remote lacks exits
//! non-zero naming it.
#![cfg(all(feature = "remote", feature = "server", feature = "client"))]

use std::process::{Command, Output};

use quipu::backup::ModeChoice;
use quipu::remote::Remote;

use crate::remote_support::S3Server;
use crate::server_support::{TOKEN, TestServer};

fn quipu(server: &TestServer, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quipu"))
        .args(["--host", &server.host()])
        .args(args)
        .env("QUIPU_TOKEN", TOKEN)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .unwrap()
}

/// `quipu backup push NAME --to URL` or `pull NAME --from URL` to moto,
/// with this environment's credentials sent along.
fn transfer(server: &TestServer, s3: &S3Server, verb: &str, name: &str, url: &str) -> Output {
    let direction = if verb == "push" { "--to" } else { "--from" };
    let s3_args = ["--s3-endpoint", &s3.endpoint, "--s3-region", "us-east-1", "--send-aws-credentials"];
    quipu(server, &[&["backup", verb, name, direction, url][..], &s3_args].concat())
}

fn ok(out: &Output, what: &str) -> (String, String) {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{what} failed: {stderr}");
    (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
}

#[test]
fn the_cli_pushes_and_pulls_through_the_server() {
    let server = TestServer::with_backups(ModeChoice::Copy);
    let s3 = S3Server::moto("cli-jobs");
    let lp: String = (0..500).map(|i| format!("m,host=h{} v={i}i {i}\n", i % 3)).collect();
    server.engine.write_lp("db", &lp, quipu::Precision::Nanosecond, quipu::WriteOptions::default()).unwrap();
    let name = server.backups().start(quipu::backup::BackupRequest::full().named("b")).unwrap();
    server.backups().wait(&name).unwrap();
    let url = s3.url("cli");

    let (stdout, stderr) = ok(&transfer(&server, &s3, "push", "b", &url), "push");
    let id = stdout.trim().to_string();
    assert!(stderr.contains("push of backup b") && stderr.contains("completed"), "{stderr}");
    let remote = Remote::open(&url, s3.options()).unwrap();
    assert_eq!(remote.list().unwrap(), vec!["b".to_string()]);

    let (listed, _) = ok(&quipu(&server, &["backup", "transfers"]), "transfers");
    assert!(listed.contains(&id) && listed.contains("completed"), "{listed}");
    let (shown, _) = ok(&quipu(&server, &["backup", "transfer", &id]), "transfer");
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["status"], "completed");
    assert_eq!(shown["objects_done"], shown["objects_total"]);

    ok(&quipu(&server, &["backup", "delete", "b"]), "delete");
    let (_, stderr) = ok(&transfer(&server, &s3, "pull", "b", &url), "pull");
    assert!(stderr.contains("pull of backup b"), "{stderr}");
    assert_eq!(server.backups().get("b").unwrap().status.as_str(), "completed");

    let missing = transfer(&server, &s3, "pull", "nope", &url);
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(!missing.status.success() && stderr.contains("nope"), "{stderr}");
    // Without --send-aws-credentials the server uses its own environment,
    // which has none for this store here: the job fails, naming the store's refusal.
    let own_env = quipu(&server, &["backup", "push", "b", "--to", &s3.url("other"), "--s3-endpoint", &s3.endpoint]);
    assert!(!own_env.status.success(), "a push without credentials succeeded");
    let ended = quipu(&server, &["backup", "cancel-transfer", &id]);
    assert!(!ended.status.success(), "cancelling an ended transfer succeeded");

    for record in std::fs::read_dir(server.repo().join("transfers")).unwrap() {
        let text = std::fs::read_to_string(record.unwrap().path()).unwrap();
        assert!(!text.contains("testing"), "a credential reached a record: {text}");
    }
}
