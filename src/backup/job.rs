//! Backup jobs: the consistent point, copying or linking objects on the
//! rayon pool, the manifest last, job records, cancel and wait.

use super::*;

/// A backup's consistent point: the pinned version, the catalog as stored,
/// and the manifest entries of the version's files.
pub(super) struct Snapshot {
    pub(super) version: Arc<tree::Version>,
    pub(super) catalog_bytes: Vec<u8>,
    pub(super) catalog_sequence: u64,
    pub(super) files: Vec<ManifestFile>,
}

pub(super) const PHASES: [&str; 4] = ["starting", "copying", "committing", "done"];

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) phase: AtomicU8,
    pub(crate) files_done: AtomicU64,
    pub(crate) files_total: AtomicU64,
    pub(crate) bytes_done: AtomicU64,
    pub(crate) bytes_total: AtomicU64,
    pub(crate) added_objects: AtomicU64,
    pub(crate) added_bytes: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> Progress {
        self.progress(&PHASES)
    }

    pub(crate) fn progress(&self, phases: &[&str]) -> Progress {
        Progress {
            phase: phases.get(usize::from(self.phase.load(Ordering::Relaxed))).unwrap_or(&"done").to_string(),
            files_done: self.files_done.load(Ordering::Relaxed),
            files_total: self.files_total.load(Ordering::Relaxed),
            bytes_done: self.bytes_done.load(Ordering::Relaxed),
            bytes_total: self.bytes_total.load(Ordering::Relaxed),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Job {
    pub(super) name: String,
    pub(super) backup_type: BackupType,
    pub(super) parent: Option<ParentRef>,
    pub(super) created_at: String,
    pub(super) mode: PlaceMode,
    pub(super) cancel: AtomicBool,
    pub(super) cancel_reason: Mutex<Option<String>>,
    pub(super) counters: Counters,
    /// Everything the job will reference, for GC's mark phase.
    pub(super) objects: Mutex<Vec<String>>,
}

/// Objects this process placed whose shard folder may not have been fsynced
/// since. A job must make durable the folder entry of every object its
/// manifest references; an object that was already there needs nothing
/// unless some job of this process placed it and has not synced it yet (it
/// may still be running, or have failed before syncing). Objects from
/// before this process are either referenced by a committed manifest, and
/// so durable, or swept at open.
#[derive(Debug, Default)]
pub(crate) struct UnsyncedObjects(pub(super) Mutex<HashSet<String>>);

impl UnsyncedObjects {
    pub(super) fn set(&self) -> MutexGuard<'_, HashSet<String>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a job referencing `object` must sync its shard folder. An
    /// object about to be placed is registered first, so that another job
    /// seeing it on disk also sees it here until its entry is durable.
    pub(super) fn claim(&self, repo: &Repository, object: &ObjectRef) -> bool {
        if repo.has_object(object) && !self.set().contains(&object.blake3) {
            return false;
        }
        self.set().insert(object.blake3.clone());
        true
    }

    /// After a sync that began once `objects` were on disk.
    pub(super) fn settled<'a>(&self, objects: impl IntoIterator<Item = &'a str>) {
        let mut set = self.set();
        for object in objects {
            set.remove(object);
        }
    }
}

/// How objects move between `repo` and the data folder `data` (its
/// segments folder, which must exist): `choice`, with `Auto` meaning link
/// on one filesystem and copy across two.
pub(crate) fn place_mode(choice: ModeChoice, repo: &Repository, data: &Path) -> Result<PlaceMode> {
    let objects = repo.dir().join(repo::OBJECTS_DIR);
    let segments = data.join(tree::SEGMENTS_DIR);
    let same = same_filesystem(&objects, &segments).map_err(|e| Error::Io { path: objects.clone(), source: e })?;
    match choice {
        ModeChoice::Copy => Ok(PlaceMode::Copy),
        ModeChoice::Auto if !same => Ok(PlaceMode::Copy),
        ModeChoice::Auto => Ok(PlaceMode::Link),
        ModeChoice::Link if same => Ok(PlaceMode::Link),
        ModeChoice::Link => Err(BackupError::CrossDevice { repo: repo.dir().into(), data: data.into() }.into()),
    }
}

/// The threads that place objects (copies wait on the disk, so more than
/// the cores), named `<name>-<i>`; `path` names a failure to start them.
pub(crate) fn placing_pool(threads: usize, name: &'static str, path: &Path) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .thread_name(move |i| format!("{name}-{i}"))
        .build()
        .map_err(|e| Error::Io { path: path.to_path_buf(), source: std::io::Error::other(e) })
}

impl BackupService {
    /// Starts a backup and returns its name once the consistent point is
    /// taken (the buffer flushed, a version pinned); the copying goes on in
    /// the background.
    pub fn start(&self, request: BackupRequest) -> Result<String> {
        if let Some(name) = &request.name {
            validate_name(name)?;
        }
        if request.backup_type == BackupType::Full && request.parent.is_some() {
            return Err(BackupError::InvalidRequest("a full backup has no parent; use type incremental".into()).into());
        }
        let repo = &self.inner.repo;
        let parent = match request.backup_type {
            BackupType::Full => None,
            BackupType::Incremental => Some(self.resolve_parent(request.parent.as_deref())?),
        };
        let now_ns = self.inner.engine.now_ns();
        let job = {
            let mut state = lock(&self.inner.state);
            if state.shutting_down {
                return Err(BackupError::ShuttingDown.into());
            }
            let name = match request.name {
                Some(name) => {
                    if state.running.contains_key(&name) || state.holds.values().any(|h| h.writes && h.name == name) {
                        return Err(BackupError::Running { name }.into());
                    }
                    if !request.force && repo.read_manifest(&name)?.is_some() {
                        return Err(BackupError::Exists { name }.into());
                    }
                    name
                }
                None => {
                    let base = generated_name(now_ns);
                    let mut name = base.clone();
                    let mut n = 1;
                    while state.running.contains_key(&name)
                        || state.holds.values().any(|h| h.writes && h.name == name)
                        || repo.read_manifest(&name)?.is_some()
                    {
                        name = format!("{base}-{n}");
                        n += 1;
                    }
                    name
                }
            };
            let job = Arc::new(Job {
                name: name.clone(),
                backup_type: request.backup_type,
                parent,
                created_at: rfc3339(now_ns),
                mode: self.inner.mode,
                cancel: AtomicBool::new(false),
                cancel_reason: Mutex::new(None),
                counters: Counters::default(),
                objects: Mutex::new(Vec::new()),
            });
            // A retry under the name of a job whose end was never recorded:
            // the new job's records replace that one's.
            state.unrecorded_backups.remove(&name);
            state.running.insert(name, job.clone());
            job
        };
        let record = self.record_of(&job, BackupStatus::InProgress, None);
        let snapshot = repo.write_job_record(&record).and_then(|()| self.consistent_point(&job));
        let snapshot = match snapshot {
            Ok(s) => s,
            Err(e) => {
                self.finish_failed(&job, &e);
                return Err(e);
            }
        };
        let service = self.clone();
        let job_for_thread = job.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("quipu-backup-{}", job.name))
            .spawn(move || service.run(job_for_thread, snapshot));
        match spawned {
            Ok(handle) => {
                let mut state = lock(&self.inner.state);
                state.threads.retain(|t| !t.is_finished());
                state.threads.push(handle);
                Ok(job.name.clone())
            }
            Err(e) => {
                let e = Error::Io { path: repo.dir().into(), source: e };
                self.finish_failed(&job, &e);
                Err(e)
            }
        }
    }

    pub(super) fn resolve_parent(&self, parent: Option<&str>) -> Result<ParentRef> {
        let repo = &self.inner.repo;
        let found =
            match parent {
                Some(name) => {
                    validate_name(name)?;
                    repo.read_manifest(name)?.ok_or_else(|| {
                        BackupError::InvalidRequest(format!("parent backup {name} does not exist or has not completed"))
                    })?
                }
                None => repo.manifests()?.into_iter().max_by(|a, b| a.0.created_at.cmp(&b.0.created_at)).ok_or_else(
                    || BackupError::InvalidRequest("an incremental backup needs a completed backup to follow".into()),
                )?,
            };
        Ok(ParentRef { name: found.0.name, blake3: found.1 })
    }

    /// Flushes the buffer and pins a version: everything acknowledged before
    /// this call is in the pinned files, and the engine's snapshot pairs
    /// them with the catalog that knows every table they hold.
    pub(super) fn consistent_point(&self, job: &Job) -> Result<Snapshot> {
        let engine = &self.inner.engine;
        engine.flush()?;
        let pinned = engine.snapshot();
        let (version, catalog) = (pinned.version().clone(), pinned.catalog().clone());
        let catalog_bytes = catalog.encode();
        let mut files = Vec::with_capacity(version.files.len());
        for f in &version.files {
            let m = &f.meta;
            let db = catalog.database_by_id(m.db_id);
            let table = db.and_then(|d| d.table_by_id(m.table_id));
            let (Some(db), Some(table)) = (db, table) else {
                return Err(Error::Corrupt {
                    path: f.path.clone(),
                    what: format!("table id {}.{} is not in the catalog", m.db_id, m.table_id),
                });
            };
            files.push(ManifestFile {
                path: m.relative_path().to_string_lossy().into_owned(),
                blake3: m.blake3_hex(),
                size: m.size,
                file_id: m.id,
                level: m.level,
                db: db.name.clone(),
                db_id: m.db_id,
                table: table.name.clone(),
                table_id: m.table_id,
                window_start_ns: m.window_start_ns,
                rows: m.rows,
                time_min_ns: m.time_min,
                time_max_ns: m.time_max,
            });
        }
        let catalog_hash = blake3::hash(&catalog_bytes).to_hex().to_string();
        {
            // Under the state lock, so a GC sees either none or all of them.
            let _state = lock(&self.inner.state);
            let mut objects = job.objects.lock().unwrap_or_else(|p| p.into_inner());
            objects.push(catalog_hash);
            objects.extend(files.iter().map(|f| f.blake3.clone()));
        }
        job.counters.files_total.store(files.len() as u64, Ordering::Relaxed);
        job.counters.bytes_total.store(files.iter().map(|f| f.size).sum(), Ordering::Relaxed);
        Ok(Snapshot { version, catalog_bytes, catalog_sequence: catalog.sequence, files })
    }

    pub(super) fn run(&self, job: Arc<Job>, snapshot: Snapshot) {
        let result = self.copy_and_commit(&job, &snapshot);
        let files = snapshot.files.len();
        // Unpins the version: compaction may now delete the files it replaced.
        drop(snapshot);
        match result {
            Ok(()) => {
                let mut state = lock(&self.inner.state);
                state.running.remove(&job.name);
                drop(state);
                self.record_unrecorded_backups();
                self.inner.job_ended.notify_all();
                tracing::info!(backup = %job.name, files, "backup completed");
            }
            Err(e) => self.finish_failed(&job, &e),
        }
    }

    pub(super) fn copy_and_commit(&self, job: &Job, snapshot: &Snapshot) -> Result<()> {
        let Snapshot { version, catalog_bytes, catalog_sequence, files } = snapshot;
        let repo = &self.inner.repo;
        let unsynced = &self.inner.unsynced;
        let counters = &job.counters;
        counters.phase.store(1, Ordering::Relaxed);
        let catalog = ObjectRef::of_bytes(catalog_bytes);
        let mut to_sync = Vec::new();
        if unsynced.claim(repo, &catalog) {
            to_sync.push(catalog.blake3.as_str());
            if repo.put_bytes(&catalog, catalog_bytes)? == repo::Placed::Added {
                counters.added_objects.fetch_add(1, Ordering::Relaxed);
                counters.added_bytes.fetch_add(catalog.size, Ordering::Relaxed);
            }
        }
        let sources: HashMap<u64, &Path> = version.files.iter().map(|f| (f.meta.id, f.path.as_path())).collect();
        let nonce = self.inner.nonce.fetch_add(1, Ordering::Relaxed);
        // Whether the file's object has a folder entry to sync.
        let place = |file: &ManifestFile| -> Result<bool> {
            if job.cancel.load(Ordering::Relaxed) {
                return Err(Error::Interrupted);
            }
            let object = ObjectRef { blake3: file.blake3.clone(), size: file.size };
            if !unsynced.claim(repo, &object) {
                counters.bytes_done.fetch_add(file.size, Ordering::Relaxed);
                counters.files_done.fetch_add(1, Ordering::Relaxed);
                return Ok(false);
            }
            let src = sources.get(&file.file_id).copied().ok_or_else(|| Error::Corrupt {
                path: PathBuf::from(&file.path),
                what: "not in the pinned version".into(),
            })?;
            let placed = match job.mode {
                PlaceMode::Link => {
                    let placed = repo.link_object(src, &object)?;
                    counters.bytes_done.fetch_add(file.size, Ordering::Relaxed);
                    placed
                }
                PlaceMode::Copy => {
                    let on_bytes = |n: u64| {
                        counters.bytes_done.fetch_add(n, Ordering::Relaxed);
                    };
                    repo.copy_object(src, &object, self.inner.config.rehash_on_copy, nonce, &job.cancel, &on_bytes)?
                }
            };
            if placed == repo::Placed::Added {
                counters.added_objects.fetch_add(1, Ordering::Relaxed);
                counters.added_bytes.fetch_add(file.size, Ordering::Relaxed);
            }
            counters.files_done.fetch_add(1, Ordering::Relaxed);
            Ok(true)
        };
        let pool = &self.inner.pool;
        let placed: Vec<bool> = pool.install(|| files.par_iter().map(place).collect::<Result<_>>())?;
        to_sync.extend(files.iter().zip(placed).filter(|(_, p)| *p).map(|(f, _)| f.blake3.as_str()));
        if !to_sync.is_empty() {
            pool.install(|| repo.sync_shards(to_sync.iter().copied()))?;
            unsynced.settled(to_sync.iter().copied());
        }
        if job.cancel.load(Ordering::Relaxed) {
            return Err(Error::Interrupted);
        }
        counters.phase.store(2, Ordering::Relaxed);
        let record = &version.record;
        let manifest = Manifest {
            format: manifest::MANIFEST_FORMAT,
            name: job.name.clone(),
            backup_type: job.backup_type,
            parent: job.parent.clone(),
            created_at: job.created_at.clone(),
            completed_at: self.now(),
            status: BackupStatus::Completed.as_str().into(),
            engine_format: crate::segment::format::FORMAT_VERSION,
            mode: job.mode,
            catalog: manifest::CatalogRef { blake3: catalog.blake3, size: catalog.size, sequence: *catalog_sequence },
            tree: manifest::TreeRef {
                version: record.number,
                next_file_id: record.next_file_id,
                catalog_sequence: record.catalog_sequence,
            },
            total_files: files.len() as u64,
            total_size_bytes: files.iter().map(|f| f.size).sum(),
            files: files.to_vec(),
            added_objects: counters.added_objects.load(Ordering::Relaxed),
            added_bytes: counters.added_bytes.load(Ordering::Relaxed),
        };
        if let Err(e) = repo.write_manifest(&manifest) {
            // Only a failed folder fsync leaves the manifest published, but
            // not durable: withdrawn, so that the backup is failed for
            // status, list and GC alike instead of completed now and
            // perhaps gone after a crash.
            let published = repo.read_manifest(&job.name).ok().flatten().is_some_and(|(m, _)| m == manifest);
            if published && let Err(removal) = repo.delete_manifest(&job.name) {
                tracing::error!(backup = %job.name, error = %removal, "could not withdraw the manifest of a failed backup");
            }
            return Err(e);
        }
        counters.phase.store(3, Ordering::Relaxed);
        // The manifest is the commit point: a failure from here on must not
        // turn a committed backup into a failed one.
        if let Err(e) = repo.delete_job_record(&job.name) {
            tracing::warn!(backup = %job.name, error = %e, "could not remove the job record of a completed backup");
        }
        Ok(())
    }

    /// The job's record with `status` (and `error`, which ends it).
    pub(super) fn record_of(&self, job: &Job, status: BackupStatus, error: Option<String>) -> JobRecord {
        JobRecord {
            name: job.name.clone(),
            backup_type: job.backup_type,
            parent: job.parent.as_ref().map(|p| p.name.clone()),
            status,
            created_at: job.created_at.clone(),
            completed_at: error.is_some().then(|| self.now()),
            error,
            mode: job.mode,
            owner: self.inner.owner.clone(),
        }
    }

    pub(super) fn finish_failed(&self, job: &Job, error: &Error) {
        let cancelled = matches!(error, Error::Interrupted);
        let (status, message) = if cancelled {
            let reason = job.cancel_reason.lock().ok().and_then(|r| r.clone());
            (BackupStatus::Cancelled, reason.unwrap_or_else(|| "cancelled".into()))
        } else {
            tracing::error!(backup = %job.name, %error, "backup failed");
            (BackupStatus::Failed, error.to_string())
        };
        let record = self.record_of(job, status, Some(message));
        let recorded = self.inner.repo.write_job_record(&record);
        {
            // In one step with the job's end, so no listing reads the record
            // on disk (still in progress) without the memory copy over it.
            let mut state = lock(&self.inner.state);
            state.running.remove(&job.name);
            if let Err(e) = recorded {
                tracing::warn!(backup = %job.name, error = %e, "could not record the end of a backup; trying again after garbage collection");
                state.unrecorded_backups.insert(job.name.clone(), record);
            }
        }
        // Swept before anyone waiting looks, so a failed job is over, leftovers
        // and all, when `wait` returns. A full disk (the usual reason a backup
        // fails) may also have left no room for the record while the one on
        // disk still says in progress: the sweep makes room to write it again.
        let swept = self.collect_garbage();
        self.record_unrecorded_backups();
        self.inner.job_ended.notify_all();
        if let Err(e) = swept {
            tracing::warn!(error = %e, "garbage collection after a failed backup failed");
        }
    }

    /// Writes the records of ended backups that could not be written when
    /// they ended; what fails again stays answered from memory. Under the
    /// state lock, so a `delete` cannot interleave and see its record return.
    pub(super) fn record_unrecorded_backups(&self) {
        let mut state = lock(&self.inner.state);
        state.unrecorded_backups.retain(|name, record| match self.inner.repo.write_job_record(record) {
            Ok(()) => false,
            Err(e) => {
                tracing::error!(backup = %name, error = %e, "could not record the end of a backup; its status is answered from memory until a restart");
                true
            }
        });
    }

    /// Asks a running backup to stop. It stops promptly (within a file's
    /// next 8 MiB), writes no manifest and ends `cancelled`; this waits up
    /// to ten seconds for that.
    pub fn cancel(&self, name: &str) -> Result<()> {
        self.cancel_with(name, "cancelled by request")?;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut state = lock(&self.inner.state);
        while state.running.contains_key(name) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            state = self.inner.job_ended.wait_timeout(state, left).unwrap_or_else(|p| p.into_inner()).0;
        }
        Ok(())
    }

    pub(super) fn cancel_with(&self, name: &str, reason: &str) -> Result<()> {
        let state = lock(&self.inner.state);
        let job = state.running.get(name).ok_or_else(|| BackupError::NotRunning { name: name.into() })?;
        if let Ok(mut r) = job.cancel_reason.lock() {
            r.get_or_insert_with(|| reason.to_string());
        }
        job.cancel.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Waits until the named backup is no longer running and returns it.
    pub fn wait(&self, name: &str) -> Result<BackupInfo> {
        let mut state = lock(&self.inner.state);
        while state.running.contains_key(name) {
            state = self.inner.job_ended.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        drop(state);
        self.get(name)
    }
}
