//! A backup during sustained writes: every write acknowledged before the
//! backup was started is in it, it is one consistent point (each writer's
//! writes form a prefix, whole writes only, nothing started after the
//! start returned), and writes keep being acknowledged while it copies.
//! The backup's content is read back from its objects with the segment
//! reader.
#![cfg(feature = "server")]

use crate::server_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;

use quipu::backup::{BackupConfig, BackupRequest, BackupService, BackupStatus, ModeChoice, Repository};
use quipu::{Engine, Precision, WriteOptions};
use server_support::{Gate, backup_rows, eventually};

const WRITERS: u64 = 3;
/// Lines per write: a write is in a backup whole or not at all.
const LINES: u64 = 4;

struct Writers {
    acked: Arc<Vec<AtomicU64>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

/// Writer `w` writes `w,writer=w<w> seq=<s>i,v=<2s>i` at unique times, one
/// write after another with the default (synced) durability, and counts
/// each acknowledged write.
fn start_writers(engine: &Engine) -> Writers {
    let acked: Arc<Vec<AtomicU64>> = Arc::new((0..WRITERS).map(|_| AtomicU64::new(0)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let threads = (0..WRITERS)
        .map(|w| {
            let (engine, acked, stop) = (engine.clone(), acked.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut seq = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let lp: String = (0..LINES)
                        .map(|k| {
                            let t = time_of(w, seq, k);
                            format!("w,writer=w{w},line=l{k} seq={seq}i,v={}i {t}\n", seq * 2)
                        })
                        .collect();
                    engine.write_lp("db", &lp, Precision::Nanosecond, WriteOptions::default()).unwrap();
                    seq += 1;
                    acked[w as usize].store(seq, Ordering::SeqCst);
                }
            })
        })
        .collect();
    Writers { acked, stop, threads }
}

fn time_of(writer: u64, seq: u64, line: u64) -> i64 {
    (1_000_000_000_000 * (writer + 1) + seq * LINES + line) as i64
}

impl Writers {
    fn acked(&self) -> Vec<u64> {
        self.acked.iter().map(|a| a.load(Ordering::SeqCst)).collect()
    }

    fn finish(self) -> Vec<u64> {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            t.join().unwrap();
        }
        self.acked.iter().map(|a| a.load(Ordering::SeqCst)).collect()
    }
}

/// Per writer, how many of its writes the backup holds, after checking
/// that they are whole writes forming a prefix with the values written.
fn writes_in_backup(repo: &Repository, name: &str) -> Vec<u64> {
    let (manifest, _) = repo.read_manifest(name).unwrap().unwrap();
    let rows = backup_rows(repo, &manifest);
    let mut seqs: BTreeMap<u64, BTreeMap<u64, u64>> = BTreeMap::new();
    for ((db, table, tags, time), fields) in &rows {
        if (db.as_str(), table.as_str()) != ("db", "w") {
            continue;
        }
        let writer: u64 = tags.split(',').find_map(|t| t.strip_prefix("writer=w")).unwrap().parse().unwrap();
        let line: u64 = tags.split(',').find_map(|t| t.strip_prefix("line=l")).unwrap().parse().unwrap();
        let seq: u64 = fields["seq"].parse().unwrap();
        assert_eq!(fields["v"], (seq * 2).to_string(), "{tags} {time}");
        assert_eq!(*time, time_of(writer, seq, line), "{tags} seq {seq}");
        *seqs.entry(writer).or_default().entry(seq).or_default() += 1;
    }
    (0..WRITERS)
        .map(|w| {
            let mine = seqs.remove(&w).unwrap_or_default();
            let n = mine.len() as u64;
            assert_eq!(
                mine.keys().copied().collect::<Vec<_>>(),
                (0..n).collect::<Vec<_>>(),
                "writer {w}: not a prefix"
            );
            assert!(mine.values().all(|&lines| lines == LINES), "writer {w}: a partial write in the backup");
            n
        })
        .collect()
}

fn engine(dir: &std::path::Path) -> Engine {
    // Background flushes on (small buffer), compaction off: the gated file
    // stays in the tree.
    Engine::builder(dir).background(true).compaction(false).flush_bytes(32 << 10).open().unwrap()
}

