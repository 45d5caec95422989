//! The export cache's side of the engine: an [`InstallHook`] that keeps the
//! cache in step with the engine's compacted files (conversions of files
//! that are gone are removed) and, when asked, converts each window as soon
//! as compaction writes it, so that even its first export streams a file.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use super::TableExport;
use super::cache::ExportCache;
use crate::snapshot::{InstallCause, InstallHook, Installed};
use crate::tree::{LEVEL_COMPACTED, LiveFile, Version};

/// See the module documentation; made by [`ExportCache::hook`].
#[derive(Debug)]
struct CacheHook {
    cache: Arc<ExportCache>,
    warm: bool,
    /// The compacted files the hook was last told of: a compaction's new
    /// windows are the ones not among them.
    seen: Mutex<HashSet<[u8; 32]>>,
}

impl ExportCache {
    /// The hook to give [`crate::EngineBuilder::on_install`]: the cache
    /// reads its folder when the engine opens, drops the conversions of
    /// files that compaction or a restore replaced, and with `warm`
    /// converts each new compacted window on the compacting thread, after
    /// the compaction. Without it the cache keeps nothing.
    pub fn hook(self: &Arc<Self>, warm: bool) -> Arc<dyn InstallHook> {
        Arc::new(CacheHook { cache: self.clone(), warm, seen: Mutex::new(HashSet::new()) })
    }
}

/// The blake3 of every compacted file of `version`.
fn compacted_hashes(version: &Version) -> HashSet<[u8; 32]> {
    version.files.iter().filter(|f| f.meta.level == LEVEL_COMPACTED).map(|f| f.meta.blake3).collect()
}

impl InstallHook for CacheHook {
    fn installed(&self, event: &Installed<'_>) {
        if event.cause == InstallCause::Flush {
            // Flushes add gen0 files only: nothing to convert or drop.
            return;
        }
        let live = compacted_hashes(event.snapshot.version());
        let before = std::mem::replace(&mut *self.seen.lock().unwrap_or_else(|p| p.into_inner()), live.clone());
        self.cache.load_for(live);
        if self.warm && event.cause == InstallCause::Compaction {
            self.warm(event, &before);
        }
    }
}

impl CacheHook {
    /// Converts the compacted windows of the event's snapshot that are not
    /// in `before` into the cache, newest first. A failure is logged: the
    /// window is converted when it is exported instead.
    fn warm(&self, event: &Installed<'_>, before: &HashSet<[u8; 32]>) {
        let (version, catalog) = (event.snapshot.version(), event.snapshot.catalog());
        let mut fresh: Vec<&Arc<LiveFile>> = version
            .files
            .iter()
            .filter(|f| f.meta.level == LEVEL_COMPACTED && !before.contains(&f.meta.blake3))
            .collect();
        fresh.sort_by_key(|f| std::cmp::Reverse(f.meta.window_start_ns));
        // A backfill compacts many windows at once: convert no more than
        // the cache holds (judging the next window by the last one), or the
        // oldest conversions would evict each other.
        let mut budget = self.cache.usage().limit_bytes;
        let mut last = 0;
        for file in fresh {
            if budget == 0 || budget < last || event.stopping() {
                break;
            }
            let (Some(window), Some(db)) = (file.meta.window_start_ns, catalog.database_by_id(file.meta.db_id)) else {
                continue;
            };
            let Some(table) = db.table_by_id(file.meta.table_id) else { continue };
            let warmed = TableExport::pinned(
                version.clone(),
                catalog,
                self.cache.clone(),
                event.now_ns,
                &db.name,
                &table.name,
                &[window],
            )
            .and_then(|export| export.ensure_cached(0));
            match warmed {
                Ok(bytes) => {
                    last = bytes.unwrap_or(0);
                    budget = budget.saturating_sub(last);
                }
                Err(e) => {
                    tracing::warn!(db = %db.name, table = %table.name, window, error = %e, "could not convert a compacted window for export");
                }
            }
        }
    }
}
