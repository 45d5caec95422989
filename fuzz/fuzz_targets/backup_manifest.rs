//! Fuzzes `quipu::backup::manifest::decode`, the reader of a backup's commit
//! point: any bytes give a typed error or a manifest, never a panic; a
//! manifest that decodes re-encodes to one that decodes equal.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use quipu::backup::manifest::{decode, encode};

fuzz_target!(|data: &[u8]| {
    let Ok((manifest, _)) = decode(Path::new("fuzz.json"), data) else { return };
    let (bytes, hash) = encode(&manifest).expect("a decoded manifest encodes");
    let (again, again_hash) = decode(Path::new("fuzz.json"), &bytes).expect("an encoded manifest decodes");
    assert_eq!(again, manifest);
    assert_eq!(again_hash, hash);
});
