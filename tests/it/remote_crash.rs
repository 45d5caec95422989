//! A child process pushes backups to a folder remote and pulls them into
//! another repository, and is killed with SIGKILL at a random moment, over
//! and over on the same folders (`crash_support`). Parts are small, so a
//! kill lands inside multipart uploads, between objects, around the
//! manifests.
//!
//! After each kill: every backup the remote lists checks clean with its
//! objects re-hashed (no remote manifest without all its objects), and
//! every acknowledged push is listed; the pulling repository checks clean
//! with its objects re-hashed (no local manifest without all its objects),
//! and every acknowledged pull is there. At the end a last push and pull of
//! everything completes, and each pulled backup restores to exactly the
//! rows it was taken with.
//!
//! QUIPU_REMOTE_CRASH_RUNS sets the number of kills (default 20),
//! QUIPU_REMOTE_CRASH_SEED the seed (hex); see `crash_support`.
#![cfg(all(feature = "remote", feature = "server"))]

use crate::common;
use crate::crash_support::{self, Campaign};
use crate::server_support::{BackupRows, engine_rows};

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use quipu::backup::{BackupConfig, BackupRequest, BackupService, BackupStatus, ModeChoice, Repository, RestoreVerify};
use quipu::remote::{Remote, RemoteOptions};
use quipu::{Engine, Precision, WriteOptions};

const BACKUPS: i64 = 3;
/// Acknowledgements: `k` for the push of backup `b<k>`, `PULLED + k` for its pull.
const PULLED: i64 = 100;

fn remote(dir: &Path) -> Remote {
    // Small objects in packs, larger ones loose, the largest in parts.
    let options = RemoteOptions {
        part_bytes: 32 << 10,
        parallel_objects: 2,
        pack_below: Some(16 << 10),
        ..RemoteOptions::default()
    };
    Remote::open(dir.to_str().unwrap(), options).unwrap()
}

fn pulling_repo(dir: &Path) -> Repository {
    Repository::open_or_create(dir, 9, "2026-12-03T00:00:00Z").unwrap()
}

/// The child: push every backup, then pull every one, acknowledging each.
#[test]
fn remote_crash_child() {
    let Some(root) = crash_support::child_env("QUIPU_REMOTE_CRASH_ROOT") else { return };
    let root = Path::new(&root);
    let local = Repository::open(&root.join("repo")).unwrap();
    let remote = remote(&root.join("remote"));
    let no_cancel = AtomicBool::new(false);
    for k in 0..BACKUPS {
        remote.push(&local, &format!("b{k}"), &|_| {}, &no_cancel).unwrap();
        crash_support::ack(k);
    }
    let pulled = pulling_repo(&root.join("pulled"));
    for k in 0..BACKUPS {
        remote.pull(&pulled, &format!("b{k}"), &|_| {}, &no_cancel).unwrap();
        crash_support::ack(PULLED + k);
    }
}

/// Backups b0..b2 of growing random data, each file several parts long.
fn setup(root: &Path) -> Vec<BackupRows> {
    let engine = Engine::builder(root.join("data")).background(false).open().unwrap();
    let config = BackupConfig { mode: ModeChoice::Copy, ..BackupConfig::default() };
    let backups = BackupService::open(engine.clone(), root.join("repo"), config).unwrap();
    let mut rng = common::Rng(0x4e_3070);
    let mut rows = Vec::new();
    for k in 0..BACKUPS {
        let lp: String = (0..20_000)
            .map(|i| format!("m,host=h{} v={}i {}\n", i % 8, rng.next() as i64, k * 1_000_000 + i))
            .collect();
        engine.write_lp("db", &lp, Precision::Nanosecond, WriteOptions::default()).unwrap();
        engine.flush().unwrap();
        let name = backups.start(BackupRequest::full().named(format!("b{k}"))).unwrap();
        assert_eq!(backups.wait(&name).unwrap().status, BackupStatus::Completed);
        rows.push(engine_rows(&engine));
    }
    rows
}

fn check_after_kill(root: &Path, acked: &[i64], ctx: &str) {
    let remote = remote(&root.join("remote"));
    let listed = remote.list().unwrap_or_default();
    for name in &listed {
        let report = remote.check(Some(name), true, &|_| {}).unwrap();
        assert!(report.is_clean(), "{ctx}: remote backup {name} is listed but not whole: {report:?}");
    }
    for &k in acked.iter().filter(|&&k| k < PULLED) {
        assert!(listed.contains(&format!("b{k}")), "{ctx}: acknowledged push of b{k} is not listed");
    }
    if root.join("pulled").exists() {
        // A kill inside the repository's creation leaves a creation to finish.
        let pulled = pulling_repo(&root.join("pulled"));
        let report = pulled.check(true).unwrap();
        assert!(report.is_clean(), "{ctx}: the pulling repository is not clean: {report:?}");
        for &k in acked.iter().filter(|&&k| k >= PULLED) {
            let name = format!("b{}", k - PULLED);
            assert!(pulled.read_manifest(&name).unwrap().is_some(), "{ctx}: acknowledged pull of {name} is missing");
        }
    }
}

#[test]
fn pushes_and_pulls_killed_at_any_moment_leave_only_whole_backups() {
    let mut campaign = Campaign::from_env("REMOTE", 20, 0x4e30_7e57);
    let root = campaign.root.clone();
    let rows = setup(&root);
    let mut acked_total = 0;
    // Kills before the first acknowledgement, between two, after the last.
    let mut landed = [0u32; 3];
    for run in 0..campaign.runs {
        let ctx = campaign.ctx(run);
        // Each run starts over on half of the runs, so kills land early too.
        if campaign.rng.below(2) == 0 {
            let _ = std::fs::remove_dir_all(root.join("remote"));
            let _ = std::fs::remove_dir_all(root.join("pulled"));
        }
        let acked = crash_support::kill_child_after(
            &common::test_name(module_path!(), "remote_crash_child"),
            &[("QUIPU_REMOTE_CRASH_ROOT", crash_support::env_path(&root))],
            Duration::from_millis(30 + campaign.rng.below(1_500)),
        );
        acked_total += acked.len();
        landed[match acked.len() {
            0 => 0,
            n if n < 2 * BACKUPS as usize => 1,
            _ => 2,
        }] += 1;
        check_after_kill(&root, &acked, &ctx);
    }
    eprintln!(
        "{} kills: {} before any acknowledgement, {} between, {} after all",
        campaign.runs, landed[0], landed[1], landed[2]
    );
    assert!(acked_total > 0, "the children acknowledged nothing: the test tested nothing");
    if campaign.runs >= 10 {
        assert!(landed[1] > 0, "no kill landed between two transfers: the delays need a look ({landed:?})");
    }

    // A last push and pull of everything completes from whatever the kills left.
    let local = Repository::open(&root.join("repo")).unwrap();
    let remote = remote(&root.join("remote"));
    let pulled = pulling_repo(&root.join("pulled"));
    let no_cancel = AtomicBool::new(false);
    for k in 0..BACKUPS {
        let name = format!("b{k}");
        remote.push(&local, &name, &|_| {}, &no_cancel).unwrap();
        remote.pull(&pulled, &name, &|_| {}, &no_cancel).unwrap();
        let into = root.join(format!("restored-{k}"));
        quipu::backup::restore_into(&root.join("pulled"), &name, &into, ModeChoice::Auto, RestoreVerify::Full, &|_| {})
            .unwrap();
        let engine = Engine::builder(&into).background(false).open().unwrap();
        assert!(engine_rows(&engine) == rows[k as usize], "backup {name}: the restored rows differ");
    }
    drop(pulled);
    campaign.passed();
}
