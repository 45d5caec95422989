//! The `quipu` command: `serve` (the InfluxDB 3 HTTP API over an engine),
//! offline tools over the engine's files, and a data generator.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
#[cfg(feature = "server")]
use std::sync::Arc;

use clap::{Parser, Subcommand};
#[cfg(feature = "server")]
use quipu::clock::SystemClock;
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
    Serve(ServeArgs),
    /// Start, list, show, cancel, delete and verify backups on a running server.
    #[cfg(feature = "client")]
    Backup {
        #[command(subcommand)]
        what: BackupCommand,
    },
    /// Restore a backup on a running server (start, status, list, cancel),
    /// or build a new data folder from a repository with no server running
    /// (`quipu restore --from-repo DIR --backup NAME --into NEW_DATA_DIR`).
    #[command(args_conflicts_with_subcommands = true)]
    Restore {
        #[command(subcommand)]
        what: Option<RestoreCommand>,
        #[command(flatten)]
        offline: OfflineRestoreArgs,
    },
    /// Offline tools for a backup repository.
    Repo {
        #[command(subcommand)]
        what: RepoCommand,
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
    /// Run a SQL query on a running server and print the result
    /// (`--format pretty` by default; json, jsonl, csv, parquet).
    #[cfg(feature = "client")]
    Query {
        /// The database.
        #[arg(long, short = 'd')]
        db: String,
        /// Output format: pretty, json, jsonl, csv or parquet.
        #[arg(long, default_value = "pretty")]
        format: String,
        /// Values for `$name` placeholders, as a JSON object: '{"host": "h1"}'.
        #[arg(long)]
        params: Option<String>,
        /// Write the result to this file instead of stdout.
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
        /// Read the query from this file (`-` for stdin) instead of the argument.
        #[arg(long, short = 'f', conflicts_with = "sql")]
        file: Option<PathBuf>,
        /// The SQL query.
        #[arg(required_unless_present = "file")]
        sql: Option<String>,
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

#[cfg(feature = "client")]
#[derive(Subcommand)]
enum BackupCommand {
    /// Start a backup (full unless --incremental).
    Create {
        /// The name; default a UTC timestamp like 20261123T101530.123Z.
        #[arg(long)]
        name: Option<String>,
        /// Replace a completed backup of the same name.
        #[arg(long)]
        force: bool,
        /// Record the backup as following another (still a full listing).
        #[arg(long)]
        incremental: bool,
        /// The backup an incremental one follows; default the newest completed.
        #[arg(long, requires = "incremental")]
        parent: Option<String>,
        /// Wait for the backup to finish, with a progress bar.
        #[arg(long)]
        wait: bool,
    },
    /// List every backup.
    List,
    /// Show one backup as JSON.
    Show { name: String },
    /// Delete a backup (objects no other backup uses are then removed).
    Delete { name: String },
    /// Cancel a running backup.
    Cancel { name: String },
    /// Re-hash every object of a backup on the server.
    Verify { name: String },
}

#[derive(Subcommand)]
enum RestoreCommand {
    /// Roll the server's data back to a completed backup, in place: writes
    /// made after that backup are gone afterwards.
    #[cfg(feature = "client")]
    Start {
        /// The backup to restore.
        backup: String,
        /// Wait for the restore to finish, with a progress bar.
        #[arg(long)]
        wait: bool,
        /// auto: copies hash every byte, links check sizes and segment
        /// checksums; full: hash every byte in both modes.
        #[arg(long, default_value = "auto")]
        verify: quipu::backup::RestoreVerify,
    },
    /// Show one restore as JSON.
    #[cfg(feature = "client")]
    Status { id: String },
    /// List every restore, newest first.
    #[cfg(feature = "client")]
    List,
    /// Cancel a running restore (before its swap; the data stays as it is).
    #[cfg(feature = "client")]
    Cancel { id: String },
}

/// `quipu restore --from-repo DIR --backup NAME --into DIR`.
#[derive(clap::Args)]
struct OfflineRestoreArgs {
    /// The backup repository.
    #[arg(long, requires_all = ["backup", "into"])]
    from_repo: Option<PathBuf>,
    /// The backup to restore.
    #[arg(long, requires = "from_repo")]
    backup: Option<String>,
    /// The new data folder (must not exist, or be empty).
    #[arg(long, requires = "from_repo")]
    into: Option<PathBuf>,
    /// auto (link on the repository's filesystem, else copy), link or copy.
    #[arg(long, default_value = "auto")]
    mode: quipu::backup::ModeChoice,
    /// auto or full (see `quipu restore start --help`).
    #[arg(long, default_value = "auto")]
    verify: quipu::backup::RestoreVerify,
}

#[derive(Subcommand)]
enum RepoCommand {
    /// Check a repository: every manifest readable and every object it lists
    /// present with the right size; with --read-data, re-hash every object.
    Check {
        /// The repository folder.
        dir: PathBuf,
        /// Re-hash every object (reads all data).
        #[arg(long)]
        read_data: bool,
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
#[derive(clap::Args)]
struct ServeArgs {
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
    /// Most memory the write buffer may hold, in bytes. A write that alone
    /// needs more is refused with 413 (split it); one arriving while the
    /// buffer is full and flushes catch up, with 503 and Retry-After. Either
    /// is refused before it is logged.
    #[arg(long, default_value_t = 512 << 20)]
    max_buffer_bytes: usize,
    /// Memory compaction may use for its merges, in bytes. Compaction
    /// streams block by block, so this bounds it however much data a window
    /// holds; more lets it merge several windows at once.
    #[arg(long, default_value_t = quipu::tree::compact::DEFAULT_MEMORY)]
    compaction_memory: usize,
    /// Flush buffered writes to a segment file once the oldest is this old.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    flush_age: std::time::Duration,
    /// Compact flushed files into 24h windows (what export reads) once
    /// the oldest has waited this long, or as soon as 8 wait for one table's window.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    compact_age: std::time::Duration,
    /// The backup repository (created if missing). Default: `<data-dir>-backups` beside the data folder.
    #[arg(long, conflicts_with = "no_backup")]
    backup_dir: Option<PathBuf>,
    /// Serve without a backup repository: the backup endpoints answer 503.
    #[arg(long)]
    no_backup: bool,
    /// How backups put segment files into the repository: auto (link on
    /// the data's filesystem, else copy), link or copy.
    #[arg(long, default_value = "auto")]
    backup_mode: quipu::backup::ModeChoice,
    /// Keep up to this many bytes of exported Parquet in
    /// `<data-dir>/export/`, so that a window exported again is streamed
    /// from a file (0 turns it off).
    #[arg(long, default_value_t = 1 << 30)]
    export_cache_bytes: u64,
    /// Convert each window into the export cache as soon as it is
    /// compacted, so that its first export is streamed from a file too
    /// (costs the compacting thread about a tenth more work; `false` leaves
    /// the conversion to the first export).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    export_warm: bool,
    /// At most this many columns per table, `time` included (as InfluxDB
    /// 3's option of this name): a line that would add more is rejected
    /// with 400, the other lines of the body are written as usual.
    #[arg(long, default_value_t = quipu::catalog::DEFAULT_COLUMNS_PER_TABLE as u64, value_parser = clap::value_parser!(u64).range(2..))]
    num_total_columns_per_table_limit: u64,
    /// At most this many tables per database (InfluxDB 3's
    /// `--num-table-limit` counts them across databases): a line that would
    /// create one more is rejected with 400, the other lines of the body are
    /// written as usual.
    #[arg(long, default_value_t = quipu::catalog::DEFAULT_TABLES_PER_DATABASE as u64, value_parser = clap::value_parser!(u64).range(1..))]
    num_tables_per_database_limit: u64,
    /// Keep at most this many segment files mapped in memory; the least
    /// recently read are mapped again on their next read. Stay well under
    /// the kernel's `vm.max_map_count` (65,530 by default).
    #[arg(long, default_value_t = quipu::segment::maps::DEFAULT_MAX_MAPPED_SEGMENTS)]
    max_mapped_segments: usize,
    /// Memory one SQL query may reserve (sort buffers, hash tables,
    /// aggregate state); past it a sort or grouping spills to disk, and a
    /// query that still needs more fails with 400.
    #[arg(long, default_value_t = quipu::sql::DEFAULT_QUERY_MEMORY_BYTES)]
    query_memory_bytes: usize,
    /// Memory all running SQL queries together may reserve; a query refused
    /// memory because the others hold it fails with 503 and Retry-After.
    #[arg(long, default_value_t = quipu::sql::DEFAULT_QUERY_MEMORY_POOL_BYTES)]
    query_memory_pool_bytes: usize,
    /// How long a SQL query may run, to its last row (0s: no limit): it is
    /// stopped then, with 400 before its first row or a cut-off response after.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    query_timeout: std::time::Duration,
    /// Where queries spill (a temporary folder inside it). Default: the OS temp folder.
    #[arg(long)]
    query_spill_dir: Option<PathBuf>,
    /// Bytes of spill files all queries together may hold (0 turns spilling off).
    #[arg(long, default_value_t = quipu::sql::DEFAULT_QUERY_SPILL_BYTES)]
    query_spill_bytes: u64,
    /// Most client connections open at once; past it new ones wait in the
    /// listen backlog. Default: the open-file limit (raised to its hard
    /// limit at start) less 128 descriptors kept for the engine's own files
    /// (half the limit if smaller), at most 4096. A value that would eat
    /// into that reserve is refused.
    #[arg(long)]
    max_connections: Option<usize>,
    /// Close a connection that takes longer than this to send a request's
    /// headers, counted from when it connects or from its previous answer
    /// (so this is also the idle keep-alive timeout).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    header_read_timeout: std::time::Duration,
    /// On SIGTERM or SIGINT, wait at most this long for requests in flight
    /// (a slow client's streaming query included), then drop their
    /// connections and close the engine.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    shutdown_timeout: std::time::Duration,
}

/// `<data-dir>-backups`, beside the data folder.
#[cfg(feature = "server")]
fn default_backup_dir(data_dir: &std::path::Path) -> PathBuf {
    let mut name = data_dir.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "quipu-data".into());
    name.push("-backups");
    data_dir.with_file_name(name)
}

#[cfg(feature = "server")]
fn serve(args: ServeArgs) -> Result<(), CliError> {
    use quipu::server::{AppState, resolve_admin_token};

    let query_limits = quipu::sql::QueryLimits {
        memory_bytes: args.query_memory_bytes,
        memory_pool_bytes: args.query_memory_pool_bytes,
        timeout: Some(args.query_timeout).filter(|t| !t.is_zero()),
        spill_dir: args.query_spill_dir.clone(),
        spill_bytes: args.query_spill_bytes,
    };
    let backup_dir =
        if args.no_backup { None } else { Some(args.backup_dir.unwrap_or_else(|| default_backup_dir(&args.data_dir))) };
    let ServeArgs {
        data_dir,
        http_bind: bind,
        admin_token_file: token_file,
        max_body_bytes,
        max_buffer_bytes,
        compaction_memory,
        flush_age,
        compact_age,
        backup_mode,
        export_cache_bytes,
        export_warm,
        num_total_columns_per_table_limit,
        num_tables_per_database_limit,
        max_mapped_segments,
        max_connections,
        header_read_timeout,
        shutdown_timeout,
        ..
    } = args;
    quipu::segment::maps::set_max_mapped_segments(max_mapped_segments);
    quipu::server::raise_open_file_limit();
    let allowed = quipu::server::max_connections_allowed();
    if let (Some(n), Some(allowed)) = (max_connections, allowed)
        && n > allowed
    {
        return Err(CliError::Usage(format!(
            "--max-connections {n} leaves the engine too few of the open-file limit's descriptors: \
             at most {allowed} here (raise `ulimit -n` for more)"
        )));
    }
    let limits = quipu::server::ConnectionLimits {
        max_connections: max_connections.unwrap_or_else(quipu::server::default_max_connections),
        header_read_timeout,
        shutdown_timeout,
    };
    let export_cache =
        Arc::new(quipu::export::cache::ExportCache::open(&data_dir, export_cache_bytes, Arc::new(SystemClock)));
    let engine = quipu::Engine::builder(&data_dir)
        .on_install(export_cache.hook(export_warm))
        .flush_age(flush_age)
        .max_buffer_bytes(max_buffer_bytes)
        .compaction_memory(compaction_memory)
        .compact_after_age(compact_age)
        .columns_per_table(usize::try_from(num_total_columns_per_table_limit).unwrap_or(usize::MAX))
        .tables_per_database(usize::try_from(num_tables_per_database_limit).unwrap_or(usize::MAX))
        .open()?;
    let env_token = std::env::var("QUIPU_ADMIN_TOKEN").ok();
    let (admin_token, generated) = resolve_admin_token(&data_dir, env_token, token_file.as_deref())?;
    if let Some(token) = generated {
        // Shown once: only its hash is stored.
        eprintln!("Generated an admin token (shown only now; only its hash is stored in {}):", data_dir.display());
        println!("{token}");
    }
    let query_runtime = quipu::sql::QueryRuntime::new(query_limits)?;
    let mut state = AppState::new(engine.clone(), admin_token, max_body_bytes)
        .with_query_runtime(query_runtime)
        .with_export_cache(export_cache);
    let backups = match backup_dir {
        Some(dir) => {
            let config = quipu::backup::BackupConfig { mode: backup_mode, ..Default::default() };
            let service = quipu::backup::BackupService::open(engine.clone(), &dir, config)
                .map_err(|source| CliError::Repository { dir: dir.clone(), source })?;
            tracing::info!(repo = %dir.display(), mode = service.mode().as_str(), "backups enabled");
            state = state.with_backups(service.clone());
            Some(service)
        }
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::io("cannot start the async runtime", e))?;
    let result = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .map_err(|source| quipu::server::ServerError::Bind { addr: bind, source })?;
        quipu::server::serve_listener_with(listener, state, limits, shutdown_signal()).await
    });
    // In-flight requests have finished (or were dropped at the shutdown
    // timeout); running backups stop (their records say cancelled), then the
    // buffer becomes durable as segments.
    if let Some(backups) = backups {
        backups.shutdown();
    }
    let closed = engine.close();
    // A dropped query's blocking task may still be computing: it is not
    // waited for (dropping the runtime would wait without bound).
    runtime.shutdown_timeout(shutdown_timeout);
    result?;
    Ok(closed?)
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
/// `quipu query`: the answer is streamed to the output as it arrives; a
/// file output is written under a temporary name and renamed when whole.
#[cfg(feature = "client")]
#[allow(clippy::too_many_arguments)]
fn query(
    host: &str,
    token: Option<&str>,
    db: &str,
    format: &str,
    params: Option<&str>,
    output: Option<PathBuf>,
    file: Option<PathBuf>,
    sql: Option<String>,
) -> Result<(), CliError> {
    use quipu::client::Client;
    use std::io::Read;
    let sql = match (sql, file) {
        (Some(sql), _) => sql,
        (None, Some(path)) if path.as_os_str() == "-" => {
            let mut text = String::new();
            io::stdin().read_to_string(&mut text).map_err(|e| CliError::io("cannot read the query from stdin", e))?;
            text
        }
        (None, Some(path)) => std::fs::read_to_string(&path)
            .map_err(|e| CliError::io(format!("cannot read the query from {}", path.display()), e))?,
        (None, None) => return Err(CliError::Usage("give the query as an argument or with --file".into())),
    };
    let params: Option<serde_json::Value> = match params {
        None => None,
        Some(text) => {
            Some(serde_json::from_str(text).map_err(|e| CliError::Usage(format!("--params is not valid JSON: {e}")))?)
        }
    };
    if !matches!(format, "pretty" | "json" | "jsonl" | "json_lines" | "csv" | "parquet") {
        return Err(CliError::Usage(format!(
            "invalid --format {format:?}: expected pretty, json, jsonl, csv or parquet"
        )));
    }
    let client = Client::new(host, token)?;
    match output {
        None => {
            let stdout = io::stdout();
            let mut out = stdout.lock();
            match client.query_sql(db, &sql, format, params.as_ref(), &mut out) {
                Ok(_) => out.flush().map_err(|e| CliError::io("cannot write to stdout", e)),
                // `quipu query ... | head` closes the pipe early; that is not an error.
                Err(quipu::client::ClientError::Stream { source, .. })
                    if source.kind() == io::ErrorKind::BrokenPipe =>
                {
                    Ok(())
                }
                Err(e) => Err(e.into()),
            }
        }
        Some(path) => {
            let dir = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            let mut tmp = tempfile::NamedTempFile::new_in(&dir)
                .map_err(|e| CliError::io(format!("cannot create a file in {}", dir.display()), e))?;
            let bytes = client.query_sql(db, &sql, format, params.as_ref(), tmp.as_file_mut())?;
            tmp.persist(&path).map_err(|e| CliError::io(format!("cannot write {}", path.display()), e.error))?;
            eprintln!("wrote {bytes} bytes to {}", path.display());
            Ok(())
        }
    }
}

#[cfg(feature = "client")]
fn write(host: &str, token: Option<&str>, args: WriteArgs) -> Result<(), CliError> {
    use quipu::client::{Client, WriteBatchOptions, open_input, progress_bar};

    let client = Client::new(host, token)?;
    let (reader, size) = open_input(&args.file)?;
    let bar = progress_bar(size);
    let opts = WriteBatchOptions {
        batch_lines: args.batch_lines.max(1),
        accept_partial: !args.no_partial,
        no_sync: args.no_sync,
        ..WriteBatchOptions::default()
    };
    let result = client.write_lp(&args.db, &args.precision, reader, &opts, &|n| bar.set_position(n));
    bar.finish_and_clear();
    let report = result?;
    let written = report.lines_sent.saturating_sub(report.rejected.len() as u64);
    eprintln!("wrote {written} lines to {} in {} requests", args.db, report.batches);
    if !report.rejected.is_empty() {
        let at_least = if report.rejected_incomplete { "at least " } else { "" };
        eprintln!("{at_least}{} lines rejected:", report.rejected.len());
        for r in &report.rejected {
            eprintln!("  line {}: {} ({})", r.line, r.error, r.text);
        }
        return Err(CliError::Failed("some lines were rejected".into()));
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
) -> Result<(), CliError> {
    use quipu::client::{Client, progress_bar};

    let client = Client::new(host, token)?;
    let Some(out) = out else {
        let windows = client.export_windows(db, table)?;
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
    let files = result?;
    let bytes: u64 = files.iter().map(|f| f.bytes).sum();
    for f in &files {
        println!("{}", f.path.display());
    }
    eprintln!("exported {} windows of {db}.{table} ({bytes} bytes of Parquet) to {}", files.len(), out.display());
    Ok(())
}

#[cfg(feature = "client")]
fn pretty(value: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("(unprintable: {e})"))
}

#[cfg(feature = "client")]
fn backup(host: &str, token: Option<&str>, what: BackupCommand) -> Result<(), CliError> {
    use quipu::backup::BackupStatus;
    use quipu::client::Client;

    let client = Client::new(host, token)?;
    match what {
        BackupCommand::Create { name, force, incremental, parent, wait } => {
            let started = client.backup_create(name.as_deref(), force, incremental, parent.as_deref())?;
            println!("{}", started.backup_name);
            if !wait {
                return Ok(());
            }
            let info = wait_with_progress(|| {
                let info = client.backup_get(&started.backup_name)?;
                let progress = info.progress.clone();
                Ok(((info.status != BackupStatus::InProgress).then_some(info), progress))
            })?;
            match info.status {
                BackupStatus::Completed => {
                    eprintln!(
                        "backup {} completed: {} files, {} bytes ({} bytes new)",
                        info.name,
                        info.total_files,
                        info.total_size_bytes,
                        info.added_bytes.unwrap_or(0)
                    );
                    Ok(())
                }
                other => Err(CliError::Failed(format!(
                    "backup {} {}: {}",
                    info.name,
                    other.as_str(),
                    info.error.unwrap_or_else(|| "no reason given".into())
                ))),
            }
        }
        BackupCommand::List => {
            let list = client.backup_list()?;
            println!(
                "{:<32} {:<11} {:<11} {:<24} {:>7} {:>14} {:>14}",
                "NAME", "TYPE", "STATUS", "CREATED", "FILES", "BYTES", "UNIQUE"
            );
            for b in list {
                println!(
                    "{:<32} {:<11} {:<11} {:<24} {:>7} {:>14} {:>14}",
                    b.name,
                    b.backup_type.as_str(),
                    b.status.as_str(),
                    b.created_at,
                    b.total_files,
                    b.total_size_bytes,
                    b.unique_bytes.map_or_else(|| "-".into(), |u| u.to_string())
                );
            }
            Ok(())
        }
        BackupCommand::Show { name } => {
            let info = client.backup_get(&name)?;
            println!("{}", pretty(&info));
            Ok(())
        }
        BackupCommand::Delete { name } => {
            let backup_type = client.backup_delete(&name)?;
            eprintln!("deleted {backup_type} backup {name}");
            Ok(())
        }
        BackupCommand::Cancel { name } => {
            client.backup_cancel(&name)?;
            eprintln!("cancelled backup {name}");
            Ok(())
        }
        BackupCommand::Verify { name } => {
            let report = client.backup_verify(&name)?;
            println!("{}", pretty(&report));
            if report.problems.is_empty() {
                eprintln!("backup {name}: {} objects, {} bytes verified", report.objects_checked, report.bytes_checked);
                Ok(())
            } else {
                Err(CliError::Failed(format!("backup {name}: {} objects missing or corrupt", report.problems.len())))
            }
        }
    }
}

/// Polls `look` until it says done, showing `Progress` on a bar: quickly
/// at first (quick jobs end in milliseconds), then every 50 ms.
#[cfg(feature = "client")]
fn wait_with_progress<T>(
    look: impl Fn() -> Result<(Option<T>, Option<quipu::backup::Progress>), CliError>,
) -> Result<T, CliError> {
    let bar = quipu::client::progress_bar(None);
    let mut poll = std::time::Duration::from_millis(5);
    let done = loop {
        let (done, progress) = look()?;
        if let Some(done) = done {
            break done;
        }
        if let Some(p) = &progress {
            if bar.length() != Some(p.bytes_total) {
                bar.set_length(p.bytes_total);
                if let Ok(style) = indicatif::ProgressStyle::with_template(
                    "{elapsed_precise} [{wide_bar}] {bytes}/{total_bytes} {binary_bytes_per_sec} {msg}",
                ) {
                    bar.set_style(style.progress_chars("=> "));
                }
            }
            bar.set_position(p.bytes_done);
            bar.set_message(format!("{} {}/{} files", p.phase, p.files_done, p.files_total));
        }
        std::thread::sleep(poll);
        poll = (poll * 2).min(std::time::Duration::from_millis(50));
    };
    bar.finish_and_clear();
    Ok(done)
}

#[cfg(feature = "client")]
fn restore(host: &str, token: Option<&str>, what: RestoreCommand) -> Result<(), CliError> {
    use quipu::backup::BackupStatus;
    use quipu::client::Client;

    let client = Client::new(host, token)?;
    match what {
        RestoreCommand::Start { backup, wait, verify } => {
            let started = client.restore_start(&backup, verify)?;
            println!("{}", started.restore_id);
            if !wait {
                return Ok(());
            }
            let info = wait_with_progress(|| {
                let info = client.restore_get(&started.restore_id)?;
                let progress = info.progress.clone();
                Ok(((info.status != BackupStatus::InProgress).then_some(info), progress))
            })?;
            match info.status {
                BackupStatus::Completed => {
                    eprintln!(
                        "restore {} of backup {} completed: {} files, {} bytes",
                        info.restore_id, info.backup_name, info.total_files, info.total_size_bytes
                    );
                    Ok(())
                }
                other => Err(CliError::Failed(format!(
                    "restore {} {}: {}",
                    info.restore_id,
                    other.as_str(),
                    info.error.unwrap_or_else(|| "no reason given".into())
                ))),
            }
        }
        RestoreCommand::Status { id } => {
            let info = client.restore_get(&id)?;
            println!("{}", pretty(&info));
            Ok(())
        }
        RestoreCommand::List => {
            let list = client.restore_list()?;
            println!("{:<26} {:<32} {:<11} {:<24} {:>7} {:>14}", "ID", "BACKUP", "STATUS", "CREATED", "FILES", "BYTES");
            for r in list {
                println!(
                    "{:<26} {:<32} {:<11} {:<24} {:>7} {:>14}",
                    r.restore_id,
                    r.backup_name,
                    r.status.as_str(),
                    r.created_at,
                    r.total_files,
                    r.total_size_bytes
                );
            }
            Ok(())
        }
        RestoreCommand::Cancel { id } => {
            client.restore_cancel(&id)?;
            eprintln!("cancelled restore {id}; the data is as it was");
            Ok(())
        }
    }
}

fn restore_offline(args: OfflineRestoreArgs) -> Result<(), CliError> {
    let (Some(repo), Some(backup), Some(into)) = (args.from_repo, args.backup, args.into) else {
        return Err(CliError::Usage(
            "quipu restore needs a subcommand, or --from-repo DIR --backup NAME --into DIR".into(),
        ));
    };
    #[cfg(feature = "client")]
    let bar = quipu::client::progress_bar(None);
    #[cfg(feature = "client")]
    let on_bytes = |n: u64| bar.inc(n);
    #[cfg(not(feature = "client"))]
    let on_bytes = |_: u64| {};
    let built = quipu::backup::restore_into(&repo, &backup, &into, args.mode, args.verify, &on_bytes)?;
    #[cfg(feature = "client")]
    bar.finish_and_clear();
    eprintln!(
        "built {} from backup {}: {} files, {} bytes ({} mode); start it with: quipu serve --data-dir {}",
        into.display(),
        built.backup_name,
        built.files,
        built.bytes,
        built.mode.as_str(),
        into.display()
    );
    Ok(())
}

fn repo_check(dir: &std::path::Path, read_data: bool) -> Result<(), CliError> {
    let repo = quipu::backup::Repository::open(dir)?;
    let report = repo.check(read_data)?;
    for (name, why) in &report.bad_manifests {
        println!("manifest {name}: {why}");
    }
    for (problem, backups) in &report.problems {
        println!("{problem}; used by {}", backups.join(", "));
    }
    let how = if read_data { "re-hashed" } else { "present with the right size" };
    eprintln!(
        "{} manifests, {} objects checked ({how}), {} bytes read, {} unreferenced objects",
        report.manifests, report.objects_checked, report.bytes_checked, report.unreferenced_objects
    );
    if report.is_clean() {
        Ok(())
    } else {
        Err(CliError::Failed(format!(
            "repository {} has {} unreadable manifests and {} bad objects",
            dir.display(),
            report.bad_manifests.len(),
            report.problems.len()
        )))
    }
}

/// What stops a `quipu` command; printed after `error: `.
#[derive(Debug, thiserror::Error)]
enum CliError {
    /// The engine, a repository, an export or a restore.
    #[error(transparent)]
    Engine(#[from] quipu::Error),
    #[cfg(feature = "client")]
    #[error(transparent)]
    Client(#[from] quipu::client::ClientError),
    #[cfg(feature = "server")]
    #[error(transparent)]
    Server(#[from] quipu::server::ServerError),
    #[error(transparent)]
    Generator(#[from] tsbs::GenError),
    /// The backup repository `quipu serve` was given.
    #[cfg(feature = "server")]
    #[error("backup repository {}: {source}", dir.display())]
    Repository { dir: PathBuf, source: quipu::Error },
    /// A local file or stream.
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    /// Arguments that do not go together, or a value that does not parse.
    #[error("{0}")]
    Usage(String),
    /// The command ran and reports a failure: rejected lines, a failed
    /// backup or restore, a damaged repository.
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    fn io(what: impl Into<String>, source: io::Error) -> CliError {
        CliError::Io { what: what.into(), source }
    }

    /// The kind of the I/O error that stopped the command, if one did.
    fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            CliError::Io { source, .. } | CliError::Generator(tsbs::GenError::Io { source, .. }) => Some(source.kind()),
            _ => None,
        }
    }
}

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
        Command::Repo { what: RepoCommand::Check { dir, read_data } } => repo_check(&dir, read_data),
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
