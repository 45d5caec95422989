//! The export cache: Parquet files derived from compacted segment files,
//! kept in `<data>/export/` so that a window exported again is streamed from
//! a file instead of being converted again.
//!
//! A compacted segment file never changes, and the Parquet made from it is a
//! pure function of its bytes and of the export's variant (database and
//! table names, window, schema, row group size, quipu version). An entry is
//! therefore named by the segment's blake3, a hash of the variant and the
//! blake3 of the Parquet bytes themselves:
//! `<segment blake3>-<variant, 16 hex>-<content blake3>.parquet`. Nothing
//! else is stored: the index is rebuilt from the names when the engine opens.
//!
//! Safety rules, in the order they matter:
//! - An entry is written under a `.tmp-` name, then renamed: a crash of the
//!   process leaves a temporary file (removed at the next open) or a whole
//!   entry. Entries are not fsynced (they are derived data); a crash of the
//!   machine may leave one torn under its name, so an entry this process did
//!   not write is hashed whole before its first use, and a torn one is
//!   removed and converted again.
//! - Every read hashes what it streams and compares with the name. An entry
//!   damaged after its check is removed and the export fails (the HTTP
//!   transfer is cut off, so no client takes a damaged file for whole); the
//!   next export converts again.
//! - An entry that cannot be created or renamed into place (a full disk,
//!   an I/O error) is skipped: the window is converted into an unnamed
//!   temporary file and streamed, and nothing is kept. One whose bytes
//!   cannot be written fails the export with the error, and its temporary
//!   file is removed.
//! - The cache holds derived data only: losing it loses nothing. Entries of
//!   segments no longer in the current version are removed after each
//!   compaction and restore, and the least recently used entries go when the
//!   total passes the size limit (given to [`ExportCache::open`]). The cache
//!   learns of compactions and restores through its [`ExportCache::hook`].

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use tempfile::NamedTempFile;

use crate::clock::Clock;
use crate::hash::HashingReader;

/// The cache's folder, inside the data folder.
pub const EXPORT_CACHE_DIR: &str = "export";
/// Prefix of entries being written.
const TEMP_PREFIX: &str = ".tmp-";
const SUFFIX: &str = ".parquet";

/// What an entry was derived from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// blake3 of the compacted segment file.
    pub segment: [u8; 32],
    /// Leading bytes of the blake3 of the export's variant.
    pub variant: [u8; 8],
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    content: [u8; 32],
    len: u64,
    /// Recency: higher is more recent.
    used: u64,
    /// Written or hashed whole by this process.
    verified: bool,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<CacheKey, Entry>,
    bytes: u64,
    tick: u64,
    /// blake3 of the compacted segments of the current version: only their
    /// conversions are kept.
    live: HashSet<[u8; 32]>,
    /// The folder was read (or found unreadable) for the engine's segments.
    loaded: bool,
}

/// Counters since open.
#[derive(Debug, Default)]
pub struct CacheStats {
    /// Windows streamed from an entry.
    pub hits: AtomicU64,
    /// Windows converted because no entry existed.
    pub misses: AtomicU64,
    /// Entries removed to stay under the size limit.
    pub evictions: AtomicU64,
    /// Entries found damaged or unreadable (removed).
    pub damaged: AtomicU64,
}

/// The entries and their total size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheUsage {
    pub entries: u64,
    pub bytes: u64,
    pub limit_bytes: u64,
}

/// An entry opened for reading.
#[derive(Debug)]
pub struct CachedFile {
    pub file: File,
    pub len: u64,
    pub content: [u8; 32],
    pub path: PathBuf,
}

/// Where a conversion is written before it becomes an entry (or, with the
/// cache off, an unnamed temporary file).
#[derive(Debug)]
pub enum Spool {
    Entry(NamedTempFile),
    Unnamed(File),
}

impl Spool {
    pub fn file(&mut self) -> &mut File {
        match self {
            Spool::Entry(t) => t.as_file_mut(),
            Spool::Unnamed(f) => f,
        }
    }
}

