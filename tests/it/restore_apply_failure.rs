//! The swap's commit record is written but applying it fails (here: the
//! catalog snapshot cannot be written). The engine must then change
//! nothing more (writes, flushes and compactions refused), since the next
//! open applies the record over the old state; that open serves exactly the
//! backup's data and the restore is recorded completed.

use crate::server_support;

use quipu::backup::{BackupConfig, BackupRequest, BackupService, BackupStatus, ModeChoice, RestoreVerify};
use quipu::{Engine, Precision, WriteOptions};
use server_support::engine_rows;

#[test]
fn a_swap_that_fails_after_its_commit_is_finished_by_the_next_open() {
    let data = tempfile::tempdir().unwrap();
    let repo = tempfile::tempdir().unwrap();
    let config = BackupConfig { mode: ModeChoice::Copy, ..BackupConfig::default() };
    let open = || Engine::builder(data.path()).background(false).open().unwrap();
    let engine = open();
    let backups = BackupService::open(engine.clone(), repo.path().join("r"), config.clone()).unwrap();
    let w = |e: &Engine, lp: &str| e.write_lp("db", lp, Precision::Nanosecond, WriteOptions::default());
    w(&engine, "m,host=a v=1i 1").unwrap();
    let name = backups.start(BackupRequest::full().named("b")).unwrap();
    assert_eq!(backups.wait(&name).unwrap().status, BackupStatus::Completed);
    let at_backup = engine_rows(&engine);
    w(&engine, "m,host=a v=2i 2\nother v=1i 1").unwrap();
    engine.flush().unwrap();
    w(&engine, "m,host=b v=3i 3").unwrap();

    // The restored catalog's snapshot name, taken by a folder.
    let sequence = engine.catalog().sequence + 1;
    let trap = data.path().join("catalog").join(format!("{sequence:020}.cat.tmp"));
    std::fs::create_dir_all(trap.join("x")).unwrap();

    let id = backups.start_restore("b", RestoreVerify::Auto).unwrap();
    let info = backups.wait_restore(&id).unwrap();
    assert_eq!(info.status, BackupStatus::Failed, "{info:?}");
    assert!(info.error.as_deref().unwrap_or("").contains("committed"), "{info:?}");
    assert!(matches!(engine.flush(), Err(quipu::Error::Poisoned { .. })), "a flush after a failed apply");
    assert!(matches!(engine.compact(), Ok(()) | Err(quipu::Error::Poisoned { .. })));
    assert!(matches!(w(&engine, "m,host=c v=4i 4"), Err(quipu::Error::Poisoned { .. })));
    assert!(data.path().join("RESTORE").exists());

    backups.shutdown();
    drop(backups);
    drop(engine);
    std::fs::remove_dir_all(&trap).unwrap();
    let engine = open();
    assert!(!data.path().join("RESTORE").exists());
    assert_eq!(engine_rows(&engine), at_backup);
    assert_eq!(engine.last_restore().unwrap().as_deref(), Some(id.as_str()));
    let backups = BackupService::open(engine.clone(), repo.path().join("r"), config).unwrap();
    let info = backups.restore_info(&id).unwrap();
    assert_eq!(info.status, BackupStatus::Completed, "{info:?}");
    assert!(info.error.is_none());
    w(&engine, "m,host=d v=5i 5").unwrap();
}
