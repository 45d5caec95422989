//! The `.seg` segment format: one table, one time range, immutable. Rows are
//! stored per column family, sorted by (series, time); each column in blocks
//! of type-specific encodings compressed with zstd, each with a crc32 and
//! min/max; a footer with the schema, the series directory and block stats.
//! This module knows nothing about levels or backups.

pub mod codec;
pub mod format;
pub mod maps;
pub mod reader;
pub mod writer;

pub use format::Footer;
pub use reader::{Read, SegmentReader};
pub use writer::{FooterInfo, SegmentStream, TableInfo, WriteConfig, Written, write_segment, write_segment_with};
