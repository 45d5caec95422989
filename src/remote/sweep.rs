//! Reclaiming remote objects no manifest names, in two phases a grace
//! period apart, so that a push running at the same time never loses an
//! object it relies on (docs/FORMAT.md, "Remote repository", the sweep).
//!
//! Phase one writes a plan, `sweeps/<ulid>.json`: the loose objects no
//! manifest names at that moment, and the packs every member of which that
//! a manifest names has another copy (none named; or the named members
//! written to a new pack first, a repack, when a quarter of the pack's
//! bytes are unnamed). Phase two, in a later sweep once the plan is older
//! than the grace period, deletes each planned loose object that no
//! manifest names *then*, and each planned pack whose named members still
//! have another copy no plan names, when it was not written again after
//! the plan (its last-modified time is not newer than the plan's), then the
//! plan. A sweep acts on what it read for half a grace period at most, and
//! checks before each delete that its plan is still there (another sweep
//! has not run it). A push renews every object it needs that only planned files hold
//! (writes it again, loose or in a new pack) and creates its manifest
//! within half the grace period of reading the plans, so an object a push
//! relies on is either named by its manifest or held by a file newer than
//! every plan that could delete it.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use object_store::{ObjectMeta, ObjectStoreExt};

use super::Remote;
use super::holdings::{Location, MAX_PACKED_MEMBER, Pack};
use super::records::{PackEntry, PackWriter, SweepPlan};
use crate::backup::manifest;
use crate::error::{Error, Result};

/// Where sweep plans live, under the remote's prefix.
pub(super) const SWEEPS_DIR: &str = "sweeps";

/// A pack is repacked when at least 1/4 of its member bytes are of objects
/// no manifest names.
const REPACK_DEAD_SHARE: u64 = 4;

/// The default of [`super::RemoteOptions::sweep_grace`].
pub const DEFAULT_SWEEP_GRACE: Duration = Duration::from_secs(3600);

/// What a sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SweepReport {
    /// Objects this sweep planned for a later one to delete.
    pub planned: u64,
    /// Objects deleted (planned at least a grace period ago, still unnamed).
    pub deleted: u64,
    /// Packs this sweep planned: every member a manifest names has another
    /// copy (none named, or repacked by this sweep).
    pub packs_planned: u64,
    /// Packs deleted (planned at least a grace period ago, every named
    /// member with another copy then).
    pub packs_deleted: u64,
    /// Packs mostly of members no manifest names whose other members went to
    /// a new pack (the old one is planned), and those members' bytes.
    pub packs_repacked: u64,
    pub bytes_repacked: u64,
    /// Packs whose index cannot be read: never planned nor deleted (`quipu
    /// repo check` names them).
    pub packs_unreadable: u64,
    pub bytes_freed: u64,
    /// Plans still inside their grace period.
    pub pending_plans: u64,
    /// Half the grace period passed since this sweep read the plans and
    /// manifests: it stopped deleting (the rest waits for the next sweep)
    /// and planned nothing.
    pub stopped_early: bool,
    /// Probe objects older than the grace period (a probe lives for two
    /// requests; an old one was left by a process that stopped between them).
    pub probes_deleted: u64,
}

/// A plan as read back: its objects and when the store wrote it.
pub(super) struct PendingPlan {
    meta: ObjectMeta,
    plan: SweepPlan,
}

impl Remote {
    /// Every sweep plan on the remote. An unreadable plan is an error: a
    /// push must know every object a plan could delete.
    pub(super) async fn sweep_plans(&self) -> Result<Vec<PendingPlan>> {
        let mut plans = Vec::new();
        for meta in self.list_dir(SWEEPS_DIR).await? {
            let Some(bytes) = self.get_bytes(&meta.location).await? else { continue };
            let plan = super::records::decode_sweep_plan(&bytes)
                .map_err(|what| Error::Corrupt { path: self.display_path(&meta.location), what })?;
            plans.push(PendingPlan { meta, plan });
        }
        Ok(plans)
    }

    /// The objects and packs the plans name (both are blake3 names), and
    /// the longest grace period among them.
    pub(super) fn planned(plans: &[PendingPlan]) -> (HashSet<String>, Duration) {
        let names = plans.iter().flat_map(|p| p.plan.objects.iter().chain(&p.plan.packs).cloned()).collect();
        let grace = plans.iter().map(|p| Duration::from_secs(p.plan.grace_secs)).max().unwrap_or_default();
        (names, grace)
    }

