//! The write path: resolving against the catalog (persisting a changed catalog first), backpressure, and the WAL-append-and-insert critical section.

use super::*;

impl Inner {
    /// Resolves a write against the catalog; persists a changed catalog
    /// before the write can reach the WAL, so replay always finds its ids.
    pub(super) fn resolve(
        &self,
        f: impl Fn(&Catalog) -> Result<Resolved>,
        accept_partial: bool,
        db: &str,
    ) -> Result<Resolved> {
        let first = f(&self.catalog())?;
        // Before a new column reaches the catalog or a row the WAL.
        let request_bytes = Buffer::cost(&first.batch);
        if request_bytes > self.config.buffer_limit() {
            return Err(Error::BufferFull {
                request_bytes,
                buffered_bytes: 0,
                limit_bytes: self.config.buffer_limit(),
            });
        }
        if first.catalog.is_none() {
            return self.reject_unless_partial(first, accept_partial, db);
        }
        // New tables or columns: resolve again under the change lock so two
        // writers cannot both add conflicting columns.
        let _change = lock(&self.catalog_change);
        // A swap that failed after its commit poisoned the engine while this
        // waited: its catalog must not be written over.
        self.check_writable()?;
        let current = self.catalog();
        let mut resolved = f(&current)?;
        if !accept_partial && !resolved.errors.is_empty() {
            return self.reject_unless_partial(resolved, accept_partial, db);
        }
        if let Some(changed) = resolved.catalog.take() {
            self.catalog_store.persist(&changed).map_err(not_stored)?;
            self.publish(|s| Ok((Snapshot { catalog: Arc::new(changed), ..s.clone() }, ())))?;
        }
        Ok(resolved)
    }

    pub(super) fn reject_unless_partial(&self, resolved: Resolved, accept_partial: bool, db: &str) -> Result<Resolved> {
        if !accept_partial && !resolved.errors.is_empty() {
            self.stats.lines_rejected.fetch_add(resolved.errors.len() as u64, Ordering::Relaxed);
            return Err(Error::WriteRejected { db: db.to_string(), errors: resolved.errors });
        }
        Ok(resolved)
    }

    /// Backpressure: while the active buffer holds [`STALL_FACTOR`] times
    /// `flush_bytes` (writers outpace the flush thread), a write waits for a
    /// flush to take the buffer. The wait is bounded, so a flush that keeps
    /// failing slows writers down instead of hanging them.
    pub(super) fn throttle(&self) {
        if !self.config.background {
            return;
        }
        let stall = self.config.flush_bytes.saturating_mul(STALL_FACTOR);
        if lock(&self.active).bytes() < stall {
            return;
        }
        self.stats.write_stalls.fetch_add(1, Ordering::Relaxed);
        for _ in 0..50 {
            {
                let mut signal = lock(&self.signal);
                if signal.shutdown {
                    return;
                }
                signal.flush_wanted = true;
                self.wake.notify_all();
                let _ = self.wake.wait_timeout(signal, Duration::from_millis(20));
            }
            if lock(&self.active).bytes() < stall {
                return;
            }
        }
    }

    /// WAL append and buffer insert in one critical section (so the buffer
    /// holds writes in WAL order), then the group-commit fsync outside it.
    /// False, with nothing applied, when a restore swapped the data in since
    /// `epoch` (the batch was resolved against a catalog that is gone):
    /// resolve it again.
    pub(super) fn apply(&self, batch: WriteBatch, no_sync: bool, epoch: u64) -> Result<bool> {
        let rows = batch.row_count();
        if rows == 0 {
            return Ok(true);
        }
        self.throttle();
        let payload = batch.encode();
        let request_bytes = Buffer::cost(&batch);
        let (pos, flush_due) = {
            let mut active = lock(&self.active);
            self.check_writable()?;
            let snapshot = self.snapshot();
            if snapshot.epoch != epoch {
                return Ok(false);
            }
            // Flushes that fail or fall behind keep their buffers frozen:
            // count them too, so memory stays bounded either way.
            let (_, frozen) = snapshot.frozen_usage();
            drop(snapshot);
            let buffered_bytes = active.bytes() + frozen;
            let limit_bytes = self.config.buffer_limit();
            if request_bytes.saturating_add(buffered_bytes) > limit_bytes {
                drop(active);
                lock(&self.signal).flush_wanted = true;
                self.wake.notify_all();
                return Err(Error::BufferFull { request_bytes, buffered_bytes, limit_bytes });
            }
            let pos = self.wal.append(&payload).map_err(|e| self.append_failed(e))?;
            active.insert(&batch, self.clock.now_ns());
            (pos, active.bytes() >= self.config.flush_bytes)
        };
        if flush_due {
            lock(&self.signal).flush_wanted = true;
            self.wake.notify_all();
        }
        if !no_sync
            && self.config.durability == Durability::Sync
            && let Err(e) = self.wal.sync(pos)
        {
            self.poison(e.to_string());
            return Err(e.into());
        }
        // Logged before a restore's swap, which rolled it back with the rest:
        // say so rather than acknowledge data that is gone.
        if self.snapshot().epoch != epoch {
            return Err(Error::RolledBack);
        }
        self.stats.writes.fetch_add(1, Ordering::Relaxed);
        self.stats.rows_written.fetch_add(rows as u64, Ordering::Relaxed);
        Ok(true)
    }
}

/// An I/O error that kept a write from being logged, nothing of it applied.
pub(super) fn not_stored(e: Error) -> Error {
    match e {
        Error::Io { path, source } => Error::WriteNotStored { path, source },
        e => e,
    }
}
