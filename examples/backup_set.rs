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
//! `restore` opens an engine on a (fresh) data folder and a
//! `BackupService` on the repository, runs one restore and reports how long
//! `start_restore` + `wait_restore` took and each phase (`--offline`: one
//! `restore_into`); `open` times opening a data folder (or only its
//! segments' headers and footers): what `benches/compare/restore.sh` times.
//! `gen-tsbs` and `append-tsbs` build the same kinds of sets from TSBS
//! cpu-only rows (the generator of `quipu gen tsbs`): what
//! `benches/compare/suite.sh` runs on.
//!
//! ```sh
//! cargo run --release --example backup_set -- gen --dir /work/scratch/backup-set/64x16
//! cargo run --release --example backup_set -- gen --dir /tmp/small --files 16 --file-mib 4
//! cargo run --release --example backup_set -- append --dir /tmp/small --percent 1
//! cargo run --release --example backup_set -- backup --dir /tmp/small --repo /tmp/small-repo --mode copy
//! cargo run --release --example backup_set -- restore --dir /tmp/restored --repo /tmp/small-repo --backup NAME
//! cargo run --release --example backup_set -- restore --offline --dir /tmp/built --repo /tmp/small-repo --backup NAME
//! cargo run --release --example backup_set -- gen --dir /tmp/many --files 10000 --rows-per-file 128 --round-days 1000
//! cargo run --release --example backup_set -- gen-tsbs --dir /tmp/tsbs --days 4 --hosts 100
//! cargo run --release --example backup_set -- append-tsbs --dir /tmp/tsbs --hosts 1
//! ```
//!
//! `benches/copy_hot_path.rs` and `benches/restore_hot_path.rs` include this
//! file for [`generate`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, DictionaryArray, Float64Array, Int32Array, StringArray, TimestampNanosecondArray};
use arrow::datatypes::Int32Type;
use arrow::record_batch::RecordBatch;
use clap::{Parser, Subcommand};
use quipu::backup::{
    BackupConfig, BackupRequest, BackupService, BackupStatus, ModeChoice, RestoreHook, RestoreVerify, restore_into,
};
use quipu::clock::ManualClock;
use quipu::segment::SegmentReader;
use quipu::tsbs::{TsbsConfig, TsbsGenerator};
use quipu::{Durability, Engine, Precision, WriteOptions};

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
    let written = write_day_rows(engine, day, day_start_ns, rows)?;
    engine.flush()?;
    engine.compact()?;
    Ok(written)
}

/// [`write_day`] without the flush and the compaction: the rows stay in the
/// buffer, so several days can go into one flush (one compaction then makes
/// one file per day).
pub fn write_day_rows(engine: &Engine, day: u64, day_start_ns: i64, rows: usize) -> quipu::Result<usize> {
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
    generate_rows(dir, files, rows, 1)
}

