//! Fuzzes the export cache's file-name parser
//! (`quipu::export::cache::parse_name`), which reads whatever the
//! `<data>/export/` folder holds when the engine opens: any name gives
//! `None` or a key and content hash that write back to the same name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quipu::export::cache::{entry_name, parse_name};

fuzz_target!(|data: &[u8]| {
    let Ok(name) = std::str::from_utf8(data) else { return };
    if let Some((key, content)) = parse_name(name) {
        assert_eq!(entry_name(&key, &content), name);
    }
});
