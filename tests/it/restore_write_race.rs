//! Writes that arrive while a swap holds the fence, each on its own thread
//! as HTTP requests do, must resolve against the restored catalog or be told
//! to retry: none may reach the restored buffer with the old catalog's ids
//! (a flush would then find rows of tables the catalog lacks). A large
//! buffer makes the swap hold the fence for a while.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use quipu::catalog::Catalog;
use quipu::{Engine, Precision, ScanRequest, WriteOptions};

const NO_SYNC: WriteOptions = WriteOptions { accept_partial: false, no_sync: true };

#[test]
fn writes_racing_a_swap_never_carry_the_old_catalog() {
    for round in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::builder(dir.path()).background(false).flush_bytes(usize::MAX / 8).open().unwrap();
        // Other databases first, so `db` has an id the restored (empty) catalog will not.
        for i in 0..5 {
            engine.write_lp(&format!("d{i}"), "x v=1i 1", Precision::Nanosecond, NO_SYNC).unwrap();
        }
        engine.write_lp("db", "b v=1i 1", Precision::Nanosecond, NO_SYNC).unwrap();
        for chunk in 0..30 {
            let lp: String = (0..20_000).map(|i| format!("big,h=h{i} v={i}i {}\n", chunk * 100_000 + i)).collect();
            engine.write_lp("d0", &lp, Precision::Nanosecond, NO_SYNC).unwrap();
        }
        let stop = Arc::new(AtomicBool::new(false));
        let spawner = {
            let engine = engine.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut writes = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let engine = engine.clone();
                    writes.push(std::thread::spawn(move || {
                        match engine.write_lp("db", "b v=2i 2", Precision::Nanosecond, NO_SYNC) {
                            Ok(_) | Err(quipu::Error::RolledBack) => {}
                            Err(e) => panic!("{e}"),
                        }
                    }));
                    std::thread::sleep(std::time::Duration::from_micros(30));
                }
                for w in writes {
                    w.join().unwrap();
                }
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(20));
        // A restore to an empty backup: an empty catalog, no files.
        engine.swap_in("01J8X9Z0ABCDEFGHJKMNPQRSTV", Catalog::default(), Vec::new()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        stop.store(true, Ordering::SeqCst);
        spawner.join().unwrap();
        engine.flush().unwrap_or_else(|e| panic!("round {round}: a flush after the swap failed: {e}"));
        let rows: usize = engine.scan("db", "b", &ScanRequest::all()).unwrap().iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows, 1, "round {round}: the writes after the swap are one row at time 2");
        drop(engine);
        let engine = Engine::builder(dir.path()).background(false).open().unwrap();
        engine.flush().unwrap();
        assert!(engine.catalog().database("d0").is_none(), "round {round}");
    }
}
