//! Remote repositories (cargo feature `remote`): a backup repository on an
//! S3-compatible object store, or in a folder, through the `object_store`
//! crate, with the local repository's layout (`QUIPU-REPO`, `objects/ab/<blake3>`,
//! `manifests/<name>.json`) plus packs (`packs/<blake3>.pack`: objects under
//! [`RemoteOptions::pack_below`] bundled, one request for many), so any S3
//! tool reads it (docs/FORMAT.md, "Remote repository").
//!
//! A **push** sends a local backup's objects the remote lacks (present
//! loose or in a pack with the same name and size), several at once, each
//! hashed on the way (its blake3 is its name), then its manifest with a
//! conditional create (`If-None-Match: *`): the commit point. A backup
//! exists remotely if and only if its manifest does. A **pull** is the
//! mirror image into the local repository: objects written to temp files as
//! they are hashed, made durable in one batch and renamed, the manifest
//! installed last. Before its first write a remote is
//! probed once: the same marker created twice must fail the second time, or
//! the remote ignores conditional creates and is refused unless the caller
//! accepts it ([`RemoteOptions::accept_unconditional`]).
//!
//! The calls block: each runs on the remote's own small tokio runtime, so
//! call them from a plain thread (a backup job's, the CLI's), not from
//! inside an async task.
//!
//! ```no_run
//! use quipu::backup::Repository;
//! use quipu::remote::{Remote, RemoteOptions};
//!
//! let local = Repository::open("./quipu-backups".as_ref())?;
//! let options = RemoteOptions { endpoint: Some("http://127.0.0.1:9000".into()), ..RemoteOptions::default() };
//! let remote = Remote::open("s3://backups/quipu", options)?;
//! let pushed = remote.push(&local, "nightly", &|_| {}, &Default::default())?;
//! println!("{} objects sent, {} already there", pushed.objects_sent, pushed.objects_present);
//! # Ok::<(), quipu::Error>(())
//! ```

pub(crate) mod error;
mod holdings;
pub mod jobs;
#[doc(hidden)] // the fuzz target's way in
pub mod records;
mod store;
mod sweep;
mod transfer;
mod verify;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use object_store::ObjectStore;
use object_store::path::Path as StorePath;

use crate::backup::repo::{MANIFESTS_DIR, OBJECTS_DIR, REPO_FILE};
use crate::error::{Error, Result};
pub use error::RemoteError;
pub use jobs::{TransferInfo, TransferKind, TransferRequest, TransferService};
pub use sweep::{DEFAULT_SWEEP_GRACE, SweepReport};
pub use transfer::{PullReport, PushReport, TransferCounters};
pub use verify::RemoteCheck;

/// How to reach a remote, beyond its URL. Unset fields of an `s3://`
/// remote come from the usual AWS environment variables
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
/// `AWS_ENDPOINT_URL`, ...).
#[derive(Clone, Default)]
pub struct RemoteOptions {
    /// The S3 endpoint (`http://127.0.0.1:9000` for a local server); plain
    /// HTTP is allowed when the endpoint says so.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    /// Trust a remote that ignores conditional creates. Two pushes of the
    /// same backup name at once could then replace each other's manifest.
    pub accept_unconditional: bool,
    /// Objects sent or fetched at once (default 4). A push holds at most
    /// four parts' worth per object in memory (an object of up to four parts
    /// is read whole and sent in one request; a larger one holds the part
    /// being read and two in flight): 128 MiB with the defaults.
    pub parallel_objects: usize,
    /// The part size of a multipart upload, used for objects larger than
    /// four parts (smaller ones go up in one request); default 8 MiB. S3
    /// wants parts of at least 5 MiB.
    pub part_bytes: usize,
    /// The time between a sweep's plan and its deletions
    /// ([`Remote::sweep`]); default one hour. A push makes its manifest
    /// within half of it of reading the plans, or reads them again.
    pub sweep_grace: Option<std::time::Duration>,
    /// Objects smaller than this go up bundled in packs
    /// (`packs/<blake3>.pack`, up to 16 MiB each) instead of one request
    /// each; default 1 MiB, `Some(0)` sends every object on its own.
    pub pack_below: Option<u64>,
}

