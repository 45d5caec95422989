//! Remote repositories in a folder (object_store's local file system), with
//! small parts so that the large segment file goes up as a multipart upload
//! and the small objects in a pack: a round
//! trip through push, pull and restore; a cancelled push that leaves no
//! manifest and is finished by a rerun; a push of another backup under a
//! name the remote holds, refused with the remote's manifest untouched; a
//! local object whose bytes no longer hash to its name, which a push
//! refuses to send; copies outside the layout (a pack in a folder below
//! `packs/`, an object in the wrong shard), which count for nothing.
#![cfg(all(feature = "remote", feature = "server"))]

use crate::server_support::engine_rows;

use std::sync::atomic::{AtomicBool, Ordering};

use quipu::Error;
use quipu::backup::{BackupConfig, BackupRequest, BackupService, BackupStatus, ModeChoice, Repository, RestoreVerify};
use quipu::remote::{Remote, RemoteOptions};
use quipu::{Engine, Precision, WriteOptions};

const PART: usize = 64 << 10;

struct Setup {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    local: Repository,
    rows: crate::server_support::BackupRows,
}

/// A repository with backup `b` of a few files, the largest several parts long.
fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let engine = Engine::builder(root.join("data")).background(false).open().unwrap();
    let config = BackupConfig { mode: ModeChoice::Copy, ..BackupConfig::default() };
    let backups = BackupService::open(engine.clone(), root.join("repo"), config).unwrap();
    let mut rng = crate::common::Rng(0x000b_1ec7);
    for (file, rows) in [(0i64, 60_000i64), (1, 500)] {
        // Random values do not compress away, so the file spans several parts.
        let lp: String = (0..rows)
            .map(|i| format!("m,host=h{} v={}i {}\n", i % 50, rng.next() as i64, file * 1_000_000 + i))
            .collect();
        engine.write_lp("db", &lp, Precision::Nanosecond, WriteOptions::default()).unwrap();
        engine.flush().unwrap();
    }
    let name = backups.start(BackupRequest::full().named("b")).unwrap();
    assert_eq!(backups.wait(&name).unwrap().status, BackupStatus::Completed);
    let rows = engine_rows(&engine);
    let local = Repository::open(&root.join("repo")).unwrap();
    let (manifest, _) = local.read_manifest("b").unwrap().unwrap();
    assert!(manifest.files.iter().any(|f| f.size > 4 * PART as u64), "no file goes up in parts: {manifest:?}");
    Setup { _dir: dir, root, local, rows }
}

fn options() -> RemoteOptions {
    RemoteOptions { part_bytes: PART, pack_below: Some(PART as u64), ..RemoteOptions::default() }
}

#[test]
fn a_multipart_round_trip_through_a_folder_remote() {
    let s = setup();
    let url = format!("file://{}", s.root.join("remote").display());
    let remote = Remote::open(&url, options()).unwrap();
    let sent = std::sync::atomic::AtomicU64::new(0);
    let report = remote.push(
        &s.local,
        "b",
        &|n| {
            sent.fetch_add(n, Ordering::Relaxed);
        },
        &AtomicBool::new(false),
    );
    let report = report.unwrap();
    assert_eq!(report.objects_sent, report.objects_total);
    assert_eq!(sent.load(Ordering::Relaxed), report.bytes_total, "progress does not add up to the backup");
    assert!(remote.check(None, true, &|_| {}).unwrap().is_clean());

    let new_repo = Repository::open_or_create(&s.root.join("repo2"), 1, "2026-12-03T00:00:00Z").unwrap();
    remote.pull(&new_repo, "b", &|_| {}, &AtomicBool::new(false)).unwrap();
    let into = s.root.join("data2");
    quipu::backup::restore_into(&s.root.join("repo2"), "b", &into, ModeChoice::Auto, RestoreVerify::Full, &|_| {})
        .unwrap();
    let restored = Engine::builder(&into).background(false).open().unwrap();
    assert!(engine_rows(&restored) == s.rows, "the rows came back different");
}

#[test]
fn a_cancelled_push_leaves_no_manifest_and_a_rerun_finishes_it() {
    let s = setup();
    let remote = Remote::open(s.root.join("remote").to_str().unwrap(), options()).unwrap();
    let cancel = AtomicBool::new(false);
    // Cancelled after the first part of anything is sent.
    let result = remote.push(&s.local, "b", &|_| cancel.store(true, Ordering::Relaxed), &cancel);
    assert!(matches!(result, Err(Error::Interrupted)), "{result:?}");
    assert!(remote.list().unwrap().is_empty(), "a cancelled push committed its manifest");
    assert!(!s.root.join("remote/manifests/b.json").exists());
    let rerun = remote.push(&s.local, "b", &|_| {}, &AtomicBool::new(false)).unwrap();
    assert!(rerun.objects_sent > 0 && rerun.objects_sent <= rerun.objects_total, "{rerun:?}");
    assert_eq!(remote.list().unwrap(), vec!["b".to_string()]);
    assert!(remote.check(Some("b"), true, &|_| {}).unwrap().is_clean());
}

