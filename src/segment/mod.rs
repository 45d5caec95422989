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

pub use format::{ColumnDef, ColumnKindDef, Footer, StoredType};

use crate::catalog::{Column, ColumnKind, FieldType};

// The catalog's types and the footer's: the only place they meet.

impl From<FieldType> for StoredType {
    fn from(t: FieldType) -> StoredType {
        match t {
            FieldType::Float => StoredType::Float,
            FieldType::Integer => StoredType::Integer,
            FieldType::UInteger => StoredType::UInteger,
            FieldType::String => StoredType::String,
            FieldType::Boolean => StoredType::Boolean,
        }
    }
}

impl From<StoredType> for FieldType {
    fn from(t: StoredType) -> FieldType {
        match t {
            StoredType::Float => FieldType::Float,
            StoredType::Integer => FieldType::Integer,
            StoredType::UInteger => FieldType::UInteger,
            StoredType::String => FieldType::String,
            StoredType::Boolean => FieldType::Boolean,
        }
    }
}

impl From<ColumnKind> for ColumnKindDef {
    fn from(k: ColumnKind) -> ColumnKindDef {
        match k {
            ColumnKind::Tag => ColumnKindDef::Tag,
            ColumnKind::Field(t) => ColumnKindDef::Field(t.into()),
        }
    }
}

impl From<ColumnKindDef> for ColumnKind {
    fn from(k: ColumnKindDef) -> ColumnKind {
        match k {
            ColumnKindDef::Tag => ColumnKind::Tag,
            ColumnKindDef::Field(t) => ColumnKind::Field(t.into()),
        }
    }
}

impl From<&Column> for ColumnDef {
    fn from(c: &Column) -> ColumnDef {
        ColumnDef { id: c.id, name: c.name.clone(), kind: c.kind.into(), family: c.family }
    }
}
pub use reader::{Read, SegmentReader};
pub use writer::{FooterInfo, SegmentStream, TableInfo, WriteConfig, Written, write_segment, write_segment_with};

#[cfg(test)]
mod tests {
    use super::*;

    /// The footer's column types write the bytes the catalog's types wrote
    /// into every footer before they had their own (files of format version 1
    /// keep opening, and new ones equal them byte for byte).
    #[test]
    fn footer_column_bytes_equal_the_catalog_types_bytes() {
        let types = [FieldType::Float, FieldType::Integer, FieldType::UInteger, FieldType::String, FieldType::Boolean];
        let kinds = std::iter::once(ColumnKind::Tag).chain(types.into_iter().map(ColumnKind::Field));
        for (i, kind) in kinds.enumerate() {
            for family in [None, Some(0), Some(u32::MAX)] {
                let column = Column { id: i as u32 * 1000, name: format!("c{i}é"), kind, family };
                let ours = ColumnDef::from(&column);
                assert_eq!(
                    postcard::to_allocvec(&ours).unwrap(),
                    postcard::to_allocvec(&column).unwrap(),
                    "{column:?}"
                );
                let back: ColumnDef = postcard::from_bytes(&postcard::to_allocvec(&column).unwrap()).unwrap();
                assert_eq!(back, ours);
                assert_eq!(ColumnKind::from(back.kind), kind);
            }
        }
    }
}
