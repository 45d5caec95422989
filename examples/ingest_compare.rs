//! quipu's side of the ingest comparison of `benches/compare/suite.sh`:
//! rows per second and bytes per row of TSBS cpu-only rows, written the way
//! a time-series server writes them and kept the way they are stored.
//!
//! - `lp`: the line protocol `quipu gen tsbs` printed, in `--batch`-line
//!   `write_lp` requests on `--threads` writers;
//! - `arrow`: the rows of a Parquet file (read into Arrow batches of
//!   `--batch` rows before the clock starts), through `write_batch`, the same
//!   Arrow table pyarrow and DuckDB are given (`benches/compare/ingest_peers.py`).
//!
//! Every run writes into a new data folder, acknowledged durably (the WAL is
//! fsynced, group commit), then flushes and compacts: the clock stops when
//! the rows are in their final, compressed form on disk. The input is read
//! into memory before the clock starts. `--warmup` untimed runs come first.
//! The bytes are those of the compacted segment files.
//!
//! ```sh
//! cargo run --release -- gen tsbs --hosts 10 --duration 1h > /tmp/cpu.lp
//! cargo run --release --example ingest_compare -- lp --input /tmp/cpu.lp --scratch /tmp/ingest --keep /tmp/cpu-day
//! cargo run --release --example ingest_compare -- arrow --input /tmp/cpu.parquet --scratch /tmp/ingest
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use arrow::record_batch::RecordBatch;
use clap::{Parser, ValueEnum};
use quipu::{Engine, Precision, WriteOptions};
use serde::Serialize;

#[derive(Clone, Copy, Debug, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Input {
    /// Line protocol, one request per `--batch` lines.
    Lp,
    /// A Parquet file, one `write_batch` per `--batch` rows.
    Arrow,
}

#[derive(Parser)]
struct Args {
    input_kind: Input,
    #[arg(long)]
    input: PathBuf,
    /// Where each run's data folder is made (and removed).
    #[arg(long)]
    scratch: PathBuf,
    #[arg(long, default_value = "benchmark")]
    db: String,
    /// The table of `arrow` rows.
    #[arg(long, default_value = "cpu")]
    table: String,
    /// Lines per request (`lp`) or rows per batch (`arrow`).
    #[arg(long, default_value_t = 10_000)]
    batch: usize,
    /// Concurrent writers.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    #[arg(long, default_value_t = 5)]
    runs: usize,
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Keep the last run's data folder here (it must not exist).
    #[arg(long)]
    keep: Option<PathBuf>,
    /// Write the results here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Serialize)]
struct Run {
    /// Every row acknowledged (durable in the WAL).
    acknowledged_s: f64,
    /// Acknowledged, flushed and compacted.
    total_s: f64,
    /// The compacted segment files.
    bytes: u64,
}

#[derive(Serialize)]
struct Report {
    tool: String,
    input: Input,
    input_bytes: u64,
    rows: u64,
    threads: usize,
    batch: usize,
    warmup: usize,
    runs: Vec<Run>,
}

/// The requests of one run: line protocol texts or Arrow batches.
enum Requests {
    Lp(Vec<String>),
    Arrow(Vec<RecordBatch>),
}

impl Requests {
    fn len(&self) -> usize {
        match self {
            Requests::Lp(v) => v.len(),
            Requests::Arrow(v) => v.len(),
        }
    }

    fn write(&self, engine: &Engine, args: &Args, i: usize) -> quipu::Result<()> {
        let opts = WriteOptions { accept_partial: false, no_sync: false };
        match self {
            Requests::Lp(v) => engine.write_lp(&args.db, &v[i], Precision::Nanosecond, opts).map(drop),
            Requests::Arrow(v) => engine.write_batch_with(&args.db, &args.table, &v[i], opts).map(drop),
        }
    }
}

/// Line protocol in requests of `lines` lines, and how many lines.
fn read_lp(path: &Path, lines: usize) -> Result<(Requests, u64), Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(path)?;
    let mut requests = Vec::new();
    let mut rows = 0u64;
    let mut current = String::new();
    let mut in_current = 0;
    for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        current.push_str(line);
        current.push('\n');
        in_current += 1;
        rows += 1;
        if in_current == lines.max(1) {
            requests.push(std::mem::take(&mut current));
            in_current = 0;
        }
    }
    if in_current > 0 {
        requests.push(current);
    }
    Ok((Requests::Lp(requests), rows))
}

fn read_parquet(path: &Path, rows_per_batch: usize) -> Result<(Requests, u64), Box<dyn std::error::Error>> {
    let file = std::fs::File::open(path)?;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)?
        .with_batch_size(rows_per_batch.max(1))
        .build()?;
    let batches = reader.collect::<Result<Vec<_>, _>>()?;
    let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
    Ok((Requests::Arrow(batches), rows))
}

/// One run into the new folder `dir`.
fn run(dir: &Path, requests: &Arc<Requests>, args: &Arc<Args>) -> Result<Run, Box<dyn std::error::Error>> {
    let engine = Engine::builder(dir).compaction(false).open()?;
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..args.threads.max(1))
        .map(|_| {
            let (engine, requests, args, next) = (engine.clone(), requests.clone(), args.clone(), next.clone());
            std::thread::spawn(move || -> quipu::Result<()> {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= requests.len() {
                        return Ok(());
                    }
                    requests.write(&engine, &args, i)?;
                }
            })
        })
        .collect();
    for w in workers {
        w.join().map_err(|_| "a writer panicked")??;
    }
    let acknowledged_s = start.elapsed().as_secs_f64();
    engine.flush()?;
    engine.compact()?;
    let total_s = start.elapsed().as_secs_f64();
    let bytes = engine.live_files().iter().map(|f| f.meta.size).sum();
    engine.close()?;
    Ok(Run { acknowledged_s, total_s, bytes })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Arc::new(Args::parse());
    let input_bytes = std::fs::metadata(&args.input)?.len();
    let (requests, rows) = match args.input_kind {
        Input::Lp => read_lp(&args.input, args.batch)?,
        Input::Arrow => read_parquet(&args.input, args.batch)?,
    };
    if rows == 0 {
        return Err(format!("{} holds no rows", args.input.display()).into());
    }
    let requests = Arc::new(requests);
    std::fs::create_dir_all(&args.scratch)?;
    let mut runs = Vec::new();
    let total = args.warmup + args.runs;
    for i in 0..total {
        let dir = tempfile::Builder::new().prefix("quipu-ingest-").tempdir_in(&args.scratch)?;
        let r = run(dir.path(), &requests, &args)?;
        let timed = i >= args.warmup;
        eprintln!(
            "quipu {:?} {}run {}: {rows} rows acknowledged in {:.3} s, compacted in {:.3} s = {:.0} rows/s, {} bytes = {:.3} B/row",
            args.input_kind,
            if timed { "" } else { "warm-up " },
            i + 1,
            r.acknowledged_s,
            r.total_s,
            rows as f64 / r.total_s,
            r.bytes,
            r.bytes as f64 / rows as f64
        );
        if i + 1 == total
            && let Some(keep) = &args.keep
        {
            std::fs::rename(dir.keep(), keep)?;
        }
        if timed {
            runs.push(r);
        }
    }
    let tool = match args.input_kind {
        Input::Lp => "quipu write_lp",
        Input::Arrow => "quipu write_batch",
    };
    let report = Report {
        tool: tool.into(),
        input: args.input_kind,
        input_bytes,
        rows,
        threads: args.threads,
        batch: args.batch,
        warmup: args.warmup,
        runs,
    };
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
    }
    Ok(())
}
