//! The export cache: a window exported again is streamed from the Parquet
//! kept at its first export, byte for byte what a fresh conversion writes; a
//! damaged, truncated or missing entry is never served (one damaged while
//! the engine was down is converted again without failing the export); entries follow the
//! files they were made from through compaction, schema changes and
//! restores; the cache's hook with `warm` converts at compaction; a limit of 0 keeps
//! nothing.

use crate::common;
use crate::server_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use common::{converted_windows, read_parquet, untar};
use quipu::backup::{BackupConfig, BackupRequest, BackupService, BackupStatus, ModeChoice, RestoreVerify};
use quipu::clock::SystemClock;
use quipu::export::TableExport;
use quipu::export::cache::{EXPORT_CACHE_DIR, ExportCache};
use quipu::{Engine, Precision, ScanRequest, WriteOptions};
use server_support::{TestServer, bearer, client};

const DAY: i64 = 86_400 * 1_000_000_000;

/// An engine with an export cache hooked to it, as `quipu serve` opens one.
struct Opened {
    engine: Engine,
    cache: Arc<ExportCache>,
}

impl std::ops::Deref for Opened {
    type Target = Engine;
    fn deref(&self) -> &Engine {
        &self.engine
    }
}

/// `dir` with a cache of `limit` bytes, warming at compaction with `warm`,
/// the background threads off: the tests flush and compact.
fn open_with(dir: &std::path::Path, limit: u64, warm: bool) -> Opened {
    let cache = Arc::new(ExportCache::open(dir, limit, Arc::new(SystemClock)));
    let engine = Engine::builder(dir).background(false).on_install(cache.hook(warm)).open().unwrap();
    Opened { engine, cache }
}

fn open(dir: &std::path::Path) -> Opened {
    open_with(dir, 1 << 30, false)
}

fn write(engine: &Engine, lp: &str) {
    engine.write_lp("db", lp, Precision::Nanosecond, WriteOptions::default()).unwrap();
}

/// Three compacted days of `m`.
fn load(engine: &Engine) {
    let mut lp = String::new();
    for day in 0..3 {
        for i in 0..200i64 {
            lp.push_str(&format!(
                "m,host=h{} f={}.5,i={}i,s=\"v{}\" {}\n",
                i % 5,
                i,
                -i,
                i % 3,
                day * DAY + i * 1_000_000_000
            ));
        }
    }
    write(engine, &lp);
    engine.flush().unwrap();
    engine.compact().unwrap();
}

/// Every window's Parquet, by entry name, through `TableExport::write_tar`.
fn export(engine: &Opened) -> BTreeMap<String, Vec<u8>> {
    let mut tar = Vec::new();
    TableExport::new(engine, &engine.cache, "db", "m", &[]).unwrap().write_tar(&mut tar, |_| {}).unwrap();
    untar(&tar).into_iter().collect()
}

fn entries(engine: &Engine) -> Vec<std::path::PathBuf> {
    entries_in(engine.dir())
}

