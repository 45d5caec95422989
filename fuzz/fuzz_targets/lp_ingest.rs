//! Arbitrary bytes as a line protocol body written to a real engine (with
//! accept_partial): a summary or a typed error, never a panic; every
//! non-blank, non-comment line is either written or reported.
#![no_main]

use std::sync::{Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use quipu::{Durability, Engine, Precision, WriteOptions};

struct Fixture {
    _dir: tempfile::TempDir,
    engine: Engine,
    writes: u64,
}

fn fixture() -> &'static Mutex<Fixture> {
    static F: OnceLock<Mutex<Fixture>> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Engine::builder(dir.path()).background(false).durability(Durability::Buffer).open().expect("open");
        Mutex::new(Fixture { _dir: dir, engine, writes: 0 })
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(body) = std::str::from_utf8(data) else { return };
    let mut f = fixture().lock().expect("lock");
    let precision = [Precision::Auto, Precision::Nanosecond, Precision::Second][data.len() % 3];
    let opts = WriteOptions { accept_partial: true, no_sync: true };
    if let Ok(summary) = f.engine.write_lp("fuzz", body, precision, opts) {
        // A content line as line protocol defines it: not blank, not a comment
        // (only spaces and tabs are leading whitespace; one trailing \r is dropped).
        let is_content = |l: &str| {
            let l = l.strip_suffix('\r').unwrap_or(l).trim_start_matches([' ', '\t']);
            !l.is_empty() && !l.starts_with('#')
        };
        let lines = body.split('\n').filter(|l| is_content(l)).count();
        assert!(summary.lines_written + summary.errors.len() <= lines);
    }
    f.writes += 1;
    if f.writes % 500 == 0 {
        f.engine.flush().expect("flush");
        f.engine.compact().expect("compact");
    }
});
