//! Push and pull: a backup's objects between the local repository and a
//! remote, several at once, each hashed on the way, the manifest last.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as StorePath;
use object_store::{ObjectStoreExt, PutPayload, WriteMultipart};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Remote, RemoteError};
use crate::backup::error::ObjectProblem;
use crate::backup::manifest::{self, ObjectRef};
use crate::backup::{BackupError, Hold, Repository};
use crate::error::{Error, IoContext, Result};

/// Objects up to this many parts go up in one request.
const SINGLE_PUT_PARTS: u64 = 4;
/// Parts of one multipart upload in flight at once.
const PARTS_IN_FLIGHT: usize = 2;

/// What a push did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PushReport {
    pub backup: String,
    /// Objects the backup needs (its catalog and files, each once).
    pub objects_total: u64,
    pub bytes_total: u64,
    pub objects_sent: u64,
    pub bytes_sent: u64,
    /// Objects the remote held already (same name and size).
    pub objects_present: u64,
    /// The remote held this very backup already: nothing was sent.
    pub already_there: bool,
}

/// What a pull did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PullReport {
    pub backup: String,
    pub objects_total: u64,
    pub bytes_total: u64,
    pub objects_fetched: u64,
    pub bytes_fetched: u64,
    /// Objects the local repository held already.
    pub objects_present: u64,
    pub already_there: bool,
}

/// A push's or pull's progress as it goes, read by whoever watches it (a
/// server job's status). Objects present already count as done at once.
#[derive(Debug, Default)]
pub struct TransferCounters {
    pub objects_total: AtomicU64,
    pub bytes_total: AtomicU64,
    pub objects_done: AtomicU64,
    pub bytes_done: AtomicU64,
}

impl TransferCounters {
    fn start(&self, objects: &[ObjectRef]) {
        self.objects_total.store(objects.len() as u64, Ordering::Relaxed);
        self.bytes_total.store(total_size(objects), Ordering::Relaxed);
    }

    fn object_done(&self) {
        self.objects_done.fetch_add(1, Ordering::Relaxed);
    }
}

/// Bytes as they move, to the counters and to the caller's callback.
struct Watch<'a> {
    counters: &'a TransferCounters,
    on_bytes: &'a (dyn Fn(u64) + Sync),
}

impl Watch<'_> {
    fn bytes(&self, n: u64) {
        self.counters.bytes_done.fetch_add(n, Ordering::Relaxed);
        (self.on_bytes)(n);
    }

    /// An object that needs no transfer.
    fn present(&self, object: &ObjectRef) {
        self.bytes(object.size);
        self.counters.object_done();
    }
}

/// The bytes of `objects`; a remote manifest's sizes are not trusted to fit.
pub(super) fn total_size(objects: &[ObjectRef]) -> u64 {
    objects.iter().fold(0u64, |sum, o| sum.saturating_add(o.size))
}

impl Remote {
    /// Sends backup `name` of `local` to the remote: the objects it lacks,
    /// then the manifest (the commit point). `on_bytes` hears of every
    /// chunk sent; `cancel` stops the push between chunks
    /// ([`Error::Interrupted`]), leaving no remote manifest. Pushing a
    /// backup the remote holds already sends nothing; a different backup
    /// under the same name there is refused.
    pub fn push(
        &self,
        local: &Repository,
        name: &str,
        on_bytes: &(dyn Fn(u64) + Sync),
        cancel: &AtomicBool,
    ) -> Result<PushReport> {
        self.push_counted(local, name, &TransferCounters::default(), on_bytes, cancel)
    }

    /// [`Remote::push`], counting its progress in `counters` as it goes.
    pub fn push_counted(
        &self,
        local: &Repository,
        name: &str,
        counters: &TransferCounters,
        on_bytes: &(dyn Fn(u64) + Sync),
        cancel: &AtomicBool,
    ) -> Result<PushReport> {
        crate::backup::validate_name(name)?;
        let manifest_bytes =
            local.read_manifest_bytes(name)?.ok_or_else(|| BackupError::NotFound { name: name.to_string() })?;
        self.push_manifest(local, name, manifest_bytes.into(), counters, on_bytes, cancel)
    }

