//! `quipu serve`: the engine, its export cache, backups and the HTTP API,
//! until SIGINT or SIGTERM.

use std::path::PathBuf;
use std::sync::Arc;

use quipu::clock::SystemClock;

use super::args::*;
use super::error::CliError;

/// `<data-dir>-backups`, beside the data folder.
pub(crate) fn default_backup_dir(data_dir: &std::path::Path) -> PathBuf {
    let mut name = data_dir.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "quipu-data".into());
    name.push("-backups");
    data_dir.with_file_name(name)
}

pub(crate) fn serve(args: ServeArgs) -> Result<(), CliError> {
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
            let transfers = quipu::remote::TransferService::open(service.clone())
                .map_err(|source| CliError::Repository { dir: dir.clone(), source })?;
            state = state.with_backups(service.clone()).with_transfers(transfers.clone());
            Some((service, transfers))
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
    // timeout); running transfers and backups stop (their records say
    // cancelled), then the buffer becomes durable as segments.
    if let Some((backups, transfers)) = backups {
        transfers.shutdown();
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
