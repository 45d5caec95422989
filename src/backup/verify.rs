//! Verifying a backup: re-reading its objects against their names.

use super::*;

impl BackupService {
    /// Re-hashes every object of a backup (in parallel) and names each
    /// missing or corrupt one with every backup that uses it.
    pub fn verify(&self, name: &str) -> Result<VerifyReport> {
        if validate_name(name).is_err() {
            return Err(BackupError::NotFound { name: name.into() }.into());
        }
        if lock(&self.inner.state).running.contains_key(name) {
            return Err(BackupError::Running { name: name.into() }.into());
        }
        let repo = &self.inner.repo;
        let (manifest, _) = repo.read_manifest(name)?.ok_or_else(|| BackupError::NotFound { name: name.into() })?;
        let mut objects: Vec<ObjectRef> = manifest.objects().collect();
        objects.sort_by(|a, b| a.blake3.cmp(&b.blake3));
        objects.dedup_by(|a, b| a.blake3 == b.blake3);
        let problems = self.inner.pool.install(|| repo.verify_objects(&objects, true));
        let mut reports = Vec::with_capacity(problems.len());
        if !problems.is_empty() {
            // Unreadable manifests are `check`'s to report; here they name no one.
            let others: Vec<Manifest> = repo
                .manifest_names()?
                .iter()
                .filter_map(|n| repo.read_manifest(n).ok().flatten())
                .map(|(m, _)| m)
                .collect();
            let users = manifest::object_users(&others);
            for problem in problems {
                let backups = users.get(problem.blake3()).map(|(_, names)| names.clone()).unwrap_or_default();
                reports.push(ProblemReport { problem, backups });
            }
        }
        Ok(VerifyReport {
            backup_name: name.into(),
            status: if reports.is_empty() { "ok" } else { "corrupt" }.into(),
            objects_checked: objects.len() as u64,
            bytes_checked: objects.iter().map(|o| o.size).sum(),
            problems: reports,
        })
    }
}
