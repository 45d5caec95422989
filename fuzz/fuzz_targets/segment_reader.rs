//! Arbitrary bytes as a `.seg` file: opening and reading every block returns
//! a typed error or data, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quipu::segment::SegmentReader;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("f.seg");
    std::fs::write(&path, data).expect("write");
    if let Ok(reader) = SegmentReader::open(&path) {
        let _ = reader.check_all_blocks();
    }
});
