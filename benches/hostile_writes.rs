//! The write path under the inputs of issue 15: a line with 200,000 fields
//! (parsing and catalog resolution were quadratic in a line's keys), a body
//! whose every line adds a new field to one table (the buffer padded every
//! column to the row count), and one more column on a table that already
//! has 100,000 (each catalog change rewrote and fsynced the whole catalog).
//! Each case writes into a real engine; the costs should grow with what a
//! write adds, not with what the table already holds.

use std::hint::black_box;

use criterion::measurement::WallTime;
use criterion::{BatchSize, BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use quipu::{Engine, Precision, WriteOptions};

fn open(dir: &std::path::Path) -> Engine {
    Engine::builder(dir)
        .background(false)
        .columns_per_table(usize::MAX)
        .max_buffer_bytes(usize::MAX / 4)
        .open()
        .expect("open an engine in a temp folder")
}

/// One line of `fields` integer fields and 10 tags.
fn wide_line(fields: usize) -> String {
    let mut line = String::from("wide");
    for t in 0..10 {
        line.push_str(&format!(",t{t}=v{t}"));
    }
    line.push(' ');
    for i in 0..fields {
        if i > 0 {
            line.push(',');
        }
        line.push_str(&format!("f{i}={i}i"));
    }
    line.push_str(" 1\n");
    line
}

/// `lines` lines of one table, each with a field no other line has.
fn sparse_bomb(lines: usize) -> String {
    (0..lines).map(|i| format!("bomb f{i}=1i {i}\n")).collect()
}

/// Times writing `body` into a fresh engine (its folder and opening are
/// not timed).
fn bench_fresh_write(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, body: &str) {
    group.bench_function(name, |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().expect("temp folder");
                let engine = open(dir.path());
                (dir, engine)
            },
            |(dir, engine)| {
                let written = engine.write_lp("db", body, Precision::Nanosecond, WriteOptions::default());
                black_box(written.expect("the body is written"));
                (dir, engine)
            },
            BatchSize::PerIteration,
        );
    });
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("hostile_writes");
    group.sample_size(10);

    for fields in [50_000usize, 200_000] {
        group.throughput(Throughput::Elements(fields as u64));
        bench_fresh_write(&mut group, &format!("wide_line/{fields}_fields"), &wide_line(fields));
    }
    let lines = 70_000;
    group.throughput(Throughput::Elements(lines as u64));
    bench_fresh_write(&mut group, &format!("sparse_bomb/{lines}_new_fields"), &sparse_bomb(lines));

    // One new column on a table of 100,000: a catalog change of one column.
    let dir = tempfile::tempdir().expect("temp folder");
    let engine = open(dir.path());
    engine
        .write_lp("db", &wide_line(100_000), Precision::Nanosecond, WriteOptions::default())
        .expect("the wide table is created");
    let mut next = 0u64;
    group.throughput(Throughput::Elements(1));
    group.bench_function("catalog_change/1_column_on_100000", |b| {
        b.iter(|| {
            next += 1;
            let line = format!("wide,t0=v0 extra{next}=1i {next}\n");
            black_box(engine.write_lp("db", &line, Precision::Nanosecond, WriteOptions::default()).expect("written"));
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
