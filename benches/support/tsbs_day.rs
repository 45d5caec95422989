//! A compacted TSBS cpu-only data set in database `bench`, for benches that
//! read one (`#[path]`-included).

use quipu::tsbs::{TsbsConfig, TsbsGenerator};
use quipu::{Engine, Precision, WriteOptions};

/// An engine in `dir` holding `cfg`'s rows, flushed and compacted; and the
/// number of rows.
pub fn compacted(dir: &std::path::Path, cfg: TsbsConfig) -> (Engine, u64) {
    let engine = Engine::builder(dir).background(false).open().unwrap();
    let rows = cfg.rows();
    let mut generator = TsbsGenerator::new(cfg).unwrap();
    let mut buf = Vec::new();
    let opts = WriteOptions { accept_partial: false, no_sync: true };
    while generator.next_batch(10_000, &mut buf) > 0 {
        engine.write_lp("bench", std::str::from_utf8(&buf).unwrap(), Precision::Nanosecond, opts).unwrap();
        buf.clear();
    }
    engine.flush().unwrap();
    engine.compact().unwrap();
    (engine, rows)
}
