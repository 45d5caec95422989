//! A second opener of a data folder gets a clear `Locked` error, in this
//! process and from another one; the lock goes with the last handle.

use quipu::{Engine, Error};

#[test]
fn second_open_is_locked_until_the_first_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let first = Engine::open(dir.path()).unwrap();
    let clone = first.clone();
    match Engine::open(dir.path()) {
        Err(Error::Locked { path }) => assert_eq!(path, dir.path()),
        other => panic!("expected Locked, got {other:?}"),
    }
    drop(first);
    assert!(matches!(Engine::open(dir.path()), Err(Error::Locked { .. })), "a clone still holds it");
    drop(clone);
    let again = Engine::open(dir.path()).unwrap();
    drop(again);
}

#[test]
fn another_process_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    if let Ok(path) = std::env::var("QUIPU_LOCK_CHILD") {
        // The child: try to open and report.
        let code = match Engine::open(&path) {
            Err(Error::Locked { .. }) => 3,
            Ok(_) => 0,
            Err(_) => 1,
        };
        std::process::exit(code);
    }
    let _engine = Engine::open(dir.path()).unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "another_process_is_refused", "--nocapture"])
        .env("QUIPU_LOCK_CHILD", dir.path())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(3), "the child must see Locked");
}
