//! Lines per second of `TsbsGenerator::next_batch` in benchmark-sized write
//! requests (5,000 lines) over the 1,000-host TSBS day.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use quipu::tsbs::{TsbsConfig, TsbsGenerator};

const BATCH_LINES: usize = 5_000;

fn next_batch(c: &mut Criterion) {
    let cfg = TsbsConfig { hosts: 1_000, ..TsbsConfig::default() };
    let new_generator = || TsbsGenerator::new(cfg.clone()).expect("valid config");
    let mut generator = new_generator();
    let mut out = Vec::with_capacity(BATCH_LINES * 320);

    let mut group = c.benchmark_group("tsbs");
    group.throughput(Throughput::Elements(BATCH_LINES as u64));
    group.bench_function("next_batch_5000_lines_1000_hosts", |b| {
        b.iter(|| {
            out.clear();
            // The day is 8.64M lines; start over when it runs out so every
            // iteration formats a full batch.
            if generator.next_batch(BATCH_LINES, &mut out) < BATCH_LINES {
                generator = new_generator();
                out.clear();
                generator.next_batch(BATCH_LINES, &mut out);
            }
            black_box(&out);
        })
    });
    group.finish();
}

criterion_group!(benches, next_batch);
criterion_main!(benches);
