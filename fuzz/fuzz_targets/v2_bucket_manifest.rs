//! Fuzzes InfluxDB 2's bucket manifest as `POST /api/v2/restore/bucketMetadata`
//! will take it (`quipu::backup::v2_manifest`): any bytes give a refusal
//! or a manifest, never a panic; a manifest that decodes re-encodes to one
//! that decodes to itself, with no `null` written.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quipu::backup::v2_manifest::{decode_bucket_manifest, encode_buckets};

fuzz_target!(|data: &[u8]| {
    if let Ok(manifest) = decode_bucket_manifest(data) {
        let array = encode_buckets(std::slice::from_ref(&manifest));
        let values: Vec<serde_json::Value> = serde_json::from_slice(&array).expect("encoded buckets are JSON");
        let one = serde_json::to_vec(&values[0]).expect("a value encodes");
        assert_eq!(decode_bucket_manifest(&one).expect("an encoded manifest decodes"), manifest);
    }
});
