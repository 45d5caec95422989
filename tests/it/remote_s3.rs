//! Remote repositories on a real S3 server (`moto_server`, started here on
//! 127.0.0.1): a backup pushed, everything local deleted, pulled back into
//! a fresh repository and restored into a fresh data folder holds exactly
//! the rows; a second push after a few new rows sends only the new
//! objects; a flipped byte in a remote object is named by a check and
//! refused by a pull; a server that ignores conditional creates (`rclone
//! serve s3`) is refused until accepted. The remote is also read
//! independently of quipu, with boto3.
#![cfg(all(feature = "remote", feature = "server"))]

use crate::remote_support::S3Server;
use crate::server_support::engine_rows;

use std::sync::atomic::AtomicBool;

use quipu::Error;
use quipu::backup::{
    BackupConfig, BackupRequest, BackupService, BackupStatus, ModeChoice, ObjectProblem, Repository, RestoreVerify,
};
use quipu::remote::{Remote, RemoteError, RemoteOptions};
use quipu::{Engine, Precision, WriteOptions};

fn write_hours(engine: &Engine, from: i64, hours: i64) {
    for h in from..from + hours {
        let lp: String = (0..200)
            .map(|i| format!("cpu,host=h{} usage={}.5,n={i}i {}\n", i % 10, i % 97, h * 3_600_000_000_000 + i))
            .collect();
        engine.write_lp("db", &lp, Precision::Nanosecond, WriteOptions::default()).unwrap();
        engine.flush().unwrap();
    }
}

fn backup(backups: &BackupService, name: &str) {
    let started = backups.start(BackupRequest::full().named(name)).unwrap();
    assert_eq!(backups.wait(&started).unwrap().status, BackupStatus::Completed);
}

/// Runs `code` in Python with `s3`, a boto3 client of the server; its stdout.
fn boto3(server: &S3Server, code: &str) -> Vec<u8> {
    let script = format!(
        "import boto3, json\n\
         s3 = boto3.client('s3', endpoint_url='{}', aws_access_key_id='testing', aws_secret_access_key='testing', region_name='us-east-1')\n\
         {code}\n",
        server.endpoint
    );
    let out = std::process::Command::new("python3").args(["-c", &script]).output().unwrap();
    assert!(out.status.success(), "boto3: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// The keys and sizes under `prefix` of the server's bucket, listed by boto3.
fn boto3_keys(server: &S3Server, prefix: &str) -> Vec<(String, u64)> {
    let code = format!(
        "keys = []\n\
         for page in s3.get_paginator('list_objects_v2').paginate(Bucket='{}', Prefix='{prefix}'):\n\
         \x20   keys += [(o['Key'], o['Size']) for o in page.get('Contents', [])]\n\
         print(json.dumps(sorted(keys)))",
        server.bucket
    );
    serde_json::from_slice(&boto3(server, &code)).unwrap()
}

fn fresh_file(bytes: &[u8]) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), bytes).unwrap();
    file
}

#[test]
fn push_delete_everything_pull_and_restore_gives_back_every_row() {
    let server = S3Server::moto("quipu");
    let data = tempfile::tempdir().unwrap();
    let repo = tempfile::tempdir().unwrap();
    let engine = Engine::builder(data.path()).background(false).open().unwrap();
    let config = BackupConfig { mode: ModeChoice::Copy, ..BackupConfig::default() };
    let backups = BackupService::open(engine.clone(), repo.path().join("r"), config).unwrap();
    write_hours(&engine, 0, 48);
    backup(&backups, "first");
    let rows_first = engine_rows(&engine);
    // 1% more rows: one more hour after 48 (and a few files).
    write_hours(&engine, 48, 1);
    backup(&backups, "second");
    let rows_second = engine_rows(&engine);

    let remote = Remote::open(&server.url("site-a"), server.options()).unwrap();
    let local = Repository::open(&repo.path().join("r")).unwrap();
    let cancel = AtomicBool::new(false);
    let first = remote.push(&local, "first", &|_| {}, &cancel).unwrap();
    assert_eq!(first.objects_present, 0);
    assert_eq!(first.objects_sent, first.objects_total);
    let (manifest_first, _) = local.read_manifest("first").unwrap().unwrap();
    let (manifest_second, _) = local.read_manifest("second").unwrap().unwrap();
    let new_objects = manifest_second.objects().filter(|o| !manifest_first.objects().any(|p| p.blake3 == o.blake3));
    let new_objects: std::collections::BTreeSet<String> = new_objects.map(|o| o.blake3).collect();
    let second = remote.push(&local, "second", &|_| {}, &cancel).unwrap();
    assert_eq!(second.objects_sent, new_objects.len() as u64, "{second:?}");
    assert!(second.objects_present > 0 && second.bytes_sent < first.bytes_sent, "{second:?}");
    // Pushing again sends nothing.
    let again = remote.push(&local, "second", &|_| {}, &cancel).unwrap();
    assert!(again.already_there && again.objects_sent == 0, "{again:?}");
    assert_eq!(remote.list().unwrap(), vec!["first".to_string(), "second".to_string()]);

    // Read independently: every object of both backups under its name and
    // size, one manifest per backup, the marker.
    let keys = boto3_keys(&server, "site-a/");
    let key_set: std::collections::BTreeMap<String, u64> = keys.iter().cloned().collect();
    for m in [&manifest_first, &manifest_second] {
        for object in m.objects() {
            let key = format!("site-a/objects/{}/{}", &object.blake3[..2], object.blake3);
            assert_eq!(key_set.get(&key), Some(&object.size), "{key}");
        }
    }
    assert!(key_set.contains_key("site-a/manifests/first.json") && key_set.contains_key("site-a/QUIPU-REPO"));
    assert!(!keys.iter().any(|(k, _)| k.contains("probes/")), "the probe was left: {keys:?}");

    // The machine is lost: nothing local is left.
    drop(backups);
    drop(engine);
    drop(local);
    drop(data);
    drop(repo);

    let fresh = tempfile::tempdir().unwrap();
    let new_repo = Repository::open_or_create(&fresh.path().join("r"), 7, "2026-12-03T00:00:00Z").unwrap();
    let pulled = remote.pull(&new_repo, "second", &|_| {}, &cancel).unwrap();
    assert_eq!(pulled.objects_fetched, pulled.objects_total);
    let pulled_first = remote.pull(&new_repo, "first", &|_| {}, &cancel).unwrap();
    assert!(pulled_first.objects_present > 0 && pulled_first.objects_fetched < pulled_first.objects_total);
    assert!(new_repo.check(true).unwrap().is_clean());
    for (name, rows) in [("second", &rows_second), ("first", &rows_first)] {
        let into = fresh.path().join(format!("data-{name}"));
        quipu::backup::restore_into(
            &fresh.path().join("r"),
            name,
            &into,
            ModeChoice::Copy,
            RestoreVerify::Full,
            &|_| {},
        )
        .unwrap();
        let restored = Engine::builder(&into).background(false).open().unwrap();
        assert!(engine_rows(&restored) == *rows, "backup {name}: the restored rows differ");
    }
    assert!(remote.check(None, true, &|_| {}).unwrap().is_clean());
}