/// Builds a data folder in `dir` (which must be missing or empty) holding
/// `files` compacted segments of `rows` rows each (rounded up to a multiple
/// of [`HOSTS`]), flushing and compacting once per `round_days` days: one
/// compaction makes one file per day, so a set of many small files does not
/// rewrite the version once per file.
pub fn generate_rows(dir: &Path, files: usize, rows: usize, round_days: usize) -> quipu::Result<SetSummary> {
    let engine = writer(dir, FIRST_DAY_NS + files as i64 * DAY_NS)?;
    if !engine.live_files().is_empty() {
        return Err(quipu::Error::InvalidArgument(format!("{} already holds data", dir.display())));
    }
    let round_days = round_days.max(1);
    for first in (0..files).step_by(round_days) {
        for day in first..(first + round_days).min(files) {
            write_day_rows(&engine, day as u64, FIRST_DAY_NS + day as i64 * DAY_NS, rows)?;
        }
        engine.flush()?;
        engine.compact()?;
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

/// The database `gen-tsbs` writes (table `cpu`), as TSBS names it.
pub const TSBS_DB: &str = "benchmark";
/// Lines per `write_lp` call of `gen-tsbs`.
const TSBS_BATCH_LINES: usize = 10_000;

/// Writes `days` UTC days of TSBS cpu-only rows (`hosts` hosts every
/// `interval`, generator seed `seed`) from `start_ns`, which must be a day
/// boundary, flushing and compacting every `round_days` days: one compacted
/// segment per day. Returns the engine, still open.
fn write_tsbs_days(
    dir: &Path,
    start_ns: i64,
    days: u64,
    hosts: u32,
    interval: Duration,
    seed: u64,
    round_days: u64,
) -> Result<Engine, Box<dyn std::error::Error>> {
    let step = i64::try_from(interval.as_nanos()).map_err(|_| "--interval is too long")?;
    if step <= 0 || DAY_NS % step != 0 {
        return Err(format!("--interval must divide a day, not {interval:?}").into());
    }
    if start_ns.rem_euclid(DAY_NS) != 0 {
        return Err("a TSBS set starts at a UTC day boundary".into());
    }
    let lines_per_day = (DAY_NS / step) as usize * hosts as usize;
    let cfg = TsbsConfig { hosts, duration: Duration::from_secs(86_400 * days), interval, seed, start_ns };
    let mut generator = TsbsGenerator::new(cfg)?;
    let days_i64 = i64::try_from(days).map_err(|_| "too many days")?;
    let engine = writer(dir, start_ns + days_i64 * DAY_NS)?;
    let opts = WriteOptions { accept_partial: false, no_sync: true };
    let mut buf = Vec::with_capacity(TSBS_BATCH_LINES * 400);
    let round_days = round_days.max(1);
    for day in 0..days {
        let mut left = lines_per_day;
        while left > 0 {
            buf.clear();
            let n = generator.next_batch(left.min(TSBS_BATCH_LINES), &mut buf);
            if n == 0 {
                break;
            }
            left -= n;
            engine.write_lp(TSBS_DB, std::str::from_utf8(&buf)?, Precision::Nanosecond, opts)?;
        }
        if (day + 1) % round_days == 0 || day + 1 == days {
            engine.flush()?;
            engine.compact()?;
            eprintln!("{}: {} of {days} days written", dir.display(), day + 1);
        }
    }
    Ok(engine)
}

/// Builds a data folder in `dir` (which must be missing or empty) of `days`
/// compacted segments of TSBS cpu-only rows from 2016-01-01, TSBS's seed 1:
/// the rows `quipu gen tsbs --hosts H --interval I --duration Nd` prints.
pub fn generate_tsbs(
    dir: &Path,
    days: u64,
    hosts: u32,
    interval: Duration,
    round_days: u64,
) -> Result<SetSummary, Box<dyn std::error::Error>> {
    if Engine::builder(dir).background(false).open().map(|e| !e.live_files().is_empty())? {
        return Err(format!("{} already holds data", dir.display()).into());
    }
    let start_ns = TsbsConfig::default().start_ns;
    let engine = write_tsbs_days(dir, start_ns, days, hosts, interval, 1, round_days)?;
    let s = summary(&engine);
    engine.close()?;
    Ok(s)
}

/// Adds one day of TSBS rows of `hosts` hosts (another seed: new values)
/// after the set's last day: one new segment file.
pub fn append_tsbs(dir: &Path, hosts: u32, interval: Duration) -> Result<SetSummary, Box<dyn std::error::Error>> {
    let probe = Engine::builder(dir).background(false).open()?;
    let last = probe.live_files().iter().map(|f| f.meta.time_max).max().ok_or("the set is empty")?;
    drop(probe);
    let day_start = last.div_euclid(DAY_NS) * DAY_NS + DAY_NS;
    let engine = write_tsbs_days(dir, day_start, 1, hosts, interval, 2, 1)?;
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
        /// Rows per file instead of `--file-mib` (for sets of many small files).
        #[arg(long)]
        rows_per_file: Option<usize>,
        /// Days written between two flush + compaction rounds (each round
        /// rewrites the version once).
        #[arg(long, default_value_t = 1)]
        round_days: usize,
    },
    /// Build a data folder of `--days` segments of TSBS cpu-only rows (one
    /// per UTC day; the rows of `quipu gen tsbs` with the same arguments).
    GenTsbs {
        /// The data folder to create (missing or empty).
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 64)]
        days: u64,
        #[arg(long, default_value_t = 700)]
        hosts: u32,
        /// Between two rows of a host; must divide a day.
        #[arg(long, default_value = "10s")]
        interval: String,
        /// Days written between two flush + compaction rounds.
        #[arg(long, default_value_t = 1)]
        round_days: u64,
    },
    /// Add one day (one segment) of TSBS rows of `--hosts` hosts.
    AppendTsbs {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        hosts: u32,
        #[arg(long, default_value = "10s")]
        interval: String,
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
    /// Restore backup `--backup` of `--repo` in-process and report the time
    /// of `BackupService::start_restore` + `wait_restore` and of each phase
    /// (`BackupConfig::restore_hook`); with `--offline`, of `restore_into`.
    Restore {
        /// The engine's data folder (live: opened, missing or empty is
        /// fine, its data is replaced) or, with `--offline`, the new data
        /// folder (missing or empty).
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        repo: PathBuf,
        /// The backup to restore.
        #[arg(long, default_value = "first")]
        backup: String,
        /// auto, link or copy.
        #[arg(long, default_value = "auto")]
        mode: ModeChoice,
        /// auto or full.
        #[arg(long, default_value = "auto")]
        verify: RestoreVerify,
        /// Files staged at once by the live restore (the service's pool).
        #[arg(long, default_value_t = BackupConfig::default().copy_threads)]
        threads: usize,
        /// Build a new data folder with `restore_into`, no engine running.
        #[arg(long)]
        offline: bool,
        /// Append `kind,mode,files,bytes,seconds,before,staging,rebuilding,swapping`
        /// to this file (seconds; the phases of a live restore: `before` from
        /// the call of start_restore to the staging hook, `swapping` from
        /// its hook to the return of wait_restore).
        #[arg(long)]
        log: Option<PathBuf>,
    },
    /// Time opening a data folder: `Engine::open` (catalog, version, every
    /// segment's header and footer) or, with `--segments-only`,
    /// `SegmentReader::open` of every segment file on `--threads` threads.
    Open {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        segments_only: bool,
        #[arg(long, default_value_t = BackupConfig::default().copy_threads)]
        threads: usize,
        /// Append `what,files,seconds` to this file.
        #[arg(long)]
        log: Option<PathBuf>,
    },
    /// A probe of ways to copy (and hash) files, for finding where a copy-mode
    /// restore's time goes: copies every file of `--from` into `--to` (a new
    /// folder) on `--threads` threads, fsyncing each file, and prints the time.
    CopyProbe {
        #[arg(long)]
        from: PathBuf,
        #[arg(long)]
        to: PathBuf,
        /// read-write-hash (what a copy-mode restore does: read 1 MiB, hash
        /// it, write it), read-write (the same without the hash),
        /// copy-range (`io::copy`, which uses copy_file_range: a backup's
        /// copy), copy-range-mmap-hash (copy_file_range, then hash the source
        /// through a memory map).
        #[arg(long)]
        how: CopyHow,
        #[arg(long, default_value_t = BackupConfig::default().copy_threads)]
        threads: usize,
        /// Buffer of the read-write ways.
        #[arg(long, default_value_t = 1024)]
        chunk_kib: usize,
    },
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum CopyHow {
    ReadWriteHash,
    ReadWrite,
    CopyRange,
    CopyRangeMmapHash,
}

/// One file copied the `how` way, fsynced.
fn copy_one(from: &Path, to: &Path, how: CopyHow, chunk: usize) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let mut src = std::fs::File::open(from)?;
    let mut dst = std::fs::OpenOptions::new().write(true).create_new(true).open(to)?;
    match how {
        CopyHow::ReadWriteHash | CopyHow::ReadWrite => {
            let mut hasher = blake3::Hasher::new();
            let mut buf = vec![0u8; chunk];
            loop {
                let n = src.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                if matches!(how, CopyHow::ReadWriteHash) {
                    hasher.update(&buf[..n]);
                }
                dst.write_all(&buf[..n])?;
            }
            std::hint::black_box(hasher.finalize());
        }
        CopyHow::CopyRange | CopyHow::CopyRangeMmapHash => {
            std::io::copy(&mut src, &mut dst)?;
            if matches!(how, CopyHow::CopyRangeMmapHash) {
                // SAFETY: a read-only map of a file nobody writes while we hash it.
                let map = unsafe { memmap2::Mmap::map(&src)? };
                std::hint::black_box(blake3::Hasher::new().update(&map).finalize());
            }
        }
    }
    dst.sync_all()
}

