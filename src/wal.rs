//! The write-ahead log: makes acknowledged writes survive `kill -9` and power
//! loss. This module owns the WAL file format, appending, group commit,
//! rotation, replay on open, truncation of a torn tail and deletion of old
//! files. The payload of a record is opaque here: the engine encodes write
//! requests into bytes and decodes them again during replay.
//!
//! # On-disk format (version 1)
//!
//! All integers are little-endian. CRC-32 is the IEEE polynomial
//! (`crc32fast`, the same as zlib/PNG).
//!
//! ## Files
//!
//! The WAL folder holds files named `NNNNNNNNNNNNNNNNNNNN.wal`: the file
//! number as exactly 20 decimal digits, zero-padded, so that name order equals
//! number order. Other names are ignored. The numbers of the files present
//! must be consecutive (files are only ever deleted oldest first, see
//! [`Wal::remove_files_before`]); a gap means a file is missing and is
//! reported as corruption of the file after the gap. Records are replayed in
//! file-number order, then in file order.
//!
//! ## File header (20 bytes, at offset 0)
//!
//! | offset | size | field                                                   |
//! |-------:|-----:|---------------------------------------------------------|
//! |      0 |    4 | magic `QWAL` (`51 57 41 4C`)                            |
//! |      4 |    2 | format version, u16 = 1                                 |
//! |      6 |    2 | flags, u16, must be 0 (reserved)                        |
//! |      8 |    8 | file number, u64; must equal the number in the name     |
//! |     16 |    4 | crc32 of bytes 0..16                                    |
//!
//! ## Records (from offset 20 to the end of the file, back to back)
//!
//! | offset | size  | field                                                  |
//! |-------:|------:|--------------------------------------------------------|
//! |      0 |     4 | `len`, u32: payload length in bytes (0 is allowed)     |
//! |      4 |     4 | crc32 over the 4 `len` bytes followed by the payload   |
//! |      8 | `len` | payload                                                |
//!
//! The crc covers `len`, so a damaged length is caught as a checksum mismatch,
//! and an all-zero record header (`len` 0, crc 0) is never valid: the crc of
//! an empty record is `0x2144DF1C`. A record's position ([`WalPosition`]) is
//! the file number and the offset just past its payload. `len` above
//! [`MAX_RECORD_BYTES`] (256 MiB) is invalid.
//!
//! ## Replay: torn tail versus corruption
//!
//! A record is *bad* when fewer than 8 bytes remain for its header, when
//! `len` exceeds [`MAX_RECORD_BYTES`], when the payload extends past the end of
//! the file, or when the crc does not match. Replay stops at the first bad
//! record of a file. It is a **torn tail** (an append cut short by a crash;
//! such a record was never acknowledged because acknowledging needs an
//! fdatasync that covers it) only in the **last** file, and only when one of
//! these holds, with `off` the offset of the bad record:
//!
//! 1. fewer than 8 bytes remain after `off` (incomplete record header);
//! 2. `len` is within the limit and `off + 8 + len` is past the end of the
//!    file (incomplete payload);
//! 3. `len` exceeds the limit and every byte from `off + 8` to the end of the
//!    file is zero;
//! 4. the crc does not match and every byte from `off + 8 + len` to the end of
//!    the file is zero (or there are none).
//!
//! A torn tail is removed: the file is truncated to `off` and fsynced, and
//! replay finishes normally. Every other bad record, any bad record in a file
//! that is not the last, and any bad file header is
//! [`WalError::Corrupt`] naming the file and the offset of the bad record (0
//! for the header). Rule 2 cannot tell a torn payload from a `len` damaged
//! into pointing past the end of the last file; the latter loses the records
//! after it in that file. Rule 4 reports a bad record followed by non-zero
//! bytes as corruption even if those bytes are a later unacknowledged append
//! that reached the disk before an earlier one: a WAL that refuses to open is
//! preferred to one that silently drops acknowledged data.
//!
//! A last file shorter than the 20-byte header, or consisting of zero bytes
//! only, holds no records (a crash while the file was being created); it is
//! deleted and its number is reused. In any other file a short header is
//! corruption.
//!
//! ## Lifecycle
//!
//! [`Wal::open`] replays every file, fsyncs the last one (the previous process
//! may have left records in the page cache that the engine will now treat as
//! written), and then always starts a **new** file: a replayed file is never
//! appended to. A new file is created, its header written and fsynced, and the
//! folder fsynced, before any record in it can be acknowledged.
//!
//! [`Wal::rotate`] creates the next file as `NNNNNNNNNNNNNNNNNNNN.wal.tmp`
//! (header written and fsynced) and switches appends to it at once; it then
//! fsyncs the old file, renames the new one to its final name and fsyncs the
//! folder, and only then may any record of the new file be reported durable.
//! So a file with a final name always follows a complete predecessor, and only
//! the last file can have a torn tail. [`Wal::open`] deletes every `*.tmp`
//! file in the folder: records in an unpublished file were never
//! acknowledged.
//!
//! ## Failures
//!
//! A failed append (`write` returned an error, perhaps after writing part of
//! the record: ENOSPC, EIO) is undone: the file is truncated to the end of
//! the last good record, the write offset moved back there and the new
//! length fdatasynced; the caller gets [`WalError::Io`] and later appends
//! follow the last good record. A rotation whose new file cannot be created
//! (ENOSPC, EMFILE) removes the half-created file and keeps appending to the
//! old one. Neither record nor file was acknowledged, so nothing is lost.
//! A failed fdatasync, a failed undo, and a failed rename or folder fsync
//! at rotation **poison** the WAL: the page cache may have dropped data that
//! was reported written, so every later append, sync and rotation gets
//! [`WalError::Poisoned`] until the WAL is reopened. [`Wal::is_poisoned`]
//! tells the two outcomes apart after an error.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, IoSlice, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use crate::failpoint;
use crate::fs::{create_dir_durable, remove_temp_files, sync_dir, temp_path};

/// Magic bytes at the start of every WAL file.
pub const MAGIC: [u8; 4] = *b"QWAL";
/// The WAL format version this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;
pub use crate::framing::{FILE_HEADER_LEN, MAX_RECORD_BYTES, RECORD_HEADER_LEN};
use crate::framing::{encode_header, record_crc};
/// File extension of WAL files.
pub const FILE_EXTENSION: &str = "wal";

/// Everything that can go wrong in the WAL.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalError {
    /// An I/O error on a WAL file or the WAL folder.
    #[error("WAL I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A WAL file that fails validation and is not a torn tail.
    #[error("corrupt WAL file {path} at byte {offset}: {what}")]
    Corrupt { path: PathBuf, offset: u64, what: String },
    /// An earlier fsync failed (or a failed write or rotation could not be
    /// undone); durability can no longer be promised (the page cache may have
    /// dropped the data), so the WAL refuses all further appends, syncs and
    /// rotations. Reopen to recover.
    #[error(
        "WAL poisoned by an earlier fsync failure (or a write failure that could not be undone); reopen to recover"
    )]
    Poisoned,
    /// A payload larger than [`WalOptions::max_record_bytes`].
    #[error("WAL record of {len} bytes exceeds the limit of {max} bytes")]
    RecordTooLarge { len: usize, max: usize },
    /// `sync` was asked for a position that was never appended.
    #[error("cannot sync the WAL to {requested}: it has only been written up to {written}")]
    PositionNotAppended { requested: WalPosition, written: WalPosition },
    /// `remove_files_before` would have deleted the file being appended to.
    #[error("cannot remove WAL files before {requested}: file {current} is still appended to")]
    RemoveActiveFile { requested: u64, current: u64 },
    /// Options out of range.
    #[error("invalid WAL options: {0}")]
    InvalidOptions(String),
    /// The next file number would overflow u64.
    #[error("WAL file numbers are exhausted")]
    FileNumbersExhausted,
}

impl WalError {
    fn io(path: &Path, source: io::Error) -> WalError {
        WalError::Io { path: path.to_path_buf(), source }
    }

