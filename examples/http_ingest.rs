//! HTTP ingest against in-process ingest, in one run on the same batches:
//! TSBS cpu-only line protocol in 10k-line batches, written by N threads
//! straight into `Engine::write_lp`, then by N keep-alive HTTP clients to
//! `POST /api/v3/write_lp` of a real server on loopback (a fresh data folder
//! each, fsync with group commit unless --no-sync). Prints both rates and
//! their ratio.
//!
//! cargo run --release --example http_ingest -- --hosts 1000 --duration 6h --clients 4

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use clap::Parser;
use quipu::server::{AdminToken, AppState, BackgroundServer};
use quipu::tsbs::{self, TsbsConfig, TsbsGenerator};
use quipu::{Engine, Precision, WriteOptions};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 1000)]
    hosts: u32,
    #[arg(long, default_value = "6h")]
    duration: String,
    /// Lines per request.
    #[arg(long, default_value_t = 10_000)]
    batch: usize,
    /// Concurrent writers (threads in-process, HTTP clients over loopback).
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Gzip the HTTP bodies (as Telegraf and the InfluxDB clients can).
    #[arg(long)]
    gzip: bool,
    /// Acknowledge without fsync.
    #[arg(long)]
    no_sync: bool,
}

const TOKEN: &str = "apiv3_http-ingest-bench";

/// Runs `work(batch index)` on `threads` threads until the batches run out.
fn parallel(
    threads: usize,
    batches: usize,
    work: impl Fn(usize) -> Result<(), String> + Send + Sync + 'static,
) -> Result<f64, String> {
    let next = Arc::new(AtomicUsize::new(0));
    let work = Arc::new(work);
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (next, work) = (next.clone(), work.clone());
            std::thread::spawn(move || -> Result<(), String> {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= batches {
                        return Ok(());
                    }
                    work(i)?;
                }
            })
        })
        .collect();
    for h in handles {
        h.join().map_err(|_| "writer panicked")??;
    }
    Ok(start.elapsed().as_secs_f64())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let cfg =
        TsbsConfig { hosts: args.hosts, duration: tsbs::parse_duration(&args.duration)?, ..TsbsConfig::default() };
    let rows = cfg.rows();
    let mut generator = TsbsGenerator::new(cfg)?;
    let mut batches: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut buf = Vec::with_capacity(args.batch * 350);
        if generator.next_batch(args.batch, &mut buf) == 0 {
            break;
        }
        batches.push(buf);
    }
    let lp_bytes: usize = batches.iter().map(Vec::len).sum();
    println!("{rows} rows, {:.1} MiB of line protocol in {} requests", lp_bytes as f64 / 1048576.0, batches.len());
    let batches = Arc::new(batches);
    let opts = WriteOptions { accept_partial: false, no_sync: args.no_sync };

    // In-process.
    let dir = tempfile::tempdir()?;
    let engine = Engine::builder(dir.path()).compaction(false).open()?;
    let (e, b) = (engine.clone(), batches.clone());
    let in_process = parallel(args.clients, batches.len(), move |i| {
        let body = std::str::from_utf8(&b[i]).map_err(|e| e.to_string())?;
        e.write_lp("benchmark", body, Precision::Nanosecond, opts).map(|_| ()).map_err(|e| e.to_string())
    })?;
    engine.close()?;
    drop(engine);

    // Over HTTP, to a server on a fresh folder.
    let dir = tempfile::tempdir()?;
    let engine = Engine::builder(dir.path()).compaction(false).open()?;
    let state = AppState::new(engine.clone(), AdminToken::from_token(TOKEN), 64 << 20);
    let server = BackgroundServer::start(state, "127.0.0.1:0".parse()?)?;
    let addr = server.addr();
    let bodies: Arc<Vec<Vec<u8>>> = if args.gzip {
        Arc::new(
            batches
                .iter()
                .map(|b| {
                    use std::io::Write;
                    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                    enc.write_all(b).and_then(|_| enc.finish())
                })
                .collect::<Result<_, _>>()?,
        )
    } else {
        batches.clone()
    };
    let url = format!(
        "http://{addr}/api/v3/write_lp?db=benchmark&precision=nanosecond&accept_partial=false&no_sync={}",
        args.no_sync
    );
    // One keep-alive client per thread, made before the clock starts.
    let clients: Arc<Vec<reqwest::blocking::Client>> =
        Arc::new((0..args.clients).map(|_| reqwest::blocking::Client::new()).collect());
    let slot = Arc::new(AtomicUsize::new(0));
    thread_local! {
        static MINE: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
    }
    let gzip = args.gzip;
    let over_http = parallel(args.clients, batches.len(), move |i| {
        let me = MINE.with(|m| {
            let id = m.get().unwrap_or_else(|| slot.fetch_add(1, Ordering::Relaxed));
            m.set(Some(id));
            id
        });
        let mut req = clients[me % clients.len()].post(&url).bearer_auth(TOKEN).body(bodies[i].clone());
        if gzip {
            req = req.header("Content-Encoding", "gzip");
        }
        let resp = req.send().map_err(|e| e.to_string())?;
        match resp.status().as_u16() {
            204 => Ok(()),
            s => Err(format!("HTTP {s}: {}", resp.text().unwrap_or_default())),
        }
    })?;
    server.stop()?;
    engine.close()?;

    let mode = if args.no_sync { "no_sync" } else { "fsync (group commit)" };
    println!("writers               {} x {}-line batches, {mode}", args.clients, args.batch);
    println!("in-process write_lp   {:.2} s = {:.0} rows/s", in_process, rows as f64 / in_process);
    println!(
        "HTTP /api/v3/write_lp {:.2} s = {:.0} rows/s{}",
        over_http,
        rows as f64 / over_http,
        if args.gzip { " (gzip bodies)" } else { "" }
    );
    println!("HTTP / in-process     {:.0}%", 100.0 * in_process / over_http);
    Ok(())
}
