//! The backup manifest: the commit point of a backup. A backup exists if and
//! only if `manifests/<name>.json` exists, and it lists every object the
//! backup needs (a full listing, whatever its parent).
//!
//! On disk a manifest is JSON: `{"blake3": "<hex>", "manifest": {...}}`,
//! where the hash covers the exact bytes of the `manifest` value as stored,
//! so a reader detects any change without re-encoding anything.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::{Error, Result};

/// The manifest format this build writes and reads.
pub const MANIFEST_FORMAT: u16 = 1;

/// `full` or `incremental`. Both are full listings; an incremental backup
/// records the backup it followed as its parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupType {
    Full,
    Incremental,
}

impl BackupType {
    pub fn as_str(self) -> &'static str {
        match self {
            BackupType::Full => "full",
            BackupType::Incremental => "incremental",
        }
    }
}

/// How objects were put into the repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlaceMode {
    /// Hard links to the segment files (same filesystem, no bytes copied).
    Link,
    /// Copies.
    Copy,
}

impl PlaceMode {
    pub fn as_str(self) -> &'static str {
        match self {
            PlaceMode::Link => "link",
            PlaceMode::Copy => "copy",
        }
    }
}

/// The backup a backup followed: its name and the blake3 of its manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentRef {
    pub name: String,
    pub blake3: String,
}

/// An object of the repository: content named by its blake3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    pub blake3: String,
    pub size: u64,
}

impl ObjectRef {
    /// The object `bytes` would be stored as.
    pub fn of_bytes(bytes: &[u8]) -> ObjectRef {
        ObjectRef { blake3: blake3::hash(bytes).to_hex().to_string(), size: bytes.len() as u64 }
    }
}

/// The catalog a backup was taken with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogRef {
    pub blake3: String,
    pub size: u64,
    pub sequence: u64,
}

/// The tree version a backup was taken from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeRef {
    pub version: u64,
    pub next_file_id: u64,
    pub catalog_sequence: u64,
}

/// One segment file of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// The path relative to the data folder (`segments/<id>.seg`).
    pub path: String,
    pub blake3: String,
    pub size: u64,
    pub file_id: u64,
    pub level: u8,
    pub db: String,
    pub db_id: u32,
    pub table: String,
    pub table_id: u32,
    /// The 24h window of a compacted file.
    pub window_start_ns: Option<i64>,
    pub rows: u64,
    pub time_min_ns: i64,
    pub time_max_ns: i64,
}

/// A completed backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u16,
    pub name: String,
    #[serde(rename = "type")]
    pub backup_type: BackupType,
    pub parent: Option<ParentRef>,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub completed_at: String,
    pub status: String,
    /// The segment format version of the files.
    pub engine_format: u16,
    pub mode: PlaceMode,
    pub catalog: CatalogRef,
    pub tree: TreeRef,
    pub files: Vec<ManifestFile>,
    pub total_files: u64,
    pub total_size_bytes: u64,
    /// Objects this backup put into the repository (the rest were present).
    pub added_objects: u64,
    pub added_bytes: u64,
}

impl Manifest {
    /// Every object the backup needs: the catalog, then the segment files.
    pub fn objects(&self) -> impl Iterator<Item = ObjectRef> + '_ {
        std::iter::once(ObjectRef { blake3: self.catalog.blake3.clone(), size: self.catalog.size })
            .chain(self.files.iter().map(|f| ObjectRef { blake3: f.blake3.clone(), size: f.size }))
    }

    /// [`Manifest::objects`], each once: what a transfer moves.
    pub fn distinct_objects(&self) -> Vec<ObjectRef> {
        let mut seen = std::collections::HashSet::new();
        self.objects().filter(|o| seen.insert(o.blake3.clone())).collect()
    }
}

/// Each object the manifests name, with the backups that use it (each
/// backup once, in the order given): what GC keeps, what deleting a backup
/// frees, whom a bad object hurts.
pub fn object_users<'a>(
    manifests: impl IntoIterator<Item = &'a Manifest>,
) -> BTreeMap<String, (ObjectRef, Vec<String>)> {
    let mut users: BTreeMap<String, (ObjectRef, Vec<String>)> = BTreeMap::new();
    for m in manifests {
        for object in m.objects() {
            let (_, names) = users.entry(object.blake3.clone()).or_insert_with(|| (object, Vec::new()));
            if names.last() != Some(&m.name) {
                names.push(m.name.clone());
            }
        }
    }
    users
}

#[derive(Serialize)]
struct Sealed<'a> {
    blake3: String,
    manifest: &'a RawValue,
}

#[derive(Deserialize)]
struct Opened<'a> {
    blake3: String,
    #[serde(borrow)]
    manifest: &'a RawValue,
}

#[derive(Deserialize)]
struct FormatOnly {
    format: u16,
}

/// The stored form of `manifest` and the blake3 (hex) that names its content.
pub fn encode(manifest: &Manifest) -> Result<(Vec<u8>, String)> {
    let failed = |e: serde_json::Error| Error::InvalidArgument(format!("manifest encoding: {e}"));
    let body = serde_json::to_string_pretty(manifest).map_err(failed)?;
    let hash = blake3::hash(body.as_bytes()).to_hex().to_string();
    let raw = RawValue::from_string(body).map_err(failed)?;
    let mut bytes = serde_json::to_vec_pretty(&Sealed { blake3: hash.clone(), manifest: &raw }).map_err(failed)?;
    bytes.push(b'\n');
    Ok((bytes, hash))
}

