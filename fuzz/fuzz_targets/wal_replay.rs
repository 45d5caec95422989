#![no_main]
//! Arbitrary bytes as a WAL file: `Wal::open` repairs a torn tail or reports
//! corruption, never panics, and whatever it repaired opens again.
//! First input byte: bit 0 = prefix a valid header, bit 1 = follow the fuzzed
//! file with a valid empty file (so the fuzzed one is not the last).

use libfuzzer_sys::fuzz_target;
use quipu::wal::{Wal, WalError, WalOptions, encode_file_header, file_name};

fn open(dir: &std::path::Path) -> Result<Wal, WalError> {
    Wal::open(dir, WalOptions::default(), |_, payload: &[u8]| {
        std::hint::black_box(payload);
        Ok::<(), WalError>(())
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut content = Vec::with_capacity(rest.len() + 20);
    if mode & 1 == 1 {
        content.extend_from_slice(&encode_file_header(1));
    }
    content.extend_from_slice(rest);
    std::fs::write(dir.path().join(file_name(1)), &content).expect("write WAL file");
    if mode & 2 == 2 {
        std::fs::write(dir.path().join(file_name(2)), encode_file_header(2)).expect("write WAL file");
    }
    match open(dir.path()) {
        Ok(wal) => {
            drop(wal);
            open(dir.path()).expect("a WAL that opened once opens again");
        }
        Err(WalError::Corrupt { .. } | WalError::Io { .. }) => {}
        Err(other) => panic!("unexpected error: {other}"),
    }
});