fn copy_probe(from: &Path, to: &Path, how: CopyHow, threads: usize, chunk: usize) -> std::io::Result<(usize, u64)> {
    use rayon::prelude::*;
    std::fs::create_dir(to)?;
    let mut files = Vec::new();
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            files.push((entry.path(), entry.metadata()?.len()));
        }
    }
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads.max(1)).build().map_err(std::io::Error::other)?;
    pool.install(|| {
        files
            .par_iter()
            .try_for_each(|(path, _)| copy_one(path, &to.join(path.file_name().unwrap_or_default()), how, chunk))
    })?;
    std::fs::File::open(to)?.sync_all()?;
    Ok((files.len(), files.iter().map(|(_, n)| n).sum()))
}

fn append_line(log: &Path, line: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    writeln!(f, "{line}")
}

/// Phase name and when the restore entered it.
type PhaseTimes = Arc<Mutex<Vec<(String, Instant)>>>;

/// One live restore: start_restore + wait_restore on an engine opened on
/// `dir`; returns the log line.
fn restore_live(
    dir: &Path,
    repo: &Path,
    backup: &str,
    mode: ModeChoice,
    verify: RestoreVerify,
    threads: usize,
) -> Result<String, Box<dyn std::error::Error>> {
    let engine = Engine::builder(dir).background(false).open()?;
    let phases: PhaseTimes = Arc::default();
    let seen = phases.clone();
    let hook = RestoreHook(Arc::new(move |_: &str, phase: &str| {
        seen.lock().unwrap_or_else(|p| p.into_inner()).push((phase.to_string(), Instant::now()));
    }));
    let config = BackupConfig { mode, copy_threads: threads, restore_hook: Some(hook), ..BackupConfig::default() };
    let service = BackupService::open(engine.clone(), repo, config)?;
    let start = Instant::now();
    let id = service.start_restore(backup, verify)?;
    let info = service.wait_restore(&id)?;
    let end = Instant::now();
    if info.status != BackupStatus::Completed {
        return Err(format!("restore {id} {}: {}", info.status.as_str(), info.error.unwrap_or_default()).into());
    }
    let live = engine.live_files();
    let live_bytes: u64 = live.iter().map(|f| f.meta.size).sum();
    if live.len() as u64 != info.total_files || live_bytes != info.total_size_bytes {
        return Err(format!(
            "restored {} files, {live_bytes} bytes; the backup has {} files, {} bytes",
            live.len(),
            info.total_files,
            info.total_size_bytes
        )
        .into());
    }
    let phases = phases.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let at = |name: &str| phases.iter().find(|(p, _)| p == name).map(|(_, t)| *t);
    let between = |a: Option<Instant>, b: Option<Instant>| match (a, b) {
        (Some(a), Some(b)) => format!("{:.6}", b.duration_since(a).as_secs_f64()),
        _ => String::new(),
    };
    let (staging, rebuilding, swapping) = (at("staging"), at("rebuilding"), at("swapping"));
    let secs = end.duration_since(start).as_secs_f64();
    eprintln!(
        "restore {id} of {backup} ({}): {} files, {} bytes, in {:.1} ms (staging {} s, rebuilding {} s, swapping {} s)",
        service.mode().as_str(),
        info.total_files,
        info.total_size_bytes,
        secs * 1e3,
        between(staging, rebuilding),
        between(rebuilding, swapping),
        between(swapping, Some(end)),
    );
    Ok(format!(
        "live,{},{},{},{secs:.6},{},{},{},{}",
        service.mode().as_str(),
        info.total_files,
        info.total_size_bytes,
        between(Some(start), staging),
        between(staging, rebuilding),
        between(rebuilding, swapping),
        between(swapping, Some(end)),
    ))
}