/// Reads a stored manifest, checking its hash and format. `path` names the
/// file in errors. Returns the manifest and the hash of its content.
pub fn decode(path: &Path, bytes: &[u8]) -> Result<(Manifest, String)> {
    let corrupt = |what: String| Error::Corrupt { path: path.to_path_buf(), what };
    let opened: Opened<'_> = serde_json::from_slice(bytes).map_err(|e| corrupt(format!("manifest JSON: {e}")))?;
    let body = opened.manifest.get();
    let hash = blake3::hash(body.as_bytes()).to_hex().to_string();
    if hash != opened.blake3 {
        return Err(corrupt(format!("manifest content hashes to {hash}, the file records {}", opened.blake3)));
    }
    let unsupported =
        |found: u16| Error::UnsupportedVersion { path: path.to_path_buf(), found, supported: MANIFEST_FORMAT };
    // One pass in the common case; the format field alone is read only to
    // tell a manifest of another version from a damaged one.
    let manifest: Manifest = match serde_json::from_str(body) {
        Ok(manifest) => manifest,
        Err(e) => {
            let format: FormatOnly =
                serde_json::from_str(body).map_err(|e| corrupt(format!("manifest format field: {e}")))?;
            return Err(if format.format != MANIFEST_FORMAT {
                unsupported(format.format)
            } else {
                corrupt(format!("manifest: {e}"))
            });
        }
    };
    if manifest.format != MANIFEST_FORMAT {
        return Err(unsupported(manifest.format));
    }
    for object in manifest.objects() {
        if !is_object_name(&object.blake3) {
            return Err(corrupt(format!("object name {:?} is not a blake3 hex digest", object.blake3)));
        }
    }
    Ok((manifest, hash))
}

/// A blake3 digest as 64 lowercase hex digits: the only names objects have.
pub fn is_object_name(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex() -> impl Strategy<Value = String> {
        any::<[u8; 32]>().prop_map(|b| blake3::Hash::from_bytes(b).to_hex().to_string())
    }

    fn file() -> impl Strategy<Value = ManifestFile> {
        (
            hex(),
            any::<u64>(),
            any::<u64>(),
            0u8..2,
            "[a-z\"\\\\ é]{0,8}",
            any::<u32>(),
            proptest::option::of(any::<i64>()),
            any::<(i64, i64)>(),
        )
            .prop_map(|(blake3, size, file_id, level, name, id, window, (a, b))| ManifestFile {
                path: format!("segments/{file_id:020}.seg"),
                blake3,
                size,
                file_id,
                level,
                db: name.clone(),
                db_id: id,
                table: name,
                table_id: id,
                window_start_ns: window,
                rows: size / 3,
                time_min_ns: a.min(b),
                time_max_ns: a.max(b),
            })
    }

    pub(crate) fn manifest() -> impl Strategy<Value = Manifest> {
        (
            "[A-Za-z0-9._-]{1,20}",
            any::<bool>(),
            proptest::option::of(("[a-z]{1,5}", hex())),
            hex(),
            proptest::collection::vec(file(), 0..6),
            any::<(u64, u64, u64)>(),
        )
            .prop_map(|(name, incremental, parent, catalog, files, (a, b, c))| Manifest {
                format: MANIFEST_FORMAT,
                name,
                backup_type: if incremental { BackupType::Incremental } else { BackupType::Full },
                parent: parent.map(|(name, blake3)| ParentRef { name, blake3 }),
                created_at: "2026-11-23T10:00:00.000Z".into(),
                completed_at: "2026-11-23T10:00:01.000Z".into(),
                status: "completed".into(),
                engine_format: 1,
                mode: if incremental { PlaceMode::Link } else { PlaceMode::Copy },
                catalog: CatalogRef { blake3: catalog, size: a, sequence: b },
                tree: TreeRef { version: a, next_file_id: b, catalog_sequence: c },
                total_files: files.len() as u64,
                total_size_bytes: files.iter().map(|f| f.size).fold(0, u64::wrapping_add),
                files,
                added_objects: c,
                added_bytes: a,
            })
    }

    proptest! {
        #[test]
        fn manifests_round_trip(m in manifest()) {
            let (bytes, hash) = encode(&m).unwrap();
            let (back, back_hash) = decode(Path::new("m.json"), &bytes).unwrap();
            prop_assert_eq!(back, m);
            prop_assert_eq!(back_hash, hash);
        }

        #[test]
        fn any_changed_byte_is_caught(m in manifest(), at in any::<prop::sample::Index>(), flip in 1u8..=255) {
            let (mut bytes, _) = encode(&m).unwrap();
            let i = at.index(bytes.len());
            bytes[i] ^= flip;
            // Whitespace outside the hashed value may change harmlessly; any
            // other change is an error, and never a different manifest.
            if let Ok((back, _)) = decode(Path::new("m.json"), &bytes) {
                prop_assert_eq!(back, m);
            }
        }

        #[test]
        fn arbitrary_bytes_are_errors_not_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode(Path::new("m.json"), &bytes);
        }
    }

    #[test]
    fn a_newer_format_is_typed() {
        let body = r#"{"format": 9}"#;
        let hash = blake3::hash(body.as_bytes()).to_hex();
        let bytes = format!(r#"{{"blake3": "{hash}", "manifest": {body}}}"#);
        assert!(matches!(
            decode(Path::new("m.json"), bytes.as_bytes()),
            Err(Error::UnsupportedVersion { found: 9, supported: MANIFEST_FORMAT, .. })
        ));
    }

    #[test]
    fn object_names_are_hex_digests() {
        assert!(is_object_name(&"a".repeat(64)));
        assert!(!is_object_name(&"A".repeat(64)));
        assert!(!is_object_name("../../etc/passwd"));
        assert!(!is_object_name(&"a".repeat(63)));
    }
}
