//! Deleting backups and collecting the objects no manifest references.

use super::*;

impl BackupService {
    /// Removes every object that no manifest and no running job references.
    /// Never runs on a partial picture: an unreadable manifest stops it.
    pub fn collect_garbage(&self) -> Result<repo::Swept> {
        let state = lock(&self.inner.state);
        let mut keep: HashSet<String> = HashSet::new();
        for (manifest, _) in self.inner.repo.manifests()? {
            keep.extend(manifest.objects().map(|o| o.blake3));
        }
        for job in state.running.values() {
            keep.extend(job.objects.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned());
        }
        if let Some(restore) = &state.restore {
            keep.extend(restore.objects.iter().cloned());
        }
        for held in state.holds.values() {
            keep.extend(held.objects.iter().cloned());
        }
        // A pull's objects arrive as temp files until they are whole.
        let quiet = state.running.is_empty() && !state.holds.values().any(|h| h.writes);
        let swept = self.inner.repo.sweep(&keep, quiet)?;
        if swept.objects > 0 {
            tracing::info!(objects = swept.objects, bytes = swept.bytes, "swept unreferenced backup objects");
        }
        Ok(swept)
    }

    /// Deletes a backup (its manifest, or the record of a failed or
    /// cancelled one), then collects garbage. Other backups are untouched.
    pub fn delete(&self, name: &str) -> Result<BackupType> {
        // Names become paths (`manifests/<name>.json`): one that is not a
        // backup name (`../x`) never reaches the file system; no backup has it.
        if validate_name(name).is_err() {
            return Err(BackupError::NotFound { name: name.into() }.into());
        }
        let repo = &self.inner.repo;
        let backup_type = {
            let mut state = lock(&self.inner.state);
            if state.running.contains_key(name) || state.holds.values().any(|h| h.writes && h.name == name) {
                return Err(BackupError::Running { name: name.into() }.into());
            }
            let manifest = match repo.read_manifest(name) {
                Ok(m) => m.map(|(m, _)| m.backup_type),
                // A manifest that no longer decodes can still be deleted.
                Err(Error::Corrupt { .. } | Error::UnsupportedVersion { .. }) => Some(BackupType::Full),
                Err(e) => return Err(e),
            };
            let record = repo.job_records()?.into_iter().find(|r| r.name == name).map(|r| r.backup_type);
            let unrecorded = state.unrecorded_backups.get(name).map(|r| r.backup_type);
            let Some(backup_type) = manifest.or(unrecorded).or(record) else {
                return Err(BackupError::NotFound { name: name.into() }.into());
            };
            repo.delete_manifest(name)?;
            repo.delete_job_record(name)?;
            state.unrecorded_backups.remove(name);
            backup_type
        };
        self.collect_garbage()?;
        Ok(backup_type)
    }
}
