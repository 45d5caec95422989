//! Writes a `.seg` file from sorted [`Rows`], one section per column family,
//! hashing every byte with blake3 as it goes (hash at birth): the caller gets
//! the file's size and hash without reading it back.

use std::io::{self, BufWriter, Write};
use std::path::Path;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Float64Type, Int64Type, UInt64Type};

use super::codec;
use super::format::*;
use crate::catalog::{Column, Family};
use crate::error::{Error, IoContext, Result};
use crate::hash::HashingWriter;
use crate::rows::{self, Rows};

/// Tuning for a written segment.
#[derive(Debug, Clone, Copy)]
pub struct WriteConfig {
    pub block_rows: u32,
    pub zstd_level: i32,
}

impl Default for WriteConfig {
    fn default() -> Self {
        WriteConfig { block_rows: DEFAULT_BLOCK_ROWS, zstd_level: 3 }
    }
}

/// Which table a segment belongs to.
#[derive(Debug, Clone)]
pub struct TableInfo {
    pub db_id: u32,
    pub db: String,
    pub table_id: u32,
    pub table: String,
}

/// What was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    pub size: u64,
    pub blake3: [u8; 32],
    pub rows: u64,
    pub time_min: i64,
    pub time_max: i64,
}

fn stats_i64(values: &[i64]) -> (Stat, Stat) {
    match (values.iter().min(), values.iter().max()) {
        (Some(&a), Some(&b)) => (Stat::I64(a), Stat::I64(b)),
        _ => (Stat::None, Stat::None),
    }
}

/// Encodes one block of a field column: values, preceded by the validity
/// bitmap when the block has nulls.
fn encode_field_block(array: &ArrayRef, level: i32, out: &mut Vec<u8>) -> (u32, Stat, Stat) {
    let nulls = array.null_count() as u32;
    if nulls > 0 {
        let valid: Vec<bool> = (0..array.len()).map(|i| array.is_valid(i)).collect();
        let mut bitmap = Vec::new();
        codec::encode_bool(&valid, level, &mut bitmap);
        out.extend_from_slice(&(bitmap.len() as u32).to_le_bytes());
        out.extend_from_slice(&bitmap);
    }
    let valid_idx = |i: &usize| nulls == 0 || array.is_valid(*i);
    let (min, max) = match array.data_type() {
        DataType::Int64 => {
            let a = array.as_primitive::<Int64Type>();
            let v: Vec<i64> = if nulls == 0 {
                a.values().to_vec()
            } else {
                (0..a.len()).filter(valid_idx).map(|i| a.value(i)).collect()
            };
            codec::encode_i64(&v, level, out);
            stats_i64(&v)
        }
        DataType::UInt64 => {
            let a = array.as_primitive::<UInt64Type>();
            let v: Vec<u64> = if nulls == 0 {
                a.values().to_vec()
            } else {
                (0..a.len()).filter(valid_idx).map(|i| a.value(i)).collect()
            };
            codec::encode_u64(&v, level, out);
            match (v.iter().min(), v.iter().max()) {
                (Some(&a), Some(&b)) => (Stat::U64(a), Stat::U64(b)),
                _ => (Stat::None, Stat::None),
            }
        }
        DataType::Float64 => {
            let a = array.as_primitive::<Float64Type>();
            let v: Vec<f64> = if nulls == 0 {
                a.values().to_vec()
            } else {
                (0..a.len()).filter(valid_idx).map(|i| a.value(i)).collect()
            };
            codec::encode_f64(&v, level, out);
            let finite = v.iter().copied().filter(|x| !x.is_nan());
            let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
            let mut any = false;
            for x in finite {
                lo = lo.min(x);
                hi = hi.max(x);
                any = true;
            }
            if any { (Stat::F64(lo), Stat::F64(hi)) } else { (Stat::None, Stat::None) }
        }
        DataType::Boolean => {
            let a = array.as_boolean();
            let v: Vec<bool> = (0..a.len()).filter(valid_idx).map(|i| a.value(i)).collect();
            codec::encode_bool(&v, level, out);
            (Stat::None, Stat::None)
        }
        _ => {
            // Utf8 is the only other field type the catalog allows.
            let a = array.as_string::<i32>();
            let v: Vec<&str> = (0..a.len()).filter(valid_idx).map(|i| a.value(i)).collect();
            codec::encode_str(&v, level, out);
            (Stat::None, Stat::None)
        }
    };
    (nulls, min, max)
}

struct SectionWriter<'a, W: Write> {
    out: &'a mut HashingWriter<W>,
    scratch: Vec<u8>,
    level: i32,
}

