//! Fuzzes `quipu::client::unpack_export`, the client's decoder of an export
//! stream: any bytes give files or a typed error, never a panic, and nothing
//! is written outside the output folder (which lives inside a scratch
//! folder, so an escape would show up beside it).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let scratch = tempfile::tempdir().expect("scratch folder");
    let out = scratch.path().join("out");
    if let Ok(files) = quipu::client::unpack_export(data, "fuzz", &out) {
        for f in files {
            assert!(f.path.starts_with(&out), "{} outside the output folder", f.path.display());
        }
    }
    for entry in std::fs::read_dir(scratch.path()).expect("list scratch") {
        let name = entry.expect("entry").file_name();
        assert_eq!(name, "out", "wrote {name:?} beside the output folder");
    }
});
