//! Measures export throughput of compacted data in one run: Parquet written
//! in-process (to a byte counter), and the tar of Parquet streamed by
//! `GET /api/v3/export/window_data` to an HTTP client on loopback, first
//! with every window converted (the export cache emptied before each run),
//! then streamed from the export cache, then streamed from it right after
//! the engine opened (entries hashed whole before their first use).
//!
//! cargo run --release --example tsbs_ingest -- --hosts 1000 --duration 1d --no-sync --dir /tmp/tsbs-day
//! cargo run --release --example export_day -- --dir /tmp/tsbs-day
//!
//! The folder must hold compacted data (tsbs_ingest compacts before it stops).

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use quipu::Engine;
use quipu::clock::SystemClock;
use quipu::export::TableExport;
use quipu::export::cache::ExportCache;
use quipu::server::{AdminToken, AppState, BackgroundServer, DEFAULT_MAX_BODY_BYTES};

#[derive(Parser)]
struct Args {
    /// A data folder with compacted data.
    #[arg(long)]
    dir: std::path::PathBuf,
    #[arg(long, default_value = "benchmark")]
    db: String,
    #[arg(long, default_value = "cpu")]
    table: String,
    /// Also save each window's Parquet here (for pyarrow and duckdb).
    #[arg(long)]
    save: Option<std::path::PathBuf>,
    /// Timed repetitions of each measurement (the best is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

/// Counts what is written to it.
struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn mb_per_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let open = || -> quipu::Result<(Engine, Arc<ExportCache>)> {
        let cache = Arc::new(ExportCache::open(&args.dir, 1 << 30, Arc::new(SystemClock)));
        let engine = Engine::builder(&args.dir).background(false).on_install(cache.hook(false)).open()?;
        Ok((engine, cache))
    };
    let (engine, cache) = open()?;
    let export = TableExport::new(&engine, &cache, &args.db, &args.table, &[])?;
    let rows: u64 = export.windows().iter().map(|w| w.rows).sum();
    let segment_bytes: u64 = export.windows().iter().map(|w| w.segment_bytes).sum();
    println!("{} windows, {rows} rows, {segment_bytes} bytes of segments", export.windows().len());

    let mut best = f64::MAX;
    let mut parquet_bytes = 0;
    for _ in 0..args.runs {
        let start = Instant::now();
        let mut total = 0;
        for i in 0..export.windows().len() {
            let mut out = Counter(0);
            export.write_parquet(i, &mut out)?;
            total += out.0;
        }
        best = best.min(start.elapsed().as_secs_f64());
        parquet_bytes = total;
    }
    println!(
        "in-process parquet: {parquet_bytes} bytes ({:.2} B/row) in {best:.3}s = {:.0} MB/s, {:.2}M rows/s",
        parquet_bytes as f64 / rows as f64,
        mb_per_s(parquet_bytes, best),
        rows as f64 / best / 1e6
    );
    if let Some(dir) = &args.save {
        std::fs::create_dir_all(dir)?;
        for (i, w) in export.windows().iter().enumerate() {
            let path = dir.join(format!("{}.parquet", w.window));
            export.write_parquet(i, io::BufWriter::new(std::fs::File::create(&path)?))?;
            println!("saved {}", path.display());
        }
    }
    drop(export);

    // The same over HTTP, through the real server on loopback: converted
    // (the cache emptied before each run), streamed from the cache, and
    // streamed from the cache right after the engine was opened again (each
    // entry is then hashed whole before its first use).
    let token = "apiv3_export-bench";
    let client = reqwest::blocking::Client::builder().timeout(None).build()?;
    let fetch = |url: &str| -> Result<(u64, f64), Box<dyn std::error::Error>> {
        let start = Instant::now();
        let mut resp = client.get(url).bearer_auth(token).send()?.error_for_status()?;
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            let n = resp.read(&mut buf)?;
            if n == 0 {
                break;
            }
            total += n as u64;
        }
        Ok((total, start.elapsed().as_secs_f64()))
    };
    let mut engine = Some((engine, cache));
    for what in ["converted", "cached", "cached, first use after open"] {
        let mut best = f64::MAX;
        let mut tar_bytes = 0;
        for _ in 0..args.runs {
            let current = match engine.take() {
                Some(e) if what != "cached, first use after open" => e,
                other => {
                    drop(other);
                    open()?
                }
            };
            if what == "converted" {
                current.1.clear();
            }
            let state = AppState::new(current.0.clone(), AdminToken::from_token(token), DEFAULT_MAX_BODY_BYTES)
                .with_export_cache(current.1.clone());
            let server = BackgroundServer::start(state, "127.0.0.1:0".parse()?)?;
            let url = format!("http://{}/api/v3/export/window_data?db={}&table={}", server.addr(), args.db, args.table);
            let (total, secs) = fetch(&url)?;
            server.stop()?;
            best = best.min(secs);
            tar_bytes = total;
            engine = Some(current);
        }
        println!(
            "http window_data, {what}: {tar_bytes} bytes of tar in {best:.3}s = {:.0} MB/s, {:.2}M rows/s",
            mb_per_s(tar_bytes, best),
            rows as f64 / best / 1e6
        );
    }
    Ok(())
}
