//! Every way a restore is refused, as the typed error an embedder matches
//! on: `quipu::Error::Restore` for what concerns restores themselves,
//! `quipu::Error::Backup` for the backup it names, and nothing changed.
#![cfg(feature = "server")]

use crate::server_support;

use quipu::Error;
use quipu::backup::{
    BackupConfig, BackupError, BackupRequest, BackupService, BackupStatus, ModeChoice, RestoreError, RestoreVerify,
};
use quipu::{Engine, Precision, WriteOptions};
use server_support::{RestoreHold, engine_rows};

#[test]
fn a_second_restore_an_unknown_id_and_a_missing_backup_are_typed_refusals() {
    let data = tempfile::tempdir().unwrap();
    let repo = tempfile::tempdir().unwrap();
    let (hook, mut hold) = RestoreHold::at("rebuilding");
    let engine = Engine::builder(data.path()).background(false).open().unwrap();
    let config = BackupConfig { mode: ModeChoice::Copy, restore_hook: Some(hook), ..BackupConfig::default() };
    let backups = BackupService::open(engine.clone(), repo.path().join("r"), config).unwrap();
    engine.write_lp("db", "m,host=a v=1i 1", Precision::Nanosecond, WriteOptions::default()).unwrap();
    let name = backups.start(BackupRequest::full().named("b")).unwrap();
    assert_eq!(backups.wait(&name).unwrap().status, BackupStatus::Completed);
    engine.write_lp("db", "m,host=a v=2i 2", Precision::Nanosecond, WriteOptions::default()).unwrap();
    let before = engine_rows(&engine);

    match backups.start_restore("nope", RestoreVerify::Auto) {
        Err(Error::Backup(BackupError::NotFound { name })) => assert_eq!(name, "nope"),
        other => panic!("restore of a missing backup: {other:?}"),
    }
    match backups.start_restore("", RestoreVerify::Auto) {
        Err(Error::Backup(BackupError::InvalidRequest(_))) => {}
        other => panic!("restore of an empty name: {other:?}"),
    }
    let unknown = ulid::Ulid::new().to_string();
    match backups.restore_info(&unknown) {
        Err(Error::Restore(RestoreError::NotFound { id })) => assert_eq!(id, unknown),
        other => panic!("status of an unknown restore: {other:?}"),
    }
    match backups.cancel_restore(&unknown) {
        Err(Error::Restore(RestoreError::NotRunning { id })) => assert_eq!(id, unknown),
        other => panic!("cancel of an unknown restore: {other:?}"),
    }

    let first = backups.start_restore("b", RestoreVerify::Auto).unwrap();
    assert_eq!(hold.wait_entered(), first);
    match backups.start_restore("b", RestoreVerify::Auto) {
        Err(Error::Restore(RestoreError::Running { id })) => assert_eq!(id, first),
        other => panic!("a second restore while one runs: {other:?}"),
    }
    assert_eq!(engine_rows(&engine), before, "a refused restore changed the data");
    hold.release();
    assert_eq!(backups.wait_restore(&first).unwrap().status, BackupStatus::Completed);
    assert_eq!(engine_rows(&engine).len(), 1);
    match backups.cancel_restore(&first) {
        Err(Error::Restore(RestoreError::NotRunning { id })) => assert_eq!(id, first),
        other => panic!("cancel of an ended restore: {other:?}"),
    }
}

#[test]
fn an_offline_restore_into_a_folder_that_holds_something_is_refused_with_its_path() {
    let data = tempfile::tempdir().unwrap();
    let repo = tempfile::tempdir().unwrap();
    let repo_dir = repo.path().join("r");
    {
        let engine = Engine::builder(data.path()).background(false).open().unwrap();
        let backups = BackupService::open(engine.clone(), &repo_dir, BackupConfig::default()).unwrap();
        engine.write_lp("db", "m v=1i 1", Precision::Nanosecond, WriteOptions::default()).unwrap();
        let name = backups.start(BackupRequest::full().named("b")).unwrap();
        assert_eq!(backups.wait(&name).unwrap().status, BackupStatus::Completed);
    }
    let target = tempfile::tempdir().unwrap();
    std::fs::write(target.path().join("keep.txt"), b"mine").unwrap();
    let run = |backup: &str| {
        quipu::backup::restore_into(&repo_dir, backup, target.path(), ModeChoice::Copy, RestoreVerify::Auto, &|_| {})
    };
    match run("b") {
        Err(Error::Restore(RestoreError::TargetNotEmpty { path })) => assert_eq!(path, target.path()),
        other => panic!("restore into a folder that is not empty: {other:?}"),
    }
    match run("missing") {
        Err(Error::Backup(BackupError::NotFound { name })) => assert_eq!(name, "missing"),
        other => panic!("offline restore of a missing backup: {other:?}"),
    }
    assert_eq!(std::fs::read(target.path().join("keep.txt")).unwrap(), b"mine");
    assert_eq!(std::fs::read_dir(target.path()).unwrap().count(), 1);
}
