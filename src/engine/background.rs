//! The background threads: the flush and compaction loops and their stopping.

use super::*;

/// Stops and joins the background threads when the last [`Engine`] clone goes.
pub(super) struct Background {
    pub(super) inner: Arc<Inner>,
    pub(super) threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Ok(mut s) = self.inner.signal.lock() {
            s.shutdown = true;
        }
        self.inner.wake.notify_all();
        if let Ok(mut threads) = self.threads.lock() {
            for t in threads.drain(..) {
                let _ = t.join();
            }
        }
    }
}

impl Inner {
    /// Waits up to `timeout` for a wake-up; false on shutdown.
    pub(super) fn wait(&self, timeout: Duration) -> bool {
        let signal = lock(&self.signal);
        if signal.shutdown {
            return false;
        }
        let (signal, _) = self.wake.wait_timeout(signal, timeout).unwrap_or_else(|p| p.into_inner());
        !signal.shutdown
    }

    pub(super) fn flush_loop(&self) {
        let tick = (self.config.flush_age / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        while self.wait(tick) {
            let wanted = mem::take(&mut lock(&self.signal).flush_wanted);
            let due = {
                let active = lock(&self.active);
                let age_due = active
                    .first_write_ns()
                    .is_some_and(|t| self.clock.now_ns().saturating_sub(t) >= self.config.flush_age.as_nanos() as i64);
                active.bytes() >= self.config.flush_bytes || age_due
            };
            if (wanted || due) && !self.closed.load(Ordering::SeqCst) {
                if let Err(e) = self.flush_and_tell() {
                    tracing::error!(error = %e, "background flush failed; the data stays in the WAL and will be retried");
                    std::thread::sleep(Duration::from_secs(1));
                }
                self.wake.notify_all();
            }
            self.stats.flush_checks.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(super) fn compact_loop(&self) {
        let tick = (self.config.compact_age / 4).clamp(Duration::from_millis(50), Duration::from_millis(500));
        // When this loop first saw gen0 files waiting (by the engine's clock).
        let mut waiting_since: Option<i64> = None;
        while self.wait(tick) {
            let (gen0, deepest) = self.gen0_pressure();
            let now = self.clock.now_ns();
            let since = match gen0 {
                0 => None,
                _ => Some(*waiting_since.get_or_insert(now)),
            };
            waiting_since = since;
            let aged = since.is_some_and(|t| now.saturating_sub(t) >= self.config.compact_age.as_nanos() as i64);
            let due = deepest >= self.config.compact_gen0_files || gen0 >= GEN0_FILES_LIMIT;
            if gen0 > 0 && (due || aged) {
                match self.compact() {
                    Ok(()) => waiting_since = None,
                    Err(e) => {
                        tracing::error!(error = %e, "background compaction failed; will retry");
                        std::thread::sleep(Duration::from_secs(5));
                    }
                }
            }
            self.stats.compaction_checks.fetch_add(1, Ordering::Relaxed);
        }
    }
}
