//! The offline tools over a repository: restore into a new data folder,
//! check a repository.

use super::args::*;
use super::error::CliError;

pub(crate) fn restore_offline(args: OfflineRestoreArgs) -> Result<(), CliError> {
    #[cfg(feature = "remote")]
    if let (Some(url), Some(backup), Some(into)) = (&args.from_remote, &args.backup, &args.into) {
        let built = super::remote_repo::restore_from_remote(url, backup, into, args.verify, &args.remote)?;
        return report_built(into, &built);
    }
    let (Some(repo), Some(backup), Some(into)) = (args.from_repo, args.backup, args.into) else {
        return Err(CliError::Usage(
            "quipu restore needs a subcommand, or --from-repo DIR (or --from-remote URL) --backup NAME --into DIR"
                .into(),
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
    report_built(&into, &built)
}

fn report_built(into: &std::path::Path, built: &quipu::backup::OfflineRestore) -> Result<(), CliError> {
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

pub(crate) fn repo_check(dir: &std::path::Path, read_data: bool) -> Result<(), CliError> {
    let repo = quipu::backup::Repository::open(dir)?;
    let report = repo.check(read_data)?;
    print_problems(&report.bad_manifests, &report.problems);
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

/// The findings of a repository check, one line each, on stdout.
pub(crate) fn print_problems(
    bad_manifests: &[(String, String)],
    problems: &[(quipu::backup::ObjectProblem, Vec<String>)],
) {
    for (name, why) in bad_manifests {
        println!("manifest {name}: {why}");
    }
    for (problem, backups) in problems {
        println!("{problem}; used by {}", backups.join(", "));
    }
}
