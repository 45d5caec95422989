//! The backup hot path: `BackupService::start` + `wait` of a full backup of
//! a data folder of 16 compacted segments of about 4 MiB each (64 MiB,
//! generated once per run by examples/backup_set.rs), in link mode and in
//! copy mode (4 threads; also with `rehash_on_copy`), each iteration into a
//! fresh, empty repository; then a second backup with nothing changed.
//! Throughput in bytes of segment files backed up. The data folder and the
//! repositories live in a temporary folder under the target folder (the
//! filesystem a real data folder would be on; not tmpfs), since link mode
//! needs one filesystem and copy mode should write to a real disk.
//! The 1 GiB set against cp, restic and borg: benches/compare/backup.sh.

use std::path::PathBuf;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use quipu::Engine;
use quipu::backup::{BackupConfig, BackupRequest, BackupService, BackupStatus, ModeChoice};

#[path = "../examples/backup_set.rs"]
#[allow(dead_code)]
mod backup_set;

const FILES: usize = 16;
const FILE_BYTES: u64 = 4 << 20;

#[path = "support/target_dir.rs"]
mod target_dir;
use target_dir::target_dir;

const CASES: [(&str, ModeChoice, bool); 3] =
    [("link", ModeChoice::Link, false), ("copy", ModeChoice::Copy, false), ("copy_rehash", ModeChoice::Copy, true)];

fn config(mode: ModeChoice, rehash: bool) -> BackupConfig {
    BackupConfig { mode, rehash_on_copy: rehash, ..BackupConfig::default() }
}

fn backup(service: &BackupService, request: BackupRequest) -> u64 {
    let name = service.start(request).unwrap();
    let info = service.wait(&name).unwrap();
    assert_eq!(info.status, BackupStatus::Completed, "{:?}", info.error);
    info.total_size_bytes
}

fn copy_hot_path(c: &mut Criterion) {
    let root = tempfile::Builder::new().prefix("copy_hot_path").tempdir_in(target_dir()).unwrap();
    let data = root.path().join("data");
    let set = backup_set::generate(&data, FILES, FILE_BYTES).unwrap();
    assert_eq!(set.files, FILES);
    let engine = Engine::builder(&data).background(false).open().unwrap();
    let repos = root.path().join("repos");
    std::fs::create_dir(&repos).unwrap();
    let mut next = 0u64;
    let mut fresh_repo = || {
        next += 1;
        repos.join(next.to_string())
    };

    let mut group = c.benchmark_group(format!("backup_first_{FILES}x{}MiB", FILE_BYTES >> 20));
    group.sample_size(10);
    group.throughput(Throughput::Bytes(set.bytes));
    for (name, mode, rehash) in CASES {
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_batched(
                || {
                    let dir = fresh_repo();
                    let service = BackupService::open(engine.clone(), &dir, config(mode, rehash)).unwrap();
                    RemoveOnDrop(dir, Some(service))
                },
                |repo| {
                    let bytes = backup(repo.1.as_ref().unwrap(), BackupRequest::full().named("first"));
                    assert_eq!(bytes, set.bytes);
                    repo
                },
                BatchSize::PerIteration,
            );
        });
    }
    group.finish();

    let mut group = c.benchmark_group(format!("backup_unchanged_{FILES}x{}MiB", FILE_BYTES >> 20));
    group.sample_size(20);
    group.throughput(Throughput::Bytes(set.bytes));
    for (name, mode, _) in CASES.iter().filter(|c| !c.2) {
        let dir = fresh_repo();
        let service = BackupService::open(engine.clone(), &dir, config(*mode, false)).unwrap();
        backup(&service, BackupRequest::full().named("first"));
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| backup(&service, BackupRequest::full().named("second").force(true)));
        });
        drop(RemoveOnDrop(dir, Some(service)));
    }
    group.finish();
}

/// A repository and its service, removed (outside the timing) when dropped.
struct RemoveOnDrop(PathBuf, Option<BackupService>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        drop(self.1.take());
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

criterion_group!(benches, copy_hot_path);
criterion_main!(benches);
