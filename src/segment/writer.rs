//! Writes a `.seg` file from sorted [`Rows`], one section per column family,
//! block by block as rows arrive ([`SegmentStream`]), hashing every byte
//! with blake3 as it goes (hash at birth): the caller gets the file's size
//! and hash without reading it back.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use arrow::array::{Array, ArrayRef, AsArray, new_null_array};
use arrow::datatypes::{DataType, Float64Type, Int64Type, UInt64Type};

use super::codec;
use super::format::*;
use crate::catalog::{Column, Family};
use crate::error::{Error, IoContext, Result};
use crate::hash::HashingWriter;
use crate::rows::{self, Rows};
use crate::series::SeriesKey;

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

/// One family section's rows, as a segment is written from them.
pub type FamilyRows = (Family, Rows);

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

/// One family section being written block by block.
struct SectionOut {
    family: Family,
    /// The section's field columns, in footer order; pushed rows are
    /// padded with nulls to these.
    columns: Vec<(u32, DataType)>,
    /// Rows not yet written: fewer than a block.
    pending: Option<Rows>,
    rows: u64,
    time_min: i64,
    time_max: i64,
    series_runs: Vec<(u32, u32)>,
    time_blocks: Vec<BlockMeta>,
    /// Per column (aligned with `columns`), its blocks.
    chunks: Vec<Vec<BlockMeta>>,
}

/// Writes a segment as its rows arrive: each family section takes sorted
/// rows in order ([`SegmentStream::push`]) and every full block is encoded
/// and written at once, so memory holds at most one block per section. A
/// block's time and field payloads are written one after another; the
/// footer, with the blocks' offsets, goes last ([`SegmentStream::finish`]).
/// Every byte is hashed with blake3 on its way out.
pub struct SegmentStream<W: Write> {
    /// The published path, for errors.
    path: PathBuf,
    out: HashingWriter<W>,
    scratch: Vec<u8>,
    config: WriteConfig,
    sections: Vec<SectionOut>,
}

/// What the footer says besides the sections: see [`Footer`].
pub struct FooterInfo {
    pub table: TableInfo,
    pub columns: Vec<Column>,
    /// The series directory; pushed series indices point into it once
    /// mapped through `remap`.
    pub series: Vec<SeriesKey>,
    /// Distinct (series, time) keys over all sections.
    pub rows: u64,
    pub created_at_ns: i64,
}

impl<W: Write> SegmentStream<W> {
    /// Starts segment `path` on `out`: writes the header.
    pub fn new(path: &Path, out: W, config: WriteConfig) -> Result<Self> {
        let mut out = HashingWriter::new(out);
        let mut header = [0u8; HEADER_LEN];
        header[..4].copy_from_slice(&MAGIC);
        header[4..6].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.write_all(&header).at(path)?;
        Ok(SegmentStream { path: path.to_path_buf(), out, scratch: Vec::new(), config, sections: Vec::new() })
    }

    /// Declares a family section with its field columns; returns its index
    /// for [`SegmentStream::push`]. A section no rows reach is left out.
    pub fn add_family(&mut self, family: Family, columns: Vec<(u32, DataType)>) -> usize {
        let chunks = vec![Vec::new(); columns.len()];
        self.sections.push(SectionOut {
            family,
            columns,
            pending: None,
            rows: 0,
            time_min: i64::MAX,
            time_max: i64::MIN,
            series_runs: Vec::new(),
            time_blocks: Vec::new(),
            chunks,
        });
        self.sections.len() - 1
    }

