//! The sweep of unreferenced remote objects, on a folder remote with a zero
//! grace period: a deleted backup's own objects are planned by one sweep
//! and deleted by the next, the objects it shares with a kept backup stay;
//! a push that reuses planned objects renews them, so the plan that named
//! them no longer deletes them. The same for packs: a pack none of whose
//! members a manifest names goes in two sweeps, one a push reuses is
//! renewed, and one mostly of members no manifest names is repacked (its
//! named members to a new pack) and then goes.
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

/// Backups b1 and b2 of `root/repo`, which share the catalog only.
fn two_backups(root: &std::path::Path) -> Repository {
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
    Repository::open(&root.join("repo")).unwrap()
}

fn packs(root: &std::path::Path) -> BTreeSet<String> {
    match std::fs::read_dir(root.join("remote/packs")) {
        Ok(dir) => dir.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => BTreeSet::new(),
    }
}

#[test]
fn a_deleted_backups_own_objects_go_in_two_sweeps_and_a_push_renews_what_it_reuses() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let local = two_backups(root);
    let (b1, b2) = (objects_of(&local, "b1"), objects_of(&local, "b2"));
    let only_b1: BTreeSet<String> = b1.difference(&b2).cloned().collect();
    assert!(!only_b1.is_empty() && b1.intersection(&b2).count() > 0, "the backups share nothing or everything");

    // Every object loose here; packs below.
    let options = RemoteOptions { sweep_grace: Some(Duration::ZERO), pack_below: Some(0), ..RemoteOptions::default() };
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

#[test]
fn a_pack_goes_when_no_manifest_names_a_member_and_a_push_that_reuses_it_renews_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let local = two_backups(root);
    let (b1, b2) = (objects_of(&local, "b1"), objects_of(&local, "b2"));
    let options = RemoteOptions { sweep_grace: Some(Duration::ZERO), ..RemoteOptions::default() };
    let remote = Remote::open(root.join("remote").to_str().unwrap(), options).unwrap();
    let no_cancel = AtomicBool::new(false);
    // b2 first: its pack holds the shared catalog, b1's pack only b1's own objects.
    remote.push(&local, "b2", &|_| {}, &no_cancel).unwrap();
    let b2_packs = packs(root);
    assert_eq!(b2_packs.len(), 1, "{b2_packs:?}");
    remote.push(&local, "b1", &|_| {}, &no_cancel).unwrap();
    let b1_pack: BTreeSet<String> = packs(root).difference(&b2_packs).cloned().collect();
    assert_eq!(b1_pack.len(), 1);
    assert!(b1.union(&b2).all(|o| !remote_has(root, o)), "small objects went loose");
    let first = remote.sweep().unwrap();
    assert_eq!((first.packs_planned, first.planned), (0, 0), "{first:?}");

    next_second();
    assert!(remote.delete("b1").unwrap());
    let planned = remote.sweep().unwrap();
    assert_eq!((planned.packs_planned, planned.packs_deleted), (1, 0), "{planned:?}");

    // A push of b1 reuses the planned pack: the same members make the same
    // pack, written again, newer than the plan.
    next_second();
    let again = remote.push(&local, "b1", &|_| {}, &no_cancel).unwrap();
    assert_eq!(again.objects_sent, 0, "{again:?}");
    assert!(remote.check(Some("b1"), true, &|_| {}).unwrap().is_clean());
    assert!(remote.delete("b1").unwrap());
    next_second();
    let kept = remote.sweep().unwrap();
    assert_eq!((kept.packs_deleted, kept.packs_planned), (0, 1), "the plan deleted a pack a push renewed: {kept:?}");
    assert_eq!(packs(root).len(), 2);

    next_second();
    let swept = remote.sweep().unwrap();
    assert_eq!(swept.packs_deleted, 1, "{swept:?}");
    assert_eq!(packs(root), b2_packs);
    assert!(remote.check(None, true, &|_| {}).unwrap().is_clean());

    // b1 pushed again, then b2 deleted: b2's pack holds the catalog b1
    // names beside b2's own objects, most of its bytes. It is repacked: the
    // catalog goes to a new pack and the old one is planned, then deleted.
    let size_of = |o: &String| std::fs::metadata(local.object_path(o)).unwrap().len();
    let dead: u64 = b2.difference(&b1).map(size_of).sum();
    let live: u64 = b2.intersection(&b1).map(size_of).sum();
    assert!(dead * 4 >= dead + live, "b2's own objects are too small for a repack: {dead} of {}", dead + live);
    remote.push(&local, "b1", &|_| {}, &no_cancel).unwrap();
    let with_b1 = packs(root);
    assert!(remote.delete("b2").unwrap());
    next_second();
    let repacked = remote.sweep().unwrap();
    assert_eq!(
        (repacked.packs_repacked, repacked.packs_planned, repacked.bytes_repacked),
        (1, 1, live),
        "{repacked:?}"
    );
    assert_eq!(packs(root).len(), with_b1.len() + 1);
    assert!(remote.check(None, true, &|_| {}).unwrap().is_clean());
    next_second();
    let swept = remote.sweep().unwrap();
    assert_eq!((swept.packs_deleted, swept.packs_planned, swept.packs_repacked), (1, 0, 0), "{swept:?}");
    assert!(packs(root).is_disjoint(&b2_packs), "b2's pack was kept");
    assert_eq!(packs(root).len(), with_b1.len());
    assert!(remote.check(None, true, &|_| {}).unwrap().is_clean());
    let fresh = Repository::open_or_create(&root.join("fresh"), 3, "2026-12-04T00:00:00Z").unwrap();
    remote.pull(&fresh, "b1", &|_| {}, &no_cancel).unwrap();
    assert!(fresh.check(true).unwrap().is_clean());
}
