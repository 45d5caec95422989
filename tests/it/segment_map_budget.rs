//! Segments hold their mappings within the process's budget (issue 15,
//! item 8): one mapping per live segment hit `vm.max_map_count` with 100,000
//! tables, and every flush failed at install. Here the budget is set far
//! below the number of segments: flushes, compactions, scans and a reopen
//! all work, every row comes back, and the mappings held never pass the
//! budget. Its own test binary, as the budget is process-wide.

use quipu::segment::maps;
use quipu::{Engine, Precision, ScanRequest, WriteOptions};

const TABLES: usize = 300;
const BUDGET: usize = 16;

fn rows(engine: &Engine, table: &str) -> usize {
    engine.scan("db", table, &ScanRequest::all()).unwrap().iter().map(|b| b.num_rows()).sum()
}

#[test]
fn more_segments_than_the_mapping_budget_all_stay_readable() {
    maps::set_max_mapped_segments(BUDGET);
    assert_eq!(maps::max_mapped_segments(), BUDGET);
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::builder(dir.path()).background(false).open().unwrap();
    // Two flushes of every table, so compaction has two inputs per table.
    for round in 0..2 {
        let body: String = (0..TABLES).map(|t| format!("t{t},k=a v={round}i {}\n", 1_000 + round)).collect();
        engine.write_lp("db", &body, Precision::Nanosecond, WriteOptions::default()).unwrap();
        engine.flush().unwrap();
        assert!(maps::mapped_segments() <= BUDGET, "{} mapped after flush {round}", maps::mapped_segments());
    }
    assert_eq!(engine.live_files().len(), 2 * TABLES);
    for t in 0..TABLES {
        assert_eq!(rows(&engine, &format!("t{t}")), 2, "t{t}");
    }
    assert!(maps::mapped_segments() <= BUDGET);

    engine.compact().unwrap();
    assert_eq!(engine.live_files().len(), TABLES);
    // Read in two passes: the second maps again what the first dropped.
    for _ in 0..2 {
        for t in 0..TABLES {
            assert_eq!(rows(&engine, &format!("t{t}")), 2, "t{t}");
        }
    }
    assert!(maps::mapped_segments() <= BUDGET);
    engine.close().unwrap();
    drop(engine);

    let engine = Engine::builder(dir.path()).background(false).open().unwrap();
    assert!(maps::mapped_segments() <= BUDGET, "{} mapped after open", maps::mapped_segments());
    let total: usize = (0..TABLES).map(|t| rows(&engine, &format!("t{t}"))).sum();
    assert_eq!(total, 2 * TABLES);
    drop(engine);
    assert_eq!(maps::mapped_segments(), 0, "dropped readers give their mappings back");
}