    /// One sweep: deletes what plans at least `grace` old still name and no
    /// manifest names, then plans the objects no manifest names now. Run it
    /// periodically (each run finishes what one at least `grace` earlier
    /// planned). Fails without deleting anything when a manifest cannot be
    /// read.
    pub fn sweep(&self) -> Result<SweepReport> {
        let grace = self.sweep_grace();
        // A local repository has its own collector, which knows its jobs.
        if let Some(folder) = &self.folder
            && (folder.join(crate::backup::repo::LOCK_FILE).exists()
                || folder.join(crate::backup::repo::JOBS_DIR).exists())
        {
            return Err(super::RemoteError::InvalidUrl {
                url: self.url.clone(),
                why: "this is a local repository (it has a lock file or jobs folder); its server's garbage \
                      collection reclaims its objects"
                    .into(),
            }
            .into());
        }
        self.runtime.block_on(async {
            self.ensure_repository(false).await?;
            let mut report = SweepReport::default();
            let read_at = std::time::Instant::now();
            let plans = self.sweep_plans().await?;
            let (every_planned, _) = Remote::planned(&plans);
            let named = self.named_objects().await?;
            let holdings = self.holdings(None).await?;
            report.packs_unreadable = holdings.bad_packs.len() as u64;
            let packs: HashMap<&str, &Pack> = holdings.packs.iter().map(|p| (p.name.as_str(), p.as_ref())).collect();
            // Another copy of a member of `pack`, one no plan names and this
            // sweep did not delete: so no sweep deletes it before a plan
            // names it and a grace period passes.
            let elsewhere = |entry: &PackEntry, pack: &str, deleted: &HashSet<String>| {
                holdings.locations(&entry.blake3).any(|l| {
                    let file = match l {
                        Location::Loose(_) => entry.blake3.as_str(),
                        Location::Packed(other, _) if other.name == pack => return false,
                        Location::Packed(other, _) => other.name.as_str(),
                    };
                    l.size() == entry.size && !deleted.contains(file) && !every_planned.contains(file)
                })
            };
            // The members of `pack` a manifest names and no other copy holds.
            let needed = |pack: &'_ Pack, deleted: &HashSet<String>| -> Vec<PackEntry> {
                let live = pack.entries.iter().filter(|e| named.contains(&e.blake3));
                live.filter(|e| !elsewhere(e, &pack.name, deleted)).cloned().collect()
            };
            let now = chrono::Utc::now();
            let grace_ns = grace;
            let grace = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
            let mut still_pending: HashSet<String> = HashSet::new();
            let mut deleted: HashSet<String> = HashSet::new();
            // Plans are read before the manifests: a manifest created after
            // that reading renewed what those plans name.
            for pending in plans {
                let plan_time = pending.meta.last_modified;
                // A plan runs after its own grace period too: pushes keep to
                // the longest one any plan records.
                let plan_grace = chrono::Duration::seconds(i64::try_from(pending.plan.grace_secs).unwrap_or(i64::MAX));
                if now - plan_time < grace.max(plan_grace) {
                    report.pending_plans += 1;
                    still_pending.extend(pending.plan.objects.into_iter().chain(pending.plan.packs));
                    continue;
                }
                let objects = pending.plan.objects.iter().map(|name| (name, false));
                let mut handled_elsewhere = false;
                for (name, is_pack) in objects.chain(pending.plan.packs.iter().map(|name| (name, true))) {
                    // What this sweep read is trusted only for half a grace
                    // period (pushes and other sweeps move on meanwhile), and
                    // a plan another sweep finished is not run twice: its
                    // deletions were decided on what that sweep saw.
                    if !grace_ns.is_zero() && read_at.elapsed() >= grace_ns / 2 {
                        report.stopped_early = true;
                        break;
                    }
                    let path = if is_pack {
                        // Deleted only when every member a manifest names
                        // has another copy (repacked, or pushed again).
                        match packs.get(name.as_str()) {
                            Some(pack) if needed(pack, &deleted).is_empty() => self.pack_path(name),
                            _ => continue,
                        }
                    } else if holdings.loose.contains_key(name) && !named.contains(name) {
                        self.object_path(name)
                    } else {
                        continue;
                    };
                    // Looked at again right before the delete: a push may
                    // have written it since this sweep's listing.
                    let meta = match self.store.head(&path).await {
                        Ok(meta) => meta,
                        Err(object_store::Error::NotFound { .. }) => continue,
                        Err(e) => return Err(self.store_error(e)),
                    };
                    // Written in the plan's second or later (stores keep
                    // seconds): a push may rely on it.
                    if meta.last_modified.timestamp() >= plan_time.timestamp() {
                        continue;
                    }
                    match self.store.head(&pending.meta.location).await {
                        Ok(_) => {}
                        Err(object_store::Error::NotFound { .. }) => {
                            handled_elsewhere = true;
                            break;
                        }
                        Err(e) => return Err(self.store_error(e)),
                    }
                    match self.store.delete(&meta.location).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                            deleted.insert(name.clone());
                            if is_pack {
                                report.packs_deleted += 1;
                            } else {
                                report.deleted += 1;
                            }
                            report.bytes_freed += meta.size;
                        }
                        Err(e) => return Err(self.store_error(e)),
                    }
                }
                if report.stopped_early {
                    break;
                }
                if !handled_elsewhere {
                    match self.store.delete(&pending.meta.location).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                        Err(e) => return Err(self.store_error(e)),
                    }
                }
            }
            for probe in self.list_dir(super::PROBES_DIR).await? {
                if now - probe.last_modified >= grace {
                    match self.store.delete(&probe.location).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => report.probes_deleted += 1,
                        Err(e) => return Err(self.store_error(e)),
                    }
                }
            }
            if report.stopped_early {
                tracing::warn!(remote = %self.url, "sweep stopped after half its grace period; run it again");
                return Ok(report);
            }
            let fresh = |name: &String| !still_pending.contains(name) && !deleted.contains(name);
            let objects: Vec<String> =
                holdings.loose.keys().filter(|name| !named.contains(*name) && fresh(name)).cloned().collect();
            // Packs no manifest needs, and packs mostly of members no
            // manifest names: their needed members go to a new pack first.
            let mut plan_packs = Vec::new();
            // Copies this sweep deleted or plans count for nothing.
            let mut going = deleted.clone();
            for pack in holdings.packs.iter().filter(|p| fresh(&p.name)) {
                let members: u64 = pack.entries.iter().fold(0u64, |sum, e| sum.saturating_add(e.size));
                let live: u64 = pack
                    .entries
                    .iter()
                    .filter(|e| named.contains(&e.blake3))
                    .fold(0u64, |sum, e| sum.saturating_add(e.size));
                let dead = members - live;
                let keep = needed(pack, &going);
                // A member too large to hold in memory is not read (this
                // build never packs one); the pack stays whole.
                if keep.iter().any(|e| e.size > MAX_PACKED_MEMBER) {
                    continue;
                }
                if keep.is_empty() || (dead > 0 && dead >= members / REPACK_DEAD_SHARE) {
                    if !keep.is_empty() {
                        if !self.repack(pack, &keep).await? {
                            continue;
                        }
                        report.packs_repacked += 1;
                        report.bytes_repacked += keep.iter().map(|e| e.size).sum::<u64>();
                    }
                    going.insert(pack.name.clone());
                    plan_packs.push(pack.name.clone());
                }
            }
            if !objects.is_empty() || !plan_packs.is_empty() {
                report.planned = objects.len() as u64;
                report.packs_planned = plan_packs.len() as u64;
                let plan = SweepPlan { objects, packs: plan_packs, grace_secs: grace.num_seconds().max(0) as u64 };
                let path = self.path(&[SWEEPS_DIR, &format!("{}.json", ulid::Ulid::new())]);
                let body = super::records::encode_sweep_plan(&plan);
                self.store.put(&path, body.into()).await.map_err(|e| self.store_error(e))?;
            }
            Ok(report)
        })
    }

    /// Writes the members `keep` of `pack` into a new pack, each checked
    /// against its name on the way: false (and a warning) when one does not
    /// hash to its name or the pack is gone, and nothing is written.
    async fn repack(&self, pack: &Pack, keep: &[PackEntry]) -> Result<bool> {
        let ranges: Vec<std::ops::Range<u64>> = keep.iter().map(|e| e.offset..e.end()).collect();
        let Some(members) = self.ranges(&pack.meta, &ranges).await? else { return Ok(false) };
        let mut writer = PackWriter::with_capacity(ranges.iter().map(|r| (r.end - r.start) as usize).sum());
        for (entry, bytes) in keep.iter().zip(&members) {
            let hash = blake3::hash(bytes);
            if hash.to_hex().as_str() != entry.blake3 {
                tracing::warn!(remote = %self.url, pack = %pack.name, member = %entry.blake3, "pack member does not hash to its name; pack kept whole (`quipu repo check --read-data` names it)");
                return Ok(false);
            }
            writer.add(&hash, bytes);
        }
        let (bytes, name) = writer.finish();
        let path = self.pack_path(&name);
        self.store.put(&path, bytes.into()).await.map_err(|e| self.store_error(e))?;
        self.sync_folder_files([path])?;
        Ok(true)
    }

    /// Every object some manifest names; fails on an unreadable manifest.
    async fn named_objects(&self) -> Result<HashSet<String>> {
        let mut named = HashSet::new();
        for meta in self.list_dir(crate::backup::repo::MANIFESTS_DIR).await? {
            let Some(bytes) = self.get_bytes(&meta.location).await? else { continue };
            let (m, _) = manifest::decode(&self.display_path(&meta.location), &bytes)?;
            named.extend(m.objects().map(|o| o.blake3));
        }
        Ok(named)
    }
}