    /// [`Remote::push_counted`] from a running
    /// [`BackupService`](crate::backup::BackupService)'s repository: the
    /// backup `hold` ([`hold_backup`](crate::backup::BackupService::hold_backup))
    /// read, whose objects its garbage collection keeps even if the backup
    /// is deleted meanwhile.
    pub fn push_held(
        &self,
        hold: &Hold,
        counters: &TransferCounters,
        on_bytes: &(dyn Fn(u64) + Sync),
        cancel: &AtomicBool,
    ) -> Result<PushReport> {
        let bytes = hold.manifest_bytes().ok_or_else(|| BackupError::NotFound { name: hold.name() })?;
        self.push_manifest(hold.repository(), &hold.name(), bytes, counters, on_bytes, cancel)
    }

    fn push_manifest(
        &self,
        local: &Repository,
        name: &str,
        manifest_bytes: bytes::Bytes,
        counters: &TransferCounters,
        on_bytes: &(dyn Fn(u64) + Sync),
        cancel: &AtomicBool,
    ) -> Result<PushReport> {
        let watch = Watch { counters, on_bytes };
        let (manifest, hash) = local.decode_manifest(name, &manifest_bytes)?;
        let objects = manifest.distinct_objects();
        counters.start(&objects);
        let mut report = PushReport {
            backup: name.to_string(),
            objects_total: objects.len() as u64,
            bytes_total: total_size(&objects),
            ..PushReport::default()
        };
        // Raised as the manifest's create is sent: from then on the push may
        // have committed, so it is finished, not dropped, whatever a cancel says.
        let committed = AtomicBool::new(false);
        let after_commit = AtomicBool::new(false);
        self.run_cancellable(cancel, &committed, async {
            self.ensure_repository(true).await?;
            if self.same_manifest(name, &hash, &manifest_bytes).await? {
                report.already_there = true;
                report.objects_present = report.objects_total;
                objects.iter().for_each(|o| watch.present(o));
                return Ok(report);
            }
            // Probed only when something is to be written.
            self.ensure_conditional().await?;
            let present = self.objects().await?;
            let (have, missing): (Vec<ObjectRef>, Vec<ObjectRef>) =
                objects.into_iter().partition(|o| present.get(&o.blake3).map(|m| m.size) == Some(o.size));
            report.objects_present = have.len() as u64;
            have.iter().for_each(|o| watch.present(o));
            self.send_objects(local, &missing, Some(&watch), cancel).await?;
            report.objects_sent = missing.len() as u64;
            report.bytes_sent = total_size(&missing);
            // The sweep rule (sweep.rs): send again, from the local copy,
            // every object a sweep plan names (a new write, newer than the
            // plan) and every object a finished sweep removed meanwhile, then
            // make the manifest within half the longest grace period of
            // reading the plans.
            let all: Vec<ObjectRef> = have.iter().chain(&missing).cloned().collect();
            let mut renewed = Vec::new();
            for attempt in 1.. {
                if cancel.load(Ordering::Relaxed) {
                    return Err(Error::Interrupted);
                }
                let plans_read = std::time::Instant::now();
                let plans = self.sweep_plans().await?;
                let (planned, plans_grace) = Remote::planned(&plans);
                let grace = self.sweep_grace().max(plans_grace);
                let renew: Vec<ObjectRef> = all.iter().filter(|o| planned.contains(&o.blake3)).cloned().collect();
                self.send_objects(local, &renew, None, cancel).await?;
                renewed = renew;
                let present = self.objects().await?;
                let gone: Vec<ObjectRef> =
                    all.iter().filter(|o| present.get(&o.blake3).map(|m| m.size) != Some(o.size)).cloned().collect();
                self.send_objects(local, &gone, None, cancel).await?;
                report.objects_sent += gone.len() as u64;
                report.bytes_sent = report.bytes_sent.saturating_add(total_size(&gone));
                // A zero grace (tests) promises nothing to pushes.
                if gone.is_empty() && (grace.is_zero() || plans_read.elapsed() < grace / 2) {
                    break;
                }
                if attempt == 3 {
                    return Err(RemoteError::Store {
                        url: self.url.clone(),
                        what: format!(
                            "three passes over the sweep plans each took more than half the sweep grace ({grace:?}) \
                             or found objects removed; the remote is too slow for its sweeps"
                        ),
                    }
                    .into());
                }
            }
            self.sync_folder_objects(&all)?;
            // The commit point: a conditional create, so a push racing this
            // one under the same name cannot be silently replaced.
            let path = self.manifest_path(name);
            if cancel.load(Ordering::Relaxed) {
                return Err(Error::Interrupted);
            }
            committed.store(true, Ordering::Release);
            if !self.create(&path, manifest_bytes.clone().into()).await? && !self.same_manifest(name, &hash, &manifest_bytes).await? {
                return Err(RemoteError::ManifestExists { url: self.url.clone(), name: name.to_string() }.into());
            }
            self.sync_folder_manifest(name)?;
            // A sweep that looked at an object just before this push renewed
            // it may delete it just after (sweep.rs): only renewed objects
            // can be in that window, so look at them once more and send
            // again what is gone.
            let mut gone = Vec::new();
            for object in renewed {
                match self.store.head(&self.object_path(&object.blake3)).await {
                    Ok(meta) if meta.size == object.size => {}
                    Ok(_) | Err(object_store::Error::NotFound { .. }) => gone.push(object),
                    Err(e) => return Err(self.store_error(e)),
                }
            }
            if !gone.is_empty() {
                tracing::warn!(remote = %self.url, backup = name, objects = gone.len(), "objects removed by a sweep during the push; sent again");
                self.send_objects(local, &gone, None, &after_commit).await?;
                self.sync_folder_objects(&gone)?;
            }
            Ok(report)
        })
    }

