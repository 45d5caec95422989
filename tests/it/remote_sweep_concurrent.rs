//! Sweeps running at the same time as each other and as pushes and remote
//! deletes, on one folder remote with a short grace period (3 s), for a
//! few seconds: two sweeping threads, and one thread that pushes backups in
//! turn and deletes the backup pushed two turns before. Packs are repacked
//! (each backup shares the catalog and older files with the others) and
//! planned while pushes rely on their members. At the end every backup the
//! remote lists checks clean with every object re-hashed, and pulls.
#![cfg(feature = "remote")]

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use quipu::backup::{BackupConfig, BackupRequest, BackupService, BackupStatus, ModeChoice, Repository};
use quipu::remote::{Remote, RemoteOptions};
use quipu::{Engine, Precision, WriteOptions};

const BACKUPS: usize = 5;
const RUN: Duration = Duration::from_secs(10);

#[test]
fn sweeps_beside_each_other_and_beside_pushes_never_lose_a_named_object() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    {
        let engine = Engine::builder(root.join("data")).background(false).open().unwrap();
        let config = BackupConfig { mode: ModeChoice::Copy, ..BackupConfig::default() };
        let backups = BackupService::open(engine.clone(), root.join("repo"), config).unwrap();
        for k in 0..BACKUPS {
            let lp: String = (0..50).map(|i| format!("m,host=h{i} v={k}i {}\n", k * 1000 + i)).collect();
            engine.write_lp("db", &lp, Precision::Nanosecond, WriteOptions::default()).unwrap();
            engine.flush().unwrap();
            if k % 2 == 1 {
                engine.compact().unwrap();
            }
            let name = backups.start(BackupRequest::full().named(format!("b{k}"))).unwrap();
            assert_eq!(backups.wait(&name).unwrap().status, BackupStatus::Completed);
        }
    }
    let local = Repository::open(&root.join("repo")).unwrap();
    let url = root.join("remote");
    let options = || RemoteOptions { sweep_grace: Some(Duration::from_secs(3)), ..RemoteOptions::default() };
    let stop = AtomicBool::new(false);
    let never = AtomicBool::new(false);
    let started = Instant::now();
    let (swept, pushed) = std::thread::scope(|scope| {
        let sweepers: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| {
                    let remote = Remote::open(url.to_str().unwrap(), options()).unwrap();
                    let mut reports = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        match remote.sweep() {
                            Ok(report) => reports.push(report),
                            // Before the first push made the marker.
                            Err(quipu::Error::Remote(quipu::remote::RemoteError::NotARepository { .. })) => {}
                            Err(e) => panic!("a sweep failed: {e}"),
                        }
                        std::thread::sleep(Duration::from_millis(150));
                    }
                    reports
                })
            })
            .collect();
        let remote = Remote::open(url.to_str().unwrap(), options()).unwrap();
        let mut turns = 0;
        while started.elapsed() < RUN {
            let k = turns % BACKUPS;
            match remote.push(&local, &format!("b{k}"), &|_| {}, &never) {
                Ok(_) => {}
                // A loaded machine can take more than half the grace period
                // between reading the plans and the manifest: the push gives
                // up rather than rely on what a sweep may delete.
                Err(quipu::Error::Remote(quipu::remote::RemoteError::Store { what, .. }))
                    if what.contains("too slow") => {}
                Err(e) => panic!("push of b{k}: {e}"),
            }
            let old = (turns + BACKUPS - 2) % BACKUPS;
            if turns >= 2 {
                remote.delete(&format!("b{old}")).unwrap();
            }
            turns += 1;
            std::thread::sleep(Duration::from_millis(300));
        }
        stop.store(true, Ordering::Relaxed);
        let swept: Vec<_> = sweepers.into_iter().flat_map(|s| s.join().unwrap()).collect();
        (swept, turns)
    });
    let remote = Remote::open(url.to_str().unwrap(), options()).unwrap();
    let listed = remote.list().unwrap();
    assert!(!listed.is_empty() && pushed > BACKUPS, "{pushed} pushes, {listed:?}");
    let check = remote.check(None, true, &|_| {}).unwrap();
    assert!(check.is_clean(), "after {} sweeps and {pushed} pushes: {check:?}", swept.len());
    let fresh = Repository::open_or_create(&root.join("fresh"), 3, "2026-12-04T00:00:00Z").unwrap();
    for name in &listed {
        remote.pull(&fresh, name, &|_| {}, &never).unwrap();
    }
    assert!(fresh.check(true).unwrap().is_clean());
    // The sweeps did their work: packs were deleted (and repacked) meanwhile.
    let deleted: u64 = swept.iter().map(|r| r.packs_deleted + r.deleted).sum();
    let repacked: u64 = swept.iter().map(|r| r.packs_repacked).sum();
    eprintln!("{} sweeps, {pushed} pushes: {deleted} files deleted, {repacked} packs repacked", swept.len());
    assert!(deleted > 0, "no sweep deleted anything: {swept:?}");
}