impl std::fmt::Debug for RemoteOptions {
    // Credentials never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteOptions")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id.as_ref().map(|_| "<set>"))
            .field("secret_access_key", &self.secret_access_key.as_ref().map(|_| "<set>"))
            .field("session_token", &self.session_token.as_ref().map(|_| "<set>"))
            .field("accept_unconditional", &self.accept_unconditional)
            .field("parallel_objects", &self.parallel_objects)
            .field("part_bytes", &self.part_bytes)
            .field("sweep_grace", &self.sweep_grace)
            .field("pack_below", &self.pack_below)
            .finish()
    }
}

/// The default of [`RemoteOptions::part_bytes`].
pub const DEFAULT_PART_BYTES: usize = 8 << 20;

/// The default of [`RemoteOptions::pack_below`].
pub const DEFAULT_PACK_BELOW: u64 = 1 << 20;

/// Where packs live, under the remote's prefix.
const PACKS_DIR: &str = "packs";

/// Where the conditional-create probes go, under the remote's prefix.
const PROBES_DIR: &str = "probes";

const PROBE_UNKNOWN: u8 = 0;
const PROBE_HONOURED: u8 = 1;
const PROBE_ACCEPTED: u8 = 2;

/// A remote repository.
pub struct Remote {
    url: String,
    store: Arc<dyn ObjectStore>,
    prefix: StorePath,
    /// A folder remote's folder.
    folder: Option<std::path::PathBuf>,
    options: RemoteOptions,
    runtime: tokio::runtime::Runtime,
    probe: AtomicU8,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote").field("url", &self.url).finish_non_exhaustive()
    }
}

impl Remote {
    /// The remote at `url`: `s3://bucket/prefix`, `file:///abs/path` or a
    /// folder path. Nothing is read or written until the first call.
    pub fn open(url: &str, options: RemoteOptions) -> Result<Remote> {
        let (store, prefix, folder) = store::open(url, &options)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("quipu-remote")
            .enable_all()
            .build()
            .map_err(|e| Error::Io { path: url.into(), source: e })?;
        Ok(Remote {
            url: url.to_string(),
            store,
            prefix,
            folder,
            options,
            runtime,
            probe: AtomicU8::new(PROBE_UNKNOWN),
        })
    }

