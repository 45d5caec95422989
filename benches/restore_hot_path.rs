//! The restore hot path: `BackupService::start_restore` + `wait_restore` of
//! a full backup of 16 compacted segments of about 4 MiB each (64 MiB,
//! generated once per run by examples/backup_set.rs) into an engine on a
//! new, empty data folder, in link mode and in copy mode (the service's 4
//! threads; copies hash every byte on the way), and link mode with
//! `RestoreVerify::Full`; the offline `restore_into` of the same backup into
//! a new folder; then the rebuild of many small segments (10,000 of 128 rows,
//! about 3.6 KB each; `QUIPU_BENCH_SEGMENTS` to change): a link-mode live
//! restore and `restore_into` of their backup, `SegmentReader::open` of every
//! restored file (header and footer checksums; 4 threads, as a restore stages
//! them) and `Engine::open` of the restored folder.
//!
//! Throughput in bytes (or files) restored. Each iteration restores into a
//! new folder, made (engine and service opened) and removed outside the
//! timing. Everything lives in a temporary folder under the target folder
//! (a real disk, not tmpfs; link mode needs the repository on the data
//! folder's filesystem). The 1 GiB set against cp, restic and borg:
//! benches/compare/restore.sh.

use std::path::{Path, PathBuf};

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use quipu::Engine;
use quipu::backup::{
    BackupConfig, BackupRequest, BackupService, BackupStatus, ModeChoice, RestoreVerify, restore_into,
};

#[path = "../examples/backup_set.rs"]
#[allow(dead_code)]
mod backup_set;

const FILES: usize = 16;
const FILE_BYTES: u64 = 4 << 20;
const MANY_ROWS: usize = 128;

#[path = "support/target_dir.rs"]
mod target_dir;
use target_dir::target_dir;

