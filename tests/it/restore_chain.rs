//! A chain of backups (full, then incrementals); other backups of the chain
//! are deleted (and their unshared objects swept) before each restore, and
//! every remaining backup still restores to exactly its point.

use crate::server_support;

use quipu::backup::{BackupConfig, BackupRequest, BackupService, BackupStatus, ModeChoice, RestoreVerify};
use quipu::{Engine, Precision, WriteOptions};
use server_support::engine_rows;

#[test]
fn each_backup_of_a_chain_restores_after_the_others_are_deleted() {
    for mode in [ModeChoice::Link, ModeChoice::Copy] {
        let data = tempfile::tempdir().unwrap();
        let repo = tempfile::tempdir().unwrap();
        let engine = Engine::builder(data.path()).background(false).open().unwrap();
        let config = BackupConfig { mode, ..BackupConfig::default() };
        let backups = BackupService::open(engine.clone(), repo.path().join("r"), config).unwrap();
        let mut points = Vec::new();
        for k in 0..4i64 {
            let lp: String =
                (0..200).map(|i| format!("cpu,host=h{} v={}i {}\n", i % 4, i + k, k * 1_000 + i)).collect();
            engine.write_lp("db", &lp, Precision::Nanosecond, WriteOptions::default()).unwrap();
            if k == 2 {
                engine.flush().unwrap();
                engine.compact().unwrap();
            }
            let request = if k == 0 { BackupRequest::full() } else { BackupRequest::full().incremental(None) };
            let name = backups.start(request.named(format!("c{k}"))).unwrap();
            assert_eq!(backups.wait(&name).unwrap().status, BackupStatus::Completed);
            points.push((format!("c{k}"), engine_rows(&engine)));
        }
        // Newest, then oldest, then the middle ones: each restored after the
        // deletes before it, the rest deleted right after.
        for order in [3usize, 0, 2, 1] {
            let (name, rows) = &points[order];
            let id = backups.start_restore(name, RestoreVerify::Full).unwrap();
            let info = backups.wait_restore(&id).unwrap();
            assert_eq!(info.status, BackupStatus::Completed, "{mode:?} {name}: {info:?}");
            assert_eq!(&engine_rows(&engine), rows, "{mode:?} {name}");
            backups.delete(name).unwrap();
        }
        assert!(backups.list().unwrap().is_empty());
        // The engine keeps its restored data after every backup is gone.
        assert_eq!(engine_rows(&engine), points[1].1);
    }
}
