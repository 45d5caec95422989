//! Arbitrary bytes as a WAL record payload: decoding returns a batch or a
//! typed error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quipu::write::WriteBatch;

fuzz_target!(|data: &[u8]| {
    let _ = WriteBatch::decode(std::path::Path::new("fuzz.wal"), 0, data);
});
