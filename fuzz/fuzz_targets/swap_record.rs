//! Fuzzes the readers of a restore's records: `quipu::swap::SwapRecord::decode`
//! (the `RESTORE` commit record, read when a data folder is opened) and the
//! repository's `restores/<id>.json` (`RestoreInfo`). Any bytes give a typed
//! error or a value, never a panic; a record that decodes re-encodes to one
//! that decodes equal.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use quipu::backup::RestoreInfo;
use quipu::swap::SwapRecord;

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = SwapRecord::decode(Path::new("RESTORE"), data) {
        let bytes = record.encode().expect("a decoded restore record encodes");
        let again = SwapRecord::decode(Path::new("RESTORE"), &bytes).expect("an encoded restore record decodes");
        assert_eq!(again, record);
    }
    if let Ok(info) = serde_json::from_slice::<RestoreInfo>(data) {
        let bytes = serde_json::to_vec(&info).expect("a decoded restore info encodes");
        let again: RestoreInfo = serde_json::from_slice(&bytes).expect("an encoded restore info decodes");
        assert_eq!(again, info);
    }
});