impl<W: Write> SectionWriter<'_, W> {
    fn put(&mut self, nulls: u32, min: Stat, max: Stat) -> io::Result<BlockMeta> {
        let meta = BlockMeta {
            offset: self.out.written(),
            len: self.scratch.len() as u32,
            crc32: crc32fast::hash(&self.scratch),
            nulls,
            min,
            max,
        };
        self.out.write_all(&self.scratch)?;
        self.scratch.clear();
        Ok(meta)
    }

    fn family(&mut self, family: &Family, rows: &Rows, block_rows: u32) -> io::Result<FamilyMeta> {
        let n = rows.len();
        let step = block_rows.max(1) as usize;
        let mut time_blocks = Vec::new();
        for start in (0..n).step_by(step) {
            let block = &rows.time[start..(start + step).min(n)];
            codec::encode_timestamps(block, self.level, &mut self.scratch);
            let (min, max) = stats_i64(block);
            time_blocks.push(self.put(0, min, max)?);
        }
        let mut columns = Vec::new();
        for (id, array) in &rows.columns {
            let mut blocks = Vec::new();
            for start in (0..n).step_by(step) {
                let len = step.min(n - start);
                let (nulls, min, max) = encode_field_block(&array.slice(start, len), self.level, &mut self.scratch);
                blocks.push(self.put(nulls, min, max)?);
            }
            columns.push(ChunkMeta { column: *id, blocks });
        }
        let mut series_runs: Vec<(u32, u32)> = Vec::new();
        for &s in &rows.series {
            match series_runs.last_mut() {
                Some((last, count)) if *last == s => *count += 1,
                _ => series_runs.push((s, 1)),
            }
        }
        Ok(FamilyMeta {
            id: family.id,
            name: family.name.clone(),
            rows: n as u64,
            time_min: rows.time.iter().copied().min().unwrap_or(0),
            time_max: rows.time.iter().copied().max().unwrap_or(0),
            series_runs,
            block_rows: step as u32,
            time_blocks,
            columns,
        })
    }
}

/// Distinct (series, time) keys over all families (which share one directory).
fn distinct_keys(families: &[(Family, Rows)]) -> u64 {
    if families.len() == 1 {
        return families[0].1.len() as u64;
    }
    let mut keys: Vec<(u32, i64)> =
        families.iter().flat_map(|(_, r)| r.series.iter().copied().zip(r.time.iter().copied())).collect();
    keys.sort_unstable();
    keys.dedup();
    keys.len() as u64
}

/// Writes a segment to `path` atomically (temp file, fsync, rename, fsync
/// folder). `families` hold sorted, unique rows; `columns` describe every
/// column their rows and series keys use. Families without rows are skipped.
pub fn write_segment(
    path: &Path,
    table: &TableInfo,
    columns: &[Column],
    families: Vec<(Family, Rows)>,
    config: WriteConfig,
    created_at_ns: i64,
) -> Result<Written> {
    let mut families: Vec<(Family, Rows)> = families.into_iter().filter(|(_, r)| !r.is_empty()).collect();
    if families.is_empty() {
        return Err(Error::InvalidArgument(format!("segment {} would hold no rows", path.display())));
    }
    let mut all_rows: Vec<Rows> =
        families.iter_mut().map(|(_, r)| std::mem::replace(r, Rows::empty(Default::default()))).collect();
    rows::unify_directories(&mut all_rows);
    for ((_, slot), rows) in families.iter_mut().zip(all_rows) {
        *slot = rows;
    }
    let series = families[0].1.series_keys.as_ref().clone();
    let rows = distinct_keys(&families);
    let time_min = families.iter().map(|(_, r)| r.time.iter().copied().min().unwrap_or(i64::MAX)).min().unwrap_or(0);
    let time_max = families.iter().map(|(_, r)| r.time.iter().copied().max().unwrap_or(i64::MIN)).max().unwrap_or(0);

    let mut result = None;
    crate::fs::atomic_write_with(path, |file| {
        let mut out = HashingWriter::new(BufWriter::with_capacity(1 << 20, file));
        let mut header = [0u8; HEADER_LEN];
        header[..4].copy_from_slice(&MAGIC);
        header[4..6].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.write_all(&header)?;
        let mut metas = Vec::with_capacity(families.len());
        {
            let mut section = SectionWriter { out: &mut out, scratch: Vec::new(), level: config.zstd_level };
            for (family, rows) in &families {
                metas.push(section.family(family, rows, config.block_rows)?);
            }
        }
        let footer = Footer {
            db_id: table.db_id,
            db: table.db.clone(),
            table_id: table.table_id,
            table: table.table.clone(),
            columns: columns.to_vec(),
            series: series.clone(),
            families: metas,
            rows,
            time_min,
            time_max,
            created_at_ns,
            zstd_level: config.zstd_level,
        };
        let footer_bytes = postcard::to_allocvec(&footer).map_err(io::Error::other)?;
        out.write_all(&footer_bytes)?;
        out.write_all(&(footer_bytes.len() as u64).to_le_bytes())?;
        out.write_all(&crc32fast::hash(&footer_bytes).to_le_bytes())?;
        out.write_all(&MAGIC)?;
        out.flush()?;
        result = Some(Written { size: out.written(), blake3: out.hash(), rows, time_min, time_max });
        Ok(())
    })
    .at(path)?;
    result.ok_or_else(|| Error::InvalidArgument(format!("segment {} was not written", path.display())))
}
