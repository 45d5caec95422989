//! Golden repository: backups "first" (full) and "second" (incremental) of
//! the v1 fixture data folder (testdata/v1/data), taken in copy mode on a
//! fixed clock, must stay byte for byte testdata/backup-v1/repo
//! (docs/FORMAT.md, "Backup repository"), and that repository must check
//! clean and decode as this build expects.
//! Regenerate, when the repository format changes on purpose, with:
//! QUIPU_REGENERATE_FIXTURES=1 cargo test --test backup_fixture

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::copy_dir;
use quipu::Engine;
use quipu::backup::{
    BackupConfig, BackupRequest, BackupService, BackupStatus, BackupType, ModeChoice, PlaceMode, Repository,
};
use quipu::clock::{ManualClock, SequentialIds};

const T0: i64 = 1_767_225_600_000_000_000; // 2026-01-01T00:00:00Z

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

/// Every file under `dir`, by relative path.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

fn take_backups(repo: &Path) {
    let data = tempfile::tempdir().unwrap();
    copy_dir(&root().join("v1/data"), data.path());
    let engine = Engine::builder(data.path())
        .background(false)
        .clock(Arc::new(ManualClock::new(T0)))
        .ids(Arc::new(SequentialIds::default()))
        .open()
        .unwrap();
    let config = BackupConfig { mode: ModeChoice::Copy, ..BackupConfig::default() };
    let backups = BackupService::open(engine, repo, config).unwrap();
    let first = backups.start(BackupRequest::full().named("first")).unwrap();
    assert_eq!(backups.wait(&first).unwrap().status, BackupStatus::Completed);
    let second = backups.start(BackupRequest::full().named("second").incremental(None)).unwrap();
    assert_eq!(backups.wait(&second).unwrap().status, BackupStatus::Completed);
}

#[test]
fn backups_of_the_v1_fixture_are_the_golden_repository() {
    let golden = root().join("backup-v1/repo");
    if std::env::var("QUIPU_REGENERATE_FIXTURES").is_ok() {
        let _ = std::fs::remove_dir_all(&golden);
        take_backups(&golden);
        // The lock file is the running service's, not part of the format.
        std::fs::remove_file(golden.join("lock")).unwrap();
    }
    let fresh = tempfile::tempdir().unwrap();
    let fresh_repo = fresh.path().join("repo");
    take_backups(&fresh_repo);
    let mut made = files(&fresh_repo);
    made.remove("lock");
    let expected = files(&golden);
    assert_eq!(made.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>());
    for (name, bytes) in &expected {
        assert!(made[name] == *bytes, "{name} differs from {}", golden.join(name).display());
    }
}

#[test]
fn the_golden_repository_checks_clean_and_decodes() {
    let golden = root().join("backup-v1/repo");
    let repo = Repository::open(&golden).unwrap();
    let report = repo.check(true).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.manifests, 2);
    assert_eq!(report.unreferenced_objects, 0);

    let (first, first_hash) = repo.read_manifest("first").unwrap().unwrap();
    let (second, _) = repo.read_manifest("second").unwrap().unwrap();
    assert_eq!(first.backup_type, BackupType::Full);
    assert_eq!(first.parent, None);
    assert_eq!(second.backup_type, BackupType::Incremental);
    let parent = second.parent.clone().unwrap();
    assert_eq!((parent.name.as_str(), parent.blake3.as_str()), ("first", first_hash.as_str()));
    assert_eq!(first.mode, PlaceMode::Copy);
    assert_eq!(first.created_at, "2026-01-01T00:00:00.000Z");
    // Both list every file (full listings), and nothing changed in between.
    assert_eq!(first.files, second.files);
    assert_eq!(second.added_objects, 0);
    assert_eq!(first.total_files, first.files.len() as u64);
    assert_eq!(first.total_size_bytes, first.files.iter().map(|f| f.size).sum::<u64>());
    // The files are the fixture's segments: each object is its segment's bytes.
    for f in &first.files {
        let object = std::fs::read(repo.object_path(&f.blake3)).unwrap();
        assert_eq!(object.len() as u64, f.size);
        assert_eq!(blake3::hash(&object).to_hex().as_str(), f.blake3);
        let segment = root().join("v1/data").join(&f.path);
        if segment.exists() {
            assert_eq!(std::fs::read(&segment).unwrap(), object, "{}", f.path);
        }
        assert_eq!((f.db.as_str(), f.table.as_str()), ("fixture", "cpu"));
    }
}
