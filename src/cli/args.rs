//! The command line: every command and its arguments (clap).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "quipu", version, about = "An embedded time-series storage engine and its tools")]
pub(crate) struct Cli {
    /// The server, for the client commands.
    #[cfg(feature = "client")]
    #[arg(long, global = true, default_value = quipu::client::DEFAULT_HOST)]
    pub(crate) host: String,
    /// The token for the client commands.
    #[cfg(feature = "client")]
    #[arg(long, global = true, env = "QUIPU_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
pub(crate) enum BackupCommand {
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
    /// Push a backup to a remote repository (`s3://bucket/prefix` or a
    /// folder): only the objects the remote lacks, the manifest last. As a
    /// job of the server (waited for, with a progress bar; the AWS
    /// credentials of this environment are sent along), or with --repo
    /// straight from a repository folder, no server needed.
    #[cfg(feature = "remote")]
    Push {
        /// The backup.
        name: String,
        /// The remote repository.
        #[arg(long)]
        to: String,
        /// Read this repository folder (`quipu serve --backup-dir`) directly
        /// instead of asking the server.
        #[arg(long)]
        repo: Option<PathBuf>,
        /// With the server: start the job and print its id without waiting.
        #[arg(long, conflicts_with = "repo")]
        no_wait: bool,
        /// With the server and an s3:// remote: send this environment's AWS
        /// credentials (AWS_ACCESS_KEY_ID, ...) to the job, which keeps them
        /// in memory only; by default the server uses its own environment's.
        #[arg(long, conflicts_with = "repo")]
        send_aws_credentials: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Pull a backup from a remote repository into the server's repository
    /// (a job, waited for), or with --repo into a repository folder
    /// (created if missing; takes its lock: no server may be using it).
    /// Objects are hashed as they arrive, the manifest goes last.
    #[cfg(feature = "remote")]
    Pull {
        /// The backup.
        name: String,
        /// The remote repository.
        #[arg(long)]
        from: String,
        /// Write into this repository folder directly instead of asking the server.
        #[arg(long)]
        repo: Option<PathBuf>,
        /// With the server: start the job and print its id without waiting.
        #[arg(long, conflicts_with = "repo")]
        no_wait: bool,
        /// With the server and an s3:// remote: send this environment's AWS
        /// credentials (AWS_ACCESS_KEY_ID, ...) to the job, which keeps them
        /// in memory only; by default the server uses its own environment's.
        #[arg(long, conflicts_with = "repo")]
        send_aws_credentials: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// List the server's pushes and pulls, newest first.
    #[cfg(feature = "remote")]
    Transfers,
    /// Show one push or pull as JSON.
    #[cfg(feature = "remote")]
    Transfer { id: String },
    /// Cancel a running push or pull (it leaves no manifest behind).
    #[cfg(feature = "remote")]
    CancelTransfer { id: String },
}

/// How to reach a remote repository. Credentials come from the usual AWS
/// environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`), never from the command line, where other users of
/// the machine could read them.
#[cfg(feature = "remote")]
#[derive(clap::Args, Clone, Default)]
pub(crate) struct RemoteArgs {
    /// The S3 endpoint of an S3-compatible server (`http://127.0.0.1:9000`);
    /// default `AWS_ENDPOINT_URL`, else Amazon S3.
    #[arg(long)]
    pub(crate) s3_endpoint: Option<String>,
    /// The S3 region; default `AWS_REGION`.
    #[arg(long)]
    pub(crate) s3_region: Option<String>,
    /// Trust a remote that ignores conditional creates (If-None-Match: *);
    /// two pushes of one backup name at once could then replace each
    /// other's manifest.
    #[arg(long)]
    pub(crate) accept_unconditional_remote: bool,
}

#[derive(Subcommand)]
pub(crate) enum RestoreCommand {
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

/// `quipu restore --from-repo DIR --backup NAME --into DIR`, or
/// `--from-remote URL` instead of `--from-repo`.
#[derive(clap::Args)]
pub(crate) struct OfflineRestoreArgs {
    /// The backup repository.
    #[arg(long, requires_all = ["backup", "into"], conflicts_with = "from_remote")]
    pub(crate) from_repo: Option<PathBuf>,
    /// A remote repository (`s3://bucket/prefix` or a folder): disaster
    /// recovery on a new machine. The backup is pulled beside the new data
    /// folder, linked into it, and the pulled copy removed.
    #[cfg(feature = "remote")]
    #[arg(long, requires_all = ["backup", "into"])]
    pub(crate) from_remote: Option<String>,
    #[cfg(feature = "remote")]
    #[command(flatten)]
    pub(crate) remote: RemoteArgs,
    /// The backup to restore.
    #[arg(long)]
    pub(crate) backup: Option<String>,
    /// The new data folder (must not exist, or be empty).
    #[arg(long)]
    pub(crate) into: Option<PathBuf>,
    /// auto (link on the repository's filesystem, else copy), link or copy.
    #[arg(long, default_value = "auto")]
    pub(crate) mode: quipu::backup::ModeChoice,
    /// auto or full (see `quipu restore start --help`).
    #[arg(long, default_value = "auto")]
    pub(crate) verify: quipu::backup::RestoreVerify,
}

#[derive(Subcommand)]
pub(crate) enum RepoCommand {
    /// Check a repository: every manifest readable and every object it lists
    /// present with the right size; with --read-data, re-hash every object.
    Check {
        /// The repository folder, or a remote repository (`s3://bucket/prefix`, `file:///path`).
        dir: String,
        /// Re-hash every object (reads all data; a remote's is downloaded, streamed).
        #[arg(long)]
        read_data: bool,
        #[cfg(feature = "remote")]
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// List the backups of a remote repository.
    #[cfg(feature = "remote")]
    List {
        /// The remote repository (`s3://bucket/prefix`, `file:///path`).
        url: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Delete a backup from a remote repository (its manifest; `quipu repo
    /// sweep` reclaims the objects no backup uses any more).
    #[cfg(feature = "remote")]
    Delete {
        /// The remote repository.
        url: String,
        /// The backup.
        name: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Reclaim a remote repository's objects no backup uses, in two phases
    /// a grace period apart: each run deletes what a run at least the grace
    /// period earlier planned and is still unused, then plans anew. Run it
    /// periodically; pushes running meanwhile are safe.
    #[cfg(feature = "remote")]
    Sweep {
        /// The remote repository.
        url: String,
        /// The grace period (`1h`, `30m`); pushes finish their commit well within it.
        #[arg(long, default_value = "1h")]
        grace: humantime::Duration,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

#[derive(Subcommand)]
pub(crate) enum Gen {
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
pub(crate) struct ServeArgs {
    /// The data folder (created if missing).
    #[arg(long, default_value = "./quipu-data")]
    pub(crate) data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8181")]
    pub(crate) http_bind: std::net::SocketAddr,
    /// A file holding the admin token (instead of QUIPU_ADMIN_TOKEN).
    #[arg(long)]
    pub(crate) admin_token_file: Option<PathBuf>,
    /// Largest request body in bytes (before and after gzip).
    #[arg(long, default_value_t = quipu::server::DEFAULT_MAX_BODY_BYTES)]
    pub(crate) max_body_bytes: usize,
    /// Most memory the write buffer may hold, in bytes. A write that alone
    /// needs more is refused with 413 (split it); one arriving while the
    /// buffer is full and flushes catch up, with 503 and Retry-After. Either
    /// is refused before it is logged.
    #[arg(long, default_value_t = 512 << 20)]
    pub(crate) max_buffer_bytes: usize,
    /// Memory compaction may use for its merges, in bytes. Compaction
    /// streams block by block, so this bounds it however much data a window
    /// holds; more lets it merge several windows at once.
    #[arg(long, default_value_t = quipu::tree::compact::DEFAULT_MEMORY)]
    pub(crate) compaction_memory: usize,
    /// Flush buffered writes to a segment file once the oldest is this old.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub(crate) flush_age: std::time::Duration,
    /// Compact flushed files into 24h windows (what export reads) once
    /// the oldest has waited this long, or as soon as 8 wait for one table's window.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub(crate) compact_age: std::time::Duration,
    /// The backup repository (created if missing). Default: `<data-dir>-backups` beside the data folder.
    #[arg(long, conflicts_with = "no_backup")]
    pub(crate) backup_dir: Option<PathBuf>,
    /// Serve without a backup repository: the backup endpoints answer 503.
    #[arg(long)]
    pub(crate) no_backup: bool,
    /// How backups put segment files into the repository: auto (link on
    /// the data's filesystem, else copy), link or copy.
    #[arg(long, default_value = "auto")]
    pub(crate) backup_mode: quipu::backup::ModeChoice,
    /// Keep up to this many bytes of exported Parquet in
    /// `<data-dir>/export/`, so that a window exported again is streamed
    /// from a file (0 turns it off).
    #[arg(long, default_value_t = 1 << 30)]
    pub(crate) export_cache_bytes: u64,
    /// Convert each window into the export cache as soon as it is
    /// compacted, so that its first export is streamed from a file too
    /// (costs the compacting thread about a tenth more work; `false` leaves
    /// the conversion to the first export).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub(crate) export_warm: bool,
    /// At most this many columns per table, `time` included (as InfluxDB
    /// 3's option of this name): a line that would add more is rejected
    /// with 400, the other lines of the body are written as usual.
    #[arg(long, default_value_t = quipu::catalog::DEFAULT_COLUMNS_PER_TABLE as u64, value_parser = clap::value_parser!(u64).range(2..))]
    pub(crate) num_total_columns_per_table_limit: u64,
    /// At most this many tables per database (InfluxDB 3's
    /// `--num-table-limit` counts them across databases): a line that would
    /// create one more is rejected with 400, the other lines of the body are
    /// written as usual.
    #[arg(long, default_value_t = quipu::catalog::DEFAULT_TABLES_PER_DATABASE as u64, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) num_tables_per_database_limit: u64,
    /// Keep at most this many segment files mapped in memory; the least
    /// recently read are mapped again on their next read. Stay well under
    /// the kernel's `vm.max_map_count` (65,530 by default).
    #[arg(long, default_value_t = quipu::segment::maps::DEFAULT_MAX_MAPPED_SEGMENTS)]
    pub(crate) max_mapped_segments: usize,
    /// Memory one SQL query may reserve (sort buffers, hash tables,
    /// aggregate state); past it a sort or grouping spills to disk, and a
    /// query that still needs more fails with 400.
    #[arg(long, default_value_t = quipu::sql::DEFAULT_QUERY_MEMORY_BYTES)]
    pub(crate) query_memory_bytes: usize,
    /// Memory all running SQL queries together may reserve; a query refused
    /// memory because the others hold it fails with 503 and Retry-After.
    #[arg(long, default_value_t = quipu::sql::DEFAULT_QUERY_MEMORY_POOL_BYTES)]
    pub(crate) query_memory_pool_bytes: usize,
    /// How long a SQL query may run, to its last row (0s: no limit): it is
    /// stopped then, with 400 before its first row or a cut-off response after.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub(crate) query_timeout: std::time::Duration,
    /// Where queries spill (a temporary folder inside it). Default: the OS temp folder.
    #[arg(long)]
    pub(crate) query_spill_dir: Option<PathBuf>,
    /// Bytes of spill files all queries together may hold (0 turns spilling off).
    #[arg(long, default_value_t = quipu::sql::DEFAULT_QUERY_SPILL_BYTES)]
    pub(crate) query_spill_bytes: u64,
    /// Most client connections open at once; past it new ones wait in the
    /// listen backlog. Default: the open-file limit (raised to its hard
    /// limit at start) less 128 descriptors kept for the engine's own files
    /// (half the limit if smaller), at most 4096. A value that would eat
    /// into that reserve is refused.
    #[arg(long)]
    pub(crate) max_connections: Option<usize>,
    /// Close a connection that takes longer than this to send a request's
    /// headers, counted from when it connects or from its previous answer
    /// (so this is also the idle keep-alive timeout).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub(crate) header_read_timeout: std::time::Duration,
    /// On SIGTERM or SIGINT, wait at most this long for requests in flight
    /// (a slow client's streaming query included), then drop their
    /// connections and close the engine.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub(crate) shutdown_timeout: std::time::Duration,
}
