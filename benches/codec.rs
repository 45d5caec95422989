//! Encode/decode throughput of the column-block codecs on TSBS cpu-only-like
//! blocks of 65,536 values (rows sorted by (series, time), 8,640 rows per host
//! per day, so a block spans ~7.6 hosts). Prints compressed bytes per value.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use quipu::segment::codec::{
    decode_bool, decode_f64, decode_i64, decode_str, decode_timestamps, decode_u64, encode_bool, encode_f64,
    encode_i64, encode_str, encode_timestamps, encode_u64,
};

const BLOCK: usize = 65_536;
const ROWS_PER_HOST: usize = 8_640;
/// gen0 flush level and a compaction level.
const LEVELS: [i32; 2] = [1, 3];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn uniform(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Box-Muller standard normal.
    fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.uniform(), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// One TSBS cpu field: per host a random walk in [0, 100] with rounded N(0,1) steps.
fn int_walk(seed: u64) -> Vec<i64> {
    let mut rng = Rng(seed);
    let mut v = 0i64;
    (0..BLOCK)
        .map(|i| {
            if i % ROWS_PER_HOST == 0 {
                v = (rng.next() % 101) as i64;
            }
            v = (v + rng.normal().round() as i64).clamp(0, 100);
            v
        })
        .collect()
}

fn timestamps() -> Vec<i64> {
    const DAY_START_NS: i64 = 1_451_606_400_000_000_000; // 2016-01-01, TSBS default
    (0..BLOCK).map(|i| DAY_START_NS + (i % ROWS_PER_HOST) as i64 * 10_000_000_000).collect()
}

fn float_walk(seed: u64, decimals: Option<i32>) -> Vec<f64> {
    let mut rng = Rng(seed);
    let mut v = 0.0f64;
    (0..BLOCK)
        .map(|i| {
            if i % ROWS_PER_HOST == 0 {
                v = rng.uniform() * 100.0;
            }
            v = (v + rng.normal()).clamp(0.0, 100.0);
            match decimals {
                Some(d) => {
                    let p = 10f64.powi(d);
                    (v * p).round() / p
                }
                None => v,
            }
        })
        .collect()
}

/// A monotonically growing counter (e.g. bytes sent).
fn u64_counter(seed: u64) -> Vec<u64> {
    let mut rng = Rng(seed);
    let mut v = 1u64 << 40;
    (0..BLOCK)
        .map(|_| {
            v += rng.next() % 100_000;
            v
        })
        .collect()
}

fn hostnames() -> Vec<String> {
    (0..BLOCK).map(|i| format!("host_{}", i / ROWS_PER_HOST)).collect()
}

fn validity(seed: u64) -> Vec<bool> {
    let mut rng = Rng(seed);
    (0..BLOCK).map(|_| !rng.next().is_multiple_of(1000)).collect()
}

fn report(name: &str, level: i32, bytes: usize) {
    println!("{name:>14} level {level}: {bytes:>7} bytes = {:.4} bytes/value", bytes as f64 / BLOCK as f64);
}

macro_rules! bench_column {
    ($c:expr, $name:expr, $values:expr, $encode:path, $decode:expr, $out:ty) => {{
        let values = $values;
        let mut group = $c.benchmark_group($name);
        group.throughput(Throughput::Elements(BLOCK as u64));
        for level in LEVELS {
            let mut payload = Vec::new();
            $encode(&values, level, &mut payload);
            report($name, level, payload.len());
            group.bench_function(BenchmarkId::new("encode", level), |b| {
                let mut buf = Vec::with_capacity(payload.len() * 2);
                b.iter(|| {
                    buf.clear();
                    $encode(black_box(&values), level, &mut buf);
                    buf.len()
                })
            });
            group.bench_function(BenchmarkId::new("decode", level), |b| {
                let mut out: Vec<$out> = Vec::with_capacity(BLOCK);
                b.iter(|| {
                    out.clear();
                    #[allow(clippy::redundant_closure_call)]
                    ($decode)(black_box(&payload[..]), BLOCK, &mut out).unwrap();
                    out.len()
                })
            });
        }
        group.finish();
    }};
}

fn codecs(c: &mut Criterion) {
    bench_column!(c, "i64_walk", int_walk(1), encode_i64, decode_i64, i64);
    bench_column!(c, "timestamps", timestamps(), encode_timestamps, decode_timestamps, i64);
    bench_column!(c, "f64_walk_2dp", float_walk(2, Some(2)), encode_f64, decode_f64, f64);
    bench_column!(c, "f64_walk_full", float_walk(3, None), encode_f64, decode_f64, f64);
    bench_column!(c, "f64_const", vec![53.17f64; BLOCK], encode_f64, decode_f64, f64);
    bench_column!(c, "u64_counter", u64_counter(4), encode_u64, decode_u64, u64);
    bench_column!(c, "bool_validity", validity(5), encode_bool, decode_bool, bool);
    bench_column!(
        c,
        "str_hosts",
        hostnames(),
        encode_str,
        |data: &[u8], count, out: &mut Vec<u32>| decode_str(data, count).map(|d| {
            out.extend_from_slice(&d.keys);
        }),
        u32
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    targets = codecs
}
criterion_main!(benches);
