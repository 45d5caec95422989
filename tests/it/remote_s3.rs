//! Remote repositories on a real S3 server (`moto_server`, started here on
//! 127.0.0.1): a backup pushed, everything local deleted, pulled back into
//! a fresh repository and restored into a fresh data folder holds exactly
//! the rows; a second push after a few new rows sends only the new
//! objects; a flipped byte in an object inside a pack is named by a check
//! and refused by a pull; a server that ignores conditional creates
//! (`rclone serve s3`) is refused until accepted. The remote is also read
//! independently of quipu, with boto3, its packs parsed in Python after
//! docs/FORMAT.md alone.
#![cfg(all(feature = "remote", feature = "server"))]

use crate::remote_support::S3Server;
use crate::server_support::engine_rows;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
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

/// Uploads `file` to `key` of the server's bucket with boto3.
fn boto3_upload(server: &S3Server, file: &Path, key: &str) {
    boto3(server, &format!("s3.upload_file('{}', '{}', '{key}')", file.display(), server.bucket));
}

/// Python (after `bucket`, `prefix` and `into` are set) that downloads
/// every pack under `prefix` into the folder `into` and reads it after
/// docs/FORMAT.md ("Packs") with struct and zlib alone, asserting the
/// footer, the index's crc32 and the layout; it prints `{key: [[blake3,
/// offset, size], ...]}`.
const READ_PACKS: &str = r#"
import os, re, struct, zlib
FOOTER, ENTRY = 24, 48
packs = {}
for page in s3.get_paginator('list_objects_v2').paginate(Bucket=bucket, Prefix=prefix + 'packs/'):
    for o in page.get('Contents', []):
        key = o['Key']
        assert re.fullmatch(re.escape(prefix) + r'packs/[0-9a-f]{64}\.pack', key), key
        path = os.path.join(into, key.rsplit('/', 1)[1])
        s3.download_file(bucket, key, path)
        with open(path, 'rb') as f:
            data = f.read()
        assert len(data) == o['Size'] >= FOOTER, key
        count, crc, fmt = struct.unpack_from('<QII', data, len(data) - FOOTER)
        assert data[-8:] == b'QUIPUPAK' and fmt == 1, key
        start = len(data) - FOOTER - ENTRY * count
        assert start >= 0, key
        index = data[start:len(data) - FOOTER]
        assert zlib.crc32(index) == crc, key
        members, end = [], 0
        for i in range(count):
            name, offset, size = struct.unpack_from('<32sQQ', index, ENTRY * i)
            assert offset == end, (key, i)
            end = offset + size
            members.append((name.hex(), offset, size))
        assert end == start, (key, end, start)
        assert len({m[0] for m in members}) == count, key
        packs[key] = members
print(json.dumps(packs))
"#;

/// A pack as boto3 fetched it and Python parsed it.
struct RemotePack {
    key: String,
    /// Where its bytes were saved.
    file: PathBuf,
    /// Its members: blake3, offset, size.
    members: Vec<(String, u64, u64)>,
}

/// Every pack under `prefix`, downloaded into `into` and parsed in Python
/// ([`READ_PACKS`]): independent of quipu's decoder.
fn boto3_packs(server: &S3Server, prefix: &str, into: &Path) -> Vec<RemotePack> {
    let code = format!("bucket, prefix, into = '{}', '{prefix}', '{}'\n{READ_PACKS}", server.bucket, into.display());
    let packs: BTreeMap<String, Vec<(String, u64, u64)>> = serde_json::from_slice(&boto3(server, &code)).unwrap();
    let file = |key: &str| into.join(key.rsplit('/').next().unwrap());
    packs.into_iter().map(|(key, members)| RemotePack { file: file(&key), key, members }).collect()
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
    // size, loose or in a pack whose bytes are its name and whose members
    // are theirs; one manifest per backup, the marker.
    let keys = boto3_keys(&server, "site-a/");
    let key_set: BTreeMap<String, u64> = keys.iter().cloned().collect();
    let downloads = tempfile::tempdir().unwrap();
    let packs = boto3_packs(&server, "site-a/", downloads.path());
    assert!(!packs.is_empty(), "small objects go up in packs: {keys:?}");
    let mut packed: BTreeMap<String, u64> = BTreeMap::new();
    for pack in &packs {
        let bytes = std::fs::read(&pack.file).unwrap();
        assert_eq!(pack.key, format!("site-a/packs/{}.pack", blake3::hash(&bytes).to_hex()));
        for (name, offset, size) in &pack.members {
            let member = &bytes[*offset as usize..(offset + size) as usize];
            assert_eq!(blake3::hash(member).to_hex().as_str(), name, "member of {}", pack.key);
            packed.insert(name.clone(), *size);
        }
    }
    for m in [&manifest_first, &manifest_second] {
        for object in m.objects() {
            let key = format!("site-a/objects/{}/{}", &object.blake3[..2], object.blake3);
            let loose = key_set.get(&key) == Some(&object.size);
            assert!(loose || packed.get(&object.blake3) == Some(&object.size), "{key}: neither loose nor packed");
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

    // Flip one byte in the middle of one segment object, inside the pack
    // that holds it, and put the pack back under its name.
    let (manifest, _) = local.read_manifest("b").unwrap().unwrap();
    let victim = manifest.files[0].blake3.clone();
    assert!(!boto3_keys(&server, "objects/").iter().any(|(key, _)| key.ends_with(&victim)), "the victim is loose");
    let object = std::fs::read(local.object_path(&victim)).unwrap();
    let downloads = tempfile::tempdir().unwrap();
    let mut holding = boto3_packs(&server, "", downloads.path()).into_iter().filter_map(|pack| {
        let bytes = std::fs::read(&pack.file).unwrap();
        let at = bytes.windows(object.len()).position(|w| w == object.as_slice())?;
        Some((pack, bytes, at))
    });
    let (pack, mut bytes, at) = holding.next().expect("a pack holds the victim's bytes");
    assert!(holding.next().is_none(), "one pack holds the victim's bytes");
    assert!(pack.members.contains(&(victim.clone(), at as u64, object.len() as u64)), "its index places it there");
    bytes[at + object.len() / 2] ^= 0x40;
    std::fs::write(&pack.file, &bytes).unwrap();
    boto3_upload(&server, &pack.file, &pack.key);

    let quick = remote.check(Some("b"), false, &|_| {}).unwrap();
    assert!(quick.is_clean(), "same size: a check without read_data cannot see it");
    let full = remote.check(Some("b"), true, &|_| {}).unwrap();
    assert_eq!(full.problems.len(), 1, "{full:?}");
    assert!(matches!(&full.problems[0].0, ObjectProblem::Corrupt { blake3, .. } if *blake3 == victim));
    assert_eq!(full.problems[0].1, vec!["b".to_string()]);
    let pack_name = pack.key.strip_prefix("packs/").and_then(|k| k.strip_suffix(".pack")).unwrap();
    let bad_packs: Vec<&str> = full.bad_packs.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(bad_packs, vec![pack_name], "the pack no longer hashes to its name");

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
