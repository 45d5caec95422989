//! Named fail points for fault-injection tests (cargo feature `failpoints`,
//! off by default). Each commit point of the write path, of backups,
//! restores and the export cache calls [`check`]
//! with its name; a test arms a name with an errno ([`set`]) and every later
//! pass through that point fails with that OS error until it is cleared. The
//! registry is process-wide, so tests that arm points must not run
//! concurrently with other engine work in the same process.
//!
//! Without the feature, [`check`] is an empty inline function and the names
//! are never built.
//!
//! The points:
//!
//! | name | where it fails |
//! |---|---|
//! | `wal.write` | a WAL append, after half of the record reached the file |
//! | `wal.truncate` | undoing a failed append (the truncate back to the last good record) |
//! | `wal.fsync` | a WAL fdatasync (group commit, or the old file at rotation) |
//! | `wal.create` | creating the next WAL file at rotation (and at open) |
//! | `<kind>.write` | [`crate::fs::atomic_write_with`]: after the content was written to the temp file |
//! | `<kind>.fsync` | the same, instead of the temp file's fsync |
//! | `<kind>.rename` | the same, instead of the rename into place |
//! | `<kind>.dirsync` | the same, after the rename, instead of the folder fsync |
//! | `catalog-log.write` | a catalog change appended to `catalog/<base>.log`, after its record was written (the next change writes a snapshot) |
//! | `catalog-log.fsync` | the same, instead of the log's fsync |
//! | `backup-object.link` | a backup in link mode, instead of hard-linking a segment file into the repository |
//! | `backup-object.write` | a backup in copy mode, after a segment file was copied to the object's temp file |
//! | `backup-object.fsync` | the same, instead of the temp file's fsync |
//! | `backup-object.rename` | the same, instead of the rename to the object's name |
//! | `backup-object.dirsync` | a backup, instead of the fsync of a shard folder of new objects |
//! | `backup-catalog.write` | a backup, after the catalog object was written to its temp file |
//! | `backup-catalog.fsync` | the same, instead of its fsync |
//! | `backup-catalog.rename` | the same, instead of its rename |
//! | `restore-stage.link` | a restore in link mode, instead of hard-linking an object into `segments/` |
//! | `restore-stage.write` | a restore in copy mode, after an object was copied into `segments/` |
//! | `restore-stage.fsync` | the same, instead of that file's fsync |
//! | `export-cache.create` | creating the temp file of an export cache entry (the export goes on without it) |
//! | `export-cache.write` | after a conversion was written into an entry's temp file (the export fails) |
//! | `export-cache.rename` | instead of renaming an entry into place (the export goes on, nothing is kept) |
//!
//! A pause point ([`pause_at`]) holds the next thread that passes it until
//! the test lets it go, so a test can put another operation exactly between
//! two steps (RocksDB's sync points): `export.pinned`, between an export's
//! read of the engine's state and its use.
//!
//! `<kind>` is derived from the published file ([`crate::fs::file_kind`]):
//! `segment`, `version`, `current`, `catalog`, `manifest` (a backup's
//! commit point), `job` (a backup's record), `restore-job` (a restore's
//! record), or the lowercased file name for the rest (`restore`, the
//! commit record of a restore's swap; `last_restore`; `quipu-repo`;
//! `admin_token.blake3`).

/// Fails with the OS error the fail point `<kind>.<op>` is armed with, if any.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub(crate) fn check(_kind: &str, _op: &str) -> std::io::Result<()> {
    Ok(())
}

/// Holds the calling thread at pause point `name` when a test armed it.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub(crate) fn pause(_name: &str) {}

#[cfg(feature = "failpoints")]
pub use armed::{Paused, clear, clear_all, hits, pause_at, set, set_after};

#[cfg(feature = "failpoints")]
pub(crate) use armed::{check, pause};

#[cfg(feature = "failpoints")]
mod armed {
    use std::collections::HashMap;
    use std::io;
    use std::sync::{Condvar, Mutex, MutexGuard};
    use std::time::{Duration, Instant};

    #[derive(Default)]
    struct Point {
        /// The errno this point fails with; `None` when cleared.
        errno: Option<i32>,
        /// How often it failed a caller since it was first armed.
        hits: u64,
        /// Passes still let through before it starts failing.
        passes: u64,
    }

    static POINTS: Mutex<Option<HashMap<String, Point>>> = Mutex::new(None);