fn entries_in(data: &std::path::Path) -> Vec<std::path::PathBuf> {
    let dir = data.join(EXPORT_CACHE_DIR);
    let mut names: Vec<_> = match std::fs::read_dir(&dir) {
        Ok(list) => list.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

fn counts(cache: &ExportCache) -> (u64, u64, u64) {
    let s = cache.stats();
    (s.hits.load(Ordering::Relaxed), s.misses.load(Ordering::Relaxed), s.damaged.load(Ordering::Relaxed))
}

fn http_tar(server: &TestServer) -> reqwest::Result<Vec<u8>> {
    let resp = client()
        .get(server.url("/api/v3/export/window_data?db=db&table=m"))
        .header("Authorization", bearer())
        .send()?;
    assert_eq!(resp.status().as_u16(), 200);
    resp.bytes().map(|b| b.to_vec())
}

#[test]
fn a_window_exported_again_is_streamed_from_the_cache_with_the_same_bytes() {
    let server = TestServer::start();
    load(&server.engine);
    let first: BTreeMap<_, _> = untar(&http_tar(&server).unwrap()).into_iter().collect();
    assert_eq!(counts(&server.cache), (0, 3, 0));
    assert_eq!(entries(&server.engine).len(), 3);
    let again: BTreeMap<_, _> = untar(&http_tar(&server).unwrap()).into_iter().collect();
    assert_eq!(counts(&server.cache), (3, 3, 0));
    assert_eq!(first, again);
    assert_eq!(first, converted_windows(&server.engine, "db", "m"), "the cache holds exactly what a conversion writes");
    // Each entry is named by the blake3 of its bytes.
    for path in entries(&server.engine) {
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let content = blake3::hash(&std::fs::read(&path).unwrap()).to_hex().to_string();
        assert!(name.ends_with(&format!("-{content}.parquet")), "{name}");
    }
    let metrics = client().get(server.url("/metrics")).header("Authorization", bearer()).send().unwrap();
    let text = metrics.text().unwrap();
    for line in ["quipu_export_cache_hits_total 3", "quipu_export_cache_misses_total 3", "quipu_export_cache_entries 3"]
    {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
}

/// Does something to an entry's file.
type Damage = fn(&std::path::Path);

#[test]
fn a_damaged_truncated_or_missing_entry_is_never_served() {
    let server = TestServer::start();
    load(&server.engine);
    let good = untar(&http_tar(&server).unwrap());
    let damages: [(&str, Damage); 3] = [
        ("a flipped byte", |p| {
            let mut bytes = std::fs::read(p).unwrap();
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0x40;
            std::fs::write(p, bytes).unwrap();
        }),
        ("a truncated file", |p| {
            let len = std::fs::metadata(p).unwrap().len();
            std::fs::OpenOptions::new().write(true).open(p).unwrap().set_len(len / 3).unwrap();
        }),
        ("a removed file", |p| std::fs::remove_file(p).unwrap()),
    ];
    for (what, damage) in damages {
        let victim = entries(&server.engine)[1].clone();
        damage(&victim);
        let (_, _, damaged_before) = counts(&server.cache);
        match http_tar(&server) {
            // A removed entry is a miss: converted again, whole.
            Ok(tar) if what == "a removed file" => {
                assert_eq!(untar(&tar), good, "{what}");
                assert_eq!(counts(&server.cache).2, damaged_before, "{what}: not counted as damage");
            }
            Err(e) if what == "a removed file" => panic!("{what}: the export failed: {e}"),
            Ok(tar) => panic!("{what}: a damaged entry was served whole ({} bytes)", tar.len()),
            // The transfer is cut off: the client cannot take it for whole.
            Err(_) => assert_eq!(counts(&server.cache).2, damaged_before + 1, "{what}"),
        }
        // The damaged entry is gone; the next export converts it again.
        assert_eq!(untar(&http_tar(&server).unwrap()), good, "{what}");
        assert_eq!(entries(&server.engine).len(), 3, "{what}");
    }
    assert_eq!(server.rows("db", "m"), 600, "stored data untouched");
}

#[test]
fn an_entry_damaged_while_the_engine_was_down_is_converted_again() {
    let dir = tempfile::tempdir().unwrap();
    let good = {
        let engine = open(dir.path());
        load(&engine);
        export(&engine)
    };
    // As a machine crash can leave an entry that was renamed but not all written.
    let victim = entries_in(dir.path())[0].clone();
    let len = std::fs::metadata(&victim).unwrap().len();
    std::fs::write(&victim, vec![0u8; len as usize]).unwrap();
    let engine = open(dir.path());
    assert_eq!(export(&engine), good, "checked before its first use, so the export does not fail");
    assert_eq!(counts(&engine.cache), (2, 1, 1));
    assert_eq!(entries(&engine).len(), 3);
}

#[test]
fn entries_outlive_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let first = {
        let engine = open(dir.path());
        load(&engine);
        export(&engine)
    };
    let engine = open(dir.path());
    assert_eq!(export(&engine), first);
    assert_eq!(counts(&engine.cache), (3, 0, 0));
}

#[test]
fn entries_follow_their_files_through_compaction_and_schema_changes() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    load(&engine);
    let before = export(&engine);
    let old_entries = entries(&engine);

    // Day 1 rewritten by compaction: its entry goes with its file.
    write(&engine, &format!("m,host=h9 f=0.25,i=7i,s=\"new\" {}", DAY + 5));
    engine.flush().unwrap();
    engine.compact().unwrap();
    let after_compaction = entries(&engine);
    assert_eq!(after_compaction.len(), 2);
    assert!(after_compaction.iter().all(|e| old_entries.contains(e)));
    let exported = export(&engine);
    assert_eq!(exported, converted_windows(&engine, "db", "m"));
    assert_ne!(exported["m/1970-01-02.parquet"], before["m/1970-01-02.parquet"]);
    assert_eq!(exported["m/1970-01-01.parquet"], before["m/1970-01-01.parquet"]);
    let day1 = read_parquet(exported["m/1970-01-02.parquet"].clone());
    assert_eq!(day1.iter().map(|b| b.num_rows()).sum::<usize>(), 201);

    // A new column changes every window's schema: none of the old entries fits.
    write(&engine, &format!("m,host=h1 late=1i {}", 5 * DAY));
    engine.flush().unwrap();
    engine.compact().unwrap();
    let (hits, _, _) = counts(&engine.cache);
    let widened = export(&engine);
    assert_eq!(counts(&engine.cache).0, hits, "no entry of the narrower schema is served");
    assert_eq!(widened, converted_windows(&engine, "db", "m"));
    let day0 = read_parquet(widened["m/1970-01-01.parquet"].clone());
    assert!(day0[0].schema().column_with_name("late").is_some());
    assert_eq!(engine.scan("db", "m", &ScanRequest::all()).unwrap().iter().map(|b| b.num_rows()).sum::<usize>(), 602);
}

#[test]
fn a_restore_keeps_only_the_entries_of_the_restored_files() {
    let data = tempfile::tempdir().unwrap();
    let repo = tempfile::tempdir().unwrap();
    let engine = open(data.path());
    let config = BackupConfig { mode: ModeChoice::Link, ..BackupConfig::default() };
    let backups = BackupService::open(engine.clone(), repo.path().join("repo"), config).unwrap();
    load(&engine);
    let at_backup = export(&engine);
    let name = backups.start(BackupRequest::full().named("point")).unwrap();
    assert_eq!(backups.wait(&name).unwrap().status, BackupStatus::Completed);

    write(&engine, &format!("m,host=h9 f=0.25 {}", 5));
    engine.flush().unwrap();
    engine.compact().unwrap();
    let later = export(&engine);
    assert_ne!(later, at_backup);
    assert_eq!(entries(&engine).len(), 3);

    let id = backups.start_restore("point", RestoreVerify::Auto).unwrap();
    assert_eq!(backups.wait_restore(&id).unwrap().status, BackupStatus::Completed);
    // Day 0 of the later state is gone with its file; days 1 and 2 are the
    // backup's files (same bytes), so their entries still serve.
    assert_eq!(entries(&engine).len(), 2);
    let (hits, misses, _) = counts(&engine.cache);
    assert_eq!(export(&engine), at_backup);
    assert_eq!(counts(&engine.cache), (hits + 2, misses + 1, 0));
}

#[test]
fn warm_converts_each_window_at_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_with(dir.path(), 1 << 30, true);
    load(&engine);
    assert_eq!(entries(&engine).len(), 3, "converted by the compaction");
    let exported = export(&engine);
    assert_eq!(counts(&engine.cache).0, 3, "the first export streams every window from the cache");
    assert_eq!(exported, converted_windows(&engine, "db", "m"));
}