/// The cache of one open data folder.
#[derive(Debug)]
pub struct ExportCache {
    dir: PathBuf,
    /// Where unnamed spool files go when nothing is kept.
    data_dir: PathBuf,
    limit_bytes: u64,
    /// True once the folder was read for the engine's compacted segments
    /// (the first install the [`ExportCache::hook`] is told of, at open);
    /// until then, and for good when the folder could not be read, nothing
    /// is kept or removed and every export converts.
    usable: AtomicBool,
    state: Mutex<State>,
    stats: CacheStats,
    clock: Arc<dyn Clock>,
    /// Writer fingerprints (part of every key) by the schema they were made
    /// for: the sample is encoded once per schema, not once per export.
    fingerprints: Mutex<HashMap<[u8; 32], [u8; 32]>>,
}

impl ExportCache {
    /// The cache of the data folder `data_dir`, keeping at most
    /// `limit_bytes` (0 turns it off and empties it), with `clock` for
    /// the entries' times (the engine's). Nothing is read here: the engine
    /// tells the cache's [`ExportCache::hook`] about its files when it
    /// opens, under the folder's lock, and only then is the folder read
    /// (temporary files, anything that is not an entry and entries of
    /// segments no longer live are removed). A folder that cannot be read
    /// (not a folder, no permission) leaves the cache unusable for this
    /// process, with a warning: it is derived data, and the engine opens
    /// regardless.
    ///
    /// ```no_run
    /// # fn main() -> quipu::Result<()> {
    /// use std::sync::Arc;
    /// use quipu::clock::SystemClock;
    /// use quipu::export::{TableExport, cache::ExportCache};
    ///
    /// let cache = Arc::new(ExportCache::open("data", 1 << 30, Arc::new(SystemClock)));
    /// let engine = quipu::Engine::builder("data").on_install(cache.hook(true)).open()?;
    /// let export = TableExport::new(&engine, &cache, "db", "cpu", &[])?;
    /// # Ok(()) }
    /// ```
    pub fn open(data_dir: impl AsRef<Path>, limit_bytes: u64, clock: Arc<dyn Clock>) -> ExportCache {
        let data_dir = data_dir.as_ref();
        ExportCache {
            dir: data_dir.join(EXPORT_CACHE_DIR),
            data_dir: data_dir.to_path_buf(),
            limit_bytes,
            usable: AtomicBool::new(false),
            state: Mutex::new(State::default()),
            stats: CacheStats::default(),
            clock,
            fingerprints: Mutex::new(HashMap::new()),
        }
    }

    /// A cache that keeps nothing: every export converts its windows
    /// (spooled in the system's temporary folder).
    pub fn disabled() -> ExportCache {
        ExportCache::open(std::env::temp_dir(), 0, Arc::new(crate::clock::SystemClock))
    }