    /// Sends `objects`; `watch` hears of the bytes and objects (none for
    /// objects sent again, which were counted once).
    async fn send_objects(
        &self,
        local: &Repository,
        objects: &[ObjectRef],
        watch: Option<&Watch<'_>>,
        cancel: &AtomicBool,
    ) -> Result<()> {
        let silent = |_: u64| {};
        let on_bytes = |n: u64| watch.map_or_else(|| silent(n), |w| w.bytes(n));
        futures::stream::iter(objects.iter().map(|object| async move {
            self.send_object(local, object, &on_bytes, cancel).await?;
            if let Some(w) = watch {
                w.counters.object_done();
            }
            Ok(())
        }))
        .buffer_unordered(self.parallel())
        .try_collect::<Vec<()>>()
        .await
        .map(drop)
    }

    /// True when the remote holds backup `name` with content hash `hash`
    /// (stored as `local`, the usual case, which needs no decoding);
    /// [`RemoteError::ManifestExists`] when it holds another one by that name.
    async fn same_manifest(&self, name: &str, hash: &str, local: &[u8]) -> Result<bool> {
        let path = self.manifest_path(name);
        let Some(bytes) = self.get_bytes(&path).await? else { return Ok(false) };
        if bytes.as_ref() == local {
            return Ok(true);
        }
        let (_, remote_hash) = manifest::decode(&self.display_path(&path), &bytes)?;
        if remote_hash != hash {
            return Err(RemoteError::ManifestExists { url: self.url.clone(), name: name.to_string() }.into());
        }
        Ok(true)
    }