#[test]
fn warm_converts_no_more_than_the_cache_holds() {
    // The size of one window's entry, measured on a twin folder.
    let twin = tempfile::tempdir().unwrap();
    let one = {
        let engine = open_with(twin.path(), 1 << 30, true);
        load(&engine);
        entries(&engine).iter().map(|p| std::fs::metadata(p).unwrap().len()).max().unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let engine = open_with(dir.path(), one, true);
    load(&engine);
    // Newest first, and no conversion that would only evict another.
    assert_eq!(entries(&engine).len(), 1);
    assert_eq!(engine.cache.stats().evictions.load(Ordering::Relaxed), 0);
    let mut tar = Vec::new();
    TableExport::new(&engine, &engine.cache, "db", "m", &[2 * DAY]).unwrap().write_tar(&mut tar, |_| {}).unwrap();
    assert_eq!(counts(&engine.cache), (1, 0, 0), "the newest window was the one converted");
}

#[test]
fn a_limit_of_zero_keeps_nothing() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = open(dir.path());
        load(&engine);
        export(&engine);
        assert_eq!(entries(&engine).len(), 3);
    }
    let engine = open_with(dir.path(), 0, true);
    assert!(entries(&engine).is_empty(), "turning the cache off empties it");
    assert_eq!(export(&engine), export(&engine));
    assert_eq!(export(&engine), converted_windows(&engine, "db", "m"));
    assert!(entries(&engine).is_empty());
    assert_eq!(counts(&engine.cache), (0, 0, 0));
}

