//! The `quipu` command: `serve` (the InfluxDB 3 HTTP API over an engine),
//! offline tools over the engine's files, and a data generator.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use quipu::tsbs::{self, TsbsConfig};

#[derive(Parser)]
#[command(name = "quipu", version, about = "An embedded time-series storage engine and its tools")]
struct Cli {
    /// The server, for the client commands.
    #[cfg(feature = "client")]
    #[arg(long, global = true, default_value = quipu::client::DEFAULT_HOST)]
    host: String,
    /// The token for the client commands.
    #[cfg(feature = "client")]
    #[arg(long, global = true, env = "QUIPU_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the InfluxDB 3 Enterprise HTTP API (write, export, health, metrics) over a data folder.
    #[cfg(feature = "server")]
    Serve {
        /// The data folder (created if missing).
        #[arg(long, default_value = "./quipu-data")]
        data_dir: PathBuf,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8181")]
        http_bind: std::net::SocketAddr,
        /// A file holding the admin token (instead of QUIPU_ADMIN_TOKEN).
        #[arg(long)]
        admin_token_file: Option<PathBuf>,
        /// Largest request body in bytes (before and after gzip).
        #[arg(long, default_value_t = quipu::server::DEFAULT_MAX_BODY_BYTES)]
        max_body_bytes: usize,
        /// Flush buffered writes to a segment file once the oldest is this old.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        flush_age: std::time::Duration,
        /// Compact flushed files into 24h windows (what export reads) once
        /// the oldest has waited this long, or as soon as 8 are waiting.
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
        compact_age: std::time::Duration,
    },
    /// Write line protocol from a file (or `-` for stdin) to a running server,
    /// in gzip-compressed batches, with a progress bar; reports rejected lines.
    #[cfg(feature = "client")]
    Write {
        /// The database.
        #[arg(long)]
        db: String,
        /// Timestamp precision: auto, second, millisecond, microsecond, nanosecond (or s, ms, us, ns).
        #[arg(long, default_value = "auto")]
        precision: String,
        /// Lines per request.
        #[arg(long, default_value_t = 10_000)]
        batch_lines: usize,
        /// Stop at the first rejected line instead of writing the good ones.
        #[arg(long)]
        no_partial: bool,
        /// Acknowledge before the WAL is fsynced.
        #[arg(long)]
        no_sync: bool,
        /// The line protocol file, or `-` for stdin.
        #[arg(default_value = "-")]
        file: PathBuf,
    },
    /// Download compacted 24h windows of a table from a running server as
    /// Parquet files (`<out>/<table>/<YYYY-MM-DD>.parquet`), or list them.
    #[cfg(feature = "client")]
    Export {
        /// The database.
        #[arg(long)]
        db: String,
        /// The table.
        #[arg(long)]
        table: String,
        /// Where to write the Parquet files (created if missing).
        #[arg(long, required_unless_present = "list")]
        out: Option<PathBuf>,
        /// Only these windows (UTC dates, comma-separated: 2026-01-15,2026-01-16); default all.
        #[arg(long, value_delimiter = ',')]
        windows: Vec<String>,
        /// List the compacted windows instead of downloading them.
        #[arg(long, conflicts_with_all = ["out", "windows"])]
        list: bool,
    },
    /// Generate synthetic data.
    Gen {
        #[command(subcommand)]
        what: Gen,
    },
    /// Describe a segment file or a data folder (read-only).
    Inspect {
        /// A `.seg` file or a data folder.
        path: PathBuf,
    },
}

#[derive(Subcommand)]
enum Gen {
    /// TSBS cpu-only line protocol on stdout, deterministic for a seed.
    Tsbs {
        /// Number of hosts (series).
        #[arg(long, default_value_t = 1)]
        hosts: u32,
        /// How much time to cover, e.g. 1h, 1d, 3d.
        #[arg(long, default_value = "1d")]
        duration: String,
        /// Time between two rows of a host.
        #[arg(long, default_value = "10s")]
        interval: String,
        /// Random seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// First timestamp, RFC3339 (UTC).
        #[arg(long, default_value = "2016-01-01T00:00:00Z")]
        start: String,
    },
}

#[cfg(feature = "server")]
struct ServeArgs {
    data_dir: PathBuf,
    bind: std::net::SocketAddr,
    token_file: Option<PathBuf>,
    max_body_bytes: usize,
    flush_age: std::time::Duration,
    compact_age: std::time::Duration,
}

