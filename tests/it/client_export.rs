//! `quipu export` against a real server, as a user runs it; and the client
//! on a broken export stream.

use crate::client_support;
use crate::common;

use std::io::{Read, Write};
use std::process::Command;

use client_support::{TOKEN, TestServer, no_progress, quipu};
use common::{read_parquet, table_of};
use quipu::client::{Client, ClientError};
use quipu::{Precision, ScanRequest, WriteOptions};

const DAY: i64 = 86_400 * 1_000_000_000;

fn loaded() -> TestServer {
    let server = TestServer::start();
    let lp: String = (0..3i64)
        .flat_map(|d| (0..20i64).map(move |i| format!("cpu,host=h{} v={i}i {}\n", i % 4, d * DAY + i)))
        .collect();
    server.engine.write_lp("db", &lp, Precision::Nanosecond, WriteOptions::default()).unwrap();
    server.engine.flush().unwrap();
    server.engine.compact().unwrap();
    server
}

fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> =
        walk(dir).into_iter().map(|p| p.strip_prefix(dir).unwrap().display().to_string()).collect();
    names.sort();
    names
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}

#[test]
fn export_lists_and_downloads_parquet_equal_to_the_data() {
    let server = loaded();
    let out = quipu(&server, &["export", "--db", "db", "--table", "cpu", "--list"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listing = String::from_utf8(out.stdout).unwrap();
    let days: Vec<&str> = listing.lines().map(|l| l.split('\t').next().unwrap()).collect();
    assert_eq!(days, ["1970-01-01", "1970-01-02", "1970-01-03"]);
    assert!(listing.lines().all(|l| l.contains("\t20 rows\t")), "{listing}");

    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("export");
    let out = quipu(&server, &["export", "--db", "db", "--table", "cpu", "--out", target.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("exported 3 windows of db.cpu"));
    assert_eq!(files_in(&target), ["cpu/1970-01-01.parquet", "cpu/1970-01-02.parquet", "cpu/1970-01-03.parquet"]);
    for day in 0..3i64 {
        let bytes = std::fs::read(target.join(format!("cpu/1970-01-0{}.parquet", day + 1))).unwrap();
        let scan = server.scan("db", "cpu", &ScanRequest::all().time_range(day * DAY, (day + 1) * DAY));
        assert_eq!(table_of(&read_parquet(bytes)), table_of(&scan));
    }

    let some = dir.path().join("some");
    let out = quipu(
        &server,
        &[
            "export",
            "--db",
            "db",
            "--table",
            "cpu",
            "--out",
            some.to_str().unwrap(),
            "--windows",
            "1970-01-02,1970-01-03",
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(files_in(&some), ["cpu/1970-01-02.parquet", "cpu/1970-01-03.parquet"]);
}

#[test]
fn export_errors_are_reported_with_a_failing_exit() {
    let server = loaded();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("x");
    let t = target.to_str().unwrap();
    for (args, says) in [
        (vec!["export", "--db", "db", "--table", "nope", "--out", t], "not found"),
        (vec!["export", "--db", "nope", "--table", "cpu", "--list"], "not found"),
        (vec!["export", "--db", "db", "--table", "cpu", "--out", t, "--windows", "1999-01-01"], "not found"),
        (vec!["export", "--db", "db", "--table", "cpu", "--out", t, "--windows", "soon"], "400"),
    ] {
        let out = quipu(&server, &args);
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.starts_with("error: ") && stderr.contains(says), "{args:?}: {stderr}");
    }
    assert!(!target.exists() || files_in(&target).is_empty(), "nothing written on error");
    let out = Command::new(env!("CARGO_BIN_EXE_quipu"))
        .args(["--host", &server.host(), "export", "--db", "db", "--table", "cpu", "--list"])
        .env_remove("QUIPU_TOKEN")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("unauthorized"));
    let out = quipu(&server, &["export", "--db", "db", "--table", "cpu"]);
    assert!(!out.status.success(), "--out or --list is required");
}

/// A server that answers with the first `keep` bytes of `body` and then
/// closes the connection, declaring the full length.
fn cut_off_server(body: Vec<u8>, keep: usize) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut request = [0u8; 4096];
        let _ = conn.read(&mut request).unwrap();
        let head =
            format!("HTTP/1.1 200 OK\r\ncontent-type: application/x-tar\r\ncontent-length: {}\r\n\r\n", body.len());
        conn.write_all(head.as_bytes()).unwrap();
        conn.write_all(&body[..keep]).unwrap();
    });
    format!("http://{addr}")
}

#[test]
fn a_stream_cut_off_mid_file_leaves_no_parquet_file() {
    let server = loaded();
    let tar = client_support::client()
        .get(server.url("/api/v3/export/window_data?db=db&table=cpu"))
        .bearer_auth(TOKEN)
        .send()
        .unwrap()
        .bytes()
        .unwrap()
        .to_vec();
    let entries = common::untar(&tar);
    // Cut inside the second file: the first arrives whole, the second not.
    let keep = 512 + entries[0].1.len().div_ceil(512) * 512 + 512 + entries[1].1.len() / 2;
    let host = cut_off_server(tar, keep);
    let dir = tempfile::tempdir().unwrap();
    let client = Client::new(&host, Some(TOKEN)).unwrap();
    let err = client.export("db", "cpu", &[], dir.path(), &no_progress).unwrap_err();
    assert!(matches!(err, ClientError::Export { .. }), "{err:?}");
    assert_eq!(files_in(dir.path()), ["cpu/1970-01-01.parquet"], "no partial or temporary file");
    assert_eq!(std::fs::read(dir.path().join("cpu/1970-01-01.parquet")).unwrap(), entries[0].1);
}

#[test]
fn entry_names_leaving_the_folder_are_refused() {
    // A hand-made tar whose entry climbs out of the output folder.
    let mut tar = Vec::new();
    {
        let mut builder = tar::Builder::new(&mut tar);
        let mut header = tar::Header::new_gnu();
        let data = b"PAR1";
        header.set_size(data.len() as u64);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        // set_path refuses `..`; write the raw name as a hostile server would.
        header.as_old_mut().name[..12].copy_from_slice(b"../evil.parq");
        header.set_cksum();
        builder.append(&header, &data[..]).unwrap();
        builder.finish().unwrap();
    }
    let len = tar.len();
    let host = cut_off_server(tar, len);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let err = Client::new(&host, None).unwrap().export("db", "cpu", &[], &out, &no_progress).unwrap_err();
    assert!(err.to_string().contains("leaves the output folder"), "{err}");
    assert!(!dir.path().join("evil.parq").exists());
}