fn many_segments() -> usize {
    std::env::var("QUIPU_BENCH_SEGMENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000)
}

fn config(mode: ModeChoice) -> BackupConfig {
    BackupConfig { mode, ..BackupConfig::default() }
}

/// Backs `data` up into a new repository `repo` as backup `first`.
fn backup(data: &Path, repo: &Path, mode: ModeChoice) -> u64 {
    let engine = Engine::builder(data).background(false).open().unwrap();
    let service = BackupService::open(engine, repo, config(mode)).unwrap();
    let name = service.start(BackupRequest::full().named("first")).unwrap();
    let info = service.wait(&name).unwrap();
    assert_eq!(info.status, BackupStatus::Completed, "{:?}", info.error);
    info.total_size_bytes
}

/// Fresh folders under `dir`, one per call.
struct Fresh {
    dir: PathBuf,
    next: u64,
}

impl Fresh {
    fn path(&mut self) -> PathBuf {
        self.next += 1;
        self.dir.join(self.next.to_string())
    }
}

/// An engine on a new, empty folder and a service on `repo` for it, removed
/// (outside the timing) when dropped.
struct Live {
    dir: PathBuf,
    service: Option<BackupService>,
    engine: Option<Engine>,
}

impl Live {
    fn new(dir: PathBuf, repo: &Path, mode: ModeChoice) -> Live {
        let engine = Engine::builder(&dir).background(false).open().unwrap();
        let service = BackupService::open(engine.clone(), repo, config(mode)).unwrap();
        Live { dir, service: Some(service), engine: Some(engine) }
    }

    fn restore(self, verify: RestoreVerify) -> Live {
        let service = self.service.as_ref().unwrap();
        let id = service.start_restore("first", verify).unwrap();
        let info = service.wait_restore(&id).unwrap();
        assert_eq!(info.status, BackupStatus::Completed, "{:?}", info.error);
        self
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        drop(self.service.take());
        drop(self.engine.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A folder removed (outside the timing) when dropped.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn offline(repo: &Path, into: PathBuf, mode: ModeChoice) -> RemoveOnDrop {
    let built = restore_into(repo, "first", &into, mode, RestoreVerify::Auto, &|_| {}).unwrap();
    assert!(built.files > 0);
    RemoveOnDrop(into)
}

const LIVE_CASES: [(&str, ModeChoice, RestoreVerify); 3] = [
    ("link", ModeChoice::Link, RestoreVerify::Auto),
    ("link_full", ModeChoice::Link, RestoreVerify::Full),
    ("copy", ModeChoice::Copy, RestoreVerify::Auto),
];

fn restore_hot_path(c: &mut Criterion) {
    let root = tempfile::Builder::new().prefix("restore_hot_path").tempdir_in(target_dir()).unwrap();
    let data = root.path().join("data");
    let set = backup_set::generate(&data, FILES, FILE_BYTES).unwrap();
    assert_eq!(set.files, FILES);
    let repo_link = root.path().join("repo-link");
    let repo_copy = root.path().join("repo-copy");
    assert_eq!(backup(&data, &repo_link, ModeChoice::Link), set.bytes);
    assert_eq!(backup(&data, &repo_copy, ModeChoice::Copy), set.bytes);
    let repo_for = |mode: ModeChoice| if mode == ModeChoice::Copy { &repo_copy } else { &repo_link };
    let mut fresh = Fresh { dir: root.path().join("targets"), next: 0 };
    std::fs::create_dir(&fresh.dir).unwrap();

    let mut group = c.benchmark_group(format!("restore_{FILES}x{}MiB", FILE_BYTES >> 20));
    group.sample_size(10);
    group.throughput(Throughput::Bytes(set.bytes));
    for (name, mode, verify) in LIVE_CASES {
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_batched(
                || Live::new(fresh.path(), repo_for(mode), mode),
                |live| live.restore(verify),
                BatchSize::PerIteration,
            );
        });
    }
    group.finish();

    let mut group = c.benchmark_group(format!("restore_into_{FILES}x{}MiB", FILE_BYTES >> 20));
    group.sample_size(10);
    group.throughput(Throughput::Bytes(set.bytes));
    for (name, mode) in [("link", ModeChoice::Link), ("copy", ModeChoice::Copy)] {
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_batched(|| fresh.path(), |into| offline(repo_for(mode), into, mode), BatchSize::PerIteration);
        });
    }
    group.finish();

    // Many small segments: the per-file cost of staging, opening and
    // listing them in the version.
    let n = many_segments();
    let many = root.path().join("many");
    let summary = backup_set::generate_rows(&many, n, MANY_ROWS, 1000).unwrap();
    assert_eq!(summary.files, n);
    let repo_many = root.path().join("repo-many");
    backup(&many, &repo_many, ModeChoice::Link);
    let restored = root.path().join("many-restored");
    restore_into(&repo_many, "first", &restored, ModeChoice::Link, RestoreVerify::Auto, &|_| {}).unwrap();

    let mut group = c.benchmark_group(format!("rebuild_{n}_segments"));
    group.sample_size(10);
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function("live_link", |b| {
        b.iter_batched(
            || Live::new(fresh.path(), &repo_many, ModeChoice::Link),
            |live| live.restore(RestoreVerify::Auto),
            BatchSize::PerIteration,
        );
    });
    group.bench_function("restore_into_link", |b| {
        b.iter_batched(|| fresh.path(), |into| offline(&repo_many, into, ModeChoice::Link), BatchSize::PerIteration);
    });
    group.bench_function("open_segments", |b| {
        b.iter(|| assert_eq!(backup_set::open_segments(&restored, 4).unwrap(), n));
    });
    group.bench_function("engine_open", |b| {
        b.iter(|| {
            let engine = Engine::builder(&restored).background(false).open().unwrap();
            assert_eq!(engine.live_files().len(), n);
            engine
        });
    });
    group.finish();
}

criterion_group!(benches, restore_hot_path);
criterion_main!(benches);
