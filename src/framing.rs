//! The crc-framed record files shared by the WAL (`wal/<n>.wal`) and the
//! catalog log (`catalog/<base>.log`): a 20-byte file header (magic,
//! version, a number, crc32) and records of `len u32 | crc32 u32 | payload`,
//! the crc over `len` and the payload (docs/FORMAT.md, "Write-ahead log").
//! Each file kind keeps its own magic, version and torn-tail rules.

/// Length of a record header (`len` + crc) in bytes.
pub const RECORD_HEADER_LEN: u64 = 8;
/// Largest payload the format allows (256 MiB); a larger `len` on disk is a bad record.
pub const MAX_RECORD_BYTES: usize = 256 << 20;
/// Length of a file header in bytes; the first record starts here.
pub const FILE_HEADER_LEN: u64 = 20;

/// The file header: `magic | version u16 | 0 u16 | number u64 | crc32` of
/// the 16 bytes before it.
pub(crate) fn encode_header(magic: [u8; 4], version: u16, number: u64) -> [u8; 20] {
    let mut header = [0u8; 20];
    header[0..4].copy_from_slice(&magic);
    header[4..6].copy_from_slice(&version.to_le_bytes());
    header[8..16].copy_from_slice(&number.to_le_bytes());
    let crc = crc32fast::hash(&header[0..16]);
    header[16..20].copy_from_slice(&crc.to_le_bytes());
    header
}

/// The crc32 of a record: over its `len` bytes, then its payload.
pub(crate) fn record_crc(len: u32, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}