    fn points() -> MutexGuard<'static, Option<HashMap<String, Point>>> {
        // The map holds plain values; a panic elsewhere cannot half-update it.
        POINTS.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes every pass through fail point `name` fail with OS error `errno`
    /// (`libc::EIO`, `libc::ENOSPC`, ...) until [`clear`].
    pub fn set(name: &str, errno: i32) {
        set_after(name, 0, errno);
    }

    /// Lets the next `passes` passes through fail point `name` succeed, then
    /// fails every later one with OS error `errno` until [`clear`]: for a
    /// point shared by a job's start and end (`job.rename`), the end alone.
    pub fn set_after(name: &str, passes: u64, errno: i32) {
        let mut points = points();
        let point = points.get_or_insert_with(HashMap::new).entry(name.to_string()).or_default();
        point.errno = Some(errno);
        point.passes = passes;
    }

    /// Disarms fail point `name`.
    pub fn clear(name: &str) {
        if let Some(point) = points().as_mut().and_then(|m| m.get_mut(name)) {
            point.errno = None;
        }
    }

    /// Disarms every fail point and resets the hit counts.
    pub fn clear_all() {
        *points() = None;
    }

    /// How many callers fail point `name` failed since [`clear_all`].
    pub fn hits(name: &str) -> u64 {
        points().as_ref().and_then(|m| m.get(name)).map_or(0, |p| p.hits)
    }

    #[derive(Default)]
    struct PauseState {
        /// A thread is held there.
        reached: bool,
        /// The test let it go (or dropped its [`Paused`]).
        released: bool,
    }

    static PAUSES: Mutex<Option<HashMap<String, PauseState>>> = Mutex::new(None);
    static PAUSE_CHANGED: Condvar = Condvar::new();

    fn pauses() -> MutexGuard<'static, Option<HashMap<String, PauseState>>> {
        PAUSES.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Arms pause point `name`: the next thread to pass it waits there
    /// until the returned [`Paused`] is resumed or dropped; later threads
    /// pass.
    pub fn pause_at(name: &str) -> Paused {
        pauses().get_or_insert_with(HashMap::new).insert(name.to_string(), PauseState::default());
        Paused { name: name.to_string() }
    }

    /// An armed pause point; see [`pause_at`].
    #[derive(Debug)]
    pub struct Paused {
        name: String,
    }

    impl Paused {
        /// Waits up to `timeout` for a thread to reach the point; true when one did.
        pub fn wait_reached(&self, timeout: Duration) -> bool {
            let deadline = Instant::now() + timeout;
            let mut guard = pauses();
            loop {
                if guard.as_ref().and_then(|m| m.get(&self.name)).is_some_and(|p| p.reached) {
                    return true;
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return false;
                }
                guard = PAUSE_CHANGED.wait_timeout(guard, left).unwrap_or_else(|p| p.into_inner()).0;
            }
        }

        /// Lets the held thread go on.
        pub fn resume(self) {}
    }

    impl Drop for Paused {
        fn drop(&mut self) {
            if let Some(p) = pauses().as_mut().and_then(|m| m.get_mut(&self.name)) {
                p.released = true;
            }
            PAUSE_CHANGED.notify_all();
        }
    }

    /// Holds the calling thread at pause point `name` if it is armed and no
    /// thread was held there yet.
    pub(crate) fn pause(name: &str) {
        let mut guard = pauses();
        match guard.as_mut().and_then(|m| m.get_mut(name)) {
            Some(p) if !p.reached && !p.released => p.reached = true,
            _ => return,
        }
        PAUSE_CHANGED.notify_all();
        while !guard.as_ref().and_then(|m| m.get(name)).is_none_or(|p| p.released) {
            guard = PAUSE_CHANGED.wait(guard).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Fails with the OS error the fail point `<kind>.<op>` is armed with, if any.
    pub(crate) fn check(kind: &str, op: &str) -> io::Result<()> {
        let mut points = points();
        let Some(map) = points.as_mut() else { return Ok(()) };
        let name = format!("{kind}.{op}");
        match map.get_mut(&name) {
            Some(Point { errno: Some(_), passes, .. }) if *passes > 0 => {
                *passes -= 1;
                Ok(())
            }
            Some(Point { errno: Some(errno), hits, .. }) => {
                *hits += 1;
                let errno = *errno;
                drop(points);
                tracing::warn!(failpoint = %name, errno, "injected failure");
                Err(io::Error::from_raw_os_error(errno))
            }
            _ => Ok(()),
        }
    }
}