    /// Appends `rows` to section `section`. They must be sorted and unique by
    /// (series, time) and come after every row pushed to it before; their
    /// columns must be among the section's.
    pub fn push(&mut self, section: usize, rows: Rows) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let level = self.config.zstd_level;
        let step = self.config.block_rows.max(1) as usize;
        let sec = self
            .sections
            .get_mut(section)
            .ok_or_else(|| Error::InvalidArgument(format!("segment section {section} was not declared")))?;
        let mut columns = Vec::with_capacity(sec.columns.len());
        for (id, data_type) in &sec.columns {
            columns.push((*id, rows.column(*id).cloned().unwrap_or_else(|| new_null_array(data_type, rows.len()))));
        }
        if let Some((id, _)) = rows.columns.iter().find(|(id, _)| !sec.columns.iter().any(|(c, _)| c == id)) {
            return Err(Error::InvalidArgument(format!("column {id} is not in family {}", sec.family.name)));
        }
        let rows = Rows { columns, ..rows };
        for &s in &rows.series {
            match sec.series_runs.last_mut() {
                Some((last, count)) if *last == s => *count += 1,
                _ => sec.series_runs.push((s, 1)),
            }
        }
        for &t in &rows.time {
            sec.time_min = sec.time_min.min(t);
            sec.time_max = sec.time_max.max(t);
        }
        sec.rows += rows.len() as u64;
        let all = match sec.pending.take() {
            Some(pending) => Rows::concat(vec![pending, rows])?,
            None => rows,
        };
        let mut start = 0;
        while all.len() - start >= step {
            let block = all.slice(start, step);
            write_block(&mut self.out, &mut self.scratch, level, sec, &block).at(&self.path)?;
            start += step;
        }
        if start < all.len() {
            // A copy: a slice would keep the whole pushed batch alive.
            let rest: Vec<u32> = (start as u32..all.len() as u32).collect();
            sec.pending = Some(all.take(&rest)?);
        }
        Ok(())
    }

    /// Writes the last partial blocks, the footer and the trailer; `remap`
    /// maps pushed series indices into `info.series`.
    pub fn finish(mut self, info: FooterInfo, remap: &dyn Fn(u32) -> u32) -> Result<Written> {
        let level = self.config.zstd_level;
        let step = self.config.block_rows.max(1);
        let mut metas = Vec::with_capacity(self.sections.len());
        for mut sec in std::mem::take(&mut self.sections) {
            if let Some(pending) = sec.pending.take() {
                write_block(&mut self.out, &mut self.scratch, level, &mut sec, &pending).at(&self.path)?;
            }
            if sec.rows == 0 {
                continue;
            }
            for run in &mut sec.series_runs {
                run.0 = remap(run.0);
            }
            let columns =
                sec.columns.iter().zip(sec.chunks).map(|((id, _), blocks)| ChunkMeta { column: *id, blocks }).collect();
            metas.push(FamilyMeta {
                id: sec.family.id,
                name: sec.family.name.clone(),
                rows: sec.rows,
                time_min: sec.time_min,
                time_max: sec.time_max,
                series_runs: sec.series_runs,
                block_rows: step,
                time_blocks: sec.time_blocks,
                columns,
            });
        }
        if metas.is_empty() {
            return Err(Error::InvalidArgument("a segment would hold no rows".into()));
        }
        let time_min = metas.iter().map(|m| m.time_min).min().unwrap_or(0);
        let time_max = metas.iter().map(|m| m.time_max).max().unwrap_or(0);
        let footer = Footer {
            db_id: info.table.db_id,
            db: info.table.db,
            table_id: info.table.table_id,
            table: info.table.table,
            columns: info.columns.iter().map(ColumnDef::from).collect(),
            series: info.series,
            families: metas,
            rows: info.rows,
            time_min,
            time_max,
            created_at_ns: info.created_at_ns,
            zstd_level: level,
        };
        let footer_bytes = postcard::to_allocvec(&footer).map_err(io::Error::other).at(&self.path)?;
        let out = &mut self.out;
        (|| {
            out.write_all(&footer_bytes)?;
            out.write_all(&(footer_bytes.len() as u64).to_le_bytes())?;
            out.write_all(&crc32fast::hash(&footer_bytes).to_le_bytes())?;
            out.write_all(&MAGIC)?;
            out.flush()
        })()
        .at(&self.path)?;
        Ok(Written { size: out.written(), blake3: out.hash(), rows: info.rows, time_min, time_max })
    }
}

