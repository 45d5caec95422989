//! Push and pull: a backup's objects between the local repository and a
//! remote, several at once, each hashed on the way, the manifest last.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as StorePath;
use object_store::{ObjectStoreExt, PutPayload, WriteMultipart};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::holdings::{Holdings, Pack};
use super::records::{PACK_ENTRY_LEN, PACK_FOOTER_LEN, PackEntry, PackWriter};
use super::{Remote, RemoteError};
use crate::backup::error::ObjectProblem;
use crate::backup::manifest::{self, ObjectRef};
use crate::backup::{BackupError, Hold, Repository};
use crate::error::{Error, IoContext, Result};

/// Objects up to this many parts go up in one request.
const SINGLE_PUT_PARTS: u64 = 4;
/// Parts of one multipart upload in flight at once.
const PARTS_IN_FLIGHT: usize = 2;
/// The members' bytes of one pack at most, and of one ranged read of a
/// pull.
const PACK_TARGET_BYTES: u64 = 16 << 20;

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
        // The local manifest decodes while the remote's is fetched: a push
        // of a backup the remote holds already costs about one GET.
        let (decoded, fetched) = std::thread::scope(|scope| {
            let decoding = scope.spawn(|| local.decode_manifest(name, &manifest_bytes));
            let fetched = self.run_cancellable(cancel, &AtomicBool::new(false), async {
                let path = self.manifest_path(name);
                let (remote, ()) = futures::try_join!(self.get_bytes(&path), self.ensure_repository(true))?;
                Ok(remote)
            });
            (decoding.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)), fetched)
        });
        let (manifest, hash) = decoded?;
        let remote_manifest = fetched?;
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
            if self.same_manifest(name, &hash, &manifest_bytes, remote_manifest.as_deref())? {
                report.already_there = true;
                report.objects_present = report.objects_total;
                objects.iter().for_each(|o| watch.present(o));
                return Ok(report);
            }
            // Probed only when something is to be written.
            self.ensure_conditional().await?;
            let mut holdings = self.holdings(None).await?;
            let (have, missing): (Vec<ObjectRef>, Vec<ObjectRef>) =
                objects.into_iter().partition(|o| holdings.has(o));
            report.objects_present = have.len() as u64;
            have.iter().for_each(|o| watch.present(o));
            self.send_objects(local, &missing, Some(&watch), cancel).await?;
            report.objects_sent = missing.len() as u64;
            report.bytes_sent = total_size(&missing);
            // The sweep rule (sweep.rs): send again, from the local copy,
            // every object only planned copies hold (a new pack, or a new
            // write of a loose object, newer than the plan) and every object
            // a finished sweep removed meanwhile, then make the manifest
            // within half the longest grace period of reading the plans.
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
                holdings = self.holdings(Some(&holdings)).await?;
                let renew: Vec<ObjectRef> =
                    all.iter().filter(|o| holdings.has(o) && holdings.only_planned(o, &planned)).cloned().collect();
                renewed.extend(self.send_objects(local, &renew, None, cancel).await?);
                holdings = self.holdings(Some(&holdings)).await?;
                let gone: Vec<ObjectRef> = all.iter().filter(|o| !holdings.has(o)).cloned().collect();
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
            self.sync_folder_files(all.iter().flat_map(|o| holdings.paths_of(self, o)))?;
            // The commit point: a conditional create, so a push racing this
            // one under the same name cannot be silently replaced.
            let path = self.manifest_path(name);
            if cancel.load(Ordering::Relaxed) {
                return Err(Error::Interrupted);
            }
            committed.store(true, Ordering::Release);
            if !self.create(&path, manifest_bytes.clone().into()).await? {
                let there = self.get_bytes(&path).await?;
                if !self.same_manifest(name, &hash, &manifest_bytes, there.as_deref())? {
                    return Err(RemoteError::ManifestExists { url: self.url.clone(), name: name.to_string() }.into());
                }
            }
            self.sync_folder_manifest(name)?;
            // A sweep that looked at a file just before this push renewed it
            // may delete it just after (sweep.rs): only renewed files can be
            // in that window (a renewal that made a new pack is in no plan,
            // but one whose bytes match a planned pack rewrote it), so look
            // at them once more and send again what is gone.
            let mut gone = Vec::new();
            for sent in renewed {
                match self.store.head(&sent.path).await {
                    Ok(meta) if meta.size == sent.size => {}
                    Ok(_) | Err(object_store::Error::NotFound { .. }) => gone.extend(sent.objects),
                    Err(e) => return Err(self.store_error(e)),
                }
            }
            if !gone.is_empty() {
                tracing::warn!(remote = %self.url, backup = name, objects = gone.len(), "objects removed by a sweep during the push; sent again");
                let sent = self.send_objects(local, &gone, None, &after_commit).await?;
                self.sync_folder_files(sent.iter().map(|s| s.path.clone()))?;
            }
            Ok(report)
        })
    }

    /// Sends `objects`: those under [`RemoteOptions::pack_below`](super::RemoteOptions::pack_below)
    /// bundled in packs, the others on their own; `watch` hears of the
    /// bytes and objects (none for objects sent again, which were counted
    /// once). What was written, file by file.
    async fn send_objects(
        &self,
        local: &Repository,
        objects: &[ObjectRef],
        watch: Option<&Watch<'_>>,
        cancel: &AtomicBool,
    ) -> Result<Vec<Sent>> {
        enum Send {
            Pack(Vec<ObjectRef>),
            Loose(ObjectRef),
        }
        let below = self.pack_below();
        let (small, large): (Vec<&ObjectRef>, Vec<&ObjectRef>) = objects.iter().partition(|o| o.size < below);
        let mut groups: Vec<(Vec<ObjectRef>, u64)> = Vec::new();
        for object in small {
            match groups.last_mut() {
                Some((group, bytes)) if *bytes + object.size <= PACK_TARGET_BYTES => {
                    group.push(object.clone());
                    *bytes += object.size;
                }
                _ => groups.push((vec![object.clone()], object.size)),
            }
        }
        let sends =
            groups.into_iter().map(|(group, _)| Send::Pack(group)).chain(large.into_iter().cloned().map(Send::Loose));
        let silent = |_: u64| {};
        let on_bytes = |n: u64| watch.map_or_else(|| silent(n), |w| w.bytes(n));
        futures::stream::iter(sends.map(|send| async move {
            let sent = match send {
                Send::Pack(group) => self.send_pack(local, group, &on_bytes).await?,
                Send::Loose(object) => {
                    self.send_object(local, &object, &on_bytes, cancel).await?;
                    Sent { path: self.object_path(&object.blake3), size: object.size, objects: vec![object] }
                }
            };
            if let Some(w) = watch {
                sent.objects.iter().for_each(|_| w.counters.object_done());
            }
            Ok(sent)
        }))
        .buffer_unordered(self.parallel())
        .try_collect()
        .await
    }

    /// Sends `group` as one pack, each member hashed as it is read.
    async fn send_pack(
        &self,
        local: &Repository,
        group: Vec<ObjectRef>,
        on_bytes: &(dyn Fn(u64) + Sync),
    ) -> Result<Sent> {
        let sources: Vec<(ObjectRef, std::path::PathBuf)> =
            group.iter().map(|o| (o.clone(), local.object_path(&o.blake3))).collect();
        let (bytes, name) = blocking(move || build_pack(&sources)).await?;
        let size = bytes.len() as u64;
        let path = self.pack_path(&name);
        self.store.put(&path, PutPayload::from(bytes)).await.map_err(|e| self.store_error(e))?;
        on_bytes(total_size(&group));
        Ok(Sent { path, size, objects: group })
    }

    /// True when `remote`, the remote's manifest of backup `name` if it has
    /// one, has content hash `hash` (stored as `local`, the usual case,
    /// which needs no decoding); [`RemoteError::ManifestExists`] when it is
    /// another backup's.
    fn same_manifest(&self, name: &str, hash: &str, local: &[u8], remote: Option<&[u8]>) -> Result<bool> {
        let Some(bytes) = remote else { return Ok(false) };
        if bytes == local {
            return Ok(true);
        }
        let path = self.manifest_path(name);
        let (_, remote_hash) = manifest::decode(&self.display_path(&path), bytes)?;
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
        let bad = |hasher: &blake3::Hasher, read: u64| local_mismatch(&source, object, read, &hasher.finalize());
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
    /// each written to a temp file as it is hashed (pack members read by
    /// range), all made durable in one batch and renamed, then the manifest
    /// (the commit point). A missing or damaged remote
    /// object fails the pull with [`RemoteError::BadObject`] and installs
    /// no manifest. Takes the local repository's lock.
    pub fn pull(
        &self,
        local: &Repository,
        name: &str,
        on_bytes: &(dyn Fn(u64) + Sync),
        cancel: &AtomicBool,
    ) -> Result<PullReport> {
        self.pull_counted(local, name, &TransferCounters::default(), on_bytes, cancel)
    }

    /// [`Remote::pull`], counting its progress in `counters` as it goes.
    pub fn pull_counted(
        &self,
        local: &Repository,
        name: &str,
        counters: &TransferCounters,
        on_bytes: &(dyn Fn(u64) + Sync),
        cancel: &AtomicBool,
    ) -> Result<PullReport> {
        let _lock = local.lock()?;
        self.pull_unlocked(local, name, None, counters, on_bytes, cancel)
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
        let staging = Staging::default();
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
            let sync = crate::fs::BatchSync::start(local.dir()).at(local.dir())?;
            local.make_shards(missing.iter().map(|o| o.blake3.as_str()))?;
            let mut holdings = if missing.is_empty() { Holdings::default() } else { self.holdings(None).await? };
            let done_before =
                (counters.objects_done.load(Ordering::Relaxed), counters.bytes_done.load(Ordering::Relaxed));
            for attempt in 1.. {
                match self.fetch_missing(local, name, &missing, &holdings, &staging, &watch, cancel).await {
                    // A sweep deletes a pack once its members have another
                    // copy (a repack): look at the remote again, once.
                    Err(Error::Remote(RemoteError::BadObject { problem: ObjectProblem::Missing { .. }, .. }))
                        if attempt == 1 =>
                    {
                        staging.discard();
                        // What the first attempt fetched is fetched again.
                        counters.objects_done.store(done_before.0, Ordering::Relaxed);
                        counters.bytes_done.store(done_before.1, Ordering::Relaxed);
                        holdings = self.holdings(None).await?;
                    }
                    outcome => {
                        outcome?;
                        break;
                    }
                }
            }
            report.objects_fetched = missing.len() as u64;
            report.bytes_fetched = total_size(&missing);
            // Durable in one batch, then published under their names: no
            // object is found under its name before its bytes are durable.
            let staged = staging.files();
            let tmps: Vec<&std::path::Path> = staged.iter().map(|(tmp, _)| tmp.as_path()).collect();
            sync.finish(&tmps).at(local.dir())?;
            for (tmp, target) in &staged {
                std::fs::rename(tmp, target).at(target)?;
            }
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
            staging.discard();
        }
        pulled
    }

    /// Fetches `missing` into temp files of `staging`: from a pack when one
    /// holds the object, in runs of at most a pack's worth of bytes, each
    /// run one ranged read (neighbours coalesced); else the loose object.
    #[allow(clippy::too_many_arguments)]
    async fn fetch_missing(
        &self,
        local: &Repository,
        backup: &str,
        missing: &[ObjectRef],
        holdings: &Holdings,
        staging: &Staging,
        watch: &Watch<'_>,
        cancel: &AtomicBool,
    ) -> Result<()> {
        let sorted = holdings.sort_out(missing, |object| object);
        if let Some((problem, _)) = sorted.problems.into_iter().next() {
            return Err(RemoteError::BadObject { backup: backup.to_string(), problem }.into());
        }
        let mut fetches: Vec<Fetch> = sorted.loose.into_iter().map(Fetch::Loose).collect();
        for (pack, members) in sorted.packed {
            let mut run = Vec::new();
            let mut run_bytes = 0u64;
            for member in members {
                if !run.is_empty() && run_bytes + member.1.size > PACK_TARGET_BYTES {
                    fetches.push(Fetch::Packed(pack, std::mem::take(&mut run)));
                    run_bytes = 0;
                }
                run_bytes += member.1.size;
                run.push(member);
            }
            if !run.is_empty() {
                fetches.push(Fetch::Packed(pack, run));
            }
        }
        futures::stream::iter(fetches.into_iter().map(|fetch| async {
            match fetch {
                Fetch::Loose(object) => self.fetch_object(local, backup, object, staging, watch, cancel).await,
                Fetch::Packed(pack, members) => self.fetch_members(local, backup, pack, &members, staging, watch).await,
            }
        }))
        .buffer_unordered(self.parallel())
        .try_collect::<Vec<()>>()
        .await
        .map(drop)
    }

    async fn fetch_object(
        &self,
        local: &Repository,
        backup: &str,
        object: &ObjectRef,
        staging: &Staging,
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
        let (tmp, target) = local.incoming_path(&object.blake3);
        staging.add(tmp.clone(), target);
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
            // Made durable with the others, then renamed (the pull's commit).
            file.flush().await.at(&tmp)?;
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

impl Remote {
    /// Fetches `members` of `pack` in one ranged read (neighbours
    /// coalesced), each checked against its name and written to its temp
    /// file.
    async fn fetch_members(
        &self,
        local: &Repository,
        backup: &str,
        pack: &Pack,
        members: &[(&ObjectRef, &PackEntry)],
        staging: &Staging,
        watch: &Watch<'_>,
    ) -> Result<()> {
        let bad =
            |problem: ObjectProblem| -> Error { RemoteError::BadObject { backup: backup.to_string(), problem }.into() };
        let ranges: Vec<std::ops::Range<u64>> = members.iter().map(|(_, entry)| entry.offset..entry.end()).collect();
        let Some(got) = self.ranges(&pack.meta, &ranges).await? else {
            let blake3 = members.first().map(|(o, _)| o.blake3.clone()).unwrap_or_default();
            return Err(bad(ObjectProblem::Missing { blake3 }));
        };
        let mut writes = Vec::with_capacity(members.len());
        for ((object, _), bytes) in members.iter().zip(got) {
            if bytes.len() as u64 != object.size {
                return Err(bad(ObjectProblem::WrongSize {
                    blake3: object.blake3.clone(),
                    expected: object.size,
                    found: bytes.len() as u64,
                }));
            }
            let (tmp, target) = local.incoming_path(&object.blake3);
            staging.add(tmp.clone(), target);
            writes.push((object.blake3.clone(), tmp, bytes));
        }
        let abandoned = staging.abandoned();
        let problem = blocking(move || {
            for (blake3, tmp, bytes) in writes {
                let actual = blake3::hash(&bytes).to_hex().to_string();
                if actual != blake3 {
                    return Ok(Some(ObjectProblem::Corrupt { blake3, actual }));
                }
                std::fs::write(&tmp, &bytes).at(&tmp)?;
                // The pull gave up meanwhile and removed its temp files:
                // this one was written after, so it goes too.
                if abandoned.load(Ordering::Acquire) {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(Error::Interrupted);
                }
            }
            Ok(None)
        })
        .await?;
        if let Some(problem) = problem {
            return Err(bad(problem));
        }
        for (object, _) in members {
            watch.bytes(object.size);
            watch.counters.object_done();
        }
        Ok(())
    }
}

/// The temp files of a pull, each registered before it is created, with
/// the names they get once durable.
#[derive(Default)]
struct Staging {
    files: std::sync::Mutex<Vec<(std::path::PathBuf, std::path::PathBuf)>>,
    /// Raised when the files are discarded; writers still running (on
    /// blocking threads) remove what they write after it.
    abandoned: std::sync::Mutex<Arc<AtomicBool>>,
}

impl Staging {
    fn add(&self, tmp: std::path::PathBuf, target: std::path::PathBuf) {
        if let Ok(mut files) = self.files.lock() {
            files.push((tmp, target));
        }
    }

    fn files(&self) -> Vec<(std::path::PathBuf, std::path::PathBuf)> {
        self.files.lock().map(|f| f.clone()).unwrap_or_default()
    }

    fn abandoned(&self) -> Arc<AtomicBool> {
        self.abandoned.lock().map(|a| Arc::clone(&a)).unwrap_or_else(|_| Arc::new(AtomicBool::new(true)))
    }

    /// Removes every temp file so far; later ones start afresh.
    fn discard(&self) {
        if let Ok(mut abandoned) = self.abandoned.lock() {
            abandoned.store(true, Ordering::Release);
            *abandoned = Arc::new(AtomicBool::new(false));
        }
        let files = self.files.lock().map(|mut f| std::mem::take(&mut *f)).unwrap_or_default();
        for (tmp, _) in files {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// One read of a pull: a loose object, or members of one pack.
enum Fetch<'a> {
    Loose(&'a ObjectRef),
    Packed(&'a Arc<Pack>, Vec<(&'a ObjectRef, &'a PackEntry)>),
}

/// A file a push wrote (a loose object or a pack) and the objects in it.
pub(super) struct Sent {
    path: StorePath,
    size: u64,
    objects: Vec<ObjectRef>,
}

/// Runs `f` on tokio's blocking threads; a panic there is a panic here.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(outcome) => outcome,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(Error::Interrupted),
    }
}

/// A pack of the local objects at `sources`, each hashed as it is read; the
/// pack's bytes and name.
fn build_pack(sources: &[(ObjectRef, std::path::PathBuf)]) -> Result<(Vec<u8>, String)> {
    let members: u64 = sources.iter().fold(0u64, |sum, (o, _)| sum.saturating_add(o.size));
    let capacity = members as usize + sources.len() * PACK_ENTRY_LEN + PACK_FOOTER_LEN;
    let mut writer = PackWriter::with_capacity(capacity);
    for (object, source) in sources {
        let bytes = std::fs::read(source).at(source)?;
        let hash = blake3::hash(&bytes);
        if bytes.len() as u64 != object.size || hash.to_hex().as_str() != object.blake3 {
            return Err(local_mismatch(source, object, bytes.len() as u64, &hash));
        }
        writer.add(&hash, &bytes);
    }
    Ok(writer.finish())
}

/// A local object whose bytes do not match its name: it is not sent.
fn local_mismatch(source: &std::path::Path, object: &ObjectRef, read: u64, actual: &blake3::Hash) -> Error {
    Error::Corrupt {
        path: source.to_path_buf(),
        what: format!(
            "local object has {read} bytes hashing to {}, expected {} bytes hashing to its name",
            actual.to_hex(),
            object.size
        ),
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
