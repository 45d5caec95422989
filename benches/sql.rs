//! SQL through `quipu::sql::query` (DataFusion over the engine's scan) on a
//! compacted TSBS cpu-only half day of 100 hosts (432,000 rows), page-cached:
//! planning plus draining the whole result, as a client waits for it.
//!
//! - `one_host_minutes`: max of one field per minute for one host over one
//!   hour (TSBS single-groupby-1-1-1): tag and time pushed into the scan;
//! - `hosts_hours`: avg of one field per host per hour over every row (TSBS
//!   double-groupby over the whole range);
//! - `full_aggregate`: count, avg and max over every row.
//!
//! The 1,000-host day against DuckDB: benches/compare/tsbs_queries.sh.

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::StreamExt;
use quipu::Engine;
use quipu::tsbs::TsbsConfig;

#[path = "support/tsbs_day.rs"]
mod tsbs_day;

const HOSTS: u32 = 100;

fn load(dir: &std::path::Path) -> (Engine, u64) {
    let cfg = TsbsConfig { hosts: HOSTS, duration: Duration::from_secs(12 * 3600), ..TsbsConfig::default() };
    tsbs_day::compacted(dir, cfg)
}

/// Runs `sql` and counts the rows of its result.
async fn rows(engine: &Engine, sql: &str) -> usize {
    let mut stream = quipu::sql::query(engine, "bench", sql).await.unwrap();
    let mut n = 0;
    while let Some(batch) = stream.next().await {
        n += batch.unwrap().num_rows();
    }
    n
}

fn sql(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (engine, total) = load(dir.path());
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let queries = [
        (
            "one_host_minutes",
            "SELECT date_bin(INTERVAL '1 minute', time) AS minute, max(usage_user) FROM cpu \
             WHERE hostname = 'host_7' AND time >= '2016-01-01T03:17:00Z' AND time < '2016-01-01T04:17:00Z' \
             GROUP BY minute ORDER BY minute",
            360,
            60,
        ),
        (
            "hosts_hours",
            "SELECT date_bin(INTERVAL '1 hour', time) AS hour, hostname, avg(usage_user) FROM cpu \
             GROUP BY hour, hostname ORDER BY hour, hostname",
            total,
            12 * HOSTS as usize,
        ),
        ("full_aggregate", "SELECT count(*), avg(usage_user), max(usage_system) FROM cpu", total, 1),
    ];
    let mut group = c.benchmark_group("sql_tsbs_half_day");
    group.sample_size(20);
    for (name, sql, scanned, expected) in queries {
        assert_eq!(rt.block_on(rows(&engine, sql)), expected, "{name}");
        group.throughput(Throughput::Elements(scanned));
        group.bench_function(name, |b| b.iter(|| rt.block_on(rows(&engine, sql))));
    }
    group.finish();
}

criterion_group!(benches, sql);
criterion_main!(benches);
