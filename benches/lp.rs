//! Parsing throughput (the ingest hot path): TSBS cpu-only lines (10 tags,
//! 10 integer fields) and a float-heavy shape (3 tags, 10 float fields).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use quipu::lp::{Precision, parse, parse_bytes, parse_iter};
use quipu::tsbs::{TsbsConfig, TsbsGenerator};

const LINES: usize = 5_000;

/// A TSBS cpu-only body from the project's generator (`quipu gen tsbs`).
fn tsbs_cpu_only(lines: usize) -> String {
    let cfg = TsbsConfig { hosts: 100, ..TsbsConfig::default() };
    let mut generator = TsbsGenerator::new(cfg).expect("valid config");
    let mut body = Vec::with_capacity(lines * 330);
    generator.next_batch(lines, &mut body);
    String::from_utf8(body).expect("generator writes UTF-8")
}

/// Deterministic float-heavy body: what a telegraf `cpu` input with float
/// percentages looks like (3 tags, 10 floats with 1 to 17 significant digits).
fn float_heavy(lines: usize) -> String {
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut body = String::with_capacity(lines * 300);
    for i in 0..lines {
        body.push_str(&format!("cpu,host=host_{},cpu=cpu{},region=us-west-2 ", i % 100, i % 8));
        for f in 0..10 {
            if f > 0 {
                body.push(',');
            }
            let v = (next() % 1_000_000_000) as f64 / 1e7;
            // Alternate short ("12.5") and full-precision ("12.345678901234567") values.
            if f % 2 == 0 {
                body.push_str(&format!("usage_{f}={v:.1}"));
            } else {
                body.push_str(&format!("usage_{f}={v:?}"));
            }
        }
        body.push_str(&format!(" {}\n", 1_700_000_000_000_000_000_i64 + i as i64 * 1_000_000_000));
    }
    body
}

fn bench(c: &mut Criterion) {
    let body = tsbs_cpu_only(LINES);
    let check = parse(&body, Precision::Auto, 0);
    assert_eq!(check.lines.len(), LINES);
    assert!(check.errors.is_empty());

    let mut group = c.benchmark_group("lp");
    group.throughput(Throughput::Elements(LINES as u64));
    group.bench_function("tsbs_cpu_only/parse", |b| b.iter(|| parse(black_box(&body), Precision::Auto, 0)));
    group.bench_function("tsbs_cpu_only/parse_bytes", |b| {
        b.iter(|| parse_bytes(black_box(body.as_bytes()), Precision::Nanosecond, 0))
    });
    // Rows consumed as they come, as an engine appending to column builders would.
    group.bench_function("tsbs_cpu_only/parse_iter", |b| {
        b.iter(|| {
            parse_iter(black_box(&body), Precision::Auto, 0).map(|row| row.map_or(0, |r| r.fields.len())).sum::<usize>()
        })
    });
    // The crate alone, for comparison: what this module adds on top.
    group.bench_function("tsbs_cpu_only/crate_parse_lines", |b| {
        b.iter(|| influxdb_line_protocol::parse_lines(black_box(&body)).filter(Result::is_ok).count())
    });
    group.finish();

    let body = float_heavy(LINES);
    let check = parse(&body, Precision::Auto, 0);
    assert_eq!(check.lines.len(), LINES);
    assert!(check.errors.is_empty());
    let mut group = c.benchmark_group("lp");
    group.throughput(Throughput::Elements(LINES as u64));
    group.bench_function("float_heavy/parse", |b| b.iter(|| parse(black_box(&body), Precision::Auto, 0)));
    group.bench_function("float_heavy/parse_iter", |b| {
        b.iter(|| {
            parse_iter(black_box(&body), Precision::Auto, 0).map(|row| row.map_or(0, |r| r.fields.len())).sum::<usize>()
        })
    });
    group.bench_function("float_heavy/crate_parse_lines", |b| {
        b.iter(|| influxdb_line_protocol::parse_lines(black_box(&body)).filter(Result::is_ok).count())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