    fn corrupt(path: &Path, offset: u64, what: impl Into<String>) -> WalError {
        WalError::Corrupt { path: path.to_path_buf(), offset, what: what.into() }
    }
}

/// The position just past a record: file number, then byte offset in that
/// file. Positions are totally ordered in append order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WalPosition {
    pub file: u64,
    pub offset: u64,
}

impl fmt::Display for WalPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.offset)
    }
}

/// Tuning of a [`Wal`].
#[derive(Debug, Clone)]
pub struct WalOptions {
    /// Largest payload [`Wal::append`] accepts; at most [`MAX_RECORD_BYTES`].
    /// Replay always accepts records up to [`MAX_RECORD_BYTES`], so lowering
    /// this never makes an existing WAL unreadable.
    pub max_record_bytes: usize,
    /// The first file that matters: files numbered below it are neither
    /// replayed nor checked (their records are all in segments, or were
    /// rolled back by a restore), and the file opened for appends is
    /// numbered at least this. The engine passes the version's replay start,
    /// so positions keep growing even if the folder was emptied.
    pub first_file_number: u64,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions { max_record_bytes: MAX_RECORD_BYTES, first_file_number: 1 }
    }
}

/// What [`Wal::open`] found while replaying.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalRecovery {
    /// WAL files whose records were replayed (including empty ones).
    pub files_replayed: usize,
    /// Records passed to the replay callback.
    pub records_replayed: u64,
    /// The torn tail removed from the last file, if there was one.
    pub torn_tail: Option<TornTail>,
}

/// A torn tail removed during open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    pub path: PathBuf,
    /// The file was cut to this length (0 when the file was deleted).
    pub offset: u64,
    /// Bytes removed.
    pub dropped_bytes: u64,
    /// The file held no valid header and was deleted.
    pub file_deleted: bool,
}

/// The file appends go to.
struct ActiveFile {
    number: u64,
    path: PathBuf,
    /// Shared with the sync leader, which fdatasyncs it without holding the
    /// append lock.
    file: Arc<File>,
    /// Bytes written to the OS so far.
    written: u64,
}

impl ActiveFile {
    fn position(&self) -> WalPosition {
        WalPosition { file: self.number, offset: self.written }
    }
}

/// Group-commit state, guarded by `Wal::sync_state`.
struct SyncState {
    /// Every record ending at or before this position is durable.
    durable: WalPosition,
    /// A leader (a `sync` or a `rotate`) is fsyncing; others wait on `Wal::synced`.
    leader_active: bool,
    /// The failure that poisoned the WAL during a sync, handed to the followers
    /// that were waiting on it.
    failure: Option<(PathBuf, io::ErrorKind, String)>,
    /// Callers waiting for a leader to finish (diagnostics and tests).
    waiting: usize,
}

/// The write-ahead log. `Send + Sync`; all methods take `&self`.
pub struct Wal {
    dir: PathBuf,
    max_record_bytes: usize,
    /// Held only for the `write` syscall of one record.
    active: Mutex<ActiveFile>,
    /// Mirrors `active.number` so readers need not take the append lock.
    current_file: AtomicU64,
    sync_state: Mutex<SyncState>,
    synced: Condvar,
    /// Serialises rotations (file creation happens outside the other locks).
    rotating: Mutex<()>,
    poisoned: AtomicBool,
    sync_count: AtomicU64,
    recovery: WalRecovery,
    #[cfg(test)]
    failpoints: tests::Failpoints,
}

impl fmt::Debug for Wal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.dir)
            .field("current_file", &self.current_file())
            .field("poisoned", &self.poisoned.load(Ordering::Acquire))
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Critical sections here only move plain values, so a panic elsewhere
    // cannot leave the state half-updated.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The name of WAL file `number`.
pub fn file_name(number: u64) -> String {
    format!("{number:020}.{FILE_EXTENSION}")
}

