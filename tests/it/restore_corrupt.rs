//! A missing, truncated or corrupt object fails the restore before its
//! swap, naming the object and the backup, and the live data is intact.

use crate::server_support;

use quipu::backup::{BackupConfig, BackupRequest, BackupService, BackupStatus, ModeChoice, RestoreVerify};
use quipu::{Engine, Precision, WriteOptions};
use server_support::engine_rows;

struct Setup {
    _data: tempfile::TempDir,
    _repo: tempfile::TempDir,
    engine: Engine,
    backups: BackupService,
    object: std::path::PathBuf,
    blake3: String,
}

/// A copy-mode backup `b` of two segment files, then more writes.
fn setup(mode: ModeChoice) -> Setup {
    let data = tempfile::tempdir().unwrap();
    let repo = tempfile::tempdir().unwrap();
    let engine = Engine::builder(data.path()).background(false).open().unwrap();
    let backups =
        BackupService::open(engine.clone(), repo.path().join("r"), BackupConfig { mode, ..BackupConfig::default() })
            .unwrap();
    for t in 0..2 {
        let lp: String = (0..500).map(|i| format!("m,host=h{} v={i}i {}\n", i % 5, t * 10_000 + i)).collect();
        engine.write_lp("db", &lp, Precision::Nanosecond, WriteOptions::default()).unwrap();
        engine.flush().unwrap();
    }
    let name = backups.start(BackupRequest::full().named("b")).unwrap();
    assert_eq!(backups.wait(&name).unwrap().status, BackupStatus::Completed);
    engine.write_lp("db", "m,host=z v=1i 99999", Precision::Nanosecond, WriteOptions::default()).unwrap();
    let (manifest, _) = backups.repository().read_manifest("b").unwrap().unwrap();
    let blake3 = manifest.files[1].blake3.clone();
    let object = backups.repository().object_path(&blake3);
    Setup { _data: data, _repo: repo, engine, backups, object, blake3 }
}

fn fails_naming_the_object(s: &Setup, verify: RestoreVerify, problem: &str) {
    let before = engine_rows(&s.engine);
    let files_before = s.engine.version().files.len();
    let id = s.backups.start_restore("b", verify).unwrap();
    let info = s.backups.wait_restore(&id).unwrap();
    assert_eq!(info.status, BackupStatus::Failed, "{info:?}");
    let error = info.error.unwrap();
    assert!(error.contains(&s.blake3) && error.contains(problem) && error.contains("backup b"), "{error}");
    assert!(error.contains("live data is unchanged"), "{error}");
    assert_eq!(engine_rows(&s.engine), before);
    assert_eq!(s.engine.version().files.len(), files_before);
    assert_eq!(s.engine.last_restore().unwrap(), None);
    let segments = std::fs::read_dir(s.engine.dir().join("segments")).unwrap().count();
    assert_eq!(segments, files_before, "staged files were left");
    s.engine.write_lp("db", "m,host=y v=2i 99998", Precision::Nanosecond, WriteOptions::default()).unwrap();
}

fn flip_a_byte(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644));
    let mut bytes = std::fs::read(path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x10;
    // A new file under the name (the old inode may be the live segment's, in link mode).
    std::fs::remove_file(path).unwrap();
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_corrupt_object_fails_a_copy_restore() {
    let s = setup(ModeChoice::Copy);
    flip_a_byte(&s.object);
    fails_naming_the_object(&s, RestoreVerify::Auto, "is corrupt");
}

#[test]
fn a_corrupt_object_fails_a_link_restore_with_full_verification() {
    let s = setup(ModeChoice::Link);
    flip_a_byte(&s.object);
    fails_naming_the_object(&s, RestoreVerify::Full, "is corrupt");
}

#[test]
fn a_missing_or_truncated_object_fails_either_mode() {
    for mode in [ModeChoice::Link, ModeChoice::Copy] {
        let s = setup(mode);
        std::fs::remove_file(&s.object).unwrap();
        fails_naming_the_object(&s, RestoreVerify::Auto, "is missing");
        let s = setup(mode);
        let bytes = std::fs::read(&s.object).unwrap();
        std::fs::remove_file(&s.object).unwrap();
        std::fs::write(&s.object, &bytes[..bytes.len() - 1]).unwrap();
        fails_naming_the_object(&s, RestoreVerify::Auto, "expected");
    }
}
