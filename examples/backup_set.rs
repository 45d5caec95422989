//! The data set of the backup benchmarks, and a one-shot backup of it.
//!
//! `gen` builds, deterministically, a data folder holding exactly `--files`
//! compacted segment files of about `--file-mib` MiB each: one table
//! (`backup.sensors`, 32 hosts, 4 float fields that do not compress to
//! nothing) over `--files` consecutive UTC days, flushed and compacted one
//! day at a time (compaction makes one file per table per 24h window).
//! `append` adds one more day holding `--percent` of the set's bytes (the
//! "1% new data" case). `backup` opens the engine and a `BackupService`,
//! runs one full backup and reports how long `start` + `wait` took: what
//! `benches/compare/backup.sh` times against cp, restic and borg.
//!
//! ```sh
//! cargo run --release --example backup_set -- gen --dir /work/scratch/backup-set/64x16
//! cargo run --release --example backup_set -- gen --dir /tmp/small --files 16 --file-mib 4
//! cargo run --release --example backup_set -- append --dir /tmp/small --percent 1
//! cargo run --release --example backup_set -- backup --dir /tmp/small --repo /tmp/small-repo --mode copy
//! ```
//!
//! `benches/copy_hot_path.rs` includes this file for [`generate`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, DictionaryArray, Float64Array, Int32Array, StringArray, TimestampNanosecondArray};
use arrow::datatypes::Int32Type;
use arrow::record_batch::RecordBatch;
use clap::{Parser, Subcommand};
use quipu::backup::{BackupConfig, BackupRequest, BackupService, ModeChoice};
use quipu::clock::ManualClock;
use quipu::{Durability, Engine, WriteOptions};

pub const DB: &str = "backup";
pub const TABLE: &str = "sensors";
pub const HOSTS: usize = 32;
/// 2026-01-01T00:00:00Z: day 0 of every set.
pub const FIRST_DAY_NS: i64 = 1_767_225_600 * 1_000_000_000;
const DAY_NS: i64 = 86_400 * 1_000_000_000;
/// Rows per `write_batch` call.
const BATCH_ROWS: usize = 1 << 16;
/// Rows of the day written to measure bytes per row.
const CALIBRATION_ROWS: usize = 1 << 18;
const FIELDS: [&str; 4] = ["temperature", "pressure", "humidity", "vibration"];

/// splitmix64: small, fast and the same on every platform.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Roughly normal, mean 0, standard deviation 1 (Irwin-Hall of 4).
    fn normal(&mut self) -> f64 {
        (self.unit() + self.unit() + self.unit() + self.unit() - 2.0) * 3f64.sqrt()
    }
}

/// One host's sensors: random walks with noise.
struct Host {
    rng: Rng,
    temperature: f64,
    pressure: f64,
    humidity: f64,
}

impl Host {
    fn new(day: u64, host: usize) -> Self {
        let mut rng = Rng::new(day.wrapping_mul(1_000_003).wrapping_add(host as u64));
        let temperature = 15.0 + 10.0 * rng.unit();
        let pressure = 990.0 + 40.0 * rng.unit();
        let humidity = 30.0 + 40.0 * rng.unit();
        Host { rng, temperature, pressure, humidity }
    }

    fn sample(&mut self) -> [f64; 4] {
        let r = &mut self.rng;
        self.temperature += 0.02 * r.normal();
        self.pressure += 0.01 * r.normal();
        self.humidity = (self.humidity + 0.05 * r.normal()).clamp(0.0, 100.0);
        [
            // A thermometer with two decimals: compresses well.
            (self.temperature * 100.0).round() / 100.0,
            // Full-precision readings with sensor noise: compress poorly.
            self.pressure + 0.3 * r.normal(),
            self.humidity + 0.1 * r.normal(),
            (0.5 * r.normal()).abs(),
        ]
    }
}