    /// The URL it was opened with.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn path(&self, parts: &[&str]) -> StorePath {
        let mut path = self.prefix.clone();
        for part in parts {
            path = path.join(*part);
        }
        path
    }

    fn object_path(&self, blake3: &str) -> StorePath {
        self.path(&[OBJECTS_DIR, blake3.get(..2).unwrap_or("00"), blake3])
    }

    fn pack_path(&self, blake3: &str) -> StorePath {
        self.path(&[PACKS_DIR, &format!("{blake3}.pack")])
    }

    /// Objects under this many bytes go in packs; packs hold members of up
    /// to 16 MiB, which readers keep in memory.
    fn pack_below(&self) -> u64 {
        self.options.pack_below.unwrap_or(DEFAULT_PACK_BELOW).min(holdings::MAX_PACKED_MEMBER)
    }

    fn manifest_path(&self, name: &str) -> StorePath {
        self.path(&[MANIFESTS_DIR, &format!("{name}.json")])
    }

    /// Makes files of a folder remote durable (object_store's file system
    /// writes and renames without fsync), their folders included: before a
    /// manifest relies on them. Each file once, however often it is named
    /// (a pack holds many objects).
    fn sync_folder_files(&self, files: impl IntoIterator<Item = StorePath>) -> Result<()> {
        use crate::error::IoContext;
        if self.folder.is_none() {
            return Ok(());
        }
        let files: std::collections::BTreeSet<StorePath> = files.into_iter().collect();
        let mut dirs = std::collections::BTreeSet::new();
        for file in files {
            let path = std::path::Path::new("/").join(file.as_ref());
            std::fs::File::open(&path).and_then(|f| f.sync_all()).at(&path)?;
            // The shard folder and `objects/`, or `packs/` and the prefix.
            let mut parent = path.parent();
            for _ in 0..2 {
                if let Some(dir) = parent {
                    dirs.insert(dir.to_path_buf());
                    parent = dir.parent();
                }
            }
        }
        for dir in dirs {
            crate::fs::sync_dir(&dir).at(&dir)?;
        }
        Ok(())
    }

    /// Makes a folder remote's manifest durable, and its folder.
    fn sync_folder_manifest(&self, name: &str) -> Result<()> {
        use crate::error::IoContext;
        let Some(folder) = &self.folder else { return Ok(()) };
        let dir = folder.join(MANIFESTS_DIR);
        let path = dir.join(format!("{name}.json"));
        std::fs::File::open(&path).and_then(|f| f.sync_all()).at(&path)?;
        crate::fs::sync_dir(&dir).at(&dir)
    }

    /// Runs `work` on the remote's runtime until it ends or `cancel` is
    /// raised; then the work is dropped within 50 ms, requests in flight
    /// included (a request stuck on a slow or dead store must not hold a
    /// cancel or a server's shutdown for its whole retry budget).
    /// Once `committed` is raised (the work reached its commit point) the
    /// cancel is no longer heard: the work finishes what follows the commit.
    fn run_cancellable<T>(
        &self,
        cancel: &std::sync::atomic::AtomicBool,
        committed: &std::sync::atomic::AtomicBool,
        work: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        self.runtime.block_on(async {
            let raised = async {
                while !cancel.load(Ordering::Relaxed) || committed.load(Ordering::Acquire) {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            };
            tokio::select! {
                outcome = work => outcome,
                () = raised => Err(Error::Interrupted),
            }
        })
    }

    fn store_error(&self, e: object_store::Error) -> Error {
        RemoteError::Store { url: self.url.clone(), what: e.to_string() }.into()
    }

    fn parallel(&self) -> usize {
        if self.options.parallel_objects == 0 { 4 } else { self.options.parallel_objects }
    }

    fn sweep_grace(&self) -> std::time::Duration {
        self.options.sweep_grace.unwrap_or(sweep::DEFAULT_SWEEP_GRACE)
    }

    fn part_bytes(&self) -> usize {
        if self.options.part_bytes == 0 { DEFAULT_PART_BYTES } else { self.options.part_bytes }
    }

    /// The remote's bytes at `path`, or `None` when there is no such object.
    async fn get_bytes(&self, path: &StorePath) -> Result<Option<bytes::Bytes>> {
        use object_store::ObjectStoreExt;
        match self.store.get(path).await {
            Ok(got) => got.bytes().await.map(Some).map_err(|e| self.store_error(e)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.store_error(e)),
        }
    }

    /// Checks the format marker, creating the repository's when the remote
    /// is empty (a conditional create: two first pushes make one marker).
    async fn ensure_repository(&self, create: bool) -> Result<()> {
        let marker_path = self.path(&[REPO_FILE]);
        let bytes = match self.get_bytes(&marker_path).await? {
            Some(bytes) => bytes,
            None if create => {
                let now = crate::backup::rfc3339(crate::clock::Clock::now_ns(&crate::clock::SystemClock));
                let body = crate::backup::repo::RepoInfo::new(ulid::Ulid::new().0, &now).encode();
                // Made here or by a push racing this one: either way read it back.
                self.create(&marker_path, body.into()).await?;
                return Box::pin(self.ensure_repository(false)).await;
            }
            None => {
                return Err(
                    RemoteError::NotARepository { url: self.url.clone(), why: format!("no {REPO_FILE}") }.into()
                );
            }
        };
        records::check_marker(&bytes).map_err(|why| {
            RemoteError::NotARepository { url: self.url.clone(), why: format!("{REPO_FILE}: {why}") }.into()
        })
    }

    /// A conditional create of `path`: true when this call made it, false
    /// when it was there already.
    async fn create(&self, path: &StorePath, payload: object_store::PutPayload) -> Result<bool> {
        let options = object_store::PutOptions { mode: object_store::PutMode::Create, ..Default::default() };
        match self.store.put_opts(path, payload, options).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) | Err(object_store::Error::Precondition { .. }) => Ok(false),
            Err(e) => Err(self.store_error(e)),
        }
    }

    /// Probes once whether the remote honours conditional creates: a fresh
    /// probe object created twice, the second must be refused.
    async fn ensure_conditional(&self) -> Result<()> {
        if self.probe.load(Ordering::Acquire) != PROBE_UNKNOWN {
            return Ok(());
        }
        let probe = self.path(&[PROBES_DIR, &ulid::Ulid::new().to_string()]);
        let first = self.create(&probe, b"probe".as_slice().into()).await?;
        let second = self.create(&probe, b"probe".as_slice().into()).await;
        {
            use object_store::ObjectStoreExt;
            let _ = self.store.delete(&probe).await;
        }
        let honoured = first && !second?;
        if !honoured {
            if !self.options.accept_unconditional {
                return Err(RemoteError::NoConditionalPut { url: self.url.clone() }.into());
            }
            tracing::warn!(remote = %self.url, "remote ignores conditional creates; trusted as asked");
            self.probe.store(PROBE_ACCEPTED, Ordering::Release);
        } else {
            self.probe.store(PROBE_HONOURED, Ordering::Release);
        }
        Ok(())
    }

    /// Everything under the folder `dir` of the remote (a full listing).
    async fn list_dir(&self, dir: &str) -> Result<Vec<object_store::ObjectMeta>> {
        use futures::TryStreamExt;
        self.store.list(Some(&self.path(&[dir]))).try_collect().await.map_err(|e| self.store_error(e))
    }

    /// Every object the remote holds, by name (a full listing).
    async fn objects(&self) -> Result<HashMap<String, object_store::ObjectMeta>> {
        Ok(self
            .list_dir(OBJECTS_DIR)
            .await?
            .into_iter()
            .filter_map(|m| {
                let name = m.location.filename()?.to_string();
                // Only `objects/ab/<blake3>` itself: what a pull would read.
                let canonical = crate::backup::manifest::is_object_name(&name) && m.location == self.object_path(&name);
                canonical.then_some((name, m))
            })
            .collect())
    }

    /// The names of the backups the remote holds (its manifests), sorted.
    pub fn list(&self) -> Result<Vec<String>> {
        self.runtime.block_on(async {
            let mut names: Vec<String> = self
                .list_dir(MANIFESTS_DIR)
                .await?
                .into_iter()
                .filter_map(|m| m.location.filename()?.strip_suffix(".json").map(str::to_string))
                .collect();
            names.sort();
            Ok(names)
        })
    }

    /// A remote backup's manifest and the hash of its content.
    pub fn show(&self, name: &str) -> Result<(crate::backup::Manifest, String)> {
        self.runtime.block_on(self.read_manifest(name))
    }

    async fn read_manifest_bytes(&self, name: &str) -> Result<bytes::Bytes> {
        crate::backup::validate_name(name)?;
        self.get_bytes(&self.manifest_path(name))
            .await?
            .ok_or_else(|| RemoteError::NotFound { url: self.url.clone(), name: name.to_string() }.into())
    }

    async fn read_manifest(&self, name: &str) -> Result<(crate::backup::Manifest, String)> {
        let bytes = self.read_manifest_bytes(name).await?;
        crate::backup::manifest::decode(&self.display_path(&self.manifest_path(name)), &bytes)
    }

    /// `path` as errors name it: the URL it lives at.
    fn display_path(&self, path: &StorePath) -> std::path::PathBuf {
        let relative = path.as_ref().strip_prefix(self.prefix.as_ref()).unwrap_or(path.as_ref());
        format!("{}/{}", self.url.trim_end_matches('/'), relative.trim_start_matches('/')).into()
    }

    /// True when the remote holds backup `name` (its manifest; one HEAD).
    pub fn exists(&self, name: &str) -> Result<bool> {
        crate::backup::validate_name(name)?;
        self.runtime.block_on(async {
            use object_store::ObjectStoreExt;
            match self.store.head(&self.manifest_path(name)).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(self.store_error(e)),
            }
        })
    }

    /// Removes a remote backup's manifest. Its objects stay until a sweep
    /// finds no manifest naming them. False when there was none.
    pub fn delete(&self, name: &str) -> Result<bool> {
        if !self.exists(name)? {
            return Ok(false);
        }
        self.runtime.block_on(async {
            use object_store::ObjectStoreExt;
            self.store.delete(&self.manifest_path(name)).await.map_err(|e| self.store_error(e))
        })?;
        Ok(true)
    }
}
