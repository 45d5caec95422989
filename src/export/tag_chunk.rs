//! Parquet column chunks for tag columns, built from runs.
//!
//! Exported rows are sorted by series, so a tag column is a few long runs of
//! one value. The generic Arrow path hashes and compares every row's string
//! to build the dictionary (about half of an export's CPU on TSBS data);
//! here a batch's dictionary is interned once and each row costs one array
//! lookup and a run-length compare. The chunk has the layout parquet writers
//! use for dictionary-encoded strings: a PLAIN dictionary page, then one v1
//! data page of RLE definition levels (when the column is nullable) and
//! RLE_DICTIONARY indices, both zstd-compressed, with chunk statistics.

use std::collections::HashMap;

use arrow::array::{Array, AsArray};
use arrow::datatypes::Int32Type;
use bytes::Bytes;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::column::page::{CompressedPage, Page, PageWriter};
use parquet::column::writer::ColumnCloseResult;
use parquet::data_type::ByteArray;
use parquet::errors::ParquetError;
use parquet::file::metadata::{ColumnChunkMetaData, OffsetIndexBuilder};
use parquet::file::statistics::{Statistics, ValueStatistics};
use parquet::file::writer::{SerializedPageWriter, TrackedWrite};
use parquet::schema::types::ColumnDescPtr;

/// A run key meaning null.
const NULL: u32 = u32::MAX;

/// One tag column of the row group being written.
pub(super) struct TagChunk {
    column: ColumnDescPtr,
    zstd_level: i32,
    /// The dictionary, in first-seen order.
    values: Vec<String>,
    index: HashMap<String, u32>,
    /// (dictionary index or [`NULL`], length), adjacent runs distinct.
    runs: Vec<(u32, u32)>,
    rows: u64,
    nulls: u64,
}

impl TagChunk {
    pub(super) fn new(column: ColumnDescPtr, zstd_level: i32) -> Self {
        TagChunk { column, zstd_level, values: Vec::new(), index: HashMap::new(), runs: Vec::new(), rows: 0, nulls: 0 }
    }

    fn intern(&mut self, value: &str) -> u32 {
        if let Some(&i) = self.index.get(value) {
            return i;
        }
        let i = self.values.len() as u32;
        self.values.push(value.to_string());
        self.index.insert(value.to_string(), i);
        i
    }

    fn push(&mut self, key: u32, len: u32) {
        match self.runs.last_mut() {
            Some((k, n)) if *k == key && n.checked_add(len).is_some() => *n += len,
            _ => self.runs.push((key, len)),
        }
    }

    /// Appends a `Dictionary(Int32, Utf8)` array.
    pub(super) fn write(&mut self, array: &dyn Array) -> Result<(), ParquetError> {
        let dict = array
            .as_dictionary_opt::<Int32Type>()
            .ok_or_else(|| ParquetError::General(format!("tag column is {}, not a dictionary", array.data_type())))?;
        let values = dict
            .values()
            .as_string_opt::<i32>()
            .ok_or_else(|| ParquetError::General("tag dictionary values are not strings".into()))?;
        let remap: Vec<u32> =
            (0..values.len()).map(|i| if values.is_null(i) { NULL } else { self.intern(values.value(i)) }).collect();
        let keys = dict.keys();
        let mut run_start = 0;
        for (i, key) in keys.values().iter().enumerate() {
            // Rows are sorted by series: look at run boundaries only.
            if i + 1 < keys.len() && keys.values()[i + 1] == *key && keys.is_valid(i) == keys.is_valid(i + 1) {
                continue;
            }
            let mapped = if keys.is_null(i) {
                NULL
            } else {
                *remap.get(*key as usize).ok_or_else(|| ParquetError::General(format!("tag key {key} out of range")))?
            };
            let len = (i + 1 - run_start) as u32;
            if mapped == NULL {
                self.nulls += u64::from(len);
            }
            self.push(mapped, len);
            run_start = i + 1;
        }
        self.rows += keys.len() as u64;
        Ok(())
    }