/// Writes `rows` rows (rounded up to a multiple of [`HOSTS`]) spread over
/// the UTC day starting at `day_start_ns`, then flushes and compacts: one
/// new compacted segment file.
pub fn write_day(engine: &Engine, day: u64, day_start_ns: i64, rows: usize) -> quipu::Result<usize> {
    let points = rows.div_ceil(HOSTS).max(1);
    let interval = DAY_NS / points as i64;
    let mut hosts: Vec<Host> = (0..HOSTS).map(|h| Host::new(day, h)).collect();
    let names = Arc::new(StringArray::from_iter_values((0..HOSTS).map(|h| format!("host_{h:02}"))));
    let opts = WriteOptions { accept_partial: false, no_sync: true };
    let step = (BATCH_ROWS / HOSTS).max(1);
    let mut k0 = 0;
    while k0 < points {
        let k1 = (k0 + step).min(points);
        let n = (k1 - k0) * HOSTS;
        let mut time = Vec::with_capacity(n);
        let mut keys = Vec::with_capacity(n);
        let mut fields: [Vec<f64>; 4] = std::array::from_fn(|_| Vec::with_capacity(n));
        for k in k0..k1 {
            let t = day_start_ns + k as i64 * interval;
            for (h, host) in hosts.iter_mut().enumerate() {
                time.push(t);
                keys.push(h as i32);
                for (column, v) in fields.iter_mut().zip(host.sample()) {
                    column.push(v);
                }
            }
        }
        let host_col = DictionaryArray::<Int32Type>::try_new(Int32Array::from(keys), names.clone())
            .map_err(|e| quipu::Error::InvalidArgument(e.to_string()))?;
        let mut columns: Vec<(&str, ArrayRef)> =
            vec![("time", Arc::new(TimestampNanosecondArray::from(time))), ("host", Arc::new(host_col))];
        for (name, values) in FIELDS.iter().zip(fields) {
            columns.push((name, Arc::new(Float64Array::from(values))));
        }
        let batch = RecordBatch::try_from_iter(columns).map_err(|e| quipu::Error::InvalidArgument(e.to_string()))?;
        engine.write_batch_with(DB, TABLE, &batch, opts)?;
        k0 = k1;
    }
    engine.flush()?;
    engine.compact()?;
    Ok(points * HOSTS)
}

/// An engine for writing a set: no background work, no WAL fsyncs, a
/// fixed clock (so files are the same bytes on every run).
fn writer(dir: &Path, now_ns: i64) -> quipu::Result<Engine> {
    Engine::builder(dir)
        .background(false)
        .durability(Durability::Buffer)
        .flush_bytes(usize::MAX / 8)
        .clock(Arc::new(ManualClock::new(now_ns)))
        .open()
}

/// Bytes per row of a compacted day, measured on a scratch engine beside `dir`.
fn bytes_per_row(dir: &Path) -> quipu::Result<f64> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| quipu::Error::Io { path: parent.into(), source: e })?;
    let scratch = tempfile::Builder::new()
        .prefix(".backup-set-calibration")
        .tempdir_in(parent)
        .map_err(|e| quipu::Error::Io { path: parent.into(), source: e })?;
    let engine = writer(scratch.path(), FIRST_DAY_NS + DAY_NS)?;
    let rows = write_day(&engine, u64::MAX, FIRST_DAY_NS, CALIBRATION_ROWS)?;
    let bytes: u64 = engine.live_files().iter().map(|f| f.meta.size).sum();
    Ok(bytes as f64 / rows as f64)
}

/// What a generated set holds.
#[derive(Debug, Clone, Copy)]
pub struct SetSummary {
    pub files: usize,
    pub bytes: u64,
    pub min_file: u64,
    pub max_file: u64,
    pub rows: u64,
}

fn summary(engine: &Engine) -> SetSummary {
    let files = engine.live_files();
    let sizes: Vec<u64> = files.iter().map(|f| f.meta.size).collect();
    SetSummary {
        files: sizes.len(),
        bytes: sizes.iter().sum(),
        min_file: sizes.iter().copied().min().unwrap_or(0),
        max_file: sizes.iter().copied().max().unwrap_or(0),
        rows: files.iter().map(|f| f.meta.rows).sum(),
    }
}

/// Builds a data folder in `dir` (which must be missing or empty) holding
/// `files` compacted segments of about `file_bytes` bytes each.
pub fn generate(dir: &Path, files: usize, file_bytes: u64) -> quipu::Result<SetSummary> {
    let rows = (file_bytes as f64 / bytes_per_row(dir)?).round() as usize;
    let engine = writer(dir, FIRST_DAY_NS + files as i64 * DAY_NS)?;
    if !engine.live_files().is_empty() {
        return Err(quipu::Error::InvalidArgument(format!("{} already holds data", dir.display())));
    }
    for day in 0..files {
        write_day(&engine, day as u64, FIRST_DAY_NS + day as i64 * DAY_NS, rows)?;
    }
    let s = summary(&engine);
    engine.close()?;
    Ok(s)
}

