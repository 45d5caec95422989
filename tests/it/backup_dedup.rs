//! Deduplication: a backup adds exactly the objects the repository lacks
//! (new segment files, and the catalog when it changed), in link mode (hard
//! links sharing the segment's inode) and in copy mode (on the same
//! filesystem, forced).

#![cfg(feature = "server")]

use crate::server_support;

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use quipu::backup::{BackupConfig, BackupRequest, BackupService, Manifest, ModeChoice, PlaceMode, Repository};
use quipu::{Engine, Precision, WriteOptions};
use server_support::repo_files;

struct Setup {
    _tmp: tempfile::TempDir,
    engine: Engine,
    backups: BackupService,
    repo: std::path::PathBuf,
}

fn setup(mode: ModeChoice) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let engine = Engine::builder(tmp.path().join("data")).background(false).open().unwrap();
    let repo = tmp.path().join("repo");
    let backups = BackupService::open(engine.clone(), &repo, BackupConfig { mode, ..BackupConfig::default() }).unwrap();
    let want = if mode == ModeChoice::Copy { PlaceMode::Copy } else { PlaceMode::Link };
    assert_eq!(backups.mode(), want);
    Setup { _tmp: tmp, engine, backups, repo }
}

fn write(engine: &Engine, table: &str, field: &str, t0: i64, n: i64) {
    let lp: String = (0..n).map(|i| format!("{table},host=h{} {field}={}i {}\n", i % 4, i * 3, t0 + i)).collect();
    engine.write_lp("db", &lp, Precision::Nanosecond, WriteOptions::default()).unwrap();
    engine.flush().unwrap();
}

/// Runs a backup to completion; its manifest.
fn backup(s: &Setup, name: &str) -> Manifest {
    let name = s.backups.start(BackupRequest::full().named(name)).unwrap();
    let info = s.backups.wait(&name).unwrap();
    assert_eq!(info.status.as_str(), "completed", "{info:?}");
    Repository::open(&s.repo).unwrap().read_manifest(&name).unwrap().unwrap().0
}

fn objects(m: &Manifest) -> BTreeSet<String> {
    m.objects().map(|o| o.blake3).collect()
}

/// Takes a backup and checks that it added exactly `expected_new` objects:
/// the ones no earlier backup had, and that the objects folder grew by them.
fn step(s: &Setup, name: &str, earlier: &[Manifest], expected_new: usize) -> Manifest {
    let before: BTreeSet<String> = repo_files(&s.repo).0.into_iter().collect();
    let known: BTreeSet<String> = earlier.iter().flat_map(objects).collect();
    assert_eq!(before, known, "the repository holds exactly what the manifests reference");
    let m = backup(s, name);
    let after: BTreeSet<String> = repo_files(&s.repo).0.into_iter().collect();
    let new: BTreeSet<String> = objects(&m).difference(&known).cloned().collect();
    assert_eq!(new.len(), expected_new, "{name}: new objects {new:?}");
    assert_eq!(m.added_objects, expected_new as u64, "{name}");
    let repo = Repository::open(&s.repo).unwrap();
    let added_bytes: u64 = new.iter().map(|h| std::fs::metadata(repo.object_path(h)).unwrap().len()).sum();
    assert_eq!(m.added_bytes, added_bytes, "{name}");
    assert_eq!(after, before.union(&new).cloned().collect::<BTreeSet<_>>(), "{name}: the objects folder");
    // A full listing of the live files, whatever was added.
    let live: BTreeSet<String> = s.engine.live_files().iter().map(|f| f.meta.blake3_hex()).collect();
    assert_eq!(m.files.iter().map(|f| f.blake3.clone()).collect::<BTreeSet<_>>(), live, "{name}");
    m
}

fn same_inode(a: &Path, b: &Path) -> bool {
    let (a, b) = (std::fs::metadata(a).unwrap(), std::fs::metadata(b).unwrap());
    (a.dev(), a.ino()) == (b.dev(), b.ino())
}

