//! Ingest throughput through `write_lp` on TSBS cpu-only line protocol, in
//! 5,000-line requests, with the WAL fsynced (group commit) or not, and
//! with concurrent writers; and through `write_batch` of the same rows as
//! Arrow batches of 5,000 rows (tags dictionary-encoded, as a scan returns
//! them). Rows per second is the throughput unit.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::compute::concat_batches;
use arrow::record_batch::RecordBatch;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use quipu::tsbs::{TsbsConfig, TsbsGenerator};
use quipu::{Engine, Precision, ScanRequest, WriteOptions};

const HOSTS: u32 = 1000;
const BATCH: usize = 5000;

fn batches(n: usize) -> Vec<String> {
    let mut generator = TsbsGenerator::new(TsbsConfig { hosts: HOSTS, ..TsbsConfig::default() }).unwrap();
    (0..n)
        .map(|_| {
            let mut buf = Vec::new();
            generator.next_batch(BATCH, &mut buf);
            String::from_utf8(buf).unwrap()
        })
        .collect()
}

/// A new engine in a new temp folder (kept alive beside it).
fn fresh_engine() -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::builder(dir.path()).background(false).open().unwrap();
    (dir, engine)
}

fn ingest(c: &mut Criterion) {
    let data = Arc::new(batches(40));
    let rows = (data.len() * BATCH) as u64;
    let mut group = c.benchmark_group("ingest_tsbs");
    group.sample_size(10);
    group.throughput(Throughput::Elements(rows));
    for (name, threads, no_sync) in [("fsync", 1, false), ("fsync", 4, false), ("no_sync", 1, true)] {
        group.bench_with_input(BenchmarkId::new(name, threads), &threads, |b, &threads| {
            b.iter_with_setup(fresh_engine, |(dir, engine)| {
                let next = Arc::new(AtomicUsize::new(0));
                let opts = WriteOptions { accept_partial: false, no_sync };
                std::thread::scope(|s| {
                    for _ in 0..threads {
                        let (engine, next, data) = (&engine, next.clone(), data.clone());
                        s.spawn(move || {
                            while let Some(body) = data.get(next.fetch_add(1, Ordering::Relaxed)) {
                                engine.write_lp("bench", body, Precision::Nanosecond, opts).unwrap();
                            }
                        });
                    }
                });
                drop(engine);
                dir
            });
        });
    }
    group.finish();
}

/// The rows of `data` as Arrow batches of [`BATCH`] rows, as a scan returns them.
fn arrow_batches(data: &[String]) -> Vec<RecordBatch> {
    let (_dir, engine) = fresh_engine();
    let opts = WriteOptions { accept_partial: false, no_sync: true };
    for body in data {
        engine.write_lp("bench", body, Precision::Nanosecond, opts).unwrap();
    }
    let scanned = engine.scan("bench", "cpu", &ScanRequest::all()).unwrap();
    let all = concat_batches(&scanned[0].schema(), &scanned).unwrap();
    (0..all.num_rows()).step_by(BATCH).map(|o| all.slice(o, BATCH.min(all.num_rows() - o))).collect()
}

fn ingest_arrow(c: &mut Criterion) {
    let batches = arrow_batches(&batches(40));
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let mut group = c.benchmark_group("ingest_tsbs_arrow");
    group.sample_size(10);
    group.throughput(Throughput::Elements(rows as u64));
    group.bench_function("fsync/1", |b| {
        b.iter_with_setup(fresh_engine, |(dir, engine)| {
            for batch in &batches {
                engine.write_batch("bench", "cpu", batch).unwrap();
            }
            drop(engine);
            dir
        });
    });
    group.finish();
}

criterion_group!(benches, ingest, ingest_arrow);
criterion_main!(benches);