    /// Reads the folder for the compacted segments `live`, once; later
    /// calls only record `live` (see [`ExportCache::retain_segments`]).
    pub(crate) fn load_for(&self, live: HashSet<[u8; 32]>) {
        let mut state = self.lock();
        if state.loaded {
            drop(state);
            self.retain_segments(live);
            return;
        }
        state.loaded = true;
        state.live = live;
        drop(state);
        match self.load() {
            Ok(()) => self.usable.store(true, Ordering::SeqCst),
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "export cache unusable; every export converts")
            }
        }
    }

    fn load(&self) -> io::Result<()> {
        let listing = match std::fs::read_dir(&self.dir) {
            Ok(listing) => listing,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut state = self.lock();
        let mut found = Vec::new();
        for item in listing {
            let item = item?;
            let path = item.path();
            let parsed = item.file_name().to_str().and_then(parse_name);
            match parsed {
                Some((key, content)) if self.limit_bytes > 0 && state.live.contains(&key.segment) => {
                    match item.metadata() {
                        Ok(meta) if meta.is_file() => found.push((meta.modified().ok(), key, content, meta.len())),
                        _ => remove(&path),
                    }
                }
                _ => remove(&path),
            }
        }
        // Recency survives a restart through the files' modification times
        // (an entry is touched when it is read).
        found.sort_by_key(|(mtime, ..)| *mtime);
        for (_, key, content, len) in found {
            state.tick += 1;
            let entry = Entry { content, len, used: state.tick, verified: false };
            if let Some(old) = state.entries.insert(key, entry) {
                // Two names for one key: keep the newer, drop the other.
                state.bytes -= old.len;
                remove(&self.path_of(&key, &old.content));
            }
            state.bytes += len;
        }
        self.shrink(&mut state, self.limit_bytes);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The writer fingerprint for `schema`, computed by `compute` the first time.
    pub fn fingerprint(
        &self,
        schema: [u8; 32],
        compute: impl FnOnce() -> crate::Result<[u8; 32]>,
    ) -> crate::Result<[u8; 32]> {
        let known = self.fingerprints.lock().unwrap_or_else(|p| p.into_inner()).get(&schema).copied();
        if let Some(fingerprint) = known {
            return Ok(fingerprint);
        }
        let fingerprint = compute()?;
        self.fingerprints.lock().unwrap_or_else(|p| p.into_inner()).insert(schema, fingerprint);
        Ok(fingerprint)
    }

    /// Whether conversions are kept.
    pub fn enabled(&self) -> bool {
        self.limit_bytes > 0 && self.usable.load(Ordering::SeqCst)
    }

    /// Counters since open.
    pub fn stats(&self) -> &CacheStats {
        &self.stats
    }

    /// The entries and their total size now.
    pub fn usage(&self) -> CacheUsage {
        let state = self.lock();
        CacheUsage { entries: state.entries.len() as u64, bytes: state.bytes, limit_bytes: self.limit_bytes }
    }

    fn path_of(&self, key: &CacheKey, content: &[u8; 32]) -> PathBuf {
        self.dir.join(entry_name(key, content))
    }

    /// Whether an entry for `key` exists (not counted, not checked).
    pub fn contains(&self, key: &CacheKey) -> bool {
        self.enabled() && self.lock().entries.contains_key(key)
    }

    /// The entry for `key`, opened, or `None` (counted as a miss). An entry
    /// this process did not write is hashed whole before its first use: a
    /// damaged one (a crash of the machine can leave an entry renamed but
    /// not all written) is removed and reported as a miss, so it is
    /// converted again instead of failing a transfer.
    pub fn get(&self, key: &CacheKey) -> Option<CachedFile> {
        if !self.enabled() {
            return None;
        }
        let Some(entry) = self.lock().entries.get(key).copied() else {
            self.stats.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let path = self.path_of(key, &entry.content);
        let checked = File::open(&path).and_then(|file| {
            if !entry.verified {
                if !whole(&file, entry.len, &entry.content)? {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "its bytes do not match its name"));
                }
                (&file).seek(SeekFrom::Start(0))?;
            }
            Ok(file)
        });
        let file = match checked {
            Ok(file) => file,
            Err(e) => {
                if e.kind() == io::ErrorKind::NotFound {
                    // Removed by hand, or evicted a moment ago: a plain miss.
                    self.forget(key, &entry.content);
                } else {
                    tracing::warn!(path = %path.display(), error = %e, "export cache entry unusable; converting again");
                    self.discard_damaged(key, &entry.content);
                }
                self.stats.misses.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        };
        {
            let mut state = self.lock();
            state.tick += 1;
            let tick = state.tick;
            if let Some(e) = state.entries.get_mut(key).filter(|e| e.content == entry.content) {
                e.used = tick;
                e.verified = true;
            }
        }
        // Recency for the next open; losing it only ages the entry.
        let now = Duration::from_nanos(u64::try_from(self.clock.now_ns()).unwrap_or(0));
        let _ = file.set_modified(UNIX_EPOCH + now);
        self.stats.hits.fetch_add(1, Ordering::Relaxed);
        Some(CachedFile { file, len: entry.len, content: entry.content, path })
    }

    /// A file to convert into: a future entry when conversions are kept
    /// (and the folder can be written), else an unnamed temporary file in
    /// the data folder.
    pub fn spool(&self) -> crate::Result<Spool> {
        if self.enabled() {
            let made = crate::fs::create_dir_durable(&self.dir)
                .and_then(|()| crate::failpoint::check("export-cache", "create"))
                .and_then(|()| tempfile::Builder::new().prefix(TEMP_PREFIX).tempfile_in(&self.dir));
            match made {
                Ok(file) => return Ok(Spool::Entry(file)),
                Err(e) => {
                    tracing::warn!(dir = %self.dir.display(), error = %e, "cannot write the export cache; converting without it")
                }
            }
        }
        let file = tempfile::tempfile_in(&self.data_dir)
            .map_err(|source| crate::Error::Io { path: self.data_dir.clone(), source })?;
        Ok(Spool::Unnamed(file))
    }

    /// Makes a finished spool the entry for `key` (renamed to its entry
    /// name, the least recently used entries evicted above the limit) and
    /// returns it open, to be read from the start. A spool that is not
    /// kept (larger than the limit, of a segment no longer live, or the
    /// rename failed) is returned as an unnamed file. Not fsynced: a crash
    /// of the machine may leave the entry torn, which its first use in the
    /// next process finds (see [`ExportCache::get`]).
    pub fn keep(&self, key: CacheKey, spool: Spool, content: [u8; 32], len: u64) -> File {
        let file = match spool {
            Spool::Unnamed(file) => return file,
            Spool::Entry(file) => file,
        };
        let mut state = self.lock();
        if len > self.limit_bytes || !state.live.contains(&key.segment) {
            return file.into_file();
        }
        let path = self.path_of(&key, &content);
        // Renamed under the lock: an eviction or discard of the same name
        // (which also unlinks under the lock) cannot remove it afterwards.
        let persisted = match crate::failpoint::check("export-cache", "rename") {
            Ok(()) => file.persist(&path),
            Err(error) => Err(tempfile::PersistError { error, file }),
        };
        let file = match persisted {
            Ok(file) => file,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e.error, "could not keep a converted window in the export cache");
                return e.file.into_file();
            }
        };
        state.tick += 1;
        let entry = Entry { content, len, used: state.tick, verified: true };
        if let Some(old) = state.entries.insert(key, entry) {
            state.bytes -= old.len;
            if old.content != content {
                remove(&self.path_of(&key, &old.content));
            }
        }
        state.bytes += len;
        self.shrink(&mut state, self.limit_bytes);
        file
    }

    /// Removes the entry for `key` whose bytes did not hash to `content`.
    pub fn discard_damaged(&self, key: &CacheKey, content: &[u8; 32]) {
        self.forget(key, content);
        self.stats.damaged.fetch_add(1, Ordering::Relaxed);
    }

    /// Removes the entry for `key` if it still has `content`.
    fn forget(&self, key: &CacheKey, content: &[u8; 32]) {
        let mut state = self.lock();
        if state.entries.get(key).is_some_and(|e| e.content == *content)
            && let Some(old) = state.entries.remove(key)
        {
            state.bytes -= old.len;
            remove(&self.path_of(key, content));
        }
    }

    /// Records the compacted segments `live` (conversions of others are no
    /// longer kept) and removes the entries of every other segment.
    pub fn retain_segments(&self, live: HashSet<[u8; 32]>) {
        let mut state = self.lock();
        state.live = live;
        let dead: Vec<(CacheKey, Entry)> =
            state.entries.iter().filter(|(k, _)| !state.live.contains(&k.segment)).map(|(k, e)| (*k, *e)).collect();
        for (key, entry) in dead {
            state.entries.remove(&key);
            state.bytes -= entry.len;
            remove(&self.path_of(&key, &entry.content));
        }
    }

    /// Removes every entry.
    pub fn clear(&self) {
        let mut state = self.lock();
        self.shrink(&mut state, 0);
    }

    /// Evicts the least recently used entries until at most `limit` bytes remain.
    fn shrink(&self, state: &mut State, limit: u64) {
        while state.bytes > limit {
            let Some((key, entry)) = state.entries.iter().min_by_key(|(_, e)| e.used).map(|(k, e)| (*k, *e)) else {
                break;
            };
            state.entries.remove(&key);
            state.bytes -= entry.len;
            if limit > 0 {
                self.stats.evictions.fetch_add(1, Ordering::Relaxed);
            }
            remove(&self.path_of(&key, &entry.content));
        }
    }
}

