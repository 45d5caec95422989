//! Fuzzes the catalog log reader, `quipu::catalog::log::decode_log` (read
//! when a data folder is opened), and the replay of its records onto a
//! catalog. Any bytes give a typed error or a catalog, never a panic; the
//! input is read both as a whole log and as the payload of one well-framed
//! record, so postcard decoding and `Catalog::apply_delta` see arbitrary
//! bytes too. A record that decodes re-encodes to one that decodes equal.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use quipu::catalog::Catalog;
use quipu::catalog::log::{decode_log, encode_header, replay};

fn read(bytes: &[u8]) {
    let path = Path::new("00000000000000000001.log");
    let Ok(contents) = decode_log(path, 1, bytes) else { return };
    assert!(contents.good_len as usize <= bytes.len());
    for delta in &contents.deltas {
        let record = delta.encode_record();
        let mut log = encode_header(1).to_vec();
        log.extend_from_slice(&record);
        let again = decode_log(path, 1, &log).expect("an encoded record decodes");
        assert_eq!(again.deltas, vec![delta.clone()]);
    }
    let mut catalog = Catalog::default();
    catalog.sequence = 1;
    if replay(path, &mut catalog, &contents.deltas).is_ok() {
        // What replayed is a valid catalog: its snapshot decodes equal.
        let snapshot = Catalog::decode(Path::new("c"), &catalog.encode()).expect("a replayed catalog encodes");
        assert_eq!(snapshot, catalog);
    }
}

fuzz_target!(|data: &[u8]| {
    read(data);
    let mut framed = encode_header(1).to_vec();
    let len = data.len() as u32;
    framed.extend_from_slice(&len.to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&len.to_le_bytes());
    crc.update(data);
    framed.extend_from_slice(&crc.finalize().to_le_bytes());
    framed.extend_from_slice(data);
    read(&framed);
});
