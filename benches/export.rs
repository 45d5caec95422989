//! Export throughput: one compacted TSBS cpu-only day (200 hosts) written
//! as Parquet in-process (`TableExport::write_parquet`) and as the tar that
//! `GET /api/v3/export/window_data` streams (`TableExport::write_tar`):
//! converted (the export cache emptied each time, so the file is converted
//! into a new entry first) and streamed from the cache. Throughput in rows.
//! The full 1,000-host day over HTTP: examples/export_day.rs.

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use quipu::Engine;
use quipu::clock::SystemClock;
use quipu::export::TableExport;
use quipu::export::cache::ExportCache;
use quipu::tsbs::TsbsConfig;

#[path = "support/tsbs_day.rs"]
mod tsbs_day;

const HOSTS: u32 = 200;

fn export(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (engine, rows) = tsbs_day::compacted(dir.path(), TsbsConfig { hosts: HOSTS, ..TsbsConfig::default() });
    // Opened again with an export cache hooked in, as `quipu serve` opens it.
    drop(engine);
    let cache = Arc::new(ExportCache::open(dir.path(), 1 << 30, Arc::new(SystemClock)));
    let engine = Engine::builder(dir.path()).background(false).on_install(cache.hook(false)).open().unwrap();
    let export = TableExport::new(&engine, &cache, "bench", "cpu", &[]).unwrap();
    assert_eq!(export.windows().len(), 1);

    let mut group = c.benchmark_group("export_compacted_day");
    group.sample_size(10);
    group.throughput(Throughput::Elements(rows));
    group.bench_function("parquet", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(16 << 20);
            export.write_parquet(0, &mut out).unwrap();
            out.len()
        })
    });
    group.bench_function("tar_converted", |b| {
        b.iter(|| {
            cache.clear();
            let mut out = Vec::with_capacity(16 << 20);
            export.write_tar(&mut out, |_| {}).unwrap();
            out.len()
        })
    });
    group.bench_function("tar_cached", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(16 << 20);
            export.write_tar(&mut out, |_| {}).unwrap();
            out.len()
        })
    });
    group.finish();
}

criterion_group!(benches, export);
criterion_main!(benches);
