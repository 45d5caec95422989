//! The small records a remote holds besides a repository's own files: the
//! `QUIPU-REPO` marker as a remote checks it (the local repository's
//! `RepoInfo`), sweep plans (`sweeps/<ulid>.json`, JSON), and the index
//! and footer of packs (`packs/<blake3>.pack`, binary: docs/FORMAT.md).
//! Every decoder takes any bytes.

use crate::backup::manifest::is_object_name;
use crate::backup::repo::{REPO_FORMAT, RepoInfo, RepoInfoProblem};

/// A sweep plan, `sweeps/<ulid>.json`: what a later sweep deletes.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SweepPlan {
    /// Loose objects (`objects/ab/<blake3>`), by name.
    pub objects: Vec<String>,
    /// Packs (`packs/<blake3>.pack`), by the blake3 of their bytes.
    #[serde(default)]
    pub packs: Vec<String>,
    /// The grace period the sweep that wrote it runs with, in seconds: a
    /// push keeps to the longest it sees.
    #[serde(default)]
    pub grace_secs: u64,
}

/// Checks a remote's marker, the local repository's own (`RepoInfo`):
/// `Err` says why it is not one this build reads.
pub fn check_marker(bytes: &[u8]) -> Result<(), String> {
    RepoInfo::decode(bytes).map(drop).map_err(|problem| match problem {
        RepoInfoProblem::Malformed(what) => format!("not a repository marker: {what}"),
        RepoInfoProblem::Format(found) => format!("repository format {found} (this build reads {REPO_FORMAT})"),
    })
}

pub fn encode_sweep_plan(plan: &SweepPlan) -> Vec<u8> {
    serde_json::to_vec(plan).unwrap_or_default()
}

/// A plan; `Err` for anything but a plan of object and pack names (a plan
/// is what a sweep deletes by: it may name nothing else).
pub fn decode_sweep_plan(bytes: &[u8]) -> Result<SweepPlan, String> {
    let plan: SweepPlan = serde_json::from_slice(bytes).map_err(|e| format!("sweep plan: {e}"))?;
    if let Some(bad) = plan.objects.iter().chain(&plan.packs).find(|name| !is_object_name(name)) {
        return Err(format!("sweep plan names {bad:?}, which is not an object or pack name"));
    }
    Ok(plan)
}

/// The last bytes of a pack: `count: u64 LE | crc32(index): u32 LE |
/// format: u32 LE | PACK_MAGIC`.
pub const PACK_FOOTER_LEN: usize = 24;
/// One index entry: `blake3 (32 raw bytes) | offset: u64 LE | size: u64 LE`.
pub const PACK_ENTRY_LEN: usize = 48;
pub const PACK_MAGIC: &[u8; 8] = b"QUIPUPAK";
pub const PACK_FORMAT: u32 = 1;

/// One member of a pack: an object's name, and where its bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackEntry {
    pub blake3: String,
    pub offset: u64,
    pub size: u64,
}

impl PackEntry {
    pub fn end(&self) -> u64 {
        self.offset + self.size
    }
}

/// A pack being built: members appended back to back, then the index and
/// the footer ([`PackWriter::finish`]).
#[derive(Default)]
pub struct PackWriter {
    bytes: Vec<u8>,
    entries: Vec<([u8; 32], u64, u64)>,
}

impl PackWriter {
    pub fn with_capacity(bytes: usize) -> PackWriter {
        PackWriter { bytes: Vec::with_capacity(bytes), entries: Vec::new() }
    }

    /// Appends an object. `blake3` is its hash, which the caller checked.
    pub fn add(&mut self, blake3: &blake3::Hash, member: &[u8]) {
        self.entries.push((*blake3.as_bytes(), self.bytes.len() as u64, member.len() as u64));
        self.bytes.extend_from_slice(member);
    }

