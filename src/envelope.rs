//! The envelope around every small metadata file (catalog snapshots, tree
//! versions, the CURRENT pointer): magic, format version, body length and a
//! crc32 of the body, so a reader can tell a torn or foreign file from a good
//! one before it decodes anything.
//!
//! Layout (little-endian), 16 bytes then the body:
//! `magic [4] | version u16 | reserved u16 (0) | body_len u32 | body_crc32 u32 | body`

use std::path::Path;

use crate::error::Error;

/// Bytes before the body.
pub const HEADER_LEN: usize = 16;

/// Wraps `body` in an envelope.
pub fn seal(magic: [u8; 4], version: u16, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&magic);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// Checks an envelope and returns its body. `path` only names the file in errors.
pub fn open<'a>(path: &Path, magic: [u8; 4], version: u16, bytes: &'a [u8]) -> Result<&'a [u8], Error> {
    let corrupt = |what: String| Error::Corrupt { path: path.to_path_buf(), what };
    if bytes.len() < HEADER_LEN {
        return Err(corrupt(format!("file is {} bytes, shorter than its header", bytes.len())));
    }
    if bytes[..4] != magic {
        return Err(corrupt(format!("bad magic {:?}, expected {:?}", &bytes[..4], magic)));
    }
    let found = u16::from_le_bytes([bytes[4], bytes[5]]);
    if found != version {
        return Err(Error::UnsupportedVersion { path: path.to_path_buf(), found, supported: version });
    }
    if bytes[6..8] != [0, 0] {
        return Err(corrupt("reserved header bytes are not zero".into()));
    }
    let len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
    let crc = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
    let body = &bytes[HEADER_LEN..];
    if body.len() != len {
        return Err(corrupt(format!("body is {} bytes, header says {len}", body.len())));
    }
    if crc32fast::hash(body) != crc {
        return Err(corrupt("body checksum mismatch".into()));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MAGIC: [u8; 4] = *b"TEST";

    proptest! {
        #[test]
        fn seal_open_round_trip(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let sealed = seal(MAGIC, 3, &body);
            prop_assert_eq!(open(Path::new("x"), MAGIC, 3, &sealed).unwrap(), &body[..]);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = open(Path::new("x"), MAGIC, 1, &bytes);
        }

        #[test]
        fn any_flipped_bit_is_detected(body in proptest::collection::vec(any::<u8>(), 1..64), bit in 0usize..512) {
            let mut sealed = seal(MAGIC, 1, &body);
            let bit = bit % (sealed.len() * 8);
            sealed[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(open(Path::new("x"), MAGIC, 1, &sealed).is_err());
        }
    }

    #[test]
    fn wrong_version_is_typed() {
        let sealed = seal(MAGIC, 2, b"abc");
        let err = open(Path::new("f"), MAGIC, 1, &sealed).unwrap_err();
        assert!(matches!(err, Error::UnsupportedVersion { found: 2, supported: 1, .. }));
    }
}