#[test]
fn a_push_over_another_backup_of_the_same_name_is_refused_and_a_repeat_sends_nothing() {
    let s = setup();
    let remote = Remote::open(s.root.join("remote").to_str().unwrap(), options()).unwrap();
    let never = AtomicBool::new(false);
    remote.push(&s.local, "b", &|_| {}, &never).unwrap();
    let again = remote.push(&s.local, "b", &|_| {}, &never).unwrap();
    assert!(again.already_there && again.objects_sent == 0, "{again:?}");
    let manifest = std::fs::read(s.root.join("remote/manifests/b.json")).unwrap();

    // Another repository's backup "b" (other rows, so another manifest).
    let engine = Engine::builder(s.root.join("data-other")).background(false).open().unwrap();
    engine.write_lp("db", "m,host=x v=1i 1\n", Precision::Nanosecond, WriteOptions::default()).unwrap();
    engine.flush().unwrap();
    let config = BackupConfig { mode: ModeChoice::Copy, ..BackupConfig::default() };
    let other = BackupService::open(engine, s.root.join("repo-other"), config).unwrap();
    other.wait(&other.start(BackupRequest::full().named("b")).unwrap()).unwrap();
    drop(other);
    let other = Repository::open(&s.root.join("repo-other")).unwrap();
    let refused = remote.push(&other, "b", &|_| {}, &never);
    assert!(
        matches!(&refused, Err(Error::Remote(quipu::remote::RemoteError::ManifestExists { name, .. })) if name == "b"),
        "{refused:?}"
    );
    assert_eq!(std::fs::read(s.root.join("remote/manifests/b.json")).unwrap(), manifest, "the remote backup changed");
}

#[test]
fn a_local_object_that_no_longer_hashes_to_its_name_is_not_sent() {
    let s = setup();
    let (manifest, _) = s.local.read_manifest("b").unwrap().unwrap();
    let big = manifest.files.iter().max_by_key(|f| f.size).unwrap().blake3.clone();
    let path = s.local.object_path(&big);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644));
    }
    std::fs::write(&path, &bytes).unwrap();
    let remote = Remote::open(s.root.join("remote").to_str().unwrap(), options()).unwrap();
    match remote.push(&s.local, "b", &|_| {}, &AtomicBool::new(false)) {
        Err(Error::Corrupt { path: named, .. }) => assert_eq!(named, path),
        other => panic!("a push of a corrupt local object: {other:?}"),
    }
    assert!(remote.list().unwrap().is_empty());
    let remote_object = s.root.join("remote/objects").join(&big[..2]).join(&big);
    assert!(!remote_object.exists(), "the corrupt object was sent");
}

#[test]
fn looking_at_a_folder_that_is_no_repository_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("typo");
    let remote = Remote::open(missing.to_str().unwrap(), options()).unwrap();
    match remote.check(None, false, &|_| {}) {
        Err(Error::Remote(quipu::remote::RemoteError::NotARepository { url, .. })) => {
            assert_eq!(url, missing.to_str().unwrap())
        }
        other => panic!("a check of a missing folder: {other:?}"),
    }
    assert!(matches!(remote.show("b"), Err(Error::Remote(quipu::remote::RemoteError::NotFound { .. }))));
    assert!(!missing.exists(), "looking created the folder");
    // A folder that holds something else is not a repository either.
    std::fs::create_dir(&missing).unwrap();
    std::fs::write(missing.join("QUIPU-REPO"), b"{\"format\": 99}").unwrap();
    match remote.check(None, false, &|_| {}) {
        Err(Error::Remote(quipu::remote::RemoteError::NotARepository { why, .. })) => {
            assert!(why.contains("99"), "{why}")
        }
        other => panic!("a check of a folder of another format: {other:?}"),
    }
}

#[test]
fn copies_outside_the_layout_count_for_nothing() {
    let s = setup();
    let remote = Remote::open(s.root.join("remote").to_str().unwrap(), options()).unwrap();
    let never = AtomicBool::new(false);
    remote.push(&s.local, "b", &|_| {}, &never).unwrap();
    let packs = s.root.join("remote/packs");
    let pack = std::fs::read_dir(&packs).unwrap().next().unwrap().unwrap().path();
    let (manifest, _) = s.local.read_manifest("b").unwrap().unwrap();
    let small = manifest.objects().find(|o| o.size < PART as u64).unwrap();
    // A pack in a folder below packs/, a loose object in the wrong shard:
    // nothing a pull would read, so nothing a check or a push counts on.
    std::fs::create_dir_all(packs.join("old")).unwrap();
    std::fs::rename(&pack, packs.join("old").join(pack.file_name().unwrap())).unwrap();
    std::fs::create_dir_all(s.root.join("remote/objects/zz")).unwrap();
    std::fs::copy(s.local.object_path(&small.blake3), s.root.join("remote/objects/zz").join(&small.blake3)).unwrap();
    let check = remote.check(Some("b"), false, &|_| {}).unwrap();
    assert!(
        check
            .problems
            .iter()
            .any(|(p, _)| matches!(p, quipu::backup::ObjectProblem::Missing { blake3 } if *blake3 == small.blake3)),
        "{check:?}"
    );
    // A push (of the backup again, its manifest removed) sends the packed
    // objects again, into a pack where readers look.
    std::fs::remove_file(s.root.join("remote/manifests/b.json")).unwrap();
    let pushed = remote.push(&s.local, "b", &|_| {}, &never).unwrap();
    assert!(pushed.objects_sent > 0, "{pushed:?}");
    assert!(remote.check(Some("b"), true, &|_| {}).unwrap().is_clean());
}