/// The number of a WAL file name, `None` for other names.
fn parse_file_name(name: &str) -> Option<&str> {
    let digits = name.strip_suffix(".wal")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

/// The 20-byte header of WAL file `number`.
pub fn encode_file_header(number: u64) -> [u8; FILE_HEADER_LEN as usize] {
    encode_header(MAGIC, FORMAT_VERSION, number)
}

/// A 20-byte file header in the WAL's layout (magic, u16 version, u16 flags
/// of zero, u64 number, crc32 of the 16 bytes before it), which the catalog
/// log shares.
fn check_file_header(path: &Path, number: u64, header: &[u8; 20]) -> Result<(), WalError> {
    let bad = |what: String| Err(WalError::corrupt(path, 0, what));
    if header[0..4] != MAGIC {
        return bad(format!("bad magic {:02x?}, expected \"QWAL\"", &header[0..4]));
    }
    let version = u16::from_le_bytes([header[4], header[5]]);
    if version != FORMAT_VERSION {
        return bad(format!("format version {version}; this build reads version {FORMAT_VERSION}"));
    }
    let stored_crc = u32::from_le_bytes([header[16], header[17], header[18], header[19]]);
    if crc32fast::hash(&header[0..16]) != stored_crc {
        return bad("file header checksum mismatch".into());
    }
    let flags = u16::from_le_bytes([header[6], header[7]]);
    if flags != 0 {
        return bad(format!("unknown header flags {flags:#06x}"));
    }
    let mut number_bytes = [0u8; 8];
    number_bytes.copy_from_slice(&header[8..16]);
    let stored_number = u64::from_le_bytes(number_bytes);
    if stored_number != number {
        return bad(format!("header says file number {stored_number}, the name says {number}"));
    }
    Ok(())
}

/// Creates a file at `path` holding the header of WAL file `number`, fsynced.
/// The caller makes its name durable.
fn create_file(path: &Path, number: u64) -> Result<File, WalError> {
    let io = |e| WalError::io(path, e);
    let mut file = OpenOptions::new().write(true).create_new(true).open(path).map_err(io)?;
    file.write_all(&encode_file_header(number)).map_err(io)?;
    failpoint::check("wal", "create").map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(file)
}

/// `write_all` for several buffers with one syscall in the common case.
fn write_all_vectored(mut out: &File, mut bufs: &mut [IoSlice<'_>]) -> io::Result<()> {
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        match out.write_vectored(bufs) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes the first half of a record: what a failed append (the fail point
/// `wal.write`) leaves, as a filling disk does with a short write.
fn write_half(file: &File, header: &[u8], payload: &[u8]) -> io::Result<()> {
    let half = (header.len() + payload.len()) / 2;
    let head = header.len().min(half);
    write_all_vectored(file, &mut [IoSlice::new(&header[..head]), IoSlice::new(&payload[..half - head])])
}

/// WAL files in `dir`, sorted by number.
fn list_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>, WalError> {
    let io = |e| WalError::io(dir, e);
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name();
        let Some(digits) = name.to_str().and_then(parse_file_name) else {
            continue;
        };
        let path = entry.path();
        let number =
            digits.parse::<u64>().map_err(|_| WalError::corrupt(&path, 0, "file number in the name exceeds u64"))?;
        files.push((number, path));
    }
    files.sort_unstable_by_key(|(number, _)| *number);
    Ok(files)
}

/// How replaying one file ended.
enum FileEnd {
    /// Every byte was a valid record.
    Clean,
    /// A torn tail starts at this offset (last file only).
    Torn { offset: u64 },
    /// The last file holds no header (shorter than one, or all zeros).
    NoHeader,
}

/// Reads to the end of `reader`, telling whether every byte is zero.
fn rest_is_zero(reader: &mut impl Read, path: &Path) -> Result<bool, WalError> {
    let mut chunk = [0u8; 8192];
    loop {
        match reader.read(&mut chunk) {
            Ok(0) => return Ok(true),
            Ok(n) => {
                if chunk[..n].iter().any(|&b| b != 0) {
                    return Ok(false);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(WalError::io(path, e)),
        }
    }
}

/// Replays the records of one file through `on_record`, stopping at the first
/// bad record; see the module doc for the torn-tail rules.
fn replay_file<E: From<WalError>>(
    path: &Path,
    number: u64,
    is_last: bool,
    records: &mut u64,
    on_record: &mut impl FnMut(WalPosition, &[u8]) -> Result<(), E>,
) -> Result<FileEnd, E> {
    let io = |e| WalError::io(path, e);
    let file = File::open(path).map_err(io)?;
    let file_len = file.metadata().map_err(io)?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);

    if file_len < FILE_HEADER_LEN {
        if is_last {
            return Ok(FileEnd::NoHeader);
        }
        return Err(WalError::corrupt(
            path,
            0,
            format!("file is {file_len} bytes, shorter than the {FILE_HEADER_LEN}-byte header"),
        )
        .into());
    }
    let mut header = [0u8; FILE_HEADER_LEN as usize];
    reader.read_exact(&mut header).map_err(io)?;
    if is_last && header.iter().all(|&b| b == 0) && rest_is_zero(&mut reader, path)? {
        return Ok(FileEnd::NoHeader);
    }
    check_file_header(path, number, &header)?;

    let mut offset = FILE_HEADER_LEN;
    let mut payload = Vec::new();
    // A bad record at `offset`: a torn tail if `torn` holds and this is the last
    // file, corruption otherwise.
    let bad = |offset: u64, torn: bool, what: String| -> Result<FileEnd, E> {
        if is_last && torn { Ok(FileEnd::Torn { offset }) } else { Err(WalError::corrupt(path, offset, what).into()) }
    };
    loop {
        let remaining = file_len - offset;
        if remaining == 0 {
            return Ok(FileEnd::Clean);
        }
        if remaining < RECORD_HEADER_LEN {
            return bad(
                offset,
                true,
                format!("{remaining} bytes at the end of the file, too short for a record header"),
            );
        }
        let mut record_header = [0u8; RECORD_HEADER_LEN as usize];
        reader.read_exact(&mut record_header).map_err(io)?;
        let len = u32::from_le_bytes([record_header[0], record_header[1], record_header[2], record_header[3]]);
        let stored_crc = u32::from_le_bytes([record_header[4], record_header[5], record_header[6], record_header[7]]);
        if len as usize > MAX_RECORD_BYTES {
            let torn = is_last && rest_is_zero(&mut reader, path)?;
            return bad(
                offset,
                torn,
                format!("record length {len} exceeds the format limit of {MAX_RECORD_BYTES} bytes"),
            );
        }
        let available = remaining - RECORD_HEADER_LEN;
        if u64::from(len) > available {
            return bad(offset, true, format!("record of {len} bytes, but only {available} bytes remain in the file"));
        }
        payload.resize(len as usize, 0);
        reader.read_exact(&mut payload).map_err(io)?;
        if record_crc(len, &payload) != stored_crc {
            let torn = is_last && rest_is_zero(&mut reader, path)?;
            return bad(offset, torn, "record checksum mismatch, followed by further non-zero data".into());
        }
        offset += RECORD_HEADER_LEN + u64::from(len);
        *records += 1;
        on_record(WalPosition { file: number, offset }, &payload)?;
    }
}

impl Wal {
    /// Opens the WAL in `dir` (creating the folder if needed), replays every
    /// record of every file from `opts.first_file_number` on, in order, through `on_record(position_after_record,
    /// payload)`, removes a torn tail, and starts a new file for appends.
    ///
    /// An error from `on_record` stops the replay and is returned as is;
    /// WAL errors are converted with `E::from`.
    pub fn open<E: From<WalError>>(
        dir: &Path,
        opts: WalOptions,
        mut on_record: impl FnMut(WalPosition, &[u8]) -> Result<(), E>,
    ) -> Result<Wal, E> {
        if opts.max_record_bytes > MAX_RECORD_BYTES {
            return Err(WalError::InvalidOptions(format!(
                "max_record_bytes {} exceeds the format limit of {MAX_RECORD_BYTES}",
                opts.max_record_bytes
            ))
            .into());
        }
        create_dir_durable(dir).map_err(|e| WalError::io(dir, e))?;
        // Files a rotation had not published yet: their records were never
        // acknowledged, and the file before them may have a torn tail.
        remove_temp_files(dir).map_err(|e| WalError::io(dir, e))?;
        let files: Vec<_> = list_files(dir)?.into_iter().filter(|(n, _)| *n >= opts.first_file_number).collect();
        for pair in files.windows(2) {
            let (previous, _) = &pair[0];
            let (number, path) = &pair[1];
            if previous.checked_add(1) != Some(*number) {
                return Err(WalError::corrupt(
                    path,
                    0,
                    format!("file {number} follows file {previous}: the files between are missing"),
                )
                .into());
            }
        }

        let mut recovery = WalRecovery::default();
        let mut next_number = opts.first_file_number;
        for (index, (number, path)) in files.iter().enumerate() {
            let is_last = index + 1 == files.len();
            let end = replay_file(path, *number, is_last, &mut recovery.records_replayed, &mut on_record)?;
            next_number = number.checked_add(1).ok_or(WalError::FileNumbersExhausted)?;
            let io = |e| WalError::io(path, e);
            match end {
                FileEnd::NoHeader => {
                    let dropped_bytes = fs::metadata(path).map_err(io)?.len();
                    fs::remove_file(path).map_err(io)?;
                    sync_dir(dir).map_err(|e| WalError::io(dir, e))?;
                    recovery.torn_tail =
                        Some(TornTail { path: path.clone(), offset: 0, dropped_bytes, file_deleted: true });
                    next_number = *number;
                }
                FileEnd::Torn { offset } => {
                    recovery.files_replayed += 1;
                    let file = OpenOptions::new().write(true).open(path).map_err(io)?;
                    let dropped_bytes = file.metadata().map_err(io)?.len() - offset;
                    file.set_len(offset).map_err(io)?;
                    file.sync_all().map_err(io)?;
                    recovery.torn_tail =
                        Some(TornTail { path: path.clone(), offset, dropped_bytes, file_deleted: false });
                }
                FileEnd::Clean => {
                    recovery.files_replayed += 1;
                    if is_last {
                        // The previous process may have exited with appends
                        // still in the page cache; they must be durable before
                        // records in a newer file are.
                        File::open(path).and_then(|f| f.sync_all()).map_err(io)?;
                    }
                }
            }
        }

        let path = dir.join(file_name(next_number));
        let file = create_file(&path, next_number)?;
        sync_dir(dir).map_err(|e| WalError::io(dir, e))?;
        Ok(Wal {
            dir: dir.to_path_buf(),
            max_record_bytes: opts.max_record_bytes,
            active: Mutex::new(ActiveFile {
                number: next_number,
                path,
                file: Arc::new(file),
                written: FILE_HEADER_LEN,
            }),
            current_file: AtomicU64::new(next_number),
            sync_state: Mutex::new(SyncState {
                durable: WalPosition { file: next_number, offset: FILE_HEADER_LEN },
                leader_active: false,
                failure: None,
                waiting: 0,
            }),
            synced: Condvar::new(),
            rotating: Mutex::new(()),
            poisoned: AtomicBool::new(false),
            sync_count: AtomicU64::new(0),
            recovery,
            #[cfg(test)]
            failpoints: tests::Failpoints::default(),
        })
    }

    /// Writes one record to the current file (handed to the OS, not fsynced)
    /// and returns the position just past it. Appends are atomic with respect
    /// to each other; callers that need an order serialise their calls.
    pub fn append(&self, payload: &[u8]) -> Result<WalPosition, WalError> {
        if payload.len() > self.max_record_bytes {
            return Err(WalError::RecordTooLarge { len: payload.len(), max: self.max_record_bytes });
        }
        let len = u32::try_from(payload.len())
            .map_err(|_| WalError::RecordTooLarge { len: payload.len(), max: self.max_record_bytes })?;
        let mut header = [0u8; RECORD_HEADER_LEN as usize];
        header[0..4].copy_from_slice(&len.to_le_bytes());
        header[4..8].copy_from_slice(&record_crc(len, payload).to_le_bytes());

        let mut active = lock(&self.active);
        // Checked under the lock so that no append follows a failed one.
        self.check_poisoned()?;
        let mut bufs = [IoSlice::new(&header), IoSlice::new(payload)];
        let written = match failpoint::check("wal", "write") {
            Err(injected) => write_half(&active.file, &header, payload).and(Err(injected)),
            #[cfg(test)]
            Ok(()) => self
                .failpoints
                .write(&active.file, &mut bufs)
                .unwrap_or_else(|| write_all_vectored(&active.file, &mut bufs)),
            #[cfg(not(test))]
            Ok(()) => write_all_vectored(&active.file, &mut bufs),
        };
        match written {
            Ok(()) => {
                active.written += RECORD_HEADER_LEN + u64::from(len);
                Ok(active.position())
            }
            Err(source) => {
                // Part of the record may be in the file. Nobody was told
                // about it, so cutting it off undoes the append and the next
                // one can follow the last good record (a full disk may have
                // room again later). If that fails, nothing may follow it.
                if let Err(e) = self.roll_back(&active) {
                    tracing::error!(path = %active.path.display(), error = %e, "could not cut a failed WAL append off");
                    self.poison();
                }
                Err(WalError::io(&active.path, source))
            }
        }
    }

    /// Truncates the active file to its last good record after a failed
    /// append, moves the write offset back there and makes the new length
    /// durable (so that no piece of the failed record can reappear after a
    /// crash behind later records).
    fn roll_back(&self, active: &ActiveFile) -> io::Result<()> {
        #[cfg(test)]
        if self.failpoints.fail_rollback.swap(false, Ordering::SeqCst) {
            return Err(io::Error::other("injected truncate failure"));
        }
        failpoint::check("wal", "truncate")?;
        active.file.set_len(active.written)?;
        (&*active.file).seek(SeekFrom::Start(active.written))?;
        self.sync_file(&active.file)
    }

    /// Makes every record up to `pos` durable (fdatasync). Group commit: one
    /// caller (the leader) fsyncs everything appended so far while the others
    /// wait; a caller whose position a finished fsync already covers returns at
    /// once. Appends are not blocked while an fsync runs.
    ///
    /// If the fsync fails, the leader gets the error and so does every caller
    /// that was waiting on it; later calls get [`WalError::Poisoned`].
    pub fn sync(&self, pos: WalPosition) -> Result<(), WalError> {
        let mut state = lock(&self.sync_state);
        let mut waited = false;
        loop {
            if self.poisoned.load(Ordering::Acquire) {
                return Err(match (&state.failure, waited) {
                    (Some((path, kind, message)), true) => {
                        WalError::Io { path: path.clone(), source: io::Error::new(*kind, message.clone()) }
                    }
                    _ => WalError::Poisoned,
                });
            }
            if pos <= state.durable {
                return Ok(());
            }
            if !state.leader_active {
                break;
            }
            state.waiting += 1;
            state = self.synced.wait(state).unwrap_or_else(PoisonError::into_inner);
            state.waiting -= 1;
            waited = true;
        }
        state.leader_active = true;
        drop(state);

        let (file, path, written) = {
            let active = lock(&self.active);
            (Arc::clone(&active.file), active.path.clone(), active.position())
        };
        if pos > written {
            self.end_leadership(Ok(None));
            return Err(WalError::PositionNotAppended { requested: pos, written });
        }
        match self.sync_file(&file) {
            Ok(()) => {
                self.end_leadership(Ok(Some(written)));
                Ok(())
            }
            Err(source) => {
                self.end_leadership(Err((&path, &source)));
                Err(WalError::Io { path, source })
            }
        }
    }

    /// Finishes the current file (fsyncs it) and starts the next one, whose
    /// number it returns. Records appended after this call returns land in the
    /// new file; appends running concurrently land in either.
    pub fn rotate(&self) -> Result<u64, WalError> {
        let _rotating = lock(&self.rotating);
        self.check_poisoned()?;
        let next = self.current_file().checked_add(1).ok_or(WalError::FileNumbersExhausted)?;
        // Created before taking any lock that appends or syncs need, under a
        // temporary name: until the old file is fsynced it may get a torn
        // tail, which is only recoverable while it is the last file.
        let path = self.dir.join(file_name(next));
        let temp = temp_path(&path);
        let created = create_file(&temp, next);
        #[cfg(test)]
        let created = created.and_then(|file| self.failpoints.create(&temp).map(|()| file));
        let file = match created {
            Ok(file) => file,
            Err(e) => {
                // Nothing is in the new file: drop it and keep appending to
                // the old one. A leftover would block every later rotation.
                match fs::remove_file(&temp) {
                    Ok(()) => {}
                    Err(r) if r.kind() == io::ErrorKind::NotFound => {}
                    Err(r) => {
                        tracing::error!(path = %temp.display(), error = %r, "could not remove a half-created WAL file");
                        self.poison();
                    }
                }
                return Err(e);
            }
        };

        // Rotation leads a sync of the old file: no other leader may report a
        // position in the new file durable before the old file is.
        let mut state = lock(&self.sync_state);
        while state.leader_active {
            state = self.synced.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
        self.check_poisoned()?;
        state.leader_active = true;
        drop(state);

        let old = {
            let mut active = lock(&self.active);
            let new = ActiveFile { number: next, path: temp.clone(), file: Arc::new(file), written: FILE_HEADER_LEN };
            self.current_file.store(next, Ordering::Release);
            std::mem::replace(&mut *active, new)
        };
        // No record of the new file can be acknowledged before this
        // leadership ends, so publishing its name here is in time.
        let published = self
            .sync_file(&old.file)
            .map_err(|e| (old.path.clone(), e))
            .and_then(|()| fs::rename(&temp, &path).map_err(|e| (temp.clone(), e)))
            .and_then(|()| sync_dir(&self.dir).map_err(|e| (self.dir.clone(), e)));
        match published {
            Ok(()) => {
                lock(&self.active).path = path;
                self.end_leadership(Ok(Some(old.position())));
                Ok(next)
            }
            Err((path, source)) => {
                self.end_leadership(Err((&path, &source)));
                Err(WalError::Io { path, source })
            }
        }
    }

    /// Deletes every WAL file whose number is below `file` (their records are
    /// in segments now), oldest first, fsyncing the folder after each so that
    /// the files left are always consecutive. `file` may not exceed
    /// [`Wal::current_file`].
    pub fn remove_files_before(&self, file: u64) -> Result<(), WalError> {
        let current = self.current_file();
        if file > current {
            return Err(WalError::RemoveActiveFile { requested: file, current });
        }
        for (number, path) in list_files(&self.dir)? {
            if number >= file {
                break;
            }
            fs::remove_file(&path).map_err(|e| WalError::io(&path, e))?;
            sync_dir(&self.dir).map_err(|e| WalError::io(&self.dir, e))?;
        }
        Ok(())
    }

    /// The number of the file currently appended to.
    pub fn current_file(&self) -> u64 {
        self.current_file.load(Ordering::Acquire)
    }

    /// Number of fdatasyncs issued on WAL files (group commits and rotations).
    pub fn sync_count(&self) -> u64 {
        self.sync_count.load(Ordering::Relaxed)
    }

    /// Whether a failure has poisoned the WAL (see "Failures" in the module doc).
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    /// What `open` found: files and records replayed, torn tail removed.
    pub fn recovery(&self) -> &WalRecovery {
        &self.recovery
    }

    /// The WAL folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn check_poisoned(&self) -> Result<(), WalError> {
        if self.poisoned.load(Ordering::Acquire) { Err(WalError::Poisoned) } else { Ok(()) }
    }

    fn poison(&self) {
        self.poisoned.store(true, Ordering::Release);
        self.synced.notify_all();
    }

    fn sync_file(&self, file: &File) -> io::Result<()> {
        self.sync_count.fetch_add(1, Ordering::Relaxed);
        #[cfg(test)]
        if let Some(result) = self.failpoints.sync() {
            return result;
        }
        failpoint::check("wal", "fsync")?;
        file.sync_data()
    }

    /// Ends a leader's turn: records how far data is durable, or the failure
    /// that poisons the WAL, and wakes the waiting callers.
    fn end_leadership(&self, outcome: Result<Option<WalPosition>, (&Path, &io::Error)>) {
        let mut state = lock(&self.sync_state);
        state.leader_active = false;
        match outcome {
            Ok(Some(durable)) => state.durable = state.durable.max(durable),
            Ok(None) => {}
            Err((path, error)) => {
                state.failure = Some((path.to_path_buf(), error.kind(), error.to_string()));
                self.poisoned.store(true, Ordering::Release);
            }
        }
        drop(state);
        self.synced.notify_all();
    }
}

#[cfg(test)]
impl Wal {
    /// Makes the next fdatasync fail: lets engine tests check poisoning.
    pub(crate) fn fail_next_sync(&self) {
        self.failpoints.arm_sync_failure();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::{Barrier, mpsc};
    use std::thread;

    /// Test-only fault injection.
    #[derive(Default)]
    pub(super) struct Failpoints {
        /// The next append writes half of its record, then fails.
        fail_write: AtomicBool,
        /// The next fdatasync fails.
        fail_sync: AtomicBool,
        /// The next rollback of a failed append fails.
        pub(super) fail_rollback: AtomicBool,
        /// The next rotation fails after creating its file.
        fail_create: AtomicBool,
        /// The next fdatasync first blocks until this receives a message.
        hold_sync: Mutex<Option<mpsc::Receiver<()>>>,
    }

    impl Failpoints {
        pub(super) fn write(&self, file: &File, bufs: &mut [IoSlice<'_>]) -> Option<io::Result<()>> {
            if !self.fail_write.swap(false, Ordering::SeqCst) {
                return None;
            }
            let record: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            let half = 8 + (record.len() - 8) / 2;
            Some(
                write_all_vectored(file, &mut [IoSlice::new(&record[..half])])
                    .and(Err(io::Error::other("injected write failure"))),
            )
        }

        pub(super) fn create(&self, path: &Path) -> Result<(), WalError> {
            match self.fail_create.swap(false, Ordering::SeqCst) {
                true => Err(WalError::io(path, io::Error::other("injected create failure"))),
                false => Ok(()),
            }
        }

        /// Arms the fdatasync failure (for tests outside this module).
        pub(crate) fn arm_sync_failure(&self) {
            self.fail_sync.store(true, Ordering::SeqCst);
        }

        pub(super) fn sync(&self) -> Option<io::Result<()>> {
            let hold = lock(&self.hold_sync).take();
            if let Some(release) = hold {
                let _ = release.recv();
            }
            self.fail_sync.swap(false, Ordering::SeqCst).then(|| Err(io::Error::other("injected fsync failure")))
        }
    }

    type Replayed = Vec<(WalPosition, Vec<u8>)>;

    fn open_collect(dir: &Path) -> Result<(Wal, Replayed), WalError> {
        open_collect_with(dir, WalOptions::default())
    }

    fn open_collect_with(dir: &Path, opts: WalOptions) -> Result<(Wal, Replayed), WalError> {
        let mut replayed = Vec::new();
        let wal = Wal::open(dir, opts, |pos, payload| {
            replayed.push((pos, payload.to_vec()));
            Ok::<(), WalError>(())
        })?;
        Ok((wal, replayed))
    }

    fn payloads(replayed: &Replayed) -> Vec<Vec<u8>> {
        replayed.iter().map(|(_, p)| p.clone()).collect()
    }

    fn wal_path(dir: &Path, number: u64) -> PathBuf {
        dir.join(file_name(number))
    }

    fn wal_numbers(dir: &Path) -> Vec<u64> {
        list_files(dir).unwrap().into_iter().map(|(n, _)| n).collect()
    }

    fn payload(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    /// Bytes of a one-file WAL holding `records`, and each record's start offset.
    fn wal_file_bytes(records: &[Vec<u8>]) -> (Vec<u8>, Vec<u64>) {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = open_collect(dir.path()).unwrap();
        let mut starts = Vec::new();
        let mut start = FILE_HEADER_LEN;
        for record in records {
            starts.push(start);
            start = wal.append(record).unwrap().offset;
        }
        let bytes = fs::read(wal_path(dir.path(), wal.current_file())).unwrap();
        (bytes, starts)
    }

    fn assert_corrupt(result: Result<(Wal, Replayed), WalError>, path: &Path, offset: u64) {
        match result {
            Err(WalError::Corrupt { path: p, offset: o, .. }) => assert_eq!((p.as_path(), o), (path, offset)),
            other => panic!("expected Corrupt at {path:?}:{offset}, got {other:?}"),
        }
    }

    #[test]
    fn wal_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Wal>();
    }

    #[test]
    fn round_trip_across_rotate_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let sizes = [0, 1, 7, 8, 100, 5000, 100_000, 0, 3, 65_537];
        let records: Vec<Vec<u8>> = sizes.iter().enumerate().map(|(i, &n)| payload(n, i as u8)).collect();
        let (wal, replayed) = open_collect(dir.path()).unwrap();
        assert!(replayed.is_empty());
        assert_eq!(wal.current_file(), 1);
        let mut positions = Vec::new();
        for (i, record) in records.iter().enumerate() {
            if i == 4 {
                assert_eq!(wal.rotate().unwrap(), 2);
            }
            positions.push(wal.append(record).unwrap());
        }
        wal.sync(*positions.last().unwrap()).unwrap();
        drop(wal);

        let (wal, replayed) = open_collect(dir.path()).unwrap();
        assert_eq!(payloads(&replayed), records);
        let replayed_positions: Vec<WalPosition> = replayed.iter().map(|(p, _)| *p).collect();
        assert_eq!(replayed_positions, positions);
        assert!(replayed_positions.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(positions[3].file, 1);
        assert_eq!(positions[4].file, 2);
        assert_eq!(wal.current_file(), 3, "a replayed file is never appended to");
        assert_eq!(
            *wal.recovery(),
            WalRecovery { files_replayed: 2, records_replayed: records.len() as u64, torn_tail: None }
        );

        // Records appended after reopening follow the replayed ones.
        let pos = wal.append(b"after reopen").unwrap();
        assert!(pos > positions[positions.len() - 1]);
        wal.sync(pos).unwrap();
        drop(wal);
        let (_, replayed) = open_collect(dir.path()).unwrap();
        assert_eq!(replayed.len(), records.len() + 1);
        assert_eq!(replayed.last().unwrap(), &(pos, b"after reopen".to_vec()));
    }

    #[test]
    fn empty_folder_starts_at_first_file_number() {
        let dir = tempfile::tempdir().unwrap();
        let wal_dir = dir.path().join("nested/wal");
        let opts = WalOptions { first_file_number: 42, ..WalOptions::default() };
        let (wal, _) = open_collect_with(&wal_dir, opts).unwrap();
        assert_eq!(wal.current_file(), 42);
        let bytes = fs::read(wal_path(&wal_dir, 42)).unwrap();
        assert_eq!(bytes, encode_file_header(42));
    }

    #[test]
    fn files_below_first_file_number_are_neither_replayed_nor_a_gap() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = open_collect(dir.path()).unwrap();
        wal.append(b"rolled back").unwrap();
        wal.rotate().unwrap();
        let pos = wal.append(b"also rolled back").unwrap();
        wal.sync(pos).unwrap();
        drop(wal);
        // A restore moved the replay start far past the files on disk.
        let opts = WalOptions { first_file_number: 1_000, ..WalOptions::default() };
        let (wal, replayed) = open_collect_with(dir.path(), opts.clone()).unwrap();
        assert!(replayed.is_empty());
        assert_eq!(wal.current_file(), 1_000);
        let pos = wal.append(b"kept").unwrap();
        wal.sync(pos).unwrap();
        drop(wal);
        // The old files are still there (nobody removed them): no gap error.
        let (wal, replayed) = open_collect_with(dir.path(), opts).unwrap();
        assert_eq!(payloads(&replayed), vec![b"kept".to_vec()]);
        assert_eq!(wal.current_file(), 1_001);
    }

    #[test]
    fn torn_tail_at_every_offset_of_last_record_is_truncated() {
        let records = vec![payload(10, 1), Vec::new(), payload(40, 3)];
        let (bytes, starts) = wal_file_bytes(&records);
        let last_start = starts[2] as usize;
        for cut in last_start..bytes.len() {
            for zeros in [0usize, 5, 64] {
                let dir = tempfile::tempdir().unwrap();
                let path = wal_path(dir.path(), 1);
                let mut torn = bytes[..cut].to_vec();
                torn.resize(cut + zeros, 0);
                fs::write(&path, &torn).unwrap();

                let (wal, replayed) =
                    open_collect(dir.path()).unwrap_or_else(|e| panic!("cut {cut} zeros {zeros}: {e}"));
                assert_eq!(payloads(&replayed), records[..2], "cut {cut} zeros {zeros}");
                assert_eq!(fs::metadata(&path).unwrap().len(), last_start as u64);
                let expect_torn = torn.len() > last_start;
                assert_eq!(wal.recovery().torn_tail.is_some(), expect_torn);
                if let Some(tail) = &wal.recovery().torn_tail {
                    assert_eq!(tail.offset, last_start as u64);
                    assert_eq!(tail.dropped_bytes, (torn.len() - last_start) as u64);
                }

                let pos = wal.append(b"next").unwrap();
                wal.sync(pos).unwrap();
                drop(wal);
                let (_, replayed) = open_collect(dir.path()).unwrap();
                let mut expected = records[..2].to_vec();
                expected.push(b"next".to_vec());
                assert_eq!(payloads(&replayed), expected);
            }
        }
    }

    #[test]
    fn absurd_length_followed_by_zeros_is_torn_otherwise_corrupt() {
        let records = vec![payload(10, 1)];
        let (mut bytes, _) = wal_file_bytes(&records);
        let start = bytes.len() as u64;
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        bytes.extend_from_slice(&[0; 100]);
        let dir = tempfile::tempdir().unwrap();
        let path = wal_path(dir.path(), 1);
        fs::write(&path, &bytes).unwrap();
        let (_, replayed) = open_collect(dir.path()).unwrap();
        assert_eq!(payloads(&replayed), records);
        assert_eq!(fs::metadata(&path).unwrap().len(), start);

        bytes.truncate(start as usize);
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        bytes.extend_from_slice(&[0, 0, 0, 0, 1]);
        let dir = tempfile::tempdir().unwrap();
        let path = wal_path(dir.path(), 1);
        fs::write(&path, &bytes).unwrap();
        assert_corrupt(open_collect(dir.path()), &path, start);
    }

    #[test]
    fn flipped_byte_in_middle_record_is_corrupt() {
        let records = vec![payload(30, 1), payload(30, 2), payload(30, 3)];
        let (bytes, starts) = wal_file_bytes(&records);
        // crc field, first and last payload byte of the middle record.
        for at in [starts[1] + 5, starts[1] + 8, starts[2] - 1] {
            let dir = tempfile::tempdir().unwrap();
            let path = wal_path(dir.path(), 1);
            let mut corrupt = bytes.clone();
            corrupt[at as usize] ^= 0x40;
            fs::write(&path, &corrupt).unwrap();
            assert_corrupt(open_collect(dir.path()), &path, starts[1]);
            assert_eq!(fs::read(&path).unwrap(), corrupt, "corrupt files are left alone");
        }
    }

    #[test]
    fn bad_file_header_is_corrupt() {
        let (bytes, _) = wal_file_bytes(&[payload(5, 0)]);
        let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
        let mut bad_magic = bytes.clone();
        bad_magic[0] = b'X';
        cases.push(("magic", bad_magic));
        let mut bad_version = bytes.clone();
        bad_version[4] = 2;
        cases.push(("version", bad_version));
        let mut bad_crc = bytes.clone();
        bad_crc[9] ^= 1;
        cases.push(("checksum", bad_crc));
        for (what, corrupt) in cases {
            let dir = tempfile::tempdir().unwrap();
            let path = wal_path(dir.path(), 1);
            fs::write(&path, &corrupt).unwrap();
            match open_collect(dir.path()) {
                Err(WalError::Corrupt { path: p, offset: 0, what: message }) => {
                    assert_eq!(p, path);
                    assert!(message.contains(what), "{message}");
                }
                other => panic!("{what}: {other:?}"),
            }
        }
        // A file whose header names another number (renamed by hand).
        let dir = tempfile::tempdir().unwrap();
        let path = wal_path(dir.path(), 7);
        fs::write(&path, &bytes).unwrap();
        assert_corrupt(open_collect(dir.path()), &path, 0);
    }

    #[test]
    fn bad_record_in_a_file_that_is_not_last_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = open_collect(dir.path()).unwrap();
        wal.append(&payload(20, 1)).unwrap();
        let second = wal.append(&payload(20, 2)).unwrap();
        wal.rotate().unwrap();
        let pos = wal.append(&payload(20, 3)).unwrap();
        wal.sync(pos).unwrap();
        drop(wal);
        let first = wal_path(dir.path(), 1);
        let bytes = fs::read(&first).unwrap();
        let second_start = second.offset - 28;

        // A torn tail is only a torn tail in the last file.
        fs::write(&first, &bytes[..bytes.len() - 3]).unwrap();
        assert_corrupt(open_collect(dir.path()), &first, second_start);
        // Also with zeros after it.
        let mut zeroed = bytes.clone();
        zeroed[bytes.len() - 3..].fill(0);
        fs::write(&first, &zeroed).unwrap();
        assert_corrupt(open_collect(dir.path()), &first, second_start);
        // A non-last file too short for its header.
        fs::write(&first, &bytes[..10]).unwrap();
        assert_corrupt(open_collect(dir.path()), &first, 0);
    }

    #[test]
    fn missing_file_between_others_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = open_collect(dir.path()).unwrap();
        wal.rotate().unwrap();
        wal.rotate().unwrap();
        drop(wal);
        fs::remove_file(wal_path(dir.path(), 2)).unwrap();
        assert_corrupt(open_collect(dir.path()), &wal_path(dir.path(), 3), 0);
    }

    #[test]
    fn last_file_without_header_is_deleted_and_its_number_reused() {
        for content in [Vec::new(), b"QWA".to_vec(), vec![0u8; 4096]] {
            let dir = tempfile::tempdir().unwrap();
            let (wal, _) = open_collect(dir.path()).unwrap();
            let pos = wal.append(b"kept").unwrap();
            wal.sync(pos).unwrap();
            drop(wal);
            fs::write(wal_path(dir.path(), 2), &content).unwrap();
            let (wal, replayed) = open_collect(dir.path()).unwrap();
            assert_eq!(payloads(&replayed), vec![b"kept".to_vec()]);
            assert_eq!(wal.current_file(), 2);
            let tail = wal.recovery().torn_tail.clone().unwrap();
            assert!(tail.file_deleted);
            assert_eq!(tail.dropped_bytes, content.len() as u64);
            assert_eq!(fs::read(wal_path(dir.path(), 2)).unwrap(), encode_file_header(2));
        }
    }

    #[test]
    fn other_files_in_the_folder_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("LOCK"), b"x").unwrap();
        fs::write(dir.path().join("1.wal"), b"garbage").unwrap();
        fs::write(dir.path().join("00000000000000000001.wal.tmp"), b"garbage").unwrap();
        let (wal, replayed) = open_collect(dir.path()).unwrap();
        assert!(replayed.is_empty());
        assert_eq!(wal.current_file(), 1);
    }

    #[test]
    fn remove_files_before_deletes_only_older_files() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = open_collect(dir.path()).unwrap();
        for n in 0..3u8 {
            wal.append(&[n]).unwrap();
            wal.rotate().unwrap();
        }
        let pos = wal.append(&[3]).unwrap();
        wal.sync(pos).unwrap();
        assert_eq!(wal_numbers(dir.path()), vec![1, 2, 3, 4]);
        wal.remove_files_before(3).unwrap();
        assert_eq!(wal_numbers(dir.path()), vec![3, 4]);
        wal.remove_files_before(2).unwrap();
        assert_eq!(wal_numbers(dir.path()), vec![3, 4]);
        assert!(matches!(wal.remove_files_before(5), Err(WalError::RemoveActiveFile { requested: 5, current: 4 })));
        wal.remove_files_before(4).unwrap();
        assert_eq!(wal_numbers(dir.path()), vec![4]);
        drop(wal);
        let (wal, replayed) = open_collect(dir.path()).unwrap();
        assert_eq!(payloads(&replayed), vec![vec![3u8]]);
        assert_eq!(wal.current_file(), 5);
    }

    #[test]
    fn oversized_record_and_bad_options_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let opts = WalOptions { max_record_bytes: 16, ..WalOptions::default() };
        let (wal, _) = open_collect_with(dir.path(), opts).unwrap();
        wal.append(&[7; 16]).unwrap();
        assert!(matches!(wal.append(&[7; 17]), Err(WalError::RecordTooLarge { len: 17, max: 16 })));
        assert!(!wal.is_poisoned());
        drop(wal);

        let opts = WalOptions { max_record_bytes: MAX_RECORD_BYTES + 1, ..WalOptions::default() };
        assert!(matches!(open_collect_with(dir.path(), opts), Err(WalError::InvalidOptions(_))));
    }

    #[test]
    fn sync_to_a_position_never_appended_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = open_collect(dir.path()).unwrap();
        let pos = wal.append(b"x").unwrap();
        let beyond = WalPosition { file: pos.file, offset: pos.offset + 1 };
        assert!(matches!(wal.sync(beyond), Err(WalError::PositionNotAppended { .. })));
        wal.sync(pos).unwrap();
    }

    #[test]
    fn replay_callback_error_stops_open() {
        #[derive(Debug)]
        enum EngineError {
            Wal,
            Decode(WalPosition),
        }
        impl From<WalError> for EngineError {
            fn from(_: WalError) -> Self {
                EngineError::Wal
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = open_collect(dir.path()).unwrap();
        wal.append(b"ok").unwrap();
        let bad = wal.append(b"bad").unwrap();
        wal.append(b"never seen").unwrap();
        wal.sync(bad).unwrap();
        drop(wal);
        let mut seen = 0;
        let result = Wal::open(dir.path(), WalOptions::default(), |pos, payload| {
            seen += 1;
            if payload == b"bad" { Err(EngineError::Decode(pos)) } else { Ok(()) }
        });
        assert!(matches!(result, Err(EngineError::Decode(p)) if p == bad));
        assert_eq!(seen, 2);
        assert_eq!(wal_numbers(dir.path()), vec![1], "no new file after a failed open");
    }

    #[test]
    fn group_commit_covers_followers_with_one_fsync() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = open_collect(dir.path()).unwrap();
        let (release, hold) = mpsc::channel();
        *lock(&wal.failpoints.hold_sync) = Some(hold);
        let first = wal.append(b"a").unwrap();
        let wal = &wal;
        thread::scope(|s| {
            let leader = s.spawn(move || wal.sync(first));
            // The leader took the hold: it has read the written position and
            // is inside its fsync.
            while lock(&wal.failpoints.hold_sync).is_some() {
                thread::yield_now();
            }
            // Appends go on while the leader's fsync is in flight.
            let positions: Vec<WalPosition> = (0..4).map(|i| wal.append(&[i]).unwrap()).collect();
            let followers: Vec<_> = positions.iter().map(|&pos| s.spawn(move || wal.sync(pos))).collect();
            while lock(&wal.sync_state).waiting < followers.len() {
                thread::yield_now();
            }
            release.send(()).unwrap();
            leader.join().unwrap().unwrap();
            for follower in followers {
                follower.join().unwrap().unwrap();
            }
        });
        // One fsync for the leader's record, one for everything appended while
        // it ran: the first follower to wake leads it, the rest are covered.
        assert_eq!(wal.sync_count(), 2);
        // Positions covered by a finished sync return without another.
        wal.sync(first).unwrap();
        assert_eq!(wal.sync_count(), 2);
    }

    #[test]
    fn concurrent_appenders_coalesce_syncs_and_replay_every_record_once() {
        const THREADS: usize = 8;
        const PER_THREAD: usize = 200;
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = open_collect(dir.path()).unwrap();
        let barrier = Barrier::new(THREADS);
        thread::scope(|s| {
            for t in 0..THREADS {
                let (wal, barrier) = (&wal, &barrier);
                s.spawn(move || {
                    for i in 0..PER_THREAD {
                        let pos = wal.append(format!("{t}:{i}").as_bytes()).unwrap();
                        // Every thread has appended before anyone syncs, so the
                        // first leader of a round covers the whole round.
                        barrier.wait();
                        wal.sync(pos).unwrap();
                        if t == 0 && i % 50 == 49 {
                            wal.rotate().unwrap();
                        }
                    }
                });
            }
        });
        let records = (THREADS * PER_THREAD) as u64;
        // At most one group commit per round plus the rotations' fsyncs.
        assert!(wal.sync_count() <= PER_THREAD as u64 + 4, "{}", wal.sync_count());
        assert!(wal.sync_count() < records);
        drop(wal);
        let (_, replayed) = open_collect(dir.path()).unwrap();
        let mut seen: Vec<String> = replayed.iter().map(|(_, p)| String::from_utf8(p.clone()).unwrap()).collect();
        seen.sort();
        let mut expected: Vec<String> =
            (0..THREADS).flat_map(|t| (0..PER_THREAD).map(move |i| format!("{t}:{i}"))).collect();
        expected.sort();
        assert_eq!(seen, expected);
    }

    #[test]
    fn free_running_appenders_keep_per_thread_order() {
        const THREADS: usize = 8;
        const PER_THREAD: usize = 200;
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = open_collect(dir.path()).unwrap();
        thread::scope(|s| {
            for t in 0..THREADS {
                let wal = &wal;
                s.spawn(move || {
                    for i in 0..PER_THREAD {
                        let pos = wal.append(&[t as u8, i as u8]).unwrap();
                        wal.sync(pos).unwrap();
                    }
                });
            }
        });
        assert!(wal.sync_count() <= (THREADS * PER_THREAD) as u64);
        drop(wal);
        let (_, replayed) = open_collect(dir.path()).unwrap();
        assert_eq!(replayed.len(), THREADS * PER_THREAD);
        for t in 0..THREADS as u8 {
            let mine: Vec<u8> = replayed.iter().filter(|(_, p)| p[0] == t).map(|(_, p)| p[1]).collect();
            assert_eq!(mine, (0..PER_THREAD).map(|i| i as u8).collect::<Vec<_>>());
        }
    }

    #[test]
    fn failed_write_is_cut_off_and_appends_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = open_collect(dir.path()).unwrap();
        let pos = wal.append(b"durable").unwrap();
        wal.sync(pos).unwrap();
        let syncs = wal.sync_count();
        wal.failpoints.fail_write.store(true, Ordering::SeqCst);
        assert!(matches!(wal.append(&payload(100, 9)), Err(WalError::Io { .. })));
        assert!(!wal.is_poisoned());
        // The half record is gone, durably, and the next append follows the last good one.
        assert_eq!(fs::metadata(wal_path(dir.path(), 1)).unwrap().len(), pos.offset);
        assert_eq!(wal.sync_count(), syncs + 1);
        let next = wal.append(b"after").unwrap();
        assert_eq!(next.offset, pos.offset + RECORD_HEADER_LEN + 5);
        wal.sync(next).unwrap();
        wal.rotate().unwrap();
        drop(wal);
        let (wal, replayed) = open_collect(dir.path()).unwrap();
        assert_eq!(payloads(&replayed), vec![b"durable".to_vec(), b"after".to_vec()]);
        assert_eq!(wal.recovery().torn_tail, None);
    }

    #[test]
    fn failed_rollback_of_a_write_poisons_and_reopen_drops_the_partial_record() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = open_collect(dir.path()).unwrap();
        let pos = wal.append(b"durable").unwrap();
        wal.sync(pos).unwrap();
        wal.failpoints.fail_write.store(true, Ordering::SeqCst);
        wal.failpoints.fail_rollback.store(true, Ordering::SeqCst);
        assert!(matches!(wal.append(&payload(100, 9)), Err(WalError::Io { .. })));
        assert!(wal.is_poisoned());
        assert!(matches!(wal.append(b"x"), Err(WalError::Poisoned)));
        assert!(matches!(wal.sync(pos), Err(WalError::Poisoned)));
        assert!(matches!(wal.rotate(), Err(WalError::Poisoned)));
        drop(wal);
        let (wal, replayed) = open_collect(dir.path()).unwrap();
        assert_eq!(payloads(&replayed), vec![b"durable".to_vec()]);
        assert_eq!(wal.recovery().torn_tail.as_ref().unwrap().offset, pos.offset);
        assert!(!wal.is_poisoned());
    }

    #[test]
    fn failed_file_creation_at_rotation_is_dropped_and_appends_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = open_collect(dir.path()).unwrap();
        let a = wal.append(b"a").unwrap();
        wal.failpoints.fail_create.store(true, Ordering::SeqCst);
        assert!(matches!(wal.rotate(), Err(WalError::Io { .. })));
        assert!(!wal.is_poisoned());
        assert!(!temp_path(&wal_path(dir.path(), 2)).exists());
        let b = wal.append(b"b").unwrap();
        assert_eq!(b.file, 1);
        wal.sync(b).unwrap();
        assert_eq!(wal.rotate().unwrap(), 2);
        let c = wal.append(b"c").unwrap();
        wal.sync(c).unwrap();
        assert!(a < b && b < c);
        drop(wal);
        let (_, replayed) = open_collect(dir.path()).unwrap();
        assert_eq!(payloads(&replayed), vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
    }

    #[test]
    fn failed_sync_poisons_and_reaches_waiting_followers() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = open_collect(dir.path()).unwrap();
        let (release, hold) = mpsc::channel();
        *lock(&wal.failpoints.hold_sync) = Some(hold);
        wal.failpoints.fail_sync.store(true, Ordering::SeqCst);
        let first = wal.append(b"a").unwrap();
        let second = wal.append(b"b").unwrap();
        let wal = &wal;
        thread::scope(|s| {
            let leader = s.spawn(move || wal.sync(second));
            // The leader took the hold: it has read the written position and
            // is inside its fsync.
            while lock(&wal.failpoints.hold_sync).is_some() {
                thread::yield_now();
            }
            let follower = s.spawn(move || wal.sync(first));
            while lock(&wal.sync_state).waiting < 1 {
                thread::yield_now();
            }
            release.send(()).unwrap();
            assert!(matches!(leader.join().unwrap(), Err(WalError::Io { .. })));
            match follower.join().unwrap() {
                Err(WalError::Io { source, .. }) => {
                    assert!(source.to_string().contains("injected fsync failure"));
                }
                other => panic!("follower got {other:?}"),
            }
        });
        assert!(matches!(wal.sync(first), Err(WalError::Poisoned)));
        assert!(matches!(wal.append(b"c"), Err(WalError::Poisoned)));
        assert!(matches!(wal.rotate(), Err(WalError::Poisoned)));
    }

    #[test]
    fn failed_rotation_sync_poisons_and_the_unpublished_file_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = open_collect(dir.path()).unwrap();
        wal.append(b"a").unwrap();
        wal.failpoints.fail_sync.store(true, Ordering::SeqCst);
        assert!(matches!(wal.rotate(), Err(WalError::Io { .. })));
        assert!(matches!(wal.append(b"b"), Err(WalError::Poisoned)));
        assert!(temp_path(&wal_path(dir.path(), 2)).exists());
        drop(wal);
        let (wal, replayed) = open_collect(dir.path()).unwrap();
        assert_eq!(payloads(&replayed), vec![b"a".to_vec()]);
        assert_eq!(wal.current_file(), 2);
        assert!(!temp_path(&wal_path(dir.path(), 2)).exists());
    }

    #[test]
    fn crash_inside_rotation_leaves_a_recoverable_torn_tail() {
        // As left by a crash after rotate() switched appends to the new file
        // but before the old file was fsynced: the old file has a torn tail
        // and the new one, still under its temporary name, holds records.
        let records = vec![payload(10, 1), payload(30, 2)];
        let (bytes, starts) = wal_file_bytes(&records);
        let dir = tempfile::tempdir().unwrap();
        fs::write(wal_path(dir.path(), 1), &bytes[..bytes.len() - 4]).unwrap();
        let (next, _) = wal_file_bytes(&[payload(5, 3)]);
        let mut next_header = next.clone();
        next_header[..20].copy_from_slice(&encode_file_header(2));
        fs::write(temp_path(&wal_path(dir.path(), 2)), &next_header).unwrap();

        let (wal, replayed) = open_collect(dir.path()).unwrap();
        assert_eq!(payloads(&replayed), records[..1]);
        assert_eq!(wal.recovery().torn_tail.as_ref().unwrap().offset, starts[1]);
        assert_eq!(wal_numbers(dir.path()), vec![1, 2]);
        assert_eq!(fs::read(wal_path(dir.path(), 2)).unwrap(), encode_file_header(2));
    }

    #[test]
    fn rotation_publishes_the_new_file_under_its_final_name() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = open_collect(dir.path()).unwrap();
        assert_eq!(wal.rotate().unwrap(), 2);
        let pos = wal.append(b"in two").unwrap();
        wal.sync(pos).unwrap();
        assert_eq!(wal_numbers(dir.path()), vec![1, 2]);
        assert!(!temp_path(&wal_path(dir.path(), 2)).exists());
        assert_eq!(lock(&wal.active).path, wal_path(dir.path(), 2));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn arbitrary_payload_sequences_round_trip(
            ops in prop::collection::vec(
                (prop::collection::vec(any::<u8>(), 0..600), prop::bool::weighted(0.1)),
                0..40,
            )
        ) {
            let dir = tempfile::tempdir().unwrap();
            let (wal, _) = open_collect(dir.path()).unwrap();
            let mut expected = Vec::new();
            for (record, rotate_after) in &ops {
                let pos = wal.append(record).unwrap();
                expected.push((pos, record.clone()));
                if *rotate_after {
                    wal.rotate().unwrap();
                }
            }
            if let Some((pos, _)) = expected.last() {
                wal.sync(*pos).unwrap();
            }
            drop(wal);
            let (_, replayed) = open_collect(dir.path()).unwrap();
            prop_assert_eq!(replayed, expected);
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            with_header in any::<bool>(),
            bytes in prop::collection::vec(any::<u8>(), 0..2000),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut content = if with_header { encode_file_header(1).to_vec() } else { Vec::new() };
            content.extend_from_slice(&bytes);
            fs::write(wal_path(dir.path(), 1), &content).unwrap();
            match open_collect(dir.path()) {
                Ok((wal, _)) => {
                    drop(wal);
                    // Whatever open repaired opens again.
                    prop_assert!(open_collect(dir.path()).is_ok());
                }
                Err(WalError::Corrupt { .. } | WalError::Io { .. }) => {}
                Err(other) => prop_assert!(false, "unexpected error {other:?}"),
            }
        }

        #[test]
        fn garbage_after_valid_records_keeps_them_or_is_corrupt(
            records in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..100), 1..8),
            garbage in prop::collection::vec(any::<u8>(), 0..300),
        ) {
            let (mut content, _) = wal_file_bytes(&records);
            content.extend_from_slice(&garbage);
            let dir = tempfile::tempdir().unwrap();
            fs::write(wal_path(dir.path(), 1), &content).unwrap();
            match open_collect(dir.path()) {
                Ok((_, replayed)) => {
                    let replayed = payloads(&replayed);
                    prop_assert_eq!(&replayed[..records.len()], &records[..]);
                }
                Err(WalError::Corrupt { offset, .. }) => {
                    prop_assert!(offset >= (content.len() - garbage.len()) as u64);
                }
                Err(other) => prop_assert!(false, "unexpected error {other:?}"),
            }
        }
    }
}
