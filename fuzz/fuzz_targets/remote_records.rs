//! Fuzzes the records a remote repository holds besides its objects and
//! manifests (whose decoder `backup_manifest` fuzzes): the `QUIPU-REPO`
//! marker as a remote checks it, and sweep plans, which name what a sweep
//! deletes; and the records of push and pull jobs (`transfers/<id>.json`
//! of a local repository). Any bytes give a refusal or a value, never a
//! panic; a plan or a record that decodes re-encodes to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quipu::remote::jobs::decode_record;
use quipu::remote::records::{check_marker, decode_sweep_plan, encode_sweep_plan};

fuzz_target!(|data: &[u8]| {
    let _ = check_marker(data);
    if let Ok((objects, grace)) = decode_sweep_plan(data) {
        assert!(objects.iter().all(|o| o.len() == 64));
        let again = decode_sweep_plan(&encode_sweep_plan(&objects, grace)).expect("an encoded plan decodes");
        assert_eq!(again, (objects, grace));
    }
    if let Ok(record) = decode_record(data) {
        let bytes = serde_json::to_vec(&record).expect("a record encodes");
        assert_eq!(decode_record(&bytes).expect("an encoded record decodes"), record);
    }
});
