//! Injected time and ids. The engine never reads the system clock directly:
//! everything that needs "now" (timestamps for lines without one, flush age,
//! file creation times) asks the [`Clock`] given to the builder, so tests run
//! on a fixed clock and are deterministic.

use std::fmt::Debug;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of the current time in nanoseconds since the Unix epoch (UTC).
pub trait Clock: Send + Sync + Debug {
    /// Now, in nanoseconds since the Unix epoch.
    fn now_ns(&self) -> i64;
}

/// The real wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    // The one place that reads the wall clock.
    #[allow(clippy::disallowed_methods)]
    fn now_ns(&self) -> i64 {
        // A clock before 1970 or after 2262 is not a case worth failing a write for.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to: for tests.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock standing at `now_ns`.
    pub fn new(now_ns: i64) -> Self {
        Self(AtomicI64::new(now_ns))
    }
    /// Sets the time.
    pub fn set(&self, now_ns: i64) {
        self.0.store(now_ns, Ordering::SeqCst);
    }
    /// Moves the time forward by `delta_ns`.
    pub fn advance(&self, delta_ns: i64) {
        self.0.fetch_add(delta_ns, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ns(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A source of unique 128-bit ids (engine instance ids now; job ids later).
pub trait IdSource: Send + Sync + Debug {
    /// A new id, never returned before by this source.
    fn next_id(&self) -> u128;
}

/// Ids from the clock and a per-process counter mixed through blake3: unique
/// in practice, time-ordered in their top 48 bits like a ULID.
#[derive(Debug, Default)]
pub struct RandomIds {
    counter: AtomicU64,
}

impl IdSource for RandomIds {
    fn next_id(&self) -> u128 {
        let now = SystemClock.now_ns();
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut hasher = blake3::Hasher::new();
        hasher.update(&now.to_le_bytes());
        hasher.update(&n.to_le_bytes());
        hasher.update(&std::process::id().to_le_bytes());
        let mut random = [0u8; 16];
        random.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
        let millis = (now / 1_000_000).max(0) as u128;
        (millis << 80) | (u128::from_le_bytes(random) >> 48)
    }
}

/// Ids 1, 2, 3, ...: for tests.
#[derive(Debug, Default)]
pub struct SequentialIds(AtomicU64);

impl IdSource for SequentialIds {
    fn next_id(&self) -> u128 {
        u128::from(self.0.fetch_add(1, Ordering::SeqCst) + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(10);
        assert_eq!(c.now_ns(), 10);
        c.advance(5);
        assert_eq!(c.now_ns(), 15);
        c.set(3);
        assert_eq!(c.now_ns(), 3);
    }

    #[test]
    fn random_ids_are_unique() {
        let ids = RandomIds::default();
        let mut seen: Vec<u128> = (0..1000).map(|_| ids.next_id()).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 1000);
    }
}