/// Whether `file` holds exactly `len` bytes hashing to `content`.
fn whole(file: &File, len: u64, content: &[u8; 32]) -> io::Result<bool> {
    let mut reader = HashingReader::new(io::BufReader::with_capacity(256 << 10, file));
    let read = io::copy(&mut reader, &mut io::sink())?;
    Ok(read == len && reader.hash() == *content)
}

/// Removing a cache file can only fail harmlessly: it is gone already, or
/// it stays and the next open removes it.
fn remove(path: &Path) {
    if let Err(e) = std::fs::remove_file(path)
        && e.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "could not remove an export cache file");
    }
}

/// The file name of the entry for `key` whose bytes hash to `content`.
pub fn entry_name(key: &CacheKey, content: &[u8; 32]) -> String {
    format!("{}-{}-{}{SUFFIX}", hex(&key.segment), hex(&key.variant), hex(content))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The key and content hash of an entry's file name; `None` for any name
/// [`entry_name`] does not write.
pub fn parse_name(name: &str) -> Option<(CacheKey, [u8; 32])> {
    let stem = name.strip_suffix(SUFFIX)?;
    let mut parts = stem.split('-');
    let segment = unhex::<32>(parts.next()?)?;
    let variant = unhex::<8>(parts.next()?)?;
    let content = unhex::<32>(parts.next()?)?;
    if parts.next().is_some() {
        return None;
    }
    Some((CacheKey { segment, variant }, content))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    impl ExportCache {
        /// A cache in which the segments of `key(0..10)` are live.
        fn open_for_test(dir: &Path, limit: u64) -> crate::Result<ExportCache> {
            let live = (0..10).map(|n| key(n).segment).collect();
            let cache = ExportCache::open(dir, limit, Arc::new(crate::clock::SystemClock));
            cache.load_for(live);
            Ok(cache)
        }
    }

    fn key(n: u8) -> CacheKey {
        CacheKey { segment: [n; 32], variant: [n; 8] }
    }

    fn put(cache: &ExportCache, k: CacheKey, bytes: &[u8]) -> [u8; 32] {
        let mut spool = cache.spool().unwrap();
        spool.file().write_all(bytes).unwrap();
        let content = *blake3::hash(bytes).as_bytes();
        let mut kept = cache.keep(k, spool, content, bytes.len() as u64);
        kept.seek(SeekFrom::Start(0)).unwrap();
        let mut back = Vec::new();
        kept.read_to_end(&mut back).unwrap();
        assert_eq!(back, bytes, "keep returns the spool, readable from the start");
        content
    }

    proptest::proptest! {
        #[test]
        fn any_entry_name_parses_back(segment: [u8; 32], variant: [u8; 8], content: [u8; 32]) {
            let key = CacheKey { segment, variant };
            proptest::prop_assert_eq!(parse_name(&entry_name(&key, &content)), Some((key, content)));
        }

        /// Names near a valid one (a character replaced, removed or
        /// inserted): any that parses is exactly the name it writes back.
        #[test]
        fn a_name_that_parses_is_the_one_written(
            segment: [u8; 32],
            variant: [u8; 8],
            content: [u8; 32],
            edit in 0usize..3,
            at in 0usize..200,
            with in proptest::sample::select(vec!['0', '9', 'a', 'f', 'g', 'A', '-', '.', '/', 'é']),
        ) {
            let mut name: Vec<char> = entry_name(&CacheKey { segment, variant }, &content).chars().collect();
            let at = at % (name.len() + 1);
            match edit {
                0 if at < name.len() => name[at] = with,
                1 if at < name.len() => { name.remove(at); }
                _ => name.insert(at, with),
            }
            let name: String = name.into_iter().collect();
            if let Some((key, content)) = parse_name(&name) {
                proptest::prop_assert_eq!(entry_name(&key, &content), name);
            }
        }
    }

    #[test]
    fn names_round_trip_and_reject_others() {
        let (k, c) = (key(7), [9u8; 32]);
        assert_eq!(parse_name(&entry_name(&k, &c)), Some((k, c)));
        for bad in [
            "",
            "x.parquet",
            ".tmp-abc",
            &entry_name(&k, &c).replace(".parquet", ".pq"),
            &entry_name(&k, &c).to_uppercase(),
        ] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn entries_survive_reopen_and_junk_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ExportCache::open_for_test(dir.path(), 1 << 20).unwrap();
        let content = put(&cache, key(1), b"parquet bytes");
        std::fs::write(dir.path().join(EXPORT_CACHE_DIR).join(".tmp-left-by-a-crash"), b"x").unwrap();
        std::fs::write(dir.path().join(EXPORT_CACHE_DIR).join("stray"), b"x").unwrap();
        drop(cache);
        let cache = ExportCache::open_for_test(dir.path(), 1 << 20).unwrap();
        let hit = cache.get(&key(1)).unwrap();
        assert_eq!((hit.len, hit.content), (13, content));
        let names: Vec<_> = std::fs::read_dir(dir.path().join(EXPORT_CACHE_DIR)).unwrap().collect();
        assert_eq!(names.len(), 1);
        assert!(cache.get(&key(2)).is_none());
        assert_eq!(cache.stats().hits.load(Ordering::Relaxed), 1);
        assert_eq!(cache.stats().misses.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn least_recently_used_goes_first() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ExportCache::open_for_test(dir.path(), 30).unwrap();
        put(&cache, key(1), &[1; 10]);
        put(&cache, key(2), &[2; 10]);
        put(&cache, key(3), &[3; 10]);
        assert!(cache.get(&key(1)).is_some());
        put(&cache, key(4), &[4; 10]);
        assert!(cache.get(&key(2)).is_none(), "the least recently used entry is evicted");
        for k in [1, 3, 4] {
            assert!(cache.get(&key(k)).is_some(), "{k}");
        }
        assert_eq!(cache.usage().bytes, 30);
        // Larger than the limit: not kept.
        put(&cache, key(5), &[5; 31]);
        assert!(cache.get(&key(5)).is_none());
        assert_eq!(cache.usage().entries, 3);
    }

    #[test]
    fn dead_segments_and_damaged_entries_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ExportCache::open_for_test(dir.path(), 1 << 20).unwrap();
        put(&cache, key(1), b"one");
        let two = put(&cache, key(2), b"two");
        cache.retain_segments(HashSet::from([[2u8; 32]]));
        put(&cache, key(1), b"one again");
        assert!(cache.get(&key(1)).is_none(), "a conversion of a dead segment is not kept");
        assert!(cache.get(&key(1)).is_none());
        cache.discard_damaged(&key(2), &two);
        assert!(cache.get(&key(2)).is_none());
        assert_eq!(std::fs::read_dir(dir.path().join(EXPORT_CACHE_DIR)).unwrap().count(), 0);
        assert_eq!(cache.usage().bytes, 0);
    }

    #[test]
    fn off_keeps_nothing_and_removes_old_entries() {
        let dir = tempfile::tempdir().unwrap();
        put(&ExportCache::open_for_test(dir.path(), 1 << 20).unwrap(), key(1), b"one");
        let cache = ExportCache::open_for_test(dir.path(), 0).unwrap();
        assert!(!cache.enabled());
        assert_eq!(std::fs::read_dir(dir.path().join(EXPORT_CACHE_DIR)).unwrap().count(), 0);
        put(&cache, key(2), b"two");
        assert!(cache.get(&key(2)).is_none());
        assert_eq!(cache.usage().entries, 0);
    }
}
