//! Reclaiming remote objects no manifest names, in two phases a grace
//! period apart, so that a push running at the same time never loses an
//! object it relies on (docs/FORMAT.md, "Remote repository", the sweep).
//!
//! Phase one writes a plan, `sweeps/<ulid>.json`: the objects no manifest
//! names at that moment. Phase two, in a later sweep once the plan is older
//! than the grace period, deletes each planned object that no manifest
//! names *then* and that was not written again after the plan (its
//! last-modified time is not newer than the plan's), then the plan. A push
//! renews every object it needs that a plan names (writes it again) and
//! creates its manifest within half the grace period of reading the plans,
//! so an object a push relies on is either named by its manifest or newer
//! than every plan that could delete it.

use std::collections::HashSet;
use std::time::Duration;

use object_store::{ObjectMeta, ObjectStoreExt};

use super::Remote;
use crate::backup::manifest;
use crate::error::{Error, Result};

/// Where sweep plans live, under the remote's prefix.
pub(super) const SWEEPS_DIR: &str = "sweeps";

/// The default of [`super::RemoteOptions::sweep_grace`].
pub const DEFAULT_SWEEP_GRACE: Duration = Duration::from_secs(3600);

/// What a sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SweepReport {
    /// Objects this sweep planned for a later one to delete.
    pub planned: u64,
    /// Objects deleted (planned at least a grace period ago, still unnamed).
    pub deleted: u64,
    pub bytes_freed: u64,
    /// Plans still inside their grace period.
    pub pending_plans: u64,
    /// Probe objects older than the grace period (a probe lives for two
    /// requests; an old one was left by a process that stopped between them).
    pub probes_deleted: u64,
}

/// A plan as read back: its objects and when the store wrote it.
pub(super) struct PendingPlan {
    meta: ObjectMeta,
    objects: Vec<String>,
    grace_secs: u64,
}

impl Remote {
    /// Every sweep plan on the remote. An unreadable plan is an error: a
    /// push must know every object a plan could delete.
    pub(super) async fn sweep_plans(&self) -> Result<Vec<PendingPlan>> {
        let mut plans = Vec::new();
        for meta in self.list_dir(SWEEPS_DIR).await? {
            let Some(bytes) = self.get_bytes(&meta.location).await? else { continue };
            let (objects, grace_secs) = super::records::decode_sweep_plan(&bytes)
                .map_err(|what| Error::Corrupt { path: self.display_path(&meta.location), what })?;
            plans.push(PendingPlan { meta, objects, grace_secs });
        }
        Ok(plans)
    }

    /// The objects the plans name, and the longest grace period among them.
    pub(super) fn planned(plans: &[PendingPlan]) -> (HashSet<String>, Duration) {
        let names = plans.iter().flat_map(|p| p.objects.iter().cloned()).collect();
        let grace = plans.iter().map(|p| Duration::from_secs(p.grace_secs)).max().unwrap_or_default();
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
            let plans = self.sweep_plans().await?;
            let named = self.named_objects().await?;
            let objects = self.objects().await?;
            let now = chrono::Utc::now();
            let grace = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
            let mut still_pending: HashSet<String> = HashSet::new();
            let mut deleted: HashSet<String> = HashSet::new();
            // Plans are read before the manifests: a manifest created after
            // that reading renewed what those plans name.
            for plan in plans {
                if now - plan.meta.last_modified < grace {
                    report.pending_plans += 1;
                    still_pending.extend(plan.objects);
                    continue;
                }
                for name in &plan.objects {
                    if !objects.contains_key(name) || named.contains(name) {
                        continue;
                    }
                    // Looked at again right before the delete: a push may
                    // have written it since this sweep's listing.
                    let meta = match self.store.head(&self.object_path(name)).await {
                        Ok(meta) => meta,
                        Err(object_store::Error::NotFound { .. }) => continue,
                        Err(e) => return Err(self.store_error(e)),
                    };
                    // Written in the plan's second or later (stores keep
                    // seconds): a push may rely on it.
                    if named.contains(name) || meta.last_modified.timestamp() >= plan.meta.last_modified.timestamp() {
                        continue;
                    }
                    match self.store.delete(&meta.location).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                            deleted.insert(name.clone());
                            report.deleted += 1;
                            report.bytes_freed += meta.size;
                        }
                        Err(e) => return Err(self.store_error(e)),
                    }
                }
                self.store.delete(&plan.meta.location).await.map_err(|e| self.store_error(e))?;
            }
            for probe in self.list_dir(super::PROBES_DIR).await? {
                if now - probe.last_modified >= grace {
                    match self.store.delete(&probe.location).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => report.probes_deleted += 1,
                        Err(e) => return Err(self.store_error(e)),
                    }
                }
            }
            let candidates: Vec<String> = objects
                .keys()
                .filter(|name| !named.contains(*name) && !still_pending.contains(*name) && !deleted.contains(*name))
                .cloned()
                .collect();
            if !candidates.is_empty() {
                report.planned = candidates.len() as u64;
                let body = super::records::encode_sweep_plan(&candidates, grace.num_seconds().max(0) as u64);
                let path = self.path(&[SWEEPS_DIR, &format!("{}.json", ulid::Ulid::new())]);
                self.store.put(&path, body.into()).await.map_err(|e| self.store_error(e))?;
            }
            Ok(report)
        })
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