#[cfg(feature = "server")]
fn serve(args: ServeArgs) -> Result<(), String> {
    use quipu::server::{ServerConfig, resolve_admin_token};

    let ServeArgs { data_dir, bind, token_file, max_body_bytes, flush_age, compact_age } = args;
    let engine = quipu::Engine::builder(&data_dir)
        .flush_age(flush_age)
        .compact_after_age(compact_age)
        .open()
        .map_err(|e| e.to_string())?;
    let env_token = std::env::var("QUIPU_ADMIN_TOKEN").ok();
    let (admin_token, generated) =
        resolve_admin_token(&data_dir, env_token, token_file.as_deref()).map_err(|e| e.to_string())?;
    if let Some(token) = generated {
        // Shown once: only its hash is stored.
        eprintln!("Generated an admin token (shown only now; only its hash is stored in {}):", data_dir.display());
        println!("{token}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
    let config = ServerConfig { max_body_bytes, ..ServerConfig::new(bind, admin_token) };
    let result = runtime.block_on(quipu::server::serve(engine.clone(), config, shutdown_signal()));
    // In-flight requests have finished; make the buffer durable as segments.
    let closed = engine.close();
    result.map_err(|e| e.to_string())?;
    closed.map_err(|e| e.to_string())
}

/// Resolves on SIGINT or SIGTERM.
#[cfg(feature = "server")]
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutting down: finishing requests, flushing the buffer");
}

#[cfg(feature = "client")]
struct WriteArgs {
    db: String,
    precision: String,
    batch_lines: usize,
    no_partial: bool,
    no_sync: bool,
    file: PathBuf,
}

#[cfg(feature = "client")]
fn write(host: &str, token: Option<&str>, args: WriteArgs) -> Result<(), String> {
    use quipu::client::{Client, WriteBatchOptions, open_input, progress_bar};

    let client = Client::new(host, token).map_err(|e| e.to_string())?;
    let (reader, size) = open_input(&args.file).map_err(|e| e.to_string())?;
    let bar = progress_bar(size);
    let opts = WriteBatchOptions {
        batch_lines: args.batch_lines.max(1),
        accept_partial: !args.no_partial,
        no_sync: args.no_sync,
        ..WriteBatchOptions::default()
    };
    let result = client.write_lp(&args.db, &args.precision, reader, &opts, &|n| bar.set_position(n));
    bar.finish_and_clear();
    let report = result.map_err(|e| e.to_string())?;
    let written = report.lines_sent.saturating_sub(report.rejected.len() as u64);
    eprintln!("wrote {written} lines to {} in {} requests", args.db, report.batches);
    if !report.rejected.is_empty() {
        let at_least = if report.rejected_incomplete { "at least " } else { "" };
        eprintln!("{at_least}{} lines rejected:", report.rejected.len());
        for r in &report.rejected {
            eprintln!("  line {}: {} ({})", r.line, r.error, r.text);
        }
        return Err("some lines were rejected".into());
    }
    Ok(())
}

#[cfg(feature = "client")]
fn export(
    host: &str,
    token: Option<&str>,
    db: &str,
    table: &str,
    out: Option<PathBuf>,
    windows: &[String],
) -> Result<(), String> {
    use quipu::client::{Client, progress_bar};

    let client = Client::new(host, token).map_err(|e| e.to_string())?;
    let Some(out) = out else {
        let windows = client.export_windows(db, table).map_err(|e| e.to_string())?;
        if windows.is_empty() {
            eprintln!("{db}.{table} has no compacted window yet");
        }
        for w in windows {
            println!("{}\t{} rows\t{} segment bytes", w.window, w.rows, w.segment_bytes);
        }
        return Ok(());
    };
    let bar = progress_bar(None);
    let result = client.export(db, table, windows, &out, &|n| bar.set_position(n));
    bar.finish_and_clear();
    let files = result.map_err(|e| e.to_string())?;
    let bytes: u64 = files.iter().map(|f| f.bytes).sum();
    for f in &files {
        println!("{}", f.path.display());
    }
    eprintln!("exported {} windows of {db}.{table} ({bytes} bytes of Parquet) to {}", files.len(), out.display());
    Ok(())
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        #[cfg(feature = "client")]
        Command::Export { db, table, out, windows, list: _ } => {
            export(&cli.host, cli.token.as_deref(), &db, &table, out, &windows)
        }
        #[cfg(feature = "client")]
        Command::Write { db, precision, batch_lines, no_partial, no_sync, file } => {
            write(&cli.host, cli.token.as_deref(), WriteArgs { db, precision, batch_lines, no_partial, no_sync, file })
        }
        #[cfg(feature = "server")]
        Command::Serve { data_dir, http_bind, admin_token_file, max_body_bytes, flush_age, compact_age } => {
            serve(ServeArgs {
                data_dir,
                bind: http_bind,
                token_file: admin_token_file,
                max_body_bytes,
                flush_age,
                compact_age,
            })
        }
        Command::Gen { what: Gen::Tsbs { hosts, duration, interval, seed, start } } => {
            let cfg = TsbsConfig {
                hosts,
                duration: tsbs::parse_duration(&duration).map_err(|e| e.to_string())?,
                interval: tsbs::parse_duration(&interval).map_err(|e| e.to_string())?,
                seed,
                start_ns: tsbs::parse_start(&start).map_err(|e| e.to_string())?,
            };
            let stdout = io::stdout();
            let mut out = BufWriter::with_capacity(1 << 20, stdout.lock());
            match tsbs::write_tsbs(&cfg, &mut out)
                .map_err(|e| e.to_string())
                .and_then(|_| out.flush().map_err(|e| e.to_string()))
            {
                Ok(()) => Ok(()),
                // `quipu gen tsbs | head` closes the pipe early; that is not an error.
                Err(e) if e.contains("Broken pipe") => Ok(()),
                Err(e) => Err(e),
            }
        }
        Command::Inspect { path } => {
            let text = if path.is_dir() { quipu::inspect::data_folder(&path) } else { quipu::inspect::segment(&path) };
            print!("{}", text.map_err(|e| e.to_string())?);
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    // RUST_LOG when set and not empty, else info.
    let directives = std::env::var("RUST_LOG").ok().filter(|v| !v.trim().is_empty()).unwrap_or_else(|| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(directives))
        .with_writer(io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