#[test]
fn a_backup_holds_every_write_acknowledged_before_it_and_writes_flow_while_it_copies() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = engine(&tmp.path().join("data"));
    let base: String = (0..1000).map(|i| format!("base,host=h{} v={i}i {i}\n", i % 7)).collect();
    engine.write_lp("db", &base, Precision::Nanosecond, WriteOptions::default()).unwrap();
    engine.flush().unwrap();
    let config = BackupConfig { mode: ModeChoice::Copy, ..BackupConfig::default() };
    let backups = BackupService::open(engine.clone(), tmp.path().join("repo"), config).unwrap();
    // The copy of the base table's segment waits at this gate.
    let gate = Gate::newest_segment(&engine);

    let writers = start_writers(&engine);
    eventually("writers under way", || writers.acked().iter().all(|&n| n >= 20));
    let before_start = writers.acked();
    let name = backups.start(BackupRequest::full().named("hot")).unwrap();
    let after_start = writers.acked();

    // The job is held in its copy phase; the writers keep being acknowledged.
    eventually("writes acknowledged during the copy", || {
        writers.acked().iter().zip(&after_start).all(|(now, then)| *now >= then + 50)
    });
    let info = backups.get(&name).unwrap();
    assert_eq!(info.status, BackupStatus::InProgress, "{info:?}");
    assert_eq!(info.progress.as_ref().unwrap().phase, "copying", "{info:?}");

    gate.release();
    let info = backups.wait(&name).unwrap();
    assert_eq!(info.status, BackupStatus::Completed, "{info:?}");
    let finished = writers.finish();

    let repo = Repository::open(&tmp.path().join("repo")).unwrap();
    let held = writes_in_backup(&repo, &name);
    for w in 0..WRITERS as usize {
        assert!(
            held[w] >= before_start[w],
            "writer {w}: {} acknowledged before the start, {} in the backup",
            before_start[w],
            held[w]
        );
        // At most the write in flight when start returned, nothing after it.
        assert!(
            held[w] <= after_start[w] + 1,
            "writer {w}: {} in the backup, {} when start returned",
            held[w],
            after_start[w]
        );
        assert!(finished[w] > held[w] + 40, "writer {w}");
    }
    // The gated segment arrived whole: every base row is in the backup.
    let (manifest, _) = repo.read_manifest(&name).unwrap().unwrap();
    let base_rows = backup_rows(&repo, &manifest).keys().filter(|(_, t, _, _)| t == "base").count();
    assert_eq!(base_rows, 1000);
    assert_eq!(backups.verify(&name).unwrap().status, "ok");
    // And the engine has every acknowledged write.
    let rows: usize = engine.scan("db", "w", &quipu::ScanRequest::all()).unwrap().iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows as u64, finished.iter().sum::<u64>() * LINES);
}

#[test]
fn repeated_link_backups_during_writes_are_each_one_consistent_point() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = engine(&tmp.path().join("data"));
    let config = BackupConfig { mode: ModeChoice::Link, ..BackupConfig::default() };
    let backups = BackupService::open(engine.clone(), tmp.path().join("repo"), config).unwrap();
    let repo = Repository::open(&tmp.path().join("repo")).unwrap();
    let writers = start_writers(&engine);
    let mut previous = vec![0; WRITERS as usize];
    for round in 0..6 {
        eventually("more writes", || writers.acked().iter().zip(&previous).all(|(n, p)| *n >= p + 10));
        let before_start = writers.acked();
        let name = backups.start(BackupRequest::full().named(format!("r{round}"))).unwrap();
        let after_start = writers.acked();
        assert_eq!(backups.wait(&name).unwrap().status, BackupStatus::Completed);
        let held = writes_in_backup(&repo, &name);
        for w in 0..WRITERS as usize {
            assert!(held[w] >= before_start[w], "round {round} writer {w}: {held:?} < {before_start:?}");
            assert!(held[w] <= after_start[w] + 1, "round {round} writer {w}: {held:?} > {after_start:?}");
            assert!(held[w] >= previous[w], "round {round}: a later backup holds less");
        }
        previous = held;
    }
    writers.finish();
    assert!(repo.check(true).unwrap().is_clean());
}