    /// The chunk's bytes (offsets from 0) and what the row group needs to
    /// splice them in.
    pub(super) fn close(self) -> Result<(Bytes, ColumnCloseResult), ParquetError> {
        let level = ZstdLevel::try_new(self.zstd_level)?;
        let mut dictionary = Vec::new();
        for v in &self.values {
            dictionary.extend_from_slice(&(v.len() as u32).to_le_bytes());
            dictionary.extend_from_slice(v.as_bytes());
        }

        let mut data = Vec::new();
        if self.column.max_def_level() > 0 {
            let mut levels = Vec::new();
            let mut present: Option<(bool, u64)> = None;
            for &(key, len) in &self.runs {
                let p = key != NULL;
                present = match present {
                    Some((q, n)) if q == p => Some((q, n + u64::from(len))),
                    Some((q, n)) => {
                        rle_run(&mut levels, n, u32::from(q), 1);
                        Some((p, u64::from(len)))
                    }
                    None => Some((p, u64::from(len))),
                };
            }
            if let Some((q, n)) = present {
                rle_run(&mut levels, n, u32::from(q), 1);
            }
            data.extend_from_slice(&(levels.len() as u32).to_le_bytes());
            data.extend_from_slice(&levels);
        } else if self.nulls > 0 {
            return Err(ParquetError::General(format!("{} nulls in required column", self.nulls)));
        }
        let bit_width = (u32::BITS - (self.values.len().saturating_sub(1) as u32).leading_zeros()).max(1) as u8;
        data.push(bit_width);
        let mut current: Option<(u32, u64)> = None;
        for &(key, len) in self.runs.iter().filter(|(k, _)| *k != NULL) {
            current = match current {
                Some((k, n)) if k == key => Some((k, n + u64::from(len))),
                Some((k, n)) => {
                    rle_run(&mut data, n, k, bit_width);
                    Some((key, u64::from(len)))
                }
                None => Some((key, u64::from(len))),
            };
        }
        if let Some((k, n)) = current {
            rle_run(&mut data, n, k, bit_width);
        }

        let num_rows =
            u32::try_from(self.rows).map_err(|_| ParquetError::General(format!("{} rows in one page", self.rows)))?;
        let compress =
            |buf: &[u8]| zstd::bulk::compress(buf, self.zstd_level).map(Bytes::from).map_err(ParquetError::from);
        let dictionary_page = CompressedPage::new(
            Page::DictionaryPage {
                buf: compress(&dictionary)?,
                num_values: self.values.len() as u32,
                encoding: Encoding::PLAIN,
                is_sorted: false,
            },
            dictionary.len(),
        );
        let data_page = CompressedPage::new(
            Page::DataPage {
                buf: compress(&data)?,
                num_values: num_rows,
                encoding: Encoding::RLE_DICTIONARY,
                def_level_encoding: Encoding::RLE,
                rep_level_encoding: Encoding::RLE,
                statistics: None,
            },
            data.len(),
        );

        let mut sink = TrackedWrite::new(Vec::new());
        let (dict_spec, data_spec) = {
            let mut pages = SerializedPageWriter::new(&mut sink);
            let d = pages.write_page(dictionary_page)?;
            let p = pages.write_page(data_page)?;
            pages.close()?;
            (d, p)
        };
        let bytes = Bytes::from(sink.into_inner()?);

        let used: Vec<&String> = {
            let mut seen = vec![false; self.values.len()];
            for &(k, _) in &self.runs {
                if let Some(s) = seen.get_mut(k as usize) {
                    *s = true;
                }
            }
            self.values.iter().zip(seen).filter(|(_, s)| *s).map(|(v, _)| v).collect()
        };
        let min = used.iter().min().map(|v| ByteArray::from(v.as_str()));
        let max = used.iter().max().map(|v| ByteArray::from(v.as_str()));
        let statistics = Statistics::ByteArray(ValueStatistics::new(min, max, None, Some(self.nulls), false));
        let metadata = ColumnChunkMetaData::builder(self.column.clone())
            .set_compression(Compression::ZSTD(level))
            .set_encodings(vec![Encoding::PLAIN, Encoding::RLE, Encoding::RLE_DICTIONARY])
            .set_num_values(self.rows as i64)
            .set_total_compressed_size((dict_spec.compressed_size + data_spec.compressed_size) as i64)
            .set_total_uncompressed_size((dict_spec.uncompressed_size + data_spec.uncompressed_size) as i64)
            .set_dictionary_page_offset(Some(dict_spec.offset as i64))
            .set_data_page_offset(data_spec.offset as i64)
            .set_statistics(statistics)
            .build()?;
        // Parquet writers give every column an offset index or none.
        let mut offsets = OffsetIndexBuilder::new();
        offsets.append_row_count(self.rows as i64);
        offsets.append_offset_and_size(data_spec.offset as i64, data_spec.compressed_size as i32);
        let close = ColumnCloseResult {
            bytes_written: bytes.len() as u64,
            rows_written: self.rows,
            metadata,
            bloom_filter: None,
            column_index: None,
            offset_index: Some(offsets.build()),
        };
        Ok((bytes, close))
    }
}

/// One RLE run of the RLE/bit-packing hybrid: ULEB128 `len << 1`, then the
/// value in `ceil(bit_width / 8)` little-endian bytes.
fn rle_run(out: &mut Vec<u8>, len: u64, value: u32, bit_width: u8) {
    // A run header is a u32 in readers; split longer runs.
    const MAX_RUN: u64 = (u32::MAX >> 1) as u64;
    let mut left = len;
    while left > 0 {
        let n = left.min(MAX_RUN);
        let mut header = n << 1;
        loop {
            let byte = (header & 0x7F) as u8;
            header >>= 7;
            if header == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
        let value_bytes = usize::from(bit_width).div_ceil(8);
        out.extend_from_slice(&value.to_le_bytes()[..value_bytes]);
        left -= n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rle_runs_encode_as_the_spec_says() {
        let mut out = Vec::new();
        rle_run(&mut out, 3, 1, 1);
        assert_eq!(out, [6, 1]);
        out.clear();
        rle_run(&mut out, 300, 0x1234, 9);
        // 600 = 0b100_1011000: 0xD8 0x04, then two value bytes.
        assert_eq!(out, [0xD8, 0x04, 0x34, 0x12]);
    }
}