/// Each live segment against its object: the same inode in link mode, an
/// equal copy in copy mode.
fn check_placement(s: &Setup, m: &Manifest) {
    let repo = Repository::open(&s.repo).unwrap();
    let data = s.engine.dir();
    for f in &m.files {
        let segment = data.join(&f.path);
        let object = repo.object_path(&f.blake3);
        match s.backups.mode() {
            PlaceMode::Link => assert!(same_inode(&segment, &object), "{} is not a link of {}", f.path, f.blake3),
            PlaceMode::Copy => {
                assert!(!same_inode(&segment, &object), "copy mode linked {}", f.path);
                assert_eq!(std::fs::read(&segment).unwrap(), std::fs::read(&object).unwrap(), "{}", f.path);
            }
        }
    }
}

fn dedup(mode: ModeChoice) {
    let s = setup(mode);
    write(&s.engine, "cpu", "v", 0, 100);
    let mut all = Vec::new();

    // The first backup: the segment and the catalog.
    let b1 = step(&s, "b1", &all, 2);
    check_placement(&s, &b1);
    all.push(b1.clone());

    // Nothing new: nothing added, the same listing.
    let b2 = step(&s, "b2", &all, 0);
    assert_eq!(b2.files, b1.files);
    assert_eq!(b2.catalog, b1.catalog);
    all.push(b2);
    let list = s.backups.list().unwrap();
    assert_eq!(list.iter().map(|b| b.unique_bytes).collect::<Vec<_>>(), [Some(0), Some(0)], "{list:?}");

    // New rows of known columns: one new segment, the same catalog.
    write(&s.engine, "cpu", "v", 1_000, 100);
    assert_eq!(s.engine.live_files().len(), 2);
    let b3 = step(&s, "b3", &all, 1);
    assert_eq!(b3.catalog, b1.catalog, "no new table or column: the same catalog");
    check_placement(&s, &b3);
    all.push(b3.clone());

    // A new table: its segment and the changed catalog.
    write(&s.engine, "mem", "v", 0, 100);
    let b4 = step(&s, "b4", &all, 2);
    assert_ne!(b4.catalog.blake3, b3.catalog.blake3);
    assert!(b4.catalog.sequence > b3.catalog.sequence);
    check_placement(&s, &b4);
    all.push(b4.clone());

    // A new column of a known table: again a segment and a catalog.
    write(&s.engine, "cpu", "w", 2_000, 100);
    let b5 = step(&s, "b5", &all, 2);
    assert_ne!(b5.catalog.blake3, b4.catalog.blake3);
    all.push(b5.clone());

    // Compaction rewrites the gen0 files: exactly the compacted files are new.
    let gen0: Vec<std::path::PathBuf> = s.engine.live_files().iter().map(|f| f.path.clone()).collect();
    s.engine.compact().unwrap();
    let live = s.engine.live_files();
    assert!(live.iter().all(|f| f.meta.level == 1), "{live:?}");
    let b6 = step(&s, "b6", &all, live.len());
    assert_eq!(b6.catalog, b5.catalog);
    check_placement(&s, &b6);
    all.push(b6);

    // The gen0 segments are gone from the data folder; every backup still
    // verifies (in link mode the objects keep the inodes alive).
    for path in &gen0 {
        assert!(!path.exists(), "{} survived compaction", path.display());
    }
    for m in &all {
        let report = s.backups.verify(&m.name).unwrap();
        assert_eq!(report.status, "ok", "{report:?}");
    }
    let report = Repository::open(&s.repo).unwrap().check(true).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.unreferenced_objects, 0);
}

#[test]
fn link_mode_adds_only_new_objects_as_links() {
    dedup(ModeChoice::Link);
}

#[test]
fn copy_mode_adds_only_new_objects_as_copies() {
    dedup(ModeChoice::Copy);
}

#[test]
fn auto_mode_links_on_the_same_filesystem() {
    let s = setup(ModeChoice::Auto);
    assert_eq!(s.backups.mode(), PlaceMode::Link);
    write(&s.engine, "cpu", "v", 0, 10);
    let m = step(&s, "a", &[], 2);
    check_placement(&s, &m);
}