#[test]
fn the_limit_evicts_the_least_recently_used_window() {
    let dir = tempfile::tempdir().unwrap();
    let sizes: Vec<u64> = {
        let engine = open(dir.path());
        load(&engine);
        export(&engine);
        entries(&engine).iter().map(|p| std::fs::metadata(p).unwrap().len()).collect()
    };
    // Room for two of the three windows.
    let limit = sizes.iter().sum::<u64>() - sizes.iter().min().unwrap();
    let engine = open_with(dir.path(), limit, false);
    assert!(engine.cache.usage().bytes <= limit);
    assert_eq!(entries(&engine).len(), 2);
    // Day 0 (the oldest entry) went at open. Use day 2, then bring day 0
    // back: day 1 is now the least recently used and goes.
    let one = |day: i64| {
        let mut tar = Vec::new();
        TableExport::new(&engine, &engine.cache, "db", "m", &[day * DAY]).unwrap().write_tar(&mut tar, |_| {}).unwrap();
        counts(&engine.cache)
    };
    assert_eq!(one(2), (1, 0, 0));
    assert_eq!(one(0), (1, 1, 0));
    assert_eq!(one(2), (2, 1, 0));
    assert_eq!(one(1), (2, 2, 0), "day 1 was evicted");
    assert!(engine.cache.usage().bytes <= limit);
    assert_eq!(engine.cache.stats().evictions.load(Ordering::Relaxed), 3);
    assert_eq!(export(&engine), converted_windows(&engine, "db", "m"));
}

#[test]
fn an_entry_that_cannot_be_read_is_dropped_not_served_forever() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    load(&engine);
    let good = export(&engine);
    // Opens, but every read fails (as an I/O error on a bad disk would).
    let victim = entries(&engine)[0].clone();
    std::fs::remove_file(&victim).unwrap();
    std::fs::create_dir(&victim).unwrap();
    let mut tar = Vec::new();
    let failed = TableExport::new(&engine, &engine.cache, "db", "m", &[]).unwrap().write_tar(&mut tar, |_| {});
    assert!(matches!(failed, Err(quipu::Error::Export { .. })), "{failed:?}");
    assert_eq!(counts(&engine.cache).2, 1);
    std::fs::remove_dir(&victim).unwrap();
    assert_eq!(export(&engine), good, "the next export converts the window again");
}

/// Fails every write after the first `left` bytes, as a client that goes away.
struct GoesAway {
    left: usize,
}

impl std::io::Write for GoesAway {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "gone"));
        }
        let n = buf.len().min(self.left);
        self.left -= n;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_client_that_goes_away_does_not_waste_the_conversion() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    load(&engine);
    let gone =
        TableExport::new(&engine, &engine.cache, "db", "m", &[]).unwrap().write_tar(GoesAway { left: 700 }, |_| {});
    assert!(gone.is_err());
    assert_eq!(entries(&engine).len(), 1, "the first window was converted and kept before it was streamed");
    assert_eq!(export(&engine), converted_windows(&engine, "db", "m"));
    assert_eq!(counts(&engine.cache).0, 1);
}

#[test]
fn an_export_of_an_older_version_keeps_no_entry_of_a_replaced_file() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    load(&engine);
    let pinned = TableExport::new(&engine, &engine.cache, "db", "m", &[0]).unwrap();
    write(&engine, "m,host=h9 f=0.25 5");
    engine.flush().unwrap();
    engine.compact().unwrap();
    // Day 0's file was replaced after the export pinned it: the export
    // still gives the old rows, but their Parquet is not kept.
    let mut tar = Vec::new();
    pinned.write_tar(&mut tar, |_| {}).unwrap();
    assert_eq!(untar(&tar).len(), 1);
    assert!(entries(&engine).is_empty());
}

#[test]
fn the_row_group_size_is_part_of_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    load(&engine);
    let whole = export(&engine);
    let small = |engine: &Opened| {
        let export = TableExport::new(engine, &engine.cache, "db", "m", &[]).unwrap().row_group_rows(64);
        let mut tar = Vec::new();
        export.write_tar(&mut tar, |_| {}).unwrap();
        let fresh: BTreeMap<String, Vec<u8>> = (0..export.windows().len())
            .map(|i| {
                let mut bytes = Vec::new();
                export.write_parquet(i, &mut bytes).unwrap();
                (export.entry_name(i), bytes)
            })
            .collect();
        (untar(&tar).into_iter().collect::<BTreeMap<_, _>>(), fresh)
    };
    let (first, fresh) = small(&engine);
    assert_eq!(first, fresh);
    assert_ne!(first, whole);
    assert_eq!(counts(&engine.cache), (0, 6, 0), "no entry of the default row groups was served");
    let (again, _) = small(&engine);
    assert_eq!(again, first);
    assert_eq!(export(&engine), whole);
}

#[test]
fn an_unusable_cache_folder_does_not_stop_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = open(dir.path());
        load(&engine);
    }
    // Something that is not a folder where the cache goes.
    std::fs::write(dir.path().join(EXPORT_CACHE_DIR), b"not a folder").unwrap();
    let engine = open(dir.path());
    assert!(!engine.cache.enabled());
    assert_eq!(export(&engine), converted_windows(&engine, "db", "m"));
    assert_eq!(std::fs::read(dir.path().join(EXPORT_CACHE_DIR)).unwrap(), b"not a folder");
}
