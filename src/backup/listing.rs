//! Listing backups and their status, from manifests, job records and
//! the jobs in memory.

use super::*;

impl BackupService {
    /// One backup, running or finished.
    pub fn get(&self, name: &str) -> Result<BackupInfo> {
        self.list()?
            .into_iter()
            .find(|b| b.name == name)
            .ok_or_else(|| BackupError::NotFound { name: name.into() }.into())
    }

    /// Every backup: running, completed, failed and cancelled, oldest first.
    pub fn list(&self) -> Result<Vec<BackupInfo>> {
        let repo = &self.inner.repo;
        let (running, unrecorded) = {
            let state = lock(&self.inner.state);
            (state.running.values().cloned().collect::<Vec<Arc<Job>>>(), state.unrecorded_backups.clone())
        };
        let mut manifests = Vec::new();
        let mut out: BTreeMap<String, BackupInfo> = BTreeMap::new();
        for name in repo.manifest_names()? {
            match repo.read_manifest(&name) {
                Ok(Some((m, _))) => manifests.push(m),
                Ok(None) => {}
                Err(e) => {
                    let path = repo.dir().join(repo::MANIFESTS_DIR).join(format!("{name}.json"));
                    let modified = std::fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
                    out.insert(name.clone(), unreadable(&name, rfc3339(modified), &e));
                }
            }
        }
        // Bytes only one backup references: what deleting it frees.
        let mut unique: HashMap<&str, u64> = HashMap::new();
        let users = manifest::object_users(&manifests);
        for (object, names) in users.values() {
            if let [only] = names.as_slice() {
                *unique.entry(only.as_str()).or_default() += object.size;
            }
        }
        for m in &manifests {
            out.insert(m.name.clone(), from_manifest(m, unique.get(m.name.as_str()).copied().unwrap_or(0)));
        }
        let mut records = repo.job_records()?;
        records.retain(|r| !unrecorded.contains_key(&r.name));
        records.extend(unrecorded.into_values());
        for record in records {
            if running.iter().any(|j| j.name == record.name) {
                continue;
            }
            match out.get_mut(&record.name) {
                Some(info) if info.status == BackupStatus::Completed => {
                    if record.created_at > info.created_at {
                        info.last_attempt =
                            Some(Attempt { status: record.status, created_at: record.created_at, error: record.error });
                    }
                }
                _ => {
                    out.insert(record.name.clone(), from_record(record));
                }
            }
        }
        for job in running {
            let progress = job.counters.snapshot();
            out.insert(
                job.name.clone(),
                BackupInfo {
                    name: job.name.clone(),
                    backup_type: job.backup_type,
                    status: BackupStatus::InProgress,
                    created_at: job.created_at.clone(),
                    completed_at: None,
                    total_files: progress.files_total,
                    total_size_bytes: progress.bytes_total,
                    progress: Some(progress),
                    error: None,
                    unique_bytes: None,
                    parent: job.parent.as_ref().map(|p| p.name.clone()),
                    mode: job.mode,
                    added_objects: Some(job.counters.added_objects.load(Ordering::Relaxed)),
                    added_bytes: Some(job.counters.added_bytes.load(Ordering::Relaxed)),
                    last_attempt: None,
                },
            );
        }
        let mut list: Vec<BackupInfo> = out.into_values().collect();
        list.sort_by(|a, b| (&a.created_at, &a.name).cmp(&(&b.created_at, &b.name)));
        Ok(list)
    }
}
