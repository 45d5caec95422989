//! A second opener of a data folder in the same process gets a clear
//! `Locked` error; the lock goes with the last handle. (Another process:
//! tests/it/lock_process.rs, kept apart because a child forked while this test
//! holds its lock shares the lock file until it execs.)

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
