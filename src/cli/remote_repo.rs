//! The commands over remote repositories: push, pull, check, and the
//! disaster-recovery restore from a remote into a new data folder. They
//! read and write repository folders directly; no server is involved.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use quipu::backup::{ModeChoice, Repository, RestoreVerify};
use quipu::remote::{Remote, RemoteOptions, TransferCounters};

use super::args::RemoteArgs;
use super::error::CliError;

fn open(url: &str, args: &RemoteArgs) -> Result<Remote, CliError> {
    open_with(url, args, None)
}

fn open_with(url: &str, args: &RemoteArgs, sweep_grace: Option<std::time::Duration>) -> Result<Remote, CliError> {
    let options = RemoteOptions {
        sweep_grace,
        endpoint: args.s3_endpoint.clone(),
        region: args.s3_region.clone(),
        accept_unconditional: args.accept_unconditional_remote,
        ..RemoteOptions::default()
    };
    Ok(Remote::open(url, options)?)
}

/// True when `target` names a remote repository rather than a folder.
pub(crate) fn is_remote(target: &str) -> bool {
    target.contains("://")
}

/// A progress bar of `total` bytes (when the client's bars are built in),
/// shown from the first bytes on, and the function that advances it.
struct Progress {
    total: Option<u64>,
    #[cfg(feature = "client")]
    bar: std::sync::OnceLock<indicatif::ProgressBar>,
}

impl Progress {
    fn new(total: Option<u64>) -> Progress {
        Progress {
            total,
            #[cfg(feature = "client")]
            bar: std::sync::OnceLock::new(),
        }
    }

    fn add(&self, bytes: u64) {
        self.add_of(bytes, self.total);
    }

    /// Advances a bar of `_total` bytes: a transfer's total is known once
    /// it has read its manifest, before its first bytes.
    fn add_of(&self, _bytes: u64, _total: Option<u64>) {
        #[cfg(feature = "client")]
        self.bar.get_or_init(|| quipu::client::progress_bar(_total)).inc(_bytes);
    }

    /// A bar of the bytes `counters` count.
    fn counted(&self, bytes: u64, counters: &TransferCounters) {
        let total = counters.bytes_total.load(std::sync::atomic::Ordering::Relaxed);
        self.add_of(bytes, Some(total).filter(|&t| t > 0));
    }

    fn done(&self) {
        #[cfg(feature = "client")]
        if let Some(bar) = self.bar.get() {
            bar.finish_and_clear();
        }
    }
}

/// The interrupt flag of a long transfer; nothing raises it yet but a
/// future Ctrl-C handler, so a transfer runs to its end or its error.
fn no_cancel() -> AtomicBool {
    AtomicBool::new(false)
}

// `quipu backup` exists with the client built in.
#[cfg(feature = "client")]
pub(crate) fn push(name: &str, to: &str, repo: &Path, args: &RemoteArgs) -> Result<(), CliError> {
    let local = Repository::open(repo)?;
    let remote = open(to, args)?;
    let progress = Progress::new(None);
    let counters = TransferCounters::default();
    let report = remote.push_counted(&local, name, &counters, &|n| progress.counted(n, &counters), &no_cancel());
    progress.done();
    let report = report?;
    if report.already_there {
        eprintln!("{to} holds backup {name} already; nothing sent");
    } else {
        eprintln!(
            "pushed backup {name} to {to}: {} objects ({} bytes) sent, {} already there",
            report.objects_sent, report.bytes_sent, report.objects_present
        );
    }
    Ok(())
}

pub(crate) fn pull(name: &str, from: &str, repo: &Path, args: &RemoteArgs) -> Result<(), CliError> {
    let remote = open(from, args)?;
    // The remote's backup first: a mistyped name creates no repository.
    if !remote.exists(name)? {
        return Err(
            quipu::Error::from(quipu::remote::RemoteError::NotFound { url: from.into(), name: name.into() }).into()
        );
    }
    let local = Repository::open_or_create(repo, ulid::Ulid::new().0, &now())?;
    let progress = Progress::new(None);
    let counters = TransferCounters::default();
    let report = remote.pull_counted(&local, name, &counters, &|n| progress.counted(n, &counters), &no_cancel());
    progress.done();
    let report = report?;
    if report.already_there {
        eprintln!("{} holds backup {name} already; nothing fetched", repo.display());
    } else {
        eprintln!(
            "pulled backup {name} from {from} into {}: {} objects ({} bytes) fetched, {} already there",
            repo.display(),
            report.objects_fetched,
            report.bytes_fetched,
            report.objects_present
        );
    }
    Ok(())
}

pub(crate) fn check(url: &str, read_data: bool, args: &RemoteArgs) -> Result<(), CliError> {
    let remote = open(url, args)?;
    let progress = Progress::new(None);
    let report = remote.check(None, read_data, &|n| progress.add(n));
    progress.done();
    let report = report?;
    super::offline::print_problems(&report.bad_manifests, &report.problems);
    for (pack, why) in &report.bad_packs {
        println!("pack {pack}: {why}");
    }
    let how = if read_data { "re-hashed" } else { "present with the right size" };
    eprintln!(
        "{} manifests, {} objects checked ({how}), {} bytes of objects",
        report.manifests, report.objects_checked, report.bytes_checked
    );
    if report.is_clean() {
        Ok(())
    } else {
        Err(CliError::Failed(format!(
            "remote repository {url} has {} unreadable manifests, {} bad objects and {} bad packs",
            report.bad_manifests.len(),
            report.problems.len(),
            report.bad_packs.len()
        )))
    }
}

