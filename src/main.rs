//! The `quipu` command: `serve` (the InfluxDB 3 HTTP API over an engine),
//! offline tools over the engine's files, and a data generator.

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use clap::Parser;
use quipu::tsbs::{self, TsbsConfig};

mod cli;

use cli::args::*;
use cli::error::CliError;
use cli::offline::*;
#[cfg(feature = "client")]
use cli::remote::*;
#[cfg(feature = "server")]
use cli::serve::*;

fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        #[cfg(feature = "client")]
        Command::Export { db, table, out, windows, list: _ } => {
            export(&cli.host, cli.token.as_deref(), &db, &table, out, &windows)
        }
        #[cfg(feature = "client")]
        Command::Query { db, format, params, output, file, sql } => {
            query(&cli.host, cli.token.as_deref(), &db, &format, params.as_deref(), output, file, sql)
        }
        #[cfg(feature = "client")]
        Command::Write { db, precision, batch_lines, no_partial, no_sync, file } => {
            write(&cli.host, cli.token.as_deref(), WriteArgs { db, precision, batch_lines, no_partial, no_sync, file })
        }
        #[cfg(feature = "server")]
        Command::Serve(args) => serve(args),
        #[cfg(feature = "client")]
        Command::Backup { what } => backup(&cli.host, cli.token.as_deref(), what),
        #[cfg(feature = "client")]
        Command::Restore { what: Some(what), .. } => restore(&cli.host, cli.token.as_deref(), what),
        Command::Restore { offline, .. } => restore_offline(offline),
        #[cfg(feature = "remote")]
        Command::Repo { what: RepoCommand::Check { dir, read_data, remote } } if cli::remote_repo::is_remote(&dir) => {
            cli::remote_repo::check(&dir, read_data, &remote)
        }
        Command::Repo { what: RepoCommand::Check { dir, read_data, .. } } => repo_check(dir.as_ref(), read_data),
        #[cfg(feature = "remote")]
        Command::Repo { what: RepoCommand::List { url, remote } } => cli::remote_repo::list(&url, &remote),
        #[cfg(feature = "remote")]
        Command::Repo { what: RepoCommand::Delete { url, name, remote } } => {
            cli::remote_repo::delete(&url, &name, &remote)
        }
        #[cfg(feature = "remote")]
        Command::Repo { what: RepoCommand::Sweep { url, grace, remote } } => {
            cli::remote_repo::sweep(&url, grace.into(), &remote)
        }
        Command::Gen { what: Gen::Tsbs { hosts, duration, interval, seed, start } } => {
            let cfg = TsbsConfig {
                hosts,
                duration: tsbs::parse_duration(&duration)?,
                interval: tsbs::parse_duration(&interval)?,
                seed,
                start_ns: tsbs::parse_start(&start)?,
            };
            let stdout = io::stdout();
            let mut out = BufWriter::with_capacity(1 << 20, stdout.lock());
            let written = tsbs::write_tsbs(&cfg, &mut out)
                .map_err(CliError::from)
                .and_then(|_| out.flush().map_err(|e| CliError::io("cannot write line protocol to stdout", e)));
            match written {
                // `quipu gen tsbs | head` closes the pipe early; that is not an error.
                Err(e) if e.io_kind() == Some(io::ErrorKind::BrokenPipe) => Ok(()),
                other => other,
            }
        }
        Command::Inspect { path } => {
            let text = if path.is_dir() { quipu::inspect::data_folder(&path) } else { quipu::inspect::segment(&path) };
            print!("{}", text?);
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
