//! WAL throughput: one writer appending and syncing 100 KB records, and
//! group commit with several threads appending and syncing small records.
//! Runs in the target folder (a real disk; a tmpfs would make fsync free).

use std::hint::black_box;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use quipu::wal::{Wal, WalError, WalOptions};

const ROTATE_EVERY: u64 = 512;

fn open(dir: &Path) -> Wal {
    Wal::open(dir, WalOptions::default(), |_, _| Ok::<(), WalError>(())).unwrap()
}

/// Keeps the folder small during long runs.
fn rotate_and_trim(wal: &Wal) {
    let current = wal.rotate().unwrap();
    wal.remove_files_before(current).unwrap();
}

fn big_records(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let wal = open(dir.path());
    let payload: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
    let mut group = c.benchmark_group("wal_100k");
    group.throughput(Throughput::Bytes(payload.len() as u64));
    let mut appended = 0u64;
    group.bench_function("append", |b| {
        b.iter(|| {
            appended += 1;
            if appended.is_multiple_of(ROTATE_EVERY) {
                rotate_and_trim(&wal);
            }
            black_box(wal.append(&payload).unwrap())
        })
    });
    group.bench_function("append_sync", |b| {
        b.iter(|| {
            appended += 1;
            if appended.is_multiple_of(ROTATE_EVERY) {
                rotate_and_trim(&wal);
            }
            let pos = wal.append(&payload).unwrap();
            wal.sync(pos).unwrap();
        })
    });
    group.finish();
}

fn group_commit(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let wal = open(dir.path());
    let payload = [42u8; 100];
    let mut group = c.benchmark_group("wal_group_commit_100b");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(10));
    for threads in [1u64, 4] {
        group.bench_function(format!("{threads}_threads"), |b| {
            b.iter_custom(|records| {
                let per_thread = records.div_ceil(threads);
                let start = Instant::now();
                thread::scope(|s| {
                    for _ in 0..threads {
                        s.spawn(|| {
                            for _ in 0..per_thread {
                                let pos = wal.append(&payload).unwrap();
                                wal.sync(pos).unwrap();
                            }
                        });
                    }
                });
                let elapsed = start.elapsed();
                rotate_and_trim(&wal);
                elapsed
            })
        });
    }
    group.finish();
    eprintln!("group commit: {} fsyncs in total for this WAL", wal.sync_count());
}

criterion_group!(benches, big_records, group_commit);
criterion_main!(benches);