#[test]
fn a_flipped_byte_in_a_remote_object_is_named_by_check_and_refused_by_pull() {
    let server = S3Server::moto("quipu");
    let data = tempfile::tempdir().unwrap();
    let repo = tempfile::tempdir().unwrap();
    let engine = Engine::builder(data.path()).background(false).open().unwrap();
    let backups = BackupService::open(engine.clone(), repo.path().join("r"), BackupConfig::default()).unwrap();
    write_hours(&engine, 0, 3);
    backup(&backups, "b");
    let local = Repository::open(&repo.path().join("r")).unwrap();
    let remote = Remote::open(&server.url(""), server.options()).unwrap();
    remote.push(&local, "b", &|_| {}, &AtomicBool::new(false)).unwrap();

    // Flip one byte of one segment object, in place on the server.
    let (manifest, _) = local.read_manifest("b").unwrap().unwrap();
    let victim = manifest.files[0].blake3.clone();
    let mut bytes = std::fs::read(local.object_path(&victim)).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    let key = format!("objects/{}/{victim}", &victim[..2]);
    let flipped = fresh_file(&bytes);
    boto3(&server, &format!("s3.upload_file('{}', '{}', '{key}')", flipped.path().display(), server.bucket));

    let quick = remote.check(Some("b"), false, &|_| {}).unwrap();
    assert!(quick.is_clean(), "same size: a check without read_data cannot see it");
    let full = remote.check(Some("b"), true, &|_| {}).unwrap();
    assert_eq!(full.problems.len(), 1, "{full:?}");
    assert!(matches!(&full.problems[0].0, ObjectProblem::Corrupt { blake3, .. } if *blake3 == victim));
    assert_eq!(full.problems[0].1, vec!["b".to_string()]);

    let fresh = tempfile::tempdir().unwrap();
    let new_repo = Repository::open_or_create(&fresh.path().join("r"), 7, "2026-12-03T00:00:00Z").unwrap();
    match remote.pull(&new_repo, "b", &|_| {}, &AtomicBool::new(false)) {
        Err(Error::Remote(RemoteError::BadObject {
            backup, problem: ObjectProblem::Corrupt { blake3, .. }, ..
        })) => {
            assert_eq!((backup.as_str(), blake3.as_str()), ("b", victim.as_str()));
        }
        other => panic!("a pull of a corrupt object: {other:?}"),
    }
    assert!(new_repo.read_manifest("b").unwrap().is_none(), "a failed pull installed the manifest");
    assert!(!new_repo.object_path(&victim).exists(), "the corrupt object was kept");
    match remote.pull(&new_repo, "nope", &|_| {}, &AtomicBool::new(false)) {
        Err(Error::Remote(RemoteError::NotFound { name, .. })) => assert_eq!(name, "nope"),
        other => panic!("a pull of a missing backup: {other:?}"),
    }
}

#[test]
fn a_server_that_ignores_conditional_creates_is_refused_unless_accepted() {
    let server = S3Server::rclone("quipu");
    let data = tempfile::tempdir().unwrap();
    let repo = tempfile::tempdir().unwrap();
    let engine = Engine::builder(data.path()).background(false).open().unwrap();
    let backups = BackupService::open(engine.clone(), repo.path().join("r"), BackupConfig::default()).unwrap();
    write_hours(&engine, 0, 2);
    backup(&backups, "b");
    let local = Repository::open(&repo.path().join("r")).unwrap();
    let remote = Remote::open(&server.url("x"), server.options()).unwrap();
    match remote.push(&local, "b", &|_| {}, &AtomicBool::new(false)) {
        Err(Error::Remote(RemoteError::NoConditionalPut { url })) => assert_eq!(url, server.url("x")),
        other => panic!("a push to a remote without conditional creates: {other:?}"),
    }
    assert!(remote.list().unwrap().is_empty(), "the refused push left a manifest");
    let accepted =
        Remote::open(&server.url("x"), RemoteOptions { accept_unconditional: true, ..server.options() }).unwrap();
    let pushed = accepted.push(&local, "b", &|_| {}, &AtomicBool::new(false)).unwrap();
    assert_eq!(pushed.objects_sent, pushed.objects_total);
    assert_eq!(accepted.list().unwrap(), vec!["b".to_string()]);
}
