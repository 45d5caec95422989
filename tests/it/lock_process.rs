//! Another process opening a locked data folder gets `Locked`. The child is
//! this test binary re-run; it lives in its own file so that no other test
//! of the binary holds a lock while a child is forked.

use quipu::{Engine, Error};

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
        .args(["--exact", &crate::common::test_name(module_path!(), "another_process_is_refused"), "--nocapture"])
        .env("QUIPU_LOCK_CHILD", dir.path())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(3), "the child must see Locked");
}
