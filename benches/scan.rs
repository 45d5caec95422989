//! Scan throughput over compacted TSBS cpu-only data (page-cached): one field
//! over the whole day, one field for one host, and all columns.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use quipu::tsbs::{TsbsConfig, TsbsGenerator};
use quipu::{Engine, Precision, ScanRequest, WriteOptions};

const HOSTS: u32 = 200;

fn load(dir: &std::path::Path) -> (Engine, u64) {
    let engine = Engine::builder(dir).background(false).open().unwrap();
    let cfg = TsbsConfig { hosts: HOSTS, ..TsbsConfig::default() };
    let rows = cfg.rows();
    let mut generator = TsbsGenerator::new(cfg).unwrap();
    let mut buf = Vec::new();
    while generator.next_batch(10_000, &mut buf) > 0 {
        engine
            .write_lp(
                "bench",
                std::str::from_utf8(&buf).unwrap(),
                Precision::Nanosecond,
                WriteOptions { accept_partial: false, no_sync: true },
            )
            .unwrap();
        buf.clear();
    }
    engine.flush().unwrap();
    engine.compact().unwrap();
    (engine, rows)
}

fn scan(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (engine, rows) = load(dir.path());
    let mut group = c.benchmark_group("scan_compacted_day");
    group.sample_size(20);
    group.throughput(Throughput::Elements(rows));
    let one_field = ScanRequest::all().columns(["usage_user"]);
    // Batches consumed one at a time, as a query engine does.
    let drain = |req: &ScanRequest| {
        engine.scan_iter("bench", "cpu", req).unwrap().map(|b| b.unwrap().num_rows()).sum::<usize>()
    };
    group.bench_function("one_field", |b| b.iter(|| drain(&one_field)));
    let all = ScanRequest::all();
    group.bench_function("all_columns", |b| b.iter(|| drain(&all)));
    group.throughput(Throughput::Elements(rows / u64::from(HOSTS)));
    let one_host = ScanRequest::all().columns(["usage_user"]).tag_eq("hostname", "host_7");
    group.bench_function("one_field_one_host", |b| b.iter(|| drain(&one_host)));
    group.finish();
}

criterion_group!(benches, scan);
criterion_main!(benches);