/// Encodes and writes one block of `sec`: its time payload, then each
/// column's.
fn write_block<W: Write>(
    out: &mut HashingWriter<W>,
    scratch: &mut Vec<u8>,
    level: i32,
    sec: &mut SectionOut,
    block: &Rows,
) -> io::Result<()> {
    let put = |out: &mut HashingWriter<W>, scratch: &mut Vec<u8>, nulls: u32, min: Stat, max: Stat| {
        let meta = BlockMeta {
            offset: out.written(),
            len: scratch.len() as u32,
            crc32: crc32fast::hash(scratch),
            nulls,
            min,
            max,
        };
        out.write_all(scratch)?;
        scratch.clear();
        io::Result::Ok(meta)
    };
    codec::encode_timestamps(&block.time, level, scratch);
    let (min, max) = stats_i64(&block.time);
    sec.time_blocks.push(put(out, scratch, 0, min, max)?);
    for ((id, _), blocks) in sec.columns.iter().zip(&mut sec.chunks) {
        let array = block.column(*id).ok_or_else(|| io::Error::other(format!("block lacks column {id}")))?;
        let (nulls, min, max) = encode_field_block(array, level, scratch);
        blocks.push(put(out, scratch, nulls, min, max)?);
    }
    Ok(())
}

/// The series a directory keeps when only those marked `used` have rows:
/// their positions in it, and for every position its index in the kept
/// list (0 where unused), the `remap` of [`SegmentStream::finish`].
pub fn used_series(used: &[bool]) -> (Vec<usize>, Vec<u32>) {
    let mut kept = Vec::new();
    let mut index = vec![0u32; used.len()];
    for (i, _) in used.iter().enumerate().filter(|(_, u)| **u) {
        index[i] = kept.len() as u32;
        kept.push(i);
    }
    (kept, index)
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
/// folder), streaming: `fill` declares the sections and pushes their rows,
/// then returns what the footer says, or `None` when nothing was pushed
/// (no file is published then). An error `fill` returns is returned as it
/// is; the temp file is removed.
pub fn write_segment_with<F>(path: &Path, config: WriteConfig, fill: F) -> Result<Option<Written>>
where
    F: FnOnce(&mut SegmentStream<BufWriter<&mut File>>) -> Result<Option<(FooterInfo, Box<dyn Fn(u32) -> u32>)>>,
{
    // What `fill` and the stream came to, typed (an input's error keeps its
    // own path); the temp file is published only when it is a segment.
    let mut outcome: Option<Result<Option<Written>>> = None;
    let published = crate::fs::atomic_write_with(path, |file| {
        let result = SegmentStream::new(path, BufWriter::with_capacity(1 << 20, file), config).and_then(
            |mut stream| match fill(&mut stream)? {
                Some((info, remap)) => stream.finish(info, &*remap).map(Some),
                None => Ok(None),
            },
        );
        let complete = matches!(result, Ok(Some(_)));
        outcome = Some(result);
        if complete { Ok(()) } else { Err(io::Error::other("no segment to publish")) }
    });
    match (published, outcome) {
        (Ok(()), outcome) => outcome.unwrap_or(Ok(None)),
        (Err(_), Some(unpublished @ (Ok(None) | Err(_)))) => unpublished,
        (Err(e), _) => Err(Error::Io { path: path.to_path_buf(), source: e }),
    }
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
    // The footer's directory: the series that have rows here (a buffer's
    // directory holds every series of the table, in every window).
    let directory = families[0].1.series_keys.clone();
    let mut used = vec![false; directory.len()];
    for (_, rows) in &families {
        for &s in &rows.series {
            if let Some(u) = used.get_mut(s as usize) {
                *u = true;
            }
        }
    }
    let (kept, index) = used_series(&used);
    let series = kept.iter().map(|&i| directory[i].clone()).collect();
    let rows = distinct_keys(&families);
    let written = write_segment_with(path, config, |stream| {
        for (family, rows) in families {
            let types = rows.columns.iter().map(|(id, a)| (*id, a.data_type().clone())).collect();
            let section = stream.add_family(family, types);
            stream.push(section, rows)?;
        }
        let info = FooterInfo { table: table.clone(), columns: columns.to_vec(), series, rows, created_at_ns };
        Ok(Some((info, Box::new(move |s| index.get(s as usize).copied().unwrap_or(0)))))
    })?;
    written.ok_or_else(|| Error::InvalidArgument(format!("segment {} would hold no rows", path.display())))
}