    /// The members' bytes so far.
    pub fn member_bytes(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The pack's bytes and its name (the blake3 of those bytes).
    pub fn finish(mut self) -> (Vec<u8>, String) {
        let index_start = self.bytes.len();
        for (hash, offset, size) in &self.entries {
            self.bytes.extend_from_slice(hash);
            self.bytes.extend_from_slice(&offset.to_le_bytes());
            self.bytes.extend_from_slice(&size.to_le_bytes());
        }
        let crc = crc32fast::hash(&self.bytes[index_start..]);
        self.bytes.extend_from_slice(&(self.entries.len() as u64).to_le_bytes());
        self.bytes.extend_from_slice(&crc.to_le_bytes());
        self.bytes.extend_from_slice(&PACK_FORMAT.to_le_bytes());
        self.bytes.extend_from_slice(PACK_MAGIC);
        let name = blake3::hash(&self.bytes).to_hex().to_string();
        (self.bytes, name)
    }
}

/// How many bytes at the end of a pack of `pack_len` bytes hold its index
/// and footer, read from its last [`PACK_FOOTER_LEN`] bytes (`footer`).
pub fn pack_tail_len(footer: &[u8], pack_len: u64) -> Result<u64, String> {
    let footer: &[u8; PACK_FOOTER_LEN] = footer
        .get(footer.len().saturating_sub(PACK_FOOTER_LEN)..)
        .and_then(|f| f.try_into().ok())
        .ok_or_else(|| format!("pack footer: {} bytes, {PACK_FOOTER_LEN} expected", footer.len()))?;
    if &footer[16..] != PACK_MAGIC {
        return Err("not a pack: no QUIPUPAK magic at its end".into());
    }
    let format = u32::from_le_bytes([footer[12], footer[13], footer[14], footer[15]]);
    if format != PACK_FORMAT {
        return Err(format!("pack format {format} (this build reads {PACK_FORMAT})"));
    }
    let count = u64::from_le_bytes(footer[..8].try_into().unwrap_or_default());
    count
        .checked_mul(PACK_ENTRY_LEN as u64)
        .and_then(|n| n.checked_add(PACK_FOOTER_LEN as u64))
        .filter(|&tail| tail <= pack_len)
        .ok_or_else(|| format!("pack index of {count} entries does not fit a pack of {pack_len} bytes"))
}

/// A pack's members from its last bytes (`tail`: at least
/// [`pack_tail_len`] of them, ending at the pack's end) and its length.
/// The members must lie back to back from offset 0 up to the index, each
/// named once.
pub fn decode_pack_index(tail: &[u8], pack_len: u64) -> Result<Vec<PackEntry>, String> {
    let tail_len = pack_tail_len(tail, pack_len)?;
    let start = tail
        .len()
        .checked_sub(usize::try_from(tail_len).map_err(|_| "pack index too large".to_string())?)
        .ok_or_else(|| format!("pack index: {} bytes at hand, {tail_len} needed", tail.len()))?;
    let index = &tail[start..tail.len() - PACK_FOOTER_LEN];
    let footer = &tail[tail.len() - PACK_FOOTER_LEN..];
    let crc = u32::from_le_bytes([footer[8], footer[9], footer[10], footer[11]]);
    if crc32fast::hash(index) != crc {
        return Err("pack index fails its crc32".into());
    }
    let members_end = pack_len - tail_len;
    let mut entries = Vec::with_capacity(index.len() / PACK_ENTRY_LEN);
    let mut seen = std::collections::HashSet::new();
    let mut next = 0u64;
    for raw in index.chunks_exact(PACK_ENTRY_LEN) {
        let blake3 = blake3::Hash::from_bytes(raw[..32].try_into().unwrap_or_default()).to_hex().to_string();
        let offset = u64::from_le_bytes(raw[32..40].try_into().unwrap_or_default());
        let size = u64::from_le_bytes(raw[40..48].try_into().unwrap_or_default());
        if offset != next {
            return Err(format!("pack member {blake3} at offset {offset}, {next} expected (members lie back to back)"));
        }
        next = offset.checked_add(size).filter(|&end| end <= members_end).ok_or_else(|| {
            format!("pack member {blake3} of {size} bytes at {offset} runs past the members' end ({members_end})")
        })?;
        if !seen.insert(blake3.clone()) {
            return Err(format!("pack names member {blake3} twice"));
        }
        entries.push(PackEntry { blake3, offset, size });
    }
    if next != members_end {
        return Err(format!("pack members end at {next}, its index starts at {members_end}"));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn plans_round_trip(
            objects in proptest::collection::vec("[0-9a-f]{64}", 0..20),
            packs in proptest::collection::vec("[0-9a-f]{64}", 0..5),
            grace_secs in any::<u64>(),
        ) {
            let plan = SweepPlan { objects, packs, grace_secs };
            prop_assert_eq!(decode_sweep_plan(&encode_sweep_plan(&plan)).unwrap(), plan);
        }

        #[test]
        fn packs_round_trip(members in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20)) {
            let mut writer = PackWriter::default();
            let mut distinct = std::collections::HashSet::new();
            let members: Vec<Vec<u8>> = members.into_iter().filter(|m| distinct.insert(m.clone())).collect();
            for member in &members {
                writer.add(&blake3::hash(member), member);
            }
            let (pack, name) = writer.finish();
            prop_assert_eq!(name, blake3::hash(&pack).to_hex().to_string());
            let tail_len = pack_tail_len(&pack[pack.len() - PACK_FOOTER_LEN..], pack.len() as u64).unwrap();
            let entries = decode_pack_index(&pack[pack.len() - tail_len as usize..], pack.len() as u64).unwrap();
            // A longer tail reads the same.
            prop_assert_eq!(&decode_pack_index(&pack, pack.len() as u64).unwrap(), &entries);
            prop_assert_eq!(entries.len(), members.len());
            for (entry, member) in entries.iter().zip(&members) {
                prop_assert_eq!(&pack[entry.offset as usize..entry.end() as usize], member.as_slice());
                prop_assert_eq!(&entry.blake3, &blake3::hash(member).to_hex().to_string());
            }
        }

        #[test]
        fn any_pack_bytes_are_refused_or_read(bytes in proptest::collection::vec(any::<u8>(), 0..400), cut in 0usize..400) {
            if let Ok(entries) = decode_pack_index(&bytes[cut.min(bytes.len())..], bytes.len() as u64) {
                prop_assert!(entries.iter().all(|e| e.end() <= bytes.len() as u64));
            }
        }

        #[test]
        fn markers_check(id in any::<u128>(), at in "[ -~]{0,40}") {
            prop_assert!(check_marker(&RepoInfo::new(id, &at).encode()).is_ok());
        }

        #[test]
        fn any_bytes_are_refused_or_read(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_sweep_plan(&bytes);
            let _ = check_marker(&bytes);
        }
    }

