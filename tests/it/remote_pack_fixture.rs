//! Golden remote repository: backups "first" and "second" of the golden
//! local repository (testdata/backup-v1/repo) pushed in that order to a
//! folder remote, testdata/remote-pack-v1/remote (docs/FORMAT.md, "Remote
//! repository", packs). Its packs must decode, be named by their bytes and
//! hold exactly the objects of the local repository; the same pushes today
//! must write the same packs byte for byte; and a pull from it must give
//! back the golden local repository's objects and manifests.
//! Regenerate, when the pack format changes on purpose, with:
//! QUIPU_REGENERATE_FIXTURES=1 cargo test --test it remote_pack_fixture
#![cfg(feature = "remote")]

use crate::common::copy_dir;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use quipu::backup::Repository;
use quipu::remote::records::decode_pack_index;
use quipu::remote::{Remote, RemoteOptions};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

/// The packs under `remote`, by file name.
fn packs(remote: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(remote.join("packs"))
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            (path.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&path).unwrap())
        })
        .collect()
}

/// Pushes "first" then "second" of the golden local repository to `remote`.
fn push_golden(remote: &Path) {
    let local = Repository::open(&testdata().join("backup-v1/repo")).unwrap();
    let remote = Remote::open(remote.to_str().unwrap(), RemoteOptions::default()).unwrap();
    for name in ["first", "second"] {
        remote.push(&local, name, &|_| {}, &AtomicBool::new(false)).unwrap();
    }
}

#[test]
fn the_golden_remote_reads_and_todays_pushes_write_the_same_packs() {
    let golden = testdata().join("remote-pack-v1/remote");
    if std::env::var("QUIPU_REGENERATE_FIXTURES").is_ok() {
        let _ = std::fs::remove_dir_all(&golden);
        push_golden(&golden);
        // Empty after the probe; git keeps no empty folder.
        let _ = std::fs::remove_dir(golden.join("probes"));
    }
    let local = Repository::open(&testdata().join("backup-v1/repo")).unwrap();
    let expected: BTreeMap<String, Vec<u8>> = ["first", "second"]
        .iter()
        .flat_map(|name| local.read_manifest(name).unwrap().unwrap().0.objects().collect::<Vec<_>>())
        .map(|o| (o.blake3.clone(), std::fs::read(local.object_path(&o.blake3)).unwrap()))
        .collect();

    // Every pack decodes, is named by its bytes, and its members are the
    // local objects, each once over all packs.
    let golden_packs = packs(&golden);
    // "second" is an incremental backup of the same data: it adds no object.
    assert_eq!(golden_packs.len(), 1, "{:?}", golden_packs.keys());
    let mut members = BTreeMap::new();
    for (file, bytes) in &golden_packs {
        assert_eq!(*file, format!("{}.pack", blake3::hash(bytes).to_hex()));
        for entry in decode_pack_index(bytes, bytes.len() as u64).unwrap() {
            let member = bytes[entry.offset as usize..entry.end() as usize].to_vec();
            assert!(members.insert(entry.blake3, member).is_none(), "an object in two packs");
        }
    }
    assert!(members == expected, "the packs' members are not the repository's objects");
    assert!(!golden.join("objects").exists(), "small objects went loose");

    // Today's pushes write the same packs.
    let fresh = tempfile::tempdir().unwrap();
    push_golden(&fresh.path().join("remote"));
    assert!(packs(&fresh.path().join("remote")) == golden_packs, "the packs differ from {}", golden.display());

    // A pull from (a copy of) the golden remote gives back the golden repository.
    let copy = fresh.path().join("golden");
    copy_dir(&golden, &copy);
    let remote = Remote::open(copy.to_str().unwrap(), RemoteOptions::default()).unwrap();
    assert!(remote.check(None, true, &|_| {}).unwrap().is_clean());
    let pulled = Repository::open_or_create(&fresh.path().join("pulled"), 5, "2026-12-04T00:00:00Z").unwrap();
    for name in ["first", "second"] {
        remote.pull(&pulled, name, &|_| {}, &AtomicBool::new(false)).unwrap();
        assert_eq!(pulled.read_manifest(name).unwrap(), local.read_manifest(name).unwrap());
    }
    for (blake3, bytes) in &expected {
        assert!(std::fs::read(pulled.object_path(blake3)).unwrap() == *bytes, "object {blake3} differs");
    }
    assert!(pulled.check(true).unwrap().is_clean());
}
