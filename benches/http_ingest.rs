//! The HTTP write path: TSBS cpu-only line protocol in 10,000-line batches
//! posted over keep-alive to `POST /api/v3/write_lp` of a real server on
//! loopback (no_sync, so the handler, not the disk, is measured). Throughput
//! in rows. The side-by-side with in-process ingest: examples/http_ingest.rs.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use quipu::Engine;
use quipu::server::{AdminToken, AppState, BackgroundServer};
use quipu::tsbs::{TsbsConfig, TsbsGenerator};

const HOSTS: u32 = 1000;
const BATCH: usize = 10_000;
const TOKEN: &str = "apiv3_bench";

fn http_ingest(c: &mut Criterion) {
    let mut generator = TsbsGenerator::new(TsbsConfig { hosts: HOSTS, ..TsbsConfig::default() }).unwrap();
    let batches: Vec<Vec<u8>> = (0..20)
        .map(|_| {
            let mut buf = Vec::new();
            generator.next_batch(BATCH, &mut buf);
            buf
        })
        .collect();
    let rows = (batches.len() * BATCH) as u64;

    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::builder(dir.path()).compaction(false).open().unwrap();
    let state = AppState::new(engine, AdminToken::from_token(TOKEN), 64 << 20);
    let server = BackgroundServer::start(state, "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = server.addr();
    let url = format!("http://{addr}/api/v3/write_lp?db=bench&precision=nanosecond&no_sync=true");
    let client = reqwest::blocking::Client::new();

    let mut group = c.benchmark_group("http_write_lp");
    group.sample_size(10);
    group.throughput(Throughput::Elements(rows));
    group.bench_function("tsbs_10k_line_batches", |b| {
        b.iter(|| {
            for body in &batches {
                let resp = client.post(&url).bearer_auth(TOKEN).body(body.clone()).send().unwrap();
                assert_eq!(resp.status().as_u16(), 204);
            }
        })
    });
    group.finish();
    server.stop().unwrap();
}

criterion_group!(benches, http_ingest);
criterion_main!(benches);
