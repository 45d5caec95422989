//! The remote hot path: `Remote::push` of a full backup of 16 compacted
//! segments of about 4 MiB each (64 MiB, generated once per run by
//! examples/backup_set.rs) into an empty remote, a push of the same backup
//! to a remote that holds it (the no-change cost: one manifest read), and
//! `Remote::pull` of it into an empty repository. The remote is a folder
//! (object_store's local file system), so the numbers are quipu's own work
//! (hashing, parts in flight, fsync and rename on pull) without a network;
//! the S3 server comparison against rclone and restic is for
//! benches/compare. Throughput in bytes of the backup. Then the pack codec
//! on the small-files shape: 10,000 members of 1.5 KiB bundled into one
//! pack (`PackWriter`, blake3 of every member and of the pack), and that
//! pack's index decoded (`decode_pack_index`, what every push, pull, check
//! and sweep does per pack); throughput in members.
//!
//! ```sh
//! cargo bench --bench remote
//! ```

use std::sync::atomic::AtomicBool;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use quipu::Engine;
use quipu::backup::{BackupConfig, BackupRequest, BackupService, BackupStatus, ModeChoice, Repository};
use quipu::remote::{Remote, RemoteOptions};

#[path = "../examples/backup_set.rs"]
#[allow(dead_code)]
mod backup_set;

const FILES: usize = 16;
const FILE_BYTES: u64 = 4 << 20;

#[path = "support/target_dir.rs"]
mod target_dir;
use target_dir::target_dir;

fn bench(c: &mut Criterion) {
    let root = tempfile::Builder::new().prefix("quipu-bench-remote-").tempdir_in(target_dir()).unwrap();
    let data = root.path().join("data");
    let repo_dir = root.path().join("repo");
    backup_set::generate(&data, FILES, FILE_BYTES).unwrap();
    let bytes = {
        let engine = Engine::builder(&data).background(false).open().unwrap();
        let config = BackupConfig { mode: ModeChoice::Copy, ..BackupConfig::default() };
        let service = BackupService::open(engine, &repo_dir, config).unwrap();
        let name = service.start(BackupRequest::full().named("b")).unwrap();
        let info = service.wait(&name).unwrap();
        assert_eq!(info.status, BackupStatus::Completed);
        info.total_size_bytes
    };
    let local = Repository::open(&repo_dir).unwrap();
    let no_cancel = AtomicBool::new(false);
    let mut next = 0u64;
    let mut fresh = || {
        next += 1;
        root.path().join(format!("remote-{next}"))
    };

    let mut group = c.benchmark_group("remote");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function("push_64MiB_to_an_empty_folder_remote", |b| {
        b.iter_batched(
            || {
                let dir = fresh();
                (Remote::open(dir.to_str().unwrap(), RemoteOptions::default()).unwrap(), dir)
            },
            |(remote, dir)| {
                let report = remote.push(&local, "b", &|_| {}, &no_cancel).unwrap();
                assert_eq!(report.objects_sent, report.objects_total);
                (remote, dir)
            },
            BatchSize::PerIteration,
        )
    });
    let full = fresh();
    let remote = Remote::open(full.to_str().unwrap(), RemoteOptions::default()).unwrap();
    remote.push(&local, "b", &|_| {}, &no_cancel).unwrap();
    group.bench_function("push_with_nothing_new", |b| {
        b.iter(|| assert!(remote.push(&local, "b", &|_| {}, &no_cancel).unwrap().already_there))
    });
    group.bench_function("pull_64MiB_into_an_empty_repository", |b| {
        b.iter_batched(
            || {
                let dir = fresh();
                let repo = Repository::open_or_create(&dir, 1, "2026-12-03T00:00:00Z").unwrap();
                (repo, dir)
            },
            |(repo, dir)| {
                let report = remote.pull(&repo, "b", &|_| {}, &no_cancel).unwrap();
                assert_eq!(report.objects_fetched, report.objects_total);
                let _ = std::fs::remove_dir_all(&dir);
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn packs(c: &mut Criterion) {
    use quipu::remote::records::{PackWriter, decode_pack_index};
    const MEMBERS: usize = 10_000;
    // Distinct members (a pack names each once): the index up front.
    let members: Vec<Vec<u8>> = (0..MEMBERS)
        .map(|i| (i as u64).to_le_bytes().into_iter().chain((0..1528u32).map(|j| (i as u32 ^ j) as u8)).collect())
        .collect();
    let build = || {
        let mut writer = PackWriter::with_capacity(MEMBERS * 1600);
        for member in &members {
            writer.add(&blake3::hash(member), member);
        }
        writer.finish()
    };
    let (pack, _) = build();
    let mut group = c.benchmark_group("remote_packs");
    group.throughput(Throughput::Elements(MEMBERS as u64));
    group.bench_function("build_a_pack_of_10k_members", |b| b.iter(&build));
    group.bench_function("decode_the_index_of_10k_members", |b| {
        b.iter(|| assert_eq!(decode_pack_index(&pack, pack.len() as u64).unwrap().len(), MEMBERS))
    });
    group.finish();
}

criterion_group!(benches, bench, packs);
criterion_main!(benches);
