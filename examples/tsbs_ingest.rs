//! Measures the headline numbers on TSBS cpu-only data in one run:
//! ingest rows/s through `write_lp` with WAL group commit, bytes per row
//! after compaction, and single-field scan throughput.
//!
//! cargo run --release --example tsbs_ingest -- --hosts 1000 --duration 1d --threads 4
//!
//! The line protocol is generated before the clock starts; `--lp-out FILE`
//! also saves it (for the Parquet comparison in benches/compare/).

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use clap::Parser;
use quipu::tsbs::{self, TsbsConfig, TsbsGenerator};
use quipu::{Engine, Precision, ScanRequest, WriteOptions};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 1000)]
    hosts: u32,
    #[arg(long, default_value = "1d")]
    duration: String,
    /// Lines per write request.
    #[arg(long, default_value_t = 5000)]
    batch: usize,
    /// Concurrent writers.
    #[arg(long, default_value_t = 4)]
    threads: usize,
    /// Data folder (default: a temp folder).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    /// Save the generated line protocol here.
    #[arg(long)]
    lp_out: Option<std::path::PathBuf>,
    /// Acknowledge without fsync (no_sync).
    #[arg(long)]
    no_sync: bool,
    /// Only scan the data already in `--dir` (from an earlier run).
    #[arg(long)]
    scan_only: bool,
    /// Convert each compacted window into the export cache as part of the
    /// compaction (`ExportCache::hook` with `warm`).
    #[arg(long)]
    export_warm: bool,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if args.scan_only {
        let dir = args.dir.as_ref().ok_or("--scan-only needs --dir")?;
        let engine = Engine::builder(dir).background(false).open()?;
        return scan(&engine, None);
    }
    let cfg =
        TsbsConfig { hosts: args.hosts, duration: tsbs::parse_duration(&args.duration)?, ..TsbsConfig::default() };
    let mut generator = TsbsGenerator::new(cfg.clone())?;
    let mut batches: Vec<String> = Vec::new();
    let mut lp_out = args.lp_out.as_ref().map(std::fs::File::create).transpose()?.map(std::io::BufWriter::new);
    loop {
        let mut buf = Vec::with_capacity(args.batch * 330);
        if generator.next_batch(args.batch, &mut buf) == 0 {
            break;
        }
        if let Some(out) = lp_out.as_mut() {
            out.write_all(&buf)?;
        }
        batches.push(String::from_utf8(buf)?);
    }
    drop(lp_out);
    let rows = cfg.rows();
    let lp_bytes: usize = batches.iter().map(|b| b.len()).sum();

    let tmp = tempfile::tempdir()?;
    let dir = args.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let cache = Arc::new(quipu::export::cache::ExportCache::open(&dir, 1 << 30, Arc::new(quipu::clock::SystemClock)));
    let engine = Engine::builder(&dir).compaction(false).on_install(cache.hook(args.export_warm)).open()?;
    let batches = Arc::new(batches);
    let next = Arc::new(AtomicUsize::new(0));
    let opts = WriteOptions { accept_partial: false, no_sync: args.no_sync };
    let start = Instant::now();
    let workers: Vec<_> = (0..args.threads)
        .map(|_| {
            let (engine, batches, next) = (engine.clone(), batches.clone(), next.clone());
            std::thread::spawn(move || -> quipu::Result<()> {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = batches.get(i) else { return Ok(()) };
                    engine.write_lp("benchmark", body, Precision::Nanosecond, opts)?;
                }
            })
        })
        .collect();
    for w in workers {
        w.join().map_err(|_| "writer panicked")??;
    }
    let ingest = start.elapsed();
    let t = Instant::now();
    engine.flush()?;
    let flush = t.elapsed();
    let t = Instant::now();
    engine.compact()?;
    let compact = t.elapsed();
    let files = engine.live_files();
    let bytes: u64 = files.iter().map(|f| f.meta.size).sum();

    println!("rows                  {rows}");
    println!(
        "line protocol         {:.1} MiB ({:.0} B/row)",
        lp_bytes as f64 / 1048576.0,
        lp_bytes as f64 / rows as f64
    );
    println!(
        "writers               {} x {}-line requests, {}",
        args.threads,
        args.batch,
        if args.no_sync { "no_sync" } else { "fsync (group commit)" }
    );
    println!("ingest                {:.2} s = {:.0} rows/s", ingest.as_secs_f64(), rows as f64 / ingest.as_secs_f64());
    println!("final flush           {:.2} s", flush.as_secs_f64());
    println!(
        "compaction            {:.2} s{}",
        compact.as_secs_f64(),
        if args.export_warm { " (with export warming)" } else { "" }
    );
    println!("compacted files       {} ({} bytes = {:.3} B/row)", files.len(), bytes, bytes as f64 / rows as f64);
    scan(&engine, Some(rows))
}

/// Scans one field over the whole day, page-cached: warm once, then time.
fn scan(engine: &Engine, rows: Option<u64>) -> Result<(), Box<dyn std::error::Error>> {
    let req = ScanRequest::all().columns(["usage_user"]);
    // Batches are consumed as they come, as a query engine would.
    let count = || -> quipu::Result<usize> {
        let mut n = 0;
        for batch in engine.scan_iter("benchmark", "cpu", &req)? {
            n += batch?.num_rows();
        }
        Ok(n)
    };
    count()?;
    let mut best = f64::INFINITY;
    let mut values = 0;
    for _ in 0..5 {
        let t = Instant::now();
        values = count()?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    if let Some(rows) = rows {
        assert_eq!(values as u64, rows, "every row scanned back");
    }
    println!(
        "scan usage_user       {:.1} ms = {:.0} M values/s (best of 5, one thread)",
        best * 1e3,
        values as f64 / best / 1e6
    );
    Ok(())
}
