//! Parsing throughput (the ingest hot path): TSBS cpu-only lines (10 tags,
//! 10 integer fields) and a float-heavy shape (3 tags, 10 float fields).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use quipu::lp::{Precision, parse, parse_bytes, parse_iter};

const LINES: usize = 5_000;

/// Deterministic TSBS cpu-only body: same shape and value ranges as
/// `tsbs_generate_data --use-case=cpu-only --format=influx`.
fn tsbs_cpu_only(lines: usize) -> String {
    const REGIONS: [(&str, &str); 3] =
        [("eu-west-1", "eu-west-1a"), ("us-east-1", "us-east-1b"), ("ap-southeast-2", "ap-southeast-2c")];
    const FIELDS: [&str; 10] = [
        "usage_user",
        "usage_system",
        "usage_idle",
        "usage_nice",
        "usage_iowait",
        "usage_irq",
        "usage_softirq",
        "usage_steal",
        "usage_guest",
        "usage_guest_nice",
    ];
    // xorshift: deterministic without a rand dependency.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let hosts = 100;
    let mut body = String::with_capacity(lines * 320);
    for i in 0..lines {
        let host = i % hosts;
        let (region, dc) = REGIONS[host % REGIONS.len()];
        body.push_str(&format!(
            "cpu,hostname=host_{host},region={region},datacenter={dc},rack={},os=Ubuntu16.04LTS,arch=x64,team=NYC,service={},service_version={},service_environment=production ",
            host * 7 % 100,
            host % 20,
            host % 2,
        ));
        for (f, name) in FIELDS.iter().enumerate() {
            if f > 0 {
                body.push(',');
            }
            body.push_str(&format!("{name}={}i", next() % 100));
        }
        let ts = 1_451_606_400_000_000_000_i64 + (i / hosts) as i64 * 10_000_000_000;
        body.push_str(&format!(" {ts}\n"));
    }
    body
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
