//! A real I/O error mid-backup: the repository lives on a small tmpfs that
//! runs out of space (ENOSPC) while segment files are copied into it. The
//! job fails with an error naming the cause and the path, the repository
//! stays consistent (no manifest, no orphan object, no temp file, earlier
//! backups intact) and the engine keeps serving writes.
//!
//! Mounting needs root, as these tests run (locally and in CI); when the
//! mount fails the tests fail loudly rather than skip.
#![cfg(feature = "server")]

use crate::common;
use crate::server_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Rng;
use quipu::backup::{BackupConfig, BackupRequest, BackupService, BackupStatus, ModeChoice, PlaceMode, Repository};
use quipu::{Engine, Precision, ScanRequest, WriteOptions};
use server_support::{eventually, repo_files};

const PAGE: u64 = 4096;

/// A tmpfs of `bytes` at `dir`, unmounted on drop.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, bytes: u64) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "quipu-test", dir.to_str().unwrap()])
            .output()
            .expect("running mount");
        assert!(
            out.status.success(),
            "mounting a {bytes}-byte tmpfs at {} failed (these tests need root): {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir: dir.to_path_buf() }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: succeeds even while something still holds a file open.
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// `n` rows of random integers (incompressible), flushed into one segment.
fn write_random(engine: &Engine, table: &str, t0: i64, n: i64, seed: u64) {
    let mut rng = Rng(seed);
    let lp: String = (0..n)
        .map(|i| format!("{table},host=h{} a={}i,b={}i {}\n", i % 2, rng.next() >> 1, rng.next() >> 1, t0 + i))
        .collect();
    engine.write_lp("db", &lp, Precision::Nanosecond, WriteOptions::default()).unwrap();
    engine.flush().unwrap();
}

fn rows(engine: &Engine, table: &str) -> usize {
    engine.scan("db", table, &ScanRequest::all()).unwrap().iter().map(|b| b.num_rows()).sum()
}

/// No manifest for `name`, its record failed with ENOSPC, no temp file, no
/// object outside the manifests, every remaining backup whole.
fn assert_failed_cleanly(backups: &BackupService, repo_dir: &Path, name: &str) {
    let info = backups.wait(name).unwrap();
    assert_eq!(info.status, BackupStatus::Failed, "{info:?}");
    let error = info.error.clone().unwrap();
    assert!(error.contains("No space left on device"), "the cause: {error}");
    assert!(error.contains(&repo_dir.join("objects").display().to_string()), "the path: {error}");
    let repo = Repository::open(repo_dir).unwrap();
    assert!(repo.read_manifest(name).unwrap().is_none(), "a failed backup has no manifest");
    eventually("the failed job's objects swept", || {
        let (_, temps) = repo_files(repo_dir);
        temps.is_empty() && repo.check(false).unwrap().unreferenced_objects == 0
    });
    let report = repo.check(true).unwrap();
    assert!(report.is_clean(), "{report:?}");
    for m in repo.manifest_names().unwrap() {
        assert_eq!(backups.verify(&m).unwrap().status, "ok", "{m}");
    }
}

#[test]
fn enospc_mid_backup_fails_the_job_and_keeps_repository_and_engine_healthy() {
    let tmp = tempfile::tempdir().unwrap();
    let mount = tmp.path().join("small-disk");
    let _tmpfs = Tmpfs::mount(&mount, 1 << 20);
    let engine = Engine::builder(tmp.path().join("data")).background(false).open().unwrap();
    write_random(&engine, "small", 0, 100, 1);
    let repo_dir = mount.join("repo");
    // Auto: another filesystem, so copies.
    let backups = BackupService::open(engine.clone(), &repo_dir, BackupConfig::default()).unwrap();
    assert_eq!(backups.mode(), PlaceMode::Copy);
    let small = backups.start(BackupRequest::full().named("small")).unwrap();
    assert_eq!(backups.wait(&small).unwrap().status, BackupStatus::Completed);

    // About 1.6 MB of segments for a 1 MiB filesystem.
    write_random(&engine, "big", 0, 50_000, 2);
    write_random(&engine, "big", 100_000, 50_000, 3);
    let total: u64 = engine.live_files().iter().map(|f| f.meta.size).sum();
    assert!(total > 3 << 19, "the data must not fit: {total} bytes");

    let name = backups.start(BackupRequest::full().named("big")).unwrap();
    assert_failed_cleanly(&backups, &repo_dir, &name);
    let listed = backups.list().unwrap();
    assert_eq!(
        listed.iter().map(|b| (b.name.as_str(), b.status)).collect::<Vec<_>>(),
        [("small", BackupStatus::Completed), ("big", BackupStatus::Failed)]
    );

    // The engine never noticed: writes are acknowledged, flushed and read.
    write_random(&engine, "big", 200_000, 1_000, 4);
    engine.write_lp("db", "after,host=a v=1i 1", Precision::Nanosecond, WriteOptions::default()).unwrap();
    engine.flush().unwrap();
    assert_eq!(rows(&engine, "big"), 101_000);
    assert_eq!(rows(&engine, "after"), 1);

    // Trying again fails the same clean way; the failed record can be deleted.
    let again = backups.start(BackupRequest::full().named("big")).unwrap();
    assert_failed_cleanly(&backups, &repo_dir, &again);
    backups.delete("big").unwrap();
    assert!(backups.get("big").is_err());
    assert_eq!(backups.verify("small").unwrap().status, "ok");
    backups.shutdown();
}

#[test]
fn a_disk_filled_exactly_by_the_last_object_still_records_the_failure() {
    // One file at a time, in order: the first segment fills the disk to the
    // last page, the second finds no room, and the job's failure must still
    // be recorded (a job left "in_progress" would be polled forever).
    let tmp = tempfile::tempdir().unwrap();
    let engine = Engine::builder(tmp.path().join("data")).background(false).open().unwrap();
    write_random(&engine, "t", 0, 20_000, 5);
    write_random(&engine, "t", 100_000, 20_000, 6);
    let files = engine.live_files();
    let first = files.iter().min_by_key(|f| f.meta.id).unwrap().meta.size;
    let catalog = engine.catalog().encode().len() as u64;
    assert!(catalog < PAGE);
    // QUIPU-REPO, the job record, the catalog object and the first segment.
    let pages = 3 + first.div_ceil(PAGE);
    let mount = tmp.path().join("exact-disk");
    let _tmpfs = Tmpfs::mount(&mount, pages * PAGE);
    let repo_dir = mount.join("repo");
    let config = BackupConfig { mode: ModeChoice::Copy, copy_threads: 1, ..BackupConfig::default() };
    let backups = BackupService::open(engine.clone(), &repo_dir, config).unwrap();

    let name = backups.start(BackupRequest::full().named("full-disk")).unwrap();
    assert_failed_cleanly(&backups, &repo_dir, &name);
    let record = Repository::open(&repo_dir).unwrap().job_records().unwrap();
    assert_eq!(record.len(), 1);
    assert_eq!(record[0].status, BackupStatus::Failed, "the record on disk: {record:?}");

    engine.write_lp("db", "t,host=x a=1i,b=2i 5", Precision::Nanosecond, WriteOptions::default()).unwrap();
    engine.flush().unwrap();
    assert_eq!(rows(&engine, "t"), 40_001);
    backups.shutdown();
}

#[test]
fn link_mode_refuses_a_repository_on_another_filesystem() {
    let tmp = tempfile::tempdir().unwrap();
    let mount = tmp.path().join("other-fs");
    let _tmpfs = Tmpfs::mount(&mount, 1 << 20);
    let engine = Engine::builder(tmp.path().join("data")).background(false).open().unwrap();
    let config = BackupConfig { mode: ModeChoice::Link, ..BackupConfig::default() };
    match BackupService::open(engine, mount.join("repo"), config) {
        Err(quipu::Error::Backup(quipu::backup::BackupError::CrossDevice { repo, .. })) => {
            assert_eq!(repo, mount.join("repo"));
        }
        other => panic!("expected CrossDevice, got {other:?}"),
    }
}
