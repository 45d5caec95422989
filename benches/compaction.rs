//! Compaction of a TSBS day (200 hosts, 1.73M rows) from 8 flushed files:
//! the streaming merge (`tree::compact::run`) against the in-memory merge it
//! replaced (every input read whole, merged, cut by window and written), in
//! time order (flushes cut the day by time) and in series order (flushes
//! cut it by host, as a backfill that exports one series after another).
//! Each run writes the outputs and removes them; the inputs stay.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use quipu::catalog::Table;
use quipu::rows::{Rows, merge};
use quipu::segment::{TableInfo, WriteConfig, write_segment};
use quipu::tree::compact::{DEFAULT_MEMORY, Job, plan, run};
use quipu::tree::{Tree, window_parts};
use quipu::tsbs::{TsbsConfig, TsbsGenerator};
use quipu::{Engine, Precision, WriteOptions};

const HOSTS: u32 = 200;
const FLUSHES: usize = 8;

/// A data folder holding the day as `FLUSHES` gen0 files, lines in time
/// order or sorted by series; returns the table and the row count.
fn prepare(dir: &Path, series_order: bool) -> (Arc<Table>, u64) {
    let engine = Engine::builder(dir).background(false).compaction(false).open().unwrap();
    let cfg = TsbsConfig { hosts: HOSTS, ..TsbsConfig::default() };
    let rows = cfg.rows();
    let mut generator = TsbsGenerator::new(cfg).unwrap();
    let mut text = Vec::new();
    while generator.next_batch(100_000, &mut text) > 0 {}
    let text = String::from_utf8(text).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    if series_order {
        // Stable: each series stays in time order.
        lines.sort_by_key(|l| l.split(' ').next().unwrap_or(""));
    }
    let per_flush = lines.len().div_ceil(FLUSHES);
    for chunk in lines.chunks(per_flush) {
        for batch in chunk.chunks(10_000) {
            let lp = batch.join("\n");
            engine
                .write_lp("bench", &lp, Precision::Nanosecond, WriteOptions { accept_partial: false, no_sync: true })
                .unwrap();
        }
        engine.flush().unwrap();
    }
    let table = engine.catalog().database("bench").unwrap().table("cpu").unwrap().clone();
    (table, rows)
}

/// The compaction before it streamed.
fn in_memory(job: &Job, tree: &Tree, table: &Table, config: WriteConfig) -> Vec<std::path::PathBuf> {
    let mut per_family: BTreeMap<u32, Vec<Rows>> = BTreeMap::new();
    for input in &job.inputs {
        for (family, rows) in input.reader.read_all().unwrap() {
            per_family.entry(family).or_default().push(rows);
        }
    }
    let families: Vec<_> = per_family
        .into_iter()
        .filter_map(|(id, inputs)| Some((table.family(id)?.clone(), merge(inputs).unwrap())))
        .collect();
    let info = TableInfo { db_id: job.db_id, db: "bench".into(), table_id: job.table_id, table: table.name.clone() };
    let mut paths = Vec::new();
    for (_, part) in window_parts(&families) {
        let families =
            part.iter().map(|(f, idx)| (families[*f].0.clone(), families[*f].1.take(idx).unwrap())).collect();
        let (_, path) = tree.allocate();
        write_segment(&path, &info, &table.columns, families, config, 0).unwrap();
        paths.push(path);
    }
    paths
}

fn compaction(c: &mut Criterion) {
    let config = WriteConfig { zstd_level: 3, ..WriteConfig::default() };
    for (name, series_order) in [("time_order", false), ("series_order", true)] {
        let dir = tempfile::tempdir().unwrap();
        let (table, rows) = prepare(dir.path(), series_order);
        let tree = Tree::open(dir.path()).unwrap();
        let jobs = plan(&tree.current());
        assert_eq!(jobs.len(), 1);
        let job = &jobs[0];
        let mut group = c.benchmark_group(format!("compact_tsbs_{HOSTS}_hosts_{name}"));
        group.sample_size(10);
        group.throughput(Throughput::Elements(rows));
        group.bench_function("streaming", |b| {
            b.iter(|| {
                let edit = run(job, &tree, "bench", &table, config, 0, DEFAULT_MEMORY).unwrap();
                for meta in edit.add {
                    std::fs::remove_file(dir.path().join(meta.relative_path())).unwrap();
                }
            })
        });
        group.bench_function("in_memory", |b| {
            b.iter(|| {
                for path in in_memory(job, &tree, &table, config) {
                    std::fs::remove_file(path).unwrap();
                }
            })
        });
        group.finish();
    }
}

criterion_group!(benches, compaction);
criterion_main!(benches);
