//! A data folder (and a backup repository) named by a bare relative name,
//! as `quipu serve --data-dir newdata` gives it: created and opened like any
//! other. Its own test binary, since it changes the working folder.

use quipu::backup::{BackupConfig, BackupRequest, BackupService, BackupStatus};
use quipu::{Engine, Precision, ScanRequest, WriteOptions};

#[test]
fn bare_relative_names_are_created_and_reopened() {
    let dir = tempfile::tempdir().unwrap();
    std::env::set_current_dir(dir.path()).unwrap();
    let engine = Engine::builder("newdata").background(false).open().unwrap();
    engine.write_lp("db", "m v=1i 1", Precision::Nanosecond, WriteOptions::default()).unwrap();
    let backups = BackupService::open(engine.clone(), "newbackups", BackupConfig::default()).unwrap();
    let name = backups.start(BackupRequest::full()).unwrap();
    assert_eq!(backups.wait(&name).unwrap().status, BackupStatus::Completed);
    backups.shutdown();
    drop(backups);
    drop(engine);
    let engine = Engine::builder("newdata").background(false).open().unwrap();
    let rows: usize = engine.scan("db", "m", &ScanRequest::all()).unwrap().iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 1);
    assert!(dir.path().join("newdata").join("CURRENT").exists());
}