/// Adds one day after the last one holding about `percent` % of the set's
/// bytes: one new segment file.
pub fn append(dir: &Path, percent: f64) -> quipu::Result<SetSummary> {
    let bpr = bytes_per_row(dir)?;
    let probe = Engine::builder(dir).background(false).open()?;
    let before = summary(&probe);
    let last = probe.live_files().iter().map(|f| f.meta.time_max).max().unwrap_or(FIRST_DAY_NS - 1);
    drop(probe);
    let day_start = last.div_euclid(DAY_NS) * DAY_NS + DAY_NS;
    let day = ((day_start - FIRST_DAY_NS) / DAY_NS) as u64;
    let engine = writer(dir, day_start + DAY_NS)?;
    let rows = (before.bytes as f64 * percent / 100.0 / bpr).round() as usize;
    write_day(&engine, day, day_start, rows)?;
    let s = summary(&engine);
    engine.close()?;
    Ok(s)
}

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build a data folder of `--files` segments of about `--file-mib` MiB.
    Gen {
        /// The data folder to create (missing or empty).
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 64)]
        files: usize,
        #[arg(long, default_value_t = 16.0)]
        file_mib: f64,
    },
    /// Add one day (one segment) holding `--percent` of the set's bytes.
    Append {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 1.0)]
        percent: f64,
    },
    /// Run one full backup of `--dir` into `--repo` in-process and report
    /// the time of `BackupService::start` + `wait`.
    Backup {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        repo: PathBuf,
        /// auto, link or copy.
        #[arg(long, default_value = "auto")]
        mode: ModeChoice,
        /// Default: generated from the time.
        #[arg(long)]
        name: Option<String>,
        /// Replace a completed backup of the same name.
        #[arg(long)]
        force: bool,
        /// Files copied at once in copy mode.
        #[arg(long, default_value_t = BackupConfig::default().copy_threads)]
        threads: usize,
        /// Hash every byte while copying.
        #[arg(long)]
        rehash: bool,
        /// Only create (open) the repository; run no backup.
        #[arg(long)]
        init_only: bool,
        /// Append `mode,files,bytes,added_bytes,seconds` of the backup to this file.
        #[arg(long)]
        log: Option<PathBuf>,
    },
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1u32 << 20)
}

fn print_summary(dir: &Path, s: &SetSummary, secs: f64) {
    println!(
        "{}: {} segment files, {} bytes ({:.1} MiB; files {:.2}..{:.2} MiB), {} rows, in {secs:.1}s",
        dir.display(),
        s.files,
        s.bytes,
        mib(s.bytes),
        mib(s.min_file),
        mib(s.max_file),
        s.rows
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    match Args::parse().command {
        Command::Gen { dir, files, file_mib } => {
            let start = Instant::now();
            let s = generate(&dir, files, (file_mib * f64::from(1u32 << 20)) as u64)?;
            print_summary(&dir, &s, start.elapsed().as_secs_f64());
        }
        Command::Append { dir, percent } => {
            let start = Instant::now();
            let s = append(&dir, percent)?;
            print_summary(&dir, &s, start.elapsed().as_secs_f64());
        }
        Command::Backup { dir, repo, mode, name, force, threads, rehash, init_only, log } => {
            let engine = Engine::builder(&dir).background(false).open()?;
            let config =
                BackupConfig { mode, copy_threads: threads, rehash_on_copy: rehash, ..BackupConfig::default() };
            let service = BackupService::open(engine.clone(), &repo, config)?;
            if init_only {
                return Ok(());
            }
            let mut request = BackupRequest::full().force(force);
            request.name = name;
            let start = Instant::now();
            let name = service.start(request)?;
            let info = service.wait(&name)?;
            let secs = start.elapsed().as_secs_f64();
            if info.status != quipu::backup::BackupStatus::Completed {
                return Err(
                    format!("backup {name} {}: {}", info.status.as_str(), info.error.unwrap_or_default()).into()
                );
            }
            let added = info.added_bytes.unwrap_or(0);
            eprintln!(
                "backup {name} ({}): {} files, {} bytes, {added} bytes new, in {:.1} ms",
                service.mode().as_str(),
                info.total_files,
                info.total_size_bytes,
                secs * 1e3
            );
            if let Some(log) = log {
                use std::io::Write;
                let mut f = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
                writeln!(
                    f,
                    "{},{},{},{added},{secs:.6}",
                    service.mode().as_str(),
                    info.total_files,
                    info.total_size_bytes
                )?;
            }
        }
    }
    Ok(())
}