/// One offline restore (`restore_into`); returns the log line.
fn restore_offline(
    dir: &Path,
    repo: &Path,
    backup: &str,
    mode: ModeChoice,
    verify: RestoreVerify,
) -> Result<String, Box<dyn std::error::Error>> {
    let start = Instant::now();
    let built = restore_into(repo, backup, dir, mode, verify, &|_| {})?;
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "built {} from {backup} ({}): {} files, {} bytes, in {:.1} ms",
        dir.display(),
        built.mode.as_str(),
        built.files,
        built.bytes,
        secs * 1e3
    );
    Ok(format!("offline,{},{},{},{secs:.6},,,,", built.mode.as_str(), built.files, built.bytes))
}

/// Opens every segment file of data folder `dir` (header and footer
/// checksums) on `threads` threads; returns how many.
pub fn open_segments(dir: &Path, threads: usize) -> quipu::Result<usize> {
    use rayon::prelude::*;
    let segments = dir.join(quipu::tree::SEGMENTS_DIR);
    let io = |e| quipu::Error::Io { path: segments.clone(), source: e };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(&segments).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.extension().is_some_and(|e| e == "seg") {
            paths.push(path);
        }
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .map_err(|e| quipu::Error::Io { path: segments.clone(), source: std::io::Error::other(e) })?;
    pool.install(|| paths.par_iter().try_for_each(|p| SegmentReader::open(p).map(drop)))?;
    Ok(paths.len())
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
        Command::Gen { dir, files, file_mib, rows_per_file, round_days } => {
            let start = Instant::now();
            let s = match rows_per_file {
                Some(rows) => generate_rows(&dir, files, rows, round_days)?,
                None if round_days == 1 => generate(&dir, files, (file_mib * f64::from(1u32 << 20)) as u64)?,
                None => return Err("--round-days needs --rows-per-file".into()),
            };
            print_summary(&dir, &s, start.elapsed().as_secs_f64());
        }
        Command::GenTsbs { dir, days, hosts, interval, round_days } => {
            let start = Instant::now();
            let s = generate_tsbs(&dir, days, hosts, quipu::tsbs::parse_duration(&interval)?, round_days)?;
            print_summary(&dir, &s, start.elapsed().as_secs_f64());
        }
        Command::AppendTsbs { dir, hosts, interval } => {
            let start = Instant::now();
            let s = append_tsbs(&dir, hosts, quipu::tsbs::parse_duration(&interval)?)?;
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
            if info.status != BackupStatus::Completed {
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
        Command::Restore { dir, repo, backup, mode, verify, threads, offline, log } => {
            let line = if offline {
                restore_offline(&dir, &repo, &backup, mode, verify)?
            } else {
                restore_live(&dir, &repo, &backup, mode, verify, threads)?
            };
            if let Some(log) = log {
                append_line(&log, &line)?;
            }
        }
        Command::CopyProbe { from, to, how, threads, chunk_kib } => {
            let start = Instant::now();
            let (files, bytes) = copy_probe(&from, &to, how, threads, chunk_kib << 10)?;
            eprintln!(
                "copied {files} files, {bytes} bytes ({how:?}, {threads} threads) in {:.1} ms",
                start.elapsed().as_secs_f64() * 1e3
            );
        }
        Command::Open { dir, segments_only, threads, log } => {
            let start = Instant::now();
            let (what, files) = if segments_only {
                ("segments", open_segments(&dir, threads)?)
            } else {
                let engine = Engine::builder(&dir).background(false).open()?;
                ("engine", engine.live_files().len())
            };
            let secs = start.elapsed().as_secs_f64();
            eprintln!("opened {} ({what}): {files} segment files in {:.1} ms", dir.display(), secs * 1e3);
            if let Some(log) = log {
                append_line(&log, &format!("{what},{files},{secs:.6}"))?;
            }
        }
    }
    Ok(())
}
