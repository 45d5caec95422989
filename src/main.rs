//! The `quipu` command: offline tools over the engine's files and a data
//! generator. (`quipu serve` and the HTTP client commands come with the
//! server.)

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use quipu::tsbs::{self, TsbsConfig};

#[derive(Parser)]
#[command(name = "quipu", version, about = "An embedded time-series storage engine and its tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
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
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
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
