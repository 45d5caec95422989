//! Writers keep writing while a restore runs and swaps in. Every write is
//! either acknowledged or answered "rolled back, retry" (a 503 over HTTP);
//! after the swap the engine holds the backup's rows plus, per writer, an
//! unbroken tail of its acknowledged writes (those after the swap) and
//! nothing a rolled-back write carried; every write acknowledged after the
//! restore ended is there, also after a reopen.

use crate::server_support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use quipu::backup::{BackupConfig, BackupRequest, BackupService, BackupStatus, ModeChoice, RestoreVerify};
use quipu::{Engine, Precision, WriteOptions};
use server_support::engine_rows;

const WRITERS: u64 = 3;

#[test]
fn writes_during_a_restore_are_acknowledged_after_the_swap_or_told_to_retry() {
    let data = tempfile::tempdir().unwrap();
    let repo = tempfile::tempdir().unwrap();
    let engine = Engine::builder(data.path()).background(false).open().unwrap();
    let config = BackupConfig { mode: ModeChoice::Copy, ..BackupConfig::default() };
    let backups = BackupService::open(engine.clone(), repo.path().join("r"), config).unwrap();
    for f in 0..30i64 {
        let lp: String = (0..2_000).map(|i| format!("base,host=h{} v={i}i {}\n", i % 9, f * 10_000 + i)).collect();
        engine.write_lp("db", &lp, Precision::Nanosecond, WriteOptions::default()).unwrap();
        engine.flush().unwrap();
    }
    engine.write_lp("db", "w,writer=seed seq=0i 0", Precision::Nanosecond, WriteOptions::default()).unwrap();
    let name = backups.start(BackupRequest::full().named("b")).unwrap();
    assert_eq!(backups.wait(&name).unwrap().status, BackupStatus::Completed);
    let at_backup = engine_rows(&engine);

    let stop = Arc::new(AtomicBool::new(false));
    let restore_ended = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let engine = engine.clone();
            let stop = stop.clone();
            let restore_ended = restore_ended.clone();
            std::thread::spawn(move || {
                // (seq, started after the restore ended, acknowledged)
                let mut log = Vec::new();
                let mut seq = 1i64;
                while !stop.load(Ordering::SeqCst) {
                    let after_end = restore_ended.load(Ordering::SeqCst);
                    let lp =
                        format!("w,writer=w{w} seq={seq}i,{}=1i {seq}", if seq % 50 == 0 { "extra" } else { "more" });
                    match engine.write_lp("db", &lp, Precision::Nanosecond, WriteOptions::default()) {
                        Ok(_) => log.push((seq, after_end, true)),
                        Err(quipu::Error::RolledBack) => log.push((seq, after_end, false)),
                        Err(e) => panic!("writer {w}: {e}"),
                    }
                    seq += 1;
                }
                log
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let id = backups.start_restore("b", RestoreVerify::Auto).unwrap();
    assert_eq!(backups.wait_restore(&id).unwrap().status, BackupStatus::Completed);
    restore_ended.store(true, Ordering::SeqCst);
    std::thread::sleep(std::time::Duration::from_millis(20));
    stop.store(true, Ordering::SeqCst);
    let logs: Vec<_> = writers.into_iter().map(|t| t.join().unwrap()).collect();

    let rows = engine_rows(&engine);
    let mut extra = rows.clone();
    extra.retain(|k, _| !at_backup.contains_key(k));
    for (k, v) in &at_backup {
        assert_eq!(rows.get(k), Some(v), "backup row {k:?} changed");
    }
    let mut after_swap = 0;
    for (w, log) in logs.iter().enumerate() {
        let present: BTreeSet<i64> = extra.keys().filter(|k| k.2 == format!("writer=w{w}")).map(|k| k.3).collect();
        let first = present.iter().next().copied().unwrap_or(i64::MAX);
        for &(seq, after_end, acked) in log {
            if after_end {
                assert!(acked, "writer {w}: write {seq} after the restore was rolled back");
            }
            if !acked {
                assert!(!present.contains(&seq), "writer {w}: rolled-back write {seq} is in the data");
            } else if seq >= first {
                assert!(present.contains(&seq), "writer {w}: acknowledged write {seq} after the swap is missing");
                after_swap += 1;
            } else {
                assert!(!after_end, "writer {w}: write {seq}");
            }
        }
        assert!(log.iter().any(|&(_, after_end, _)| after_end), "writer {w} wrote nothing after the restore");
    }
    assert_eq!(extra.len(), after_swap, "rows that no acknowledged write made");
    backups.shutdown();
    drop(backups);
    drop(engine);
    let engine = Engine::builder(data.path()).background(false).open().unwrap();
    assert_eq!(engine_rows(&engine), rows);
}
