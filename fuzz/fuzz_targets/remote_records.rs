//! Fuzzes the records a remote repository holds besides its objects and
//! manifests (whose decoder `backup_manifest` fuzzes): the `QUIPU-REPO`
//! marker as a remote checks it; sweep plans, which name what a sweep
//! deletes; the footer and index of a pack (`packs/<blake3>.pack`), which
//! say where a pull reads each member; and the records of push and pull
//! jobs (`transfers/<id>.json` of a local repository). Any bytes give a
//! refusal or a value, never a panic. A plan or a record that decodes
//! re-encodes to itself. A pack index that decodes places its members
//! inside the pack, back to back from offset 0 up to the index, each under
//! an object name: a pull reads a member by that offset and size alone.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quipu::remote::jobs::decode_record;
use quipu::remote::records::{
    PACK_ENTRY_LEN, PACK_FOOTER_LEN, check_marker, decode_pack_index, decode_sweep_plan, encode_sweep_plan,
    pack_tail_len,
};

fuzz_target!(|data: &[u8]| {
    let _ = check_marker(data);
    if let Ok(plan) = decode_sweep_plan(data) {
        assert!(plan.objects.iter().chain(&plan.packs).all(|name| is_object_name(name)), "{plan:?}");
        let again = decode_sweep_plan(&encode_sweep_plan(&plan)).expect("an encoded plan decodes");
        assert_eq!(again, plan);
    }
    check_as_pack(data);
    if let Ok(record) = decode_record(data) {
        let bytes = serde_json::to_vec(&record).expect("a record encodes");
        assert_eq!(decode_record(&bytes).expect("an encoded record decodes"), record);
    }
});

/// `data` read as a whole pack, so its tail is every byte of it.
fn check_as_pack(data: &[u8]) {
    let len = data.len() as u64;
    let tail_len = pack_tail_len(data, len);
    if let Ok(tail_len) = tail_len {
        // A reader fetches this many bytes from the end: never more than
        // the pack, never less than a footer.
        assert!((PACK_FOOTER_LEN as u64..=len).contains(&tail_len), "tail of {tail_len} in {len} bytes");
    }
    let Ok(entries) = decode_pack_index(data, len) else { return };
    let tail_len = tail_len.expect("a pack whose index decodes has a tail");
    assert_eq!(tail_len, (entries.len() * PACK_ENTRY_LEN + PACK_FOOTER_LEN) as u64);
    let members_end = len - tail_len;
    let mut next = 0u64;
    let mut names = std::collections::HashSet::new();
    for entry in &entries {
        assert!(is_object_name(&entry.blake3), "{entry:?}");
        assert!(names.insert(&entry.blake3), "{} named twice", entry.blake3);
        assert_eq!(entry.offset, next, "members lie back to back from offset 0: {entry:?}");
        next = entry.offset.checked_add(entry.size).expect("a member's end fits a u64");
        assert!(next <= members_end, "{entry:?} runs into the index at {members_end}");
    }
    assert_eq!(next, members_end, "the last member ends where the index starts");
}

/// 64 lowercase hex digits, as `quipu::backup::manifest::is_object_name`
/// (written out here so that the check does not trust the decoder's).
fn is_object_name(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}
