//! The `.seg` format, version 1: constants and the footer. docs/FORMAT.md is
//! the byte-level spec; this file is its code.
//!
//! ```text
//! header   16 B  magic "QSEG" | version u16 | flags u16 (0) | reserved u64 (0)
//! blocks         block payloads, back to back (see `BlockMeta` and `codec`)
//! footer         postcard(Footer)
//! trailer  16 B  footer_len u64 | footer_crc32 u32 | magic "QSEG"
//! ```

use serde::{Deserialize, Serialize};

use crate::series::SeriesKey;

/// First and last four bytes of every segment file.
pub const MAGIC: [u8; 4] = *b"QSEG";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// Bytes before the first block.
pub const HEADER_LEN: usize = 16;
/// Bytes after the footer.
pub const TRAILER_LEN: usize = 16;
/// Rows per block unless configured otherwise.
pub const DEFAULT_BLOCK_ROWS: u32 = 65_536;
/// The most rows a block may claim (a reader rejects more).
pub const MAX_BLOCK_ROWS: u32 = 1 << 20;
/// Largest footer a reader accepts.
pub const MAX_FOOTER_LEN: u64 = 1 << 30;

/// Minimum or maximum of a block's non-null values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Stat {
    /// No statistic (strings, booleans, all-null blocks).
    None,
    I64(i64),
    U64(u64),
    F64(f64),
}

/// Where a block is and what it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockMeta {
    /// Byte offset of the payload in the file.
    pub offset: u64,
    /// Payload length in bytes.
    pub len: u32,
    /// crc32 of the payload.
    pub crc32: u32,
    /// Null values in the block (0 for time blocks).
    pub nulls: u32,
    pub min: Stat,
    pub max: Stat,
}

/// The blocks of one field column in one family section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkMeta {
    /// Column id (in `Footer::columns`).
    pub column: u32,
    /// One per block of the family, aligned with `FamilyMeta::time_blocks`.
    pub blocks: Vec<BlockMeta>,
}

/// One column family's section: its rows sorted by (series, time).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FamilyMeta {
    pub id: u32,
    pub name: String,
    pub rows: u64,
    pub time_min: i64,
    pub time_max: i64,
    /// Consecutive runs `(series index, row count)`, in row order; counts sum to `rows`.
    pub series_runs: Vec<(u32, u32)>,
    /// Rows per block; the last block holds the remainder.
    pub block_rows: u32,
    /// The time column's blocks.
    pub time_blocks: Vec<BlockMeta>,
    /// The field columns' blocks.
    pub columns: Vec<ChunkMeta>,
}

/// The type of a field column's values, as a footer records it.
///
/// The footer's own types ([`StoredType`], [`ColumnKindDef`], [`ColumnDef`])
/// mirror the catalog's, so that a change to the catalog cannot change the
/// bytes of `.seg` files unnoticed: postcard writes a struct's fields in
/// order and an enum's variant as its index, so the field and variant order
/// here is the format (FORMAT.md, "Footer").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoredType {
    Float,
    Integer,
    UInteger,
    String,
    Boolean,
}

/// What a column is, as a footer records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ColumnKindDef {
    Tag,
    Field(StoredType),
}

/// A column as a footer records it: the table's column as of writing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnDef {
    /// The column's id in its table (what `ChunkMeta::column` and series keys name).
    pub id: u32,
    pub name: String,
    pub kind: ColumnKindDef,
    /// The family of a field; `None` for tags.
    pub family: Option<u32>,
}

/// Everything a reader needs, stored at the end of the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Footer {
    pub db_id: u32,
    pub db: String,
    pub table_id: u32,
    pub table: String,
    /// The table's columns as of writing (tags and the fields present).
    pub columns: Vec<ColumnDef>,
    /// The series directory: sorted, unique tag sets.
    pub series: Vec<SeriesKey>,
    pub families: Vec<FamilyMeta>,
    /// Distinct (series, time) keys over all families.
    pub rows: u64,
    pub time_min: i64,
    pub time_max: i64,
    /// When the file was written (ns since the epoch, the engine's clock).
    pub created_at_ns: i64,
    /// The zstd level blocks were compressed with.
    pub zstd_level: i32,
}
