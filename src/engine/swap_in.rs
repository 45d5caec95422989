//! A restore's in-place swap: the write fence, the commit record, the new snapshot.

use super::*;

impl Inner {
    pub(super) fn swap_in(
        &self,
        restore_id: &str,
        mut catalog: Catalog,
        files: Vec<(FileMeta, SegmentReader)>,
    ) -> Result<()> {
        self.check_writable()?;
        // Lock order: compaction, flush, catalog changes, the buffer (which
        // fences writes), version installs.
        let _compact = lock(&self.compact_serial);
        let _flush = lock(&self.flush_serial);
        let _change = lock(&self.catalog_change);
        let mut active = lock(&self.active);
        let _publish = lock(&self.publish);
        let _install = self.tree.install_lock()?;
        self.check_writable()?;
        let wal_from = self.wal.rotate().map_err(|e| self.wal_failed(e))?;
        let old = self.tree.current();
        // Above every snapshot on disk too: one a failed persist left behind
        // must not outrank the restored catalog at the next open.
        let on_disk = self.catalog_store.load_latest()?.sequence;
        catalog.sequence = self.snapshot().catalog.sequence.max(old.record.catalog_sequence).max(on_disk) + 1;
        let next_file_id =
            files.iter().map(|(m, _)| m.id.saturating_add(1)).max().unwrap_or(1).max(old.record.next_file_id);
        let record = SwapRecord {
            restore_id: restore_id.to_string(),
            catalog: catalog.encode(),
            version: VersionRecord {
                number: old.record.number + 1,
                catalog_sequence: catalog.sequence,
                wal_replay_from: wal_from,
                next_file_id,
                files: files.iter().map(|(m, _)| m.clone()).collect(),
            },
        };
        // From the first byte of the commit record on, the restore may have
        // happened (a failed commit may still have left the record): if this
        // does not finish, nothing may change the old state any more, since
        // the next open applies the record over it.
        if let Err(e) = swap::commit(&self.dir, &record) {
            let path = DataDir::new(&self.dir).swap_record();
            if matches!(std::fs::symlink_metadata(&path), Err(ref m) if m.kind() == std::io::ErrorKind::NotFound) {
                // Nothing was published: the old state stands.
                return Err(e);
            }
            self.tree.seal();
            self.poison(format!("restore {restore_id} may have committed ({e}); reopen to finish it"));
            return Err(e);
        }
        // The swap wrote the catalog folder through a store of its own: the
        // next change here starts a snapshot rather than append to a log it
        // may have replaced.
        self.catalog_store.forget();
        if let Err(e) = swap::apply(&self.dir, &record) {
            self.tree.seal();
            self.poison(format!("restore {restore_id} committed but was not applied ({e}); reopen to finish it"));
            return Err(e);
        }
        // Catalog, files and epoch at once: a writer that resolved against
        // the old catalog finds the epoch moved and resolves again.
        let version = self.tree.replace(record.version, files);
        let rolled_back = mem::take(&mut *active);
        let old_snapshot = self.snapshot();
        self.publish_locked(|s| {
            Ok((Snapshot { catalog: Arc::new(catalog), version, frozen: Vec::new(), epoch: s.epoch + 1 }, ()))
        })?;
        drop(active);
        // Freed outside the fence: large buffers take a while to drop.
        drop(rolled_back);
        drop(old_snapshot);
        if let Err(e) = self.wal.remove_files_before(wal_from) {
            tracing::warn!(error = %e, "could not remove WAL files a restore rolled back; the next open skips them");
        }
        tracing::info!(restore = restore_id, "restore swapped in");
        Ok(())
    }
}
