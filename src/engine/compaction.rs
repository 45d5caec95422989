//! Compaction runs and what decides them.

use super::*;

impl Inner {
    pub(super) fn compact(&self) -> Result<()> {
        let compacted = self.compact_serially();
        // Outside the compaction lock, which a restore swap takes first;
        // also after a failed job, which may follow installed ones.
        if !matches!(compacted, Ok(0)) {
            self.installed(InstallCause::Compaction);
        }
        compacted.map(|_| ())
    }

    /// Runs the compaction jobs; returns how many installed.
    pub(super) fn compact_serially(&self) -> Result<usize> {
        let _serial = lock(&self.compact_serial);
        let snapshot = self.snapshot();
        let jobs = compact::plan(&snapshot.version);
        let mut installed = 0;
        let catalog = snapshot.catalog.clone();
        drop(snapshot);
        for job in jobs {
            let Some(database) = catalog.database_by_id(job.db_id) else { continue };
            let Some(table) = database.table_by_id(job.table_id) else { continue };
            let edit = compact::run(
                &job,
                &self.tree,
                &database.name,
                table,
                self.config.compacted,
                self.clock.now_ns(),
                self.config.compaction_memory,
            )?;
            drop(job);
            self.publish(|s| {
                let version = self.tree.install(edit)?;
                Ok((Snapshot { version, ..s.clone() }, ()))
            })?;
            self.stats.compactions.fetch_add(1, Ordering::Relaxed);
            installed += 1;
        }
        Ok(installed)
    }

    /// Flushed files waiting for compaction: in all, and the most that
    /// reach one table's window.
    pub(super) fn gen0_pressure(&self) -> (usize, usize) {
        let version = self.tree.current();
        let mut per_window: HashMap<(u32, u32, i64), usize> = HashMap::new();
        let mut total = 0;
        for f in version.files.iter().filter(|f| f.meta.level == LEVEL_GEN0) {
            total += 1;
            let m = &f.meta;
            let (first, last) = (crate::tree::window_start(m.time_min), crate::tree::window_start(m.time_max));
            // Files written before flushes split by window may span many;
            // each counts for its first and last.
            let windows: &[i64] = if first == last { &[first] } else { &[first, last] };
            for &w in windows {
                *per_window.entry((m.db_id, m.table_id, w)).or_default() += 1;
            }
        }
        (total, per_window.into_values().max().unwrap_or(0))
    }
}
