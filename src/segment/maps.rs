//! The process's budget of segment mappings.
//!
//! Every mapping is one entry in the kernel's per-process map table, whose
//! size is capped (`vm.max_map_count`, 65,530 by default on Linux). A data
//! folder with more live segments than that could not be opened, and a flush
//! of 100,000 tables failed at install on every retry. So a segment holds its
//! mapping only while the budget allows: past [`max_mapped_segments`], the
//! least recently used mappings are dropped (a CLOCK sweep), and a reader
//! maps its file again on its next block read. Readers in the middle of a
//! read hold an `Arc` of the mapping, so dropping it from the budget never
//! unmaps bytes in use. No file descriptor is kept: a file is opened only to
//! map it.
//!
//! Mapping again by path is sound because segment files are immutable and
//! unlinked only once no reader holds them.

use std::collections::VecDeque;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError, Weak};

use memmap2::Mmap;

use crate::error::{IoContext, Result};

/// The default budget: well under `vm.max_map_count`'s default of 65,530,
/// which also has to hold the process's libraries, thread stacks and heap.
pub const DEFAULT_MAX_MAPPED_SEGMENTS: usize = 16_384;

static BUDGET: Budget = Budget {
    max: AtomicUsize::new(DEFAULT_MAX_MAPPED_SEGMENTS),
    mapped: AtomicUsize::new(0),
    ring: Mutex::new(VecDeque::new()),
};

struct Budget {
    max: AtomicUsize,
    mapped: AtomicUsize,
    /// Mapped slots in CLOCK order; entries of dropped slots are skipped.
    ring: Mutex<VecDeque<Weak<Slot>>>,
}

/// Sets how many segment mappings the process keeps at most (at least 1).
/// It applies to every engine in the process, as the kernel's limit does.
pub fn set_max_mapped_segments(max: usize) {
    BUDGET.max.store(max.max(1), Ordering::Relaxed);
    BUDGET.evict();
}

/// The budget [`set_max_mapped_segments`] set.
pub fn max_mapped_segments() -> usize {
    BUDGET.max.load(Ordering::Relaxed)
}

/// Segment mappings held now.
pub fn mapped_segments() -> usize {
    BUDGET.mapped.load(Ordering::Relaxed)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One segment's mapping, dropped and made again as the budget says.
#[derive(Debug)]
pub(crate) struct Mapping {
    slot: Arc<Slot>,
}

#[derive(Debug)]
struct Slot {
    path: PathBuf,
    map: Mutex<Option<Arc<Mmap>>>,
    /// Read since the sweep last passed: spared once.
    used: AtomicBool,
    /// In the ring.
    queued: AtomicBool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let map = self.map.get_mut().unwrap_or_else(|p| p.into_inner());
        if map.take().is_some() {
            BUDGET.mapped.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Maps `path` read-only.
pub(crate) fn map_file(path: &Path) -> Result<Mmap> {
    let file = File::open(path).at(path)?;
    // SAFETY: segment files are immutable once published (written to a
    // temp file, fsynced, renamed); quipu never opens one for writing
    // again and deletes them only by unlinking, which keeps this mapping
    // valid. A foreign process truncating the file is outside our model.
    #[allow(unsafe_code)]
    let map = unsafe { Mmap::map(&file) }.at(path)?;
    Ok(map)
}

impl Mapping {
    /// Takes over `map`, a mapping of `path`, within the budget.
    pub(crate) fn new(path: &Path, map: Mmap) -> Mapping {
        let slot = Arc::new(Slot {
            path: path.to_path_buf(),
            map: Mutex::new(Some(Arc::new(map))),
            used: AtomicBool::new(true),
            queued: AtomicBool::new(false),
        });
        BUDGET.mapped.fetch_add(1, Ordering::Relaxed);
        BUDGET.admit(&slot);
        Mapping { slot }
    }

    /// The mapping, made again if the budget dropped it.
    pub(crate) fn get(&self) -> Result<Arc<Mmap>> {
        let slot = &self.slot;
        slot.used.store(true, Ordering::Relaxed);
        let mut guard = lock(&slot.map);
        if let Some(map) = &*guard {
            return Ok(map.clone());
        }
        let map = Arc::new(map_file(&slot.path)?);
        *guard = Some(map.clone());
        drop(guard);
        BUDGET.mapped.fetch_add(1, Ordering::Relaxed);
        BUDGET.admit(slot);
        Ok(map)
    }

    /// Whether the mapping is held now (for tests and metrics).
    pub(crate) fn is_mapped(&self) -> bool {
        lock(&self.slot.map).is_some()
    }
}

impl Budget {
    fn admit(&self, slot: &Arc<Slot>) {
        if !slot.queued.swap(true, Ordering::AcqRel) {
            let mut ring = lock(&self.ring);
            ring.push_back(Arc::downgrade(slot));
            // Entries of dropped slots go when the ring outgrows what the
            // budget can hold, so a churn of short-lived files stays bounded.
            let max = self.max.load(Ordering::Relaxed);
            if ring.len() > 2 * max + 1024 {
                ring.retain(|w| w.strong_count() > 0);
            }
        }
        self.evict();
    }

    /// Drops least recently used mappings until the budget holds.
    fn evict(&self) {
        let max = self.max.load(Ordering::Relaxed);
        if self.mapped.load(Ordering::Relaxed) <= max {
            return;
        }
        let mut ring = lock(&self.ring);
        // Two passes clear every `used` bit once; slots busy mapping are
        // skipped, so the sweep always ends.
        let mut steps = 2 * ring.len() + 1;
        while self.mapped.load(Ordering::Relaxed) > max && steps > 0 {
            steps -= 1;
            let Some(weak) = ring.pop_front() else { break };
            let Some(slot) = weak.upgrade() else { continue };
            if slot.used.swap(false, Ordering::Relaxed) {
                ring.push_back(weak);
                continue;
            }
            // A slot being mapped by its reader holds its lock; the order of
            // locks is slot then ring there, so only try it here.
            let dropped = match slot.map.try_lock() {
                Ok(mut map) => map.take(),
                Err(TryLockError::Poisoned(p)) => p.into_inner().take(),
                Err(TryLockError::WouldBlock) => {
                    ring.push_back(weak);
                    continue;
                }
            };
            slot.queued.store(false, Ordering::Release);
            if dropped.is_some() {
                self.mapped.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}
