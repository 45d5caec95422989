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

/// A process spawned by another thread holds a copy of the lock file's
/// descriptor until it execs; a folder closed and opened again meanwhile is
/// not locked by anybody else, and opening it must not say so.
#[test]
fn reopening_while_other_threads_spawn_processes_is_not_locked() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let dir = tempfile::tempdir().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let spawners: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut spawned = 0u32;
                while !stop.load(Ordering::SeqCst) {
                    std::process::Command::new("true").status().unwrap();
                    spawned += 1;
                }
                spawned
            })
        })
        .collect();
    for round in 0..300 {
        match Engine::builder(dir.path()).background(false).open() {
            Ok(engine) => drop(engine),
            Err(e) => panic!("round {round}: {e}"),
        }
    }
    stop.store(true, Ordering::SeqCst);
    let spawned: u32 = spawners.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(spawned > 0);
}
