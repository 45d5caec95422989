//! The sweep of unreferenced remote objects, on a folder remote with a zero
//! grace period: a deleted backup's own objects are planned by one sweep
//! and deleted by the next, the objects it shares with a kept backup stay;
//! a push that reuses planned objects renews them, so the plan that named
//! them no longer deletes them.
#![cfg(feature = "remote")]

use std::collections::BTreeSet;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use quipu::backup::{BackupConfig, BackupRequest, BackupService, BackupStatus, ModeChoice, Repository};
use quipu::remote::{Remote, RemoteOptions};
use quipu::{Engine, Precision, WriteOptions};

/// Stores keep modification times in seconds: the sweep compares seconds.
fn next_second() {
    std::thread::sleep(Duration::from_millis(1_100));
}

fn objects_of(repo: &Repository, name: &str) -> BTreeSet<String> {
    repo.read_manifest(name).unwrap().unwrap().0.objects().map(|o| o.blake3).collect()
}

fn remote_has(root: &std::path::Path, blake3: &str) -> bool {
    root.join("remote/objects").join(&blake3[..2]).join(blake3).exists()
}

#[test]
fn a_deleted_backups_own_objects_go_in_two_sweeps_and_a_push_renews_what_it_reuses() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let engine = Engine::builder(root.join("data")).background(false).open().unwrap();
    let config = BackupConfig { mode: ModeChoice::Copy, ..BackupConfig::default() };
    let backups = BackupService::open(engine.clone(), root.join("repo"), config).unwrap();
    for (name, t) in [("b1", 1), ("b2", 2)] {
        engine.write_lp("db", &format!("m v={t}i {t}"), Precision::Nanosecond, WriteOptions::default()).unwrap();
        engine.flush().unwrap();
        if name == "b2" {
            // b2 holds the compacted file in place of b1's: they share the catalog only.
            engine.compact().unwrap();
        }
        let started = backups.start(BackupRequest::full().named(name)).unwrap();
        assert_eq!(backups.wait(&started).unwrap().status, BackupStatus::Completed);
    }
    let local = Repository::open(&root.join("repo")).unwrap();
    let (b1, b2) = (objects_of(&local, "b1"), objects_of(&local, "b2"));
    let only_b1: BTreeSet<String> = b1.difference(&b2).cloned().collect();
    assert!(!only_b1.is_empty() && b1.intersection(&b2).count() > 0, "the backups share nothing or everything");

    let options = RemoteOptions { sweep_grace: Some(Duration::ZERO), ..RemoteOptions::default() };
    let remote = Remote::open(root.join("remote").to_str().unwrap(), options).unwrap();
    let no_cancel = AtomicBool::new(false);
    remote.push(&local, "b1", &|_| {}, &no_cancel).unwrap();
    remote.push(&local, "b2", &|_| {}, &no_cancel).unwrap();
    let first = remote.sweep().unwrap();
    assert_eq!((first.planned, first.deleted), (0, 0), "nothing is unreferenced yet");

    // b1 deleted remotely: its own objects are planned, not deleted.
    next_second();
    assert!(remote.delete("b1").unwrap());
    let planned = remote.sweep().unwrap();
    assert_eq!((planned.planned, planned.deleted), (only_b1.len() as u64, 0), "{planned:?}");
    assert!(only_b1.iter().all(|o| remote_has(root, o)));

    // A push of b1 now reuses the planned objects: it sends nothing and renews them.
    next_second();
    let again = remote.push(&local, "b1", &|_| {}, &no_cancel).unwrap();
    assert_eq!(again.objects_sent, 0, "{again:?}");
    assert!(remote.delete("b1").unwrap());
    next_second();
    let kept = remote.sweep().unwrap();
    assert_eq!(kept.deleted, 0, "the plan deleted objects a push renewed after it: {kept:?}");
    assert_eq!(kept.planned, only_b1.len() as u64, "{kept:?}");
    assert!(only_b1.iter().all(|o| remote_has(root, o)));

    // Unreferenced since that plan: the next sweep deletes them, and only them.
    next_second();
    let swept = remote.sweep().unwrap();
    assert_eq!(swept.deleted, only_b1.len() as u64, "{swept:?}");
    assert!(only_b1.iter().all(|o| !remote_has(root, o)));
    assert!(b2.iter().all(|o| remote_has(root, o)));
    assert!(remote.check(None, true, &|_| {}).unwrap().is_clean());
    assert_eq!(remote.list().unwrap(), vec!["b2".to_string()]);
    let idle = remote.sweep().unwrap();
    assert_eq!((idle.planned, idle.deleted, idle.pending_plans), (0, 0, 0), "{idle:?}");

    // A probe a killed process left (it lives for two requests) goes with
    // the next sweep once older than the grace period.
    let probes = root.join("remote/probes");
    std::fs::create_dir_all(&probes).unwrap();
    std::fs::write(probes.join("01ARZ3NDEKTSV4RRFFQ69G5FAV"), b"probe").unwrap();
    next_second();
    let swept = remote.sweep().unwrap();
    assert_eq!(swept.probes_deleted, 1, "{swept:?}");
    assert!(!probes.join("01ARZ3NDEKTSV4RRFFQ69G5FAV").exists());

    // The local repository itself is refused: its own collector knows its jobs.
    let local_as_remote = Remote::open(root.join("repo").to_str().unwrap(), RemoteOptions::default()).unwrap();
    match local_as_remote.sweep() {
        Err(quipu::Error::Remote(quipu::remote::RemoteError::InvalidUrl { why, .. })) => {
            assert!(why.contains("local repository"), "{why}")
        }
        other => panic!("a sweep of a local repository: {other:?}"),
    }
    assert!(local.check(true).unwrap().is_clean());
}
