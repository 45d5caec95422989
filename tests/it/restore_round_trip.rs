//! Round trip in both repository modes: write, back up, write more (new
//! rows, a new table, a new column, a new database), restore in place ->
//! the engine serves exactly the backup's point, takes new writes, and
//! keeps both after a reopen (the rolled-back WAL is not replayed).

use crate::server_support;

use quipu::backup::{BackupConfig, BackupRequest, BackupService, BackupStatus, ModeChoice, PlaceMode, RestoreVerify};
use quipu::{Engine, Precision, WriteOptions};
use server_support::engine_rows;

fn write(engine: &Engine, db: &str, lines: &str) {
    engine.write_lp(db, lines, Precision::Nanosecond, WriteOptions::default()).unwrap();
}

fn round_trip(mode: ModeChoice, verify: RestoreVerify) {
    let data = tempfile::tempdir().unwrap();
    let repo_parent = tempfile::tempdir().unwrap();
    let repo = repo_parent.path().join("repo");
    let open = || Engine::builder(data.path()).background(false).open().unwrap();
    let engine = open();
    let config = BackupConfig { mode, ..BackupConfig::default() };
    let backups = BackupService::open(engine.clone(), &repo, config.clone()).unwrap();

    // Flushed and compacted files, and rows still in the buffer.
    for day in 0..3i64 {
        let t = day * 86_400_000_000_000;
        write(&engine, "db", &format!("cpu,host=a usage=1i,load=0.5 {t}\ncpu,host=b usage=2i,load=1.5 {}", t + 1));
        engine.flush().unwrap();
    }
    engine.compact().unwrap();
    write(&engine, "db", "cpu,host=a usage=10i 5\nmem,host=a free=7i 5");
    let at_backup = engine_rows(&engine);
    let catalog_tables = engine.catalog().database("db").unwrap().tables().count();
    let name = backups.start(BackupRequest::full().named("point")).unwrap();
    assert_eq!(backups.wait(&name).unwrap().status, BackupStatus::Completed);

    // Everything after the backup: rows, overwrites, a column, a table, a database.
    write(&engine, "db", "cpu,host=a usage=99i,extra=\"x\" 5\ncpu,host=c usage=3i 7\ndisk,host=a used=1i 9");
    write(&engine, "other", "m v=1i 1");
    engine.flush().unwrap();
    write(&engine, "db", "cpu,host=d usage=4i 8");
    assert_ne!(engine_rows(&engine), at_backup);

    let id = backups.start_restore("point", verify).unwrap();
    let info = backups.wait_restore(&id).unwrap();
    assert_eq!(info.status, BackupStatus::Completed, "{info:?}");
    assert_eq!(info.mode, if mode == ModeChoice::Copy { PlaceMode::Copy } else { PlaceMode::Link });
    assert!(info.completed_at.is_some());
    assert_eq!(info.progress.as_ref().map(|p| p.phase.as_str()), Some("done"));
    assert_eq!(engine_rows(&engine), at_backup, "the engine serves exactly the backup's point");
    assert_eq!(engine.catalog().database("db").unwrap().tables().count(), catalog_tables);
    assert!(engine.catalog().database("other").is_none(), "a database made after the backup is gone");
    assert!(matches!(engine.scan("db", "disk", &quipu::ScanRequest::all()), Err(quipu::Error::TableNotFound { .. })));
    assert_eq!(engine.last_restore().unwrap().as_deref(), Some(id.as_str()));

    // New writes land on the restored state, including new columns and tables.
    write(&engine, "db", "cpu,host=e usage=5i,extra=\"y\" 11\nnet,host=a rx=1i 12");
    let mut expected = at_backup.clone();
    let after = engine_rows(&engine);
    assert!(after.len() == expected.len() + 2, "{} rows after new writes, {} before", after.len(), expected.len());
    expected.extend(after.iter().filter(|(k, _)| k.3 >= 11).map(|(k, v)| (k.clone(), v.clone())));
    assert_eq!(after, expected);

    // A reopen serves the same: the restored files, the new writes from the
    // WAL, and nothing from the rolled-back WAL.
    backups.shutdown();
    drop(backups);
    drop(engine);
    let engine = open();
    assert_eq!(engine_rows(&engine), after);
    engine.flush().unwrap();
    engine.compact().unwrap();
    drop(engine);
    let engine = open();
    assert_eq!(engine_rows(&engine), after);

    // The restore is still listed after the restart.
    let backups = BackupService::open(engine.clone(), &repo, config).unwrap();
    let listed = backups.list_restores().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].restore_id, id);
    assert_eq!(listed[0].status, BackupStatus::Completed);
}

#[test]
fn link_mode_restore_returns_to_the_backup_point() {
    round_trip(ModeChoice::Link, RestoreVerify::Auto);
}

#[test]
fn link_mode_restore_with_full_verification() {
    round_trip(ModeChoice::Link, RestoreVerify::Full);
}

#[test]
fn copy_mode_restore_returns_to_the_backup_point() {
    round_trip(ModeChoice::Copy, RestoreVerify::Auto);
}

#[test]
fn restoring_twice_in_a_row_and_restoring_an_empty_backup() {
    let data = tempfile::tempdir().unwrap();
    let repo = tempfile::tempdir().unwrap();
    let engine = Engine::builder(data.path()).background(false).open().unwrap();
    let backups = BackupService::open(engine.clone(), repo.path().join("r"), BackupConfig::default()).unwrap();
    let empty = backups.start(BackupRequest::full().named("empty")).unwrap();
    backups.wait(&empty).unwrap();
    write(&engine, "db", "m v=1i 1");
    let one = backups.start(BackupRequest::full().named("one")).unwrap();
    backups.wait(&one).unwrap();
    let at_one = engine_rows(&engine);
    for _ in 0..2 {
        let id = backups.start_restore("one", RestoreVerify::Auto).unwrap();
        assert_eq!(backups.wait_restore(&id).unwrap().status, BackupStatus::Completed);
        assert_eq!(engine_rows(&engine), at_one);
    }
    let id = backups.start_restore("empty", RestoreVerify::Auto).unwrap();
    assert_eq!(backups.wait_restore(&id).unwrap().status, BackupStatus::Completed);
    assert!(engine_rows(&engine).is_empty());
    assert_eq!(engine.catalog().databases().count(), 0);
    write(&engine, "db", "m v=2i 2");
    assert_eq!(engine_rows(&engine).len(), 1);
    // Newest first.
    let listed: Vec<String> = backups.list_restores().unwrap().into_iter().map(|r| r.restore_id).collect();
    assert_eq!(listed.len(), 3);
    assert_eq!(listed[0], id);
    let mut sorted = listed.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(listed, sorted);
}
