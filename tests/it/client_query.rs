//! `quipu query` against a real server, as a user runs it: every format,
//! parameters, a query from a file and stdin, an output file, and the
//! errors a user sees (bad SQL, unknown database).

use crate::client_support;
use crate::common;

use std::io::Write;
use std::process::{Command, Stdio};

use client_support::{TOKEN, TestServer, quipu};
use common::read_parquet;
use quipu::{Precision, WriteOptions};

fn loaded() -> TestServer {
    let server = TestServer::start();
    let lp: String =
        (0..40i64).map(|i| format!("cpu,host=h{} v={i}i,f={}.5 {}\n", i % 4, i, i * 1_000_000_000)).collect();
    server.engine.write_lp("db", &lp, Precision::Nanosecond, WriteOptions::default()).unwrap();
    server.engine.flush().unwrap();
    server
}

fn ok(out: &std::process::Output) -> String {
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

const SUMS: &str = "SELECT host, sum(v) AS s FROM cpu GROUP BY host ORDER BY host";

#[test]
fn query_prints_every_format() {
    let server = loaded();
    let pretty = ok(&quipu(&server, &["query", "--db", "db", SUMS]));
    let lines: Vec<&str> = pretty.lines().collect();
    assert_eq!(lines.len(), 4 + 4, "{pretty}");
    assert!(lines[1].contains("host") && lines[1].contains(" s "), "{pretty}");
    // h0 holds v = 0, 4, ..., 36.
    assert!(lines[3].contains("h0") && lines[3].contains("180"), "{pretty}");

    let csv = ok(&quipu(&server, &["query", "-d", "db", "--format", "csv", SUMS]));
    assert_eq!(csv, "host,s\nh0,180\nh1,190\nh2,200\nh3,210\n");

    let jsonl = ok(&quipu(&server, &["query", "-d", "db", "--format", "jsonl", SUMS]));
    let first: serde_json::Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
    assert_eq!(first, serde_json::json!({"host": "h0", "s": 180}));

    let json = ok(&quipu(&server, &["query", "-d", "db", "--format", "json", SUMS]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["results"][3], serde_json::json!({"host": "h3", "s": 210}));

    // Parquet to a file, read back.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.parquet");
    let out = quipu(&server, &["query", "-d", "db", "--format", "parquet", "-o", path.to_str().unwrap(), SUMS]);
    ok(&out);
    let batches = read_parquet(std::fs::read(&path).unwrap());
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 4);
    // Only the finished file is left in the folder.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn query_takes_params_files_and_stdin() {
    let server = loaded();
    let out = quipu(
        &server,
        &[
            "query",
            "-d",
            "db",
            "--format",
            "csv",
            "--params",
            r#"{"host": "h1", "min": 10}"#,
            "SELECT count(*) AS n FROM cpu WHERE host = $host AND v >= $min",
        ],
    );
    assert_eq!(ok(&out), "n\n7\n");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("q.sql");
    std::fs::write(&file, "SELECT count(*) AS n FROM cpu").unwrap();
    assert_eq!(ok(&quipu(&server, &["query", "-d", "db", "--format", "csv", "-f", file.to_str().unwrap()])), "n\n40\n");

    let mut child = Command::new(env!("CARGO_BIN_EXE_quipu"))
        .args(["--host", &server.host(), "query", "-d", "db", "--format", "csv", "-f", "-"])
        .env("QUIPU_TOKEN", TOKEN)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"SELECT max(f) AS m FROM cpu").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(ok(&out), "m\n39.5\n");
}

#[test]
fn query_errors_reach_the_user() {
    let server = loaded();
    let cases: [(&[&str], &str); 5] = [
        (&["query", "-d", "db", "SELEC 1"], "400"),
        (&["query", "-d", "db", "SELECT nope FROM cpu"], "nope"),
        (&["query", "-d", "nodb", "SELECT 1"], "nodb"),
        (&["query", "-d", "db", "--format", "xml", "SELECT 1"], "--format"),
        (&["query", "-d", "db", "--params", "{", "SELECT 1"], "--params"),
    ];
    for (args, needle) in cases {
        let out = quipu(&server, args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    // A failed query to a file leaves no file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.csv");
    let out = quipu(&server, &["query", "-d", "db", "-o", path.to_str().unwrap(), "SELECT nope FROM cpu"]);
    assert!(!out.status.success());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