pub(crate) fn list(url: &str, args: &RemoteArgs) -> Result<(), CliError> {
    for name in open(url, args)?.list()? {
        println!("{name}");
    }
    Ok(())
}

pub(crate) fn delete(url: &str, name: &str, args: &RemoteArgs) -> Result<(), CliError> {
    if !open(url, args)?.delete(name)? {
        return Err(
            quipu::Error::from(quipu::remote::RemoteError::NotFound { url: url.into(), name: name.into() }).into()
        );
    }
    eprintln!("deleted backup {name} from {url}; `quipu repo sweep {url}` reclaims its objects");
    Ok(())
}

pub(crate) fn sweep(url: &str, grace: std::time::Duration, args: &RemoteArgs) -> Result<(), CliError> {
    let report = open_with(url, args, Some(grace))?.sweep()?;
    eprintln!(
        "swept {url}: {} objects and {} packs deleted ({} bytes), {} objects and {} packs planned for a sweep after \
         {}, {} plans still in their grace period, {} stale probes deleted",
        report.deleted,
        report.packs_deleted,
        report.bytes_freed,
        report.planned,
        report.packs_planned,
        humantime::format_duration(grace),
        report.pending_plans,
        report.probes_deleted
    );
    if report.stopped_early {
        eprintln!(
            "the sweep stopped after half its grace period (a large plan or a slow store) and planned nothing; run it \
             again to go on"
        );
    }
    if report.packs_unreadable > 0 {
        eprintln!(
            "{} packs have an unreadable index and were left alone; `quipu repo check {url}` names them",
            report.packs_unreadable
        );
    }
    Ok(())
}

/// Disaster recovery: pulls `backup` into a repository beside `into` (so
/// that the restore links rather than copies), builds the data folder from
/// it and removes the pulled repository.
pub(crate) fn restore_from_remote(
    url: &str,
    backup: &str,
    into: &Path,
    verify: RestoreVerify,
    args: &RemoteArgs,
) -> Result<quipu::backup::OfflineRestore, CliError> {
    // Refused before anything is fetched, as `restore_into` would refuse it after.
    quipu::restore::check_restore_target(into)?;
    let parent = match into.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| CliError::io(format!("cannot create {}", parent.display()), e))?;
    let base = into.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "data".into());
    // One name per target: a run cut short (Ctrl-C, a kill) leaves it, and
    // the next run's pull resumes from what it holds.
    let staging = parent.join(format!(".{base}.pulled"));
    let result = (|| {
        pull(backup, url, &staging, args)?;
        let progress = Progress::new(None);
        let built = quipu::backup::restore_into(&staging, backup, into, ModeChoice::Auto, verify, &|n| progress.add(n));
        progress.done();
        Ok(built?)
    })();
    // The data folder holds its own links (or copies) of every file.
    let _ = std::fs::remove_dir_all(&staging);
    result
}

fn now() -> String {
    use quipu::clock::Clock;
    quipu::backup::rfc3339(quipu::clock::SystemClock.now_ns())
}

/// How a push or pull through the server goes.
#[cfg(feature = "client")]
pub(crate) struct ServerTransfer {
    /// Print the job's id and return at once.
    pub(crate) no_wait: bool,
    /// Send this environment's AWS credentials (s3:// remotes only).
    pub(crate) send_aws_credentials: bool,
}

/// A push or pull as a job of the server: started, then (unless
/// `no_wait`) followed with a progress bar to its end.
#[cfg(feature = "client")]
pub(crate) fn server_transfer(
    client: &quipu::client::Client,
    kind: quipu::remote::TransferKind,
    name: &str,
    url: &str,
    args: &RemoteArgs,
    how: ServerTransfer,
) -> Result<(), CliError> {
    use quipu::backup::BackupStatus;
    let env = |var: &str| std::env::var(var).ok().filter(|v| !v.is_empty());
    let credential = |var: &str| if how.send_aws_credentials && url.starts_with("s3://") { env(var) } else { None };
    let target = quipu::client::TransferTarget {
        remote: url.to_string(),
        endpoint: args.s3_endpoint.clone(),
        region: args.s3_region.clone(),
        access_key_id: credential("AWS_ACCESS_KEY_ID"),
        secret_access_key: credential("AWS_SECRET_ACCESS_KEY"),
        session_token: credential("AWS_SESSION_TOKEN"),
        accept_unconditional: args.accept_unconditional_remote,
    };
    let id = client.transfer_start(kind, name, &target)?;
    println!("{id}");
    if how.no_wait {
        return Ok(());
    }
    let verb = match kind {
        quipu::remote::TransferKind::Push => "pushing",
        quipu::remote::TransferKind::Pull => "pulling",
    };
    let info = super::remote::wait_with_progress(|| {
        let info = client.transfer_get(&id)?;
        let progress = quipu::backup::Progress {
            phase: verb.to_string(),
            files_done: info.objects_done,
            files_total: info.objects_total,
            bytes_done: info.bytes_done,
            bytes_total: info.bytes_total,
        };
        Ok(((info.status != BackupStatus::InProgress).then_some(info), Some(progress)))
    })?;
    match info.status {
        BackupStatus::Completed => {
            eprintln!(
                "{} of backup {name} ({url}) completed: {} of {} objects ({} bytes) moved, the rest there already",
                kind.as_str(),
                info.objects_moved.unwrap_or(0),
                info.objects_total,
                info.bytes_moved.unwrap_or(0)
            );
            Ok(())
        }
        other => Err(CliError::Failed(format!(
            "{} of backup {name} {}: {}",
            kind.as_str(),
            other.as_str(),
            info.error.unwrap_or_else(|| "no reason given".into())
        ))),
    }
}