    /// Sends one object, hashing it on the way: a local object whose bytes
    /// do not hash to its name is not sent (a multipart upload is aborted).
    async fn send_object(
        &self,
        local: &Repository,
        object: &ObjectRef,
        on_bytes: &(dyn Fn(u64) + Sync),
        cancel: &AtomicBool,
    ) -> Result<()> {
        let source = local.object_path(&object.blake3);
        let mut file = tokio::fs::File::open(&source).await.at(&source)?;
        let path = self.object_path(&object.blake3);
        let mut hasher = blake3::Hasher::new();
        let bad = |hasher: &blake3::Hasher, read: u64| {
            let actual = hasher.finalize().to_hex().to_string();
            Error::Corrupt {
                path: source.clone(),
                what: format!(
                    "local object has {read} bytes hashing to {actual}, expected {} bytes hashing to its name",
                    object.size
                ),
            }
        };
        let part_bytes = self.part_bytes();
        // Up to four parts' worth goes up in one request: a multipart upload
        // costs three more requests and the store's assembly (slow on some
        // S3 servers), and the memory is what two parts in flight take anyway.
        if object.size <= SINGLE_PUT_PARTS * part_bytes as u64 {
            let mut buf = Vec::with_capacity(object.size as usize);
            file.read_to_end(&mut buf).await.at(&source)?;
            hasher.update(&buf);
            if buf.len() as u64 != object.size || hasher.finalize().to_hex().as_str() != object.blake3 {
                return Err(bad(&hasher, buf.len() as u64));
            }
            let len = buf.len() as u64;
            self.store.put(&path, PutPayload::from(buf)).await.map_err(|e| self.store_error(e))?;
            on_bytes(len);
            return Ok(());
        }
        let upload = self.store.put_multipart(&path).await.map_err(|e| self.store_error(e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, part_bytes);
        let mut read = 0u64;
        let mut buf = vec![0u8; part_bytes];
        let outcome: Result<()> = async {
            loop {
                if cancel.load(Ordering::Relaxed) {
                    return Err(Error::Interrupted);
                }
                let n = read_full(&mut file, &mut buf).await.at(&source)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                writer.wait_for_capacity(PARTS_IN_FLIGHT).await.map_err(|e| self.store_error(e))?;
                writer.write(&buf[..n]);
                read += n as u64;
                on_bytes(n as u64);
            }
            if read != object.size || hasher.finalize().to_hex().as_str() != object.blake3 {
                return Err(bad(&hasher, read));
            }
            Ok(())
        }
        .await;
        match outcome {
            Ok(()) => writer.finish().await.map(|_| ()).map_err(|e| self.store_error(e)),
            Err(e) => {
                let _ = writer.abort().await;
                Err(e)
            }
        }
    }

    /// Fetches remote backup `name` into `local`: the objects it lacks,
    /// each streamed into a temp file, hashed, made durable and renamed,
    /// then the manifest (the commit point). A missing or damaged remote
    /// object fails the pull with [`RemoteError::BadObject`] and installs
    /// no manifest. Takes the local repository's lock.
    pub fn pull(
        &self,
        local: &Repository,
        name: &str,
        on_bytes: &(dyn Fn(u64) + Sync),
        cancel: &AtomicBool,
    ) -> Result<PullReport> {
        let _lock = local.lock()?;
        self.pull_unlocked(local, name, None, &TransferCounters::default(), on_bytes, cancel)
    }

    /// [`Remote::pull`] into the repository of a running
    /// [`BackupService`](crate::backup::BackupService), which holds its lock:
    /// `hold` (from [`hold_incoming`](crate::backup::BackupService::hold_incoming))
    /// reserves the name, and keeps the pulled objects from the service's
    /// garbage collection until the manifest names them.
    pub fn pull_held(
        &self,
        hold: &Hold,
        counters: &TransferCounters,
        on_bytes: &(dyn Fn(u64) + Sync),
        cancel: &AtomicBool,
    ) -> Result<PullReport> {
        self.pull_unlocked(hold.repository(), &hold.name(), Some(hold), counters, on_bytes, cancel)
    }

    fn pull_unlocked(
        &self,
        local: &Repository,
        name: &str,
        hold: Option<&Hold>,
        counters: &TransferCounters,
        on_bytes: &(dyn Fn(u64) + Sync),
        cancel: &AtomicBool,
    ) -> Result<PullReport> {
        let watch = Watch { counters, on_bytes };
        // Every temp file this pull makes, so that a failure or a cancel
        // (which drop the fetches still in flight) removes them all.
        let temps = std::sync::Mutex::new(Vec::new());
        // The pull's commit (its shards' sync and the manifest) is
        // synchronous: a cancel cannot land inside it.
        let pulled = self.run_cancellable(cancel, &AtomicBool::new(false), async {
            self.ensure_repository(false).await?;
            let bytes = self.read_manifest_bytes(name).await?;
            let (manifest, hash) = manifest::decode(&self.display_path(&self.manifest_path(name)), &bytes)?;
            if manifest.name != name {
                return Err(Error::Corrupt {
                    path: self.display_path(&self.manifest_path(name)),
                    what: format!("the manifest is backup {:?}'s", manifest.name),
                });
            }
            let objects = manifest.distinct_objects();
            if let Some(hold) = hold {
                hold.keep(objects.iter().map(|o| o.blake3.clone()));
            }
            counters.start(&objects);
            let mut report = PullReport {
                backup: name.to_string(),
                objects_total: objects.len() as u64,
                bytes_total: total_size(&objects),
                ..PullReport::default()
            };
            if let Some((_, local_hash)) = local.read_manifest(name)? {
                if local_hash != hash {
                    return Err(BackupError::Exists { name: name.to_string() }.into());
                }
                report.already_there = true;
                report.objects_present = report.objects_total;
                objects.iter().for_each(|o| watch.present(o));
                return Ok(report);
            }
            let (have, missing): (Vec<ObjectRef>, Vec<ObjectRef>) =
                objects.into_iter().partition(|o| local.has_object(o));
            report.objects_present = have.len() as u64;
            have.iter().for_each(|o| watch.present(o));
            let fetched = futures::stream::iter(
                missing.iter().map(|object| self.fetch_object(local, name, object, &temps, &watch, cancel)),
            )
            .buffer_unordered(self.parallel())
            .try_collect::<Vec<()>>()
            .await;
            fetched?;
            report.objects_fetched = missing.len() as u64;
            report.bytes_fetched = total_size(&missing);
            // Every object the manifest names, not only those fetched: one
            // found on disk may have been placed by a pull or backup that
            // failed before making its folder entry durable.
            let all = || have.iter().chain(&missing).map(|o| o.blake3.as_str());
            local.sync_shards(all())?;
            if let Some(hold) = hold {
                hold.settled(all());
            }
            local.write_manifest_bytes(name, &bytes)?;
            Ok(report)
        });
        if pulled.is_err() {
            for tmp in temps.lock().map(|t| t.clone()).unwrap_or_default() {
                let _ = std::fs::remove_file(tmp);
            }
        }
        pulled
    }

    async fn fetch_object(
        &self,
        local: &Repository,
        backup: &str,
        object: &ObjectRef,
        temps: &std::sync::Mutex<Vec<std::path::PathBuf>>,
        watch: &Watch<'_>,
        cancel: &AtomicBool,
    ) -> Result<()> {
        let bad =
            |problem: ObjectProblem| -> Error { RemoteError::BadObject { backup: backup.to_string(), problem }.into() };
        let path: StorePath = self.object_path(&object.blake3);
        let got = match self.store.get(&path).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(bad(ObjectProblem::Missing { blake3: object.blake3.clone() }));
            }
            Err(e) => return Err(self.store_error(e)),
        };
        if got.meta.size != object.size {
            return Err(bad(ObjectProblem::WrongSize {
                blake3: object.blake3.clone(),
                expected: object.size,
                found: got.meta.size,
            }));
        }
        let (tmp, target) = local.incoming_object(&object.blake3)?;
        if let Ok(mut list) = temps.lock() {
            list.push(tmp.clone());
        }
        let outcome: Result<()> = async {
            let mut file = tokio::fs::File::create(&tmp).await.at(&tmp)?;
            let mut hasher = blake3::Hasher::new();
            let mut written = 0u64;
            let mut stream = got.into_stream();
            while let Some(chunk) = stream.next().await {
                if cancel.load(Ordering::Relaxed) {
                    return Err(Error::Interrupted);
                }
                let chunk = chunk.map_err(|e| self.store_error(e))?;
                written += chunk.len() as u64;
                if written > object.size {
                    return Err(bad(ObjectProblem::WrongSize {
                        blake3: object.blake3.clone(),
                        expected: object.size,
                        found: written,
                    }));
                }
                hasher.update(&chunk);
                file.write_all(&chunk).await.at(&tmp)?;
                watch.bytes(chunk.len() as u64);
            }
            let actual = hasher.finalize().to_hex().to_string();
            if written != object.size {
                return Err(bad(ObjectProblem::WrongSize {
                    blake3: object.blake3.clone(),
                    expected: object.size,
                    found: written,
                }));
            }
            if actual != object.blake3 {
                return Err(bad(ObjectProblem::Corrupt { blake3: object.blake3.clone(), actual }));
            }
            file.sync_all().await.at(&tmp)?;
            drop(file);
            tokio::fs::rename(&tmp, &target).await.at(&target)?;
            watch.counters.object_done();
            Ok(())
        }
        .await;
        if outcome.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        outcome
    }
}

/// Reads until `buf` is full or the file ends; the bytes read.
async fn read_full(file: &mut tokio::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = file.read(&mut buf[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}