    fn pack_of(members: &[&[u8]]) -> Vec<u8> {
        let mut writer = PackWriter::default();
        for member in members {
            writer.add(&blake3::hash(member), member);
        }
        writer.finish().0
    }

    #[test]
    fn damaged_packs_are_refused_with_the_reason() {
        let pack = pack_of(&[b"alpha", b"", b"gamma"]);
        let len = pack.len() as u64;
        assert_eq!(decode_pack_index(&pack, len).unwrap().len(), 3);
        let index_at = pack.len() - PACK_FOOTER_LEN - 3 * PACK_ENTRY_LEN;
        let mut flipped = pack.clone();
        flipped[index_at + 3] ^= 1;
        assert!(decode_pack_index(&flipped, len).unwrap_err().contains("crc32"));
        let mut magic = pack.clone();
        magic[pack.len() - 1] = b'X';
        assert!(decode_pack_index(&magic, len).unwrap_err().contains("magic"));
        let mut format = pack.clone();
        format[pack.len() - 12] = 2;
        assert!(decode_pack_index(&format, len).unwrap_err().contains("pack format 2"));
        let mut count = pack.clone();
        count[pack.len() - PACK_FOOTER_LEN..][..8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode_pack_index(&count, len).unwrap_err().contains("does not fit"));
        // Members that do not lie back to back, with a valid crc.
        let mut gap = pack.clone();
        let entry = index_at + PACK_ENTRY_LEN; // the second member's entry
        gap[entry + 32..entry + 40].copy_from_slice(&6u64.to_le_bytes());
        let crc = crc32fast::hash(&gap[index_at..pack.len() - PACK_FOOTER_LEN]);
        gap[pack.len() - 16..pack.len() - 12].copy_from_slice(&crc.to_le_bytes());
        assert!(decode_pack_index(&gap, len).unwrap_err().contains("back to back"));
        // The same member twice.
        assert!(decode_pack_index(&pack_of(&[b"x", b"x"]), 0).is_err());
        let twice = pack_of(&[b"x", b"x"]);
        assert!(decode_pack_index(&twice, twice.len() as u64).unwrap_err().contains("twice"));
        // Too few bytes at hand for the index the footer announces.
        assert!(decode_pack_index(&pack[pack.len() - PACK_FOOTER_LEN..], len).unwrap_err().contains("needed"));
        assert!(pack_tail_len(b"short", 5).is_err());
    }

    #[test]
    fn a_plan_naming_anything_but_objects_is_refused() {
        assert!(decode_sweep_plan(br#"{"objects": ["../manifests/b.json"]}"#).is_err());
        assert!(decode_sweep_plan(br#"{"objects": [], "packs": ["../x"]}"#).is_err());
        assert!(check_marker(br#"{"format": 2, "repo_id": "x", "created_at": "y"}"#).unwrap_err().contains("format 2"));
    }
}
