//! The ArangoDB hot-backup API driven by the real client, pip
//! `python-arango` 8 (tests/python/arango_hot_backup.py): create, list, get
//! one, upload to an S3 server (moto), abort an upload, delete, download,
//! restore and undo it, comparing rows through the InfluxDB 3 API; and
//! every documented error code live. scripts/test installs the peers; a
//! missing one fails this test rather than skipping it.

use std::process::Command;

use quipu::backup::ModeChoice;

use crate::remote_support::S3Server;
use crate::server_support::{TOKEN, TestServer};

#[test]
fn python_arango_drives_hot_backups_through_a_remote_and_back() {
    let server = TestServer::with_backups(ModeChoice::Auto);
    let s3 = S3Server::moto("arango-hot");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/arango_hot_backup.py");
    let out = Command::new("python3")
        .arg(script)
        .env("QUIPU_URL", server.host())
        .env("QUIPU_TOKEN", TOKEN)
        .env("S3_ENDPOINT", &s3.endpoint)
        .env("S3_BUCKET", &s3.bucket)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .output()
        .unwrap_or_else(|e| panic!("python3 is needed (scripts/test installs the peers): {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}");
    assert!(out.status.success(), "arango_hot_backup.py failed:\n{stdout}\n{stderr}");
    // Every step ran: the script prints one line per step it passed.
    assert!(stdout.contains("OK: all checks passed"), "the script stopped early:\n{stdout}");
    // Credentials never reach a transfer record.
    for record in std::fs::read_dir(server.repo().join("transfers")).unwrap() {
        let text = std::fs::read_to_string(record.unwrap().path()).unwrap();
        assert!(!text.contains("secret_access_key") && !text.contains("testing"), "{text}");
    }
}
