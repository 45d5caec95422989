//! The commands that are clients of a running server: write, query,
//! export, backup, restore.

use std::io::{self, Write};
use std::path::PathBuf;

use super::args::*;
use super::error::CliError;

pub(crate) struct WriteArgs {
    pub(crate) db: String,
    pub(crate) precision: String,
    pub(crate) batch_lines: usize,
    pub(crate) no_partial: bool,
    pub(crate) no_sync: bool,
    pub(crate) file: PathBuf,
}

/// `quipu query`: the answer is streamed to the output as it arrives; a
/// file output is written under a temporary name and renamed when whole.
#[allow(clippy::too_many_arguments)]
pub(crate) fn query(
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

pub(crate) fn write(host: &str, token: Option<&str>, args: WriteArgs) -> Result<(), CliError> {
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

pub(crate) fn export(
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

pub(crate) fn pretty(value: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("(unprintable: {e})"))
}

pub(crate) fn backup(host: &str, token: Option<&str>, what: BackupCommand) -> Result<(), CliError> {
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
        #[cfg(feature = "remote")]
        BackupCommand::Push { name, to, repo: Some(repo), remote, .. } => {
            super::remote_repo::push(&name, &to, &repo, &remote)
        }
        #[cfg(feature = "remote")]
        BackupCommand::Pull { name, from, repo: Some(repo), remote, .. } => {
            super::remote_repo::pull(&name, &from, &repo, &remote)
        }
        #[cfg(feature = "remote")]
        BackupCommand::Push { name, to, repo: None, remote, no_wait, send_aws_credentials } => {
            let how = super::remote_repo::ServerTransfer { no_wait, send_aws_credentials };
            super::remote_repo::server_transfer(&client, quipu::remote::TransferKind::Push, &name, &to, &remote, how)
        }
        #[cfg(feature = "remote")]
        BackupCommand::Pull { name, from, repo: None, remote, no_wait, send_aws_credentials } => {
            let how = super::remote_repo::ServerTransfer { no_wait, send_aws_credentials };
            super::remote_repo::server_transfer(&client, quipu::remote::TransferKind::Pull, &name, &from, &remote, how)
        }
        #[cfg(feature = "remote")]
        BackupCommand::Transfers => {
            println!(
                "{:<26} {:<5} {:<28} {:<10} {:<24} {:>15} REMOTE",
                "ID", "KIND", "BACKUP", "STATUS", "CREATED", "OBJECTS"
            );
            for t in client.transfer_list()? {
                println!(
                    "{:<26} {:<5} {:<28} {:<10} {:<24} {:>15} {}",
                    t.id,
                    t.kind.as_str(),
                    t.backup,
                    t.status.as_str(),
                    t.created_at,
                    format!("{}/{}", t.objects_done, t.objects_total),
                    t.remote
                );
            }
            Ok(())
        }
        #[cfg(feature = "remote")]
        BackupCommand::Transfer { id } => {
            println!("{}", pretty(&client.transfer_get(&id)?));
            Ok(())
        }
        #[cfg(feature = "remote")]
        BackupCommand::CancelTransfer { id } => {
            client.transfer_cancel(&id)?;
            eprintln!("asked transfer {id} to stop");
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
pub(crate) fn wait_with_progress<T>(
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

pub(crate) fn restore(host: &str, token: Option<&str>, what: RestoreCommand) -> Result<(), CliError> {
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
